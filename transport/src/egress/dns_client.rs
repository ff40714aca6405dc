//! Blocking DNS stub client for the driver's resolver thread.
//!
//! `getaddrinfo` hides the record TTL, which we need to know how long a resolved address may be
//! trusted, so this speaks just enough DNS over UDP to ask operator-configured recursive servers
//! for A and AAAA records. It deliberately has no cache, no search domains and no TCP fallback:
//! the caller owns caching and the servers are recursive resolvers that answer small queries.

use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, ErrorKind};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use simple_dns::rdata::{RData, OPT};
use simple_dns::{header_buffer, Label, Name, Packet, PacketFlag, Question, CLASS, OPCODE, QCLASS, QTYPE, TYPE};

/// Advertised in EDNS0: the DNS flag day 2020 value, small enough to avoid IP fragmentation.
const EDNS_PAYLOAD: u16 = 1232;
/// Larger than what we advertise so a server that ignores EDNS still decodes instead of being cut.
const RECV_BUFFER: usize = 4096;
const MAX_CNAME_HOPS: usize = 8;
const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
/// RFC 2181 §8: a TTL with the top bit set is treated as zero, so a hostile or broken server
/// cannot pin an address for ~136 years.
const MAX_TTL: u32 = 0x7fff_ffff;
const HEADER_LEN: usize = 12;
/// Smallest possible wire sizes (root name, then the fixed fields) of a question and of a
/// resource record. Used to reject header counts the datagram cannot hold before the parser
/// reserves room for them.
const MIN_QUESTION_LEN: usize = 1 + 4;
const MIN_RECORD_LEN: usize = 1 + 10;
/// The reserved Z bit of the header's second flags byte.
const Z_BIT: u8 = 0x40;
const A_TYPE: u16 = 1;
const AAAA_TYPE: u16 = 28;
const CNAME_TYPE: u16 = 5;
const OPT_TYPE: u16 = 41;
const RCODE_NOERROR: u16 = 0;
const RCODE_NXDOMAIN: u16 = 3;

fn sane_ttl(ttl: u32) -> u32 {
    if ttl > MAX_TTL {
        0
    } else {
        ttl
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub addresses: Vec<IpAddr>,
    pub ttl_s: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("no such name")]
    NoSuchName,
    #[error("name has no addresses")]
    NoAddresses,
    #[error("server failure: {0}")]
    ServerFailure(String),
    #[error("timed out")]
    Timeout,
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("bad name: {0}")]
    BadName(String),
}

impl DnsError {
    /// The errno the sandboxed program sees, mirroring what a libc resolver failure maps to.
    #[must_use]
    pub fn errno_name(&self) -> &'static str {
        match self {
            DnsError::NoSuchName | DnsError::NoAddresses | DnsError::BadName(_) => "ENOENT",
            DnsError::Timeout => "ETIMEDOUT",
            DnsError::ServerFailure(_) | DnsError::Malformed(_) | DnsError::Io(_) => "EIO",
        }
    }
}

/// Checks the name against hostname syntax (plus '_' for service-style labels) and builds the
/// absolute wire name. One trailing dot is accepted because users write FQDNs that way; names are
/// always treated as absolute since a stub client has no search list.
fn parse_name(name: &str) -> Result<Name<'_>, DnsError> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Err(DnsError::BadName("empty name".into()));
    }
    if bare.len() > MAX_NAME_LEN {
        return Err(DnsError::BadName(format!("name longer than {MAX_NAME_LEN} bytes")));
    }
    for label in bare.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(DnsError::BadName(format!("label length must be 1..={MAX_LABEL_LEN}")));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(DnsError::BadName("only letters, digits, '-', '_' and '.' are allowed".into()));
        }
    }
    // Raw labels, not `Name::new`: its text path interprets `\` escapes, which we have already ruled out.
    let labels: Vec<Label<'_>> = bare.split('.').map(|label| Label::new_unchecked(label.as_bytes())).collect();
    Ok(Name::new_with_labels(&labels))
}

fn record_type(ipv6: bool) -> TYPE {
    if ipv6 {
        TYPE::AAAA
    } else {
        TYPE::A
    }
}

/// EDNS0 version 0, DO bit clear, no options. The version must stay 0 and the OPT record must
/// not carry an extended RCODE: simple-dns 0.13 writes both into the wrong TTL bytes.
fn edns() -> OPT<'static> {
    OPT { opt_codes: Vec::new(), udp_packet_size: EDNS_PAYLOAD, version: 0 }
}

/// The wording hickory-proto used, so `ServerFailure` texts stay as they were.
fn rcode_name(rcode: u16) -> &'static str {
    match rcode {
        0 => "No Error",
        1 => "Form Error",
        2 => "Server Failure",
        3 => "Non-Existent Domain",
        4 => "Not Implemented",
        5 => "Query Refused",
        6 => "Name should not exist",
        7 => "RR Set should not exist",
        8 => "RR Set does not exist",
        9 => "Not authorized",
        10 => "Name not in zone",
        // 16 is also TSIG's BADSIG, but that only appears inside TSIG records, never as a message RCODE.
        16 => "Bad option versions",
        17 => "Key not recognized",
        18 => "Signature out of time window",
        19 => "Bad TKEY mode",
        20 => "Duplicate key name",
        21 => "Algorithm not supported",
        22 => "Bad truncation",
        23 => "Bad server cookie",
        _ => "Unknown response code",
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    bytes.get(at..)?.first_chunk().map(|b| u16::from_be_bytes(*b))
}

