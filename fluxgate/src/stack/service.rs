//! [`StackService`], its [`StackFuture`] and its [`StackBody`]: named types in front of the
//! stack's internal layering, which may change without changing them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use fluxgate_balance::{Balance, RespondUnavailable, Retry};
use fluxgate_canary::Canary;
use fluxgate_canary::future::Observation;
use fluxgate_core::outcome::ObservedBody;
use fluxgate_ratelimit::RateLimit;
use fluxgate_ratelimit::future::ResponseFuture;
use fluxgate_ratelimit::store::AnyStore;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::Service;
use tower::util::{Either, MapResponse};

use super::side::SideDiscovery;
use super::{BoxError, Endpoint};

/// One side: a 503-answering balancer shared by every clone of the stack, retrying a request
/// an endpoint gives back.
pub(super) type SideService<K, S, B> =
    Retry<RespondUnavailable<Balance<SideDiscovery<K, S>, Request<B>>>>;

/// The stable side alone, its body marked as observed.
type Direct<K, S, B, RB> = MapResponse<SideService<K, S, B>, Observed<RB>>;

/// Marks a response of the stable side alone as observed (the canary observes the others).
pub(super) type Observed<RB> = fn(Response<RB>) -> Response<ObservedBody<RB, Observation>>;

/// The canary router between two sides, or the stable side alone.
pub(super) type Routing<K, S, B, RB> =
    Either<Canary<SideService<K, S, B>, SideService<K, S, B>>, Direct<K, S, B, RB>>;

/// The stack's service: rate limit, canary, balancers, over endpoints `S` keyed by `K`, taking
/// `Request<B>` and answering `Response<StackBody<RB>>`; made by
/// [`Stack::service`](super::Stack::service).
///
/// Its layers are an implementation detail: this type stays the same whichever rate-limit
/// store the stack uses and however the layers inside it change. Cheap to clone (one clone per
/// connection or request); a clone starts with no readiness.
///
/// ```
/// use std::future::{Ready, ready};
/// use fluxgate::store::{PolicyId, PolicyStore};
/// use fluxgate::stack::{StackBody, StackBuilder, StackService};
/// use http::{Request, Response};
/// use tower::ServiceExt;
/// use tower::util::{ServiceFn, service_fn};
///
/// type Answer = Ready<Result<Response<String>, std::io::Error>>;
/// type Endpoint = ServiceFn<fn(Request<String>) -> Answer>;
///
/// /// What an application keeps: the service, named without the layers inside.
/// struct App {
///     service: StackService<&'static str, Endpoint, String, String>,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let store = PolicyStore::new();
/// let hello: Endpoint = service_fn(|_| ready(Ok(Response::new("hello".to_owned()))));
/// let stack = StackBuilder::new(&store, &PolicyId::new("shop", "web"))
///     .endpoint("a", hello, 1)
///     .build()?;
/// let app = App { service: stack.service() };
/// let response: Response<StackBody<String>> =
///     app.service.oneshot(Request::new(String::new())).await?;
/// assert_eq!(response.into_body().into_passthrough().ok().as_deref(), Some("hello"));
/// # Ok(()) }
/// ```
pub struct StackService<K: Eq, S, B, RB> {
    inner: RateLimit<Routing<K, S, B, RB>, AnyStore>,
}

impl<K: Eq, S, B, RB> StackService<K, S, B, RB> {
    pub(super) fn new(inner: RateLimit<Routing<K, S, B, RB>, AnyStore>) -> Self {
        Self { inner }
    }
}

impl<K: Eq, S, B, RB> std::fmt::Debug for StackService<K, S, B, RB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackService").finish_non_exhaustive()
    }
}

impl<K, S, B, RB> Clone for StackService<K, S, B, RB>
where
    K: Eq + Clone,
    S: Clone,
{
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, S, B, RB> Service<Request<B>> for StackService<K, S, B, RB>
where
    K: Eq + Clone + Send + Sync + 'static,
    S: Endpoint<B, RB>,
    B: 'static,
    RB: Default,
{
    type Response = Response<StackBody<RB>>;
    type Error = BoxError;
    type Future = StackFuture<K, S, B, RB>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        StackFuture {
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    /// The response future of [`StackService`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct StackFuture<K, S, B, RB>
    where
        K: Eq,
        K: Clone,
        K: Send,
        K: Sync,
        K: 'static,
        S: Endpoint<B, RB>,
        B: 'static,
        RB: Default,
    {
        #[pin]
        inner: ResponseFuture<Routing<K, S, B, RB>, AnyStore, B>,
    }
}

impl<K, S, B, RB> Future for StackFuture<K, S, B, RB>
where
    K: Eq + Clone + Send + Sync + 'static,
    S: Endpoint<B, RB>,
    B: 'static,
    RB: Default,
{
    type Output = Result<Response<StackBody<RB>>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = ready!(self.project().inner.poll(cx))?;
        Poll::Ready(Ok(response.map(|inner| StackBody { inner })))
    }
}

pin_project! {
    /// The response body of the stack: the endpoint's body `RB`, observed for the canary's
    /// analysis (a gRPC status in the trailers) until it ends; a body nothing observes is a
    /// pass-through. Frames, [`size_hint`](Body::size_hint) and
    /// [`is_end_stream`](Body::is_end_stream) are `RB`'s; its errors are boxed.
    ///
    /// ```
    /// use fluxgate::stack::StackBody;
    ///
    /// let body: StackBody<String> = StackBody::default();
    /// assert_eq!(body.into_passthrough().ok().as_deref(), Some(""));
    /// ```
    #[derive(Debug)]
    pub struct StackBody<RB> {
        #[pin]
        inner: ObservedBody<RB, Observation>,
    }
}

impl<RB: Default> Default for StackBody<RB> {
    fn default() -> Self {
        Self {
            inner: ObservedBody::default(),
        }
    }
}

impl<RB> StackBody<RB> {
    /// The endpoint's body.
    #[must_use]
    pub fn get_ref(&self) -> &RB {
        self.inner.get_ref()
    }

    /// The endpoint's body when nothing observes it any more, so that a caller can drop the
    /// wrapper instead of boxing it; a body still observed comes back as `Err`.
    pub fn into_passthrough(self) -> Result<RB, Self> {
        self.inner
            .into_passthrough()
            .map_err(|inner| Self { inner })
    }
}

impl<RB> Body for StackBody<RB>
where
    RB: Body,
    RB::Error: Into<BoxError>,
{
    type Data = RB::Data;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<RB::Data>, BoxError>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
