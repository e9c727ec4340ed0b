//! The client's IP address: the peer, or what trusted proxies forwarded.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use super::cidr::{Cidr, normalize};

/// Which header carries the addresses that proxies forward.
///
/// Only one is read: a proxy that writes one of them usually passes the other through untouched,
/// so believing both would let a client forge the one its proxy does not write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`: addresses, optionally with a port.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"` (RFC 7239).
    Forwarded,
}

/// How to find the client's IP address behind proxies.
///
/// The address is the connection's peer (the [`PeerAddr`](super::PeerAddr) extension), with
/// IPv4-mapped IPv6 addresses turned into IPv4. The forwarded header is believed only when that
/// peer is a trusted proxy; by default no proxy is trusted and the header is never read. When the
/// peer is trusted, the header's addresses are walked from right to left (the last header line
/// first, when there are several, which together read as one list in order), skipping trusted
/// proxies, and the first untrusted address is the client. If every address is trusted, the
/// leftmost one is the client.
///
/// An entry that is not an address (malformed, empty, `unknown`, or an RFC 7239 obfuscated
/// identifier such as `_hidden`) stops the walk: what is left of it was written by a party no one
/// vouches for, so the client is the last address read before it (the nearest trusted proxy, or
/// the peer itself).
///
/// ```
/// use std::net::IpAddr;
/// use fluxgate_core::key::ClientIpConfig;
///
/// let config = ClientIpConfig::new().trust("10.0.0.0/8".parse().unwrap());
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.2".parse().unwrap());
///
/// let proxy: IpAddr = "10.0.0.1".parse().unwrap();
/// assert_eq!(config.client_ip(Some(proxy), &headers), Some("203.0.113.9".parse().unwrap()));
/// // A client that is not a trusted proxy cannot choose its address.
/// let client: IpAddr = "198.51.100.4".parse().unwrap();
/// assert_eq!(config.client_ip(Some(client), &headers), Some(client));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIpConfig {
    trusted: Vec<Cidr>,
    header: ForwardedHeader,
}

impl ClientIpConfig {
    /// Trusts no proxy and reads `X-Forwarded-For` once one is trusted.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Also trusts the proxies in `network`.
    #[must_use]
    pub fn trust(mut self, network: Cidr) -> Self {
        self.trusted.push(network);
        self
    }

    /// Also trusts the proxies in each of `networks`.
    ///
    /// ```
    /// use fluxgate_core::key::{Cidr, ClientIpConfig};
    ///
    /// let nets: Vec<Cidr> = ["10.0.0.0/8", "fd00::/8"].iter().map(|n| n.parse().unwrap()).collect();
    /// let config = ClientIpConfig::new().trust_all(nets);
    /// assert!(config.is_trusted("fd12::1".parse().unwrap()));
    /// ```
    #[must_use]
    pub fn trust_all(mut self, networks: impl IntoIterator<Item = Cidr>) -> Self {
        self.trusted.extend(networks);
        self
    }

    /// Reads `header` instead of `X-Forwarded-For`.
    ///
    /// ```
    /// use fluxgate_core::key::{ClientIpConfig, ForwardedHeader};
    ///
    /// let config = ClientIpConfig::new()
    ///     .trust("192.0.2.0/24".parse().unwrap())
    ///     .header(ForwardedHeader::Forwarded);
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("forwarded", r#"for="[2001:db8::1]:4711";proto=https"#.parse().unwrap());
    /// let client = config.client_ip(Some("192.0.2.1".parse().unwrap()), &headers);
    /// assert_eq!(client, Some("2001:db8::1".parse().unwrap()));
    /// ```
    #[must_use]
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Whether `ip` (IPv4-mapped addresses as IPv4) is a trusted proxy.
    #[must_use]
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The client's address given the connection's `peer`; `None` when the peer is unknown.
    #[must_use]
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = normalize(peer?);
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let (name, parse): (&str, ParseEntry) = match self.header {
            ForwardedHeader::XForwardedFor => ("x-forwarded-for", parse_node),
            ForwardedHeader::Forwarded => ("forwarded", parse_forwarded_element),
        };
        let mut nearest = peer;
        for line in headers.get_all(name).iter().rev() {
            for entry in line.as_bytes().rsplit(|b| *b == b',') {
                let Some(ip) = parse(entry) else {
                    return Some(nearest);
                };
                let ip = normalize(ip);
                if !self.is_trusted(ip) {
                    return Some(ip);
                }
                nearest = ip;
            }
        }
        Some(nearest)
    }
}

/// Reads the address of one entry of a forwarded header.
type ParseEntry = fn(&[u8]) -> Option<IpAddr>;

/// An address, optionally with a port: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:80`. Whitespace around it is ignored.
fn parse_node(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry.trim_ascii()).ok()?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

/// The `for=` address of one RFC 7239 element (`for=...;proto=...;by=...`), quoted or not.
/// `unknown`, obfuscated identifiers (`_...`) and elements without `for=` give `None`.
fn parse_forwarded_element(element: &[u8]) -> Option<IpAddr> {
    element.split(|b| *b == b';').find_map(|pair| {
        let eq = pair.iter().position(|b| *b == b'=')?;
        let (name, value) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
        if !name.eq_ignore_ascii_case(b"for") {
            return None;
        }
        let value = match value {
            [b'"', inner @ .., b'"'] => inner,
            _ => value,
        };
        parse_node(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes() {
        for (text, ip) in [
            ("192.0.2.1", "192.0.2.1"),
            (" 192.0.2.1:8080 ", "192.0.2.1"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
        ] {
            assert_eq!(
                parse_node(text.as_bytes()),
                Some(ip.parse().unwrap()),
                "{text}"
            );
        }
        for bad in [
            "",
            "unknown",
            "_hidden",
            "300.1.1.1",
            "[192.0.2.1]",
            "1.2.3.4:x",
        ] {
            assert_eq!(parse_node(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn forwarded_elements() {
        let parse = |s: &str| parse_forwarded_element(s.as_bytes());
        assert_eq!(
            parse("for=192.0.2.60;proto=http;by=203.0.113.43"),
            Some("192.0.2.60".parse().unwrap())
        );
        assert_eq!(
            parse(r#" proto=https; For="[2001:db8:cafe::17]:4711""#),
            Some("2001:db8:cafe::17".parse().unwrap())
        );
        assert_eq!(parse("for=unknown"), None);
        assert_eq!(parse("for=_gazonk"), None);
        assert_eq!(parse(r#"for="_gazonk""#), None);
        assert_eq!(parse("proto=http"), None);
    }
}
