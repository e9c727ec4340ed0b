//! A fleet of replicas (separate stores, one Redis) that count each other through heartbeats:
//! low-rate limits hold to one request over what one gateway alone admits per window, in both
//! modes; strict decisions hold under scheduling jitter; a replica that stops is no longer
//! counted after its TTL; during an outage the fleet limits at its share; equal loads get about
//! equal shares. No assertion on speed: deadlines only bound how long a test may take.
#![cfg(feature = "redis")]

use std::time::Duration;

use fluxgate_core::policy::{LimitAlgorithm, RateLimitSpec, SyncMode};
use fluxgate_ratelimit::store::drill::{Admitted, Fleet, Jitter};
use fluxgate_ratelimit::store::{LimiterSpec, RedisOptions};
use fluxgate_ratelimit::{Quota, RateLimitLayer};
use fluxgate_test_support::RedisServer;
use tokio::time::{Instant, sleep, timeout};

const SECS: f64 = 4.0;

fn spec(algorithm: LimitAlgorithm, rate: f64, burst: u32) -> LimiterSpec {
    LimiterSpec::new("fleet/edge/l/key", algorithm, Quota::new(rate, burst))
}

/// At most one request over one gateway alone per window (and not far under it).
fn within_one_per_window(admitted: &Admitted, rate: f64, burst: u32, what: &str) {
    let windows = (SECS * rate / f64::from(burst)).ceil() as u64;
    let (fleet, alone) = (admitted.fleet(), admitted.alone);
    eprintln!(
        "{what}: fleet {fleet} ({:?}), alone {alone}",
        admitted.replicas
    );
    assert!(
        fleet <= alone + windows,
        "{what}: {fleet} > {alone} + {windows}"
    );
    assert!(
        fleet + 2 * windows >= alone,
        "{what}: {fleet} far under {alone}"
    );
}

async fn low_rate(n: usize) {
    let server = RedisServer::start().unwrap();
    for mode in [SyncMode::Synced, SyncMode::Strict] {
        for algorithm in [LimitAlgorithm::SlidingWindow, LimitAlgorithm::Gcra] {
            let what = format!("{n} replicas {mode:?} {algorithm:?}");
            let options = RedisOptions::new()
                .mode(mode)
                .prefix(format!("low{n}{mode:?}{algorithm:?}"));
            let fleet = Fleet::start(&server.url(), n, options).await.unwrap();
            for store in &fleet.stores {
                assert_eq!(store.replicas(), n as u32, "{what}: heartbeats counted");
            }
            let spec = spec(algorithm, 5.0, 5);
            let admitted = fleet
                .alternate(&spec, 20.0, Duration::from_secs_f64(SECS))
                .await;
            within_one_per_window(&admitted, 5.0, 5, &what);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_at_a_low_rate() {
    timeout(Duration::from_secs(90), low_rate(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_at_a_low_rate() {
    timeout(Duration::from_secs(90), low_rate(4)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_defaults_hold_under_jitter() {
    let server = RedisServer::start().unwrap();
    let pid = server.pid().unwrap();
    let run = async {
        for (rate, burst) in [(5.0, 5), (50.0, 10)] {
            let options = RedisOptions::new()
                .mode(SyncMode::Strict)
                .prefix(format!("jitter{rate}"));
            let fleet = Fleet::start(&server.url(), 2, options).await.unwrap();
            let jitter = Jitter::start(pid);
            let spec = spec(LimitAlgorithm::SlidingWindow, rate, burst);
            let admitted = fleet
                .alternate(&spec, 4.0 * rate, Duration::from_secs_f64(SECS))
                .await;
            drop(jitter);
            let stats: Vec<_> = fleet.stores.iter().map(|s| s.stats()).collect();
            eprintln!("jitter at {rate}/s: {stats:?}");
            within_one_per_window(&admitted, rate, burst, &format!("jitter at {rate}/s"));
        }
    };
    timeout(Duration::from_secs(60), run).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_count_each_other_and_a_stopped_one_expires() {
    let server = RedisServer::start().unwrap();
    let run = async {
        let options = RedisOptions::new().prefix("count");
        let mut fleet = Fleet::start(&server.url(), 3, options).await.unwrap();
        for store in &fleet.stores {
            assert_eq!(store.stats().replicas, 3);
        }
        // Its heartbeat is no longer renewed, as a killed replica's; the others see it go.
        fleet.stop_sync(2);
        while fleet.stores[..2].iter().any(|s| s.stats().replicas != 2) {
            sleep(Duration::from_millis(20)).await;
        }
        // A store with a floor counts at least the floor.
        let floor = RedisOptions::new().prefix("count").replicas(5);
        let fleet = Fleet::start(&server.url(), 1, floor).await.unwrap();
        assert_eq!(fleet.stores[0].replicas(), 5);
    };
    timeout(Duration::from_secs(20), run).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_limits_at_the_fleet_share_and_ends_promptly() {
    let mut server = RedisServer::start().unwrap();
    let run = async {
        // No floor given: the share comes from the heartbeats alone.
        let options = RedisOptions::new().prefix("outage");
        let fleet = Fleet::start(&server.url(), 2, options).await.unwrap();
        let layer = RateLimitLayer::builder()
            .limit(RateLimitSpec::new(50.0, 10))
            .store(fleet.stores[0].clone())
            .build()
            .unwrap();
        server.stop();
        let spec = spec(LimitAlgorithm::SlidingWindow, 50.0, 10);
        let admitted = fleet
            .alternate(&spec, 200.0, Duration::from_secs_f64(SECS))
            .await;
        within_one_per_window(&admitted, 50.0, 10, "outage");
        let health = layer
            .metrics()
            .store
            .expect("a shared store reports its health");
        assert!(health.down && health.outages == 1, "{health:?}");
        assert!(
            health.fallback_decisions > 0 && health.replicas == 2,
            "{health:?}"
        );
        server.restart().unwrap();
        let back = Instant::now();
        while fleet.stores.iter().any(|s| s.stats().down) {
            fleet
                .alternate(&spec, 200.0, Duration::from_millis(20))
                .await;
        }
        eprintln!("shared limits resumed {:?} after Redis", back.elapsed());
    };
    timeout(Duration::from_secs(30), run).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_loads_get_about_equal_shares() {
    let server = RedisServer::start().unwrap();
    let run = async {
        for mode in [SyncMode::Synced, SyncMode::Strict] {
            let options = RedisOptions::new()
                .mode(mode)
                .prefix(format!("fair{mode:?}"));
            let fleet = Fleet::start(&server.url(), 2, options).await.unwrap();
            let spec = spec(LimitAlgorithm::SlidingWindow, 50.0, 10);
            let admitted = fleet
                .equal_load(&spec, 100.0, Duration::from_secs_f64(SECS))
                .await;
            let [a, b] = admitted.replicas[..] else {
                unreachable!()
            };
            let share = a as f64 / (a + b) as f64;
            eprintln!("{mode:?}: {a} and {b}");
            assert!((0.35..=0.65).contains(&share), "{mode:?}: {a} and {b}");
        }
    };
    timeout(Duration::from_secs(30), run).await.unwrap();
}
