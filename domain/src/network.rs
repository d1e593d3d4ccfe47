//! The network a request comes from, as far as telling requesters apart goes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// An IPv4 address's /24 or an IPv6 address's /64: what one home, office or host is
/// usually given whole, while moving to another address within it costs nothing. A limit
/// that hopping addresses must not dodge counts per prefix. An IPv4 address written as
/// IPv6 (`::ffff:203.0.113.7`) is its IPv4 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NetworkPrefix(IpAddr);

impl NetworkPrefix {
    pub const IPV4_BITS: u8 = 24;
    pub const IPV6_BITS: u8 = 64;

    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(v4) => Self::of_v4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::of_v4(v4),
                None => Self(IpAddr::V6(Ipv6Addr::from(
                    u128::from(v6) & (u128::MAX << (128 - Self::IPV6_BITS)),
                ))),
            },
        }
    }

    fn of_v4(address: Ipv4Addr) -> Self {
        Self(IpAddr::V4(Ipv4Addr::from(
            u32::from(address) & (u32::MAX << (32 - Self::IPV4_BITS)),
        )))
    }

    /// The prefix of an address as the log records it (an enrollment's `requested_from`);
    /// none if it is not an address.
    pub fn parse(address: &str) -> Option<Self> {
        address.parse::<IpAddr>().ok().map(Self::of)
    }
}

impl fmt::Display for NetworkPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = match self.0 {
            IpAddr::V4(_) => Self::IPV4_BITS,
            IpAddr::V6(_) => Self::IPV6_BITS,
        };
        write!(f, "{}/{bits}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(address: &str) -> String {
        NetworkPrefix::parse(address).unwrap().to_string()
    }

    #[test]
    fn an_ipv4_address_is_its_slash_24_and_an_ipv6_address_its_slash_64() {
        assert_eq!(prefix("203.0.113.7"), "203.0.113.0/24");
        assert_eq!(prefix("203.0.113.255"), "203.0.113.0/24");
        assert_eq!(prefix("127.0.0.195"), "127.0.0.0/24");
        assert_eq!(prefix("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
        assert_eq!(prefix("::1"), "::/64");
        assert_eq!(prefix("::ffff:203.0.113.7"), "203.0.113.0/24", "IPv4 written as IPv6");
    }

    #[test]
    fn addresses_of_one_network_share_a_prefix_and_of_neighbours_do_not() {
        let of = |address: &str| NetworkPrefix::parse(address).unwrap();
        assert_eq!(of("198.51.100.1"), of("198.51.100.254"));
        assert_ne!(of("198.51.100.1"), of("198.51.101.1"));
        assert_eq!(of("2001:db8::1"), of("2001:db8::ffff:1"));
        assert_ne!(of("2001:db8::1"), of("2001:db8:0:1::1"));
        assert_ne!(of("10.0.0.1"), of("::ffff:10.0.1.1"));
    }

    #[test]
    fn what_is_not_an_address_has_no_prefix() {
        for text in ["", "localhost", "203.0.113.0/24", "203.0.113", "unknown"] {
            assert_eq!(NetworkPrefix::parse(text), None, "{text:?}");
        }
    }
}
