//! [`GatewayService`]: the whole request path as one service that takes any body and never
//! fails, and its named [`GatewayFuture`] (no allocation per request).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use fluxgate::stack::{StackBody, StackFuture, StackService};
use fluxgate_balance::future::PendingOutcome;
use fluxgate_core::outcome::ObservedBody;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use tower::Service;

use super::ProxyRequest;
use crate::access_log::Served;
use crate::proxy::{self, BoxError, Proxy, ProxyBody, grpc};

/// The stack's service as the gateway builds it.
type Inner = StackService<String, Served<Proxy>, ProxyBody, ProxyBody>;

/// The whole request path as one service; see the [module docs](super).
///
/// Its readiness is the stack's (an endpoint that is not ready is skipped for another; all of
/// them not ready give backpressure); a stack that fails to become ready (a failed endpoint
/// discovery) makes the next call answer `502`. A clone starts with no readiness.
#[derive(Debug)]
pub struct GatewayService {
    inner: Inner,
    /// Why the last `poll_ready` of the stack failed, answered by the next call.
    failed: Option<BoxError>,
}

impl GatewayService {
    pub(super) fn new(inner: Inner) -> Self {
        Self {
            inner,
            failed: None,
        }
    }
}

impl Clone for GatewayService {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            failed: None,
        }
    }
}

impl<B> Service<Request<B>> for GatewayService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = GatewayFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.failed = result.err();
                Poll::Ready(Ok(()))
            }
        }
    }

    /// Calls the stack made ready by `poll_ready` (no clone of the stack per request).
    fn call(&mut self, request: Request<B>) -> GatewayFuture {
        if let Some(error) = self.failed.take() {
            let Ok(response) = answer(Err(error));
            return GatewayFuture {
                state: State::Answered {
                    response: Some(response),
                },
            };
        }
        let request: ProxyRequest = request.map(|body| {
            if body.is_end_stream() {
                // Most requests: an empty box, which allocates nothing (its body is zero-sized).
                ProxyBody::default()
            } else {
                body.map_err(Into::into).boxed_unsync()
            }
        });
        let grpc = grpc::is_grpc(request.headers());
        GatewayFuture {
            state: State::Stack {
                future: self.inner.call(request),
                grpc,
            },
        }
    }
}

pin_project! {
    /// The response future of [`GatewayService`]: the stack's answer as the gateway's (a
    /// failure a `502`, to a gRPC request a trailers-only gRPC answer).
    #[must_use = "futures do nothing unless polled"]
    pub struct GatewayFuture {
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Answered { response: Option<Response<ProxyBody>> },
        Stack {
            #[pin]
            future: StackFuture<String, Served<Proxy>, ProxyBody, ProxyBody>,
            grpc: bool,
        },
    }
}

impl std::fmt::Debug for GatewayFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayFuture").finish_non_exhaustive()
    }
}

impl Future for GatewayFuture {
    type Output = Result<Response<ProxyBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Answered { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after its answer: a contract breach; never resolve twice.
                None => Poll::Pending,
            },
            StateProj::Stack { future, grpc } => {
                let result = ready!(future.poll(cx));
                Poll::Ready(if *grpc {
                    grpc_answer(result)
                } else {
                    answer(result)
                })
            }
        }
    }
}

/// The stack's answer as the gateway's: a failure a `502`; a body the canary or the balancer
/// still observes (gRPC trailers) boxed, a pass-through body unwrapped (no second box per
/// response).
fn answer(
    result: Result<Response<StackBody<ProxyBody>>, BoxError>,
) -> Result<Response<ProxyBody>, Infallible> {
    Ok(match result {
        Ok(mut response) => {
            // A gRPC status in the trailers: the balancer learns it when the body ends.
            let pending = response.extensions_mut().remove::<PendingOutcome>();
            let response = response.map(|body| {
                body.into_passthrough()
                    .unwrap_or_else(BodyExt::boxed_unsync)
            });
            match pending {
                Some(pending) => {
                    response.map(|body| ObservedBody::new(body, pending).boxed_unsync())
                }
                None => response,
            }
        }
        Err(error) => bad_gateway(&error),
    })
}

/// [`answer`] to a gRPC request: a refusal becomes a trailers-only gRPC answer.
fn grpc_answer(
    result: Result<Response<StackBody<ProxyBody>>, BoxError>,
) -> Result<Response<ProxyBody>, Infallible> {
    answer(result).map(grpc::refusal_as_grpc)
}

/// The answer when a request fails inside the gateway (a failed endpoint discovery).
fn bad_gateway(error: &BoxError) -> Response<ProxyBody> {
    tracing::warn!(%error, "request failed inside the gateway");
    proxy::text_response(
        StatusCode::BAD_GATEWAY,
        "the gateway could not route the request",
    )
}
