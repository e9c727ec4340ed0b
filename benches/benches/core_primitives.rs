//! Costs of fluxgate-core's shared primitives on the request path: recording into and reading
//! from windows, quantiles and moving averages, and extracting keys.
//!
//! Run with `cargo bench -p fluxgate-benches --bench core_primitives`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fluxgate_core::ewma::Ewma;
use fluxgate_core::key::{ClientIpConfig, KeyExtractor, KeySource, PeerAddr};
use fluxgate_core::outcome::Outcome;
use fluxgate_core::quantile::LatencyQuantiles;
use fluxgate_core::window::TimeWindow;
use tokio::time::Instant;

fn window(c: &mut Criterion) {
    let window = TimeWindow::new(Duration::from_secs(1), 10).unwrap();
    let now = Instant::now();
    for _ in 0..1_000 {
        window.record(now, Outcome::Success);
    }
    c.bench_function("core/window/record", |b| {
        b.iter(|| window.record(black_box(now), black_box(Outcome::Failure)));
    });
    let later = now + Duration::from_secs(1);
    c.bench_function("core/window/totals", |b| {
        b.iter(|| window.totals(black_box(later)));
    });
}

fn quantile(c: &mut Criterion) {
    let latencies = LatencyQuantiles::new(Duration::from_secs(1), 10).unwrap();
    let start = Instant::now();
    for i in 0..10_000u64 {
        let at = start + Duration::from_millis(i);
        latencies.record(at, Duration::from_micros(500 + (i * 7919) % 200_000));
    }
    let now = start + Duration::from_secs(10);
    let latency = Duration::from_micros(1_234);
    c.bench_function("core/quantile/record", |b| {
        b.iter(|| latencies.record(black_box(now), black_box(latency)));
    });
    c.bench_function("core/quantile/p99", |b| {
        b.iter(|| latencies.quantile(black_box(now), black_box(0.99)));
    });
    c.bench_function("core/quantile/count", |b| {
        b.iter(|| latencies.count(black_box(now)));
    });
}

fn ewma(c: &mut Criterion) {
    let ewma = Ewma::new(Duration::from_secs(1)).unwrap();
    let start = Instant::now();
    let mut step = 0u64;
    c.bench_function("core/ewma/update", |b| {
        b.iter(|| {
            step += 1;
            ewma.update(start + Duration::from_nanos(step * 1_000), black_box(3.5));
        });
    });
    c.bench_function("core/ewma/get", |b| b.iter(|| black_box(&ewma).get()));
}

fn keys(c: &mut Criterion) {
    let mut request = http::Request::builder()
        .header("x-api-key", "k-0123456789abcdef")
        .header(
            "cookie",
            "theme=dark; lang=en; session=abc123def456; tracking=1",
        )
        .header("x-forwarded-for", "198.51.100.20, 10.1.1.1, 10.2.2.2")
        .body(())
        .unwrap();
    request
        .extensions_mut()
        .insert(PeerAddr("10.0.0.5:50000".parse().unwrap()));

    let header = KeyExtractor::new("header.x-api-key".parse().unwrap());
    c.bench_function("core/key/header", |b| {
        b.iter(|| black_box(header.extract(black_box(&request))).hash64());
    });
    let cookie = KeyExtractor::new("cookie.session".parse().unwrap());
    c.bench_function("core/key/cookie", |b| {
        b.iter(|| black_box(cookie.extract(black_box(&request))).hash64());
    });
    let trusted = ClientIpConfig::new().trust("10.0.0.0/8".parse().unwrap());
    let ip = KeyExtractor::new(KeySource::Ip).client_ip_config(trusted);
    c.bench_function("core/key/ip_xff", |b| {
        b.iter(|| black_box(ip.extract(black_box(&request))).hash64());
    });
}

criterion_group!(benches, window, quantile, ewma, keys);
criterion_main!(benches);
