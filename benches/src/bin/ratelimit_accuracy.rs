//! Accuracy of shared limits: 4 replicas (separate Redis stores, one Redis), one client at 5x
//! its limit for 10s, round robin over the replicas; admitted / allowed per mode, and a single
//! local store for reference.
//!
//! Run with: `cargo run --release -p fluxgate-benches --bin ratelimit_accuracy [SECONDS]`

use std::time::Duration;

use fluxgate_core::policy::{LimitAlgorithm, SyncMode};
use fluxgate_ratelimit::Quota;
use fluxgate_ratelimit::store::{
    Checks, KeyRef, LimiterSpec, LocalStore, RateLimitStore, RedisOptions, RedisStore,
};
use fluxgate_test_support::RedisServer;
use tokio::time::{Instant, MissedTickBehavior, interval};

const RATE: f64 = 200.0;
const BURST: u32 = 50;
const REPLICAS: usize = 4;

async fn run<St: RateLimitStore>(stores: &[St], algorithm: LimitAlgorithm, secs: f64) -> u64 {
    let spec = LimiterSpec::new("acc/edge/l/key", algorithm, Quota::new(RATE, BURST));
    let limiters: Vec<_> = stores.iter().map(|s| s.limiter(&spec)).collect();
    let mut ticks = interval(Duration::from_secs_f64(1.0 / (5.0 * RATE)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let (mut admitted, mut i) = (0, 0);
    while Instant::now() < end {
        ticks.tick().await;
        let r = i % stores.len();
        let mut checks = Checks::new();
        checks.push(&limiters[r], KeyRef::Bytes(b"client"), false);
        if stores[r].check(&checks).await.is_ok_and(|v| v.admitted()) {
            admitted += 1;
        }
        i += 1;
    }
    admitted
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10.0);
    let server = RedisServer::start()?;
    let allowed = RATE * secs + f64::from(BURST);
    println!(
        "{REPLICAS} replicas, one client at 5x {RATE}/s (burst {BURST}) for {secs}s; allowed {allowed}"
    );
    for algorithm in [LimitAlgorithm::SlidingWindow, LimitAlgorithm::Gcra] {
        let local = run(&[LocalStore::new()], algorithm, secs).await;
        println!(
            "{algorithm:?} local (1 replica): admitted {local} = {:.4} of allowed",
            local as f64 / allowed
        );
        for mode in [SyncMode::Synced, SyncMode::Strict] {
            let mut stores = Vec::new();
            for _ in 0..REPLICAS {
                let options = RedisOptions::new()
                    .mode(mode)
                    .timeout(Duration::from_millis(50))
                    .replicas(REPLICAS as u32)
                    .prefix(format!("acc:{mode:?}:{algorithm:?}"));
                stores.push(RedisStore::connect(&server.url(), options).await?);
            }
            let _tasks: Vec<_> = stores.iter().map(RedisStore::spawn_sync).collect();
            let admitted = run(&stores, algorithm, secs).await;
            let faults: u64 = stores.iter().map(|s| s.stats().faults).sum();
            println!(
                "{algorithm:?} {mode:?} ({REPLICAS} replicas): admitted {admitted} = {:.4} of allowed (faults {faults})",
                admitted as f64 / allowed
            );
        }
    }
    Ok(())
}
