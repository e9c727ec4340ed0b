//! [`Http503`]: answers `503 Service Unavailable` when no endpoint is healthy.

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
/// use fluxgate_balance::{Balance, Http503};
/// use fluxgate_core::policy::LoadBalancing;
/// use tower::{Service, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// type Svc = tower::util::BoxCloneSyncService<http::Request<()>, http::Response<String>, std::convert::Infallible>;
/// let empty = Balance::<_, http::Request<()>>::new(LoadBalancing::default(), Vec::<(&str, fluxgate_balance::Weighted<Svc>)>::new());
/// let mut svc = Http503::new(empty);
/// let response = svc.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
/// assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Http503<S> {
    inner: S,
}

impl<S> Http503<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The layer form.
    #[must_use]
    pub fn layer() -> Http503Layer {
        Http503Layer
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

/// The [`Layer`] of [`Http503`].
///
/// ```
/// use fluxgate_balance::Http503Layer;
/// let _layer = tower::ServiceBuilder::new().layer(Http503Layer);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Http503Layer;

impl<S> Layer<S> for Http503Layer {
    type Service = Http503<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Http503::new(inner)
    }
}

impl<S, Req, B> Service<Req> for Http503<S>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Default,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Http503Future<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        Http503Future {
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The future of [`Http503`].
    #[derive(Debug)]
    pub struct Http503Future<F> {
        #[pin]
        inner: F,
    }
}

impl<F, B, E> Future for Http503Future<F>
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