/// Offset just past the name starting at `at`: labels up to the root label or a compression pointer.
fn skip_name(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        match *bytes.get(at)? {
            0 => return Some(at + 1),
            len if len & 0xc0 == 0xc0 => return Some(at + 2),
            len => at += 1 + usize::from(len),
        }
    }
}

/// A second pass over the record framing for what simple-dns 0.13 gets wrong or lets through; it
/// only skips names and reads the fixed record fields. Returns the upper 8 bits of the 12-bit
/// RCODE, which RFC 6891 puts in the top byte of the OPT record's TTL: simple-dns reads them from
/// the bottom byte (Z flags) instead. Several OPT records, or one outside the additional section,
/// make that ambiguous and are rejected (RFC 6891 §6.1.1). The records we take data from (A, AAAA,
/// CNAME) must be exactly as long as that data: simple-dns would read the start of a longer one and
/// silently skip an empty one.
fn scan_records(bytes: &[u8]) -> Result<u8, DnsError> {
    let framing = || DnsError::Malformed("bad record framing".into());
    let count = |at| u16_at(bytes, at).map(usize::from).ok_or_else(framing);
    let (questions, answers, authorities, additionals) = (count(4)?, count(6)?, count(8)?, count(10)?);
    let mut at = HEADER_LEN;
    for _ in 0..questions {
        at = skip_name(bytes, at).ok_or_else(framing)? + 4;
    }
    let mut rcode_high = None;
    for index in 0..answers + authorities + additionals {
        at = skip_name(bytes, at).ok_or_else(framing)?;
        let rtype = u16_at(bytes, at).ok_or_else(framing)?;
        let rdlen = u16_at(bytes, at + 8).ok_or_else(framing)?;
        let rdata_end = at + 10 + usize::from(rdlen);
        let data_end = match rtype {
            A_TYPE => Some(at + 10 + 4),
            AAAA_TYPE => Some(at + 10 + 16),
            CNAME_TYPE => skip_name(bytes, at + 10),
            _ => Some(rdata_end),
        };
        if data_end != Some(rdata_end) {
            return Err(DnsError::Malformed("record data length does not match its type".into()));
        }
        if rtype == OPT_TYPE {
            if index < answers + authorities {
                return Err(DnsError::Malformed("OPT record outside the additional section".into()));
            }
            if rcode_high.is_some() {
                return Err(DnsError::Malformed("more than one OPT record".into()));
            }
            rcode_high = Some(*bytes.get(at + 4).ok_or_else(framing)?);
        }
        at = rdata_end;
    }
    Ok(rcode_high.unwrap_or(0))
}

/// Builds an RD=1 query for A (or AAAA) with an EDNS0 OPT record so servers may answer above 512 bytes.
pub fn encode_query(id: u16, name: &str, ipv6: bool) -> Result<Vec<u8>, DnsError> {
    let qname = parse_name(name)?;
    let mut packet = Packet::new_query(id);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    packet.questions.push(Question::new(qname, record_type(ipv6).into(), CLASS::IN.into(), false));
    *packet.opt_mut() = Some(edns());
    packet.build_bytes_vec().map_err(|e| DnsError::Malformed(format!("encoding query: {e}")))
}

