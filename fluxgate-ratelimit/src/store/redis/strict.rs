//! Decisions in Redis: one script call for the checks of a request, and the fallback when Redis
//! fails.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fluxgate_core::policy::StoreFailure;
use redis::RedisError;

use super::conn::Conn;
use super::error::{Scrubbed, scrub};
use super::synced::Deltas;
use super::{LimiterInner, Shared};
use crate::store::{Checks, KeyRef, Outcome, RateLimitStore, StoreError, Verdict};

/// A check copied out of the request, so that the call may outlive it.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) limiter: Arc<LimiterInner>,
    pub(crate) key: OwnedKey,
    pub(crate) hash: u64,
    pub(crate) name: String,
    pub(crate) shadow: bool,
    /// Synced units sent with the call (`None`: nothing carried).
    pub(crate) deltas: Option<Deltas>,
}

/// A [`KeyRef`] that owns its bytes.
#[derive(Debug)]
pub(crate) enum OwnedKey {
    Bytes(Box<[u8]>),
    Ip(IpAddr),
    Shared,
}

impl OwnedKey {
    pub(crate) fn new(key: KeyRef<'_>) -> Self {
        match key {
            KeyRef::Bytes(b) => Self::Bytes(b.into()),
            KeyRef::Ip(ip) => Self::Ip(ip),
            _ => Self::Shared,
        }
    }

    fn get(&self) -> KeyRef<'_> {
        match self {
            Self::Bytes(b) => KeyRef::Bytes(b),
            Self::Ip(ip) => KeyRef::Ip(*ip),
            Self::Shared => KeyRef::Shared,
        }
    }
}

/// Why a call did not answer.
#[derive(Debug)]
pub(crate) enum CallError {
    Redis(RedisError),
    Timeout(Duration),
    Reply,
}

impl CallError {
    pub(crate) fn to_store_error(&self, secret: Option<&str>) -> StoreError {
        match self {
            Self::Timeout(d) => StoreError::Timeout(*d),
            Self::Redis(e) => {
                StoreError::Unavailable(Box::new(Scrubbed(scrub(&e.to_string(), secret))))
            }
            Self::Reply => {
                StoreError::Unavailable(Box::new(Scrubbed("unexpected script reply".to_owned())))
            }
        }
    }
}

/// Decides `items` in Redis, falling back on failure; never fails.
pub(crate) async fn decide(
    shared: Arc<Shared>,
    mut items: Vec<Item>,
    now: u64,
) -> Result<Verdict, StoreError> {
    let call = call(&shared, &mut items, now);
    let result = match shared.options.timeout {
        Some(limit) => tokio::time::timeout(limit, call)
            .await
            .unwrap_or(Err(CallError::Timeout(limit))),
        None => call.await,
    };
    match result {
        Ok(verdict) => {
            shared.breaker.success();
            shared.breaker.counts.strict.fetch_add(1, Ordering::Relaxed);
            Ok(verdict)
        }
        Err(error) => {
            let error = error.to_store_error(shared.secret.as_deref());
            shared.breaker.failure(shared.clock.now(), &error);
            for item in &items {
                if let Some(deltas) = item.deltas {
                    item.limiter.table.restore(item.hash, deltas);
                }
            }
            Ok(fallback(
                &shared,
                items.iter().map(|i| (&*i.limiter, i.key.get(), i.shadow)),
            ))
        }
    }
}

/// The script's arguments for `items` with operation `op`.
pub(crate) fn invocation<'s>(
    shared: &'s Shared,
    items: &[Item],
    op: &str,
    now: u64,
) -> redis::ScriptInvocation<'s> {
    let mut inv = shared.script.prepare_invoke();
    inv.arg(shared.now_arg(now)).arg(op);
    for item in items {
        let (algo, a, b) = item.limiter.params.script_args();
        let (tag, dp, dc) = item.deltas.unwrap_or_default();
        inv.key(&item.name)
            .arg(algo)
            .arg(a)
            .arg(b)
            .arg(if item.shadow { "1" } else { "0" })
            .arg(tag)
            .arg(dp)
            .arg(dc);
    }
    inv
}

