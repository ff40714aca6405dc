//! Permission policies: per-domain modes or ordered rule sets, compiled once and evaluated for
//! every guest operation.
//!
//! The semantics are those of the original sidecar:
//!
//! - six domains (`fs`, `network`, `child_process`, `process`, `env`, `tool`);
//! - no policy at all denies everything, and a domain missing from a policy is `Deny`;
//! - a rule set starts at its `default` (absent → `Deny`) and scans its rules in order; the
//!   **last** matching rule wins. A rule matches when one of its operations names the check (see
//!   below, or is `"*"`) and one of its patterns glob-matches the resource;
//! - `Ask` is a denial (`permission prompt required for {capability}`) unless the caller has
//!   opted in to prompts.
//!
//! A rule's operations must be operations of its domain: `"*"` or the operation of one of the
//! domain's capabilities (`fs.create_dir` → `create_dir`); a policy naming anything else is
//! refused ([`PolicyError::UnknownOperation`]), so a misspelt rule cannot silently never match.
//!
//! Most operations are checked as one capability, and a rule names it by that capability's
//! operation. A few are checked as a broader capability the original sidecar used for them
//! (CHMOD as `fs.write`, READ_LINK as `fs.read`; see [`Capability::broader`]): their denials and
//! prompts still name the broader capability, but a rule may also name the operation's own,
//! narrower one, so `allow write /**` then `deny chmod /secret/**` refuses chmod there while
//! writes stay allowed. Such a [`Check`] matches a rule naming either.
//!
//! Globs are not shell globs. They are matched byte by byte: `?` is exactly one byte other than
//! `/`, `*` is any run of bytes without `/`, two or more consecutive `*` are any run of bytes
//! (including `/`), and every other byte is literal — there are no classes, braces or escapes.
//! [`PermissionGlob`] compiles a pattern with `globset` wherever globset expresses exactly those
//! semantics and falls back to a small hand-written matcher elsewhere (see [`PermissionGlob`]).

use std::fmt;
use std::str::FromStr;

use globset::{GlobBuilder, GlobMatcher};

use crate::policy::config;

/// The longest glob pattern (in bytes) a policy may contain; a longer one is rejected by
/// [`CompiledPolicy::compile`]. Guest paths are bounded by the same figure (`PATH_MAX`).
pub const MAX_PATTERN_LEN: usize = 4096;

/// The most glob patterns a policy may contain, counted over every rule of every domain.
pub const MAX_PATTERNS: usize = 512;

/// The operation wildcard in a rule's `operations` list.
pub const ANY_OPERATION: &str = "*";

// ---------------------------------------------------------------------------------------------
// Modes, domains, capabilities
// ---------------------------------------------------------------------------------------------

/// What a policy says about one access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Allow,
    Ask,
    Deny,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Ask => "ask",
            Self::Deny => "deny",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission domain. Each capability belongs to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    Fs,
    Network,
    ChildProcess,
    Process,
    Env,
    Tool,
}

impl Domain {
    /// Every domain, in the order policies are validated (fs first).
    pub const ALL: [Domain; 6] =
        [Domain::Fs, Domain::Network, Domain::ChildProcess, Domain::Process, Domain::Env, Domain::Tool];

