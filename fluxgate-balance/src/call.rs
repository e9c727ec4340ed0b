//! The request path of [`Balance`]: `poll_ready` reserves an endpoint (a copy of its service,
//! ready), `call` sends to it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use fluxgate_core::clock::Stamp;
use fluxgate_core::outcome::Outcome;
use fluxgate_core::stripe;
use tower::BoxError;
use tower::discover::Discover;
use tower_service::Service;

use crate::endpoint::Slot;
use crate::endpoint::{self, Lane, PROBE_IN_FLIGHT, PROBE_READY, Weighted};
use crate::error::BalanceError;
use crate::future::{Counting, ResponseFuture, Tracker};
use crate::service::{Balance, CACHED, Reserved, Table};

impl<D, K, S, Req, RB> Service<Req> for Balance<D, Req>
where
    D: Discover<Key = K, Service = Weighted<S>> + Unpin,
    D::Error: Into<BoxError>,
    K: Eq + Clone + Send + Sync + 'static,
    S: Service<Req, Response = http::Response<RB>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, K>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.ready = None;
        self.maintain()?;
        let table = self.core.table.load();
        self.refresh_lane(&table);
        let mut pending = false;
        if let Some(index) = table.probe
            && let Some(slot) = table.slots.get(index)
            && slot.state.passive.load(Ordering::Relaxed) == PROBE_READY
            && slot
                .state
                .passive
                .compare_exchange(
                    PROBE_READY,
                    PROBE_IN_FLIGHT,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            if self.try_slot(cx, &table, index, true, &mut pending) {
                return Poll::Ready(Ok(()));
            }
            slot.state.passive.store(PROBE_READY, Ordering::Release);
        }
        let sel = &table.sel;
        let cursor = self.core.cursor.at(self.stripe);
        let Some(first) = self.picker.pick(sel, &table.slots, cursor, self.stripe) else {
            self.ready = Some(Reserved::NoEndpoint);
            return Poll::Ready(Ok(()));
        };
        // An endpoint whose connection just broke is tried last (see `BROKEN_FOR`).
        let now = self.now.map_or_else(|| Stamp::now().nanos(), Stamp::nanos);
        let broken = |index: usize| {
            table
                .slots
                .get(index)
                .is_some_and(|slot| slot.state.broken_until.load(Ordering::Relaxed) > now)
        };
        let first_broken = broken(first);
        if !first_broken && self.try_slot(cx, &table, first, false, &mut pending) {
            return Poll::Ready(Ok(()));
        }
        let n = sel.eligible.len();
        let offset = self.picker.rng.below(n);
        for k in 0..n {
            let index = sel.eligible[(offset + k) % n];
            if index != first
                && !broken(index)
                && self.try_slot(cx, &table, index, false, &mut pending)
            {
                return Poll::Ready(Ok(()));
            }
        }
        // Only broken ones are left: they are tried after all.
        if first_broken && self.try_slot(cx, &table, first, false, &mut pending) {
            return Poll::Ready(Ok(()));
        }
        for k in 0..n {
            let index = sel.eligible[(offset + k) % n];
            if index != first
                && broken(index)
                && self.try_slot(cx, &table, index, false, &mut pending)
            {
                return Poll::Ready(Ok(()));
            }
        }
        if pending {
            return Poll::Pending;
        }
        self.ready = Some(Reserved::NoEndpoint);
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.ready.take() {
            Some(Reserved::Endpoint {
                mut service,
                index,
                track,
                probe,
            }) => {
                let now = self.now.take().unwrap_or_else(Stamp::now);
                let counting = Counting {
                    stripe: self.stripe,
                    random: self.picker.rng.next_u64(),
                    track,
                    probe,
                };
                let tracker = self
                    .lane
                    .as_ref()
                    .and_then(|lane| Tracker::new(Arc::clone(lane), index, now, counting));
                let Some(tracker) = tracker else {
                    // Not reached: the index comes from the lane's own set.
                    return ResponseFuture::failed(BalanceError::NoHealthyEndpoints);
                };
                let future = service.service.call(req);
                self.keep(index, service);
                ResponseFuture::new(future, tracker)
            }
            Some(Reserved::NoEndpoint) => ResponseFuture::failed(BalanceError::NoHealthyEndpoints),
            None => ResponseFuture::failed(BalanceError::NotReady),
        }
    }
}

