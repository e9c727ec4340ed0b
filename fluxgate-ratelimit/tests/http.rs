//! The HTTP layer: admission counts, answers, keys, several limits, shadow, overrides.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use fluxgate_core::policy::{LimitAlgorithm, MissingKey, RateLimitSpec, RateOverride};
use fluxgate_ratelimit::{RateLimitError, RateLimitLayer};
use support::*;
use tower::{Layer, ServiceExt};

fn limit(rps: f64, burst: u32, key: &str, algorithm: LimitAlgorithm) -> RateLimitSpec {
    let mut limit = RateLimitSpec::new(rps, burst);
    limit.key_extractor = key.to_owned();
    limit.algorithm = algorithm;
    limit
}

/// Sends one request every `every` for `total`, returns how many were admitted.
async fn pattern(
    algorithm: LimitAlgorithm,
    rps: f64,
    burst: u32,
    every: Duration,
    n: usize,
) -> usize {
    let layer = RateLimitLayer::builder()
        .limit(limit(rps, burst, "ip", algorithm))
        .build()
        .unwrap();
    let (mut svc, calls) = service(&layer);
    for _ in 0..n {
        status(&mut svc, from("192.0.2.1:1000")).await;
        tokio::time::advance(every).await;
    }
    calls.load(Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn exact_admissions_gcra() {
    // 100 requests at once: the burst of 10.
    assert_eq!(
        pattern(LimitAlgorithm::Gcra, 5.0, 10, Duration::ZERO, 100).await,
        10
    );
    // One every 100ms for 10s at 5/s burst 10: 10 at the start, then one per 200ms (49 more).
    assert_eq!(
        pattern(
            LimitAlgorithm::Gcra,
            5.0,
            10,
            Duration::from_millis(100),
            100
        )
        .await,
        59
    );
}

#[tokio::test(start_paused = true)]
async fn exact_admissions_sliding_window() {
    assert_eq!(
        pattern(LimitAlgorithm::SlidingWindow, 5.0, 10, Duration::ZERO, 100).await,
        10
    );
    // Window 2s, 10 per window; one request every 100ms for 10s (five windows): the first
    // window's 10 at once, then the weighted previous window lets one in every 200ms.
    assert_eq!(
        pattern(
            LimitAlgorithm::SlidingWindow,
            5.0,
            10,
            Duration::from_millis(100),
            100
        )
        .await,
        50
    );
}

#[tokio::test(start_paused = true)]
async fn refusal_headers() {
    let mut named = limit(1.0, 2, "ip", LimitAlgorithm::Gcra);
    named.name = Some("per-ip".into());
    let layer = RateLimitLayer::builder().limit(named).build().unwrap();
    let (mut svc, calls) = service(&layer);
    let ok = send(&mut svc, from("192.0.2.1:1")).await;
    assert_eq!(ok.headers()["ratelimit-policy"], r#""per-ip";q=2;w=2"#);
    assert_eq!(ok.headers()["ratelimit"], r#""per-ip";r=1;t=1"#);
    send(&mut svc, from("192.0.2.1:1")).await;
    let refused = send(&mut svc, from("192.0.2.1:1")).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(refused.headers()["ratelimit"], r#""per-ip";r=0;t=1"#);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "a refused request reached the inner service"
    );
    let m = layer.metrics();
    assert_eq!((m.admitted, m.refused, m.limits[0].refused), (2, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn admit_headers_can_be_off() {
    let layer = RateLimitLayer::builder()
        .limit(RateLimitSpec::new(1.0, 2))
        .admit_headers(false)
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    assert!(
        send(&mut svc, from("192.0.2.1:1"))
            .await
            .headers()
            .get("ratelimit")
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn grpc_refusal_is_resource_exhausted() {
    let layer = RateLimitLayer::builder()
        .limit(RateLimitSpec::new(1.0, 1))
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    let grpc = || with_header("192.0.2.1:1", "content-type", b"application/grpc+proto");
    send(&mut svc, grpc()).await;
    let refused = send(&mut svc, grpc()).await;
    assert_eq!(refused.status(), 200);
    assert_eq!(refused.headers()["grpc-status"], "8");
    assert_eq!(refused.headers()["content-type"], "application/grpc");
    assert!(refused.headers().contains_key("grpc-message"));
    assert!(refused.body().is_empty());
}

#[tokio::test(start_paused = true)]
async fn typed_variant_errors() {
    let layer = RateLimitLayer::builder()
        .limit(RateLimitSpec::new(1.0, 1))
        .build()
        .unwrap()
        .erroring();
    let svc = layer.layer(inner(Default::default()));
    assert!(svc.clone().oneshot(from("192.0.2.1:1")).await.is_ok());
    let error = svc.oneshot(from("192.0.2.1:1")).await.unwrap_err();
    match error.downcast_ref::<RateLimitError>() {
        Some(RateLimitError::Limited { retry_after, limit }) => {
            assert_eq!(limit, "limit-0");
            // Window of 1s: the next window admits 1ns after it starts.
            assert!(
                *retry_after >= Duration::from_secs(1)
                    && *retry_after <= Duration::from_micros(1_000_001)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn missing_key_falls_back_to_ip() {
    let layer = RateLimitLayer::builder()
        .limit(limit(1.0, 1, "header.x-api-key", LimitAlgorithm::Gcra))
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    assert_eq!(status(&mut svc, from("192.0.2.1:1")).await, 200);
    assert_eq!(
        status(&mut svc, from("192.0.2.1:2")).await,
        429,
        "same IP, same bucket"
    );
    assert_eq!(
        status(&mut svc, from("192.0.2.2:1")).await,
        200,
        "another IP"
    );
    assert_eq!(
        status(&mut svc, with_header("192.0.2.1:1", "x-api-key", b"k1")).await,
        200
    );
}

#[tokio::test(start_paused = true)]
async fn missing_key_reject_and_shared() {
    let mut reject = limit(1.0, 1, "header.x-api-key", LimitAlgorithm::Gcra);
    reject.missing_key = MissingKey::Reject;
    let layer = RateLimitLayer::builder()
        .limit(reject)
        .reject_status(http::StatusCode::UNAUTHORIZED)
        .build()
        .unwrap();
    let (mut svc, calls) = service(&layer);
    assert_eq!(status(&mut svc, from("192.0.2.1:1")).await, 401);
    let grpc = send(
        &mut svc,
        with_header("192.0.2.1:1", "content-type", b"application/grpc"),
    )
    .await;
    assert_eq!(grpc.headers()["grpc-status"], "16");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(layer.metrics().rejected, 2);

    let mut shared = limit(1.0, 1, "header.x-api-key", LimitAlgorithm::Gcra);
    shared.missing_key = MissingKey::Shared;
    let layer = RateLimitLayer::builder().limit(shared).build().unwrap();
    let (mut svc, _) = service(&layer);
    assert_eq!(status(&mut svc, from("192.0.2.1:1")).await, 200);
    assert_eq!(
        status(&mut svc, from("192.0.2.2:1")).await,
        429,
        "keyless requests share one bucket"
    );
}

#[tokio::test(start_paused = true)]
async fn every_limit_must_admit() {
    let per_ip = limit(1.0, 3, "ip", LimitAlgorithm::SlidingWindow);
    let per_key = limit(1.0, 1, "header.x-api-key", LimitAlgorithm::Gcra);
    let layer = RateLimitLayer::builder()
        .limit(per_ip)
        .limit(per_key)
        .build()
        .unwrap();
    let (mut svc, calls) = service(&layer);
    let req = |key: &[u8]| with_header("192.0.2.1:1", "x-api-key", key);
    assert_eq!(status(&mut svc, req(b"a")).await, 200);
    for _ in 0..3 {
        assert_eq!(status(&mut svc, req(b"a")).await, 429);
    }
    // Refusals by the key limit took nothing from the IP limit: two more keys fit.
    assert_eq!(status(&mut svc, req(b"b")).await, 200);
    assert_eq!(status(&mut svc, req(b"c")).await, 200);
    assert_eq!(status(&mut svc, req(b"d")).await, 429);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let m = layer.metrics();
    assert_eq!((m.limits[0].refused, m.limits[1].refused), (1, 3));
}

#[tokio::test(start_paused = true)]
async fn shadow_counts_without_refusing() {
    let mut shadow = limit(1.0, 1, "ip", LimitAlgorithm::Gcra);
    shadow.shadow = true;
    let layer = RateLimitLayer::builder().limit(shadow).build().unwrap();
    let (mut svc, calls) = service(&layer);
    for _ in 0..5 {
        assert_eq!(status(&mut svc, from("192.0.2.1:1")).await, 200);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    let m = layer.metrics();
    assert_eq!(
        (m.limits[0].admitted, m.limits[0].shadow_refused, m.refused),
        (1, 4, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn overrides_give_keys_their_quota() {
    let mut tiered = limit(1.0, 1, "header.x-api-key", LimitAlgorithm::SlidingWindow);
    tiered.overrides = vec![RateOverride {
        key: "gold".into(),
        requests_per_second: 10.0,
        burst_size: 5,
    }];
    let layer = RateLimitLayer::builder().limit(tiered).build().unwrap();
    let (mut svc, _) = service(&layer);
    let mut gold = 0;
    let mut basic = 0;
    for _ in 0..10 {
        gold += u32::from(
            status(&mut svc, with_header("192.0.2.1:1", "x-api-key", b"gold")).await == 200,
        );
        basic += u32::from(
            status(&mut svc, with_header("192.0.2.1:1", "x-api-key", b"basic")).await == 200,
        );
    }
    assert_eq!((gold, basic), (5, 1));
    let gold_headers = send(&mut svc, with_header("192.0.2.1:1", "x-api-key", b"gold")).await;
    assert_eq!(
        gold_headers.headers()["ratelimit-policy"],
        r#""limit-0";q=10;w=1;burst=5"#,
        "10/s, of which 5 at once"
    );
}

#[tokio::test(start_paused = true)]
async fn refusal_clears_after_retry_after() {
    let layer = RateLimitLayer::builder()
        .limit(RateLimitSpec::new(2.0, 1))
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    assert_eq!(status(&mut svc, from("192.0.2.1:1")).await, 200);
    assert_eq!(status(&mut svc, from("192.0.2.1:1")).await, 429);
    // Sliding window of 500ms: the previous window weighs fully at its end, so just after.
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(status(&mut svc, from("192.0.2.1:1")).await, 429);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(status(&mut svc, from("192.0.2.1:1")).await, 200);
}