    /// The snake_case name used in capability names and error messages (`child_process`, not
    /// the JSON key `childProcess`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fs => "fs",
            Self::Network => "network",
            Self::ChildProcess => "child_process",
            Self::Process => "process",
            Self::Env => "env",
            Self::Tool => "tool",
        }
    }

    /// Which list a rule of this domain keeps its globs in: `paths` for fs, `patterns` elsewhere.
    pub fn pattern_field(self) -> RuleField {
        match self {
            Self::Fs => RuleField::Paths,
            _ => RuleField::Patterns,
        }
    }

    /// The operations a rule of this domain may name: [`ANY_OPERATION`], then the operation of
    /// each of the domain's capabilities (in [`Capability::ALL`] order).
    pub fn operations(self) -> impl Iterator<Item = &'static str> {
        std::iter::once(ANY_OPERATION)
            .chain(Capability::ALL.into_iter().filter(move |c| c.domain() == self).map(Capability::operation))
    }

    /// Whether a rule of this domain may name `operation` (exact, case-sensitive, as matching is).
    pub fn accepts_operation(self, operation: &str) -> bool {
        self.operations().any(|accepted| accepted == operation)
    }

    /// The article before the domain's name in prose: "an fs operation", "a network operation".
    fn article(self) -> &'static str {
        match self {
            Self::Fs | Self::Env => "an",
            Self::Network | Self::ChildProcess | Self::Process | Self::Tool => "a",
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A checked capability, named `{domain}.{operation}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    FsRead,
    FsWrite,
    FsStat,
    FsReaddir,
    FsCreateDir,
    FsRm,
    FsRename,
    FsSymlink,
    FsReadlink,
    FsLink,
    FsChmod,
    FsChown,
    FsUtimes,
    FsTruncate,
    FsMountSensitive,
    NetworkFetch,
    NetworkHttp,
    NetworkDns,
    NetworkListen,
    NetworkInspect,
    ChildProcessSpawn,
    ProcessInspect,
    EnvRead,
    EnvWrite,
    ToolInvoke,
}

impl Capability {
    pub const ALL: [Capability; 25] = [
        Capability::FsRead,
        Capability::FsWrite,
        Capability::FsStat,
        Capability::FsReaddir,
        Capability::FsCreateDir,
        Capability::FsRm,
        Capability::FsRename,
        Capability::FsSymlink,
        Capability::FsReadlink,
        Capability::FsLink,
        Capability::FsChmod,
        Capability::FsChown,
        Capability::FsUtimes,
        Capability::FsTruncate,
        Capability::FsMountSensitive,
        Capability::NetworkFetch,
        Capability::NetworkHttp,
        Capability::NetworkDns,
        Capability::NetworkListen,
        Capability::NetworkInspect,
        Capability::ChildProcessSpawn,
        Capability::ProcessInspect,
        Capability::EnvRead,
        Capability::EnvWrite,
        Capability::ToolInvoke,
    ];

    /// The full name, e.g. `fs.create_dir`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FsRead => "fs.read",
            Self::FsWrite => "fs.write",
            Self::FsStat => "fs.stat",
            Self::FsReaddir => "fs.readdir",
            Self::FsCreateDir => "fs.create_dir",
            Self::FsRm => "fs.rm",
            Self::FsRename => "fs.rename",
            Self::FsSymlink => "fs.symlink",
            Self::FsReadlink => "fs.readlink",
            Self::FsLink => "fs.link",
            Self::FsChmod => "fs.chmod",
            Self::FsChown => "fs.chown",
            Self::FsUtimes => "fs.utimes",
            Self::FsTruncate => "fs.truncate",
            Self::FsMountSensitive => "fs.mount_sensitive",
            Self::NetworkFetch => "network.fetch",
            Self::NetworkHttp => "network.http",
            Self::NetworkDns => "network.dns",
            Self::NetworkListen => "network.listen",
            Self::NetworkInspect => "network.inspect",
            Self::ChildProcessSpawn => "child_process.spawn",
            Self::ProcessInspect => "process.inspect",
            Self::EnvRead => "env.read",
            Self::EnvWrite => "env.write",
            Self::ToolInvoke => "tool.invoke",
        }
    }

    pub fn domain(self) -> Domain {
        match self {
            Self::FsRead
            | Self::FsWrite
            | Self::FsStat
            | Self::FsReaddir
            | Self::FsCreateDir
            | Self::FsRm
            | Self::FsRename
            | Self::FsSymlink
            | Self::FsReadlink
            | Self::FsLink
            | Self::FsChmod
            | Self::FsChown
            | Self::FsUtimes
            | Self::FsTruncate
            | Self::FsMountSensitive => Domain::Fs,
            Self::NetworkFetch | Self::NetworkHttp | Self::NetworkDns | Self::NetworkListen | Self::NetworkInspect => {
                Domain::Network
            }
            Self::ChildProcessSpawn => Domain::ChildProcess,
            Self::ProcessInspect => Domain::Process,
            Self::EnvRead | Self::EnvWrite => Domain::Env,
            Self::ToolInvoke => Domain::Tool,
        }
    }

    /// The operation matched against rules: the name without its `{domain}.` prefix.
    pub fn operation(self) -> &'static str {
        let name = self.as_str();
        name.strip_prefix(self.domain().as_str()).and_then(|rest| rest.strip_prefix('.')).unwrap_or(name)
    }

    /// The broader capability an operation with this (narrower) capability is checked as, kept
    /// from the original sidecar: its denials and prompts name the broader one (see [`Check`]).
    /// `fs.mount_sensitive` refines nothing: the original checks it on its own, for mounts.
    pub fn broader(self) -> Option<Capability> {
        match self {
            Self::FsReadlink => Some(Self::FsRead),
            Self::FsLink | Self::FsChmod | Self::FsChown | Self::FsUtimes | Self::FsTruncate => Some(Self::FsWrite),
            _ => None,
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A capability name that is not one of [`Capability::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission capability {0:?}")]
pub struct UnknownCapability(pub String);

impl FromStr for Capability {
    type Err = UnknownCapability;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| UnknownCapability(s.to_owned()))
    }
}

/// What one operation is checked as: the capability it is decided as (named in denials and
/// prompts), and for an operation that has a narrower capability of its own (CHMOD is
/// `fs.chmod`, checked as `fs.write`), that narrower one, which a rule may name instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Check {
    capability: Capability,
    narrower: Option<Capability>,
}

impl Check {
    /// A check of `capability` alone: rules match it by its operation or `"*"`.
    pub const fn plain(capability: Capability) -> Self {
        Self { capability, narrower: None }
    }

    /// The check of an operation whose own capability is `own`: decided as `own`'s
    /// [broader](Capability::broader) capability, if it has one, and matched by a rule naming
    /// either; otherwise a plain check of `own`.
    pub fn refined(own: Capability) -> Self {
        match own.broader() {
            Some(broader) => Self { capability: broader, narrower: Some(own) },
            None => Self::plain(own),
        }
    }

    /// The capability the decision is made as, and named by.
    pub fn capability(self) -> Capability {
        self.capability
    }

    /// The narrower capability a rule may also name, if any.
    pub fn narrower(self) -> Option<Capability> {
        self.narrower
    }

    /// Every check an operation of `domain` can be made as: each capability plainly, and each
    /// narrower capability refined.
    pub fn all_in(domain: Domain) -> impl Iterator<Item = Check> {
        let plain = Capability::ALL.into_iter().filter(move |c| c.domain() == domain).map(Self::plain);
        let refined = Capability::ALL
            .into_iter()
            .filter(move |c| c.domain() == domain && c.broader().is_some())
            .map(Self::refined);
        plain.chain(refined)
    }

    /// Whether a rule operation (other than `"*"`) names this check.
    fn is_named_by(self, operation: &str) -> bool {
        self.capability.operation() == operation || self.narrower.is_some_and(|n| n.operation() == operation)
    }
}

impl From<Capability> for Check {
    fn from(capability: Capability) -> Self {
        Self::plain(capability)
    }
}

// ---------------------------------------------------------------------------------------------
// Policy input
// ---------------------------------------------------------------------------------------------

/// One rule of a rule set. `patterns` is the JSON `paths` list for fs and `patterns` elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub mode: Mode,
    pub operations: Vec<String>,
    pub patterns: Vec<String>,
}

