//! Apply-to-effect latency of policy changes, the reconcile goal (< 300ms, p99 < 50ms).
//!
//! Run with `cargo run --release -p fluxgate-benches --bin reconcile_latency`.
//!
//! Redis: a `redis-server` of its own, 3 follower replicas (3 `PolicyStore`s, each with a
//! `RedisSource`); each of 100 applies is timed from `RedisPolicies::apply` returning to the new
//! version being in force in all 3. File: 3 `FileSource`s on one file; each of 25 saves is timed
//! from the write returning to the new policy being in force in all 3.

use std::time::Duration;

use fluxgate_core::policy::{TrafficPolicy, parse_policies};
use fluxgate_core::store::{
    FileSource, PolicyId, PolicySlot, PolicyStore, RedisPolicies, RedisSource,
};
use fluxgate_test_support::RedisServer;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const NS: &str = "bench";
const REPLICAS: usize = 3;

fn yaml(rps: u32) -> String {
    format!(
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {{name: api, namespace: {NS}}}\nspec:\n  rateLimit: {{requestsPerSecond: {rps}, burstSize: 10}}\n"
    )
}

fn policy(rps: u32) -> TrafficPolicy {
    parse_policies(yaml(rps).as_bytes())
        .map(|mut p| p.remove(0))
        .expect("bench policy is valid")
}

fn rps_of(slot: &PolicySlot) -> Option<u64> {
    let applied = slot.load_full()?;
    let spec = serde_json::to_value(&applied.compiled().policy().spec).ok()?;
    spec["rateLimit"]["requestsPerSecond"]
        .as_f64()
        .map(|v| v as u64)
}

/// A task per replica that resolves when `rps` is in force there, with the time it saw it.
fn waiters(slots: &[PolicySlot], rps: u32) -> Vec<JoinHandle<Instant>> {
    slots
        .iter()
        .cloned()
        .map(|mut slot| {
            tokio::spawn(async move {
                while rps_of(&slot) != Some(u64::from(rps)) {
                    slot.changed().await.expect("the stores live until the end");
                }
                Instant::now()
            })
        })
        .collect()
}

async fn in_force_all(waiters: Vec<JoinHandle<Instant>>, start: Instant) -> Duration {
    let mut latest = start;
    for waiter in waiters {
        let seen = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("a replica did not reconcile within 5s")
            .expect("waiter task");
        latest = latest.max(seen);
    }
    latest.saturating_duration_since(start)
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{name:<28} n={:<4} median={:>9.3?} p99={:>9.3?} max={:>9.3?}",
        samples.len(),
        at(0.5),
        at(0.99),
        samples[samples.len() - 1]
    );
}

async fn redis_bench() -> Vec<Duration> {
    let server = RedisServer::start().expect("redis-server starts");
    let mut handles = Vec::new();
    let mut slots = Vec::new();
    for _ in 0..REPLICAS {
        let store = PolicyStore::new();
        slots.push(store.slot(&PolicyId::new(NS, "api")));
        let mut handle = RedisSource::new(&server.url(), NS, store)
            .expect("url")
            .spawn();
        handle.wait_synced(1).await;
        handles.push(handle);
    }
    let writer = RedisPolicies::connect(&server.url())
        .await
        .expect("connect");
    let mut samples = Vec::new();
    for i in 0..100u32 {
        let rps = 1000 + i;
        let waiting = waiters(&slots, rps);
        writer.apply(NS, &[policy(rps)]).await.expect("apply");
        let returned = Instant::now();
        samples.push(in_force_all(waiting, returned).await);
    }
    samples
}

async fn file_bench() -> Vec<Duration> {
    let dir = std::env::temp_dir().join(format!("fluxgate-reconcile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("policy.yaml");
    std::fs::write(&file, yaml(1)).expect("write");
    let mut handles = Vec::new();
    let mut slots = Vec::new();
    for _ in 0..REPLICAS {
        let store = PolicyStore::new();
        slots.push(store.slot(&PolicyId::new(NS, "api")));
        let mut source = FileSource::new(&file, store);
        source.load().expect("initial load");
        handles.push(source.spawn().expect("watch"));
    }
    let mut samples = Vec::new();
    for i in 0..25u32 {
        let rps = 2000 + i;
        let waiting = waiters(&slots, rps);
        std::fs::write(&file, yaml(rps)).expect("save");
        let saved = Instant::now();
        samples.push(in_force_all(waiting, saved).await);
        // Saves a person makes are seconds apart; keep them apart from the debounce window.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(handles);
    let _ = std::fs::remove_dir_all(&dir);
    samples
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("reconcile latency, {REPLICAS} replicas (goal: max < 300ms, p99 < 50ms)");
    report("redis apply -> all in force", redis_bench().await);
    report("file save -> all in force", file_bench().await);
}
