//! Retries on another endpoint: [`Retry`] and the [`RetryableRequest`] an endpoint's service
//! hands back with a failed answer.
//!
//! An endpoint's service (such as a reverse proxy) that fails a request it can give back
//! answers as usual (a `502`, say) and puts a [`RetryableRequest`] in the response's extensions:
//! [`RetryableRequest::not_sent`] when the request never left (the connection was refused),
//! [`RetryableRequest::sent`] when it may have reached the upstream (the connection broke
//! before response headers). The [`Balance`](crate::Balance) drains an endpoint that refused a
//! connection at once (it comes back on passing health checks), and [`Retry`], wrapped around
//! the shared balancer, sends the request again:
//! - not sent: always, whatever the method, outside the budget (it never reached anyone), up to
//!   twice (the second attempt may still race with the drain);
//! - sent: once, when the method is idempotent, `loadBalancing.retries.idempotent` is on and
//!   the budget allows (`budgetPercent` of the last 10 seconds' requests plus
//!   `minRetriesPerSecond`, as linkerd's and Envoy's retry budgets).
//!
//! Otherwise the failed answer goes to the client as it is.
//!
//! Either way the endpoint whose connection failed is passed over by the balancer for a second
//! while another endpoint is eligible (it is still picked when it is the only one): the retry,
//! and the requests right after it, go to another endpoint instead of to a connection that is
//! likely as broken as the one that just failed (an upstream that died takes all its
//! connections with it, and the balancer may not have read their closes yet).

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use fluxgate_core::clock::Stamp;
use fluxgate_core::outcome::Outcome;
use fluxgate_core::policy::LoadBalancing;
use fluxgate_core::stripe::{self, STRIPES};
use fluxgate_core::window::{TimeWindow, WindowTotals};
use pin_project_lite::pin_project;
use tower::util::Oneshot;
use tower_service::Service;

use crate::handle::BalanceHandle;

/// Attempts after the first one, at most (refused connections).
const MAX_RETRIES: u8 = 2;

/// A request given back by an endpoint's service with its failed answer, in the response's
/// extensions; see the [module docs](self).
///
/// ```
/// use fluxgate_balance::RetryableRequest;
///
/// let given_back = RetryableRequest::not_sent(http::Request::new(()));
/// assert!(!given_back.was_sent());
/// let request: http::Request<()> = given_back.take().unwrap();
/// assert_eq!(request.method(), http::Method::GET);
/// assert!(given_back.take::<http::Request<()>>().is_none(), "taken once");
/// ```
#[derive(Clone)]
pub struct RetryableRequest {
    sent: bool,
    request: Arc<Mutex<Option<Box<dyn Any + Send>>>>,
}

impl RetryableRequest {
    /// A request that never reached the upstream (its connection was refused).
    pub fn not_sent<R: Send + 'static>(request: R) -> Self {
        Self::new(false, request)
    }

    /// A request that may have reached the upstream (the connection broke before an answer).
    pub fn sent<R: Send + 'static>(request: R) -> Self {
        Self::new(true, request)
    }

    fn new<R: Send + 'static>(sent: bool, request: R) -> Self {
        Self {
            sent,
            request: Arc::new(Mutex::new(Some(Box::new(request)))),
        }
    }

    /// Whether the request may have reached the upstream.
    #[must_use]
    pub fn was_sent(&self) -> bool {
        self.sent
    }

    /// The request, once, if it is an `R`.
    #[must_use]
    pub fn take<R: 'static>(&self) -> Option<R> {
        let mut slot = self.request.lock().ok()?;
        if !slot.as_ref().is_some_and(|r| r.is::<R>()) {
            return None;
        }
        slot.take()?.downcast::<R>().ok().map(|r| *r)
    }
}

impl fmt::Debug for RetryableRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryableRequest")
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// The retry budget: requests and retries over the last 10 seconds, lock-free.
#[derive(Debug)]
struct Budget {
    /// Requests (`Success`) and retries (`Failure`), one window per stripe (thread), all from
    /// one origin, so that workers do not take turns at one count per request; empty only if
    /// the core primitives refuse the (constant) window shape, and then nothing is retried.
    windows: Box<[TimeWindow]>,
}

impl Budget {
    fn new() -> Self {
        let origin = Stamp::now();
        let window = || TimeWindow::starting(origin, Duration::from_secs(1), 10);
        Self {
            windows: (0..STRIPES)
                .map(|_| window())
                .collect::<Result<_, _>>()
                .unwrap_or_default(),
        }
    }

    /// The calling thread's window.
    fn local(&self) -> Option<&TimeWindow> {
        self.windows.get(stripe::current())
    }

    fn deposit(&self) {
        self.deposit_in(stripe::current());
    }

    /// Counts a request in `stripe`'s window.
    fn deposit_in(&self, stripe: usize) {
        if let Some(window) = self.windows.get(stripe) {
            // One-second buckets: the coarse clock is precise enough, and 4x cheaper.
            window.record(Stamp::coarse(), Outcome::Success);
        }
    }

