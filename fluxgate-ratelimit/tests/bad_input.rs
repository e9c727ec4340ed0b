//! Bad input: each has a defined answer.

mod support;

use std::sync::atomic::Ordering;

use fluxgate_core::key::ClientIpConfig;
use fluxgate_core::policy::RateLimitSpec;
use fluxgate_ratelimit::RateLimitLayer;
use support::*;

fn by_header() -> RateLimitLayer {
    let mut limit = RateLimitSpec::new(1.0, 1);
    limit.key_extractor = "header.x-api-key".into();
    RateLimitLayer::builder()
        .limit(limit)
        .max_key_len(64)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn oversized_key_is_400_and_never_reaches_inner() {
    let layer = by_header();
    let (mut svc, calls) = service(&layer);
    assert_eq!(
        status(
            &mut svc,
            with_header("192.0.2.1:1", "x-api-key", &[b'a'; 65])
        )
        .await,
        400
    );
    let grpc = {
        let mut r = with_header("192.0.2.1:1", "x-api-key", &[b'a'; 65]);
        r.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        send(&mut svc, r).await
    };
    assert_eq!(grpc.headers()["grpc-status"], "3");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(layer.metrics().rejected, 2);
}

#[tokio::test(start_paused = true)]
async fn non_utf8_keys_are_keys() {
    let layer = by_header();
    let (mut svc, _) = service(&layer);
    assert_eq!(
        status(
            &mut svc,
            with_header("192.0.2.1:1", "x-api-key", b"\xff\xfe")
        )
        .await,
        200
    );
    assert_eq!(
        status(
            &mut svc,
            with_header("192.0.2.2:1", "x-api-key", b"\xff\xfe")
        )
        .await,
        429
    );
    assert_eq!(
        status(
            &mut svc,
            with_header("192.0.2.1:1", "x-api-key", b"\xff\xfd")
        )
        .await,
        200
    );
}

#[tokio::test(start_paused = true)]
async fn empty_key_is_missing() {
    let layer = by_header();
    let (mut svc, _) = service(&layer);
    // Empty (or blank) values fall back to the client IP, like an absent header.
    assert_eq!(
        status(&mut svc, with_header("192.0.2.1:1", "x-api-key", b"  ")).await,
        200
    );
    assert_eq!(status(&mut svc, from("192.0.2.1:1")).await, 429);
}

#[tokio::test(start_paused = true)]
async fn repeated_headers_use_the_first() {
    let layer = by_header();
    let (mut svc, _) = service(&layer);
    let mut request = with_header("192.0.2.1:1", "x-api-key", b"first");
    for i in 0..1000 {
        request
            .headers_mut()
            .append("x-api-key", format!("other-{i}").parse().unwrap());
    }
    assert_eq!(status(&mut svc, request).await, 200);
    assert_eq!(
        status(&mut svc, with_header("192.0.2.9:1", "x-api-key", b"first")).await,
        429
    );
    assert_eq!(
        status(
            &mut svc,
            with_header("192.0.2.9:1", "x-api-key", b"other-0")
        )
        .await,
        200
    );
}

#[tokio::test(start_paused = true)]
async fn ipv4_mapped_peer_is_its_ipv4() {
    let layer = RateLimitLayer::builder()
        .limit(RateLimitSpec::new(1.0, 1))
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    assert_eq!(status(&mut svc, from("[::ffff:192.0.2.1]:1")).await, 200);
    assert_eq!(status(&mut svc, from("192.0.2.1:2")).await, 429);
    // IPv6 clients are keyed by their full address.
    assert_eq!(status(&mut svc, from("[2001:db8::1]:1")).await, 200);
    assert_eq!(status(&mut svc, from("[2001:db8::1]:2")).await, 429);
    assert_eq!(status(&mut svc, from("[2001:db8::2]:1")).await, 200);
}

#[tokio::test(start_paused = true)]
async fn spoofed_forwarded_for_is_ignored_from_untrusted_peers() {
    let layer = RateLimitLayer::builder()
        .limit(RateLimitSpec::new(1.0, 1))
        .client_ip(ClientIpConfig::new().trust("10.0.0.0/8".parse().unwrap()))
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    let spoof = |peer: &str, xff: &str| with_header(peer, "x-forwarded-for", xff.as_bytes());
    assert_eq!(
        status(&mut svc, spoof("198.51.100.7:1", "203.0.113.1")).await,
        200
    );
    // A different forged address does not buy a new bucket: the peer is the key.
    assert_eq!(
        status(&mut svc, spoof("198.51.100.7:1", "203.0.113.2")).await,
        429
    );
    // Through a trusted proxy, the forwarded client is the key.
    assert_eq!(
        status(&mut svc, spoof("10.0.0.5:1", "203.0.113.1")).await,
        200
    );
    assert_eq!(
        status(&mut svc, spoof("10.0.0.6:1", "203.0.113.1")).await,
        429
    );
}

#[tokio::test(start_paused = true)]
async fn no_peer_address_shares_one_bucket() {
    let layer = RateLimitLayer::builder()
        .limit(RateLimitSpec::new(1.0, 1))
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    assert_eq!(status(&mut svc, http::Request::new(())).await, 200);
    assert_eq!(status(&mut svc, http::Request::new(())).await, 429);
}
