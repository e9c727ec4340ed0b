//! Signal rows: SIGHUP, and SIGTERM / SIGINT while requests are in flight.

use std::time::Duration;

use http::StatusCode;

use super::process::{Process, limited_policy};
use super::redis_rows::{HELD, probe, under_load};
use super::support::gateway::get;
use super::upstreams::slow;

/// SIGHUP under load: the gateway logs it and goes on serving (it is not a reload signal: the
/// policy file is followed on every save already); no request is lost, the limits still hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_under_load_is_logged_and_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = slow(Duration::from_millis(5)).await;
    let mut gateway = Process::start(
        dir.path(),
        &limited_policy(3),
        &format!("http://{}", upstream.local_addr()),
        &[],
    );
    let (_, statuses) = under_load(&gateway.url("/"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        gateway.signal("-HUP");
        tokio::time::sleep(Duration::from_millis(200)).await;
    })
    .await;
    assert!(!statuses.is_empty());
    assert!(gateway.running(), "SIGHUP killed the gateway");
    assert_eq!(probe(&gateway, "after-hup").await, HELD);
    assert!(gateway.log().contains("SIGHUP"), "{}", gateway.log());
}

/// Sends `signal` while 5 requests wait on a slow upstream (0.5s): each gets its whole `200`, then
/// the process exits `0` (bounded).
async fn in_flight_complete_on(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = slow(Duration::from_millis(500)).await;
    let mut gateway = Process::start(
        dir.path(),
        &super::process::policy("{}"),
        &format!("http://{}", upstream.local_addr()),
        &[],
    );
    let url = gateway.url("/");
    let requests: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url, &[]).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    gateway.signal(signal);
    for request in requests {
        let answer = request.await.expect("an in-flight request was lost");
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::OK, "slow")
        );
    }
    let exit = gateway.exited_within(Duration::from_secs(5)).await;
    assert!(
        exit.is_some_and(|e| e.success()),
        "{exit:?}\n{}",
        gateway.log()
    );
}

/// SIGTERM under load (what Kubernetes sends): in-flight requests complete, new connections are
/// refused, the process exits `0`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_completes_in_flight_requests() {
    in_flight_complete_on("-TERM").await;
}

/// SIGINT (Ctrl-C) under load: in-flight requests complete, the process exits `0`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_under_load_completes_in_flight_requests() {
    in_flight_complete_on("-INT").await;
}
