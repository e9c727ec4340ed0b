//! The Redis store on a real 3-node Redis Cluster: keys spread over slots, limits hold.
#![cfg(feature = "redis")]

use std::process::Command;
use std::time::Duration;

use fluxgate_core::policy::{LimitAlgorithm, SyncMode};
use fluxgate_ratelimit::Quota;
use fluxgate_ratelimit::store::{
    Checks, KeyRef, LimiterSpec, RateLimitStore, RedisOptions, RedisStore,
};
use fluxgate_test_support::RedisCluster;
use tokio::time::timeout;

fn keys_on(port: u16) -> u64 {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "DBSIZE"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

async fn cluster_limits(cluster: &RedisCluster, mode: SyncMode) {
    let options = RedisOptions::new()
        .mode(mode)
        .timeout(Duration::from_millis(200))
        .prefix(format!("cl{mode:?}"));
    let store = RedisStore::connect_cluster(&cluster.urls(), options)
        .await
        .unwrap();
    let spec = LimiterSpec::new(
        "c/edge/l/ip",
        LimitAlgorithm::SlidingWindow,
        Quota::new(1.0, 3),
    );
    let gcra = LimiterSpec::new("c/edge/g/key", LimitAlgorithm::Gcra, Quota::new(1.0, 2));
    let (limiter, per_key) = (store.limiter(&spec), store.limiter(&gcra));
    for client in 0..30 {
        let key = format!("client-{client}");
        let mut admitted = 0;
        for _ in 0..6 {
            let mut checks = Checks::new();
            checks.push(&limiter, KeyRef::Bytes(key.as_bytes()), false);
            checks.push(&per_key, KeyRef::Bytes(key.as_bytes()), false);
            admitted += usize::from(store.check(&checks).await.unwrap().admitted());
        }
        // The GCRA limit (burst 2) refuses first; the window limit gave its units back.
        assert_eq!(admitted, 2, "{mode:?} client {client}");
        let mut checks = Checks::new();
        checks.push(&limiter, KeyRef::Bytes(key.as_bytes()), false);
        assert!(
            store.check(&checks).await.unwrap().admitted(),
            "refunded unit"
        );
    }
    assert!(store.sync_now().await);
    let stats = store.stats();
    assert_eq!(stats.faults, 0, "{stats:?}");
    match mode {
        SyncMode::Strict => assert!(stats.strict_decisions >= 210, "{stats:?}"),
        _ => assert!(stats.synced_keys >= 60, "pushed to the cluster: {stats:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_spreads_keys_and_holds_limits() {
    let cluster = RedisCluster::start(3).unwrap();
    timeout(Duration::from_secs(60), async {
        cluster_limits(&cluster, SyncMode::Strict).await;
        cluster_limits(&cluster, SyncMode::Synced).await;
    })
    .await
    .unwrap();
    let per_node: Vec<u64> = cluster.nodes().iter().map(|n| keys_on(n.port())).collect();
    assert!(
        per_node.iter().all(|&n| n > 0),
        "keys on every node: {per_node:?}"
    );
}
