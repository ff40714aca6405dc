//! POSIX signals: Linux numbering, names as `KillProcess` accepts them, and default actions.

/// What a signal does to a process that has not changed its disposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    Terminate,
    Ignore,
    Stop,
    Continue,
}

/// `(number, name without SIG, default action)`, Linux x86-64/generic numbering.
const SIGNALS: [(u32, &str, DefaultAction); 31] = [
    (1, "HUP", DefaultAction::Terminate),
    (2, "INT", DefaultAction::Terminate),
    (3, "QUIT", DefaultAction::Terminate),
    (4, "ILL", DefaultAction::Terminate),
    (5, "TRAP", DefaultAction::Terminate),
    (6, "ABRT", DefaultAction::Terminate),
    (7, "BUS", DefaultAction::Terminate),
    (8, "FPE", DefaultAction::Terminate),
    (9, "KILL", DefaultAction::Terminate),
    (10, "USR1", DefaultAction::Terminate),
    (11, "SEGV", DefaultAction::Terminate),
    (12, "USR2", DefaultAction::Terminate),
    (13, "PIPE", DefaultAction::Terminate),
    (14, "ALRM", DefaultAction::Terminate),
    (15, "TERM", DefaultAction::Terminate),
    (16, "STKFLT", DefaultAction::Terminate),
    (17, "CHLD", DefaultAction::Ignore),
    (18, "CONT", DefaultAction::Continue),
    (19, "STOP", DefaultAction::Stop),
    (20, "TSTP", DefaultAction::Stop),
    (21, "TTIN", DefaultAction::Stop),
    (22, "TTOU", DefaultAction::Stop),
    (23, "URG", DefaultAction::Ignore),
    (24, "XCPU", DefaultAction::Terminate),
    (25, "XFSZ", DefaultAction::Terminate),
    (26, "VTALRM", DefaultAction::Terminate),
    (27, "PROF", DefaultAction::Terminate),
    (28, "WINCH", DefaultAction::Ignore),
    (29, "IO", DefaultAction::Terminate),
    (30, "PWR", DefaultAction::Terminate),
    (31, "SYS", DefaultAction::Terminate),
];

pub const SIGKILL: u32 = 9;
pub const SIGPIPE: u32 = 13;
pub const SIGTERM: u32 = 15;
pub const SIGCONT: u32 = 18;
pub const SIGSTOP: u32 = 19;

/// The highest signal number a signal set holds (Linux's `_NSIG - 1`: 31 standard and 33
/// real-time signals).
pub const MAX_SIGNAL: u32 = 64;

/// Signals no mask can block: `SIGKILL` and `SIGSTOP`. Masks that name them silently lose them.
pub const UNBLOCKABLE: u64 = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1));

/// The bit of `signal` in a signal set (`sigset_t`: bit `signal - 1`); 0 for signal 0 and for
/// numbers past [`MAX_SIGNAL`].
pub fn bit(signal: u32) -> u64 {
    match signal {
        1..=MAX_SIGNAL => 1u64 << (signal - 1),
        _ => 0,
    }
}

/// The signals of a set, lowest first.
pub fn members(set: u64) -> impl Iterator<Item = u32> {
    (1..=MAX_SIGNAL).filter(move |signal| set & bit(*signal) != 0)
}

/// The null signal: delivered to nobody, it only checks that the process exists.
pub const NULL_SIGNAL: u32 = 0;

/// A signal by name (`SIGTERM`, `TERM`, `SIGIOT`, any case) or number (`0`–`31`); `None` if
/// unknown.
pub fn parse(name: &str) -> Option<u32> {
    let trimmed = name.trim();
    if let Ok(number) = trimmed.parse::<u32>() {
        if number == NULL_SIGNAL {
            return Some(NULL_SIGNAL);
        }
        return SIGNALS.iter().find(|(n, _, _)| *n == number).map(|(n, _, _)| *n);
    }
    let upper = trimmed.to_ascii_uppercase();
    match upper.strip_prefix("SIG").unwrap_or(&upper) {
        "IOT" => return Some(6),
        "POLL" => return Some(29),
        _ => {}
    }
    let upper = trimmed.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS.iter().find(|(_, signal, _)| *signal == bare).map(|(n, _, _)| *n)
}

/// The default action of signal `number` (known numbers only).
pub fn default_action(number: u32) -> Option<DefaultAction> {
    SIGNALS.iter().find(|(n, _, _)| *n == number).map(|(_, _, action)| *action)
}

/// The exit status a shell reports for a process killed by `signal`: 128 + its number.
pub fn exit_code(signal: u32) -> i32 {
    128i32.saturating_add(i32::try_from(signal).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("SIGTERM"), Some(15));
        assert_eq!(parse("term"), Some(15));
        assert_eq!(parse("9"), Some(9));
        assert_eq!(parse("SIGKILL"), Some(SIGKILL));
        assert_eq!(parse("SIGNOPE"), None);
        assert_eq!(parse("0"), Some(NULL_SIGNAL));
        assert_eq!(default_action(NULL_SIGNAL), None);
        assert_eq!(parse("SIGIOT"), Some(6));
        assert_eq!(parse("poll"), Some(29));
        assert_eq!(parse("64"), None);
        assert_eq!(default_action(SIGSTOP), Some(DefaultAction::Stop));
        assert_eq!(default_action(17), Some(DefaultAction::Ignore));
        assert_eq!(exit_code(SIGKILL), 137);
    }

    #[test]
    fn signal_sets() {
        assert_eq!(bit(1), 1);
        assert_eq!(bit(SIGTERM), 1 << 14);
        assert_eq!(bit(64), 1 << 63);
        assert_eq!((bit(0), bit(65)), (0, 0));
        assert_eq!(UNBLOCKABLE, (1 << 8) | (1 << 18));
        assert_eq!(members(bit(2) | bit(33) | bit(64)).collect::<Vec<_>>(), [2, 33, 64]);
    }
}
