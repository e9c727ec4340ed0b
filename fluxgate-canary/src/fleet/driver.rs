//! The judge of a replica in a fleet: one tick every `budget_tick` that publishes this
//! replica's counts, follows the fleet's state and, on the lease holder, judges the merged
//! window.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, timeout};

use super::counts::{SideCounts, Tally};
use super::state::{FleetState, FleetStatus};
use super::store::{Fleet, FleetError, SyncReply, SyncRequest, WriteResult, unix_ms};
use crate::decision::{Action, Phase};
use crate::machine::{Machine, Measurement};
use crate::shared::Shared;

/// The longest window kept in the store, in buckets.
const MAX_BUCKETS: u32 = 60;

/// A router's part of a fleet, kept in its [`Shared`] state.
#[derive(Debug)]
pub(crate) struct FleetLink {
    pub(crate) config: Fleet,
    /// Counts since the last tick: stable, canary.
    pub(crate) tallies: Arc<[Tally; 2]>,
    /// Wakes the driver: a write to the fleet state, or a manual action to publish.
    pub(crate) wake: Arc<Notify>,
    pending: Mutex<Vec<Action>>,
    joined: AtomicBool,
    pub(crate) policy_changed: AtomicBool,
    status: Mutex<FleetStatus>,
}

impl FleetLink {
    pub(crate) fn new(config: Fleet) -> Self {
        let mut status = FleetStatus::default();
        status.replica.clone_from(&config.replica);
        Self {
            config,
            tallies: Arc::new([Tally::default(), Tally::default()]),
            wake: Arc::new(Notify::new()),
            pending: Mutex::new(Vec::new()),
            joined: AtomicBool::new(false),
            policy_changed: AtomicBool::new(false),
            status: Mutex::new(status),
        }
    }

    /// Whether the fleet's state has been read once: before, nothing goes to the canary.
    pub(crate) fn joined(&self) -> bool {
        self.joined.load(Ordering::Acquire)
    }

    /// Queues a manual action (already applied locally) for the fleet.
    pub(crate) fn push(&self, action: Action) {
        lock(&self.pending).push(action);
        self.wake.notify_one();
    }

    pub(crate) fn status(&self) -> FleetStatus {
        lock(&self.status).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The store's buckets for an analysis interval: at most 60, about 1s wide, `n · width ≥
/// interval`.
fn geometry(interval: Duration) -> (Duration, u32) {
    let ms = interval.as_millis().max(1);
    let n = ms.div_ceil(1000).clamp(1, u128::from(MAX_BUCKETS));
    let width = u64::try_from(ms.div_ceil(n)).unwrap_or(u64::MAX);
    (
        Duration::from_millis(width),
        u32::try_from(n).unwrap_or(MAX_BUCKETS),
    )
}

/// Runs a fleet replica's judge until the router is dropped.
pub(crate) async fn run(shared: Arc<Shared>, alive: Weak<()>) {
    let Some(link) = shared.fleet.as_ref() else {
        return;
    };
    link.config
        .store
        .watch(&link.config.id, Arc::downgrade(&link.wake));
    let tick = shared.options.budget_tick;
    let mut driver = Driver::default();
    let mut next = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = link.wake.notified() => {}
        }
        if alive.strong_count() == 0 {
            return;
        }
        let now = Instant::now();
        while next <= now {
            next += tick;
        }
        shared.refresh();
        shared.resample(now);
        driver.tick(&shared, link).await;
    }
}

#[derive(Debug, Default)]
struct Driver {
    /// The fleet version the machine stands on.
    adopted: u64,
    /// This replica's counts stored in the current bucket: its index and width, the counts.
    bucket: (u64, Duration, SideCounts),
    /// Counts not stored yet (the store did not answer).
    unsent: SideCounts,
    /// A rollback decided on local traffic while the store was away, to publish.
    local_rollback: bool,
    /// The sliding window judged at the last tick as the lease holder, published with the next.
    judged: Option<SideCounts>,
    /// The machine as it was before this replica, as the lease holder, decided on the fleet's
    /// window, while that decision is being written: if the write fails or times out, the
    /// decision is undone, so that no replica acts on a step the fleet never recorded.
    undo: Option<Machine>,
}

