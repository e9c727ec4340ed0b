//! [`PendingOutcome`]: the outcome of a response whose gRPC status comes in the trailers.

use std::fmt;
use std::sync::{Arc, Mutex};

use fluxgate_core::outcome::{Classification, Outcome, OutcomeObserver};

type Finish = Box<dyn FnOnce(Outcome) + Send>;

/// The balancer's record of a request whose outcome its response head does not tell (a gRPC
/// response with `grpc-status` in the trailers): the balancer puts it in the response's
/// extensions, and whoever sees the body end finishes it, for instance by wrapping the body in
/// an [`ObservedBody`](fluxgate_core::outcome::ObservedBody) with it as the observer. Until then
/// the request counts as in flight; dropped unfinished (every clone), it counts as a success.
/// Its latency is the time to the response head.
///
/// ```
/// use fluxgate_balance::future::PendingOutcome;
/// use fluxgate_core::outcome::{ObservedBody, observe_response};
///
/// fn observe<B>(mut response: http::Response<B>) -> http::Response<ObservedBody<B, PendingOutcome>> {
///     match response.extensions_mut().remove::<PendingOutcome>() {
///         Some(pending) => response.map(|body| ObservedBody::new(body, pending)),
///         None => response.map(ObservedBody::observed),
///     }
/// }
/// # let _ = observe(http::Response::new(()));
/// ```
#[derive(Clone)]
pub struct PendingOutcome(Arc<Slot>);

struct Slot(Mutex<Option<Finish>>);

impl Slot {
    fn take(&self) -> Option<Finish> {
        self.0.lock().ok().and_then(|mut finish| finish.take())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(finish) = self.take() {
            finish(Outcome::Success);
        }
    }
}

impl fmt::Debug for PendingOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingOutcome").finish_non_exhaustive()
    }
}

impl PendingOutcome {
    pub(crate) fn new(finish: impl FnOnce(Outcome) + Send + 'static) -> Self {
        Self(Arc::new(Slot(Mutex::new(Some(Box::new(finish))))))
    }

    /// Records `outcome` for the request (once: later calls, from clones too, do nothing).
    pub fn finish(&self, outcome: Outcome) {
        if let Some(finish) = self.0.take() {
            finish(outcome);
        }
    }
}

impl OutcomeObserver for PendingOutcome {
    fn observe(self, class: Classification) {
        self.finish(class.outcome);
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use fluxgate_core::policy::LoadBalancing;
    use tower::{Service, ServiceExt};

    use super::PendingOutcome;
    use crate::{Balance, Weighted};

    type Req = http::Request<()>;

    /// A gRPC answer without `grpc-status` in its head: the outcome waits for the trailers.
    fn grpc()
    -> Weighted<impl Service<Req, Response = http::Response<()>, Error = Infallible> + Clone> {
        Weighted::new(
            tower::service_fn(|_: Req| async {
                let response = http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(())
                    .unwrap_or_default();
                Ok(response)
            }),
            1,
        )
    }

    #[tokio::test]
    async fn the_outcome_is_recorded_when_finished_or_as_a_success_when_dropped() {
        let mut balance = Balance::<_, Req>::new(LoadBalancing::default(), [("a", grpc())]);
        let handle = balance.handle();
        let mut response = balance
            .ready()
            .await
            .unwrap()
            .call(Req::default())
            .await
            .unwrap();
        let pending = response
            .extensions_mut()
            .remove::<PendingOutcome>()
            .unwrap();
        let totals = |h: &crate::BalanceHandle<&str>| h.snapshot()[0].totals;
        assert_eq!(
            (totals(&handle).requests, handle.snapshot()[0].in_flight),
            (0, 1)
        );
        pending
            .clone()
            .finish(fluxgate_core::outcome::Outcome::Failure);
        pending.finish(fluxgate_core::outcome::Outcome::Success); // once only
        assert_eq!((totals(&handle).requests, totals(&handle).failures), (1, 1));
        assert_eq!(handle.snapshot()[0].in_flight, 0);

        drop(
            balance
                .ready()
                .await
                .unwrap()
                .call(Req::default())
                .await
                .unwrap(),
        );
        assert_eq!((totals(&handle).requests, totals(&handle).failures), (2, 1));
    }
}
