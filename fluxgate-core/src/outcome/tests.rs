use std::fmt;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn grpc_response(status: u16, grpc_status: Option<&str>) -> Response<()> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/grpc");
    if let Some(code) = grpc_status {
        builder = builder.header("grpc-status", code);
    }
    builder.body(()).unwrap()
}

#[test]
fn grpc_responses() {
    let outcome = |r: &Response<()>| classify_response(r).map(|c| c.outcome);
    assert_eq!(
        outcome(&grpc_response(200, Some("0"))),
        Some(Outcome::Success)
    );
    assert_eq!(
        outcome(&grpc_response(200, Some("14"))),
        Some(Outcome::Overload)
    );
    assert_eq!(
        outcome(&grpc_response(200, Some("2"))),
        Some(Outcome::Failure)
    );
    assert_eq!(
        outcome(&grpc_response(200, Some("x"))),
        Some(Outcome::Failure)
    );
    assert_eq!(
        outcome(&grpc_response(200, Some("5"))),
        Some(Outcome::Success)
    );
    assert_eq!(outcome(&grpc_response(200, None)), None);
    assert_eq!(outcome(&grpc_response(503, None)), Some(Outcome::Overload));
    assert_eq!(
        outcome(&grpc_response(502, Some("0"))),
        Some(Outcome::Failure)
    );
}

#[test]
fn grpc_status_in_plain_http_is_ignored() {
    let response = Response::builder()
        .header("grpc-status", "13")
        .body(())
        .unwrap();
    assert_eq!(
        classify_response(&response).map(|c| c.outcome),
        Some(Outcome::Success)
    );
}

#[derive(Debug)]
struct Wrapper(Box<dyn Error + Send + Sync>);

impl fmt::Display for Wrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wrapped")
    }
}

impl Error for Wrapper {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn finds_timeouts_deep_in_the_chain() {
    let elapsed = tokio::time::timeout(Duration::from_millis(1), std::future::pending::<()>())
        .await
        .unwrap_err();
    let boxed: Box<dyn Error + Send + Sync> =
        Box::new(Wrapper(Box::new(Wrapper(Box::new(elapsed)))));
    assert_eq!(classify_error(&*boxed).cause, Cause::Timeout);
    let refused = Wrapper(Box::new(io::Error::from(io::ErrorKind::ConnectionReset)));
    assert_eq!(
        classify_error(&refused).cause,
        Cause::Transport(Some(io::ErrorKind::ConnectionReset))
    );
    let plain = Wrapper(Box::from("no io error"));
    assert_eq!(classify_error(&plain).cause, Cause::Transport(None));
}

proptest! {
    #[test]
    fn statuses_follow_the_rule(code in 100u16..1000) {
        let status = StatusCode::from_u16(code).unwrap();
        let expected = match code {
            429 | 503 => Outcome::Overload,
            500..=599 => Outcome::Failure,
            _ => Outcome::Success,
        };
        prop_assert_eq!(classify_status(status).outcome, expected);
    }
}
