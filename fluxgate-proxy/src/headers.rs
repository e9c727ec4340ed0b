//! Header rewriting: hop-by-hop removal and the `X-Forwarded-*` headers.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection and never cross a proxy (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [HeaderName; 9] = [
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

/// Removes the hop-by-hop headers and every header named in `Connection`.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
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

/// Appends `peer` to `X-Forwarded-For`, keeping the addresses already there in front (several
/// `X-Forwarded-For` lines are joined into one), and sets `X-Forwarded-Proto` and
/// `X-Forwarded-Host` when the client did not send them (the protocol is `https` when the
/// client came over TLS).
pub(crate) fn add_forwarded(
    headers: &mut HeaderMap,
    peer: Option<IpAddr>,
    host: Option<&HeaderValue>,
    tls: bool,
) {
    if let Some(peer) = peer {
        let mut chain = Vec::new();
        for value in headers.get_all(&X_FORWARDED_FOR) {
            if !chain.is_empty() {
                chain.extend_from_slice(b", ");
            }
            chain.extend_from_slice(value.as_bytes());
        }
        if !chain.is_empty() {
            chain.extend_from_slice(b", ");
        }
        chain.extend_from_slice(peer.to_string().as_bytes());
        if let Ok(value) = HeaderValue::from_bytes(&chain) {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        let proto = if tls { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if let Some(host) = host
        && !headers.contains_key(&X_FORWARDED_HOST)
    {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        add_forwarded(&mut headers, Some([10, 0, 0, 9].into()), Some(&host), false);
        assert_eq!(headers[&X_FORWARDED_FOR], "192.0.2.1, 192.0.2.2, 10.0.0.9");
        assert_eq!(headers[&X_FORWARDED_PROTO], "https");
        assert_eq!(headers[&X_FORWARDED_HOST], "shop.example");
        let mut tls = HeaderMap::new();
        add_forwarded(&mut tls, None, None, true);
        assert_eq!(tls[&X_FORWARDED_PROTO], "https");
    }

    #[test]
    fn finds_te_trailers() {
        let mut headers = HeaderMap::new();
        assert!(!wants_trailers(&headers));
        headers.insert(header::TE, HeaderValue::from_static("gzip, Trailers"));
        assert!(wants_trailers(&headers));
    }
}