async fn call(shared: &Shared, items: &mut [Item], now: u64) -> Result<Verdict, CallError> {
    let mut conn = shared.conn.clone();
    let mut verdict = Verdict::default();
    if matches!(conn, Conn::Single(_)) || items.len() == 1 {
        let reply: Vec<i64> = invocation(shared, items, "d", now)
            .invoke_async(&mut conn)
            .await
            .map_err(CallError::Redis)?;
        read_reply(&reply, items, &mut verdict, 0)?;
        return Ok(verdict);
    }
    // A cluster keeps each limit's key in its own slot: one call per check, in order, and the
    // units of earlier checks given back when a later one refuses.
    for i in 0..items.len() {
        let reply: Vec<i64> = invocation(shared, &items[i..=i], "d", now)
            .invoke_async(&mut conn)
            .await
            .map_err(CallError::Redis)?;
        read_reply(&reply, &items[i..=i], &mut verdict, i)?;
        if matches!(verdict.outcome(i), Outcome::Refused { .. }) {
            for (j, item) in items.iter_mut().enumerate().take(i) {
                if matches!(verdict.outcome(j), Outcome::Admitted { .. }) {
                    // The units carried went in with the first call; a refund carries none.
                    let carried = item.deltas.take();
                    let refund: Result<Vec<i64>, _> =
                        invocation(shared, std::slice::from_ref(item), "r", now)
                            .invoke_async(&mut conn)
                            .await;
                    item.deltas = carried;
                    refund.map_err(CallError::Redis)?;
                }
            }
            break;
        }
    }
    Ok(verdict)
}

fn read_reply(
    reply: &[i64],
    items: &[Item],
    verdict: &mut Verdict,
    first: usize,
) -> Result<(), CallError> {
    if reply.len() != items.len() * 6 {
        return Err(CallError::Reply);
    }
    for (i, (item, r)) in items.iter().zip(reply.chunks_exact(6)).enumerate() {
        let (outcome, state) = decode_entry(r);
        verdict.set(first + i, outcome);
        item.limiter
            .table
            .absorb(item.hash, item.limiter.params, state, item.deltas.is_some());
    }
    Ok(())
}

/// One check's six reply integers: its outcome and the counter state Redis holds for the key.
pub(crate) fn decode_entry(r: &[i64]) -> (Outcome, [u64; 3]) {
    let at = |i: usize| r.get(i).copied().unwrap_or(0);
    let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
    let outcome = match at(0) {
        1 => Outcome::Admitted {
            remaining: u32::try_from(at(1)).unwrap_or(0),
            reset: us(at(2)),
        },
        2 => Outcome::Refused {
            retry_after: us(at(1)),
        },
        3 => Outcome::ShadowRefused {
            retry_after: us(at(1)),
        },
        _ => Outcome::Skipped,
    };
    (
        outcome,
        [at(3), at(4), at(5)].map(|v| u64::try_from(v).unwrap_or(0)),
    )
}

/// The decision while Redis is unreachable, per `onStoreFailure`.
pub(crate) fn fallback<'a>(
    shared: &Shared,
    checks: impl Iterator<Item = (&'a LimiterInner, KeyRef<'a>, bool)>,
) -> Verdict {
    shared
        .breaker
        .counts
        .fallback
        .fetch_add(1, Ordering::Relaxed);
    let mut verdict = Verdict::default();
    match shared.options.on_failure {
        StoreFailure::Open => {
            for (i, (limiter, ..)) in checks.enumerate() {
                let remaining = limiter.fallback.quota().burst_size();
                verdict.set(
                    i,
                    Outcome::Admitted {
                        remaining,
                        reset: Duration::ZERO,
                    },
                );
            }
        }
        StoreFailure::Closed => {
            let retry_after = shared.options.probe_max;
            for (i, (_, _, shadow)) in checks.enumerate() {
                if shadow {
                    verdict.set(i, Outcome::ShadowRefused { retry_after });
                } else {
                    verdict.set(i, Outcome::Refused { retry_after });
                    break;
                }
            }
        }
        _ => {
            let mut local = Checks::new();
            for (limiter, key, shadow) in checks {
                local.push(&limiter.fallback, key, shadow);
            }
            if let Ok(v) = shared.fallback.check(&local).into_inner() {
                verdict = v;
            }
        }
    }
    verdict
}
