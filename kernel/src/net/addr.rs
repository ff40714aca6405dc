//! Socket addresses as guests pass them: the text `IP:PORT` the original's libc writes for every
//! `sockaddr` (`127.0.0.1:8080`, and IPv6 without brackets, `::1:8080`, split at the last
//! colon), and which of them the VM's own loopback answers.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::vfs::Errno;

/// The longest address text a guest may pass: an IPv6 address with a zone and a port is well
/// under this, and the libc's own buffers are 256 bytes.
pub const MAX_ADDRESS_TEXT_BYTES: usize = 256;

/// Parses `IP:PORT` (also `[IPv6]:PORT` and `localhost:PORT`). A text without a colon is a Unix
/// socket path, which this kernel does not have (`EAFNOSUPPORT`); anything else malformed is
/// `EINVAL`.
pub fn parse(text: &[u8]) -> Result<SocketAddr, Errno> {
    if text.len() > MAX_ADDRESS_TEXT_BYTES {
        return Err(Errno::EINVAL);
    }
    let text = std::str::from_utf8(text).map_err(|_| Errno::EINVAL)?;
    let (host, port) = text.rsplit_once(':').ok_or(Errno::EAFNOSUPPORT)?;
    let port: u16 = port.parse().map_err(|_| Errno::EINVAL)?;
    let host = host.strip_prefix('[').and_then(|inner| inner.strip_suffix(']')).unwrap_or(host);
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse::<IpAddr>().map_err(|_| Errno::EINVAL)?
    };
    Ok(SocketAddr::new(ip, port))
}

/// The text form the libc parses back: `IP:PORT`, IPv6 without brackets.
pub fn format(addr: SocketAddr) -> String {
    format!("{}:{}", addr.ip(), addr.port())
}

/// Whether `ip` is this VM's own loopback: `127.0.0.0/8`, `::1`, their IPv4-mapped forms, and
/// the unspecified addresses (connecting to `0.0.0.0` reaches the local host, as on Linux).
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_unspecified(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_loopback() || v4.is_unspecified(),
            None => v6.is_loopback() || v6.is_unspecified(),
        },
    }
}

/// The loopback address of `ip`'s family (where an unbound socket of that family lives).
pub fn loopback_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

/// Whether a socket bound to `bound` receives what is sent to `to` (same port checked by the
/// caller; `to` never unspecified): the same address, or a wildcard bind, or both loopback.
pub fn accepts(bound: IpAddr, to: IpAddr) -> bool {
    bound.is_unspecified() || bound == to || (is_local(bound) && is_local(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_libc_text_forms_parse_and_print_back() {
        for text in ["127.0.0.1:8080", "::1:80", "0.0.0.0:0", "::ffff:127.0.0.1:9"] {
            assert_eq!(parse(text.as_bytes()).map(format).as_deref(), Ok(text));
        }
        assert_eq!(parse(b"[::1]:80").map(format).as_deref(), Ok("::1:80"));
        assert_eq!(parse(b"localhost:3000").map(format).as_deref(), Ok("127.0.0.1:3000"));
        assert_eq!(parse(b"/tmp/sock"), Err(Errno::EAFNOSUPPORT));
        for bad in ["127.0.0.1:70000", "127.0.0.1:", "example.com:80", "1.2.3:4", ":80"] {
            assert_eq!(parse(bad.as_bytes()), Err(Errno::EINVAL), "{bad}");
        }
        assert_eq!(parse(&[b'1'; MAX_ADDRESS_TEXT_BYTES + 1]), Err(Errno::EINVAL));
        assert_eq!(parse(b"\xff:1"), Err(Errno::EINVAL));
    }

    #[test]
    fn only_loopback_and_unspecified_are_local() {
        let local = |text: &str| is_local(text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::BROADCAST)));
        for ip in ["127.0.0.1", "127.8.9.10", "::1", "0.0.0.0", "::", "::ffff:127.0.0.1"] {
            assert!(local(ip), "{ip}");
        }
        for ip in ["10.0.0.1", "192.168.1.1", "8.8.8.8", "::ffff:10.0.0.1", "fe80::1", "255.255.255.255"] {
            assert!(!local(ip), "{ip}");
        }
    }
}
