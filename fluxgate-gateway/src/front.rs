//! The gateway's front door: what every request goes through before the request path.
//!
//! [`Front`] wraps the [`stack`](crate::stack)'s service and, for each request:
//! 1. refuses an ambiguous or malformed head with `400` ([`strict::check_head`]: two `Host`
//!    headers, userinfo in `Host`, an invalid `Host`), before anything is forwarded;
//! 2. gives it its [`RequestId`] (the client's `x-request-id` or a new one), sent upstream and
//!    returned to the client in the response's `x-request-id`;
//! 3. runs it in a `tracing` span, target [`SPAN_TARGET`] (`fluxgate::request`), name `request`,
//!    level `DEBUG`, with the fields `method`, `path`, `request_id`, and once answered `status`,
//!    `upstream`, `canary_side`: the span a subscriber exports (an OpenTelemetry layer, or
//!    `RUST_LOG=info,fluxgate::request=debug` to see it around the gateway's own events);
//! 4. answers `400` instead of the proxy's `502` when the client's own body failed (a malformed
//!    chunked encoding: [`strict::ClientBody`]);
//! 5. writes the [access log](crate::access_log) line when the response body ends.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use fluxgate_core::store::{PolicyId, PolicyStore};
//! use fluxgate_gateway::access_log::AccessLog;
//! use fluxgate_gateway::stack::{Gateway, StackConfig};
//!
//! let store = PolicyStore::new();
//! let id = PolicyId::new("payments", "checkout-service-policy");
//! let config = StackConfig::new(vec!["http://127.0.0.1:3000".parse()?])
//!     .access_log(AccessLog::json_stdout());
//! let gateway = Gateway::build(&store, &id, &config)?;
//! let _service = gateway.service(); // a `Front` over the request path
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::future::Either;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::time::Instant;
use tower::Service;
use tracing::Span;
use tracing::field::Empty;
use tracing::instrument::{Instrument, Instrumented};

use crate::access_log::{AccessLog, Pending, ServedBy, Started, logged};
use crate::proxy::{ProxyBody, text_response};
use crate::request_id::{RequestId, X_REQUEST_ID};
use crate::strict::{self, BodyFailed, ClientBody};

/// The target of the per-request span.
pub const SPAN_TARGET: &str = "fluxgate::request";

/// The front door over `S`; see the [module docs](self). Cheap to clone when `S` is.
#[derive(Debug, Clone)]
pub struct Front<S> {
    inner: S,
    log: AccessLog,
}

impl<S> Front<S> {
    /// `inner` behind the front door, logging to `log`.
    #[must_use]
    pub fn new(inner: S, log: AccessLog) -> Self {
        Self { inner, log }
    }
}

impl<S, B> Service<Request<B>> for Front<S>
where
    S: Service<Request<ClientBody<B>>, Response = Response<ProxyBody>, Error = Infallible>,
    B: http_body::Body,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = FrontFuture<Pin<Box<S::Future>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let refusal = strict::check_head(&request);
        let request_id = RequestId::from_headers(request.headers_mut());
        let span = tracing::debug_span!(
            target: SPAN_TARGET,
            "request",
            method = %request.method(),
            path = request.uri().path(),
            request_id = %request_id,
            status = Empty,
            upstream = Empty,
            canary_side = Empty,
        );
        let started = self
            .log
            .is_on()
            .then(|| Started::new(&request, request_id.clone(), Instant::now()));
        let (inner, failed) = match refusal {
            Err(reason) => {
                span.in_scope(|| tracing::debug!(reason, "refusing a malformed request"));
                let response = text_response(StatusCode::BAD_REQUEST, reason);
                (Either::Left(std::future::ready(Ok(response))), None)
            }
            Ok(()) => {
                // A body that is already complete cannot fail: nothing to watch.
                let failed = (!request.body().is_end_stream()).then(BodyFailed::default);
                let request = request.map(|body| ClientBody::new(body, failed.clone()));
                // Boxed once here: the stack's future is large, and every wrapper above it (this
                // one, the lifecycle's, the server's connection task) would otherwise move it
                // again (about 460 instructions of `memcpy` per request, against one allocation).
                let call = Box::pin(span.in_scope(|| self.inner.call(request)));
                (Either::Right(call.instrument(span.clone())), failed)
            }
        };
        FrontFuture {
            inner,
            state: Some(State {
                request_id,
                started,
                failed,
                span,
                log: self.log.clone(),
            }),
        }
    }
}

/// What the response is finished with.
#[derive(Debug)]
struct State {
    request_id: RequestId,
    started: Option<Started>,
    failed: Option<BodyFailed>,
    span: Span,
    log: AccessLog,
}

type Answered = std::future::Ready<Result<Response<ProxyBody>, Infallible>>;

pin_project_lite::pin_project! {
    /// The future of [`Front`].
    #[derive(Debug)]
    pub struct FrontFuture<F> {
        #[pin]
        inner: Either<Answered, Instrumented<F>>,
        state: Option<State>,
    }
}

impl<F> Future for FrontFuture<F>
where
    F: Future<Output = Result<Response<ProxyBody>, Infallible>>,
{
    type Output = Result<Response<ProxyBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = ready!(this.inner.poll(cx));
        Poll::Ready(Ok(match this.state.take() {
            Some(state) => finish(response, state),
            None => response,
        }))
    }
}

/// The response as the client gets it: 400 for a failed client body, the request id, the span's
/// fields, the access log.
fn finish(mut response: Response<ProxyBody>, state: State) -> Response<ProxyBody> {
    let client_failed = state.failed.as_ref().is_some_and(BodyFailed::is_set);
    if client_failed && response.status() == StatusCode::BAD_GATEWAY {
        let _entered = state.span.enter();
        tracing::debug!("the client's request body was malformed, answering 400");
        response = text_response(StatusCode::BAD_REQUEST, "malformed request body");
    }
    response
        .headers_mut()
        .insert(X_REQUEST_ID, state.request_id.header_value().clone());
    let span = &state.span;
    span.record("status", response.status().as_u16());
    if let Some(served) = response.extensions().get::<ServedBy>() {
        span.record("upstream", &*served.upstream);
        span.record("canary_side", tracing::field::display(served.side));
    }
    let Some(started) = state.started else {
        return response;
    };
    let pending = Pending::new(started, &response);
    let (parts, body) = response.into_parts();
    let body = match logged(body, pending, &state.log) {
        Ok(logged) => logged.boxed_unsync(),
        Err(body) => body,
    };
    Response::from_parts(parts, body)
}
