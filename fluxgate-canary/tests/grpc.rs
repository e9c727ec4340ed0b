//! gRPC responses: judged by the `grpc-status` of a trailers-only head, or of the trailers at
//! the end of the body.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use fluxgate_canary::{Canary, Decision, Finding, Phase, RollbackReason};
use futures::stream::{self, Iter};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::time::sleep;
use tower::{Service, ServiceExt};

mod support;

type Frames = std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>;
type GrpcBody = StreamBody<Iter<Frames>>;

/// A gRPC backend: every answer has `grpc-status: code`, in the head (trailers-only) or in the
/// trailers after one message.
#[derive(Clone, Copy, Debug)]
struct Grpc {
    code: &'static str,
    in_trailers: bool,
}

impl Service<Request<()>> for Grpc {
    type Response = Response<GrpcBody>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        let mut status = HeaderMap::new();
        status.insert("grpc-status", HeaderValue::from_static(self.code));
        let frames = if self.in_trailers {
            vec![
                Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi"))),
                Ok(Frame::trailers(status.clone())),
            ]
        } else {
            Vec::new()
        };
        let mut response = Response::new(StreamBody::new(stream::iter(frames)));
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
        if !self.in_trailers {
            response.headers_mut().extend(status);
        }
        ready(Ok(response))
    }
}

fn grpc(code: &'static str, in_trailers: bool) -> Grpc {
    Grpc { code, in_trailers }
}

fn router(stable: Grpc, canary: Grpc) -> Canary<Grpc, Grpc> {
    let spec = "{weight: 50, interval: 1s, failureThreshold: 1, metrics: {targetErrorRate: 0.05}}";
    let (router, judge) = Canary::new(stable, canary, support::canary(spec)).unwrap();
    judge.spawn().detach();
    router
}

/// Sends `n` requests and reads every body to its end.
async fn drive(router: &Canary<Grpc, Grpc>, n: usize) {
    for _ in 0..n {
        let response = router.clone().oneshot(Request::new(())).await.unwrap();
        response.into_body().collect().await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn status_13_in_trailers_rolls_the_canary_back() {
    let r = router(grpc("0", true), grpc("13", true));
    sleep(Duration::from_millis(1)).await;
    drive(&r, 200).await;
    sleep(Duration::from_secs(1)).await;
    let snapshot = r.handle().snapshot();
    assert_eq!(snapshot.phase, Phase::RolledBack);
    let Some((Decision::RolledBack(reason), _)) = snapshot.last_decision else {
        panic!("{:?}", snapshot.last_decision)
    };
    let check = match reason {
        RollbackReason::ErrorBudget(check) | RollbackReason::FailedChecks { check, .. } => check,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        check.finding,
        Finding::ErrorRate { value: 1.0, .. } | Finding::Availability { value: 0.0, .. }
    ));
    assert_eq!(snapshot.stable.error_rate, Some(0.0));
}

#[tokio::test(start_paused = true)]
async fn trailers_only_and_trailer_statuses_are_both_judged() {
    let r = router(grpc("14", false), grpc("0", true));
    sleep(Duration::from_millis(1)).await;
    drive(&r, 100).await;
    sleep(Duration::from_secs(1)).await;
    let snapshot = r.handle().snapshot();
    // UNAVAILABLE in a trailers-only head is an overload; OK in the trailers a success.
    assert_eq!(snapshot.stable.error_rate, Some(1.0));
    assert_eq!(snapshot.canary.error_rate, Some(0.0));
    assert_eq!(
        snapshot.stable.window_requests + snapshot.canary.window_requests,
        100
    );
    assert_eq!(snapshot.phase, Phase::Progressing);
}

#[tokio::test(start_paused = true)]
async fn a_body_dropped_before_its_trailers_is_cancelled_not_failed() {
    let r = router(grpc("13", true), grpc("13", true));
    sleep(Duration::from_millis(1)).await;
    for _ in 0..40 {
        let response = r.clone().oneshot(Request::new(())).await.unwrap();
        assert!(response.body().is_pending());
        drop(response);
    }
    sleep(Duration::from_secs(1)).await;
    let snapshot = r.handle().snapshot();
    assert_eq!(
        snapshot.stable.window_requests + snapshot.canary.window_requests,
        40
    );
    assert_eq!(snapshot.canary.error_rate.unwrap_or(0.0), 0.0);
    assert_ne!(snapshot.phase, Phase::RolledBack);
}
