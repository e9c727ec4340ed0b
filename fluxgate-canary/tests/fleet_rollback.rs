//! Three replicas sharing a real Redis: the fleet's traffic is judged as one.

mod support;

use std::time::Duration;

use fluxgate_canary::Phase;
use fluxgate_test_support::RedisServer;
use http::Request;
use support::fleet::{Replica, eventually};
use tower::ServiceExt;

const SPEC: &str = "{weight: 50, interval: 5s, minRequests: 30, errorBudget: 0.9}";

async fn three(url: &str, spec: &str, canary_status: u16) -> Vec<Replica> {
    let mut replicas = Vec::new();
    for name in ["a", "b", "c"] {
        replicas.push(Replica::start(url, spec, name, canary_status).await);
    }
    assert!(
        eventually(Duration::from_secs(3), || replicas
            .iter()
            .all(|r| r.fleet().joined))
        .await,
        "replicas joined"
    );
    replicas
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spread_failures_roll_back_every_replica_and_late_joiners_stay_stable() {
    let server = RedisServer::start().unwrap();
    let replicas = three(&server.url(), SPEC, 500).await;
    // About 12 failing canary responses per replica: under minRequests (30) for each alone.
    for replica in &replicas {
        replica.send(25).await;
    }
    assert!(
        eventually(Duration::from_secs(3), || replicas
            .iter()
            .all(|r| r.phase() == Phase::RolledBack))
        .await,
        "{:#?}",
        replicas.iter().map(Replica::snapshot).collect::<Vec<_>>()
    );
    for replica in &replicas {
        let snapshot = replica.snapshot();
        assert!(snapshot.canary.window_requests < 30, "{snapshot:?}");
        assert_eq!(snapshot.weight, 0);
    }
    let before: Vec<usize> = replicas.iter().map(|r| r.canary.calls()).collect();
    for replica in &replicas {
        replica.send(50).await;
    }
    let after: Vec<usize> = replicas.iter().map(|r| r.canary.calls()).collect();
    assert_eq!(before, after, "no canary traffic after the rollback");

    // A replica started after the rollback sends nothing to the canary, before and after it
    // has read the fleet's state.
    let late = Replica::start(&server.url(), SPEC, "late", 500).await;
    late.send(20).await;
    assert!(eventually(Duration::from_secs(3), || late.fleet().joined).await);
    late.send(50).await;
    assert_eq!(late.canary.calls(), 0);
    assert_eq!(late.phase(), Phase::RolledBack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_canary_advances_on_fleet_traffic() {
    let server = RedisServer::start().unwrap();
    let spec = "{steps: [20, 60], interval: 1s, minRequests: 30, metrics: {targetErrorRate: 0.05}}";
    let replicas = three(&server.url(), spec, 200).await;
    // About 5 canary responses per replica per interval: the fleet reaches 30 in 2 intervals.
    let advanced = eventually(Duration::from_secs(8), || {
        replicas.iter().all(|r| r.snapshot().weight >= 60)
    });
    let traffic = async {
        loop {
            for replica in &replicas {
                replica.send(5).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let advanced = tokio::select! {
        advanced = advanced => advanced,
        () = traffic => unreachable!(),
    };
    assert!(advanced, "{:#?}", replicas[0].snapshot());
    let leaders = replicas.iter().filter(|r| r.fleet().leader).count();
    assert_eq!(leaders, 1, "one replica holds the lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_assignment_is_the_same_on_every_replica() {
    let server = RedisServer::start().unwrap();
    let spec = "{weight: 30, interval: 10s, stickyKey: header.x-client-id}";
    let replicas = three(&server.url(), spec, 200).await;
    for client in 0..200 {
        let mut sides = Vec::new();
        for replica in &replicas {
            let request = Request::get("/")
                .header("x-client-id", format!("user-{client}"))
                .body(())
                .unwrap();
            let response = replica.router.clone().oneshot(request).await.unwrap();
            sides.push(*response.body().get_ref());
        }
        assert!(
            sides.windows(2).all(|w| w[0] == w[1]),
            "user-{client}: {sides:?}"
        );
    }
}
