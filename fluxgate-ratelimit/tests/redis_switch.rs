//! The switch to the local fallback when Redis goes away: a key's fallback starts from what the
//! key had used in Redis (synced mode) just before, at this replica's share, so that the switch
//! gives no second burst.
#![cfg(feature = "redis")]

use std::process::Command;
use std::time::Duration;

use fluxgate_core::policy::LimitAlgorithm;
use fluxgate_ratelimit::Quota;
use fluxgate_ratelimit::store::{
    Checks, KeyRef, LimiterSpec, RateLimitStore, RedisLimiter, RedisOptions, RedisStore,
};
use fluxgate_test_support::RedisServer;
use tokio::time::{Instant, sleep};

/// `n` requests of `client`; how many were admitted.
async fn send(store: &RedisStore, limiter: &RedisLimiter, client: &str, n: usize) -> usize {
    let mut admitted = 0;
    for _ in 0..n {
        let mut checks = Checks::new();
        checks.push(limiter, KeyRef::Bytes(client.as_bytes()), false);
        let verdict = store.check(&checks).await.expect("no request fails");
        admitted += usize::from(verdict.admitted());
    }
    admitted
}

/// Waits until the store counts Redis down.
async fn until_down(store: &RedisStore) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.stats().down {
        assert!(Instant::now() < deadline, "never down: {:?}", store.stats());
        sleep(Duration::from_millis(10)).await;
    }
}

/// A limit of `burst` with almost no refill (one unit per 1000s).
fn spec(algorithm: LimitAlgorithm, burst: u32) -> LimiterSpec {
    LimiterSpec::new("switch/edge/l/id", algorithm, Quota::new(0.001, burst))
}

/// One replica, burst 3: 2 admitted while Redis is up, then Redis is killed: of 6 more, at
/// most 1 is admitted, whether the requests come before the store notices (synced state) or
/// after (the fallback); the outage and fallback decisions are counted.
async fn one_replica(algorithm: LimitAlgorithm, wait_for_down: bool) {
    let mut server = RedisServer::start().unwrap();
    let store = RedisStore::connect(&server.url(), RedisOptions::new())
        .await
        .unwrap();
    let _sync = store.spawn_sync();
    let limiter = store.limiter(&spec(algorithm, 3));
    assert_eq!(send(&store, &limiter, "c", 2).await, 2);
    // Let a sync count them in Redis (or not: either way they are this replica's).
    assert!(store.sync_now().await);
    server.stop();
    if wait_for_down {
        until_down(&store).await;
    }
    let after = send(&store, &limiter, "c", 6).await;
    until_down(&store).await;
    let after = after + send(&store, &limiter, "c", 6).await;
    assert!(
        after <= 1,
        "{algorithm:?}: {after} admitted after the switch"
    );
    let stats = store.stats();
    assert!(
        stats.faults == 1 && stats.fallback_decisions >= 1,
        "{stats:?}"
    );
    // A fresh key still gets its whole burst from the fallback.
    assert_eq!(send(&store, &limiter, "fresh", 4).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_window_switch_gives_no_second_burst() {
    one_replica(LimitAlgorithm::SlidingWindow, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcra_switch_gives_no_second_burst() {
    one_replica(LimitAlgorithm::Gcra, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_racing_the_switch_get_no_second_burst() {
    one_replica(LimitAlgorithm::SlidingWindow, false).await;
    one_replica(LimitAlgorithm::Gcra, false).await;
}

/// Two replicas (the floor), burst 4: the key used 2 of 4 in Redis; in the outage this replica's
/// share is 2 of which half is used, so it admits 1 more, where a fresh share would admit 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_share_starts_from_the_part_used() {
    for algorithm in [LimitAlgorithm::SlidingWindow, LimitAlgorithm::Gcra] {
        let mut server = RedisServer::start().unwrap();
        let options = RedisOptions::new().replicas(2);
        let store = RedisStore::connect(&server.url(), options).await.unwrap();
        let _sync = store.spawn_sync();
        let limiter = store.limiter(&spec(algorithm, 4));
        assert_eq!(send(&store, &limiter, "c", 2).await, 2);
        assert!(store.sync_now().await);
        server.stop();
        until_down(&store).await;
        assert_eq!(store.replicas(), 2);
        let after = send(&store, &limiter, "c", 4).await;
        assert_eq!(after, 1, "{algorithm:?}");
        assert_eq!(send(&store, &limiter, "fresh", 3).await, 2, "{algorithm:?}");
    }
}

/// Back from an outage: what the fallback admitted is pushed to Redis, so the key that used its
/// burst in the outage is refused once Redis answers again (no second burst at the recovery).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recovery_gives_no_second_burst() {
    for algorithm in [LimitAlgorithm::SlidingWindow, LimitAlgorithm::Gcra] {
        let mut server = RedisServer::start().unwrap();
        let store = RedisStore::connect(&server.url(), RedisOptions::new())
            .await
            .unwrap();
        let _sync = store.spawn_sync();
        let limiter = store.limiter(&spec(algorithm, 3));
        server.stop();
        until_down(&store).await;
        assert_eq!(send(&store, &limiter, "c", 4).await, 3, "{algorithm:?}");
        server.restart().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.stats().down {
            assert!(
                Instant::now() < deadline,
                "no recovery: {:?}",
                store.stats()
            );
            sleep(Duration::from_millis(10)).await;
        }
        assert!(store.sync_now().await, "{:?}", store.stats());
        assert_eq!(send(&store, &limiter, "c", 4).await, 0, "{algorithm:?}");
        assert!(redis_keys(server.port()) > 0, "the units were pushed");
    }
}

/// Redis out of memory (`maxmemory`, `noeviction`): reads and `PING` answer, writes fail, so the
/// store goes down and up again; a client still gets one burst in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_refusing_writes_gives_no_second_burst() {
    let server = RedisServer::builder()
        .arg("--maxmemory")
        .arg("1mb")
        .arg("--maxmemory-policy")
        .arg("noeviction")
        .start()
        .unwrap();
    let store = RedisStore::connect(&server.url(), RedisOptions::new())
        .await
        .unwrap();
    let _sync = store.spawn_sync();
    let limiter = store.limiter(&spec(LimitAlgorithm::SlidingWindow, 3));
    let value = "x".repeat(64 * 1024);
    for n in 0..200 {
        let out = Command::new("redis-cli")
            .args([
                "-p",
                &server.port().to_string(),
                "SET",
                &format!("f{n}"),
                &value,
            ])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains("OOM") {
            break;
        }
    }
    // A heartbeat's write fails: down; a probe's PING answers: up again; and so on.
    until_down(&store).await;
    let mut admitted = 0;
    for _ in 0..40 {
        admitted += send(&store, &limiter, "c", 2).await;
        sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted <= 3, "{admitted} admitted: {:?}", store.stats());
    assert!(store.stats().faults >= 1, "{:?}", store.stats());
}

fn redis_keys(port: u16) -> u64 {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "DBSIZE"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}