/// Validates a reply against the query it answers and extracts the addresses of `name`, following
/// CNAMEs in the answer section. Every byte is untrusted: errors, never panics.
pub fn parse_response(bytes: &[u8], id: u16, name: &str, ipv6: bool) -> Result<Answer, DnsError> {
    let qname = parse_name(name)?;
    let qtype = record_type(ipv6);

    // Header first: a truncated message usually ends mid-record, and we want to report the
    // truncation rather than whatever decode error the cut produces.
    let short = |_| DnsError::Malformed("short header".into());
    if header_buffer::id(bytes).map_err(short)? != id {
        return Err(DnsError::Malformed("id mismatch".into()));
    }
    if !header_buffer::has_flags(bytes, PacketFlag::RESPONSE).map_err(short)? {
        return Err(DnsError::Malformed("not a response".into()));
    }
    if header_buffer::opcode(bytes).map_err(short)? != OPCODE::StandardQuery {
        return Err(DnsError::Malformed("unexpected opcode".into()));
    }
    if header_buffer::has_flags(bytes, PacketFlag::TRUNCATION).map_err(short)? {
        return Err(DnsError::Malformed("truncated".into()));
    }
    // The parser reserves room for every counted entry up front; a forged count of 65535 must
    // not cost megabytes when the datagram cannot hold that many entries anyway.
    let count = |at| usize::from(u16_at(bytes, at).unwrap_or(0));
    let records = count(6) + count(8) + count(10);
    if HEADER_LEN + count(4) * MIN_QUESTION_LEN + records * MIN_RECORD_LEN > bytes.len() {
        return Err(DnsError::Malformed("section counts exceed the message size".into()));
    }
    // simple-dns refuses a set Z bit; RFC 1035 only says to send it as zero, so ignore it like
    // other resolvers do rather than dropping the answer.
    let wire: Cow<'_, [u8]> = match bytes.get(3) {
        Some(flags) if flags & Z_BIT != 0 => {
            let mut copy = bytes.to_vec();
            if let Some(flags) = copy.get_mut(3) {
                *flags &= !Z_BIT;
            }
            Cow::Owned(copy)
        }
        _ => Cow::Borrowed(bytes),
    };

    let message = Packet::parse(&wire).map_err(|e| DnsError::Malformed(e.to_string()))?;
    let rcode_low = bytes.get(3).map_or(0, |flags| flags & 0x0f);
    let rcode = (u16::from(scan_records(bytes)?) << 4) | u16::from(rcode_low);

    // Servers may answer REFUSED/FORMERR/SERVFAIL without echoing the question; the id already
    // ties the reply to our query, so report the failure instead of calling it malformed.
    if message.questions.is_empty() && !matches!(rcode, RCODE_NOERROR | RCODE_NXDOMAIN) {
        return Err(DnsError::ServerFailure(rcode_name(rcode).into()));
    }
    // simple-dns strips the mDNS unicast-response / cache-flush bit from the class; in unicast DNS
    // a class with that bit set is not IN.
    match message.questions.as_slice() {
        [q] if q.qname == qname
            && q.qtype == QTYPE::TYPE(qtype)
            && q.qclass == QCLASS::CLASS(CLASS::IN)
            && !q.unicast_response => {}
        _ => return Err(DnsError::Malformed("question does not match the query".into())),
    }
    match rcode {
        RCODE_NOERROR => {}
        RCODE_NXDOMAIN => return Err(DnsError::NoSuchName),
        other => return Err(DnsError::ServerFailure(rcode_name(other).into())),
    }

    let is_in = |class: CLASS, cache_flush: bool| class == CLASS::IN && !cache_flush;
    let mut current: &Name<'_> = &qname;
    let mut ttl = u32::MAX;
    let mut hops = 0;
    loop {
        let mut addresses = Vec::new();
        let mut address_ttl = u32::MAX;
        for record in message.answers.iter().filter(|r| is_in(r.class, r.cache_flush) && r.name == *current) {
            let ip = match (&record.rdata, ipv6) {
                (RData::A(a), false) => IpAddr::V4(Ipv4Addr::from(a.address)),
                (RData::AAAA(aaaa), true) => IpAddr::V6(Ipv6Addr::from(aaaa.address)),
                _ => continue,
            };
            address_ttl = address_ttl.min(sane_ttl(record.ttl));
            if !addresses.contains(&ip) {
                addresses.push(ip);
            }
        }
        if !addresses.is_empty() {
            return Ok(Answer { addresses, ttl_s: ttl.min(address_ttl) });
        }
        let next = message.answers.iter().find_map(|r| match &r.rdata {
            RData::CNAME(target) if is_in(r.class, r.cache_flush) && r.name == *current => {
                Some((&target.0, sane_ttl(r.ttl)))
            }
            _ => None,
        });
        let Some((target, cname_ttl)) = next else {
            return Err(DnsError::NoAddresses);
        };
        hops += 1;
        // Also stops CNAME loops, which would otherwise cycle forever.
        if hops > MAX_CNAME_HOPS {
            return Err(DnsError::Malformed("CNAME chain too long".into()));
        }
        ttl = ttl.min(cname_ttl);
        current = target;
    }
}

/// Query ids are the only defence against off-path spoofing besides the source port, so they
/// must be unpredictable. std's `RandomState` is keyed from OS randomness once per thread and
/// re-keyed per instance; hashing a counter and the clock through it gives unpredictable ids
/// without a `rand`/`getrandom` dependency.
fn query_ids() -> (u16, u16) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    let [a0, a1, b0, b1, ..] = hasher.finish().to_le_bytes();
    let id_a = u16::from_le_bytes([a0, a1]);
    let mut id_aaaa = u16::from_le_bytes([b0, b1]);
    if id_aaaa == id_a {
        id_aaaa = id_a.wrapping_add(1);
    }
    (id_a, id_aaaa)
}

/// What one server said within one timeout window; `None` means no answer arrived.
type Exchange = (Option<Result<Answer, DnsError>>, Option<Result<Answer, DnsError>>);

