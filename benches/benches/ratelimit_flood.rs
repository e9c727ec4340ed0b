//! Peak memory after one million distinct keys through FluxGate's layer (local store, default
//! `max_keys`), and the per-request time of a known client during and after the flood.
//!
//! Run with: `cargo bench -p fluxgate-benches --bench ratelimit_flood`

use std::convert::Infallible;
use std::future::ready;
use std::pin::pin;
use std::task::{Context, Waker};
use tokio::time::Instant;

use fluxgate_core::policy::{LimitAlgorithm, RateLimitSpec};
use fluxgate_ratelimit::RateLimitLayer;
use fluxgate_ratelimit::store::LocalStore;
use http::{Request, Response};
use tower::{Layer, Service, service_fn};

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: 0 kB");
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    for algorithm in [LimitAlgorithm::Gcra, LimitAlgorithm::SlidingWindow] {
        let store = LocalStore::new();
        let mut limit = RateLimitSpec::new(100.0, 10);
        limit.key_extractor = "header.x-api-key".into();
        limit.algorithm = algorithm;
        let layer = RateLimitLayer::builder()
            .limit(limit)
            .store(store.clone())
            .build()
            .unwrap();
        let mut svc = layer.layer(service_fn(|_r: Request<()>| {
            ready(Ok::<_, Infallible>(Response::new(())))
        }));
        let mut cx = Context::from_waker(Waker::noop());
        let mut send = |key: &str| {
            let mut req = Request::new(());
            req.headers_mut().insert("x-api-key", key.parse().unwrap());
            let _ = svc.poll_ready(&mut cx);
            let fut = pin!(svc.call(req));
            matches!(fut.poll(&mut cx), std::task::Poll::Ready(Ok(r)) if r.status() == 200)
        };
        let before = peak_rss_kib();
        // A client seen before the flood keeps its own bucket through it.
        send("known-client");
        let start = Instant::now();
        let mut admitted = 0u64;
        for i in 0..1_000_000u32 {
            admitted += u64::from(send(&format!("flood-{i}")));
        }
        let flood = start.elapsed();
        let t = Instant::now();
        let known = (0..9).filter(|_| send("known-client")).count();
        let known_ns = t.elapsed().as_nanos() / 9;
        println!(
            "ratelimit/flood/{algorithm:?}: 1M keys in {flood:?} ({} ns/req), {admitted} admitted, \
             keys held {}, peak RSS {} MiB (before {} MiB), known client {known}/9 admitted at {known_ns} ns/req",
            flood.as_nanos() / 1_000_000,
            store.key_count(),
            peak_rss_kib() / 1024,
            before / 1024,
        );
    }
}
