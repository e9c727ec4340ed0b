//! Replicas sharing a `LocalFleet`, on tokio's paused clock.

mod support;

use std::time::Duration;

use fluxgate_canary::fleet::{Fleet, LocalFleet};
use fluxgate_canary::{Canary, Phase};
use fluxgate_core::store::PolicyId;
use support::{Backend, canary as compile, get};
use tower::ServiceExt;

const POLICY: &str = "{weight: 50, interval: 2s, minRequests: 30, errorBudget: 0.9}";

#[tokio::test(start_paused = true)]
async fn fleet_traffic_reaches_min_requests() {
    let compiled = compile(POLICY);
    let store = LocalFleet::new();
    let stable = Backend::new("stable");
    let canary = Backend::new("canary");
    canary.set_status(500);
    let mut replicas = Vec::new();
    for name in ["a", "b", "c"] {
        let fleet = Fleet::new(store.clone(), PolicyId::new("t", "web")).replica(name);
        let (router, judge) = Canary::builder(stable.clone(), canary.clone(), compiled.clone())
            .fleet(fleet)
            .build()
            .unwrap();
        judge.spawn().detach();
        replicas.push(router);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for router in &replicas {
        assert!(router.handle().snapshot().fleet.unwrap().joined);
        for _ in 0..25 {
            let _ = router.clone().oneshot(http::Request::new(())).await;
        }
        assert_eq!(router.handle().snapshot().phase, Phase::Progressing);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    for router in &replicas {
        let snapshot = router.handle().snapshot();
        assert_eq!(snapshot.phase, Phase::RolledBack, "{snapshot:#?}");
    }
    let _ = get;
}

/// Two replicas: `a` sends `fast` quick requests, `b` sends `slow` ones whose canary answers in
/// 250ms (all landing at the same instant); returns the replicas after the analysis.
async fn p99_case(fast: usize, slow: usize) -> Vec<support::Router> {
    let spec =
        "{steps: [50, 60], interval: 10s, minRequests: 100, metrics: {targetP99Latency: 100ms}}";
    let compiled = compile(spec);
    let store = LocalFleet::new();
    let mut replicas = Vec::new();
    let slow_canary = Backend::new("canary");
    slow_canary.set_delay(Duration::from_millis(250));
    for (name, canary) in [("a", Backend::new("canary")), ("b", slow_canary)] {
        let fleet = Fleet::new(store.clone(), PolicyId::new("t", "web")).replica(name);
        let (router, judge) = Canary::builder(Backend::new("stable"), canary, compiled.clone())
            .fleet(fleet)
            .build()
            .unwrap();
        judge.spawn().detach();
        replicas.push(router);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    support::burst(&replicas[1], slow).await;
    support::burst(&replicas[0], fast).await;
    tokio::time::sleep(Duration::from_secs(21)).await;
    replicas
}

#[tokio::test(start_paused = true)]
async fn the_p99_is_the_merged_histograms() {
    // 1000 quick canary answers on a, 20 slow ones on b (2%): the fleet's p99 is slow, though
    // a alone passes and b alone is under minRequests.
    let replicas = p99_case(2000, 40).await;
    for router in &replicas {
        let snapshot = router.handle().snapshot();
        assert_eq!(snapshot.failed_checks, 1, "{snapshot:#?}");
        assert_eq!(snapshot.weight, 50);
    }
    // 1000 quick ones and 5 slow ones (0.5%): the p99 is quick and the canary advances, though
    // the average of the replicas' p99s (about 0 and 250ms: 125ms) is over the target.
    let replicas = p99_case(2000, 10).await;
    for router in &replicas {
        let snapshot = router.handle().snapshot();
        assert_eq!(
            (snapshot.failed_checks, snapshot.weight),
            (0, 60),
            "{snapshot:#?}"
        );
    }
}
