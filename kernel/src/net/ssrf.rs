//! The addresses no guest may reach outside its VM, whatever the permission policy says:
//! private, loopback, link-local, multicast and reserved ranges, and their IPv4-mapped IPv6
//! forms. Checked on every resolved address, so a name that resolves to one (an override, a
//! rebinding resolver) is refused too.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 ranges refused, with the name the denial gives.
const REFUSED_V4: [(Ipv4Addr, u8, &str); 10] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8, "this network (0.0.0.0/8)"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private (10.0.0.0/8)"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "shared address space (100.64.0.0/10)"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback (127.0.0.0/8)"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local (169.254.0.0/16)"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private (172.16.0.0/12)"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private (192.168.0.0/16)"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast (224.0.0.0/4)"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved (240.0.0.0/4)"),
    (Ipv4Addr::new(255, 255, 255, 255), 32, "broadcast"),
];

/// IPv6 ranges refused (the IPv4-mapped ones are checked as IPv4).
const REFUSED_V6: [(Ipv6Addr, u8, &str); 5] = [
    (Ipv6Addr::UNSPECIFIED, 128, "unspecified (::)"),
    (Ipv6Addr::LOCALHOST, 128, "loopback (::1)"),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, "unique local (fc00::/7)"),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local (fe80::/10)"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast (ff00::/8)"),
];

/// Why `ip` may not be reached from a VM, or `None` when it may.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => refusal_v4(v4),
            None => REFUSED_V6.iter().find(|(net, bits, _)| in_v6(v6, *net, *bits)).map(|(_, _, why)| *why),
        },
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    REFUSED_V4.iter().find(|(net, bits, _)| prefix_v4(ip, *bits) == prefix_v4(*net, *bits)).map(|(_, _, why)| *why)
}

fn prefix_v4(ip: Ipv4Addr, bits: u8) -> u32 {
    u32::from(ip).checked_shr(32u32.saturating_sub(u32::from(bits))).unwrap_or(0)
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, bits: u8) -> bool {
    let shift = 128u32.saturating_sub(u32::from(bits));
    u128::from(ip).checked_shr(shift).unwrap_or(0) == u128::from(net).checked_shr(shift).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Option<&'static str> {
        refusal(text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
    }

    #[test]
    fn every_private_and_special_range_is_refused_in_every_form() {
        let refused = [
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "224.0.0.1",
            "239.1.1.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fdff:ffff::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:192.168.0.1",
        ];
        for ip in refused {
            assert!(check(ip).is_some(), "{ip} must be refused");
        }
        let allowed = [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "223.255.255.255",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "fec0::1",
        ];
        for ip in allowed {
            assert_eq!(check(ip), None, "{ip} is public");
        }
        assert_eq!(
            check("::ffff:10.1.2.3"),
            Some("private (10.0.0.0/8)"),
            "a mapped address is named by its IPv4 range"
        );
    }
}
