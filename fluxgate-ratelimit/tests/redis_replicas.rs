//! Several limiter instances (separate stores, one Redis) under one client: the total admitted
//! stays within the documented bound, in both modes.
#![cfg(feature = "redis")]

use std::time::Duration;

use fluxgate_core::policy::{LimitAlgorithm, SyncMode};
use fluxgate_ratelimit::Quota;
use fluxgate_ratelimit::store::{
    Checks, KeyRef, LimiterSpec, RateLimitStore, RedisOptions, RedisStore,
};
use fluxgate_test_support::RedisServer;
use tokio::time::{Instant, MissedTickBehavior, interval, timeout};

const RATE: f64 = 100.0;
const BURST: u32 = 20;
const SECS: f64 = 2.0;

/// Sends one request every `1 / (5 × RATE)` seconds for `SECS`, round robin over the stores;
/// returns how many were admitted.
async fn drive(stores: &[RedisStore], algorithm: LimitAlgorithm) -> u64 {
    let spec = LimiterSpec::new(
        "shop/edge/per-client/ip",
        algorithm,
        Quota::new(RATE, BURST),
    );
    let limiters: Vec<_> = stores.iter().map(|s| s.limiter(&spec)).collect();
    let mut ticks = interval(Duration::from_secs_f64(1.0 / (5.0 * RATE)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let end = Instant::now() + Duration::from_secs_f64(SECS);
    let (mut admitted, mut i) = (0, 0);
    while Instant::now() < end {
        ticks.tick().await;
        let mut checks = Checks::new();
        checks.push(&limiters[i % stores.len()], KeyRef::Bytes(b"client"), false);
        let verdict = stores[i % stores.len()].check(&checks).await;
        if verdict.expect("no request fails").admitted() {
            admitted += 1;
        }
        i += 1;
    }
    admitted
}

async fn replicas(n: usize, mode: SyncMode, algorithm: LimitAlgorithm) {
    let server = RedisServer::start().unwrap();
    let prefix = format!("rep{n}{mode:?}{algorithm:?}");
    let mut stores = Vec::new();
    for _ in 0..n {
        let options = RedisOptions::new()
            .mode(mode)
            .timeout(Duration::from_millis(50))
            .replicas(u32::try_from(n).unwrap())
            .prefix(prefix.clone());
        stores.push(RedisStore::connect(&server.url(), options).await.unwrap());
    }
    let _tasks: Vec<_> = stores.iter().map(RedisStore::spawn_sync).collect();
    let admitted = drive(&stores, algorithm).await;
    let allowed = RATE * SECS + f64::from(BURST);
    // Synced: (replicas − 1) × rate × interval per window of BURST / RATE seconds.
    let bound = match mode {
        SyncMode::Strict => allowed * 0.03 + 2.0,
        _ => (n as f64 - 1.0) * RATE * 0.05 * (SECS * RATE / f64::from(BURST)),
    };
    let admitted = admitted as f64;
    eprintln!("{n} replicas {mode:?} {algorithm:?}: admitted {admitted} of {allowed} allowed");
    assert!(
        admitted <= allowed + bound,
        "{admitted} > {allowed} + {bound}"
    );
    assert!(admitted >= allowed * 0.85, "{admitted} far under {allowed}");
    for store in &stores {
        assert_eq!(store.stats().faults, 0, "{:?}", store.stats());
    }
}

async fn all(n: usize) {
    for mode in [SyncMode::Strict, SyncMode::Synced] {
        for algorithm in [LimitAlgorithm::SlidingWindow, LimitAlgorithm::Gcra] {
            replicas(n, mode, algorithm).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_hold_one_limit() {
    timeout(Duration::from_secs(60), all(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_hold_one_limit() {
    timeout(Duration::from_secs(60), all(4)).await.unwrap();
}
