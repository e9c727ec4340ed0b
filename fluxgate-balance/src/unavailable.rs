//! [`RespondUnavailable`]: answers `503 Service Unavailable` when no endpoint is healthy.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Response, StatusCode};
use pin_project_lite::pin_project;
use tower::BoxError;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::is_no_healthy_endpoints;

/// Wraps a [`Balance`](crate::Balance) (or anything that may fail with
/// [`BalanceError::NoHealthyEndpoints`](crate::BalanceError::NoHealthyEndpoints)) so that this
/// failure becomes a `503 Service Unavailable` response with an empty body; other errors pass
/// through. Use it in axum and hyper stacks, where an error drops the connection.
///
/// ```
/// use fluxgate_balance::{Balance, RespondUnavailable};
/// use fluxgate_core::policy::LoadBalancing;
/// use tower::{Service, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// type Svc = tower::util::BoxCloneSyncService<http::Request<()>, http::Response<String>, std::convert::Infallible>;
/// let empty = Balance::<_, http::Request<()>>::new(LoadBalancing::default(), Vec::<(&str, fluxgate_balance::Weighted<Svc>)>::new());
/// let mut svc = RespondUnavailable::new(empty);
/// let response = svc.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
/// assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RespondUnavailable<S> {
    inner: S,
}

impl<S> RespondUnavailable<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The layer form.
    #[must_use]
    pub fn layer() -> RespondUnavailableLayer {
        RespondUnavailableLayer
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The [`Layer`] of [`RespondUnavailable`].
///
/// ```
/// use fluxgate_balance::RespondUnavailableLayer;
/// let _layer = tower::ServiceBuilder::new().layer(RespondUnavailableLayer);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RespondUnavailableLayer;

impl<S> Layer<S> for RespondUnavailableLayer {
    type Service = RespondUnavailable<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RespondUnavailable::new(inner)
    }
}

impl<S, Req, B> Service<Req> for RespondUnavailable<S>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Default,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = RespondUnavailableFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        RespondUnavailableFuture {
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The future of [`RespondUnavailable`].
    #[derive(Debug)]
    pub struct RespondUnavailableFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, B, E> Future for RespondUnavailableFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Default,
{
    type Output = Result<Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(response)) => Poll::Ready(Ok(response)),
            Poll::Ready(Err(error)) => {
                let error = error.into();
                if is_no_healthy_endpoints(&*error) {
                    let mut response = Response::new(B::default());
                    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    Poll::Ready(Ok(response))
                } else {
                    Poll::Ready(Err(error))
                }
            }
        }
    }
}