impl Driver {
    async fn tick(&mut self, shared: &Shared, link: &FleetLink) {
        let config = &link.config;
        let interval = shared.windows.load().interval;
        let (bucket, buckets) = geometry(interval);
        self.unsent.merge(&SideCounts {
            stable: link.tallies[0].take(),
            canary: link.tallies[1].take(),
        });
        let now_ms = unix_ms();
        let index = now_ms / u64::try_from(bucket.as_millis()).unwrap_or(u64::MAX).max(1);
        if (self.bucket.0, self.bucket.1) != (index, bucket) {
            self.bucket = (index, bucket, SideCounts::default());
        }
        let mut counts = self.bucket.2.clone();
        counts.merge(&self.unsent);
        let request = SyncRequest {
            id: config.id.clone(),
            replica: config.replica.clone(),
            now_ms,
            counts,
            bucket,
            buckets,
            lease_ttl: config.lease_ttl,
            heartbeat_ttl: config.heartbeat_ttl,
            judged: self.judged.take(),
        };
        let started = Instant::now();
        let reply = match timeout(config.timeout, config.store.sync(&request)).await {
            Ok(Ok(reply)) => {
                self.bucket.2 = request.counts;
                self.unsent = SideCounts::default();
                reply
            }
            Ok(Err(error)) => return self.offline(shared, link, &error),
            Err(_) => return self.offline(shared, link, &FleetError::Timeout),
        };
        // A lease renewed long ago may have expired since: no judging on a slow answer.
        let leader = reply.leader && started.elapsed() < config.lease_ttl / 2;
        let interval_ms = u64::try_from(interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let result = timeout(
            config.timeout,
            self.online(shared, link, reply, leader, request.now_ms / interval_ms),
        )
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => self.offline(shared, link, &error),
            Err(_) => self.offline(shared, link, &FleetError::Timeout),
        }
    }

    /// The store is away: the state stays as last known; the error budget is judged on this
    /// replica's own traffic, and a rollback is published once the store answers.
    fn offline(&mut self, shared: &Shared, link: &FleetLink, error: &FleetError) {
        if let Some(undo) = self.undo.take() {
            let mut machine = shared.lock();
            *machine = undo;
            shared.publish(&machine);
        }
        let was = shared.lock().phase;
        shared.check_budget(Instant::now());
        if was != Phase::RolledBack && shared.lock().phase == Phase::RolledBack {
            tracing::warn!(target: "fluxgate_canary", replica = %link.config.replica,
                "canary rolled back on local traffic while the shared store is away");
            self.local_rollback = true;
        }
        let mut status = lock(&link.status);
        if status.connected || status.failures == 0 {
            tracing::warn!(target: "fluxgate_canary", replica = %link.config.replica, %error,
                "shared canary store unreachable: keeping the last known state");
        }
        status.connected = false;
        status.leader = false;
        status.failures += 1;
        status.last_error = Some(error.to_string());
        status.rollback_pending = self.local_rollback;
    }

    async fn write(&self, link: &FleetLink, state: &FleetState) -> Result<WriteResult, FleetError> {
        link.config.store.write(&link.config.id, state).await
    }

    async fn online(
        &mut self,
        shared: &Shared,
        link: &FleetLink,
        reply: SyncReply,
        leader: bool,
        interval_index: u64,
    ) -> Result<(), FleetError> {
        let me = link.config.replica.as_str();
        let now_ms = unix_ms();
        let mut state = match reply.state {
            Some(state) => state,
            // A new rollout, or a store that lost its data: this replica's view seeds it.
            None => {
                let mut seed = FleetState::next(None, &shared.lock(), true, me, now_ms);
                seed.analysed = interval_index.saturating_sub(1);
                match self.write(link, &seed).await? {
                    WriteResult::Written => {
                        self.adopted = seed.version;
                        seed
                    }
                    WriteResult::Conflict(Some(stored)) => stored,
                    WriteResult::Conflict(None) => return Ok(()),
                }
            }
        };
        if self.local_rollback {
            self.publish_rollback(shared, link, &mut state, now_ms)
                .await?;
        }
        self.publish_actions(shared, link, &mut state, now_ms)
            .await?;
        {
            let mut machine = shared.lock();
            if state.version != self.adopted || !state.matches(&machine) {
                state.adopt_into(&mut machine, state.version != self.adopted, Instant::now());
                self.adopted = state.version;
            }
            link.joined.store(true, Ordering::Release);
            shared.publish(&machine);
        }
        let policy_changed = link.policy_changed.swap(false, Ordering::AcqRel);
        let window = reply.window.filter(|_| leader);
        {
            let mut status = lock(&link.status);
            status.connected = true;
            status.joined = true;
            status.leader = leader;
            status.version = state.version;
            status.rollback_pending = self.local_rollback;
            status.window_requests = window.as_ref().map(|w| w.sliding().canary.requests);
        }
        let Some(window) = window else {
            return Ok(());
        };
        self.judged = Some(window.sliding());
        // The lease holder judges the fleet's traffic.
        let next = {
            let mut machine = shared.lock();
            self.undo = Some(machine.clone());
            let before = machine.transitions;
            let now = Instant::now();
            if policy_changed {
                let generation = shared.generation();
                machine.refit(true, generation, now);
            }
            let sliding = window.sliding().canary;
            machine.budget(sliding.requests, sliding.availability(), now);
            let mut analysed = state.analysed;
            let last_complete = interval_index.saturating_sub(1);
            if last_complete > state.analysed {
                let complete = window.complete().canary;
                let measurement = Measurement {
                    samples: complete.requests,
                    error_rate: complete.error_rate(),
                    p99: complete.quantile(0.99),
                };
                machine.analyse(measurement, shared.options.insufficient_samples, now);
                analysed = last_complete;
            }
            let decided = machine.transitions != before;
            shared.publish(&machine);
            (decided || analysed != state.analysed).then(|| {
                let mut next = FleetState::next(Some(&state), &machine, decided, me, now_ms);
                next.analysed = analysed;
                next
            })
        };
        if let Some(next) = next {
            match self.write(link, &next).await? {
                WriteResult::Written => self.adopted = next.version,
                // Someone wrote first (an action by hand): theirs stands, followed next tick.
                WriteResult::Conflict(_) => link.wake.notify_one(),
            }
        }
        self.undo = None;
        Ok(())
    }

