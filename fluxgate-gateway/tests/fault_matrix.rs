//! The fault matrix (issue 19): one test per fault, through the real `fluxgate` binary, with real
//! upstreams on loopback (hyper servers, or raw sockets for misbehaviour) and a real
//! `redis-server` on a free port. Each row's doc comment says what clients see, what is counted
//! (`/metrics`, `/api/status`), and what the docs promise that is not lost. SECURITY.md ("Fault
//! matrix") has the table. Every step is bounded; every process is killed when its test ends.

#[path = "fault_matrix/cluster_rows.rs"]
mod cluster_rows;
#[path = "fault_matrix/policy_rows.rs"]
mod policy_rows;
#[path = "fault_matrix/process.rs"]
mod process;
#[path = "faults/raw.rs"]
mod raw;
#[path = "fault_matrix/redis_rows.rs"]
mod redis_rows;
#[path = "fault_matrix/signal_rows.rs"]
mod signal_rows;
mod support;
#[path = "fault_matrix/upstreams.rs"]
mod upstreams;

use std::time::Duration;

use http::StatusCode;
use http_body_util::BodyExt;
use process::{Process, policy};
use raw::{Behaviour, RawUpstream};
use support::gateway::get;
use support::within;

/// A gateway over one upstream at `addr`, no limits, `extra` arguments.
fn over(dir: &tempfile::TempDir, addr: std::net::SocketAddr, extra: &[&str]) -> Process {
    Process::start(dir.path(), &policy("{}"), &format!("http://{addr}"), extra)
}

/// Upstream refusing connections: clients get `502` at once (never a hang, never a `200`), the
/// failures are counted in `fluxgate_upstream_requests_total{outcome="failure"}`, and the gateway
/// keeps serving its admin API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_refusing_connections_gives_502() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = over(&dir, upstreams::refusing(), &[]);
    for _ in 0..5 {
        let answer = get(&gateway.url("/"), &[]).await;
        assert!(
            matches!(
                answer.status,
                StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE
            ),
            "{} {}",
            answer.status,
            answer.body
        );
    }
    let failures = gateway
        .metric("fluxgate_upstream_requests_total", &["outcome=\"failure\""])
        .await;
    assert!(failures >= 1.0, "{failures}\n{}", gateway.log());
}

/// Upstream resetting mid-response: the client sees the `200` and headers, then an aborted body
/// (never a short body passed off as whole); later requests get whole answers. Counted as
/// `outcome="success"` (decided at the head): nothing counts the abort itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_reset_mid_response_aborts_that_body_only() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = RawUpstream::start(Behaviour::ResetMidBody { first: 1 }).await;
    let gateway = over(&dir, upstream.addr, &[]);
    let request = http::Request::get(gateway.url("/"))
        .body(support::full(""))
        .unwrap();
    let response = within(support::client().request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = within(response.into_body().collect()).await;
    assert!(body.is_err(), "a short body passed off as whole");
    for _ in 0..5 {
        let answer = get(&gateway.url("/"), &[]).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::OK, "ok")
        );
    }
    // The outcome is decided at the response head: the aborted body counts as a success (a gap:
    // nothing counts the abort).
    let family = "fluxgate_upstream_requests_total";
    let successes = gateway.metric(family, &["outcome=\"success\""]).await;
    assert!(successes >= 6.0, "{successes}");
}

/// Upstream hanging (reads the request, never answers): clients get `504` after
/// `--upstream-timeout` (0.3s here), counted as failures; the gateway holds no request longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_hanging_gives_504_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = RawUpstream::start(Behaviour::Hang).await;
    let gateway = over(&dir, upstream.addr, &["--upstream-timeout", "0.3"]);
    for _ in 0..3 {
        let answer = get(&gateway.url("/"), &[]).await;
        assert_eq!(
            answer.status,
            StatusCode::GATEWAY_TIMEOUT,
            "{}",
            answer.body
        );
    }
    let failures = gateway
        .metric("fluxgate_upstream_requests_total", &["outcome=\"failure\""])
        .await;
    assert!(failures >= 1.0, "{failures}");
}

/// Upstream trickling its body a byte at a time: the client receives every byte, streamed (the
/// timeout covers the response head only, so a slow body is not cut), counted as a success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_trickling_bytes_streams_through_whole() {
    let dir = tempfile::tempdir().unwrap();
    let gap = Duration::from_millis(30);
    let upstream = RawUpstream::start(Behaviour::Trickle { len: 20, gap }).await;
    // The whole body takes longer than the head timeout: it must not be cut.
    let gateway = over(&dir, upstream.addr, &["--upstream-timeout", "0.3"]);
    let answer = get(&gateway.url("/"), &[]).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "abcdefghijklmnopqrst")
    );
    let successes = gateway
        .metric("fluxgate_upstream_requests_total", &["outcome=\"success\""])
        .await;
    assert!(successes >= 1.0, "{successes}");
}

/// Upstream answering garbage (not HTTP): clients get `502`, counted as failures; the gateway
/// forwards none of the garbage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_answering_garbage_gives_502() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = upstreams::Garbage::start().await;
    let gateway = over(&dir, upstream.addr, &[]);
    for _ in 0..3 {
        let answer = get(&gateway.url("/"), &[]).await;
        assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.body);
        assert!(!answer.body.contains("SSH"), "{}", answer.body);
    }
    let failures = gateway
        .metric("fluxgate_upstream_requests_total", &["outcome=\"failure\""])
        .await;
    assert!(failures >= 1.0, "{failures}");
}