/// An ordered rule set: `default` (absent → `Deny`), then the last matching rule wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    pub default: Option<Mode>,
    pub rules: Vec<Rule>,
}

/// What a policy says about one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainPolicy {
    /// The same mode for every operation and resource.
    Mode(Mode),
    Rules(RuleSet),
}

/// A VM's permissions policy, as configured. A `None` domain is `Deny`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionsPolicy {
    pub fs: Option<DomainPolicy>,
    pub network: Option<DomainPolicy>,
    pub child_process: Option<DomainPolicy>,
    pub process: Option<DomainPolicy>,
    pub env: Option<DomainPolicy>,
    pub tool: Option<DomainPolicy>,
}

impl PermissionsPolicy {
    /// Every domain set to one mode.
    pub fn uniform(mode: Mode) -> Self {
        let scope = || Some(DomainPolicy::Mode(mode));
        Self { fs: scope(), network: scope(), child_process: scope(), process: scope(), env: scope(), tool: scope() }
    }

    pub fn allow_all() -> Self {
        Self::uniform(Mode::Allow)
    }

    pub fn deny_all() -> Self {
        Self::uniform(Mode::Deny)
    }

    pub fn domain(&self, domain: Domain) -> Option<&DomainPolicy> {
        match domain {
            Domain::Fs => self.fs.as_ref(),
            Domain::Network => self.network.as_ref(),
            Domain::ChildProcess => self.child_process.as_ref(),
            Domain::Process => self.process.as_ref(),
            Domain::Env => self.env.as_ref(),
            Domain::Tool => self.tool.as_ref(),
        }
    }

    /// Checks the policy without compiling it: first the original sidecar's empty-list check
    /// (per domain, fs first; operations before patterns within a rule), then that every
    /// operation belongs to its domain ([`Domain::accepts_operation`]), then this kernel's
    /// limits ([`MAX_PATTERNS`], [`MAX_PATTERN_LEN`]). Mode-only domains are never checked.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for (domain, rule_set) in self.rule_sets() {
            for (rule, entry) in rule_set.rules.iter().enumerate() {
                if entry.operations.is_empty() {
                    return Err(PolicyError::EmptyList { domain, rule, field: RuleField::Operations });
                }
                if entry.patterns.is_empty() {
                    return Err(PolicyError::EmptyList { domain, rule, field: domain.pattern_field() });
                }
            }
        }
        for (domain, rule_set) in self.rule_sets() {
            for (rule, entry) in rule_set.rules.iter().enumerate() {
                if let Some((index, name)) =
                    entry.operations.iter().enumerate().find(|(_, name)| !domain.accepts_operation(name))
                {
                    return Err(PolicyError::UnknownOperation { domain, rule, index, name: name.clone() });
                }
            }
        }
        let count: usize = self.rule_sets().flat_map(|(_, set)| set.rules.iter()).map(|r| r.patterns.len()).sum();
        if count > MAX_PATTERNS {
            return Err(PolicyError::TooManyPatterns { count, max: MAX_PATTERNS });
        }
        for (domain, rule_set) in self.rule_sets() {
            for (rule, entry) in rule_set.rules.iter().enumerate() {
                for (index, pattern) in entry.patterns.iter().enumerate() {
                    if pattern.len() > MAX_PATTERN_LEN {
                        return Err(PolicyError::PatternTooLong {
                            domain,
                            rule,
                            field: domain.pattern_field(),
                            index,
                            len: pattern.len(),
                            max: MAX_PATTERN_LEN,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn rule_sets(&self) -> impl Iterator<Item = (Domain, &RuleSet)> + '_ {
        Domain::ALL.into_iter().filter_map(move |domain| match self.domain(domain) {
            Some(DomainPolicy::Rules(set)) => Some((domain, set)),
            _ => None,
        })
    }
}

/// A rule list named in a validation error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleField {
    Operations,
    /// The glob list of an fs rule.
    Paths,
    /// The glob list of a non-fs rule.
    Patterns,
}

impl RuleField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operations => "operations",
            Self::Paths => "paths",
            Self::Patterns => "patterns",
        }
    }
}

impl fmt::Display for RuleField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a policy was refused. The dispatcher reports these with code `invalid_state`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The original sidecar's check, with its exact message.
    #[error("invalid permissions policy: {domain}.rules[{rule}].{field} must not be empty; use [\"*\"] for wildcard")]
    EmptyList { domain: Domain, rule: usize, field: RuleField },
    #[error(
        "invalid permissions policy: {domain}.rules[{rule}].{field}[{index}] is {len} bytes long; the limit is {max}"
    )]
    PatternTooLong { domain: Domain, rule: usize, field: RuleField, index: usize, len: usize, max: usize },
    #[error("invalid permissions policy: {count} patterns in total; the limit is {max}")]
    TooManyPatterns { count: usize, max: usize },
    /// A rule names an operation its domain does not have (a misspelling, or another domain's).
    #[error(
        "invalid permissions policy: {domain}.rules[{rule}].operations[{index}] {} is not {} {domain} operation; \
         expected one of: {}",
        echo_operation(.name),
        .domain.article(),
        .domain.operations().collect::<Vec<_>>().join(", ")
    )]
    UnknownOperation { domain: Domain, rule: usize, index: usize, name: String },
}

/// The most bytes of an unknown operation name a [`PolicyError::UnknownOperation`] message
/// quotes. The longest real name is 15 bytes; quoting more shows nothing useful and could push
/// the list of accepted names out of the (bounded) rejection message.
pub const MAX_ECHOED_OPERATION_BYTES: usize = 64;

/// An unknown operation name as an error quotes it: debug-quoted (escapes control characters),
/// cut to [`MAX_ECHOED_OPERATION_BYTES`] with `...` when longer.
fn echo_operation(name: &str) -> String {
    if name.len() <= MAX_ECHOED_OPERATION_BYTES {
        return format!("{name:?}");
    }
    let mut end = MAX_ECHOED_OPERATION_BYTES;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}...", name.get(..end).unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// Globs
