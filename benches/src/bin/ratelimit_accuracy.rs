//! Accuracy of shared limits: 2 and 4 replicas (separate Redis stores, one Redis, counting each
//! other through heartbeats) at 5, 50 and 1000 requests/s, synced and strict with their default
//! options; one client at 4x its limit, its requests going to the replicas in turn, and each also
//! to one gateway alone in the same run (a store of the same mode under its own prefix, so that
//! its windows fall on the same clock, Redis'). Then strict mode's defaults under scheduling
//! jitter (busy cores, Redis stopped for 15ms every 150ms). Then fairness: two replicas under equal loads
//! (Poisson arrivals) on one key, and each one's share of what was admitted.
//!
//! Run with: `cargo run --release -p fluxgate-benches --bin ratelimit_accuracy [SECONDS [fairness]]`

use std::time::Duration;

use fluxgate_core::policy::{LimitAlgorithm, SyncMode};
use fluxgate_ratelimit::Quota;
use fluxgate_ratelimit::store::drill::{Fleet, Jitter};
use fluxgate_ratelimit::store::{LimiterSpec, RedisOptions, RedisStats};
use fluxgate_test_support::RedisServer;

/// (rate, burst): the window is burst / rate.
const QUOTAS: [(f64, u32); 3] = [(5.0, 5), (50.0, 10), (1000.0, 100)];
const ALGORITHMS: [LimitAlgorithm; 2] = [LimitAlgorithm::SlidingWindow, LimitAlgorithm::Gcra];
const MODES: [SyncMode; 2] = [SyncMode::Synced, SyncMode::Strict];

fn totals(fleet: &Fleet) -> (u64, u64) {
    let stats: Vec<RedisStats> = fleet.stores.iter().map(|s| s.stats()).collect();
    let timeouts = stats.iter().map(|s| s.timeouts).sum();
    let fallbacks = stats.iter().map(|s| s.fallback_decisions).sum();
    (timeouts, fallbacks)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10.0);
    let duration = Duration::from_secs_f64(secs);
    let server = RedisServer::start()?;
    println!(
        "one client at 4x the rate for {secs}s, round robin over the replicas; default options"
    );
    println!(
        "| algorithm | rate/s | burst | replicas | mode | alone | fleet | over | over/window | timeouts | fallbacks |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut run = 0;
    // `fairness` as the second argument runs the fairness part alone.
    let table = std::env::args().nth(2).is_none_or(|a| a != "fairness");
    for algorithm in ALGORITHMS.into_iter().filter(|_| table) {
        for (rate, burst) in QUOTAS {
            for n in [2, 4] {
                for mode in MODES {
                    run += 1;
                    let options = RedisOptions::new().mode(mode).prefix(format!("acc{run}"));
                    let fleet = Fleet::start(&server.url(), n, options).await?;
                    let spec =
                        LimiterSpec::new("acc/edge/l/key", algorithm, Quota::new(rate, burst));
                    let admitted = fleet.alternate(&spec, 4.0 * rate, duration).await;
                    let (timeouts, fallbacks) = totals(&fleet);
                    let over = admitted.fleet() as f64 - admitted.alone as f64;
                    let windows = secs * rate / f64::from(burst);
                    println!(
                        "| {algorithm:?} | {rate} | {burst} | {n} | {mode:?} | {} | {} | {:+.1}% | {:+.2} | {timeouts} | {fallbacks} |",
                        admitted.alone,
                        admitted.fleet(),
                        100.0 * over / admitted.alone.max(1) as f64,
                        over / windows,
                    );
                }
            }
        }
    }
    println!();
    println!("strict under jitter (3 busy threads, Redis stopped 15ms every 150ms), 2 replicas");
    println!("| rate/s | burst | alone | fleet | over | timeouts | reconciled | outages |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let pid = server.pid().ok_or("no redis pid")?;
    for (rate, burst) in QUOTAS {
        run += 1;
        let options = RedisOptions::new()
            .mode(SyncMode::Strict)
            .prefix(format!("acc{run}"));
        let fleet = Fleet::start(&server.url(), 2, options).await?;
        let spec = LimiterSpec::new(
            "acc/edge/jitter/key",
            LimitAlgorithm::SlidingWindow,
            Quota::new(rate, burst),
        );
        let jitter = Jitter::start(pid);
        let admitted = fleet.alternate(&spec, 4.0 * rate, duration).await;
        drop(jitter);
        let stats: Vec<RedisStats> = fleet.stores.iter().map(|s| s.stats()).collect();
        let sum = |f: fn(&RedisStats) -> u64| stats.iter().map(f).sum::<u64>();
        println!(
            "| {rate} | {burst} | {} | {} | {:+} | {} | {} | {} |",
            admitted.alone,
            admitted.fleet(),
            admitted.fleet() as i64 - admitted.alone as i64,
            sum(|s| s.timeouts),
            sum(|s| s.reconciled),
            sum(|s| s.faults),
        );
    }
    println!();
    println!("fairness: 2 replicas, each at 2x the rate of its own, one key (sliding window)");
    println!("| rate/s | mode | replica 1 | replica 2 | share of replica 1 |");
    println!("| --- | --- | --- | --- | --- |");
    for (rate, burst) in QUOTAS {
        for mode in MODES {
            run += 1;
            let options = RedisOptions::new().mode(mode).prefix(format!("acc{run}"));
            let fleet = Fleet::start(&server.url(), 2, options).await?;
            let spec = LimiterSpec::new(
                "acc/edge/fair/key",
                LimitAlgorithm::SlidingWindow,
                Quota::new(rate, burst),
            );
            let admitted = fleet.equal_load(&spec, 2.0 * rate, duration).await;
            let (a, b) = (admitted.replicas[0], admitted.replicas[1]);
            println!(
                "| {rate} | {mode:?} | {a} | {b} | {:.1}% |",
                100.0 * a as f64 / (a + b).max(1) as f64
            );
        }
    }
    Ok(())
}
