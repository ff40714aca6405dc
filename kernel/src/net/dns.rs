//! A VM's name resolution beyond `dns.overrides`: a name is resolved by the host's resolver
//! through an effect (`Resolve`), the guest's `getaddrinfo` waiting meanwhile, and the answer
//! is cached for the VM so later lookups are answered at once (and a replay asks nothing).
//!
//! With `dns.nameServers`, the driver asks those servers and an answer is kept for its TTL
//! (within [`MIN_TTL_MS`]..[`MAX_TTL_MS`]); the host's resolver (`getaddrinfo`) does not
//! report TTLs, so its answers are kept for a fixed [`ANSWER_TTL_MS`]. Failures are kept for
//! [`FAILURE_TTL_MS`]; the cache holds at most [`MAX_CACHED_NAMES`], the earliest to expire
//! going first.

use core::net::IpAddr;
use std::collections::{BTreeMap, VecDeque};

use super::Resolution;
use crate::vfs::Errno;

/// How long an answer is reused: a minute, the TTL most public records carry or exceed, so a
/// guest's repeated lookups cost one resolution while a moved service is seen soon.
pub const ANSWER_TTL_MS: u64 = 60_000;
/// The shortest a name server's TTL is honoured for: a TTL of 0 would make every lookup a
/// resolution.
pub const MIN_TTL_MS: u64 = 1_000;
/// The longest: a record claiming days is re-asked within the hour.
pub const MAX_TTL_MS: u64 = 3_600_000;
pub use crate::policy::config::MAX_NAME_SERVERS;
/// How long "no such name" is reused: short, so a name that appears is found soon, yet a guest
/// retrying in a loop does not hammer the resolver.
pub const FAILURE_TTL_MS: u64 = 5_000;
/// Names cached per VM: far more than a guest's working set of hosts, each entry small.
pub const MAX_CACHED_NAMES: usize = 256;
/// Names being resolved for one VM at once: a guest asking for more gets `EAGAIN` and may
/// retry; this bounds the effects one VM keeps in flight.
pub const MAX_PENDING_RESOLUTIONS: usize = 16;
/// Addresses kept of one answer (a name with hundreds of records gains nothing from them all).
pub const MAX_ADDRESSES_PER_NAME: usize = 32;
/// Longest DNS name.
pub const MAX_NAME_BYTES: usize = 253;

/// A cached answer.
#[derive(Debug, Clone)]
struct Cached {
    answer: Result<Vec<IpAddr>, Errno>,
    expires_ms: u64,
}

/// One VM's resolutions: cached answers, and names being resolved.
#[derive(Debug, Default)]
pub(crate) struct Resolutions {
    /// `dns.nameServers` (none: the host's resolver).
    servers: Vec<core::net::SocketAddr>,
    cache: BTreeMap<String, Cached>,
    /// Name → the id guests wait on.
    pending: BTreeMap<String, u64>,
    /// Asked for and not yet handed to the dispatcher.
    queued: VecDeque<(u64, String)>,
    next_id: u64,
}

/// Whether `name` is a DNS name the host's resolver may be asked for: letters, digits, `-`,
/// `_` and dots, labels of 1–63 bytes, 253 bytes at most. Anything else (spaces, `%`, a
/// service name's `/`) never reaches the host.
pub fn is_valid_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        })
}

impl Resolutions {
    pub(crate) fn new(servers: Vec<core::net::SocketAddr>) -> Self {
        Self { servers, ..Self::default() }
    }

    pub(crate) fn servers(&self) -> &[core::net::SocketAddr] {
        &self.servers
    }

    /// The cached answer for `name` at `now_ms`, if one is still fresh.
    pub(crate) fn lookup(&self, name: &str, now_ms: u64) -> Option<Result<Vec<IpAddr>, Errno>> {
        let cached = self.cache.get(name)?;
        (cached.expires_ms > now_ms).then(|| cached.answer.clone())
    }

    /// Asks for `name` to be resolved (once, however many wait); the id to wait on.
    pub(crate) fn ask(&mut self, name: &str) -> Result<u64, Errno> {
        if let Some(id) = self.pending.get(name) {
            return Ok(*id);
        }
        if self.pending.len() >= MAX_PENDING_RESOLUTIONS {
            return Err(Errno::EAGAIN);
        }
        self.next_id += 1;
        self.pending.insert(name.to_owned(), self.next_id);
        self.queued.push_back((self.next_id, name.to_owned()));
        Ok(self.next_id)
    }