// ---------------------------------------------------------------------------------------------

/// One compiled permission glob (semantics in the module docs).
///
/// globset cannot express this dialect in general: with `literal_separator(true)` its `**` only
/// means "anything" in the forms `**/x` (where it also matches `x` — the original needs `/x`),
/// `a/**/b` (also matches `a/b` — the original needs `a//b` at least), `a/**` and `**`; next to
/// anything else it degrades to `*`. So a pattern goes to globset only when the translation is
/// exact:
///
/// - no `**` run: `literal_separator(true)`, `*` and `?` as they are;
/// - no single `*`: `literal_separator(false)`, each `**` run as `*` (which then crosses `/`),
///   `?` as `[!/]`;
/// - single `*`s plus exactly one `**` run, which ends the pattern and follows a `/`:
///   `literal_separator(true)`, where globset's `/**` suffix is `/.*` — exactly the original.
///
/// In all three, `[`, `]`, `{`, `}` become one-character classes (`[[]`, …) and
/// `backslash_escape(false)` keeps `\` literal. Any other pattern (say `/a/**/b` or `x**y*`),
/// and any translation globset refuses, uses the hand-written matcher. Both engines are byte
/// based, like the original: `?` matches one byte, so `??` matches `é`.
///
/// The tokens are kept even when globset matches: [`can_match_below`](Self::can_match_below)
/// runs the hand-written matcher's automaton over a prefix, which globset cannot.
#[derive(Debug, Clone)]
pub struct PermissionGlob {
    pattern: String,
    tokens: Vec<GlobToken>,
    /// `None`: the hand-written matcher matches.
    globset: Option<GlobMatcher>,
}

impl PermissionGlob {
    /// Compiles a pattern. There is no length limit here; [`CompiledPolicy::compile`] enforces
    /// [`MAX_PATTERN_LEN`].
    pub fn new(pattern: &str) -> Self {
        let tokens = tokenize(pattern);
        let globset = globset_translation(pattern, &tokens)
            .and_then(|(translated, literal_separator)| {
                GlobBuilder::new(&translated).literal_separator(literal_separator).backslash_escape(false).build().ok()
            })
            .map(|glob| glob.compile_matcher());
        Self { pattern: pattern.to_owned(), tokens, globset }
    }

    /// Compiles a pattern with the hand-written matcher only (for differential testing).
    pub fn new_manual(pattern: &str) -> Self {
        Self { pattern: pattern.to_owned(), tokens: tokenize(pattern), globset: None }
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether globset matches this pattern (otherwise the hand-written matcher does).
    pub fn uses_globset(&self) -> bool {
        self.globset.is_some()
    }

    pub fn is_match(&self, resource: &str) -> bool {
        match &self.globset {
            Some(matcher) => matcher.is_match(resource),
            None => manual_match(&self.tokens, resource.as_bytes()),
        }
    }

    /// Whether the glob can match some path strictly below directory `dir`: `dir/` followed by
    /// anything (`/` itself is its own `dir/`).
    ///
    /// The automaton reads `dir/`; the answer is whether any state is still alive. Every token
    /// can be satisfied by some continuation (a byte by itself, `?` by a byte other than `/`,
    /// `*` and `**` by nothing), so from a live state some continuation completes a match, and
    /// a dead automaton means no continuation can.
    ///
    /// The answer errs only towards `true`, on purpose: the completing continuation may be empty
    /// (the glob matches `dir/` itself, which names no entry), hold `//`, or not be UTF-8, so no
    /// real path below `dir` need match. The caller refuses to move or delete a directory
    /// wholesale on `true`; a false `true` refuses something harmless (a tool then copies file by
    /// file), a false `false` would let entries escape a rule, so only the former is allowed.
    pub fn can_match_below(&self, dir: &str) -> bool {
        self.below(dir) != Below::None
    }

    /// Whether the glob matches every path below directory `dir`: after `dir/`, the automaton
    /// is alive at a final `**`, which takes any continuation. Errs only towards `false` (a
    /// union of globs covering everything together does not count), which makes its caller
    /// refuse more, never less.
    pub fn matches_all_below(&self, dir: &str) -> bool {
        self.below(dir) == Below::All
    }

    fn below(&self, dir: &str) -> Below {
        let mut prefix = dir.as_bytes().to_vec();
        if !prefix.ends_with(b"/") {
            prefix.push(b'/');
        }
        let Some(active) = run_tokens(&self.tokens, &prefix) else { return Below::None };
        let last = self.tokens.len().checked_sub(1);
        let at_final_any_run = self.tokens.last() == Some(&GlobToken::AnyRun)
            && last.and_then(|last| active.get(last)).copied().unwrap_or(false);
        if at_final_any_run {
            Below::All
        } else {
            Below::Some
        }
    }
}

/// What a glob can match below a directory (see [`PermissionGlob::can_match_below`]), in
/// increasing order: a rule's globs together reach the most any one of them does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Below {
    None,
    Some,
    All,
}

/// Returns the globset pattern and `literal_separator` setting that express `pattern` exactly,
/// or `None` when globset cannot (see [`PermissionGlob`]).
fn globset_translation(pattern: &str, tokens: &[GlobToken]) -> Option<(String, bool)> {
    let singles = tokens.iter().filter(|t| **t == GlobToken::Star).count();
    let multis = tokens.iter().filter(|t| **t == GlobToken::AnyRun).count();
    let suffix_multi = tokens.ends_with(&[GlobToken::Byte(b'/'), GlobToken::AnyRun]);
    let literal_separator = if multis == 0 {
        true
    } else if singles == 0 {
        false
    } else if multis == 1 && suffix_multi {
        true
    } else {
        return None;
    };

    let mut out = String::with_capacity(pattern.len().saturating_mul(3));
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                let mut len = 1usize;
                while chars.next_if_eq(&'*').is_some() {
                    len += 1;
                }
                out.push_str(if len >= 2 && literal_separator { "**" } else { "*" });
            }
            '?' => out.push_str(if literal_separator { "?" } else { "[!/]" }),
            '[' | ']' | '{' | '}' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    Some((out, literal_separator))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GlobToken {
    Byte(u8),
    /// `?`: one byte other than `/`.
    One,
    /// `*`: any run of bytes without `/`.
    Star,
    /// `**` (or longer): any run of bytes.
    AnyRun,
}

