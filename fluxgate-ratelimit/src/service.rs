//! The services: [`RateLimit`] (HTTP answers) and [`ErroringRateLimit`] (typed errors).

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::error::IntoError;
use crate::future::{ErroringFuture, ResponseFuture, Waiting};
use crate::gate::{Gate, Reject, Shared};
use crate::prepared::Prepared;
use crate::response::{self, Fields};
use crate::store::{LocalStore, RateLimitStore};
use crate::{BoxError, RateLimitError};

/// Rate limits HTTP requests, answering refusals itself: `429 Too Many Requests` (gRPC:
/// `RESOURCE_EXHAUSTED`), `400`/`401` for a missing or oversized key. Made by
/// [`RateLimitLayer`](crate::RateLimitLayer); see the [crate docs](crate) for the answers.
///
/// The decision is made in `call`, from the request's keys; `poll_ready` only passes on the
/// inner service's readiness, so the service is not backpressure-sensitive and belongs around
/// the whole axum `Router` (or in `route_layer` for some routes only). A refused request never
/// reaches the inner service. The inner service is cloned only when the store cannot answer at
/// once (a remote store); the local store always answers at once.
///
/// ```
/// use fluxgate_core::policy::RateLimitSpec;
/// use fluxgate_ratelimit::RateLimitLayer;
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = RateLimitLayer::builder().limit(RateLimitSpec::new(1.0, 1)).build().unwrap();
/// let mut service = layer.layer(service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// }));
/// let request = || {
///     let mut r = http::Request::new(());
///     r.extensions_mut().insert(fluxgate_core::key::PeerAddr("192.0.2.1:5000".parse().unwrap()));
///     r
/// };
/// assert_eq!(service.ready().await.unwrap().call(request()).await.unwrap().status(), 200);
/// assert_eq!(service.ready().await.unwrap().call(request()).await.unwrap().status(), 429);
/// assert!(service.get_ref().clone().oneshot(request()).await.is_ok());
/// # }
/// ```
#[derive(Debug)]
pub struct RateLimit<S, St: RateLimitStore = LocalStore> {
    inner: S,
    shared: Arc<Shared<St>>,
    cached: Arc<Prepared<St::Limiter>>,
}

/// Rate limits requests, failing refused ones instead of answering (for tonic clients and other
/// non-HTTP-answering stacks): with a boxed [`RateLimitError`] (made by
/// [`RateLimitLayer::erroring`](crate::RateLimitLayer::erroring)), or a boxed `tonic::Status` (made by
/// `RateLimitLayer::grpc`, feature `tonic`). Made by
/// [`ErroringRateLimitLayer`](crate::ErroringRateLimitLayer).
///
/// ```
/// use fluxgate_core::policy::RateLimitSpec;
/// use fluxgate_ratelimit::{RateLimitError, RateLimitLayer};
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = RateLimitLayer::builder().limit(RateLimitSpec::new(1.0, 1)).build().unwrap().erroring();
/// let service = layer.layer(service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(())
/// }));
/// assert!(service.clone().oneshot(http::Request::new(())).await.is_ok());
/// let error = service.oneshot(http::Request::new(())).await.unwrap_err();
/// assert!(matches!(error.downcast_ref(), Some(RateLimitError::Limited { .. })));
/// # }
/// ```
#[derive(Debug)]
pub struct ErroringRateLimit<S, St: RateLimitStore = LocalStore> {
    inner: RateLimit<S, St>,
    into_error: IntoError,
}

// === impl RateLimit ===

impl<S: Clone, St: RateLimitStore> Clone for RateLimit<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            cached: Arc::clone(&self.cached),
        }
    }
}