    fn withdraw(&self, policy: &LoadBalancing) -> bool {
        let Some(window) = self.local() else {
            return false;
        };
        let retries = policy.retries_in_force();
        let now = Stamp::now();
        // The last ten whole seconds and the one in progress: a retry counts against the
        // budget at once, not when its second is over.
        let totals: WindowTotals = self
            .windows
            .iter()
            .flat_map(|w| [w.totals(now), w.current(now)])
            .sum();
        let requests = totals.requests.saturating_sub(totals.failures);
        let allowed = requests as f64 * f64::from(retries.budget_percent) / 100.0
            + f64::from(retries.min_retries_per_second) * 10.0;
        if (totals.failures as f64) < allowed {
            window.record(now, Outcome::Failure);
            true
        } else {
            false
        }
    }
}

/// Retries a failed request on another endpoint; see the [module docs](self).
///
/// Wrap it around a [`Balance`](crate::Balance) (whose clones share one balancer); it follows the balancer's policy (`loadBalancing.retries`) through its handle.
///
/// ```
/// use fluxgate_balance::{Balance, Retry, RetryableRequest, Weighted};
/// use fluxgate_core::policy::LoadBalancing;
/// use tower::{Service, ServiceExt};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
///
/// // "down" refuses every connection and gives the request back; "up" answers.
/// let endpoint = |up: bool| Weighted::new(tower::service_fn(move |req: http::Request<()>| async move {
///     if up {
///         return Ok::<_, std::convert::Infallible>(http::Response::new("up"));
///     }
///     let mut response = http::Response::builder().status(502).body("down").unwrap();
///     response.extensions_mut().insert(RetryableRequest::not_sent(req));
///     Ok(response)
/// }), 1);
/// let balance = Balance::new(LoadBalancing::default(), [("down", endpoint(false)), ("up", endpoint(true))]);
/// let handle = balance.handle();
/// let mut svc = Retry::new(balance, &handle);
/// for _ in 0..10 {
///     let response = svc.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
///     assert_eq!(*response.body(), "up");
/// }
/// # }
/// ```
pub struct Retry<S> {
    inner: S,
    budget: Arc<Budget>,
    policy: Arc<dyn Fn() -> Arc<LoadBalancing> + Send + Sync>,
    /// What this clone's futures need for a retry, made at its first call (see [`Spare`]).
    spare: Option<Arc<Spare<S>>>,
}

/// What a [`RetryFuture`] needs to retry: a service to send through, the budget and the
/// policy. One per `Retry` clone (a server's per-connection clone makes its own at its first
/// call), so that a request's future holds one reference count that stays on its thread,
/// rather than a clone of the balancer and of the budget and policy, whose counts every
/// worker would take turns at.
struct Spare<S> {
    service: S,
    budget: Arc<Budget>,
    policy: Arc<dyn Fn() -> Arc<LoadBalancing> + Send + Sync>,
}

impl<S: Clone> Clone for Retry<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            budget: Arc::clone(&self.budget),
            policy: Arc::clone(&self.policy),
            spare: self.spare.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Retry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Retry<S> {
    /// Retries through `inner`, following the policy of the balancer behind `handle`.
    pub fn new<K: Send + Sync + 'static>(inner: S, handle: &BalanceHandle<K>) -> Self {
        let shared = Arc::clone(&handle.shared);
        Self {
            inner,
            budget: Arc::new(Budget::new()),
            policy: Arc::new(move || shared.policy.load_full()),
            spare: None,
        }
    }
}

impl<S, B, RB> Service<http::Request<B>> for Retry<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone,
    B: 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = RetryFuture<S, http::Request<B>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.budget.deposit();
        let future = self.inner.call(request);
        let spare = self.spare.get_or_insert_with(|| {
            Arc::new(Spare {
                service: self.inner.clone(),
                budget: Arc::clone(&self.budget),
                policy: Arc::clone(&self.policy),
            })
        });
        RetryFuture {
            state: State::First { future },
            spare: Arc::clone(spare),
            retries: 0,
        }
    }
}

