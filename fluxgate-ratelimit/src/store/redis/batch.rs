//! Strict decisions on one server, batched: requests that arrive while a call is on the wire
//! wait together and go in the next call, one script call deciding each of them atomically.
//!
//! A request that finds no call on the wire and carries no synced units makes its own call at
//! once, inline (at concurrency 1, no task and no channel on the way). Otherwise the call is made
//! by a flusher task, spawned when the first request finds none running, which drains the queue
//! until it is empty; an inline call that ends (or is dropped: its timeout) with requests waiting
//! hands them to a new flusher, so none is stranded. A request that stops waiting leaves its
//! place; the flusher then takes its synced units back (or in, if the call was made).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

use super::Shared;
use super::strict::{CallError, Item, read_reply, restore};
use crate::store::Verdict;

/// The most keys one call carries; requests beyond it wait for the next call.
const MAX_KEYS: usize = 512;

/// How long the flusher waits for a call whose requests all have a timeout, beyond the longest.
const GRACE: Duration = Duration::from_secs(1);

/// The requests waiting for the next call.
#[derive(Debug, Default)]
pub(crate) struct Batcher {
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    waiting: Vec<Pending>,
    running: bool,
}

#[derive(Debug)]
struct Pending {
    items: Arc<[Item]>,
    now: u64,
    reply: oneshot::Sender<Result<Verdict, CallError>>,
}

/// Decides `items` in the next call (or its own, inline) and waits for the answer.
pub(crate) async fn submit(
    shared: &Arc<Shared>,
    items: Arc<[Item]>,
    now: u64,
) -> Result<Verdict, CallError> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // No runtime to run a flusher on: this request's own call.
        let result = call(shared, &[(&items[..], now)]).await;
        return match result {
            Ok(mut verdicts) => Ok(verdicts.pop().unwrap_or_default()),
            Err(error) => {
                restore(&items);
                Err(error)
            }
        };
    };
    let carried = items.iter().any(|i| i.deltas.is_some());
    let queued = {
        let mut queue = shared.batcher.lock();
        let idle = !std::mem::replace(&mut queue.running, true);
        (!idle || carried).then(|| {
            let (reply, answer) = oneshot::channel();
            let items = Arc::clone(&items);
            queue.waiting.push(Pending { items, now, reply });
            (idle, answer)
        })
    };
    if let Some((idle, answer)) = queued {
        if idle {
            runtime.spawn(flush(Arc::clone(shared)));
        }
        return answer.await.unwrap_or(Err(CallError::Reply));
    }
    // Inline: nothing to take back if the call fails or is dropped (no synced units carried).
    let _handoff = Handoff { shared, runtime };
    count_call(shared);
    let mut verdicts = call(shared, &[(&items[..], now)]).await?;
    Ok(verdicts.pop().unwrap_or_default())
}

/// Ends an inline call (however it ends): hands the requests that queued meanwhile to a
/// flusher, or marks the batcher idle.
struct Handoff<'a> {
    shared: &'a Arc<Shared>,
    runtime: tokio::runtime::Handle,
}

impl Drop for Handoff<'_> {
    fn drop(&mut self) {
        let mut queue = self.shared.batcher.lock();
        if queue.waiting.is_empty() {
            queue.running = false;
        } else {
            drop(queue);
            self.runtime.spawn(flush(Arc::clone(self.shared)));
        }
    }
}

fn count_call(shared: &Shared) {
    shared
        .breaker
        .counts
        .strict_calls
        .fetch_add(1, Ordering::Relaxed);
}

impl Batcher {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Marks the flusher stopped however it ends (a runtime shutting down drops it mid-call).
struct Running<'a> {
    batcher: &'a Batcher,
    armed: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.batcher.lock().running = false;
        }
    }
}

/// Sends the waiting requests, a batch per call, until none wait.
async fn flush(shared: Arc<Shared>) {
    let mut running = Running {
        batcher: &shared.batcher,
        armed: true,
    };
    loop {
        let batch = {
            let mut queue = shared.batcher.lock();
            queue.waiting.retain(|p| {
                let gone = p.reply.is_closed();
                if gone {
                    restore(&p.items);
                }
                !gone
            });
            if queue.waiting.is_empty() {
                queue.running = false;
                drop(queue);
                // Already marked stopped, under the lock: a flusher started since stays marked.
                running.armed = false;
                return;
            }
            let (mut n, mut keys) = (0, 0);
            while let Some(p) = queue.waiting.get(n)
                && (n == 0 || keys + p.items.len() <= MAX_KEYS)
            {
                keys += p.items.len();
                n += 1;
            }
            queue.waiting.drain(..n).collect::<Vec<_>>()
        };
        let groups: Vec<(&[Item], u64)> = batch.iter().map(|p| (&p.items[..], p.now)).collect();
        let bound = batch
            .iter()
            .flat_map(|p| p.items.iter().map(|i| i.limiter.timeout))
            .try_fold(Duration::ZERO, |longest, t| t.map(|t| longest.max(t)));
        let result = match bound {
            Some(longest) => tokio::time::timeout(longest + GRACE, call(&shared, &groups))
                .await
                .unwrap_or(Err(CallError::Timeout(longest + GRACE))),
            None => call(&shared, &groups).await,
        };
        count_call(&shared);
        match result {
            Ok(verdicts) => {
                for (pending, verdict) in batch.into_iter().zip(verdicts) {
                    let _ = pending.reply.send(Ok(verdict));
                }
            }
            Err(error) => {
                for pending in batch {
                    restore(&pending.items);
                    let _ = pending.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// One script call deciding `groups` (each a request's items and time); a verdict per group.
async fn call(shared: &Shared, groups: &[(&[Item], u64)]) -> Result<Vec<Verdict>, CallError> {
    let mut conn = shared.conn.clone();
    let reply: Vec<i64> = super::invoke::invocation(shared, groups, "d", true)
        .invoke_async(&mut conn)
        .await
        .map_err(CallError::redis)?;
    let keys: usize = groups.iter().map(|(items, _)| items.len()).sum();
    if reply.len() != keys * 6 {
        return Err(CallError::Reply);
    }
    let mut at = 0;
    let mut verdicts = Vec::with_capacity(groups.len());
    for (items, _) in groups {
        let mut verdict = Verdict::default();
        let end = at + items.len() * 6;
        read_reply(&reply[at..end], items, &mut verdict, 0)?;
        verdicts.push(verdict);
        at = end;
    }
    Ok(verdicts)
}