impl<S, St: RateLimitStore> RateLimit<S, St> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<St>>) -> Self {
        let cached = shared.latest();
        Self {
            inner,
            shared,
            cached,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the middleware.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The answer for a decided request: `Ok(response)` to answer now, `Err(fields)` to call the
/// inner service and add `fields` to its response.
pub(crate) fn http_answer<St: RateLimitStore, B, ResBody: Default>(
    shared: &Shared<St>,
    gate: Gate<St::Future>,
    request: &Request<B>,
) -> Result<Response<ResBody>, Option<Fields>> {
    match gate {
        Gate::Admit(fields) => Err(fields),
        Gate::Refuse {
            retry_after,
            fields,
            ..
        } => Ok(response::refused(
            response::is_grpc(request),
            retry_after,
            fields,
        )),
        Gate::Reject(reject) => {
            let (status, message) = match reject {
                Reject::Missing(_) => (shared.config.reject_status, "missing rate limit key"),
                Reject::TooLong(_) => (http::StatusCode::BAD_REQUEST, "rate limit key too long"),
            };
            Ok(response::rejected(
                response::is_grpc(request),
                status,
                message,
            ))
        }
        // `finish_later` never waits again; admit rather than hang.
        Gate::Wait(_) => Err(None),
    }
}

impl<S, St, B, ResBody> Service<Request<B>> for RateLimit<S, St>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    St: RateLimitStore,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, St, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.shared.refresh(&mut self.cached);
        if self.cached.limits.is_empty() {
            return ResponseFuture::inner(self.inner.call(request), None);
        }
        match self.shared.gate(&self.cached, &request) {
            Gate::Wait(decide) => {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let rest = Waiting {
                    inner,
                    request,
                    prepared: Arc::clone(&self.cached),
                    shared: Arc::clone(&self.shared),
                };
                ResponseFuture::waiting(decide, rest)
            }
            gate => match http_answer(&self.shared, gate, &request) {
                Ok(response) => ResponseFuture::answered(response),
                Err(fields) => ResponseFuture::inner(self.inner.call(request), fields),
            },
        }
    }
}

// === impl ErroringRateLimit ===

impl<S: Clone, St: RateLimitStore> Clone for ErroringRateLimit<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            into_error: self.into_error,
        }
    }
}

impl<S, St: RateLimitStore> ErroringRateLimit<S, St> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<St>>, into_error: IntoError) -> Self {
        Self {
            inner: RateLimit::new(inner, shared),
            into_error,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref()
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        self.inner.get_mut()
    }

    /// The inner service, consuming the middleware.
    pub fn into_inner(self) -> S {
        self.inner.into_inner()
    }
}

/// The error for a decided request, `None` to let it through.
pub(crate) fn typed_error<L, F>(prepared: &Prepared<L>, gate: &Gate<F>) -> Option<RateLimitError> {
    let name = |i: usize| {
        prepared
            .limits
            .get(i)
            .map(|l| l.name.clone())
            .unwrap_or_default()
    };
    let error = match gate {
        Gate::Admit(_) | Gate::Wait(_) => return None,
        Gate::Refuse {
            limit, retry_after, ..
        } => RateLimitError::Limited {
            limit: name(*limit),
            retry_after: *retry_after,
        },
        Gate::Reject(Reject::Missing(i)) => RateLimitError::MissingKey(name(*i)),
        Gate::Reject(Reject::TooLong(i)) => RateLimitError::KeyTooLong(name(*i)),
    };
    Some(error)
}

impl<S, St, B> Service<Request<B>> for ErroringRateLimit<S, St>
where
    S: Service<Request<B>> + Clone,
    S::Error: Into<BoxError>,
    St: RateLimitStore,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ErroringFuture<S, St, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let this = &mut self.inner;
        this.shared.refresh(&mut this.cached);
        if this.cached.limits.is_empty() {
            return ErroringFuture::inner(this.inner.call(request));
        }
        match this.shared.gate(&this.cached, &request) {
            Gate::Wait(decide) => {
                let clone = this.inner.clone();
                let inner = std::mem::replace(&mut this.inner, clone);
                let rest = Waiting {
                    inner,
                    request,
                    prepared: Arc::clone(&this.cached),
                    shared: Arc::clone(&this.shared),
                };
                ErroringFuture::waiting(decide, rest, self.into_error)
            }
            gate => match typed_error(&this.cached, &gate) {
                Some(error) => ErroringFuture::failed((self.into_error)(error)),
                None => ErroringFuture::inner(this.inner.call(request)),
            },
        }
    }
}
