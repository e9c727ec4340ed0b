//! [`ResponseFuture`]: the canary router's response future, which records each response's
//! outcome and latency in the windows of the side that served it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use fluxgate_core::outcome::{Outcome, classify_error, classify_response};
use http::Response;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;

use crate::BoxError;
use crate::error::CanaryError;
use crate::route::Side;
use crate::shared::Shared;

pin_project! {
    /// The response future of [`Canary`](crate::Canary).
    ///
    /// When the inner future completes, the outcome ([`classify_response`]: HTTP status, or
    /// gRPC status of a trailers-only response; [`classify_error`] for an error) and the time
    /// since `call` are recorded in the side's analysis, latency and budget windows. A future
    /// dropped before it completes records nothing. A gRPC response whose status comes in the
    /// trailers is recorded as a success when its head arrives.
    ///
    /// ```
    /// use fluxgate_canary::{Canary, future::ResponseFuture};
    /// # use fluxgate_core::policy::{Canary as CanarySpec, CompiledPolicy, TrafficPolicy};
    /// use tower::{service_fn, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// # let mut policy = TrafficPolicy::new(None, "web");
    /// # policy.spec.canary = Some(CanarySpec::default());
    /// # let compiled = CompiledPolicy::compile(&policy)?;
    /// let svc = service_fn(|_: http::Request<()>| async { Ok::<_, std::io::Error>(http::Response::new(())) });
    /// let (canary, _judge) = Canary::new(svc, svc, compiled.canary().unwrap())?;
    /// let response = canary.oneshot(http::Request::new(())).await?;
    /// assert_eq!(response.status(), 200);
    /// # Ok(()) }
    /// ```
    #[derive(Debug)]
    pub struct ResponseFuture<SF, CF> {
        #[pin]
        kind: Kind<SF, CF>,
        record: Option<Record>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<SF, CF> {
        Stable { #[pin] future: SF },
        Canary { #[pin] future: CF },
        NotReady,
    }
}

#[derive(Debug)]
struct Record {
    shared: Arc<Shared>,
    side: Side,
    start: Instant,
}

impl<SF, CF> ResponseFuture<SF, CF> {
    pub(crate) fn stable(future: SF, shared: Arc<Shared>) -> Self {
        Self::new(Kind::Stable { future }, shared, Side::Stable)
    }

    pub(crate) fn canary(future: CF, shared: Arc<Shared>) -> Self {
        Self::new(Kind::Canary { future }, shared, Side::Canary)
    }

    pub(crate) fn not_ready() -> Self {
        Self {
            kind: Kind::NotReady,
            record: None,
        }
    }

    fn new(kind: Kind<SF, CF>, shared: Arc<Shared>, side: Side) -> Self {
        let start = Instant::now();
        Self {
            kind,
            record: Some(Record {
                shared,
                side,
                start,
            }),
        }
    }
}

impl<SF, CF, RB, SE, CE> Future for ResponseFuture<SF, CF>
where
    SF: Future<Output = Result<Response<RB>, SE>>,
    CF: Future<Output = Result<Response<RB>, CE>>,
    SE: Into<BoxError>,
    CE: Into<BoxError>,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.kind.project() {
            KindProj::Stable { future } => ready!(future.poll(cx)).map_err(Into::into),
            KindProj::Canary { future } => ready!(future.poll(cx)).map_err(Into::into),
            KindProj::NotReady => return Poll::Ready(Err(CanaryError::NotReady.into())),
        };
        if let Some(record) = this.record.take() {
            let outcome = match &result {
                Ok(response) => classify_response(response).map_or(Outcome::Success, |c| c.outcome),
                Err(error) => classify_error(&**error).outcome,
            };
            let now = Instant::now();
            let latency = now.saturating_duration_since(record.start);
            let windows = record.shared.windows.load();
            windows.side(record.side).record(now, outcome, latency);
        }
        Poll::Ready(result)
    }
}

/// The future type of a `Canary<S, C>` over requests of type `Req`.
pub(crate) type FutureOf<S, C, Req> =
    ResponseFuture<<S as Service<Req>>::Future, <C as Service<Req>>::Future>;
