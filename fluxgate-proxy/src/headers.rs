//! Header rewriting: hop-by-hop removal, the `X-Forwarded-*` headers and `Forwarded`.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection and never cross a proxy (RFC 9110 section 7.6.1). A
/// `static`: a `const` array would be built and dropped again at every use.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// The `X-Forwarded-For` header.
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// The `X-Forwarded-Proto` header.
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// The `X-Forwarded-Host` header.
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The most headers the proxy adds to a request: `X-Forwarded-For`, `-Proto`, `-Host`,
/// `Forwarded`, and `Host` or `TE` when the client sent none.
pub(crate) const ADDED: usize = 5;

/// The hop-by-hop headers of a message: the fixed ones and every header named in its
/// `Connection`.
#[derive(Debug)]
pub(crate) struct HopByHop {
    named: Vec<HeaderName>,
}

impl HopByHop {
    /// The hop-by-hop headers of `headers`; `None` when it carries none (most messages: one pass
    /// over the names spares a lookup per header).
    pub(crate) fn of(headers: &HeaderMap) -> Option<Self> {
        if !headers.keys().any(is_fixed_hop_by_hop) {
            return None;
        }
        let named = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .collect();
        Some(Self { named })
    }

    /// Whether `name` is one of them.
    pub(crate) fn contains(&self, name: &HeaderName) -> bool {
        is_fixed_hop_by_hop(name) || self.named.contains(name)
    }
}

/// Whether `name` is one of [`HOP_BY_HOP`] (one match on the name's text: cheaper than nine
/// comparisons of header names, and this runs for every header of every message).
fn is_fixed_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authenticate"
            | "proxy-authorization"
    )
}

/// Removes the hop-by-hop headers and every header named in `Connection`.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let Some(hop_by_hop) = HopByHop::of(headers) else {
        return;
    };
    for name in hop_by_hop.named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Whether the request's `TE` header lists `trailers` (the one `TE` value forwarded).
pub(crate) fn wants_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("trailers"))
}

/// What a request's hop through this proxy was: who sent it, the `Host` it asked for, whether it
/// came over TLS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hop<'a> {
    pub(crate) peer: Option<IpAddr>,
    pub(crate) host: Option<&'a HeaderValue>,
    pub(crate) tls: bool,
}

impl Hop<'_> {
    pub(crate) fn proto(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}

/// Appends an item, written by `item`, to the comma-separated list `name`, keeping the items
/// already there in front (several lines of it are joined into one). The value is written once
/// into the buffer that becomes the header value.
fn append_to_list(headers: &mut HeaderMap, name: &HeaderName, item: impl FnOnce(&mut Vec<u8>)) {
    let mut list = Vec::new();
    for value in headers.get_all(name) {
        list.extend_from_slice(value.as_bytes());
        list.extend_from_slice(b", ");
    }
    item(&mut list);
    if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(list)) {
        headers.insert(name, value);
    }
}

/// Appends the peer to `X-Forwarded-For` (when it is known), and sets `X-Forwarded-Proto` and
/// `X-Forwarded-Host` when the client did not send them (the protocol is `https` when the
/// client came over TLS).
pub(crate) fn add_x_forwarded(headers: &mut HeaderMap, hop: &Hop<'_>) {
    // A parsed request's map is sized for its own headers: grow it once, not per insert.
    headers.reserve(3);
    if let Some(peer) = hop.peer {
        let text = IpText::new(peer);
        append_to_list(headers, &X_FORWARDED_FOR, |out| {
            out.extend_from_slice(text.as_bytes());
        });
    }
    // One lookup each: set when absent.
    headers
        .entry(X_FORWARDED_PROTO)
        .or_insert_with(|| HeaderValue::from_static(hop.proto()));
    if let Some(host) = hop.host {
        headers
            .entry(X_FORWARDED_HOST)
            .or_insert_with(|| host.clone());
    }
}

/// An IP address as text, written on the stack: an IPv4 address digit by digit (the formatting
/// machinery costs more than the rest of the header rewrite), an IPv6 one with `Display`.
pub(crate) struct IpText {
    /// The longest text, an IPv6 address with an embedded IPv4 one, is 45 bytes.
    bytes: [u8; 48],
    len: usize,
}

impl IpText {
    pub(crate) fn new(ip: IpAddr) -> Self {
        let mut text = Self {
            bytes: [0; 48],
            len: 0,
        };
        match ip {
            IpAddr::V4(ip) => {
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(b'.');
                    }
                    if octet >= 100 {
                        text.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        text.push(b'0' + octet / 10 % 10);
                    }
                    text.push(b'0' + octet % 10);
                }
            }
            IpAddr::V6(ip) => {
                // Writing to an `IpText` never fails.
                let _ = write!(text, "{ip}");
            }
        }
        text
    }

    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl std::fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        s.bytes().for_each(|byte| self.push(byte));
        Ok(())
    }
}

/// Appends this hop's element, `for=…;proto=…;host=…`, to the `Forwarded` header (RFC 7239):
/// an IPv6 address is bracketed and quoted (`for="[2001:db8::1]"`), an unknown peer is
/// `for=unknown`, and a host that is not a token (a port's `:`) is quoted.
pub(crate) fn append_forwarded(headers: &mut HeaderMap, hop: &Hop<'_>) {
    append_to_list(headers, &header::FORWARDED, |out| {
        write_forwarded_element(hop, out);
    });
}