fn exchange(name: &str, server: SocketAddr, timeout: Duration) -> Result<Exchange, DnsError> {
    let deadline = Instant::now() + timeout;
    let (id_a, id_aaaa) = query_ids();
    let query_a = encode_query(id_a, name, false)?;
    let query_aaaa = encode_query(id_aaaa, name, true)?;

    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    // A fresh socket per exchange gets a fresh random source port, and connecting it makes the
    // kernel drop datagrams from anyone but the server.
    let socket = UdpSocket::bind(local)?;
    socket.connect(server)?;
    socket.send(&query_a)?;
    socket.send(&query_aaaa)?;

    let mut result_a = None;
    let mut result_aaaa = None;
    let mut buf = vec![0u8; RECV_BUFFER];
    while result_a.is_none() || result_aaaa.is_none() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        socket.set_read_timeout(Some(remaining))?;
        let len = match socket.recv(&mut buf) {
            Ok(len) => len,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let datagram = buf.get(..len).unwrap_or_default();
        let (Some(&hi), Some(&lo)) = (datagram.first(), datagram.get(1)) else {
            continue;
        };
        // Stale replies to an earlier exchange or spoofing attempts carry other ids; they must
        // neither end the wait nor count as the server's answer.
        match u16::from_be_bytes([hi, lo]) {
            id if id == id_a && result_a.is_none() => result_a = Some(parse_response(datagram, id_a, name, false)),
            id if id == id_aaaa && result_aaaa.is_none() => {
                result_aaaa = Some(parse_response(datagram, id_aaaa, name, true));
            }
            _ => {}
        }
    }
    Ok((result_a, result_aaaa))
}

/// `Ok(Ok(_))`/`Ok(Err(_))` is a final outcome; `Err(_)` means this server gave no usable answer
/// and the next one should be asked.
fn settle(exchange: Exchange) -> Result<Result<Answer, DnsError>, DnsError> {
    match exchange {
        (Some(Ok(a)), Some(Ok(aaaa))) => Ok(Ok(Answer {
            ttl_s: a.ttl_s.min(aaaa.ttl_s),
            addresses: a.addresses.into_iter().chain(aaaa.addresses).collect(),
        })),
        // A partial answer beats asking another server: the caller can connect with it, and the
        // family that failed is most often just unconfigured upstream.
        (Some(Ok(answer)), _) | (_, Some(Ok(answer))) => Ok(Ok(answer)),
        (Some(Err(DnsError::NoSuchName)), Some(Err(DnsError::NoSuchName))) => Ok(Err(DnsError::NoSuchName)),
        (
            Some(Err(DnsError::NoSuchName | DnsError::NoAddresses)),
            Some(Err(DnsError::NoSuchName | DnsError::NoAddresses)),
        ) => Ok(Err(DnsError::NoAddresses)),
        // NXDOMAIN denies every type at the name (RFC 8020), so one suffices when the other is lost.
        (Some(Err(DnsError::NoSuchName)), _) | (_, Some(Err(DnsError::NoSuchName))) => Ok(Err(DnsError::NoSuchName)),
        (Some(Err(e)), other) | (other, Some(Err(e))) => Err(match (e, other) {
            // Prefer a real failure over "no addresses" for one family when the other is unknown.
            (DnsError::NoAddresses, Some(Err(other_err))) => other_err,
            (e, _) => e,
        }),
        (None, None) => Err(DnsError::Timeout),
    }
}

/// Asks each server in turn, `attempts` rounds, sending A and AAAA queries in parallel on one
/// socket. A definitive answer (addresses, NXDOMAIN, or no addresses for both families) ends the
/// search; timeouts, server failures and garbage move on to the next server. Worst case it takes
/// about `attempts * servers.len() * timeout`.
pub fn resolve(name: &str, servers: &[SocketAddr], timeout: Duration, attempts: u32) -> Result<Answer, DnsError> {
    parse_name(name)?;
    if servers.is_empty() || attempts == 0 {
        return Err(DnsError::Io(io::Error::new(ErrorKind::InvalidInput, "no name servers or no attempts")));
    }
    let mut last_err = DnsError::Timeout;
    for _ in 0..attempts {
        for &server in servers {
            match exchange(name, server, timeout).and_then(settle) {
                Ok(outcome) => return outcome,
                // A timeout says less than an earlier server's explicit failure, so keep the latter.
                Err(DnsError::Timeout) if !matches!(last_err, DnsError::Timeout) => {}
                Err(e) => last_err = e,
            }
        }
    }
    Err(last_err)
}

/// A tiny authoritative-looking responder so tests (here and in the driver's integration tests)
/// can run a real UDP server on loopback without any outside DNS.
pub mod fake {
    use super::{edns, parse_name};
    use simple_dns::rdata::{RData, A, AAAA, CNAME};
    use simple_dns::{Name, Packet, PacketFlag, ResourceRecord, CLASS, OPCODE, QTYPE, RCODE, TYPE};
    use std::net::IpAddr;

    /// `answer_query` has no per-CNAME TTL input; tests rely on this being lower than the TTLs
    /// they put in the table to observe that CNAME TTLs are counted.
    pub const CNAME_TTL: u32 = 60;

