//! The sync task of synced mode (and the probe that closes the breaker), returned to the caller.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use fluxgate_core::policy::SyncMode;
use futures::future::{BoxFuture, FutureExt, join_all};

use super::conn::Conn;
use super::invoke::invocation;
use super::strict::{CallError, Item, OwnedKey};
use super::{LimiterInner, RedisStore, Shared};

/// Keys pushed per script call (single server) or per concurrent batch (cluster).
const BATCH: usize = 256;

/// The background work of a [`RedisStore`]: every sync interval (each synced limit's own, the
/// task waking at the shortest), pushes the synced units and reads the global counts back;
/// renews this replica's heartbeat (see [`RedisOptions::heartbeat_ttl`](super::RedisOptions::heartbeat_ttl));
/// while Redis is down, probes it with backoff. Spawn it (or use [`RedisStore::spawn_sync`]);
/// it ends when every handle to the store is dropped.
#[must_use = "the sync task does nothing unless spawned or polled"]
pub struct SyncTask {
    future: BoxFuture<'static, ()>,
}

impl std::fmt::Debug for SyncTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncTask")
    }
}

impl Future for SyncTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.future.as_mut().poll(cx)
    }
}

/// A spawned [`SyncTask`]; dropping it stops the task: synced counts are no longer pushed,
/// this replica's heartbeat expires, and the breaker is no longer probed. Keep it as long as
/// the store is in use.
#[derive(Debug)]
#[must_use = "dropping the handle stops syncing; keep it as long as the store is in use"]
pub struct SyncHandle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RedisStore {
    /// The sync task, for the caller to spawn (see [`SyncTask`]).
    pub fn sync_task(&self) -> SyncTask {
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let future = async move {
            loop {
                let Some(shared) = weak.upgrade() else { return };
                let started = tokio::time::Instant::now();
                sync_once(&shared, false).await;
                let tick = shared.tick();
                drop(shared);
                tokio::time::sleep_until(started + tick).await;
            }
        };
        SyncTask {
            future: future.boxed(),
        }
    }

    /// Spawns the [`sync_task`](Self::sync_task) on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as [`tokio::spawn`]).
    #[must_use = "dropping the handle stops syncing; keep it as long as the store is in use"]
    pub fn spawn_sync(&self) -> SyncHandle {
        SyncHandle {
            task: tokio::spawn(self.sync_task()),
        }
    }

    /// Runs one sync round now (what the task does every interval); `true` when Redis answered
    /// (or there was nothing to do).
    pub async fn sync_now(&self) -> bool {
        sync_once(&self.shared, true).await
    }
}

impl Shared {
    /// How often the sync task wakes: the shortest interval of a synced limit in use.
    fn tick(&self) -> Duration {
        self.live()
            .iter()
            .filter(|l| l.mode == SyncMode::Synced)
            .map(|l| l.interval)
            .min()
            .unwrap_or(self.options.interval)
    }
}

/// Pushes the synced limits that are due (all of them when `all`).
async fn sync_once(shared: &Arc<Shared>, all: bool) -> bool {
    let now = shared.clock.now();
    let down = shared.breaker.is_down();
    if down && !shared.breaker.allow(now) {
        return false;
    }
    let mut items = Vec::new();
    let mut tick = shared.options.interval;
    for limiter in shared.live() {
        if limiter.mode != SyncMode::Synced {
            continue;
        }
        tick = tick.min(limiter.interval);
        // Within a millisecond of due counts as due, so ticks at the interval never skip one.
        let due = limiter.next_sync.load(Ordering::Relaxed);
        if all || now + 1000 >= due {
            let next = u64::try_from(limiter.interval.as_micros()).unwrap_or(u64::MAX);
            limiter
                .next_sync
                .store(now.saturating_add(next), Ordering::Relaxed);
            let mut keys = Vec::new();
            limiter.table.collect(limiter.params, now, &mut keys);
            items.extend(keys.into_iter().map(|(hash, name, deltas)| Item {
                limiter: Arc::clone(&limiter),
                key: OwnedKey::Shared,
                hash,
                name,
                shadow: false,
                deltas: Some(deltas),
            }));
        }
    }
    let limit = shared
        .rtt
        .timeout(tick.max(shared.options.timeout.unwrap_or_default()));
    if !down && shared.fleet.due(now) {
        let beat = tokio::time::timeout(limit, shared.fleet.beat(&shared.conn)).await;
        let error = match beat {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(CallError::redis(e)),
            Err(_) => Some(CallError::Timeout(limit)),
        };
        if let Some(error) = error {
            let c = &shared.breaker.counts;
            c.sync_failures.fetch_add(1, Ordering::Relaxed);
            if !matches!(error, CallError::Timeout(_)) {
                let error = error.to_store_error(shared.secret.as_deref());
                shared.breaker.failure(shared.clock.now(), &error);
            }
        }
    }
    let result = if items.is_empty() {
        if !down {
            return true;
        }
        let mut conn = shared.conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        match tokio::time::timeout(limit, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(CallError::redis(e)),
            Err(_) => Err(CallError::Timeout(limit)),
        }
    } else {
        match tokio::time::timeout(limit, push(shared, &items, now)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout(limit)),
        }
    };
    match result {
        Ok(()) => {
            shared.breaker.success();
            let c = &shared.breaker.counts;
            c.syncs.fetch_add(1, Ordering::Relaxed);
            c.synced_keys
                .fetch_add(items.len() as u64, Ordering::Relaxed);
            true
        }
        Err(error) => {
            let c = &shared.breaker.counts;
            c.sync_failures.fetch_add(1, Ordering::Relaxed);
            for item in &items {
                if let Some(deltas) = item.deltas {
                    item.limiter.table.restore(item.hash, deltas);
                }
            }
            let error = error.to_store_error(shared.secret.as_deref());
            shared.breaker.failure(shared.clock.now(), &error);
            false
        }
    }
}

/// Pushes `items` and takes the replies in; items answered are no longer in flight.
async fn push(shared: &Shared, items: &[Item], now: u64) -> Result<(), CallError> {
    let mut conn = shared.conn.clone();
    for batch in items.chunks(BATCH) {
        let replies: Vec<Vec<i64>> = if matches!(conn, Conn::Single(_)) {
            let reply: Vec<i64> = invocation(shared, &[(batch, now)], "s", true)
                .invoke_async(&mut conn)
                .await
                .map_err(CallError::redis)?;
            reply.chunks(6).map(<[i64]>::to_vec).collect()
        } else {
            let calls = batch.iter().map(|item| {
                let mut conn = conn.clone();
                async move {
                    invocation(shared, &[(std::slice::from_ref(item), now)], "s", true)
                        .invoke_async::<Vec<i64>>(&mut conn)
                        .await
                }
            });
            join_all(calls)
                .await
                .into_iter()
                .collect::<Result<_, _>>()
                .map_err(CallError::redis)?
        };
        if replies.len() != batch.len() {
            return Err(CallError::Reply);
        }
        for (item, reply) in batch.iter().zip(replies) {
            let [_, _, _, s0, s1, s2] = reply[..] else {
                return Err(CallError::Reply);
            };
            let state = [s0, s1, s2].map(|v| u64::try_from(v).unwrap_or(0));
            let limiter: &LimiterInner = &item.limiter;
            limiter.table.absorb(item.hash, limiter.params, state, true);
        }
    }
    Ok(())
}