/// Writes this hop's `Forwarded` element (see [`append_forwarded`]) at the end of `out`.
pub(crate) fn write_forwarded_element(hop: &Hop<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"for=");
    match hop.peer {
        Some(ip @ IpAddr::V4(_)) => out.extend_from_slice(IpText::new(ip).as_bytes()),
        Some(ip @ IpAddr::V6(_)) => {
            out.extend_from_slice(b"\"[");
            out.extend_from_slice(IpText::new(ip).as_bytes());
            out.extend_from_slice(b"]\"");
        }
        None => out.extend_from_slice(b"unknown"),
    }
    out.extend_from_slice(b";proto=");
    out.extend_from_slice(hop.proto().as_bytes());
    // A host with bytes that are not visible ASCII is left out: RFC 7239 has no way to write them.
    if let Some(host) = hop.host.filter(|host| host.to_str().is_ok()) {
        out.extend_from_slice(b";host=");
        push_token_or_quoted(out, host.as_bytes());
    }
}

/// Pushes `value` as a token if it is one (RFC 9110 `tchar`s), otherwise as a quoted string.
fn push_token_or_quoted(out: &mut Vec<u8>, value: &[u8]) {
    let is_tchar = |c: &u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c);
    if !value.is_empty() && value.iter().all(is_tchar) {
        out.extend_from_slice(value);
        return;
    }
    out.push(b'"');
    for &c in value {
        if c == b'"' || c == b'\\' {
            out.push(b'\\');
        }
        out.push(c);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_list_and_its_match_agree() {
        for name in &HOP_BY_HOP {
            assert!(is_fixed_hop_by_hop(name), "{name}");
        }
        for name in [header::HOST, header::CONTENT_LENGTH, X_FORWARDED_FOR] {
            assert!(!is_fixed_hop_by_hop(&name), "{name}");
        }
    }

    #[test]
    fn removes_listed_and_named_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, X-Secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn appends_the_peer_to_forwarded_for() {
        let mut headers = HeaderMap::new();
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("192.0.2.1"));
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("192.0.2.2"));
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        let host = HeaderValue::from_static("shop.example");
        let hop = Hop {
            peer: Some([10, 0, 0, 9].into()),
            host: Some(&host),
            tls: false,
        };
        add_x_forwarded(&mut headers, &hop);
        assert_eq!(headers[&X_FORWARDED_FOR], "192.0.2.1, 192.0.2.2, 10.0.0.9");
        assert_eq!(headers[&X_FORWARDED_PROTO], "https");
        assert_eq!(headers[&X_FORWARDED_HOST], "shop.example");
        let mut tls = HeaderMap::new();
        let hop = Hop {
            peer: None,
            host: None,
            tls: true,
        };
        add_x_forwarded(&mut tls, &hop);
        assert_eq!(tls[&X_FORWARDED_PROTO], "https");
        assert!(!tls.contains_key(&X_FORWARDED_FOR));
    }

    #[test]
    fn writes_addresses_as_display_does() {
        let addresses = [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "::1",
            "2001:db8:cafe::17",
            "::ffff:192.0.2.1",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
        ];
        for address in addresses {
            let ip: IpAddr = address.parse().unwrap();
            assert_eq!(
                IpText::new(ip).as_bytes(),
                ip.to_string().as_bytes(),
                "{address}"
            );
        }
    }

    #[test]
    fn appends_a_forwarded_element() {
        let mut headers = HeaderMap::new();
        headers.append(header::FORWARDED, HeaderValue::from_static("for=192.0.2.1"));
        let host = HeaderValue::from_static("shop.example:8080");
        let v6 = Hop {
            peer: Some("2001:db8:cafe::17".parse().unwrap()),
            host: Some(&host),
            tls: true,
        };
        append_forwarded(&mut headers, &v6);
        assert_eq!(
            headers[header::FORWARDED],
            r#"for=192.0.2.1, for="[2001:db8:cafe::17]";proto=https;host="shop.example:8080""#
        );
        let mut fresh = HeaderMap::new();
        let host = HeaderValue::from_static("shop.example");
        let v4 = Hop {
            peer: Some([10, 0, 0, 9].into()),
            host: Some(&host),
            tls: false,
        };
        append_forwarded(&mut fresh, &v4);
        assert_eq!(
            fresh[header::FORWARDED],
            "for=10.0.0.9;proto=http;host=shop.example"
        );
        let mut unknown = HeaderMap::new();
        let hop = Hop {
            peer: None,
            host: None,
            tls: false,
        };
        append_forwarded(&mut unknown, &hop);
        assert_eq!(unknown[header::FORWARDED], "for=unknown;proto=http");
    }

    #[test]
    fn quotes_what_is_not_a_token() {
        let mut out = Vec::new();
        push_token_or_quoted(&mut out, br#"a"b\c"#);
        assert_eq!(out, br#""a\"b\\c""#);
    }

    #[test]
    fn finds_te_trailers() {
        let mut headers = HeaderMap::new();
        assert!(!wants_trailers(&headers));
        headers.insert(header::TE, HeaderValue::from_static("gzip, Trailers"));
        assert!(wants_trailers(&headers));
    }
}
