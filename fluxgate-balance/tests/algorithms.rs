//! Each algorithm's distribution, on a paused clock.

mod common;

use std::sync::atomic::Ordering;

use common::{drive, endpoints};
use fluxgate_balance::Balance;
use fluxgate_core::policy::{BalanceAlgorithm, LoadBalancing};
use tower::{Service, ServiceExt};

fn policy(algorithm: BalanceAlgorithm) -> LoadBalancing {
    let mut p = LoadBalancing::default();
    p.algorithm = algorithm;
    p
}

#[tokio::test(start_paused = true)]
async fn weighted_round_robin_interleaves_smoothly() {
    let (list, _) = endpoints(&[("a", 0, 5), ("b", 0, 1), ("c", 0, 1)]);
    let mut balance = Balance::new(policy(BalanceAlgorithm::WeightedRoundRobin), list);
    let mut picks = String::new();
    for _ in 0..14 {
        let resp = balance
            .ready()
            .await
            .unwrap()
            .call(http::Request::new(()))
            .await
            .unwrap();
        picks.push_str(resp.body());
    }
    assert_eq!(picks, "aabacaaaabacaa");
}

#[tokio::test(start_paused = true)]
async fn weighted_round_robin_follows_weights() {
    let (list, _) = endpoints(&[("a", 1, 3), ("b", 1, 1), ("c", 1, 0)]);
    let mut balance = Balance::new(policy(BalanceAlgorithm::WeightedRoundRobin), list);
    let tally = drive(&mut balance, 5_000, 10, None).await;
    assert_eq!(
        (tally.get("a"), tally.get("b"), tally.get("c")),
        (3_000, 1_000, 1_000)
    );
}

#[tokio::test(start_paused = true)]
async fn round_robin_ignores_weights_and_is_even() {
    let (list, _) = endpoints(&[("a", 1, 9), ("b", 1, 1), ("c", 1, 1), ("d", 1, 1)]);
    let mut balance = Balance::new(policy(BalanceAlgorithm::RoundRobin), list);
    let tally = drive(&mut balance, 4_000, 8, None).await;
    for name in ["a", "b", "c", "d"] {
        assert_eq!(tally.get(name), 1_000, "{tally:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn least_request_avoids_endpoints_with_requests_piling_up() {
    // "slow" holds requests 20x longer, so its in-flight count grows and P2C avoids it.
    let (list, _) = endpoints(&[("fast", 5, 1), ("slow", 100, 1), ("fast2", 5, 1)]);
    let mut balance = Balance::new(policy(BalanceAlgorithm::LeastRequest), list);
    let tally = drive(&mut balance, 6_000, 30, None).await;
    let slow = tally.get("slow") as f64 / 6_000.0;
    assert!(slow < 0.15, "slow share {slow}: {tally:?}");
    assert_eq!(tally.errors, 0);
}

#[tokio::test(start_paused = true)]
async fn peak_ewma_prefers_low_latency() {
    let (list, _) = endpoints(&[("a", 2, 1), ("b", 20, 1), ("c", 20, 1), ("d", 20, 1)]);
    let mut balance = Balance::new(policy(BalanceAlgorithm::PeakEwma), list);
    let tally = drive(&mut balance, 8_000, 8, None).await;
    // P2C draws "a" into half the pairs (4 endpoints) and it should win nearly all of them.
    let fast = tally.get("a") as f64 / 8_000.0;
    assert!(fast > 0.45, "fast share {fast}: {tally:?}");
}

#[tokio::test(start_paused = true)]
async fn adaptive_prefers_fast_and_spare_endpoints() {
    let (list, scripts) = endpoints(&[("a", 5, 1), ("b", 15, 1), ("c", 5, 1), ("d", 5, 1)]);
    scripts["d"].util.store(950, Ordering::Relaxed);
    let mut balance = Balance::new(policy(BalanceAlgorithm::Adaptive), list);
    let tally = drive(&mut balance, 8_000, 8, None).await;
    let (a, b, c, d) = (
        tally.get("a"),
        tally.get("b"),
        tally.get("c"),
        tally.get("d"),
    );
    assert!(b < a / 4 && b < c / 4, "slow endpoint got {b}: {tally:?}");
    assert!(d < a / 4 && d < c / 4, "busy endpoint got {d}: {tally:?}");
    let snapshot = balance.handle().snapshot();
    let busy = snapshot.iter().find(|s| s.key == "d").unwrap();
    assert_eq!(busy.utilization, Some(0.95));
}

#[tokio::test(start_paused = true)]
async fn fast_failing_endpoint_does_not_attract_traffic() {
    for algorithm in [
        BalanceAlgorithm::PeakEwma,
        BalanceAlgorithm::Adaptive,
        BalanceAlgorithm::LeastRequest,
        BalanceAlgorithm::WeightedRoundRobin,
    ] {
        let (list, scripts) =
            endpoints(&[("a", 10, 1), ("b", 10, 1), ("fails", 0, 1), ("d", 10, 1)]);
        scripts["fails"].status.store(500, Ordering::Relaxed);
        let mut balance = Balance::new(policy(algorithm), list);
        let tally = drive(&mut balance, 4_000, 16, None).await;
        let share = tally.get("fails") as f64 / 4_000.0;
        assert!(
            share < 0.1,
            "{algorithm:?}: failing share {share}: {tally:?}"
        );
    }
}
