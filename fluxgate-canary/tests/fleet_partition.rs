//! A replica cut off from Redis (partition), and a Redis too slow to answer within the timeout.

mod support;

use std::time::Duration;

use fluxgate_canary::Phase;
use fluxgate_test_support::RedisServer;
use support::fleet::{Link, Replica, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_replica_keeps_its_state_and_follows_on_return() {
    let server = RedisServer::start().unwrap();
    let spec = "{weight: 50, interval: 10s, minRequests: 20, errorBudget: 0.5}";
    let a = Replica::start(&server.url(), spec, "a", 200).await;
    let b = Replica::start(&server.url(), spec, "b", 200).await;
    let link = Link::start(server.port()).await;
    let c = Replica::start(&link.url, spec, "c", 200).await;
    let all = [&a, &b, &c];
    assert!(
        eventually(Duration::from_secs(3), || all
            .iter()
            .all(|r| r.fleet().joined))
        .await
    );

    link.cut();
    assert!(eventually(Duration::from_secs(3), || !c.fleet().connected).await);
    a.router.handle().abort().unwrap();
    assert!(
        eventually(Duration::from_secs(1), || a.phase() == Phase::RolledBack
            && b.phase() == Phase::RolledBack)
        .await
    );
    // Cut off, c keeps the last state it knew: routing to the canary goes on.
    let before = c.canary.calls();
    c.send(20).await;
    assert!(c.canary.calls() > before);
    assert_eq!(c.phase(), Phase::Progressing);
    assert!(!c.fleet().leader);

    link.heal();
    assert!(eventually(Duration::from_secs(4), || c.phase() == Phase::RolledBack).await);
    let before = c.canary.calls();
    c.send(20).await;
    assert_eq!(c.canary.calls(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_stops_the_steps() {
    let server = RedisServer::start().unwrap();
    let link = Link::start(server.port()).await;
    let spec =
        "{steps: [20, 40, 60, 80], interval: 1s, minRequests: 10, metrics: {targetErrorRate: 0.5}}";
    let mut replicas = Vec::new();
    for name in ["a", "b", "c"] {
        replicas.push(Replica::start(&link.url, spec, name, 200).await);
    }
    assert!(
        eventually(Duration::from_secs(3), || replicas
            .iter()
            .all(|r| r.fleet().joined))
        .await
    );
    // Every answer now takes longer than the replicas' timeout (1s).
    link.delay(Duration::from_millis(1200));
    assert!(
        eventually(Duration::from_secs(4), || replicas
            .iter()
            .all(|r| !r.fleet().connected))
        .await
    );
    let held: Vec<u8> = replicas.iter().map(|r| r.snapshot().weight).collect();
    // Healthy traffic that passes every analysis over 3 intervals moves nothing.
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        for replica in &replicas {
            replica.send(10).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after: Vec<u8> = replicas.iter().map(|r| r.snapshot().weight).collect();
    assert_eq!(held, after);
    assert!(replicas.iter().all(|r| r.phase() == Phase::Progressing));

    // Fast again: the fleet steps on.
    link.delay(Duration::ZERO);
    let stepped = async {
        loop {
            for replica in &replicas {
                replica.send(10).await;
            }
            if replicas.iter().all(|r| r.snapshot().weight > held[0]) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), stepped)
        .await
        .expect("the fleet steps on once Redis answers in time");
}
