//! Strict mode's batching on one server: the first request on an idle connection calls Redis
//! inline; requests that arrive meanwhile queue for the next call. An inline call that times out
//! hands its queue to a flusher task, so no queued request is stranded and decisions resume.
#![cfg(feature = "redis")]

use std::process::Command;
use std::time::Duration;

use fluxgate_core::policy::{LimitAlgorithm, SyncMode};
use fluxgate_ratelimit::Quota;
use fluxgate_ratelimit::store::{
    Checks, KeyRef, LimiterSpec, RateLimitStore, RedisLimiter, RedisOptions, RedisStore,
};
use fluxgate_test_support::RedisServer;
use futures::future::join_all;
use tokio::time::{Instant, sleep, timeout};

async fn decide(store: &RedisStore, limiter: &RedisLimiter) -> bool {
    let mut checks = Checks::new();
    checks.push(limiter, KeyRef::Bytes(b"client"), false);
    store
        .check(&checks)
        .await
        .expect("no request fails")
        .admitted()
}

/// A server, and a strict store on it whose decisions wait at most `timeout`.
async fn strict_store(timeout: Duration) -> (RedisServer, RedisStore) {
    let server = RedisServer::start().unwrap();
    let options = RedisOptions::new().mode(SyncMode::Strict).timeout(timeout);
    let store = RedisStore::connect(&server.url(), options).await.unwrap();
    (server, store)
}

/// Sends `signal` (`-STOP`, `-CONT`) to process `pid`.
fn signal(signal: &str, pid: &str) {
    let status = Command::new("kill").args([signal, pid]).status().unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_inline_call_hands_its_queue_on() {
    let (server, store) = strict_store(Duration::from_millis(200)).await;
    let spec = LimiterSpec::new("batch/l", LimitAlgorithm::Gcra, Quota::new(1e6, 1000));
    let limiter = store.limiter(&spec);
    assert!(decide(&store, &limiter).await);
    let calls = store.stats().strict_calls;

    let pid = server.pid().unwrap().to_string();
    signal("-STOP", &pid);
    // The first request calls inline; the others queue behind it and outlive its timeout.
    let spawn = || {
        let (store, limiter) = (store.clone(), limiter.clone());
        tokio::spawn(async move { decide(&store, &limiter).await })
    };
    let first = spawn();
    sleep(Duration::from_millis(20)).await;
    let queued: Vec<_> = (0..7).map(|_| spawn()).collect();
    let all = timeout(Duration::from_secs(2), join_all(queued)).await;
    let answers = all.expect("every request is answered");
    assert!(answers.iter().all(Result::is_ok) && first.await.is_ok());
    assert!(store.stats().timeouts >= 1, "the calls timed out");
    // A call unanswered past the longest wait (250ms) opens the breaker.
    let outage = Instant::now() + Duration::from_secs(2);
    while store.stats().faults == 0 && Instant::now() < outage {
        sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.stats().faults, 1, "one outage: {:?}", store.stats());
    signal("-CONT", &pid);

    // The flusher took the queue (a second call), and strict decisions resume.
    let deadline = Instant::now() + Duration::from_secs(5);
    let strict = store.stats().strict_decisions;
    loop {
        decide(&store, &limiter).await;
        let stats = store.stats();
        if !stats.down && stats.strict_decisions > strict {
            assert!(stats.strict_calls >= calls + 2, "{stats:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no strict decisions: {stats:?}");
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_calls() {
    let (_server, store) = strict_store(Duration::from_secs(1)).await;
    let spec = LimiterSpec::new(
        "batch/c",
        LimitAlgorithm::SlidingWindow,
        Quota::new(1e6, 1000),
    );
    let limiter = store.limiter(&spec);
    let before = store.stats();
    for _ in 0..20 {
        let all = join_all((0..64).map(|_| decide(&store, &limiter))).await;
        assert!(all.iter().all(|a| *a));
    }
    let after = store.stats();
    let (decisions, calls) = (
        after.strict_decisions - before.strict_decisions,
        after.strict_calls - before.strict_calls,
    );
    assert_eq!(decisions, 1280);
    // The first of each burst calls inline; the others go together in the next call (or a few,
    // as the runtime polls them).
    assert!(
        decisions >= 16 * calls,
        "{decisions} decisions in {calls} calls"
    );
}
