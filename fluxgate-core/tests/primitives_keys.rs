//! Key extraction as a gateway sees it: spoofed and trusted forwarding headers, IPv6 peers,
//! missing, empty and oversized keys.

use std::net::IpAddr;

use fluxgate_core::key::{
    ClientIpConfig, Extracted, ForwardedHeader, KeyExtractor, KeySource, PeerAddr,
};
use http::Request;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn request(peer: Option<&str>, headers: &[(&str, &[u8])]) -> Request<()> {
    let mut builder = Request::get("/");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(()).unwrap();
    if let Some(peer) = peer {
        request
            .extensions_mut()
            .insert(PeerAddr(peer.parse().unwrap()));
    }
    request
}

fn behind(proxies: &[&str]) -> KeyExtractor {
    let config = ClientIpConfig::new().trust_all(proxies.iter().map(|p| p.parse().unwrap()));
    KeyExtractor::new(KeySource::Ip).client_ip_config(config)
}

#[test]
fn spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let spoofed = request(
        Some("198.51.100.7:5000"),
        &[("x-forwarded-for", b"1.2.3.4")],
    );
    assert_eq!(
        behind(&[]).extract(&spoofed),
        Extracted::Ip(ip("198.51.100.7"))
    );
    assert_eq!(
        behind(&["10.0.0.0/8"]).extract(&spoofed),
        Extracted::Ip(ip("198.51.100.7"))
    );
}

#[test]
fn trusted_chains_are_walked_right_to_left() {
    let extractor = behind(&["10.0.0.0/8", "192.168.0.0/16"]);
    // The client prepended a forged address; the first untrusted one from the right is real.
    let chain = request(
        Some("10.0.0.1:443"),
        &[(
            "x-forwarded-for",
            b"6.6.6.6, 203.0.113.50, 192.168.1.1, 10.2.2.2",
        )],
    );
    assert_eq!(extractor.extract(&chain), Extracted::Ip(ip("203.0.113.50")));
    // Repeated headers read as one list, in order.
    let split = request(
        Some("10.0.0.1:443"),
        &[
            ("x-forwarded-for", b"6.6.6.6, 203.0.113.50"),
            ("x-forwarded-for", b"192.168.1.1"),
            ("x-forwarded-for", b"10.2.2.2"),
        ],
    );
    assert_eq!(extractor.extract(&split), Extracted::Ip(ip("203.0.113.50")));
    // Only trusted proxies: the leftmost is the client.
    let internal = request(
        Some("10.0.0.1:443"),
        &[("x-forwarded-for", b"10.9.9.9, 10.2.2.2")],
    );
    assert_eq!(extractor.extract(&internal), Extracted::Ip(ip("10.9.9.9")));
    // Trusted peer, no header: the peer.
    let direct = request(Some("10.0.0.1:443"), &[]);
    assert_eq!(extractor.extract(&direct), Extracted::Ip(ip("10.0.0.1")));
}

#[test]
fn malformed_entries_stop_the_walk_at_the_last_good_address() {
    let extractor = behind(&["10.0.0.0/8"]);
    for header in [
        &b"6.6.6.6, not-an-ip, 10.2.2.2"[..],
        b"6.6.6.6,, 10.2.2.2",
        b"6.6.6.6, unknown, 10.2.2.2",
        b"6.6.6.6, \xff\xfe, 10.2.2.2",
    ] {
        let chain = request(Some("10.0.0.1:443"), &[("x-forwarded-for", header)]);
        assert_eq!(
            extractor.extract(&chain),
            Extracted::Ip(ip("10.2.2.2")),
            "{header:?}"
        );
    }
    let first_bad = request(
        Some("10.0.0.1:443"),
        &[("x-forwarded-for", b"6.6.6.6, garbage")],
    );
    assert_eq!(extractor.extract(&first_bad), Extracted::Ip(ip("10.0.0.1")));
}

