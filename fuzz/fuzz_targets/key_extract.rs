//! Key extraction from arbitrary requests: X-Forwarded-For, Forwarded, Cookie, headers, query.
//!
//! Input: byte 0 picks the key source, byte 1 the forwarded header and trusted proxies, bytes 2..6
//! the peer's IPv4 address; the rest is text lines: the URI first, then `name: value` headers.
//! Lines that make no valid URI or header are skipped.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use fluxgate_core::key::{ClientIpConfig, Extracted, ForwardedHeader, KeyExtractor, PeerAddr};
use libfuzzer_sys::fuzz_target;

const SOURCES: [&str; 6] = [
    "ip",
    "header.x-api-key",
    "cookie.session",
    "query.api_key",
    "header.x-forwarded-for",
    "cookie.a",
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let source = SOURCES[usize::from(data[0]) % SOURCES.len()];
    let mut config = ClientIpConfig::new();
    if data[1] & 1 == 1 {
        config = config.header(ForwardedHeader::Forwarded);
    }
    if data[1] & 2 == 2 {
        config = config.trust("10.0.0.0/8".parse().unwrap());
    }
    if data[1] & 4 == 4 {
        config = config.trust("2001:db8::/32".parse().unwrap());
    }
    if data[1] & 8 == 8 {
        config = config.trust("0.0.0.0/0".parse().unwrap());
    }
    let max_len = if data[1] & 16 == 16 { 8 } else { 256 };
    let extractor = KeyExtractor::new(source.parse().unwrap())
        .client_ip_config(config)
        .max_key_len(max_len);
    let peer = IpAddr::V4(Ipv4Addr::new(data[2], data[3], data[4], data[5]));

    let text = String::from_utf8_lossy(&data[6..]);
    let mut lines = text.split('\n');
    let mut builder = http::Request::builder();
    if let Some(uri) = lines.next()
        && let Ok(uri) = uri.parse::<http::Uri>()
    {
        builder = builder.uri(uri);
    }
    let Ok(mut request) = builder.body(()) else {
        return;
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.trim().as_bytes()),
            http::HeaderValue::from_bytes(value.trim().as_bytes()),
        ) else {
            continue;
        };
        request.headers_mut().append(name, value);
    }
    if data[1] & 32 == 0 {
        request
            .extensions_mut()
            .insert(PeerAddr(SocketAddr::new(peer, 40000)));
    }

    match extractor.extract(&request) {
        Extracted::Missing | Extracted::TooLong | Extracted::Ip(_) => {}
        other => {
            let bytes = other.as_bytes().expect("a present key has bytes");
            assert!(!bytes.is_empty() && bytes.len() <= max_len, "key {bytes:?}");
            assert_eq!(other.hash64(), other.clone().into_owned().hash64());
        }
    }
    // Without a trusted proxy, the client is the peer, whatever the headers say.
    let plain = KeyExtractor::new("ip".parse().unwrap());
    if data[1] & 32 == 0 {
        assert_eq!(plain.client_ip(&request), Some(peer));
    }
});
