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
        judge.spawn();
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
