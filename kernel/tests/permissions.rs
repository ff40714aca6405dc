//! Permission policy evaluation against a naive reference, plus the documented cases.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use kernel::policy::permissions::{
    errno_message, Capability, Check, CompiledPolicy, Decision, Domain, DomainPolicy, Mode, PermissionGlob,
    PermissionsPolicy, PolicyError, Rule, RuleField, RuleSet, MAX_ECHOED_OPERATION_BYTES, MAX_PATTERNS,
    MAX_PATTERN_LEN,
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
/// A rule names the check by its capability's operation, its narrower capability's, or `*`.
fn naive_evaluate(policy: Option<&PermissionsPolicy>, check: Check, resource: &str) -> Mode {
    let Some(policy) = policy else { return Mode::Deny };
    let (domain, operation) = check.capability().as_str().split_once('.').unwrap();
    let narrower = check.narrower().map(|n| n.as_str().split_once('.').unwrap().1);
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
                let op_matches =
                    rule.operations.iter().any(|op| op == operation || Some(op.as_str()) == narrower || op == "*");
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

fn strings(pool: Vec<&'static str>) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop::sample::select(pool).prop_map(str::to_owned), 1..4)
}

/// A rule naming operations of `domain` (every one it accepts, `*` included).
fn rule(domain: Domain) -> impl Strategy<Value = Rule> {
    (mode(), strings(domain.operations().collect()), strings(PATTERNS.to_vec()))
        .prop_map(|(mode, operations, patterns)| Rule { mode, operations, patterns })
}

fn domain_policy(domain: Domain) -> impl Strategy<Value = Option<DomainPolicy>> {
    prop::option::weighted(
        0.85,
        prop_oneof![
            1 => mode().prop_map(DomainPolicy::Mode),
            4 => (prop::option::of(mode()), prop::collection::vec(rule(domain), 0..6))
                .prop_map(|(default, rules)| DomainPolicy::Rules(RuleSet { default, rules })),
        ],
    )
}

fn policy() -> impl Strategy<Value = Option<PermissionsPolicy>> {
    prop::option::weighted(
        0.9,
        (
            domain_policy(Domain::Fs),
            domain_policy(Domain::Network),
            domain_policy(Domain::ChildProcess),
            domain_policy(Domain::Process),
            domain_policy(Domain::Env),
            domain_policy(Domain::Tool),
        )
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
                let expected = naive_evaluate(policy.as_ref(), Check::plain(capability), resource);
                prop_assert_eq!(compiled.evaluate(capability, resource), expected, "{} on {:?}", capability, resource);
                for prompts in [false, true] {
                    prop_assert_eq!(
                        compiled.decide(capability, resource, prompts),
                        expected_decision(expected, capability, prompts)
                    );
                }
            }
        }
        for check in Domain::ALL.into_iter().flat_map(Check::all_in) {
            for resource in RESOURCES {
                let expected = naive_evaluate(policy.as_ref(), check, resource);
                prop_assert_eq!(compiled.evaluate_check(check, resource), expected, "{:?} on {:?}", check, resource);
                prop_assert_eq!(
                    compiled.decide_check(check, resource, false),
                    expected_decision(expected, check.capability(), false)
                );
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
    let config: kernel::policy::config::PermissionsPolicy = serde_json::from_str(
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

// ---------------------------------------------------------------------------------------------
// Operation names
// ---------------------------------------------------------------------------------------------

/// The fs operations a rule may name, as the error lists them.
const FS_OPERATIONS: &str =
    "*, read, write, stat, readdir, create_dir, rm, rename, symlink, readlink, link, chmod, chown, utimes, truncate, \
     mount_sensitive";

fn one_rule(domain: Domain, operations: &[&str]) -> PermissionsPolicy {
    let mut policy = PermissionsPolicy::default();
    let scope =
        Some(DomainPolicy::Rules(RuleSet { default: None, rules: vec![rule_of(Mode::Allow, operations, &["*"])] }));
    match domain {
        Domain::Fs => policy.fs = scope,
        Domain::Network => policy.network = scope,
        Domain::ChildProcess => policy.child_process = scope,
        Domain::Process => policy.process = scope,
        Domain::Env => policy.env = scope,
        Domain::Tool => policy.tool = scope,
    }
    policy
}

#[test]
fn each_domain_accepts_its_own_operations() {
    let accepted = |domain: Domain| domain.operations().collect::<Vec<_>>().join(", ");
    assert_eq!(accepted(Domain::Fs), FS_OPERATIONS);
    assert_eq!(accepted(Domain::Network), "*, fetch, http, dns, listen, inspect");
    assert_eq!(accepted(Domain::ChildProcess), "*, spawn");
    assert_eq!(accepted(Domain::Process), "*, inspect");
    assert_eq!(accepted(Domain::Env), "*, read, write");
    assert_eq!(accepted(Domain::Tool), "*, invoke");
    for domain in Domain::ALL {
        for operation in domain.operations() {
            assert!(CompiledPolicy::compile(&one_rule(domain, &[operation])).is_ok(), "{domain}: {operation}");
        }
    }
}

#[test]
fn unknown_operations_are_refused() {
    let err = CompiledPolicy::compile(&one_rule(Domain::Fs, &["read", "wirte"])).unwrap_err();
    assert_eq!(err, PolicyError::UnknownOperation { domain: Domain::Fs, rule: 0, index: 1, name: "wirte".into() });
    assert_eq!(
        err.to_string(),
        format!(
            "invalid permissions policy: fs.rules[0].operations[1] \"wirte\" is not an fs operation; expected one of: \
             {FS_OPERATIONS}"
        )
    );
    // Another domain's operation, a different case, labels that are not capabilities, blanks.
    for (domain, name) in [
        (Domain::Fs, "spawn"),
        (Domain::Fs, "Read"),
        (Domain::Fs, "mkdir"),
        (Domain::Fs, "exists"),
        (Domain::Fs, "fs.read"),
        (Domain::Fs, ""),
        (Domain::Fs, " read"),
        (Domain::Network, "read"),
        (Domain::ChildProcess, "exec"),
        (Domain::Process, "spawn"),
        (Domain::Env, "invoke"),
        (Domain::Tool, "call"),
    ] {
        let err = CompiledPolicy::compile(&one_rule(domain, &["*", name])).unwrap_err();
        assert_eq!(err, PolicyError::UnknownOperation { domain, rule: 0, index: 1, name: name.into() }, "{name:?}");
    }
    assert_eq!(
        CompiledPolicy::compile(&one_rule(Domain::ChildProcess, &["exec"])).unwrap_err().to_string(),
        "invalid permissions policy: child_process.rules[0].operations[0] \"exec\" is not a child_process operation; \
         expected one of: *, spawn"
    );
    assert!(CompiledPolicy::compile(&one_rule(Domain::Env, &["exec"]))
        .unwrap_err()
        .to_string()
        .contains("\"exec\" is not an env operation; expected one of: *, read, write"));

    // A long name is quoted only in part, so the accepted names stay in the message.
    let long = format!("{}é", "w".repeat(MAX_ECHOED_OPERATION_BYTES - 1));
    let message = CompiledPolicy::compile(&one_rule(Domain::Fs, &[&long])).unwrap_err().to_string();
    let quoted = format!("\"{}\"... is not an fs operation", "w".repeat(MAX_ECHOED_OPERATION_BYTES - 1));
    assert!(message.contains(&quoted), "{message}");
    assert!(message.ends_with(FS_OPERATIONS), "{message}");

    // The original's empty-list check comes first; the limits come after.
    let mut policy = one_rule(Domain::Fs, &["wirte"]);
    policy.tool = Some(DomainPolicy::Rules(RuleSet { default: None, rules: vec![rule_of(Mode::Allow, &[], &["*"])] }));
    assert!(matches!(CompiledPolicy::compile(&policy), Err(PolicyError::EmptyList { domain: Domain::Tool, .. })));
    let mut policy = one_rule(Domain::Env, &["wirte"]);
    policy.fs = Some(DomainPolicy::Rules(RuleSet {
        default: None,
        rules: vec![rule_of(Mode::Allow, &["*"], &["x".repeat(MAX_PATTERN_LEN + 1).as_str()])],
    }));
    assert!(matches!(CompiledPolicy::compile(&policy), Err(PolicyError::UnknownOperation { domain: Domain::Env, .. })));
    // Mode-only domains have no operations to check.
    assert!(CompiledPolicy::compile(&PermissionsPolicy::deny_all()).is_ok());
}

#[test]
fn narrower_operations_match_rules_naming_them_or_their_capability() {
    // Every narrower capability, the broader one its operation is decided as, and its name.
    let refined = [
        (Capability::FsReadlink, Capability::FsRead),
        (Capability::FsLink, Capability::FsWrite),
        (Capability::FsChmod, Capability::FsWrite),
        (Capability::FsChown, Capability::FsWrite),
        (Capability::FsUtimes, Capability::FsWrite),
        (Capability::FsTruncate, Capability::FsWrite),
    ];
    let narrower: Vec<Capability> = Capability::ALL.into_iter().filter(|c| c.broader().is_some()).collect();
    assert_eq!(narrower, refined.map(|(own, _)| own), "the table covers every narrower capability");
    for (own, broader) in refined {
        let check = Check::refined(own);
        assert_eq!((check.capability(), check.narrower()), (broader, Some(own)));
        let policy = fs_rules(
            Some(Mode::Allow),
            vec![
                rule_of(Mode::Allow, &[broader.operation()], &["/**"]),
                rule_of(Mode::Deny, &[own.operation()], &["/secret/**"]),
                rule_of(Mode::Ask, &[broader.operation()], &["/secret/asked/**"]),
            ],
        );
        assert_eq!(policy.evaluate_check(check, "/secret/x"), Mode::Deny, "{own} is denied by its own rule");
        assert_eq!(policy.evaluate_check(Check::plain(broader), "/secret/x"), Mode::Allow, "plain {broader} is not");
        assert_eq!(policy.evaluate_check(check, "/open/x"), Mode::Allow);
        assert_eq!(policy.evaluate_check(check, "/secret/asked/x"), Mode::Ask, "the last matching rule still wins");
        assert_eq!(
            policy.decide_check(check, "/secret/x", false),
            Decision::Deny { message: format!("blocked by {broader} policy") },
            "denials name the capability the operation is decided as"
        );
        // The other narrower names of the same capability do not match.
        for other in refined.map(|(other, _)| other).into_iter().filter(|&other| other != own) {
            assert_eq!(policy.evaluate_check(Check::refined(other), "/secret/x"), Mode::Allow, "{other} vs {own}");
        }
    }
    assert_eq!(Check::refined(Capability::FsRead), Check::plain(Capability::FsRead));
    assert_eq!(Check::refined(Capability::FsMountSensitive), Check::plain(Capability::FsMountSensitive));
}

#[test]
fn every_accepted_operation_can_match_some_check() {
    for domain in Domain::ALL {
        for operation in domain.operations() {
            let mut policy = one_rule(domain, &[operation]);
            let set = match domain {
                Domain::Fs => policy.fs.as_mut(),
                Domain::Network => policy.network.as_mut(),
                Domain::ChildProcess => policy.child_process.as_mut(),
                Domain::Process => policy.process.as_mut(),
                Domain::Env => policy.env.as_mut(),
                Domain::Tool => policy.tool.as_mut(),
            };
            let Some(DomainPolicy::Rules(set)) = set else { unreachable!() };
            set.default = Some(Mode::Deny);
            let compiled = CompiledPolicy::compile(&policy).unwrap();
            assert!(
                Check::all_in(domain).any(|check| compiled.evaluate_check(check, "x") == Mode::Allow),
                "{domain}: a rule naming {operation:?} matches nothing"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rules below a directory
// ---------------------------------------------------------------------------------------------

/// Backtracking reference for "some continuation of `input` matches": once the input is used up,
/// what is left of the pattern can always be satisfied (a byte by itself, `?` by a byte other
/// than `/`, stars by nothing).
fn naive_prefix(pattern: &[u8], input: &[u8]) -> bool {
    if input.is_empty() {
        return true;
    }
    match pattern.first() {
        None => false,
        Some(b'*') => {
            let run = pattern.iter().take_while(|&&c| c == b'*').count();
            (0..=input.len())
                .take_while(|&k| run > 1 || !input[..k].contains(&b'/'))
                .any(|k| naive_prefix(&pattern[run..], &input[k..]))
        }
        Some(b'?') => input[0] != b'/' && naive_prefix(&pattern[1..], &input[1..]),
        Some(c) => input[0] == *c && naive_prefix(&pattern[1..], &input[1..]),
    }
}

fn below(dir: &str) -> String {
    if dir.ends_with('/') {
        dir.to_owned()
    } else {
        format!("{dir}/")
    }
}

#[test]
fn can_match_below_table() {
    let cases: &[(&str, &str, bool)] = &[
        // A literal prefix: above it, at its directory, inside, beside.
        ("/data/secret/**", "/", true),
        ("/data/secret/**", "/data", true),
        ("/data/secret/**", "/data/secret", true),
        ("/data/secret/**", "/data/secret/x/y", true),
        ("/data/secret/**", "/data/other", false),
        ("/data/secret/**", "/data/sec", false),
        ("/data/secret/**", "/data/secret2", false),
        ("/data/secret/**", "/other", false),
        ("/data/secret", "/data", true),
        // A pattern ending exactly at the directory names nothing below it.
        ("/data/secret", "/data/secret", false),
        ("/data", "/data", false),
        ("/data", "/", true),
        // ... unless it ends with the separator: `dir/` itself (over-approximated, see the docs).
        ("/data/", "/data", true),
        // `*` never crosses `/`; `**` does.
        ("/data/*", "/data", true),
        ("/data/*", "/data/x", false),
        ("/data*", "/data", false),
        ("/data**", "/data", true),
        ("/da*/x", "/data", true),
        ("/da*/x", "/data/x", false),
        ("/data/*/f", "/data/x", true),
        ("/data/*/f", "/data/x/y", false),
        ("/x/*/**", "/x/y/z", true),
        ("*", "/", false),
        ("/*", "/", true),
        ("**", "/any/where", true),
        ("**/x", "/a", true),
        ("/a/**/b", "/a/q/r", true),
        ("/a/**/b", "/c", false),
        // `?` is one byte other than `/`.
        ("/data/?", "/data", true),
        ("/data/?", "/data/x", false),
        ("/d?ta/**", "/data", true),
        ("/d?ta/**", "/d/ta", false),
        ("/??/**", "/é", true),
        // Other domains' patterns and the empty pattern match no path below anything.
        ("tcp://*:*", "/data", false),
        ("", "/data", false),
        ("", "/", false),
    ];
    for &(pattern, dir, expected) in cases {
        for glob in [PermissionGlob::new(pattern), PermissionGlob::new_manual(pattern)] {
            assert_eq!(glob.can_match_below(dir), expected, "{pattern:?} below {dir:?}");
        }
        assert_eq!(naive_prefix(pattern.as_bytes(), below(dir).as_bytes()), expected, "reference {pattern:?}");
    }
    let all: &[(&str, &str, bool)] = &[
        ("/data/**", "/data", true),
        ("/data/**", "/data/x/y", true),
        ("/data**", "/data", true),
        ("**", "/", true),
        ("/**", "/", true),
        ("/data/***", "/data", true),
        ("/data/**", "/", false),
        ("/data/**", "/other", false),
        ("/data/*", "/data", false),
        ("/data/*/**", "/data", false),
        ("/data/**/x", "/data", false),
        ("/data/secret/**", "/data", false),
        ("/data/", "/data", false),
        ("/data", "/data", false),
    ];
    for &(pattern, dir, expected) in all {
        for glob in [PermissionGlob::new(pattern), PermissionGlob::new_manual(pattern)] {
            assert_eq!(glob.matches_all_below(dir), expected, "{pattern:?} all below {dir:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn can_match_below_agrees_with_reference_and_never_misses(
        pattern in prop::collection::vec(prop::sample::select(&["a", "b", "/", "*", "*", "?", "."][..]), 0..10),
        dir in prop::collection::vec(prop::sample::select(&["a", "b", "/", "."][..]), 0..6),
        rest in prop::collection::vec(prop::sample::select(&["a", "b", "/", "."][..]), 0..6),
    ) {
        let pattern = pattern.concat();
        let dir = format!("/{}", dir.concat());
        let glob = PermissionGlob::new(&pattern);
        let answer = glob.can_match_below(&dir);
        prop_assert_eq!(answer, naive_prefix(pattern.as_bytes(), below(&dir).as_bytes()), "{:?} below {:?}", pattern, dir);
        prop_assert_eq!(PermissionGlob::new_manual(&pattern).can_match_below(&dir), answer);
        // Soundness, the property the guard relies on: a path below that matches is never missed,
        // and one that does not is never claimed by "matches all below".
        let path = format!("{}{}", below(&dir), rest.concat());
        let matches = naive_glob(pattern.as_bytes(), path.as_bytes());
        if matches {
            prop_assert!(answer, "{:?} matches {:?} below {:?}", pattern, path, dir);
        } else {
            prop_assert!(!glob.matches_all_below(&dir), "{:?} misses {:?} below {:?}", pattern, path, dir);
        }
    }
}

#[test]
fn differs_below_compares_rules_below_with_the_directory() {
    let below_only = fs_rules(Some(Mode::Allow), vec![rule_of(Mode::Deny, &["*"], &["/data/secret/**"])]);
    let with_dir = fs_rules(Some(Mode::Allow), vec![rule_of(Mode::Deny, &["*"], &["/data/secret", "/data/secret/**"])]);
    for (dir, expected_below_only, expected_with_dir) in [
        ("/", true, true),
        ("/data", true, true),
        // Below-only: the directory itself is allowed, its entries are not. With the directory:
        // denied like its entries (and renaming or removing it is denied by its own check).
        ("/data/secret", true, false),
        ("/data/secret/inner", false, false),
        ("/data/other", false, false),
        ("/other", false, false),
    ] {
        assert_eq!(below_only.differs_below(Domain::Fs, dir), expected_below_only, "{dir}");
        assert_eq!(with_dir.differs_below(Domain::Fs, dir), expected_with_dir, "{dir} with the dir");
    }
    // The default decides below a directory a rule allows only by its own name.
    let only_children = fs_rules(Some(Mode::Deny), vec![rule_of(Mode::Allow, &["*"], &["/tmp/*"])]);
    assert!(only_children.differs_below(Domain::Fs, "/tmp/a"));
    assert!(!only_children.differs_below(Domain::Fs, "/home"), "denied like everything below it");
    // ... but not where a rule covers everything below it.
    let tree = fs_rules(Some(Mode::Deny), vec![rule_of(Mode::Allow, &["read", "write"], &["/workspace/**"])]);
    assert!(!tree.differs_below(Domain::Fs, "/workspace/project"));
    assert!(tree.differs_below(Domain::Fs, "/workspace"), "`/workspace` itself is denied, its entries are not");
    // A rule that only matches elsewhere does not count.
    let elsewhere = fs_rules(Some(Mode::Allow), vec![rule_of(Mode::Deny, &["*"], &["/other/**"])]);
    assert!(!elsewhere.differs_below(Domain::Fs, "/data"));
    assert!(elsewhere.differs_below(Domain::Fs, "/"));
    // A rule below with the directory's own mode does not count, for any operation.
    let same = fs_rules(None, vec![rule_of(Mode::Deny, &["read"], &["/data/secret/**"])]);
    assert!(!same.differs_below(Domain::Fs, "/data"));
    // Ask differs from deny; a rule for one operation counts through it alone.
    let asked = fs_rules(None, vec![rule_of(Mode::Ask, &["readdir"], &["/data/x/**"])]);
    assert!(asked.differs_below(Domain::Fs, "/data"));
    // A narrower name counts: chmod below an allowed write.
    let chmod = fs_rules(
        None,
        vec![rule_of(Mode::Allow, &["write"], &["/**"]), rule_of(Mode::Deny, &["chmod"], &["/data/secret/**"])],
    );
    assert!(chmod.differs_below(Domain::Fs, "/data"));
    assert!(!chmod.differs_below(Domain::Fs, "/tmp"));
    // Conservative: a differing rule counts even when a later one overrides it again.
    let overridden = fs_rules(
        Some(Mode::Allow),
        vec![rule_of(Mode::Deny, &["*"], &["/data/s/**"]), rule_of(Mode::Allow, &["*"], &["/data/s/**"])],
    );
    assert!(overridden.differs_below(Domain::Fs, "/data"));
    // Mode-only and missing domains never differ.
    for policy in [CompiledPolicy::allow_all(), CompiledPolicy::deny_all()] {
        assert!(!policy.differs_below(Domain::Fs, "/"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    /// If a check decides some path below `dir` differently from `dir`, `differs_below` says so.
    #[test]
    fn differs_below_never_misses_a_differing_entry(
        policy in domain_policy(Domain::Fs),
        dir in prop::sample::select(&["/", "/tmp", "/tmp/a", "/x"][..]),
        rest in prop::sample::select(&["a", "b", "a/b", "secret", "x/y/z", "[x]"][..]),
    ) {
        let policy = PermissionsPolicy { fs: policy, ..PermissionsPolicy::default() };
        let compiled = CompiledPolicy::compile(&policy).unwrap();
        let path = format!("{}{rest}", below(dir));
        for check in Check::all_in(Domain::Fs) {
            if compiled.evaluate_check(check, dir) != compiled.evaluate_check(check, &path) {
                prop_assert!(compiled.differs_below(Domain::Fs, dir), "{:?}: {} vs {}", check, dir, path);
            }
        }
    }
}
