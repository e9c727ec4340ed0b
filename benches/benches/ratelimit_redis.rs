//! Per-decision cost of the Redis store against the local store and a plain Redis `INCR`:
//! synced mode (local decisions), strict mode (one script call), the local store, and the
//! `INCR` round trip from the same client (strict mode's floor), at concurrency 1; and strict
//! mode under concurrency (64 decisions in flight, time per batch of 64), and how many
//! decisions share one round trip at 1 and 64 in flight.
//!
//! Run with: `cargo bench -p fluxgate-benches --bench ratelimit_redis`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fluxgate_core::policy::{LimitAlgorithm, SyncMode};
use fluxgate_ratelimit::Quota;
use fluxgate_ratelimit::store::{
    Checks, KeyRef, LimiterSpec, LocalStore, RateLimitStore, RedisOptions, RedisStore,
};
use fluxgate_test_support::RedisServer;
use futures::future::join_all;

/// Large enough that nothing is refused while measuring.
fn spec() -> LimiterSpec {
    LimiterSpec::new(
        "bench/edge/l/key",
        LimitAlgorithm::SlidingWindow,
        Quota::new(1e9, 1_000_000),
    )
}

async fn decide<St: RateLimitStore>(store: &St, limiter: &St::Limiter) -> bool {
    let mut checks = Checks::new();
    checks.push(limiter, KeyRef::Bytes(b"client-1"), false);
    store.check(&checks).await.is_ok_and(|v| v.admitted())
}

fn bench(c: &mut Criterion) {
    let Ok(server) = RedisServer::start() else {
        eprintln!("redis-server unavailable; skipping");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let connect = |mode| {
        let options = RedisOptions::new()
            .mode(mode)
            .timeout(Duration::from_secs(1));
        rt.block_on(RedisStore::connect(&server.url(), options))
            .expect("connect")
    };
    let synced = connect(SyncMode::Synced);
    let strict = connect(SyncMode::Strict);
    let local = LocalStore::new();
    let _sync = rt.block_on(async { synced.spawn_sync() });
    let (synced_l, strict_l, local_l) = (
        synced.limiter(&spec()),
        strict.limiter(&spec()),
        local.limiter(&spec()),
    );
    let client = redis::Client::open(server.url()).expect("client");
    let conn = rt
        .block_on(client.get_multiplexed_async_connection())
        .expect("connection");

    let mut group = c.benchmark_group("ratelimit/redis");
    group.bench_function("local_store/c1", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(decide(&local, &local_l).await) });
    });
    group.bench_function("synced/c1", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(decide(&synced, &synced_l).await) });
    });
    group.bench_function("strict/c1", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(decide(&strict, &strict_l).await) });
    });
    group.bench_function("incr_round_trip/c1", |b| {
        b.to_async(&rt).iter(|| async {
            let mut conn = conn.clone();
            let n: redis::RedisResult<i64> = redis::cmd("INCR")
                .arg("bench:incr")
                .query_async(&mut conn)
                .await;
            black_box(n.is_ok())
        });
    });
    let script = redis::Script::new(include_str!(
        "../../fluxgate-ratelimit/src/store/redis/script.lua"
    ));
    group.bench_function("evalsha_round_trip/c1", |b| {
        b.to_async(&rt).iter(|| async {
            let mut conn = conn.clone();
            let n: redis::RedisResult<Vec<i64>> = script
                .prepare_invoke()
                .arg("d")
                .arg(1)
                .arg(-1)
                .arg(1)
                .key("fg:{x|b:c}:w")
                .arg("w")
                .arg(1_000_000u64)
                .arg(1_000_000_000u64)
                .arg("0")
                .arg(0)
                .arg(0)
                .arg(0)
                .invoke_async(&mut conn)
                .await;
            black_box(n.is_ok())
        });
    });
    group.bench_function("strict/c64_per_batch", |b| {
        b.to_async(&rt).iter(|| async {
            let all = join_all((0..64).map(|_| decide(&strict, &strict_l))).await;
            black_box(all.iter().filter(|a| **a).count())
        });
    });
    group.finish();

    // Decisions per round trip (script call) at 64 in flight, and at 1.
    for inflight in [1, 64] {
        let before = strict.stats();
        rt.block_on(async {
            for _ in 0..200 {
                join_all((0..inflight).map(|_| decide(&strict, &strict_l))).await;
            }
        });
        let after = strict.stats();
        let decisions = after.strict_decisions - before.strict_decisions;
        let calls = after.strict_calls - before.strict_calls;
        println!(
            "ratelimit/redis/strict/c{inflight}: {decisions} decisions in {calls} calls, {:.1} per round trip",
            decisions as f64 / calls.max(1) as f64
        );
    }
    assert_eq!(strict.stats().faults, 0, "Redis failed during the bench");
}

criterion_group!(benches, bench);
criterion_main!(benches);
