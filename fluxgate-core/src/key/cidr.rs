//! IP networks in CIDR notation, for the list of trusted proxies: a thin wrapper of
//! [`ipnet::IpNet`] that keeps the crate's error type and compares IPv4-mapped addresses as IPv4.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// An IPv4 or IPv6 network: an address and a prefix length (`10.0.0.0/8`, `2001:db8::/32`).
///
/// Parsing accepts a bare address as a single host (`/32` or `/128`) and clears host bits that
/// are set (`10.1.2.3/8` is `10.0.0.0/8`). An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) given
/// to [`contains`](Self::contains) is compared as the IPv4 address it maps.
///
/// ```
/// use fluxgate_core::key::Cidr;
///
/// let private: Cidr = "10.0.0.0/8".parse().unwrap();
/// assert!(private.contains("10.20.30.40".parse().unwrap()));
/// assert!(private.contains("::ffff:10.0.0.1".parse().unwrap()));
/// assert!(!private.contains("11.0.0.1".parse().unwrap()));
/// let docs: Cidr = "2001:db8::/32".parse().unwrap();
/// assert!(docs.contains("2001:db8:1::7".parse().unwrap()));
/// assert_eq!("10.1.2.3/8".parse::<Cidr>().unwrap().to_string(), "10.0.0.0/8");
/// assert!("10.0.0.0/33".parse::<Cidr>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

/// Why a string is not a [`Cidr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    /// The part before `/` is not an IP address.
    #[error("`{0}` is not an IP address")]
    InvalidAddress(String),
    /// The part after `/` is not a number up to 32 (IPv4) or 128 (IPv6).
    #[error("`{0}` is not a prefix length for this address family")]
    InvalidPrefix(String),
}

impl Cidr {
    /// The network of `addr` with `prefix` leading bits; host bits are cleared.
    ///
    /// # Errors
    ///
    /// [`CidrError::InvalidPrefix`] when `prefix` is above 32 for IPv4 or 128 for IPv6.
    ///
    /// ```
    /// use fluxgate_core::key::Cidr;
    /// let net = Cidr::new("192.168.7.9".parse().unwrap(), 16).unwrap();
    /// assert_eq!(net.to_string(), "192.168.0.0/16");
    /// ```
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        IpNet::new(addr, prefix)
            .map(|net| Self(net.trunc()))
            .map_err(|_| CidrError::InvalidPrefix(prefix.to_string()))
    }

    /// Whether `ip` is in this network.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&normalize(ip))
    }

    /// The network address (host bits cleared).
    #[must_use]
    pub fn network(&self) -> IpAddr {
        self.0.network()
    }

    /// The prefix length.
    #[must_use]
    pub fn prefix(&self) -> u8 {
        self.0.prefix_len()
    }
}

/// The same network as an [`IpNet`] (host bits cleared).
///
/// ```
/// use fluxgate_core::key::Cidr;
///
/// let net: ipnet::IpNet = "10.1.2.3/8".parse().unwrap();
/// assert_eq!(Cidr::from(net).to_string(), "10.0.0.0/8");
/// ```
impl From<IpNet> for Cidr {
    fn from(net: IpNet) -> Self {
        Self(net.trunc())
    }
}

impl From<Cidr> for IpNet {
    fn from(cidr: Cidr) -> Self {
        cidr.0
    }
}

/// Turns an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) into its IPv4 address.
///
/// ```
/// use std::net::IpAddr;
/// use fluxgate_core::key::normalize;
///
/// let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
/// assert_eq!(normalize(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
/// ```
#[must_use]
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let Some((addr, prefix)) = s.split_once('/') else {
            let addr: IpAddr = s
                .parse()
                .map_err(|_| CidrError::InvalidAddress(s.to_owned()))?;
            return Ok(Self(IpNet::from(addr)));
        };
        match s.parse::<IpNet>() {
            Ok(net) => Ok(Self(net.trunc())),
            Err(_) if addr.parse::<IpAddr>().is_err() => {
                Err(CidrError::InvalidAddress(addr.to_owned()))
            }
            Err(_) => Err(CidrError::InvalidPrefix(prefix.to_owned())),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!("192.0.2.1".parse::<Cidr>().unwrap().prefix(), 32);
        assert_eq!("::1".parse::<Cidr>().unwrap().prefix(), 128);
        assert!(
            "0.0.0.0/0"
                .parse::<Cidr>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            !"0.0.0.0/0"
                .parse::<Cidr>()
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "::/129",
            "1.2.3/8",
            "x/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} parsed");
        }
    }

    proptest! {
        #[test]
        fn contains_matches_the_leading_bits(net in any::<u128>(), ip in any::<u128>(), prefix in 0u8..=128) {
            let cidr = Cidr::new(IpAddr::V6(Ipv6Addr::from_bits(net)), prefix).unwrap();
            let same = prefix == 0 || (net ^ ip) >> (128 - u32::from(prefix)) == 0;
            let ip = IpAddr::V6(Ipv6Addr::from_bits(ip));
            // Mapped addresses compare as IPv4, so they never fall in an IPv6 network.
            let mapped = matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
            prop_assert_eq!(cidr.contains(ip), same && !mapped);
            prop_assert_eq!(cidr.to_string().parse::<Cidr>().unwrap(), cidr);
        }

        #[test]
        fn v4_contains_matches_the_leading_bits(net in any::<u32>(), ip in any::<u32>(), prefix in 0u8..=32) {
            let cidr = Cidr::new(IpAddr::V4(Ipv4Addr::from_bits(net)), prefix).unwrap();
            let same = prefix == 0 || (net ^ ip) >> (32 - u32::from(prefix)) == 0;
            prop_assert_eq!(cidr.contains(IpAddr::V4(Ipv4Addr::from_bits(ip))), same);
        }
    }
}
