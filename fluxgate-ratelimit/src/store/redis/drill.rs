//! Traffic drills for shared limits, for tests and benches (features `redis` and `drill`,
//! which `test-support` includes): a fleet of stores on one Redis that count each other, one
//! client's traffic spread over them next to one gateway alone, and equal loads on every
//! replica.
//!
//! ```no_run
//! use std::time::Duration;
//! use fluxgate_core::policy::{LimitAlgorithm, SyncMode};
//! use fluxgate_ratelimit::Quota;
//! use fluxgate_ratelimit::store::{LimiterSpec, RedisOptions, drill};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let options = RedisOptions::new().mode(SyncMode::Synced).prefix("drill");
//! let fleet = drill::Fleet::start("redis://127.0.0.1:6380", 2, options).await?;
//! let spec = LimiterSpec::new("drill/l", LimitAlgorithm::SlidingWindow, Quota::new(5.0, 5));
//! let run = fleet.alternate(&spec, 20.0, Duration::from_secs(3)).await;
//! println!("fleet {} alone {}", run.fleet(), run.alone);
//! # Ok(()) }
//! ```

use std::hash::{BuildHasher, RandomState};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior, interval, sleep};

use super::{RedisConnectError, RedisOptions, RedisStore, SyncHandle};
use crate::store::{Checks, KeyRef, LimiterSpec, RateLimitStore};

/// Stores on one Redis, each with its sync task, that have counted each other; and one
/// gateway alone (a store of the same options under its own prefix, so that its windows fall
/// on the same clock as the fleet's).
#[derive(Debug)]
pub struct Fleet {
    /// The replicas' stores.
    pub stores: Vec<RedisStore>,
    alone: RedisStore,
    syncs: Vec<SyncHandle>,
}

/// What a drill admitted.
#[derive(Debug, Clone, Default)]
pub struct Admitted {
    /// Per replica.
    pub replicas: Vec<u64>,
    /// By one gateway alone given the same requests, when it was run.
    pub alone: u64,
}

impl Admitted {
    /// The fleet's total.
    #[must_use]
    pub fn fleet(&self) -> u64 {
        self.replicas.iter().sum()
    }
}

impl Fleet {
    /// Connects `n` stores to `url` with `options` (heartbeats every 100ms) and waits (at most
    /// 5s) until each counts `n` live replicas.
    ///
    /// # Errors
    ///
    /// As [`RedisStore::connect`].
    pub async fn start(
        url: &str,
        n: usize,
        options: RedisOptions,
    ) -> Result<Self, RedisConnectError> {
        let options = options.heartbeat_ttl(Duration::from_millis(400));
        let mut stores = Vec::new();
        for _ in 0..n {
            stores.push(RedisStore::connect(url, options.clone()).await?);
        }
        let alone_prefix = format!("{}:alone", options.prefix);
        let alone = RedisStore::connect(url, options.prefix(alone_prefix)).await?;
        let syncs = stores
            .iter()
            .chain([&alone])
            .map(RedisStore::spawn_sync)
            .collect();
        let want = u32::try_from(n).unwrap_or(u32::MAX);
        let deadline = Instant::now() + Duration::from_secs(5);
        while stores.iter().any(|s| s.stats().replicas < want) && Instant::now() < deadline {
            sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            stores,
            alone,
            syncs,
        })
    }

    /// Stops replica `i`'s sync task (its heartbeat expires, as a killed replica's would).
    pub fn stop_sync(&mut self, i: usize) {
        if i < self.syncs.len() {
            drop(self.syncs.remove(i));
        }
    }

    /// One client at `rate` requests/s for `duration`, its requests going to the replicas in
    /// turn, and each also to one gateway alone.
    pub async fn alternate(&self, spec: &LimiterSpec, rate: f64, duration: Duration) -> Admitted {
        let alone = &self.alone;
        let alone_limiter = alone.limiter(spec);
        let limiters: Vec<_> = self.stores.iter().map(|s| s.limiter(spec)).collect();
        let mut admitted = Admitted {
            replicas: vec![0; self.stores.len()],
            alone: 0,
        };
        let mut ticks = interval(Duration::from_secs_f64(1.0 / rate));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let end = Instant::now() + duration;
        let mut i = 0;
        while Instant::now() < end {
            ticks.tick().await;
            let r = i % self.stores.len();
            if decide(&self.stores[r], &limiters[r]).await {
                admitted.replicas[r] += 1;
            }
            if decide(alone, &alone_limiter).await {
                admitted.alone += 1;
            }
            i += 1;
        }
        admitted
    }

    /// Every replica at `rate` requests/s of its own for `duration`, concurrently, on one key;
    /// requests arrive at random (a Poisson process per replica), so that no replica's
    /// requests keep coming just before the other's.
    pub async fn equal_load(&self, spec: &LimiterSpec, rate: f64, duration: Duration) -> Admitted {
        let runs = self.stores.iter().enumerate().map(|(i, store)| {
            let limiter = store.limiter(spec);
            async move {
                let mut random = RandomState::new().hash_one(i) | 1;
                let start = Instant::now();
                let (mut at, mut admitted) = (0.0, 0);
                loop {
                    // xorshift64, then an exponential gap.
                    random ^= random << 13;
                    random ^= random >> 7;
                    random ^= random << 17;
                    let uniform = (random >> 11) as f64 / (1u64 << 53) as f64;
                    at += -(1.0 - uniform).ln() / rate;
                    if at >= duration.as_secs_f64() {
                        return admitted;
                    }
                    tokio::time::sleep_until(start + Duration::from_secs_f64(at)).await;
                    admitted += u64::from(decide(store, &limiter).await);
                }
            }
        });
        Admitted {
            replicas: futures::future::join_all(runs).await,
            alone: 0,
        }
    }
}

/// Scheduling jitter: keeps the machine's cores busy (3 spinning threads) and stops Redis
/// (`SIGSTOP`) for 15ms every 150ms, shorter than the longest a decision waits, until dropped.
#[derive(Debug)]
pub struct Jitter {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Jitter {
    // The sleeps are on threads of their own, not the runtime's.
    #[allow(clippy::disallowed_methods)]
    /// Starts the busy threads and the stops of process `redis_pid`.
    #[must_use]
    pub fn start(redis_pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads: Vec<_> = (0..3)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                    }
                })
            })
            .collect();
        let flag = Arc::clone(&stop);
        threads.push(std::thread::spawn(move || {
            let signal = |sig: &str| {
                let _ = Command::new("kill")
                    .args([sig, &redis_pid.to_string()])
                    .status();
            };
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(150));
                signal("-STOP");
                std::thread::sleep(Duration::from_millis(15));
                signal("-CONT");
            }
        }));
        Self { stop, threads }
    }
}

impl Drop for Jitter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

async fn decide<St: RateLimitStore>(store: &St, limiter: &St::Limiter) -> bool {
    let mut checks = Checks::new();
    checks.push(limiter, KeyRef::Bytes(b"client"), false);
    store.check(&checks).await.is_ok_and(|v| v.admitted())
}
