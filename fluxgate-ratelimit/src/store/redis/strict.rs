//! Decisions in Redis: one script call for the checks of a request, and the fallback when Redis
//! fails.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::pin::Pin;

use redis::RedisError;
use tokio::time::Instant;

use super::batch;
use super::conn::Conn;
use super::error::{Scrubbed, scrub};
use super::fallback::fallback;
use super::invoke::invocation;
use super::synced::Deltas;
use super::{LimiterInner, Shared, rtt};
use crate::store::{KeyRef, Outcome, StoreError, Verdict};

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

/// Why a call did not answer (cheap to clone: a batch's failure is every request's).
#[derive(Debug, Clone)]
pub(crate) enum CallError {
    Redis(Arc<RedisError>),
    Timeout(Duration),
    Reply,
}

impl CallError {
    pub(crate) fn redis(error: RedisError) -> Self {
        Self::Redis(Arc::new(error))
    }

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

/// A call to Redis deciding a request, running on when its request stopped waiting.
type Call = Pin<Box<dyn Future<Output = Result<Verdict, CallError>> + Send>>;

/// A call still unanswered this long after it started means Redis is down (or hangs).
const OUTAGE: Duration = rtt::CEILING;
/// How long a late call is still waited for, to reconcile its answer.
const GRACE: Duration = Duration::from_secs(2);

/// Decides `items` in Redis, falling back on failure; never fails.
///
/// A request waits as long as its most impatient limit allows, or longer while the measured
/// round trips are long ([`Rtt::timeout`](rtt::Rtt::timeout)). A request that still times out
/// is decided by the fallback at once, while its call goes on: when Redis answers, the answer
/// is reconciled with the fallback's decision (see [`late`]), so that Redis ends up counting
/// what the client was given, once. A timeout opens the breaker only when the call stays
/// unanswered for [`OUTAGE`].
pub(crate) async fn decide(
    shared: Arc<Shared>,
    items: Vec<Item>,
    now: u64,
) -> Result<Verdict, StoreError> {
    let timeout = items
        .iter()
        .filter_map(|i| i.limiter.timeout)
        .min()
        .map(|floor| shared.rtt.timeout(floor));
    let items: Arc<[Item]> = items.into();
    let started = Instant::now();
    let mut call: Call = Box::pin(call(Arc::clone(&shared), Arc::clone(&items), now));
    let result = match timeout {
        Some(limit) => match tokio::time::timeout(limit, &mut call).await {
            Ok(result) => result,
            Err(_) => return Ok(late(&shared, items, call, started)),
        },
        None => call.await,
    };
    match result {
        Ok(verdict) => {
            shared.rtt.record(started.elapsed());
            shared.breaker.success();
            shared.breaker.counts.strict.fetch_add(1, Ordering::Relaxed);
            Ok(verdict)
        }
        Err(error) => {
            let error = error.to_store_error(shared.secret.as_deref());
            shared.breaker.failure(shared.clock.now(), &error);
            let checks = items.iter();
            let checks = checks.map(|i| (&*i.limiter, i.key.get(), i.shadow, i.hash));
            Ok(fallback(&shared, checks, true))
        }
    }
}

/// One call deciding `items` (batched with others' on one server).
async fn call(shared: Arc<Shared>, items: Arc<[Item]>, now: u64) -> Result<Verdict, CallError> {
    if matches!(shared.conn, Conn::Single(_)) {
        // The batch takes the units in flight in or back, whenever its answer comes.
        batch::submit(&shared, items, now).await
    } else {
        let result = call_cluster(&shared, &items, now).await;
        if result.is_err() {
            restore(&items);
        }
        result
    }
}

/// A decision whose call timed out: the fallback decides now, and the call goes on in the
/// background. Its round trip is measured (the next waits grow), and its answer reconciled:
/// when the fallback admitted a request that Redis refused, the request's units are charged to
/// Redis; when Redis admitted one the fallback refused, they are given back.
fn late(shared: &Arc<Shared>, items: Arc<[Item]>, mut call: Call, started: Instant) -> Verdict {
    shared
        .breaker
        .counts
        .timeouts
        .fetch_add(1, Ordering::Relaxed);
    // Reconciled below: the fallback's units are not counted in synced mode's state too.
    let checks = items.iter();
    let checks = checks.map(|i| (&*i.limiter, i.key.get(), i.shadow, i.hash));
    let given = fallback(shared, checks, false);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // No runtime to finish the call on: it is dropped, its units taken back.
        if !matches!(shared.conn, Conn::Single(_)) {
            restore(&items);
        }
        return given;
    };
    let shared = Arc::clone(shared);
    runtime.spawn(async move {
        let result = match tokio::time::timeout_at(started + OUTAGE, &mut call).await {
            Ok(result) => result,
            Err(_) => {
                let error = StoreError::Timeout(OUTAGE);
                shared.breaker.failure(shared.clock.now(), &error);
                let result = tokio::time::timeout(GRACE, call).await;
                if result.is_err() && !matches!(shared.conn, Conn::Single(_)) {
                    restore(&items);
                }
                result.unwrap_or(Err(CallError::Timeout(OUTAGE + GRACE)))
            }
        };
        match result {
            Ok(answer) => {
                shared.rtt.record(started.elapsed());
                shared.breaker.success();
                reconcile(&shared, &items, &answer, &given).await;
            }
            Err(CallError::Timeout(_)) => {}
            Err(error) => {
                let error = error.to_store_error(shared.secret.as_deref());
                shared.breaker.failure(shared.clock.now(), &error);
            }
        }
    });
    given
}