    /// Publishes a local rollback, unless the fleet has moved on (promoted or rolled back).
    async fn publish_rollback(
        &mut self,
        shared: &Shared,
        link: &FleetLink,
        state: &mut FleetState,
        now_ms: u64,
    ) -> Result<(), FleetError> {
        if !matches!(state.phase, Phase::Progressing | Phase::Paused) {
            self.local_rollback = false;
            return Ok(());
        }
        let mut next = FleetState::next(
            Some(state),
            &shared.lock(),
            true,
            &link.config.replica,
            now_ms,
        );
        next.analysed = state.analysed;
        match self.write(link, &next).await? {
            WriteResult::Written => {
                tracing::warn!(target: "fluxgate_canary", replica = %link.config.replica,
                    "local canary rollback published to the fleet");
                self.adopted = next.version;
                *state = next;
                self.local_rollback = false;
            }
            WriteResult::Conflict(Some(stored)) => *state = stored,
            WriteResult::Conflict(None) => {}
        }
        Ok(())
    }

    /// Applies the actions taken through this replica's handle to the fleet state.
    async fn publish_actions(
        &mut self,
        shared: &Shared,
        link: &FleetLink,
        state: &mut FleetState,
        now_ms: u64,
    ) -> Result<(), FleetError> {
        let actions = std::mem::take(&mut *lock(&link.pending));
        for (i, action) in actions.iter().enumerate() {
            for _ in 0..5 {
                let next = {
                    let mut machine = shared.lock();
                    let now = Instant::now();
                    // Counted once already, when the handle applied it locally.
                    let counted = machine.transitions;
                    state.adopt_into(&mut machine, false, now);
                    let acted = machine.act(*action, now);
                    machine.transitions = counted;
                    match acted {
                        Ok(()) => FleetState::next(
                            Some(state),
                            &machine,
                            true,
                            &link.config.replica,
                            now_ms,
                        ),
                        Err(error) => {
                            tracing::warn!(target: "fluxgate_canary", %error,
                                "manual action not applied to the fleet state");
                            break;
                        }
                    }
                };
                let written = match self.write(link, &next).await {
                    Ok(written) => written,
                    Err(error) => {
                        // Kept for the next tick that reaches the store.
                        lock(&link.pending).splice(0..0, actions[i..].iter().copied());
                        return Err(error);
                    }
                };
                match written {
                    WriteResult::Written => {
                        self.adopted = next.version;
                        *state = next;
                        break;
                    }
                    WriteResult::Conflict(Some(stored)) => *state = stored,
                    WriteResult::Conflict(None) => break,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_bounded() {
        let g = |ms| geometry(Duration::from_millis(ms));
        assert_eq!(g(10_000), (Duration::from_secs(1), 10));
        assert_eq!(g(500), (Duration::from_millis(500), 1));
        assert_eq!(g(1_500), (Duration::from_millis(750), 2));
        assert_eq!(g(3_600_000), (Duration::from_secs(60), 60));
    }
}
