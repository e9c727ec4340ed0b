//! [`ResponseFuture`]: the canary router's response future, which records each response's
//! outcome and latency in the windows of the side that served it, and [`Observation`], which
//! does so at the end of a gRPC body whose status comes in the trailers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use fluxgate_core::clock::Stamp;
use fluxgate_core::outcome::{
    Classification, ObservedBody, OutcomeObserver, classify_error, classify_response,
};
use http::Response;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::BoxError;
use crate::error::CanaryError;
use crate::route::Side;
use crate::shared::Lane;

pin_project! {
    /// The response future of [`Canary`](crate::Canary).
    ///
    /// The latency recorded is the time from `call` to the response's head (time to headers),
    /// read once at `call` and once at completion: a streaming body lasts as long as its client
    /// and its payload make it, not as long as the upstream is slow to answer. A busy side times
    /// one response in 2 to 16 and counts its latency that many times (see the
    /// [crate docs](crate#latency-sampling)); a response that is not timed places its outcome
    /// with the coarse clock.
    ///
    /// The outcome is recorded when it is known: at completion for an error ([`classify_error`])
    /// or a response whose head decides it ([`classify_response`]: HTTP status, or the
    /// `grpc-status` of a trailers-only response); at the end of the body for a gRPC response
    /// whose status comes in the trailers (the body is an [`ObservedBody`] with an
    /// [`Observation`]; a body dropped before its end counts as `CANCELLED`, a success). A future
    /// dropped before it completes records nothing.
    ///
    /// ```
    /// use fluxgate_canary::{Canary, future::ResponseFuture};
    /// # use fluxgate_core::policy::{CanarySpec, CompiledPolicy, TrafficPolicy};
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
    /// assert!(!response.body().is_pending()); // a plain HTTP response is judged by its head
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
    lane: Arc<Lane>,
    side: Side,
    /// When `call` was made; read only for a timed response.
    start: Stamp,
    /// The responses this one's latency stands for; 0 when it is not timed.
    weight: u32,
}

/// Records the outcome of a gRPC response whose status comes in the trailers, when its
/// [`ObservedBody`] ends, with the latency measured at its head.
///
/// ```
/// use fluxgate_canary::future::Observation;
/// use fluxgate_core::outcome::OutcomeObserver;
///
/// fn is_observer<O: OutcomeObserver>() {}
/// is_observer::<Observation>();
/// ```
#[derive(Debug)]
pub struct Observation {
    lane: Arc<Lane>,
    side: Side,
    latency: Duration,
    weight: u32,
}

impl OutcomeObserver for Observation {
    fn observe(self, class: Classification) {
        // The end of a stream may be long after its head: it goes in the bucket of its end
        // (a coarse read is precise enough for a bucket; the latency was measured at the head).
        let (latency, weight) = (self.latency, self.weight);
        self.lane
            .record(self.side, Stamp::coarse(), class.outcome, latency, weight);
    }
}

impl<SF, CF> ResponseFuture<SF, CF> {
    fn new(kind: Kind<SF, CF>, lane: Arc<Lane>, side: Side, weight: u32) -> Self {
        let start = if weight > 0 {
            Stamp::now()
        } else {
            Stamp::default()
        };
        Self {
            kind,
            record: Some(Record {
                lane,
                side,
                start,
                weight,
            }),
        }
    }

    pub(crate) fn stable(future: SF, lane: Arc<Lane>, weight: u32) -> Self {
        Self::new(Kind::Stable { future }, lane, Side::Stable, weight)
    }

    pub(crate) fn canary(future: CF, lane: Arc<Lane>, weight: u32) -> Self {
        Self::new(Kind::Canary { future }, lane, Side::Canary, weight)
    }

    pub(crate) fn not_ready() -> Self {
        Self {
            kind: Kind::NotReady,
            record: None,
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
    type Output = Result<Response<ObservedBody<RB, Observation>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.kind.project() {
            KindProj::Stable { future } => ready!(future.poll(cx)).map_err(Into::into),
            KindProj::Canary { future } => ready!(future.poll(cx)).map_err(Into::into),
            KindProj::NotReady => return Poll::Ready(Err(CanaryError::NotReady.into())),
        };
        let Some(record) = this.record.take() else {
            return Poll::Ready(result.map(|r| r.map(ObservedBody::observed)));
        };
        let (now, latency) = if record.weight > 0 {
            let now = Stamp::now();
            (now, now.saturating_since(record.start))
        } else {
            (Stamp::coarse(), Duration::ZERO)
        };
        let (lane, side, weight) = (record.lane, record.side, record.weight);
        Poll::Ready(match result {
            Ok(response) => match classify_response(&response) {
                Some(class) => {
                    lane.record(side, now, class.outcome, latency, weight);
                    Ok(response.map(ObservedBody::observed))
                }
                None => {
                    let observation = Observation {
                        lane,
                        side,
                        latency,
                        weight,
                    };
                    Ok(response.map(|body| ObservedBody::new(body, observation)))
                }
            },
            Err(error) => {
                lane.record(side, now, classify_error(&*error).outcome, latency, weight);
                Err(error)
            }
        })
    }
}

/// The future type of a `Canary<S, C>` over requests of type `Req`.
pub(crate) type FutureOf<S, C, Req> =
    ResponseFuture<<S as Service<Req>>::Future, <C as Service<Req>>::Future>;
