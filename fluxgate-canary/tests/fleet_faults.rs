//! Redis killed and restarted mid-rollout: replicas keep the last known state, never step
//! without the fleet's view, roll back locally on the error budget, and publish it later.

mod support;

use std::time::Duration;

use fluxgate_canary::Phase;
use fluxgate_canary::fleet::{FleetStore, RedisFleet};
use fluxgate_test_support::RedisServer;
use support::fleet::{Replica, eventually, id};

const SPEC: &str = "{steps: [20, 40, 60, 80], interval: 1s, minRequests: 20, errorBudget: 0.8, metrics: {targetErrorRate: 0.5}}";

/// Sends `n` requests to every replica every 100ms for `duration`.
async fn traffic(replicas: &[Replica], n: usize, duration: Duration) {
    let until = tokio::time::Instant::now() + duration;
    while tokio::time::Instant::now() < until {
        for replica in replicas {
            replica.send(n).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn weights(replicas: &[Replica]) -> Vec<u8> {
    replicas.iter().map(|r| r.snapshot().weight).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_mid_rollout() {
    let mut server = RedisServer::start().unwrap();
    let url = server.url();
    let mut replicas = Vec::new();
    for name in ["a", "b", "c"] {
        replicas.push(Replica::start(&url, SPEC, name, 200).await);
    }
    // Healthy traffic until the fleet is past its first step, then quiet (analyses hold).
    let stepped = async {
        loop {
            for replica in &replicas {
                replica.send(10).await;
            }
            if replicas.iter().all(|r| r.snapshot().weight >= 40) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), stepped)
        .await
        .expect("the fleet advanced");
    let held = weights(&replicas);
    assert!(held.windows(2).all(|w| w[0] == w[1]), "{held:?}");
    assert!(held[0] < 100);

    // Redis down: healthy traffic that would pass every analysis moves nothing.
    server.stop();
    let down = async {
        let until = tokio::time::Instant::now() + Duration::from_millis(2500);
        while tokio::time::Instant::now() < until {
            for replica in &replicas {
                replica.send(10).await;
                let snapshot = replica.snapshot();
                assert_eq!(snapshot.weight, held[0], "no step without the fleet's view");
                assert_eq!(
                    snapshot.phase,
                    Phase::Progressing,
                    "no promotion while down"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    down.await;
    assert!(replicas.iter().all(|r| !r.fleet().connected));
    assert!(
        replicas.iter().all(|r| r.canary.calls() > 0),
        "routing kept the weight"
    );

    // Back, empty: the state is seeded again from the replicas' last known state.
    tokio::task::block_in_place(|| server.restart()).unwrap();
    let tool = RedisFleet::connect(&url).await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || replicas
            .iter()
            .all(|r| r.fleet().connected))
        .await
    );
    let state = tool.load(&id()).await.unwrap().expect("state seeded again");
    assert!(
        state.weight >= held[0],
        "the rollout is not restarted: {state:?}"
    );

    // Down again; replica a's canary fails: a rolls back on its own traffic (safety first),
    // the others keep their state.
    server.stop();
    tokio::time::sleep(Duration::from_millis(1200)).await; // every replica has seen it down
    assert!(replicas.iter().all(|r| !r.fleet().connected));
    let before = weights(&replicas);
    replicas[0].canary.set_status(500);
    traffic(&replicas[..1], 10, Duration::from_millis(1500)).await;
    assert!(
        eventually(Duration::from_secs(3), || replicas[0].phase()
            == Phase::RolledBack)
        .await
    );
    assert!(replicas[0].fleet().rollback_pending);
    // Each keeps its own last known state: a step the lease holder wrote just before Redis
    // went down may have reached one replica and not another, so b and c may differ.
    for (replica, weight) in replicas.iter().zip(&before).skip(1) {
        assert_eq!(replica.phase(), Phase::Progressing);
        assert_eq!(replica.snapshot().weight, *weight, "{before:?}");
    }

    // Back: the local rollback is published and every replica follows.
    tokio::task::block_in_place(|| server.restart()).unwrap();
    assert!(
        eventually(Duration::from_secs(6), || replicas
            .iter()
            .all(|r| r.phase() == Phase::RolledBack))
        .await,
        "{:#?}",
        replicas.iter().map(Replica::snapshot).collect::<Vec<_>>()
    );
    assert!(!replicas[0].fleet().rollback_pending);
    let calls: Vec<usize> = replicas.iter().map(|r| r.canary.calls()).collect();
    traffic(&replicas, 5, Duration::from_millis(300)).await;
    assert_eq!(
        calls,
        replicas
            .iter()
            .map(|r| r.canary.calls())
            .collect::<Vec<_>>()
    );
}
