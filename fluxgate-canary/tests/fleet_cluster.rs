//! Three replicas sharing a Redis Cluster: each canary's keys live in one slot.

mod support;

use std::time::Duration;

use fluxgate_canary::Phase;
use fluxgate_canary::fleet::{FleetStore, RedisFleet, keys};
use fluxgate_test_support::RedisCluster;
use support::fleet::{Replica, eventually, id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_a_cluster_judges_and_acts_as_one() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(3)).unwrap();
    let spec = "{weight: 50, interval: 5s, minRequests: 30, errorBudget: 0.9}";
    let mut replicas = Vec::new();
    for name in ["a", "b", "c"] {
        let store = RedisFleet::connect_cluster(&cluster.urls()).await.unwrap();
        replicas.push(Replica::with_store(store, spec, name, 500));
    }
    assert!(
        eventually(Duration::from_secs(3), || replicas
            .iter()
            .all(|r| r.fleet().joined))
        .await
    );
    for replica in &replicas {
        replica.send(25).await; // under minRequests alone
    }
    assert!(
        eventually(Duration::from_secs(3), || replicas
            .iter()
            .all(|r| r.phase() == Phase::RolledBack))
        .await
    );
    let tool = RedisFleet::connect_cluster(&cluster.urls()).await.unwrap();
    let state = tool.load(&id()).await.unwrap().unwrap();
    assert_eq!(state.phase, Phase::RolledBack);
    assert_eq!(tool.replicas(&id()).await.unwrap(), ["a", "b", "c"]);
    assert!(keys::state(&id()).contains("{t/web}"));
}
