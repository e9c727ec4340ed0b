//! Windows, quantiles and moving averages on tokio's paused clock.

use std::time::Duration;

use fluxgate_core::ewma::Ewma;
use fluxgate_core::outcome::{Outcome, classify_status};
use fluxgate_core::quantile::LatencyQuantiles;
use fluxgate_core::window::TimeWindow;
use tokio::time::{Instant, advance};

#[tokio::test(start_paused = true)]
async fn a_failure_burst_enters_and_leaves_the_window() {
    let window = TimeWindow::new(Duration::from_millis(200), 5).unwrap();
    for status in [200, 200, 500, 503, 404] {
        let outcome = classify_status(http::StatusCode::from_u16(status).unwrap()).outcome;
        window.record(Instant::now(), outcome);
    }
    advance(Duration::from_millis(200)).await;
    let totals = window.totals(Instant::now());
    assert_eq!(
        (totals.requests, totals.failures, totals.overloads),
        (5, 1, 1)
    );
    assert_eq!(totals.success_rate(), Some(0.6));
    for _ in 0..5 {
        window.record(Instant::now(), Outcome::Success);
        advance(Duration::from_millis(200)).await;
    }
    assert_eq!(
        window.totals(Instant::now()).requests,
        5,
        "the burst's bucket has slid out"
    );
    assert_eq!(window.totals(Instant::now()).failure_rate(), Some(0.0));
}

#[tokio::test(start_paused = true)]
async fn p99_tracks_a_slowdown_and_recovers() {
    let latencies = LatencyQuantiles::new(Duration::from_secs(1), 10).unwrap();
    for i in 0..1_000u64 {
        latencies.record(Instant::now(), Duration::from_micros(1_000 + i));
    }
    advance(Duration::from_secs(1)).await;
    let p99 = latencies.quantile(Instant::now(), 0.99).unwrap();
    assert!(p99.abs_diff(Duration::from_micros(1_990)) <= Duration::from_micros(1_990) / 64);
    for _ in 0..100 {
        latencies.record(Instant::now(), Duration::from_millis(900));
    }
    advance(Duration::from_secs(1)).await;
    let p95 = latencies.quantile(Instant::now(), 0.95).unwrap();
    assert!(p95 > Duration::from_millis(880), "{p95:?}");
    advance(Duration::from_secs(9)).await;
    assert_eq!(latencies.count(Instant::now()), 100);
    advance(Duration::from_secs(1)).await;
    assert_eq!(latencies.quantile(Instant::now(), 0.99), None);
}

#[tokio::test(start_paused = true)]
async fn ewma_follows_a_step() {
    let ewma = Ewma::new(Duration::from_secs(1)).unwrap();
    ewma.update(Instant::now(), 10.0);
    for _ in 0..10 {
        advance(Duration::from_secs(1)).await;
        ewma.update(Instant::now(), 110.0);
    }
    // After ten half-lives, 1/1024 of the gap remains.
    let value = ewma.get().unwrap();
    assert!((value - (110.0 - 100.0 / 1024.0)).abs() < 1e-9, "{value}");
}