    /// Builds the response to `query`, or `None` if it is not a single-question standard query.
    /// Names missing from both tables get NXDOMAIN; names present with no address of the asked
    /// family get an empty NOERROR answer.
    #[must_use]
    pub fn answer_query(query: &[u8], table: &[(&str, &[IpAddr], u32)], cname: &[(&str, &str)]) -> Option<Vec<u8>> {
        let request = Packet::parse(query).ok()?;
        if request.has_flags(PacketFlag::RESPONSE) || request.opcode() != OPCODE::StandardQuery {
            return None;
        }
        let [question] = request.questions.as_slice() else {
            return None;
        };
        let mut response = Packet::new_reply(request.id());
        if request.has_flags(PacketFlag::RECURSION_DESIRED) {
            response.set_flags(PacketFlag::RECURSION_DESIRED);
        }
        response.set_flags(PacketFlag::RECURSION_AVAILABLE);
        response.questions.push(question.clone());
        if request.opt().is_some() {
            *response.opt_mut() = Some(edns());
        }

        let lookup = |name: &Name<'_>| -> Option<Name<'_>> {
            cname
                .iter()
                .find(|(from, _)| parse_name(from).is_ok_and(|n| n == *name))
                .and_then(|(_, to)| parse_name(to).ok())
        };
        let mut current = question.qname.clone();
        // Bounded so a looping table still produces a (long) answer instead of hanging the test.
        for _ in 0..16 {
            let Some(target) = lookup(&current) else { break };
            let rdata = RData::CNAME(CNAME(target.clone()));
            response.answers.push(ResourceRecord::new(current.clone(), CLASS::IN, CNAME_TTL, rdata));
            current = target;
        }
        match table.iter().find(|(n, _, _)| parse_name(n).is_ok_and(|n| n == current)) {
            Some((_, addresses, ttl)) => {
                for ip in *addresses {
                    let data = match (ip, question.qtype) {
                        (IpAddr::V4(v4), QTYPE::TYPE(TYPE::A)) => RData::A(A::from(*v4)),
                        (IpAddr::V6(v6), QTYPE::TYPE(TYPE::AAAA)) => RData::AAAA(AAAA::from(*v6)),
                        _ => continue,
                    };
                    response.answers.push(ResourceRecord::new(current.clone(), CLASS::IN, *ttl, data));
                }
            }
            None => *response.rcode_mut() = RCODE::NameError,
        }
        response.build_bytes_vec_compressed().ok()
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]
mod tests {
    use super::*;
    use simple_dns::rdata::{A, CNAME};
    use simple_dns::{ResourceRecord, RCODE};
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::Arc;
    use std::thread::JoinHandle;

    /// A loopback UDP server that stops when dropped (or after a hard cap, so a failed test can
    /// never leave it running).
    struct TestServer {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
        received: Arc<AtomicUsize>,
        handle: Option<JoinHandle<()>>,
    }