/// Makes Redis count what the client was given: `answer` is what Redis decided (and counted),
/// `given` what the fallback decided.
async fn reconcile(shared: &Shared, items: &[Item], answer: &Verdict, given: &Verdict) {
    let (op, taken) = match (answer.admitted(), given.admitted()) {
        (false, true) => ("c", given),
        (true, false) => ("r", answer),
        _ => return,
    };
    let mut conn = shared.conn.clone();
    let now = shared.clock.now();
    for (i, item) in items.iter().enumerate() {
        if !matches!(taken.outcome(i), Outcome::Admitted { .. }) {
            continue;
        }
        let one = std::slice::from_ref(item);
        let reply = invocation(shared, &[(one, now)], op, false)
            .invoke_async::<Vec<i64>>(&mut conn)
            .await;
        if let Ok(reply) = reply {
            let (_, state) = decode_entry(&reply);
            shared
                .breaker
                .counts
                .reconciled
                .fetch_add(1, Ordering::Relaxed);
            item.limiter
                .table
                .absorb(item.hash, item.limiter.params, state, false);
        }
    }
}

/// Takes back the synced units that `items` carried, whose call failed.
pub(crate) fn restore(items: &[Item]) {
    for item in items {
        if let Some(deltas) = item.deltas {
            item.limiter.table.restore(item.hash, deltas);
        }
    }
}

/// A cluster keeps each limit's key in its own slot: one call per check, in order, and the
/// units of earlier checks given back when a later one refuses.
async fn call_cluster(shared: &Shared, items: &[Item], now: u64) -> Result<Verdict, CallError> {
    let mut conn = shared.conn.clone();
    let mut verdict = Verdict::default();
    for i in 0..items.len() {
        let one = &items[i..=i];
        let reply: Vec<i64> = invocation(shared, &[(one, now)], "d", true)
            .invoke_async(&mut conn)
            .await
            .map_err(CallError::redis)?;
        read_reply(&reply, one, &mut verdict, i)?;
        if matches!(verdict.outcome(i), Outcome::Refused { .. }) {
            for (j, item) in items.iter().enumerate().take(i) {
                if matches!(verdict.outcome(j), Outcome::Admitted { .. }) {
                    // The units carried went in with the first call; a refund carries none.
                    invocation(shared, &[(std::slice::from_ref(item), now)], "r", false)
                        .invoke_async::<Vec<i64>>(&mut conn)
                        .await
                        .map_err(CallError::redis)?;
                }
            }
            break;
        }
    }
    Ok(verdict)
}

/// Reads the replies of `items` (6 integers each) into `verdict` from check `first` on, and
/// takes the state Redis holds into synced mode's view.
pub(crate) fn read_reply(
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
