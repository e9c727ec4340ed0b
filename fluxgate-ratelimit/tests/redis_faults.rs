//! Redis down, restarted, slow, or misconfigured: each has a defined outcome, and no request
//! fails because Redis failed.
#![cfg(feature = "redis")]

use std::process::Command;
use std::time::Duration;

use fluxgate_core::policy::{LimitAlgorithm, StoreFailure, SyncMode};
use fluxgate_ratelimit::Quota;
use fluxgate_ratelimit::store::{
    Checks, KeyRef, LimiterSpec, RateLimitStore, RedisConnectError, RedisOptions, RedisStore,
};
use fluxgate_test_support::RedisServer;
use tokio::time::{Instant, sleep, timeout};

fn spec() -> LimiterSpec {
    LimiterSpec::new(
        "faults/edge/l/ip",
        LimitAlgorithm::SlidingWindow,
        Quota::new(1000.0, 100),
    )
}

/// Sends `n` requests 1ms apart for distinct-enough keys; returns how many were admitted.
async fn traffic(store: &RedisStore, n: usize) -> usize {
    let limiter = store.limiter(&spec());
    let mut admitted = 0;
    for i in 0..n {
        let key = format!("client-{}", i % 4);
        let mut checks = Checks::new();
        checks.push(&limiter, KeyRef::Bytes(key.as_bytes()), false);
        let started = Instant::now();
        let verdict = store.check(&checks).await.expect("no request fails");
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "a decision waited"
        );
        admitted += usize::from(verdict.admitted());
        sleep(Duration::from_millis(1)).await;
    }
    admitted
}

async fn kill_and_restart(mode: SyncMode) {
    let mut server = RedisServer::start().unwrap();
    let options = RedisOptions::new().mode(mode).replicas(2);
    let store = RedisStore::connect(&server.url(), options).await.unwrap();
    let _sync = store.spawn_sync();
    assert!(traffic(&store, 50).await > 0);
    server.stop();
    let admitted = traffic(&store, 200).await;
    let stats = store.stats();
    assert!(admitted > 0, "local fallback admits");
    assert_eq!(stats.faults, 1, "one outage, counted once: {stats:?}");
    assert!(stats.down && stats.fallback_decisions > 0, "{stats:?}");
    server.restart().unwrap();
    let syncs = store.stats().syncs;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        traffic(&store, 10).await;
        let stats = store.stats();
        let resumed = match mode {
            SyncMode::Synced => stats.syncs > syncs + 2,
            _ => stats.strict_decisions > 0,
        };
        if !stats.down && resumed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no resume after restart: {stats:?}"
        );
    }
    if mode == SyncMode::Synced {
        assert!(
            redis_keys(server.port()) > 0,
            "syncing wrote to the new server"
        );
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_survives_kill_and_restart() {
    timeout(Duration::from_secs(30), kill_and_restart(SyncMode::Synced))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_survives_kill_and_restart() {
    timeout(Duration::from_secs(30), kill_and_restart(SyncMode::Strict))
        .await
        .unwrap();
}

#[tokio::test]
async fn fail_open_and_fail_closed() {
    let mut server = RedisServer::start().unwrap();
    let url = server.url();
    let strict = |f| RedisOptions::new().mode(SyncMode::Strict).on_failure(f);
    let open = RedisStore::connect(&url, strict(StoreFailure::Open))
        .await
        .unwrap();
    let closed = RedisStore::connect(&url, strict(StoreFailure::Closed))
        .await
        .unwrap();
    server.stop();
    let result = timeout(Duration::from_secs(10), async {
        for _ in 0..20 {
            assert_eq!(traffic(&open, 1).await, 1);
            assert_eq!(traffic(&closed, 1).await, 0);
        }
    });
    result.await.unwrap();
}

#[tokio::test]
async fn wrong_password_is_an_auth_error_without_the_password() {
    let server = RedisServer::builder()
        .password("right-one")
        .start()
        .unwrap();
    let url = format!("redis://:not-the-one@127.0.0.1:{}", server.port());
    let error = timeout(
        Duration::from_secs(10),
        RedisStore::connect(&url, RedisOptions::new()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(error, RedisConnectError::Auth { .. }), "{error:?}");
    let text = format!("{error} {error:?}");
    assert!(!text.contains("not-the-one"), "{text}");
    // The right password works.
    let store = RedisStore::connect(&server.url(), RedisOptions::new()).await;
    assert!(store.is_ok());
}

#[tokio::test]
async fn unreachable_at_startup_is_an_error_in_time() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("redis://:pw@127.0.0.1:{port}");
    let options = RedisOptions::new().connect_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let error = timeout(Duration::from_secs(10), RedisStore::connect(&url, options))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(error, RedisConnectError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains(":pw@"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_redis_times_out_and_falls_back() {
    let server = RedisServer::builder()
        .arg("--enable-debug-command")
        .arg("yes")
        .start()
        .unwrap();
    let options = RedisOptions::new()
        .mode(SyncMode::Strict)
        .timeout(Duration::from_millis(5));
    let store = RedisStore::connect(&server.url(), options).await.unwrap();
    assert_eq!(traffic(&store, 5).await, 5);
    let mut sleeper = Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "DEBUG", "SLEEP", "1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let admitted = timeout(Duration::from_secs(10), traffic(&store, 100))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let stats = store.stats();
    assert!(admitted > 0 && stats.faults == 1, "{stats:?}");
    // The breaker stops waiting: 100 decisions took far less than 100 timeouts plus the sleeps.
    assert!(elapsed < Duration::from_millis(800), "{elapsed:?}");
    let _ = sleeper.wait();
}
