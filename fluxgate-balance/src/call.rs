//! The request path of [`Balance`]: `poll_ready` reserves an endpoint, `call` sends to it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower::BoxError;
use tower::discover::Discover;
use tower_service::Service;

use crate::endpoint::{PROBE_IN_FLIGHT, PROBE_READY, Weighted};
use crate::error::BalanceError;
use crate::future::{ResponseFuture, Tracker};
use crate::service::{Balance, Reserved};

impl<D, K, S, Req, RB> Service<Req> for Balance<D, Req>
where
    D: Discover<Key = K, Service = Weighted<S>> + Unpin,
    D::Error: Into<BoxError>,
    K: Eq + Clone + Send + Sync + 'static,
    S: Service<Req, Response = http::Response<RB>>,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, K>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.ready = None;
        self.poll_discover(cx)?;
        self.refresh_policy();
        let dirty = self.shared.dirty.load(Ordering::Relaxed)
            && self.shared.dirty.swap(false, Ordering::AcqRel);
        if dirty || self.last_now >= self.next_eval {
            self.evaluate(Instant::now());
        }
        let mut pending = false;
        if let Some(index) = self.probe {
            let state = &self.slots[index].state;
            if state
                .passive
                .compare_exchange(
                    PROBE_READY,
                    PROBE_IN_FLIGHT,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                if self.try_slot(cx, index, &mut pending) {
                    self.probe = None;
                    self.ready = Some(Reserved::Endpoint { index, probe: true });
                    return Poll::Ready(Ok(()));
                }
                self.slots[index]
                    .state
                    .passive
                    .store(PROBE_READY, Ordering::Release);
            } else {
                self.probe = None;
            }
        }
        let Some(first) = self.selector.pick(&self.slots) else {
            self.ready = Some(Reserved::NoEndpoint);
            return Poll::Ready(Ok(()));
        };
        if self.try_slot(cx, first, &mut pending) {
            self.ready = Some(Reserved::Endpoint {
                index: first,
                probe: false,
            });
            return Poll::Ready(Ok(()));
        }
        let n = self.selector.eligible.len();
        let offset = self.selector.rng.below(n);
        for k in 0..n {
            let index = self.selector.eligible[(offset + k) % n];
            if index != first && self.try_slot(cx, index, &mut pending) {
                self.ready = Some(Reserved::Endpoint {
                    index,
                    probe: false,
                });
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
        let (index, probe) = match self.ready.take() {
            Some(Reserved::Endpoint { index, probe }) => (index, probe),
            Some(Reserved::NoEndpoint) => {
                return ResponseFuture::failed(BalanceError::NoHealthyEndpoints);
            }
            None => return ResponseFuture::failed(BalanceError::NotReady),
        };
        let Some(slot) = self.slots.get_mut(index) else {
            return ResponseFuture::failed(BalanceError::NotReady);
        };
        let now = Instant::now();
        self.last_now = now;
        let tracker = Tracker::new(Arc::clone(&slot.state), now, self.track, probe);
        ResponseFuture::new(slot.service.service.call(req), tracker)
    }
}