#[test]
fn forwarded_header_with_ipv6_and_obfuscated_nodes() {
    let config = ClientIpConfig::new()
        .trust("2001:db8:ffff::/48".parse().unwrap())
        .header(ForwardedHeader::Forwarded);
    let extractor = KeyExtractor::new(KeySource::Ip).client_ip_config(config);
    let chain = request(
        Some("[2001:db8:ffff::1]:443"),
        &[(
            "forwarded",
            br#"for=192.0.2.43, for="[2001:db8:cafe::17]:4711";proto=https, for="[2001:db8:ffff::9]""#,
        )],
    );
    assert_eq!(
        extractor.extract(&chain),
        Extracted::Ip(ip("2001:db8:cafe::17"))
    );
    let hidden = request(
        Some("[2001:db8:ffff::1]:443"),
        &[("forwarded", b"for=192.0.2.43, for=_hidden;by=_proxy")],
    );
    assert_eq!(
        extractor.extract(&hidden),
        Extracted::Ip(ip("2001:db8:ffff::1"))
    );
    // With Forwarded configured, X-Forwarded-For is not read.
    let other = request(
        Some("[2001:db8:ffff::1]:443"),
        &[("x-forwarded-for", b"192.0.2.1")],
    );
    assert_eq!(
        extractor.extract(&other),
        Extracted::Ip(ip("2001:db8:ffff::1"))
    );
}

#[test]
fn ipv4_mapped_peers_are_ipv4() {
    let extractor = behind(&["10.0.0.0/8"]);
    let mapped = request(
        Some("[::ffff:10.0.0.3]:80"),
        &[("x-forwarded-for", b"::ffff:203.0.113.1")],
    );
    assert_eq!(extractor.extract(&mapped), Extracted::Ip(ip("203.0.113.1")));
    let plain = request(Some("[::ffff:198.51.100.1]:80"), &[]);
    assert_eq!(
        behind(&[]).extract(&plain),
        Extracted::Ip(ip("198.51.100.1"))
    );
}

#[test]
fn missing_peer_is_missing() {
    assert_eq!(
        behind(&["0.0.0.0/0"]).extract(&request(None, &[])),
        Extracted::Missing
    );
}

#[test]
fn missing_empty_oversized_and_binary_keys() {
    let by_header = KeyExtractor::new("header.x-api-key".parse().unwrap());
    assert_eq!(by_header.extract(&request(None, &[])), Extracted::Missing);
    assert_eq!(
        by_header.extract(&request(None, &[("x-api-key", b"")])),
        Extracted::Missing
    );
    let max = vec![b'k'; 256];
    assert!(matches!(
        by_header.extract(&request(None, &[("x-api-key", &max)])),
        Extracted::Key(_)
    ));
    let over = vec![b'k'; 257];
    assert_eq!(
        by_header.extract(&request(None, &[("x-api-key", &over)])),
        Extracted::TooLong
    );
    let binary = request(None, &[("x-api-key", b"caf\xe9")]);
    assert_eq!(by_header.extract(&binary).as_bytes(), Some(&b"caf\xe9"[..]));

    let by_cookie = KeyExtractor::new("cookie.sid".parse().unwrap()).max_key_len(8);
    let cookies = request(
        None,
        &[("cookie", b"a=1; sid=\"s-42\""), ("cookie", b"sid=later")],
    );
    assert_eq!(by_cookie.extract(&cookies).as_bytes(), Some(&b"s-42"[..]));
    let second_line = request(None, &[("cookie", b"a=1"), ("cookie", b"b=2;sid=x")]);
    assert_eq!(by_cookie.extract(&second_line).as_bytes(), Some(&b"x"[..]));
    let empty = request(None, &[("cookie", b"sid=; sid=x")]);
    assert_eq!(by_cookie.extract(&empty), Extracted::Missing);
    let long = request(None, &[("cookie", b"sid=123456789")]);
    assert_eq!(by_cookie.extract(&long), Extracted::TooLong);
}

#[test]
fn equal_keys_hash_equally_across_sources() {
    let header = KeyExtractor::new("header.x-user".parse().unwrap());
    let query = KeyExtractor::new("query.user".parse().unwrap());
    let alice = request(None, &[("x-user", b"alice")]);
    let a = header.extract(&alice);
    let q = Request::get("/?user=%61lice").body(()).unwrap();
    assert_eq!(a.hash64(), query.extract(&q).hash64());
    assert_ne!(
        a.hash64(),
        header
            .extract(&request(None, &[("x-user", b"bob")]))
            .hash64()
    );
}