impl<D, K, S, Req> Balance<D, Req>
where
    D: Discover<Key = K, Service = Weighted<S>> + Unpin,
    D::Error: Into<BoxError>,
    K: Eq + Clone + Send + Sync + 'static,
    S: Clone,
{
    /// The owner's chores, done by whichever clone finds them due and the control free: the
    /// discovery's changes, a new policy, an evaluation (something changed, or its time came).
    fn maintain(&mut self) -> Result<(), BalanceError> {
        let core = &self.core;
        // One clock read per request: the evaluation's schedule here, the latency's start in
        // `call`.
        let now = Stamp::now();
        self.now = Some(now);
        self.stripe = stripe::current();
        let elapsed = endpoint::nanos_since(core.shared.origin, now);
        let woken = core.discover_woken.take();
        // A new policy marks the balancer dirty too.
        let dirty = core.shared.dirty.load(Ordering::Relaxed);
        let due = elapsed >= core.next_eval.load(Ordering::Relaxed);
        if !(woken || dirty || due) {
            return Ok(());
        }
        let Ok(mut control) = core.control.try_lock() else {
            if woken {
                core.discover_woken.raise();
            }
            return Ok(());
        };
        let mut result = Ok(());
        let mut evaluated = false;
        if woken {
            match control.poll_discover(core) {
                Ok(changed) => evaluated = changed,
                Err(e) => result = Err(e),
            }
        }
        let policy = control.refresh_policy(&core.shared);
        let dirty = core.shared.dirty.swap(false, Ordering::AcqRel);
        if !evaluated && (policy || dirty || elapsed >= core.next_eval.load(Ordering::Relaxed)) {
            control.evaluate(core, now);
        }
        result
    }

    /// Follows a new endpoint set: a lane of this clone's own on its states, and no copies of
    /// the old set's services.
    fn refresh_lane(&mut self, table: &Table<K, Weighted<S>>) {
        if self
            .lane
            .as_ref()
            .is_some_and(|lane| Arc::ptr_eq(&lane.states, &table.states))
        {
            return;
        }
        self.lane = Some(Arc::new(Lane {
            states: Arc::clone(&table.states),
        }));
        self.cache.clear();
    }

    /// Keeps this clone's copy of slot `index`'s service for its next request there.
    fn keep(&mut self, index: usize, service: Weighted<S>) {
        if index < CACHED {
            if self.cache.len() <= index {
                self.cache.resize_with(index + 1, || None);
            }
            if let Some(cached) = self.cache.get_mut(index) {
                *cached = Some(service);
            }
        }
    }

    /// Polls this clone's copy of slot `index`'s service; reserves it when ready.
    fn try_slot(
        &mut self,
        cx: &mut Context<'_>,
        table: &Table<K, Weighted<S>>,
        index: usize,
        probe: bool,
        pending: &mut bool,
    ) -> bool
    where
        S: Service<Req>,
    {
        let Some(slot) = table.slots.get(index) else {
            return false;
        };
        let mut service = self.take_service(index, slot);
        match service.service.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                self.waiting.clear();
                self.ready = Some(Reserved::Endpoint {
                    service,
                    index,
                    track: table.track,
                    probe,
                });
                true
            }
            Poll::Pending => {
                *pending = true;
                self.waiting.push((id(slot), service));
                false
            }
            Poll::Ready(Err(_)) => {
                // Counted as a failure, so that a service whose readiness keeps failing is drained
                // by the failure streak; never evicted.
                let (state, now) = (&slot.state, Stamp::now());
                if state.record(self.stripe, now, None, Outcome::Failure, table.track, 0) {
                    self.core.shared.mark_dirty();
                }
                false
            }
        }
    }

    /// This clone's copy of slot `index`'s service: the one that was pending, the one kept
    /// from its last request there, or a new clone.
    fn take_service(&mut self, index: usize, slot: &Slot<K, Weighted<S>>) -> Weighted<S> {
        let id = id(slot);
        if let Some(at) = self.waiting.iter().position(|(i, _)| *i == id) {
            return self.waiting.swap_remove(at).1;
        }
        match self.cache.get_mut(index).and_then(Option::take) {
            Some(kept) => kept,
            None => slot.service.clone(),
        }
    }
}

/// An endpoint's identity while it is in the set (its shared state's address).
fn id<K, S>(slot: &Slot<K, S>) -> usize {
    Arc::as_ptr(&slot.state) as usize
}
