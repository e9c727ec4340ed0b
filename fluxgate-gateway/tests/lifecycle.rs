//! The `fluxgate` binary's graceful shutdown, through the real process: SIGTERM with requests
//! in flight on keep-alive connections loses none of them, `/readyz` turns 503 during the drain,
//! new connections are refused, and the process exits 0; a request that outlives the grace
//! period is cut and counted, and the process still exits 0 once the grace period is over.

mod binary;
mod http1;
mod support;

use fluxgate_gateway::server::RequestBody;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use binary::{Fluxgate, LOOPBACK, command, plain};
use fluxgate_gateway::server::ServerHandle;
use http::{Request, Response, StatusCode};
use http1::Conn;
use support::gateway::get;
use support::{full, serve, within};

/// An upstream: `/healthz` and `/fast` answer at once, anything else after `delay` (counted
/// in `arrived` when it arrives).
async fn upstream(delay: Duration) -> (ServerHandle, Arc<AtomicUsize>) {
    let arrived = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&arrived);
    let server = serve(tower::service_fn(move |request: Request<RequestBody>| {
        let slow = !matches!(request.uri().path(), "/healthz" | "/fast");
        if slow {
            count.fetch_add(1, Ordering::SeqCst);
        }
        async move {
            if slow {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, Infallible>(Response::new(full(if slow { "slow" } else { "fast" })))
        }
    }))
    .await;
    (server, arrived)
}

/// `n` keep-alive connections to the gateway, each after one quick request, each with a slow
/// request in flight once the upstream has seen all of them.
async fn in_flight(gateway: &Fluxgate, arrived: &AtomicUsize, n: usize) -> Vec<Conn> {
    let mut conns = Vec::new();
    for i in 0..n {
        let mut conn = within(Conn::connect(gateway.proxy)).await.unwrap();
        let client = format!("x-client-id: client-{i}");
        conn.get("/fast", &[&client]).await.unwrap();
        let first = within(conn.response()).await.unwrap().unwrap();
        assert_eq!(first.status, 200);
        assert_eq!(first.body, "fast");
        conn.get("/slow", &[&client]).await.unwrap();
        conns.push(conn);
    }
    within(async {
        while arrived.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    conns
}

async fn readyz(gateway: &Fluxgate) -> StatusCode {
    get(&format!("http://{}/readyz", gateway.admin), &[])
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_0() {
    let (upstream, arrived) = upstream(Duration::from_secs(2)).await;
    let target = format!("http://{}", upstream.local_addr());
    let mut args = LOOPBACK.to_vec();
    args.extend(["--upstream", &target, "--grace-period", "15"]);
    let mut gateway = Fluxgate::start(command(&args, &[])).await;
    assert_eq!(readyz(&gateway).await, StatusCode::OK);
    assert_eq!(
        get(&format!("http://{}/healthz", gateway.admin), &[])
            .await
            .status,
        StatusCode::OK
    );

    let conns = in_flight(&gateway, &arrived, 4).await;
    gateway.signal("TERM");

    // While the slow requests finish: not ready, and no new connection.
    within(async {
        while readyz(&gateway).await != StatusCode::SERVICE_UNAVAILABLE {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    within(async {
        while Conn::connect(gateway.proxy).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(
        arrived.load(Ordering::SeqCst),
        4,
        "the drain was checked while the requests were in flight"
    );

    let mut completed = 0;
    for mut conn in conns {
        let response = within(conn.response()).await.unwrap().expect("a response");
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.body, "slow");
        // The connection is closed after its last response.
        assert_eq!(response.header("connection"), Some("close"));
        completed += 1;
    }
    assert_eq!(completed, 4);
    let status = gateway.wait().await;
    assert_eq!(status.code(), Some(0), "{:?}", gateway.stderr());
    let log = plain(&gateway.stderr().join("\n"));
    assert!(log.contains("signal=\"SIGTERM\""), "{log}");
    assert!(log.contains("drained: every request finished"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_bounds_the_drain_and_counts_the_requests_cut() {
    // Two workers (a worker per core is the default), whose runtimes drop what is left at the
    // drain timeout, and the multi-threaded runtime, whose connection tasks live on until the
    // process exits.
    for workers in ["2", "0"] {
        grace_cut(workers).await;
    }
}

async fn grace_cut(workers: &str) {
    // The upstream never answers within the test; the upstream timeout is longer still.
    let (upstream, arrived) = upstream(Duration::from_secs(3600)).await;
    let target = format!("http://{}", upstream.local_addr());
    let mut args = LOOPBACK.to_vec();
    args.extend(["--upstream", &target, "--upstream-timeout", "3600"]);
    args.extend(["--workers", workers]);
    let env = [("FLUXGATE_GRACE_PERIOD", "1")];
    let mut gateway = Fluxgate::start(command(&args, &env)).await;
    let conns = in_flight(&gateway, &arrived, 2).await;

    gateway.signal("INT");
    let status = gateway.wait().await;
    assert_eq!(status.code(), Some(0), "{:?}", gateway.stderr());
    for mut conn in conns {
        // Cut: the connection ends without a response.
        let response = within(conn.response()).await;
        assert!(!matches!(response, Ok(Some(_))), "{response:?}");
    }
    let log = plain(&gateway.stderr().join("\n"));
    assert!(log.contains("signal=\"SIGINT\""), "{log}");
    assert!(
        log.contains("the grace period is over: requests still in flight are cut cut=2"),
        "{log}"
    );
}