    /// Whether resolution `id` is still under way.
    pub(crate) fn is_pending(&self, id: u64) -> bool {
        self.pending.values().any(|pending| *pending == id)
    }

    /// Resolutions for the dispatcher to ask the driver for.
    pub(crate) fn take_queued(&mut self) -> Vec<(u64, String)> {
        self.queued.drain(..).collect()
    }

    pub(crate) fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// Resolution `name` ended with `answer` at `now_ms`: cached, and its waiters wake.
    pub(crate) fn resolved(&mut self, name: &str, answer: Result<Resolution, Errno>, now_ms: u64) {
        if self.pending.remove(name).is_none() {
            return;
        }
        let ttl_ms = match &answer {
            Ok(Resolution { addresses, ttl_s }) if !addresses.is_empty() => {
                ttl_s.map_or(ANSWER_TTL_MS, |ttl_s| (u64::from(ttl_s) * 1000).clamp(MIN_TTL_MS, MAX_TTL_MS))
            }
            _ => FAILURE_TTL_MS,
        };
        let answer = answer.map(|Resolution { mut addresses, .. }| {
            addresses.truncate(MAX_ADDRESSES_PER_NAME);
            addresses
        });
        if self.cache.len() >= MAX_CACHED_NAMES && !self.cache.contains_key(name) {
            let oldest = self.cache.iter().min_by_key(|(_, cached)| cached.expires_ms).map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                self.cache.remove(&oldest);
            }
        }
        self.cache.insert(name.to_owned(), Cached { answer, expires_ms: now_ms.saturating_add(ttl_ms) });
        assert!(self.cache.len() <= MAX_CACHED_NAMES);
    }

    #[cfg(test)]
    pub(crate) fn cached(&self) -> usize {
        self.cache.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_the_host_sees_them() {
        for good in ["example.com", "a.b-c.d_e", "localhost.", "x"] {
            assert!(is_valid_name(good), "{good}");
        }
        let long_label = "a".repeat(64);
        let long_name = ["a"; 127].join(".") + ".bb";
        for bad in ["", ".", "a..b", "a b", "a/b", "a%b", "é.com", long_label.as_str(), long_name.as_str()] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn one_resolution_per_name_answers_are_cached_then_expire_and_the_cache_is_bounded() {
        let mut dns = Resolutions::default();
        let id = dns.ask("example.com").unwrap_or(0);
        assert_eq!(dns.ask("example.com"), Ok(id), "one resolution however many wait");
        assert_eq!(dns.take_queued(), vec![(id, "example.com".to_owned())]);
        assert!(dns.is_pending(id));
        let address: IpAddr = [93, 184, 216, 34].into();
        dns.resolved("example.com", Ok(Resolution { addresses: vec![address], ttl_s: None }), 1_000);
        assert!(!dns.is_pending(id));
        assert_eq!(dns.lookup("example.com", 1_000 + ANSWER_TTL_MS - 1), Some(Ok(vec![address])));
        assert_eq!(dns.lookup("example.com", 1_000 + ANSWER_TTL_MS), None, "expired");
        // A name server's TTL is honoured, within bounds.
        for (ttl_s, kept_ms) in [(300, 300_000), (0, MIN_TTL_MS), (86_400, MAX_TTL_MS)] {
            let _ = dns.ask("ttl.test");
            dns.resolved("ttl.test", Ok(Resolution { addresses: vec![address], ttl_s: Some(ttl_s) }), 0);
            assert!(dns.lookup("ttl.test", kept_ms - 1).is_some() && dns.lookup("ttl.test", kept_ms).is_none());
        }
        dns.resolved("nowhere.test", Err(Errno::ENOENT), 0);
        assert_eq!(dns.lookup("nowhere.test", 0), None, "an answer nobody asked for is dropped");
        for index in 0..MAX_PENDING_RESOLUTIONS {
            assert!(dns.ask(&format!("n{index}.test")).is_ok());
        }
        assert_eq!(dns.ask("one-more.test"), Err(Errno::EAGAIN));
        for index in 0..MAX_PENDING_RESOLUTIONS {
            dns.resolved(&format!("n{index}.test"), Err(Errno::ENOENT), 0);
        }
        for index in 0..MAX_CACHED_NAMES + 10 {
            let name = format!("c{index}.test");
            let _ = dns.ask(&name);
            dns.resolved(&name, Err(Errno::ENOENT), u64::try_from(index).unwrap_or(0));
            let _ = dns.take_queued();
        }
        assert_eq!(dns.cached(), MAX_CACHED_NAMES);
    }
}
