//! Permission policy evaluation against a naive reference, plus the documented cases.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use kernel::permissions::{
    errno_message, Capability, CompiledPolicy, Decision, Domain, DomainPolicy, Mode, PermissionGlob, PermissionsPolicy,
    PolicyError, Rule, RuleField, RuleSet, MAX_PATTERNS, MAX_PATTERN_LEN,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Naive references
// ---------------------------------------------------------------------------------------------

/// Backtracking glob over bytes: `?` one byte but not `/`, `*` a run without `/`, `**`+ any run.
fn naive_glob(pattern: &[u8], input: &[u8]) -> bool {
    match pattern.first() {
        None => input.is_empty(),
        Some(b'*') => {
            let run = pattern.iter().take_while(|&&c| c == b'*').count();
            (0..=input.len())
                .take_while(|&k| run > 1 || !input[..k].contains(&b'/'))
                .any(|k| naive_glob(&pattern[run..], &input[k..]))
        }
        Some(b'?') => input.first().is_some_and(|&c| c != b'/') && naive_glob(&pattern[1..], &input[1..]),
        Some(c) => input.first() == Some(c) && naive_glob(&pattern[1..], &input[1..]),
    }
}

/// Linear scan: default (absent → deny), every matching rule overrides, so the last one wins.
fn naive_evaluate(policy: Option<&PermissionsPolicy>, capability: Capability, resource: &str) -> Mode {
    let Some(policy) = policy else { return Mode::Deny };
    let (domain, operation) = capability.as_str().split_once('.').unwrap();
    let scope = match domain {
        "fs" => &policy.fs,
        "network" => &policy.network,
        "child_process" => &policy.child_process,
        "process" => &policy.process,
        "env" => &policy.env,
        "tool" => &policy.tool,
        other => panic!("unknown domain {other}"),
    };
    match scope {
        None => Mode::Deny,
        Some(DomainPolicy::Mode(mode)) => *mode,
        Some(DomainPolicy::Rules(set)) => {
            let mut mode = set.default.unwrap_or(Mode::Deny);
            for rule in &set.rules {
                let op_matches = rule.operations.iter().any(|op| op == operation || op == "*");
                let pattern_matches = rule.patterns.iter().any(|p| naive_glob(p.as_bytes(), resource.as_bytes()));
                if op_matches && pattern_matches {
                    mode = rule.mode;
                }
            }
            mode
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

const OPERATIONS: &[&str] = &["*", "read", "write", "stat", "create_dir", "http", "dns", "spawn", "inspect", "invoke"];
const PATTERNS: &[&str] = &[
    "**",
    "*",
    "/tmp/*",
    "/tmp/**",
    "/tmp/a",
    "/tmp/?",
    "/tmp/**/b",
    "/*/a*",
    "tcp://*:*",
    "tcp://h:1",
    "dns://**",
    "ls",
    "l?",
    "[x]",
    "{a,b}",
    "",
];
const RESOURCES: &[&str] = &[
    "/tmp",
    "/tmp/",
    "/tmp/a",
    "/tmp/b",
    "/tmp/a/b",
    "/tmp//b",
    "/x/ab",
    "tcp://h:1",
    "tcp://h/x:1",
    "dns://a.b",
    "ls",
    "lx",
    "[x]",
    "x",
    "a",
    "",
];

fn mode() -> impl Strategy<Value = Mode> {
    prop::sample::select(&[Mode::Allow, Mode::Ask, Mode::Deny][..])
}

fn strings(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop::sample::select(pool).prop_map(str::to_owned), 1..4)
}

fn rule() -> impl Strategy<Value = Rule> {
    (mode(), strings(OPERATIONS), strings(PATTERNS)).prop_map(|(mode, operations, patterns)| Rule {
        mode,
        operations,
        patterns,
    })
}

fn domain_policy() -> impl Strategy<Value = Option<DomainPolicy>> {
    prop::option::weighted(
        0.85,
        prop_oneof![
            1 => mode().prop_map(DomainPolicy::Mode),
            4 => (prop::option::of(mode()), prop::collection::vec(rule(), 0..6))
                .prop_map(|(default, rules)| DomainPolicy::Rules(RuleSet { default, rules })),
        ],
    )
}

fn policy() -> impl Strategy<Value = Option<PermissionsPolicy>> {
    prop::option::weighted(
        0.9,
        (domain_policy(), domain_policy(), domain_policy(), domain_policy(), domain_policy(), domain_policy())
            .prop_map(|(fs, network, child_process, process, env, tool)| PermissionsPolicy {
                fs,
                network,
                child_process,
                process,
                env,
                tool,
            }),
    )
}

fn expected_decision(mode: Mode, capability: Capability, prompts: bool) -> Decision {
    match mode {
        Mode::Allow => Decision::Allow,
        Mode::Ask if prompts => Decision::Ask,
        Mode::Ask => Decision::Deny { message: format!("permission prompt required for {}", capability.as_str()) },
        Mode::Deny => Decision::Deny { message: format!("blocked by {} policy", capability.as_str()) },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn evaluation_agrees_with_naive_evaluator(policy in policy()) {
        let compiled = CompiledPolicy::compile_optional(policy.as_ref()).unwrap();
        for capability in Capability::ALL {
            for resource in RESOURCES {
                let expected = naive_evaluate(policy.as_ref(), capability, resource);
                prop_assert_eq!(compiled.evaluate(capability, resource), expected, "{} on {:?}", capability, resource);
                for prompts in [false, true] {
                    prop_assert_eq!(
                        compiled.decide(capability, resource, prompts),
                        expected_decision(expected, capability, prompts)
                    );
                }
            }
        }
    }

    #[test]
    fn globs_agree_with_naive_glob(
        pattern in prop::collection::vec(prop::sample::select(&["a", "b", "/", "*", "?", "[", "]", "{", "}", "."][..]), 0..9),
        input in prop::collection::vec(prop::sample::select(&["a", "b", "/", "[", "]", "{", "}", "."][..]), 0..9),
    ) {
        let (pattern, input) = (pattern.concat(), input.concat());
        let expected = naive_glob(pattern.as_bytes(), input.as_bytes());
        prop_assert_eq!(PermissionGlob::new(&pattern).is_match(&input), expected, "{:?} vs {:?}", pattern, input);
        prop_assert_eq!(PermissionGlob::new_manual(&pattern).is_match(&input), expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Documented cases
// ---------------------------------------------------------------------------------------------

fn rule_of(mode: Mode, operations: &[&str], patterns: &[&str]) -> Rule {
    Rule {
        mode,
        operations: operations.iter().map(|s| s.to_string()).collect(),
        patterns: patterns.iter().map(|s| s.to_string()).collect(),
    }
}

fn fs_rules(default: Option<Mode>, rules: Vec<Rule>) -> CompiledPolicy {
    let policy =
        PermissionsPolicy { fs: Some(DomainPolicy::Rules(RuleSet { default, rules })), ..PermissionsPolicy::default() };
    CompiledPolicy::compile(&policy).unwrap()
}

#[test]
fn glob_table() {
    let cases: &[(&str, &str, bool)] = &[
        ("/tmp/*", "/tmp/a", true),
        ("/tmp/*", "/tmp/a/b", false),
        ("/tmp/**", "/tmp/a", true),
        ("/tmp/**", "/tmp/a/b", true),
        ("/tmp/**", "/tmp", false),
        ("/tmp/?", "/tmp/a", true),
        ("/tmp/?", "/tmp/", false),
        ("/tmp?", "/tmp/", false),
        ("/[a]", "/a", false),
        ("/[a]", "/[a]", true),
        ("/{a,b}", "/a", false),
        ("/{a,b}", "/{a,b}", true),
        ("**/a", "a", false),
        ("/x/**/y", "/x/y", false),
        ("/x/**/y", "/x/q/y", true),
    ];
    for &(pattern, input, expected) in cases {
        assert_eq!(PermissionGlob::new(pattern).is_match(input), expected, "{pattern:?} vs {input:?}");
        assert_eq!(naive_glob(pattern.as_bytes(), input.as_bytes()), expected, "reference {pattern:?} vs {input:?}");
    }
}

#[test]
fn no_policy_denies_everything() {
    for policy in [
        CompiledPolicy::compile_optional(None).unwrap(),
        CompiledPolicy::from_config(None).unwrap(),
        CompiledPolicy::default(),
        CompiledPolicy::deny_all(),
        CompiledPolicy::compile(&PermissionsPolicy::default()).unwrap(),
    ] {
        for capability in Capability::ALL {
            assert_eq!(policy.evaluate(capability, "/tmp/a"), Mode::Deny, "{capability}");
        }
    }
    let allow = CompiledPolicy::allow_all();
    assert!(Capability::ALL.iter().all(|&c| allow.evaluate(c, "x") == Mode::Allow));
    let allow = CompiledPolicy::compile(&PermissionsPolicy::allow_all()).unwrap();
    assert!(Capability::ALL.iter().all(|&c| allow.evaluate(c, "x") == Mode::Allow));
}

#[test]
fn missing_domain_is_deny_and_mode_domain_applies_everywhere() {
    let policy = CompiledPolicy::compile(&PermissionsPolicy {
        network: Some(DomainPolicy::Mode(Mode::Allow)),
        env: Some(DomainPolicy::Mode(Mode::Ask)),
        ..PermissionsPolicy::default()
    })
    .unwrap();
    assert_eq!(policy.evaluate(Capability::NetworkHttp, "tcp://h:1"), Mode::Allow);
    assert_eq!(policy.evaluate(Capability::NetworkDns, ""), Mode::Allow);
    assert_eq!(policy.evaluate(Capability::EnvRead, "HOME"), Mode::Ask);
    assert_eq!(policy.evaluate(Capability::FsRead, "/tmp/a"), Mode::Deny);
    assert_eq!(policy.evaluate(Capability::ToolInvoke, "kit:tool"), Mode::Deny);
    assert_eq!(policy.evaluate(Capability::ChildProcessSpawn, "ls"), Mode::Deny);
}

#[test]
fn rule_set_default_and_last_match_wins() {
    let rules = || {
        vec![
            rule_of(Mode::Allow, &["read", "stat"], &["/tmp/**"]),
            rule_of(Mode::Deny, &["*"], &["/tmp/secret/*"]),
            rule_of(Mode::Ask, &["write"], &["/tmp/*"]),
        ]
    };
    let absent = fs_rules(None, rules());
    assert_eq!(absent.evaluate(Capability::FsRead, "/tmp/a/b"), Mode::Allow);
    assert_eq!(absent.evaluate(Capability::FsStat, "/tmp/a"), Mode::Allow);
    assert_eq!(absent.evaluate(Capability::FsRead, "/tmp/secret/k"), Mode::Deny, "later rule overrides");
    assert_eq!(absent.evaluate(Capability::FsWrite, "/tmp/secret/k"), Mode::Deny, "`*` operation matches write");
    assert_eq!(absent.evaluate(Capability::FsWrite, "/tmp/a"), Mode::Ask);
    assert_eq!(absent.evaluate(Capability::FsWrite, "/tmp/a/b"), Mode::Deny, "no rule matches: default absent");
    assert_eq!(absent.evaluate(Capability::FsReaddir, "/tmp/a"), Mode::Deny, "operation not listed");
    assert_eq!(absent.evaluate(Capability::FsRead, "/tmp"), Mode::Deny, "/tmp/** does not match /tmp");

    let present = fs_rules(Some(Mode::Allow), rules());
    assert_eq!(present.evaluate(Capability::FsWrite, "/tmp/a/b"), Mode::Allow, "default present");
    assert_eq!(present.evaluate(Capability::FsRead, "/tmp/secret/k"), Mode::Deny);

    let reordered = fs_rules(None, rules().into_iter().rev().collect());
    assert_eq!(reordered.evaluate(Capability::FsRead, "/tmp/secret/k"), Mode::Allow, "order matters");
}

#[test]
fn decisions_and_messages() {
    let policy = CompiledPolicy::compile(&PermissionsPolicy {
        fs: Some(DomainPolicy::Mode(Mode::Ask)),
        network: Some(DomainPolicy::Mode(Mode::Deny)),
        env: Some(DomainPolicy::Mode(Mode::Allow)),
        ..PermissionsPolicy::default()
    })
    .unwrap();
    assert_eq!(
        policy.decide(Capability::FsRead, "/a", false),
        Decision::Deny { message: "permission prompt required for fs.read".into() }
    );
    assert_eq!(policy.decide(Capability::FsRead, "/a", true), Decision::Ask);
    let denied = policy.decide(Capability::NetworkHttp, "tcp://h:1", true);
    assert_eq!(denied, Decision::Deny { message: "blocked by network.http policy".into() });
    assert_eq!(denied.denial_message(), Some("blocked by network.http policy"));
    assert!(policy.decide(Capability::EnvRead, "HOME", false).is_allowed());
    assert_eq!(
        errno_message("mkdir", "/tmp/x", "blocked by fs.create_dir policy"),
        "EACCES: permission denied, mkdir '/tmp/x': blocked by fs.create_dir policy"
    );
}

#[test]
fn empty_lists_are_rejected_with_the_original_messages() {
    let scope = |rules: Vec<Rule>| Some(DomainPolicy::Rules(RuleSet { default: None, rules }));
    let ok = || vec![rule_of(Mode::Allow, &["*"], &["*"])];

    let policy = PermissionsPolicy {
        fs: scope(vec![rule_of(Mode::Allow, &["*"], &["*"]), rule_of(Mode::Allow, &["read"], &[])]),
        ..Default::default()
    };
    let err = CompiledPolicy::compile(&policy).unwrap_err();
    assert_eq!(err, PolicyError::EmptyList { domain: Domain::Fs, rule: 1, field: RuleField::Paths });
    assert_eq!(
        err.to_string(),
        r#"invalid permissions policy: fs.rules[1].paths must not be empty; use ["*"] for wildcard"#
    );

    let policy = PermissionsPolicy { child_process: scope(vec![rule_of(Mode::Allow, &[], &[])]), ..Default::default() };
    assert_eq!(
        CompiledPolicy::compile(&policy).unwrap_err().to_string(),
        r#"invalid permissions policy: child_process.rules[0].operations must not be empty; use ["*"] for wildcard"#,
        "operations are checked before patterns"
    );

    let policy = PermissionsPolicy {
        fs: scope(ok()),
        network: scope(vec![rule_of(Mode::Deny, &["http"], &[])]),
        tool: scope(vec![rule_of(Mode::Deny, &[], &["*"])]),
        ..Default::default()
    };
    assert_eq!(
        CompiledPolicy::compile(&policy).unwrap_err().to_string(),
        r#"invalid permissions policy: network.rules[0].patterns must not be empty; use ["*"] for wildcard"#
    );

    let policy = PermissionsPolicy {
        env: scope(vec![rule_of(Mode::Allow, &["read"], &["a".repeat(MAX_PATTERN_LEN + 1).as_str()])]),
        tool: scope(vec![rule_of(Mode::Deny, &[], &["*"])]),
        ..Default::default()
    };
    assert!(
        matches!(CompiledPolicy::compile(&policy), Err(PolicyError::EmptyList { domain: Domain::Tool, .. })),
        "empty lists are reported before limits, as the original would"
    );
}

#[test]
fn pattern_limits() {
    let many = |n: usize, len: usize| PermissionsPolicy {
        network: Some(DomainPolicy::Rules(RuleSet {
            default: None,
            rules: vec![Rule { mode: Mode::Allow, operations: vec!["*".into()], patterns: vec!["x".repeat(len); n] }],
        })),
        ..Default::default()
    };
    assert!(CompiledPolicy::compile(&many(MAX_PATTERNS, 1)).is_ok());
    assert_eq!(
        CompiledPolicy::compile(&many(MAX_PATTERNS + 1, 1)).unwrap_err(),
        PolicyError::TooManyPatterns { count: MAX_PATTERNS + 1, max: MAX_PATTERNS }
    );
    assert!(
        CompiledPolicy::compile(&many(1, MAX_PATTERN_LEN))
            .unwrap()
            .evaluate(Capability::NetworkHttp, &"x".repeat(MAX_PATTERN_LEN))
            == Mode::Allow
    );
    let err = CompiledPolicy::compile(&many(1, MAX_PATTERN_LEN + 1)).unwrap_err();
    assert!(matches!(err, PolicyError::PatternTooLong { domain: Domain::Network, rule: 0, index: 0, .. }), "{err}");
    assert!(err.to_string().starts_with("invalid permissions policy: network.rules[0].patterns[0] is 4097 bytes"));

    // The count is over the whole policy, not per rule or per domain.
    let half = MAX_PATTERNS / 2 + 1;
    let mut split = many(half, 1);
    split.env = split.network.clone();
    assert!(matches!(CompiledPolicy::compile(&split), Err(PolicyError::TooManyPatterns { .. })));
}

#[test]
fn capabilities_parse_and_split() {
    for capability in Capability::ALL {
        assert_eq!(capability.as_str().parse::<Capability>().unwrap(), capability);
        assert!(capability.as_str().starts_with(capability.domain().as_str()));
    }
    assert_eq!(Capability::ProcessInspect.operation(), "inspect");
    assert_eq!(Capability::ToolInvoke.domain(), Domain::Tool);
    assert!("fs.bogus".parse::<Capability>().is_err());
}

#[test]
fn config_policy_converts() {
    let config: kernel::config::PermissionsPolicy = serde_json::from_str(
        r#"{
            "fs": {"rules": [{"mode": "allow", "operations": ["read"], "paths": ["/tmp/**"]}]},
            "childProcess": "ask",
            "network": {"default": "allow", "rules": [{"mode": "deny", "operations": ["*"], "patterns": ["tcp://*:22"]}]}
        }"#,
    )
    .unwrap();
    let policy = CompiledPolicy::from_config(Some(&config)).unwrap();
    assert_eq!(policy.evaluate(Capability::FsRead, "/tmp/a/b"), Mode::Allow);
    assert_eq!(policy.evaluate(Capability::FsWrite, "/tmp/a/b"), Mode::Deny);
    assert_eq!(policy.evaluate(Capability::ChildProcessSpawn, "ls"), Mode::Ask);
    assert_eq!(policy.evaluate(Capability::NetworkHttp, "tcp://h:22"), Mode::Deny);
    assert_eq!(policy.evaluate(Capability::NetworkHttp, "tcp://h:80"), Mode::Allow);
    assert_eq!(policy.evaluate(Capability::EnvRead, "HOME"), Mode::Deny);
}