    impl TestServer {
        /// `reply` returns the datagrams to send back for each query received.
        fn start(reply: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> Self {
            Self::start_on("127.0.0.1:0", reply).unwrap()
        }

        fn start_on(bind: &str, reply: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> io::Result<Self> {
            let socket = UdpSocket::bind(bind)?;
            let addr = socket.local_addr()?;
            socket.set_read_timeout(Some(Duration::from_millis(20)))?;
            let stop = Arc::new(AtomicBool::new(false));
            let received = Arc::new(AtomicUsize::new(0));
            let (stop2, received2) = (stop.clone(), received.clone());
            let handle = std::thread::spawn(move || {
                let hard_stop = Instant::now() + Duration::from_secs(5);
                let mut buf = [0u8; 2048];
                while !stop2.load(Ordering::SeqCst) && Instant::now() < hard_stop {
                    let Ok((len, peer)) = socket.recv_from(&mut buf) else { continue };
                    received2.fetch_add(1, Ordering::SeqCst);
                    for datagram in reply(&buf[..len]) {
                        let _ = socket.send_to(&datagram, peer);
                    }
                }
            });
            Ok(Self { addr, stop, received, handle: Some(handle) })
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
    }

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const T: Duration = Duration::from_millis(500);

    fn table_server() -> TestServer {
        TestServer::start(|q| {
            let a: &[IpAddr] = &[v4("192.0.2.1"), v4("192.0.2.2"), v4("2001:db8::1")];
            let b: &[IpAddr] = &[v4("192.0.2.9")];
            let table = [("host.test", a, 300), ("target.test", b, 600)];
            let cname = [("alias.test", "mid.test"), ("mid.test", "target.test")];
            fake::answer_query(q, &table, &cname).into_iter().collect()
        })
    }

    #[test]
    fn errno_names() {
        assert_eq!(DnsError::NoSuchName.errno_name(), "ENOENT");
        assert_eq!(DnsError::NoAddresses.errno_name(), "ENOENT");
        assert_eq!(DnsError::BadName(String::new()).errno_name(), "ENOENT");
        assert_eq!(DnsError::Timeout.errno_name(), "ETIMEDOUT");
        assert_eq!(DnsError::ServerFailure(String::new()).errno_name(), "EIO");
        assert_eq!(DnsError::Malformed(String::new()).errno_name(), "EIO");
        assert_eq!(DnsError::Io(io::Error::other("x")).errno_name(), "EIO");
    }

    #[test]
    fn query_wire_format() {
        let q = encode_query(0x1234, "Example.com", true).unwrap();
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert_eq!(q[2] & 0x81, 0x01, "QR clear, RD set");
        assert_eq!(&q[4..12], &[0, 1, 0, 0, 0, 0, 0, 1], "one question, one additional (OPT)");
        let m = Packet::parse(&q).unwrap();
        assert_eq!(m.questions[0].qtype, QTYPE::TYPE(TYPE::AAAA));
        assert_eq!(m.questions[0].qclass, QCLASS::CLASS(CLASS::IN));
        assert_eq!(m.opt().unwrap().udp_packet_size, 1232);
        assert_eq!(m.questions[0].qname.to_string(), "Example.com");
        // Case kept and the name is absolute: it ends in the root label on the wire.
        assert_eq!(&q[12..25], b"\x07Example\x03com\x00");
        // The OPT record: root owner, TYPE 41, CLASS = payload, TTL 0 (version 0, DO clear), no options.
        assert_eq!(&q[q.len() - 11..], &[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        assert!(encode_query(1, "example.com.", false).is_ok());
    }

    #[test]
    fn parse_checks_id_qr_question() {
        let table: &[(&str, &[IpAddr], u32)] = &[("a.test", &[v4("192.0.2.1")], 30)];
        let q = encode_query(7, "a.test", false).unwrap();
        let r = fake::answer_query(&q, table, &[]).unwrap();
        assert_eq!(parse_response(&r, 7, "A.TEST", false).unwrap().addresses, vec![v4("192.0.2.1")]);
        assert!(matches!(parse_response(&r, 8, "a.test", false), Err(DnsError::Malformed(_))));
        assert!(matches!(parse_response(&r, 7, "b.test", false), Err(DnsError::Malformed(_))));
        assert!(matches!(parse_response(&r, 7, "a.test", true), Err(DnsError::Malformed(_))));
        // The query itself is not a response.
        assert!(matches!(parse_response(&q, 7, "a.test", false), Err(DnsError::Malformed(_))));
    }

    #[test]
    fn cname_ttl_counted_and_chain_bounded() {
        let n = |s: &str| parse_name(s).unwrap().into_owned();
        let question = |s: &str| Question::new(n(s), TYPE::A.into(), CLASS::IN.into(), false);
        let record = |s: &str, ttl: u32, rdata: RData<'static>| ResourceRecord::new(n(s), CLASS::IN, ttl, rdata);
        let build = |links: usize, cname_ttl: u32| {
            let mut m = Packet::new_reply(9);
            m.questions.push(question("c0.test"));
            for i in 0..links {
                let rdata = RData::CNAME(CNAME(n(&format!("c{}.test", i + 1))));
                m.answers.push(record(&format!("c{i}.test"), cname_ttl, rdata));
            }
            let a = RData::A(A::from("192.0.2.5".parse::<Ipv4Addr>().unwrap()));
            m.answers.push(record(&format!("c{links}.test"), 100, a));
            m.build_bytes_vec_compressed().unwrap()
        };
        let ok = parse_response(&build(8, 20), 9, "c0.test", false).unwrap();
        assert_eq!(ok, Answer { addresses: vec![v4("192.0.2.5")], ttl_s: 20 });
        assert_eq!(parse_response(&build(1, 500), 9, "c0.test", false).unwrap().ttl_s, 100);
        assert!(matches!(parse_response(&build(9, 20), 9, "c0.test", false), Err(DnsError::Malformed(_))));

        // A CNAME loop must terminate.
        let mut m = Packet::new_reply(9);
        m.questions.push(question("x.test"));
        m.answers.push(record("x.test", 5, RData::CNAME(CNAME(n("y.test")))));
        m.answers.push(record("y.test", 5, RData::CNAME(CNAME(n("x.test")))));
        let looped = m.build_bytes_vec_compressed().unwrap();
        assert!(matches!(parse_response(&looped, 9, "x.test", false), Err(DnsError::Malformed(_))));
    }

    #[test]
    fn rcodes_map() {
        let mut m = Packet::new_reply(3);
        m.questions.push(Question::new(parse_name("a.test").unwrap(), TYPE::A.into(), CLASS::IN.into(), false));
        *m.rcode_mut() = RCODE::ServerFailure;
        assert!(matches!(
            parse_response(&m.build_bytes_vec().unwrap(), 3, "a.test", false),
            Err(DnsError::ServerFailure(_))
        ));
        *m.rcode_mut() = RCODE::NoError;
        assert!(matches!(
            parse_response(&m.build_bytes_vec().unwrap(), 3, "a.test", false),
            Err(DnsError::NoAddresses)
        ));
        // REFUSED without the question echoed is still a server failure, not garbage.
        let mut bare = Packet::new_reply(3);
        *bare.rcode_mut() = RCODE::Refused;
        assert!(matches!(
            parse_response(&bare.build_bytes_vec().unwrap(), 3, "a.test", false),
            Err(DnsError::ServerFailure(_))
        ));
    }

    #[test]
    fn round_trip_a_and_aaaa_min_ttl() {
        let server = table_server();
        let answer = resolve("HOST.test", &[server.addr], T, 1).unwrap();
        assert_eq!(answer.addresses, vec![v4("192.0.2.1"), v4("192.0.2.2"), v4("2001:db8::1")]);
        assert_eq!(answer.ttl_s, 300);
    }

    #[test]
    fn round_trip_over_ipv6_loopback_if_available() {
        let server = match TestServer::start_on("[::1]:0", |q| {
            let a: &[IpAddr] = &[v4("2001:db8::7")];
            fake::answer_query(q, &[("six.test", a, 42)], &[]).into_iter().collect()
        }) {
            Ok(s) => s,
            Err(_) => return, // no IPv6 loopback in this sandbox
        };
        let answer = resolve("six.test", &[server.addr], T, 1).unwrap();
        assert_eq!(answer, Answer { addresses: vec![v4("2001:db8::7")], ttl_s: 42 });
    }

    #[test]
    fn cname_chain_followed() {
        let server = table_server();
        let answer = resolve("alias.test", &[server.addr], T, 1).unwrap();
        assert_eq!(answer.addresses, vec![v4("192.0.2.9")]);
        assert_eq!(answer.ttl_s, fake::CNAME_TTL);
    }

    #[test]
    fn nxdomain() {
        let server = table_server();
        assert!(matches!(resolve("nope.test", &[server.addr], T, 1), Err(DnsError::NoSuchName)));
    }

    #[test]
    fn silent_server_times_out_within_bound() {
        let server = TestServer::start(|_| Vec::new());
        let start = Instant::now();
        let result = resolve("host.test", &[server.addr], Duration::from_millis(200), 2);
        let elapsed = start.elapsed();
        assert!(matches!(result, Err(DnsError::Timeout)), "{result:?}");
        assert!(elapsed >= Duration::from_millis(390), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
        assert_eq!(server.received.load(Ordering::SeqCst), 4, "A+AAAA per attempt");
    }

    #[test]
    fn falls_over_to_second_server() {
        let silent = TestServer::start(|_| Vec::new());
        let good = table_server();
        let start = Instant::now();
        let answer = resolve("host.test", &[silent.addr, good.addr], Duration::from_millis(200), 1).unwrap();
        assert_eq!(answer.addresses.len(), 3);
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn wrong_id_ignored_then_right_one_accepted() {
        let server = TestServer::start(|q| {
            let good: &[IpAddr] = &[v4("192.0.2.1")];
            let evil: &[IpAddr] = &[v4("203.0.113.66")];
            let mut forged = fake::answer_query(q, &[("host.test", evil, 1)], &[]).unwrap();
            forged[0] ^= 0x55;
            let real = fake::answer_query(q, &[("host.test", good, 99)], &[]).unwrap();
            vec![forged, real]
        });
        let answer = resolve("host.test", &[server.addr], T, 1).unwrap();
        assert_eq!(answer, Answer { addresses: vec![v4("192.0.2.1")], ttl_s: 99 });
    }

    #[test]
    fn truncated_is_malformed() {
        let server = TestServer::start(|q| {
            let a: &[IpAddr] = &[v4("192.0.2.1")];
            let mut r = fake::answer_query(q, &[("host.test", a, 5)], &[]).unwrap();
            r[2] |= 0x02;
            vec![r]
        });
        let result = resolve("host.test", &[server.addr], T, 1);
        assert!(matches!(&result, Err(DnsError::Malformed(m)) if m == "truncated"), "{result:?}");
    }

    #[test]
    fn garbage_from_server_is_malformed() {
        let server = TestServer::start(|q| vec![[&q[..2], b"\x81\x80\xff\xff garbage".as_slice()].concat()]);
        assert!(matches!(resolve("host.test", &[server.addr], T, 1), Err(DnsError::Malformed(_))));
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let a: &[IpAddr] = &[v4("192.0.2.1"), v4("192.0.2.2")];
        let q = encode_query(0xbeef, "alias.test", false).unwrap();
        let valid = fake::answer_query(&q, &[("t.test", a, 5)], &[("alias.test", "t.test")]).unwrap();
        assert!(parse_response(&valid, 0xbeef, "alias.test", false).is_ok());

        for len in 0..valid.len() {
            assert!(parse_response(&valid[..len], 0xbeef, "alias.test", false).is_err());
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..5000 {
            let mut bytes = valid.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % bytes.len();
                bytes[i] ^= 1 << (next() % 8);
            }
            let _ = parse_response(&bytes, 0xbeef, "alias.test", false);
        }
        for _ in 0..5000 {
            let len = (next() % 600) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if bytes.len() >= 2 {
                bytes[..2].copy_from_slice(&0xbeefu16.to_be_bytes());
            }
            assert!(parse_response(&bytes, 0xbeef, "alias.test", false).is_err());
        }
        // Compression pointer pointing at itself.
        let mut looped = valid[..12].to_vec();
        looped.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        assert!(parse_response(&looped, 0xbeef, "alias.test", false).is_err());
    }

    #[test]
    fn bad_names_rejected_before_any_socket() {
        let server = table_server();
        let long_label = "a".repeat(64);
        let long_name = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(62)].join(".");
        assert_eq!(long_name.len(), 254);
        for bad in ["", ".", "a..b", ".a", "a b", "a/b", "ex\\ample", "é.test", &long_label, &long_name, "a.b.."] {
            let result = resolve(bad, &[server.addr], T, 1);
            assert!(matches!(result, Err(DnsError::BadName(_))), "{bad:?}: {result:?}");
            assert!(matches!(encode_query(1, bad, false), Err(DnsError::BadName(_))));
        }
        assert_eq!(server.received.load(Ordering::SeqCst), 0);
        let ok_name = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
        assert!(parse_name(&ok_name).is_ok());
        assert!(parse_name("_sip._tcp.example-1.test.").is_ok());
    }

    #[test]
    fn fake_server_answers_nodata_for_other_family() {
        let server = TestServer::start(|q| {
            let a: &[IpAddr] = &[v4("192.0.2.1")];
            fake::answer_query(q, &[("v4only.test", a, 10)], &[]).into_iter().collect()
        });
        let answer = resolve("v4only.test", &[server.addr], T, 1).unwrap();
        assert_eq!(answer, Answer { addresses: vec![v4("192.0.2.1")], ttl_s: 10 });
        let empty = TestServer::start(|q| fake::answer_query(q, &[("none.test", &[], 10)], &[]).into_iter().collect());
        assert!(matches!(resolve("none.test", &[empty.addr], T, 1), Err(DnsError::NoAddresses)));
    }

    #[test]
    fn refused_port_moves_on_quickly() {
        // Binding then dropping yields a loopback port with nobody listening, so the kernel answers
        // with ICMP port unreachable, surfacing as ECONNREFUSED on the connected socket.
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let good = table_server();
        let start = Instant::now();
        let result = resolve("host.test", &[closed], Duration::from_secs(2), 1);
        assert!(matches!(result, Err(DnsError::Io(_))), "{result:?}");
        assert!(resolve("host.test", &[closed, good.addr], Duration::from_secs(2), 1).is_ok());
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn huge_ttl_treated_as_zero() {
        let table: &[(&str, &[IpAddr], u32)] = &[("a.test", &[v4("192.0.2.1")], 0x8000_0000)];
        let q = encode_query(7, "a.test", false).unwrap();
        let r = fake::answer_query(&q, table, &[]).unwrap();
        assert_eq!(parse_response(&r, 7, "a.test", false).unwrap().ttl_s, 0);
    }

    /// What `parse_response` checks on the wire itself because simple-dns 0.13 gets it wrong or lets it through.
    #[test]
    fn wire_details_simple_dns_misses() {
        let table: &[(&str, &[IpAddr], u32)] = &[("a.test", &[v4("192.0.2.1")], 30)];
        let q = encode_query(7, "a.test", false).unwrap();
        let r = fake::answer_query(&q, table, &[]).unwrap();
        // Header 12 + question 12 (01 a 04 test 00, type, class) + one A record 16 + OPT record 11.
        assert_eq!(r.len(), 51);
        let (question_class, answer_class, answer_rdlen, opt) = (22, 28, 34, 40);
        let parse = |bytes: &[u8]| parse_response(bytes, 7, "a.test", false);
        let patched = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = r.clone();
            f(&mut bytes);
            parse(&bytes)
        };
        let malformed = |result: Result<Answer, DnsError>, text: &str| {
            assert!(matches!(&result, Err(DnsError::Malformed(m)) if m.contains(text)), "{text}: {result:?}");
        };
        assert!(parse(&r).is_ok());

        // The extended RCODE is the top byte of the OPT TTL; the bottom byte holds flags to ignore.
        let result = patched(&|b| b[opt + 5] = 1);
        assert!(matches!(&result, Err(DnsError::ServerFailure(m)) if m == "Bad option versions"), "{result:?}");
        assert!(patched(&|b| b[opt + 8] = 0xff).is_ok());
        // The reserved header Z bit is ignored, not refused.
        assert!(patched(&|b| b[3] |= 0x40).is_ok());
        // Section counts the datagram cannot hold are refused before parsing.
        malformed(patched(&|b| b[6..8].copy_from_slice(&[0xff, 0xff])), "counts exceed");
        // A class with the mDNS cache-flush / unicast-response bit set is not IN.
        assert!(matches!(patched(&|b| b[answer_class] |= 0x80), Err(DnsError::NoAddresses)));
        malformed(patched(&|b| b[question_class] |= 0x80), "question does not match");
        // RDATA must be exactly as long as an address; a longer A record is not read from its start.
        malformed(
            patched(&|b| {
                b[answer_rdlen + 1] = 5;
                b.insert(opt, 0);
            }),
            "length does not match",
        );
        // Only one OPT record, and only in the additional section.
        malformed(
            patched(&|b| {
                b[11] = 2;
                b.extend_from_slice(&r[opt..]);
            }),
            "more than one OPT",
        );
        malformed(
            patched(&|b| {
                b[7] = 2;
                b[11] = 0;
            }),
            "outside the additional section",
        );

        // A CNAME whose RDATA runs past the target name.
        let q = encode_query(8, "alias.test", false).unwrap();
        let mut c = fake::answer_query(&q, table, &[("alias.test", "a.test")]).unwrap();
        assert!(parse_response(&c, 8, "alias.test", false).is_ok());
        // Question ends at 12 + (05 alias 04 test 00) 12 + 4; then the CNAME's name, type, class, TTL, RDLENGTH.
        assert_eq!(&c[30..32], &[0, 5]);
        let rdlen = usize::from(c[39]);
        c.insert(40 + rdlen, 0);
        c[39] += 1;
        malformed(parse_response(&c, 8, "alias.test", false), "length does not match");
    }

    #[test]
    fn empty_config_rejected() {
        assert!(matches!(resolve("a.test", &[], T, 1), Err(DnsError::Io(_))));
    }
}