fn tokenize(pattern: &str) -> Vec<GlobToken> {
    let mut tokens = Vec::with_capacity(pattern.len());
    let mut bytes = pattern.bytes().peekable();
    while let Some(b) = bytes.next() {
        tokens.push(match b {
            b'*' => {
                if bytes.next_if_eq(&b'*').is_some() {
                    while bytes.next_if_eq(&b'*').is_some() {}
                    GlobToken::AnyRun
                } else {
                    GlobToken::Star
                }
            }
            b'?' => GlobToken::One,
            other => GlobToken::Byte(other),
        });
    }
    tokens
}

/// NFA simulation: `active[i]` means "the first `i` tokens can match the input read so far".
/// O(tokens × input) time, O(tokens) space, no recursion.
fn manual_match(tokens: &[GlobToken], input: &[u8]) -> bool {
    run_tokens(tokens, input).is_some_and(|active| active.last().copied().unwrap_or(false))
}

/// Runs the NFA of [`manual_match`] over `input`: the live states after it, or `None` once no
/// state is alive (no continuation of `input` can match).
fn run_tokens(tokens: &[GlobToken], input: &[u8]) -> Option<Vec<bool>> {
    let mut active = vec![false; tokens.len() + 1];
    let mut next = vec![false; tokens.len() + 1];
    if let Some(first) = active.first_mut() {
        *first = true;
    }
    close_over_stars(tokens, &mut active);
    for &b in input {
        next.fill(false);
        let mut any = false;
        for (i, (token, _)) in tokens.iter().zip(&active).enumerate().filter(|(_, (_, on))| **on) {
            let target = match *token {
                GlobToken::Byte(c) if c == b => i + 1,
                GlobToken::One if b != b'/' => i + 1,
                GlobToken::Star if b != b'/' => i,
                GlobToken::AnyRun => i,
                _ => continue,
            };
            if let Some(slot) = next.get_mut(target) {
                *slot = true;
                any = true;
            }
        }
        if !any {
            return None;
        }
        close_over_stars(tokens, &mut next);
        std::mem::swap(&mut active, &mut next);
    }
    Some(active)
}

