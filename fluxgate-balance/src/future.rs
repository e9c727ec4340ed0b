//! The balancer's response future, and [`PendingOutcome`] for responses whose outcome comes
//! in the trailers.

mod pending;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use fluxgate_core::clock::Stamp;
use fluxgate_core::outcome::{Outcome, classify_error, classify_response};
use pin_project_lite::pin_project;
use tower::BoxError;

use crate::endpoint::{
    self, ACTIVE, EJECTED, EndpointState, Lane, PROBE_IN_FLIGHT, PROBE_READY, Track,
};
use crate::error::BalanceError;
use crate::orca;
use crate::retry::RetryableRequest;

pub use self::pending::PendingOutcome;

/// What a request in flight owes its endpoint: the in-flight count back, and its outcome.
#[derive(Debug)]
pub(crate) struct Tracker<K> {
    /// The sending clone's lane; `index` is always in its set (checked in [`Tracker::new`]).
    lane: Arc<Lane<K>>,
    index: usize,
    start: Stamp,
    /// The start-time bucket of this request in the endpoint's in-flight ages.
    bucket: u64,
    /// The stripe of the endpoint's counts this request is counted in (its sender's thread).
    stripe: usize,
    /// The responses its latency stands for in the shared estimates (0: not timed).
    timed: u32,
    track: Track,
    probe: bool,
}

/// Where and how a request is counted: the sender's stripe, a random draw for its latency
/// sample, and what to track.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counting {
    pub(crate) stripe: usize,
    pub(crate) random: u64,
    pub(crate) track: Track,
    pub(crate) probe: bool,
}

impl<K> Tracker<K> {
    /// Counts a request to endpoint `index` of `lane` in flight; `None` when the lane has no
    /// such endpoint.
    pub(crate) fn new(
        lane: Arc<Lane<K>>,
        index: usize,
        start: Stamp,
        counting: Counting,
    ) -> Option<Self> {
        let state = lane.states.get(index)?;
        let bucket = state.start(counting.stripe, start);
        // A probe's answer always counts in full.
        let timed = if counting.probe {
            1
        } else {
            state.timed(counting.random)
        };
        Some(Self {
            lane,
            index,
            start,
            bucket,
            stripe: counting.stripe,
            timed,
            track: counting.track,
            probe: counting.probe,
        })
    }

    /// The endpoint's state.
    fn state(&self) -> &EndpointState<K> {
        // In range: checked when the tracker was made, and the lane's set never changes.
        &self.lane.states[self.index]
    }

    fn finish(mut self, outcome: Outcome, now: Stamp) {
        let probe = std::mem::replace(&mut self.probe, false);
        let state = self.state();
        let latency = now.saturating_since(self.start);
        let streak_reached = state.record(
            self.stripe,
            now,
            Some(latency),
            outcome,
            self.track,
            self.timed,
        );
        if probe {
            if outcome == Outcome::Success {
                state.consecutive_failures.store(0, Ordering::Relaxed);
                state.returned(now);
                state.passive.store(ACTIVE, Ordering::Release);
            } else {
                // Ejected again; the evaluation sets the (longer) ejection time.
                state.ejected_until.store(0, Ordering::Relaxed);
                state.passive.store(EJECTED, Ordering::Release);
            }
            state.dirty.store(true, Ordering::Release);
        } else if streak_reached {
            state.dirty.store(true, Ordering::Release);
        }
    }
}

impl<K> Drop for Tracker<K> {
    fn drop(&mut self) {
        let state = self.state();
        state.finish(self.stripe, self.bucket);
        if self.probe {
            // Cancelled before an answer: the next request may probe again.
            let _ = state.passive.compare_exchange(
                PROBE_IN_FLIGHT,
                PROBE_READY,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            state.dirty.store(true, Ordering::Release);
        }
    }
}

pin_project! {
    /// The future of a [`Balance`](crate::Balance) call: the endpoint's answer, or a
    /// [`BalanceError`] at once when no endpoint could take the request.
    ///
    /// When it completes it records the outcome, latency and reported utilisation for the
    /// endpoint that served it; dropping it early gives the in-flight count back.
    #[derive(Debug)]
    pub struct ResponseFuture<F, K> {
        #[pin]
        kind: Kind<F, K>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F, K> {
        Call { #[pin] future: F, tracker: Option<Tracker<K>> },
        Failed { error: Option<BalanceError> },
    }
}

impl<F, K> ResponseFuture<F, K> {
    pub(crate) fn new(future: F, tracker: Tracker<K>) -> Self {
        Self {
            kind: Kind::Call {
                future,
                tracker: Some(tracker),
            },
        }
    }

    pub(crate) fn failed(error: BalanceError) -> Self {
        Self {
            kind: Kind::Failed { error: Some(error) },
        }
    }
}

impl<F, K, B, E> Future for ResponseFuture<F, K>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
    K: Send + Sync + 'static,
{
    type Output = Result<http::Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Failed { error } => {
                Poll::Ready(Err(error.take().unwrap_or(BalanceError::NotReady).into()))
            }
            KindProj::Call { future, tracker } => {
                let result = match future.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(result) => result,
                };
                let now = Stamp::now();
                match result {
                    Ok(mut response) => {
                        if let Some(tracker) = tracker.take() {
                            if tracker.track.orca {
                                orca::record(tracker.state(), response.headers());
                            }
                            if let Some(given_back) =
                                response.extensions().get::<RetryableRequest>()
                            {
                                // The connection broke before a response head: a retry (and
                                // the next requests, for a moment) go to another endpoint.
                                let until = now + endpoint::BROKEN_FOR;
                                let state = tracker.state();
                                state.broken_until.store(until.nanos(), Ordering::Relaxed);
                                if !given_back.was_sent() {
                                    // The connection was refused: eject at once (next
                                    // evaluation).
                                    state.connect_failed.store(true, Ordering::Relaxed);
                                    state.dirty.store(true, Ordering::Release);
                                }
                            }
                            match classify_response(&response) {
                                Some(class) => tracker.finish(class.outcome, now),
                                // The gRPC status comes in the trailers: see PendingOutcome.
                                None => {
                                    let pending = PendingOutcome::new(move |outcome| {
                                        tracker.finish(outcome, now);
                                    });
                                    response.extensions_mut().insert(pending);
                                }
                            }
                        }
                        Poll::Ready(Ok(response))
                    }
                    Err(error) => {
                        let error = error.into();
                        if let Some(tracker) = tracker.take() {
                            tracker.finish(classify_error(&*error).outcome, now);
                        }
                        Poll::Ready(Err(error))
                    }
                }
            }
        }
    }
}
