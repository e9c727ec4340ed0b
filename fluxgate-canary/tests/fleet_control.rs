//! Manual actions reach every replica of a fleet sharing a real Redis; the lease fails over.

mod support;

use std::time::Duration;

use fluxgate_canary::fleet::{RedisFleet, request};
use fluxgate_canary::{Action, Phase};
use fluxgate_test_support::RedisServer;
use support::fleet::{Replica, eventually, id};
use tokio::time::Instant;

const SPEC: &str = "{weight: 50, interval: 10s, minRequests: 20, errorBudget: 0.5}";

async fn three(url: &str, spec: &str, canary_status: u16) -> Vec<Replica> {
    let mut replicas = Vec::new();
    for name in ["a", "b", "c"] {
        replicas.push(Replica::start(url, spec, name, canary_status).await);
    }
    assert!(
        eventually(Duration::from_secs(3), || replicas
            .iter()
            .all(|r| r.fleet().joined))
        .await
    );
    replicas
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_through_one_handle_stops_the_canary_everywhere_within_a_second() {
    let server = RedisServer::start().unwrap();
    let replicas = three(&server.url(), SPEC, 200).await;
    for replica in &replicas {
        replica.send(10).await;
        assert!(replica.canary.calls() > 0);
    }
    let asked = Instant::now();
    replicas[1].router.handle().abort().unwrap();
    let stopped = eventually(Duration::from_secs(1), || {
        replicas.iter().all(|r| r.phase() == Phase::RolledBack)
    })
    .await;
    assert!(stopped, "every replica rolled back within 1s of the abort");
    let took = asked.elapsed();
    let before: Vec<usize> = replicas.iter().map(|r| r.canary.calls()).collect();
    for replica in &replicas {
        replica.send(30).await;
    }
    let after: Vec<usize> = replicas.iter().map(|r| r.canary.calls()).collect();
    assert_eq!(before, after);
    eprintln!("abort reached every replica in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_acts_on_the_fleet_and_lists_its_replicas() {
    let server = RedisServer::start().unwrap();
    let replicas = three(&server.url(), SPEC, 200).await;
    let tool = RedisFleet::connect(&server.url()).await.unwrap();
    let live = tool_replicas(&tool).await;
    assert_eq!(live, ["a", "b", "c"]);

    let paused = request(&tool, &id(), Action::Pause, "fluxctl")
        .await
        .unwrap();
    assert_eq!(paused.phase, Phase::Paused);
    assert!(
        eventually(Duration::from_secs(1), || replicas
            .iter()
            .all(|r| r.phase() == Phase::Paused))
        .await
    );
    // An action that does not apply is refused, and nothing changes.
    assert!(
        request(&tool, &id(), Action::Pause, "fluxctl")
            .await
            .is_err()
    );
    request(&tool, &id(), Action::Resume, "fluxctl")
        .await
        .unwrap();
    let promoted = request(&tool, &id(), Action::Promote, "fluxctl")
        .await
        .unwrap();
    assert_eq!((promoted.phase, promoted.weight), (Phase::Promoted, 100));
    assert!(
        eventually(Duration::from_secs(1), || replicas
            .iter()
            .all(|r| r.phase() == Phase::Promoted))
        .await
    );
    let stored = fluxgate_canary::fleet::FleetStore::load(&tool, &id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.decided_by, "fluxctl");

    // A replica that stops beating disappears from the list.
    drop(replicas);
    assert!(
        eventually_async(Duration::from_secs(8), || async {
            tool_replicas(&tool).await.is_empty()
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_fails_over_when_the_deciding_judge_stops() {
    let server = RedisServer::start().unwrap();
    let mut replicas = three(&server.url(), SPEC, 200).await;
    assert!(
        eventually(Duration::from_secs(3), || replicas
            .iter()
            .filter(|r| r.fleet().leader)
            .count()
            == 1)
        .await
    );
    let leader = replicas.iter().position(|r| r.fleet().leader).unwrap();
    replicas[leader].stop_judge();
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let took_over = eventually(Duration::from_secs(4), || {
        others.iter().any(|i| replicas[*i].fleet().leader)
    })
    .await;
    assert!(took_over, "another replica took the lease");
    // The new holder judges: failing canary traffic on the remaining replicas rolls them back.
    for i in &others {
        replicas[*i].canary.set_status(500);
    }
    for i in &others {
        replicas[*i].send(30).await;
    }
    assert!(
        eventually(Duration::from_secs(3), || others
            .iter()
            .all(|i| replicas[*i].phase() == Phase::RolledBack))
        .await
    );
}

async fn tool_replicas(tool: &RedisFleet) -> Vec<String> {
    fluxgate_canary::fleet::FleetStore::replicas(tool, &id())
        .await
        .unwrap()
}

async fn eventually_async<F: Future<Output = bool>>(
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