/// Stars match the empty run: an active star lets the next token start at the same place.
fn close_over_stars(tokens: &[GlobToken], states: &mut [bool]) {
    for (i, token) in tokens.iter().enumerate() {
        if matches!(token, GlobToken::Star | GlobToken::AnyRun) && states.get(i).copied().unwrap_or(false) {
            if let Some(slot) = states.get_mut(i + 1) {
                *slot = true;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled policy and decisions
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct CompiledRule {
    mode: Mode,
    any_operation: bool,
    operations: Vec<String>,
    globs: Vec<PermissionGlob>,
}

impl CompiledRule {
    fn applies_to(&self, check: Check) -> bool {
        self.any_operation || self.operations.iter().any(|op| check.is_named_by(op))
    }

    fn matches(&self, check: Check, resource: &str) -> bool {
        self.applies_to(check) && self.globs.iter().any(|glob| glob.is_match(resource))
    }
}

#[derive(Debug, Clone)]
enum CompiledScope {
    Mode(Mode),
    Rules { default: Mode, rules: Vec<CompiledRule> },
}

impl CompiledScope {
    fn compile(policy: &DomainPolicy) -> Self {
        match policy {
            DomainPolicy::Mode(mode) => Self::Mode(*mode),
            DomainPolicy::Rules(set) => Self::Rules {
                default: set.default.unwrap_or(Mode::Deny),
                rules: set
                    .rules
                    .iter()
                    .map(|rule| CompiledRule {
                        mode: rule.mode,
                        any_operation: rule.operations.iter().any(|op| op == ANY_OPERATION),
                        operations: rule.operations.clone(),
                        globs: rule.patterns.iter().map(|p| PermissionGlob::new(p)).collect(),
                    })
                    .collect(),
            },
        }
    }

    fn evaluate(&self, check: Check, resource: &str) -> Mode {
        match self {
            Self::Mode(mode) => *mode,
            // The last matching rule wins, so the first match scanning backwards decides.
            Self::Rules { default, rules } => {
                rules.iter().rev().find(|rule| rule.matches(check, resource)).map_or(*default, |rule| rule.mode)
            }
        }
    }

    /// See [`CompiledPolicy::differs_below`].
    fn differs_below(&self, domain: Domain, dir: &str) -> bool {
        let Self::Rules { default, rules } = self else { return false };
        // Each glob runs once over `dir` and once over `dir/`; the checks then only compare.
        let at: Vec<bool> = rules.iter().map(|rule| rule.globs.iter().any(|glob| glob.is_match(dir))).collect();
        let below: Vec<Below> = rules
            .iter()
            .map(|rule| rule.globs.iter().map(|glob| glob.below(dir)).max().unwrap_or(Below::None))
            .collect();
        Check::all_in(domain).any(|check| {
            let own = rules
                .iter()
                .zip(&at)
                .rev()
                .find(|(rule, matches)| **matches && rule.applies_to(check))
                .map_or(*default, |(rule, _)| rule.mode);
            let applying = || rules.iter().zip(&below).filter(|(rule, _)| rule.applies_to(check));
            let by_rule = applying().any(|(rule, below)| *below != Below::None && rule.mode != own);
            // Below `dir`, the default decides wherever no applying rule matches; that can only
            // be ruled out when one of them matches everything below.
            let by_default = *default != own && !applying().any(|(_, below)| *below == Below::All);
            by_rule || by_default
        })
    }
}

/// A validated policy with every glob compiled, ready for [`CompiledPolicy::evaluate`].
/// The default value denies everything, as does having no policy at all.
#[derive(Debug, Clone, Default)]
pub struct CompiledPolicy {
    fs: Option<CompiledScope>,
    network: Option<CompiledScope>,
    child_process: Option<CompiledScope>,
    process: Option<CompiledScope>,
    env: Option<CompiledScope>,
    tool: Option<CompiledScope>,
}

impl CompiledPolicy {
    /// Validates ([`PermissionsPolicy::validate`]) and compiles a policy.
    pub fn compile(policy: &PermissionsPolicy) -> Result<Self, PolicyError> {
        policy.validate()?;
        let scope = |domain| policy.domain(domain).map(CompiledScope::compile);
        Ok(Self {
            fs: scope(Domain::Fs),
            network: scope(Domain::Network),
            child_process: scope(Domain::ChildProcess),
            process: scope(Domain::Process),
            env: scope(Domain::Env),
            tool: scope(Domain::Tool),
        })
    }

    /// Compiles a configured policy; no policy at all (`None`) denies everything.
    pub fn compile_optional(policy: Option<&PermissionsPolicy>) -> Result<Self, PolicyError> {
        policy.map_or_else(|| Ok(Self::deny_all()), Self::compile)
    }

    pub fn deny_all() -> Self {
        Self::default()
    }

    pub fn allow_all() -> Self {
        let scope = || Some(CompiledScope::Mode(Mode::Allow));
        Self { fs: scope(), network: scope(), child_process: scope(), process: scope(), env: scope(), tool: scope() }
    }

    fn scope(&self, domain: Domain) -> Option<&CompiledScope> {
        match domain {
            Domain::Fs => self.fs.as_ref(),
            Domain::Network => self.network.as_ref(),
            Domain::ChildProcess => self.child_process.as_ref(),
            Domain::Process => self.process.as_ref(),
            Domain::Env => self.env.as_ref(),
            Domain::Tool => self.tool.as_ref(),
        }
    }

    /// The raw mode the policy gives `capability` on `resource` (a missing domain is `Deny`).
    pub fn evaluate(&self, capability: Capability, resource: &str) -> Mode {
        self.evaluate_check(Check::plain(capability), resource)
    }

    /// The raw mode the policy gives `check` on `resource`: rules naming its capability or its
    /// narrower one (or `"*"`) apply.
    pub fn evaluate_check(&self, check: Check, resource: &str) -> Mode {
        self.scope(check.capability().domain()).map_or(Mode::Deny, |scope| scope.evaluate(check, resource))
    }

    /// The decision for `capability` on `resource`. `Ask` stays `Ask` only when the caller
    /// implements prompts; otherwise it is a denial, as in the original.
    pub fn decide(&self, capability: Capability, resource: &str, prompts_enabled: bool) -> Decision {
        self.decide_check(Check::plain(capability), resource, prompts_enabled)
    }

    /// The decision for `check` on `resource`, named (in denial messages) after its capability.
    pub fn decide_check(&self, check: Check, resource: &str, prompts_enabled: bool) -> Decision {
        Decision::from_mode(self.evaluate_check(check, resource), check.capability(), prompts_enabled)
    }

    /// Whether some entry strictly below directory `dir` could be judged differently from `dir`
    /// itself. For some check of `domain` ([`Check::all_in`]), with the policy's mode for `dir`:
    ///
    /// - a rule that applies to the check (names its capability, its narrower one, or `"*"`)
    ///   has another mode and one of its globs [can match below](PermissionGlob::can_match_below)
    ///   `dir`; or
    /// - the rule set's default has another mode (the mode for `dir` came from a rule that
    ///   matches `dir` itself) and no applying rule [matches everything
    ///   below](PermissionGlob::matches_all_below) `dir`, so the default may decide there:
    ///   with `default: deny` and `allow /tmp/*`, `/tmp/a` is allowed but `/tmp/a/f` is not.
    ///
    /// The policy is asked only about the path an operation names, so an operation that moves
    /// or deletes a whole directory (a rename, a recursive removal) must not run when this is
    /// `true`: it would take entries past a rule written for them (with `deny /data/secret/**`,
    /// renaming `/data` would make `/moved/secret/f` readable). The answer is conservative, as a
    /// false `true` only refuses something harmless and a false `false` lets entries escape: a
    /// rule counts whenever it *could* match below, whether or not such an entry exists and
    /// whether or not a later rule overrides it there. A mode-only domain never differs.
    pub fn differs_below(&self, domain: Domain, dir: &str) -> bool {
        self.scope(domain).is_some_and(|scope| scope.differs_below(domain, dir))
    }
}

// ---------------------------------------------------------------------------------------------
// Conversions from the parsed CreateVm / ConfigureVm config
// ---------------------------------------------------------------------------------------------

impl From<config::PermissionMode> for Mode {
    fn from(mode: config::PermissionMode) -> Self {
        match mode {
            config::PermissionMode::Allow => Self::Allow,
            config::PermissionMode::Ask => Self::Ask,
            config::PermissionMode::Deny => Self::Deny,
        }
    }
}

impl From<&config::FsPermissionScope> for DomainPolicy {
    fn from(scope: &config::FsPermissionScope) -> Self {
        match scope {
            config::FsPermissionScope::Mode(mode) => Self::Mode((*mode).into()),
            config::FsPermissionScope::Rules(set) => {
                rule_set(set.default, set.rules.iter().map(|r| (r.mode, &r.operations, &r.paths)))
            }
        }
    }
}

impl From<&config::PatternPermissionScope> for DomainPolicy {
    fn from(scope: &config::PatternPermissionScope) -> Self {
        match scope {
            config::PatternPermissionScope::Mode(mode) => Self::Mode((*mode).into()),
            config::PatternPermissionScope::Rules(set) => {
                rule_set(set.default, set.rules.iter().map(|r| (r.mode, &r.operations, &r.patterns)))
            }
        }
    }
}

/// A configured rule set (fs rules name their globs `paths`, the others `patterns`) as engine
/// input.
fn rule_set<'a>(
    default: Option<config::PermissionMode>,
    rules: impl Iterator<Item = (config::PermissionMode, &'a Vec<String>, &'a Vec<String>)>,
) -> DomainPolicy {
    DomainPolicy::Rules(RuleSet {
        default: default.map(Mode::from),
        rules: rules
            .map(|(mode, operations, patterns)| Rule {
                mode: mode.into(),
                operations: operations.clone(),
                patterns: patterns.clone(),
            })
            .collect(),
    })
}

impl From<&config::PermissionsPolicy> for PermissionsPolicy {
    fn from(policy: &config::PermissionsPolicy) -> Self {
        Self {
            fs: policy.fs.as_ref().map(DomainPolicy::from),
            network: policy.network.as_ref().map(DomainPolicy::from),
            child_process: policy.child_process.as_ref().map(DomainPolicy::from),
            process: policy.process.as_ref().map(DomainPolicy::from),
            env: policy.env.as_ref().map(DomainPolicy::from),
            tool: policy.tool.as_ref().map(DomainPolicy::from),
        }
    }
}

impl CompiledPolicy {
    /// Compiles the configured policy; no `permissions` at all denies everything.
    pub fn from_config(policy: Option<&config::PermissionsPolicy>) -> Result<Self, PolicyError> {
        policy.map_or_else(|| Ok(Self::deny_all()), |policy| Self::compile(&PermissionsPolicy::from(policy)))
    }
}

impl TryFrom<&PermissionsPolicy> for CompiledPolicy {
    type Error = PolicyError;

    fn try_from(policy: &PermissionsPolicy) -> Result<Self, Self::Error> {
        Self::compile(policy)
    }
}

/// The outcome of a permission check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The policy says `ask` and the caller opted in to prompts.
    Ask,
    /// `message` is the errno reason: `blocked by {capability} policy` or
    /// `permission prompt required for {capability}`.
    Deny {
        message: String,
    },
}

impl Decision {
    pub fn from_mode(mode: Mode, capability: Capability, prompts_enabled: bool) -> Self {
        match mode {
            Mode::Allow => Self::Allow,
            Mode::Ask if prompts_enabled => Self::Ask,
            Mode::Ask => Self::Deny { message: format!("permission prompt required for {capability}") },
            Mode::Deny => Self::Deny { message: format!("blocked by {capability} policy") },
        }
    }

    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow)
    }

    /// The denial reason, if this is a denial.
    pub fn denial_message(&self) -> Option<&str> {
        match self {
            Self::Deny { message } => Some(message),
            _ => None,
        }
    }
}