pin_project! {
    /// The future of a [`Retry`] call.
    pub struct RetryFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, Req>,
        spare: Arc<Spare<S>>,
        retries: u8,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req>
    where
        S: Service<Req>,
    {
        First { #[pin] future: S::Future },
        Again { #[pin] future: Oneshot<S, Req> },
    }
}

impl<S, Req> fmt::Debug for RetryFuture<S, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryFuture")
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl<S, B, RB> Future for RetryFuture<S, http::Request<B>>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone,
    B: 'static,
{
    type Output = Result<http::Response<RB>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let this = self.as_mut().project();
            let mut response = match this.state.project() {
                StateProj::First { future } => ready!(future.poll(cx))?,
                StateProj::Again { future } => ready!(future.poll(cx))?,
            };
            let Some(given_back) = response.extensions_mut().remove::<RetryableRequest>() else {
                return Poll::Ready(Ok(response));
            };
            let Some(request) = given_back.take::<http::Request<B>>() else {
                return Poll::Ready(Ok(response));
            };
            let allowed = if given_back.was_sent() {
                *this.retries == 0 && request.method().is_idempotent() && {
                    let policy = (this.spare.policy)();
                    policy.retries_in_force().idempotent && this.spare.budget.withdraw(&policy)
                }
            } else {
                *this.retries < MAX_RETRIES
            };
            if !allowed {
                return Poll::Ready(Ok(response));
            }
            let service = this.spare.service.clone();
            *this.retries += 1;
            tracing::debug!(
                sent = given_back.was_sent(),
                "retrying a failed request on another endpoint"
            );
            self.as_mut().project().state.set(State::Again {
                future: Oneshot::new(service, request),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use fluxgate_core::policy::LoadBalancing;
    use tower::{Service, ServiceExt};

    use super::{Retry, RetryableRequest};
    use crate::{Balance, Weighted};

    /// Requests counted by two threads make one budget: 20% of the 200 requests of the last
    /// window plus 10 a second over its 10 seconds, 140 retries, then none.
    #[tokio::test(start_paused = true)]
    async fn the_budget_sums_every_threads_requests() {
        let budget = super::Budget::new();
        for stripe in [1, 2] {
            for _ in 0..100 {
                budget.deposit_in(stripe);
            }
        }
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let policy = LoadBalancing::default();
        let allowed = (0..1_000).take_while(|_| budget.withdraw(&policy)).count();
        assert_eq!(allowed, 140);
    }

    /// Two endpoints that fail every request and give it back (`sent` or not); counts calls.
    async fn failing(sent: bool, method: http::Method) -> (u16, usize) {
        let calls = Arc::new(AtomicUsize::new(0));
        let endpoint = |calls: Arc<AtomicUsize>| {
            Weighted::new(
                tower::service_fn(move |req: http::Request<()>| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    async move {
                        let mut response = http::Response::builder().status(502).body(()).unwrap();
                        let given_back = if sent {
                            RetryableRequest::sent(req)
                        } else {
                            RetryableRequest::not_sent(req)
                        };
                        response.extensions_mut().insert(given_back);
                        Ok::<_, std::convert::Infallible>(response)
                    }
                }),
                1,
            )
        };
        let balance = Balance::new(
            LoadBalancing::default(),
            [
                ("a", endpoint(Arc::clone(&calls))),
                ("b", endpoint(Arc::clone(&calls))),
            ],
        );
        let handle = balance.handle();
        let mut svc = Retry::new(balance, &handle);
        let request = http::Request::builder().method(method).body(()).unwrap();
        let response = svc.ready().await.unwrap().call(request).await.unwrap();
        assert!(response.extensions().get::<RetryableRequest>().is_none());
        (response.status().as_u16(), calls.load(Ordering::Relaxed))
    }

    #[tokio::test]
    async fn a_request_never_sent_is_retried_whatever_its_method_up_to_twice() {
        assert_eq!(failing(false, http::Method::POST).await, (502, 3));
    }

    #[tokio::test]
    async fn a_sent_request_is_retried_once_only_when_idempotent() {
        assert_eq!(failing(true, http::Method::GET).await, (502, 2));
        assert_eq!(failing(true, http::Method::POST).await, (502, 1));
    }

    /// Endpoint `b` breaks every connection (a `502` with the request given back as sent);
    /// `a` answers 200. Each GET's retry goes to `a`, never to `b` again: 100 requests, 100
    /// answered, and `b` called at most once (before its first failure marked it).
    #[tokio::test(start_paused = true)]
    async fn a_retry_goes_to_another_endpoint_than_the_broken_one() {
        let broken_calls = Arc::new(AtomicUsize::new(0));
        // One constructor, one closure type: `broken` endpoints count their calls and fail.
        let endpoint = |broken: Option<Arc<AtomicUsize>>| {
            Weighted::new(
                tower::service_fn(move |req: http::Request<()>| {
                    let broken = broken.clone();
                    async move {
                        let Some(calls) = broken else {
                            return Ok(http::Response::new(()));
                        };
                        calls.fetch_add(1, Ordering::Relaxed);
                        let mut response = http::Response::builder().status(502).body(()).unwrap();
                        response
                            .extensions_mut()
                            .insert(RetryableRequest::sent(req));
                        Ok::<_, std::convert::Infallible>(response)
                    }
                }),
                1,
            )
        };
        let healthy = endpoint(None);
        let broken = endpoint(Some(Arc::clone(&broken_calls)));
        let balance = Balance::new(LoadBalancing::default(), [("a", healthy), ("b", broken)]);
        let handle = balance.handle();
        let mut svc = Retry::new(balance, &handle);
        for _ in 0..100 {
            let response = svc
                .ready()
                .await
                .unwrap()
                .call(http::Request::new(()))
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
        assert!(broken_calls.load(Ordering::Relaxed) <= 1);
    }
}