/// The kernel's fs denial text: `EACCES: permission denied, {op} '{path}': {reason}`.
pub fn errno_message(op_label: &str, path: &str, reason: &str) -> String {
    format!("EACCES: permission denied, {op_label} '{path}': {reason}")
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Straightforward backtracking reference for the documented semantics.
    fn naive(pattern: &[u8], input: &[u8]) -> bool {
        match pattern.first() {
            None => input.is_empty(),
            Some(b'*') => {
                let run = pattern.iter().take_while(|&&c| c == b'*').count();
                let rest = &pattern[run..];
                for k in 0..=input.len() {
                    if k > 0 && run == 1 && input[k - 1] == b'/' {
                        break;
                    }
                    if naive(rest, &input[k..]) {
                        return true;
                    }
                }
                false
            }
            Some(b'?') => !input.is_empty() && input[0] != b'/' && naive(&pattern[1..], &input[1..]),
            Some(&c) => input.first() == Some(&c) && naive(&pattern[1..], &input[1..]),
        }
    }

    fn text(alphabet: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(alphabet), 0..max).prop_map(|parts| parts.concat())
    }

    const PATTERN_ALPHABET: &[&str] = &["a", "b", "/", "*", "*", "?", "[", "]", "{", "}", ".", "é", "\\", "!"];
    const INPUT_ALPHABET: &[&str] = &["a", "b", "/", "/", "[", "]", "{", "}", ".", "é", "*", "?", "\n"];

    /// A pattern built piece by piece together with an input that (nearly) fits it: each wildcard
    /// gets a random fill, which sometimes contains a `/` it must not match, and a few literals are
    /// left out of the input.
    fn pattern_and_near_match() -> impl Strategy<Value = (String, String)> {
        let piece = prop_oneof![
            3 => prop::sample::select(&["a", "b", "/", ".", "[", "]", "{", "}", "é", "\\", "!"][..])
                .prop_map(|c| (c.to_owned(), c.to_owned())),
            1 => prop::sample::select(&["a", "/", "."][..]).prop_map(|c| (c.to_owned(), String::new())),
            1 => prop::sample::select(INPUT_ALPHABET).prop_map(|c| ("?".to_owned(), c.to_owned())),
            2 => (prop::sample::select(&["*", "**", "***"][..]), text(INPUT_ALPHABET, 4))
                .prop_map(|(stars, fill)| (stars.to_owned(), fill)),
        ];
        prop::collection::vec(piece, 0..7).prop_map(|pieces| {
            pieces.into_iter().fold((String::new(), String::new()), |(mut p, mut i), (pp, ip)| {
                p.push_str(&pp);
                i.push_str(&ip);
                (p, i)
            })
        })
    }

    fn check_engines(pattern: &str, input: &str) -> Result<(), TestCaseError> {
        let expected = naive(pattern.as_bytes(), input.as_bytes());
        prop_assert_eq!(
            PermissionGlob::new(pattern).is_match(input),
            expected,
            "compiled {:?} vs {:?}",
            pattern,
            input
        );
        prop_assert_eq!(
            PermissionGlob::new_manual(pattern).is_match(input),
            expected,
            "manual {:?} vs {:?}",
            pattern,
            input
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn engines_agree_with_naive_on_random_text(pattern in text(PATTERN_ALPHABET, 10), input in text(INPUT_ALPHABET, 10)) {
            check_engines(&pattern, &input)?;
        }

        #[test]
        fn engines_agree_with_naive_on_near_matches((pattern, input) in pattern_and_near_match()) {
            check_engines(&pattern, &input)?;
        }
    }

    fn glob(pattern: &str) -> PermissionGlob {
        PermissionGlob::new(pattern)
    }

    #[test]
    fn documented_glob_cases() {
        let cases: &[(&str, &str, bool)] = &[
            ("/tmp/*", "/tmp/a", true),
            ("/tmp/*", "/tmp/a/b", false),
            ("/tmp/*", "/tmp", false),
            ("/tmp/*", "/tmp/", true),
            ("/tmp/**", "/tmp/a", true),
            ("/tmp/**", "/tmp/a/b", true),
            ("/tmp/**", "/tmp", false),
            ("/tmp/***", "/tmp/a/b", true),
            ("/tmp/?", "/tmp/a", true),
            ("/tmp/?", "/tmp/ab", false),
            ("/tmp?a", "/tmp/a", false),
            ("a?b**", "a/bc", false),
            ("a?b**", "a.b/c", true),
            ("??", "é", true),
            ("?", "é", false),
            ("/[ab]", "/a", false),
            ("/[ab]", "/[ab]", true),
            ("/{a,b}", "/a", false),
            ("/{a,b}", "/{a,b}", true),
            ("/a\\*", "/a\\bc", true),
            ("/a\\*", "/a*", false),
            ("**", "", true),
            ("**", "/any/thing", true),
            ("*", "a/b", false),
            ("**/a", "a", false),
            ("**/a", "/a", true),
            ("/a/**/b", "/a/b", false),
            ("/a/**/b", "/a//b", true),
            ("/a/**/b", "/a/x/y/b", true),
            ("a**b", "a/x/b", true),
            ("/x/*/**", "/x/y/z/w", true),
            ("/x/*/**", "/x/y", false),
            ("tcp://*:*", "tcp://localhost:80", true),
            ("tcp://*:*", "tcp://a/b:80", false),
            ("", "", true),
            ("", "a", false),
        ];
        for &(pattern, input, expected) in cases {
            assert_eq!(glob(pattern).is_match(input), expected, "{pattern:?} vs {input:?}");
            assert_eq!(
                PermissionGlob::new_manual(pattern).is_match(input),
                expected,
                "manual {pattern:?} vs {input:?}"
            );
            assert_eq!(naive(pattern.as_bytes(), input.as_bytes()), expected, "naive {pattern:?} vs {input:?}");
        }
    }

    #[test]
    fn engine_choice() {
        for pattern in ["/tmp/*", "/tmp/**", "**", "/a/**/b", "a**b", "/x/*/**", "/[x]/{y}", "?/**", ""] {
            assert!(glob(pattern).uses_globset(), "{pattern:?} should use globset");
        }
        for pattern in ["/a/**/*.txt", "**/*", "*/**/x", "/a/**/b/*"] {
            assert!(!glob(pattern).uses_globset(), "{pattern:?} should use the manual matcher");
        }
    }

    #[test]
    fn capability_names_round_trip() {
        for capability in Capability::ALL {
            assert_eq!(capability.as_str().parse::<Capability>(), Ok(capability));
            assert_eq!(format!("{}.{}", capability.domain(), capability.operation()), capability.as_str());
        }
        assert_eq!(Capability::FsCreateDir.operation(), "create_dir");
        assert_eq!(Capability::ChildProcessSpawn.operation(), "spawn");
        assert_eq!(Capability::ChildProcessSpawn.domain(), Domain::ChildProcess);
        assert_eq!("fs.nope".parse::<Capability>(), Err(UnknownCapability("fs.nope".into())));
        assert_eq!("read".parse::<Capability>(), Err(UnknownCapability("read".into())));
    }

    #[test]
    fn limits_are_enforced() {
        let rules = |patterns: Vec<String>| PermissionsPolicy {
            env: Some(DomainPolicy::Rules(RuleSet {
                default: None,
                rules: vec![Rule { mode: Mode::Allow, operations: vec!["*".into()], patterns }],
            })),
            ..PermissionsPolicy::default()
        };
        assert!(CompiledPolicy::compile(&rules(vec!["a".repeat(MAX_PATTERN_LEN)])).is_ok());
        assert_eq!(
            CompiledPolicy::compile(&rules(vec!["x".into(), "a".repeat(MAX_PATTERN_LEN + 1)])).unwrap_err(),
            PolicyError::PatternTooLong {
                domain: Domain::Env,
                rule: 0,
                field: RuleField::Patterns,
                index: 1,
                len: MAX_PATTERN_LEN + 1,
                max: MAX_PATTERN_LEN
            }
        );
        assert!(CompiledPolicy::compile(&rules(vec!["a".into(); MAX_PATTERNS])).is_ok());
        assert_eq!(
            CompiledPolicy::compile(&rules(vec!["a".into(); MAX_PATTERNS + 1])).unwrap_err(),
            PolicyError::TooManyPatterns { count: MAX_PATTERNS + 1, max: MAX_PATTERNS }
        );
    }
}
