//! Active health checks: thresholds on a paused clock, then real hyper and tonic-health servers.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::endpoints;
use fluxgate_balance::health::{GrpcProbe, HttpProbe, probe_fn};
use fluxgate_balance::{Balance, DrainReason, Health, Weighted};
use fluxgate_core::policy::{HealthCheck, HealthProtocol, LoadBalancing};
use http_body_util::{Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

fn checked(interval_ms: u64) -> LoadBalancing {
    let mut p = LoadBalancing::default();
    let mut hc = HealthCheck::default();
    hc.interval = fluxgate_core::policy::Duration::from_millis(interval_ms);
    hc.timeout = fluxgate_core::policy::Duration::from_millis(500);
    p.health_check = Some(hc);
    p
}

fn health_of(h: &fluxgate_balance::BalanceHandle<&'static str>, key: &str) -> Health {
    h.snapshot()
        .into_iter()
        .find(|s| s.key == key)
        .unwrap()
        .health
}

#[tokio::test(start_paused = true)]
async fn thresholds_take_endpoints_out_and_back() {
    let (list, _) = endpoints(&[("a", 1, 1), ("b", 1, 1)]);
    let balance = Balance::<_, common::Req>::new(checked(200), list);
    let handle = balance.handle();
    let b_up = Arc::new(AtomicBool::new(true));
    let up = Arc::clone(&b_up);
    let task = balance
        .health_task(probe_fn(move |key: &&str, _: &HealthCheck| {
            let ok = *key != "b" || up.load(Ordering::Relaxed);
            async move { ok }
        }))
        .spawn();
    tokio::time::sleep(Duration::from_millis(50)).await;
    b_up.store(false, Ordering::Relaxed);
    // Two failures (≤ 400ms) are not enough; the third (≤ 600ms) is.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(health_of(&handle, "b"), Health::Healthy);
    tokio::time::sleep(Duration::from_millis(260)).await;
    assert_eq!(health_of(&handle, "b"), Health::Unhealthy);
    let snap = handle
        .snapshot()
        .into_iter()
        .find(|s| s.key == "b")
        .unwrap();
    assert_eq!(snap.drained, Some(DrainReason::HealthCheck));
    b_up.store(true, Ordering::Relaxed);
    // One pass is not enough; two are.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(health_of(&handle, "b"), Health::Unhealthy);
    tokio::time::sleep(Duration::from_millis(210)).await;
    assert_eq!(health_of(&handle, "b"), Health::Healthy);
    assert_eq!(health_of(&handle, "a"), Health::Healthy);
    drop(balance);
    tokio::time::timeout(Duration::from_secs(1), task.join())
        .await
        .unwrap()
        .unwrap();
}

/// A hyper server on 127.0.0.1 whose `/healthz` answers the status in `status`.
async fn http_server(status: Arc<AtomicU16>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let status = Arc::clone(&status);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let code = if req.uri().path() == "/healthz" {
                            status.load(Ordering::Relaxed)
                        } else {
                            404
                        };
                        async move {
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(code)
                                    .body(Empty::<Bytes>::new())
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), task)
}

#[tokio::test]
async fn http_checks_against_real_servers() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let up = Arc::new(AtomicU16::new(200));
        let down = Arc::new(AtomicU16::new(200));
        let (up_url, s1) = http_server(Arc::clone(&up)).await;
        let (down_url, s2) = http_server(Arc::clone(&down)).await;
        let svc = || {
            Weighted::new(
                tower::service_fn(|_: common::Req| async {
                    Ok::<_, Infallible>(http::Response::new(""))
                }),
                1,
            )
        };
        let balance = Balance::<_, common::Req>::new(
            checked(50),
            [(up_url.clone(), svc()), (down_url.clone(), svc())],
        );
        let handle = balance.handle();
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let task = balance.health_task(HttpProbe::new(client)).spawn();
        down.store(500, Ordering::Relaxed);
        let unhealthy = |h: &fluxgate_balance::BalanceHandle<String>, k: &str| {
            h.snapshot()
                .into_iter()
                .find(|s| s.key == k)
                .unwrap()
                .health
                == Health::Unhealthy
        };
        while !unhealthy(&handle, &down_url) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!unhealthy(&handle, &up_url));
        down.store(204, Ordering::Relaxed);
        while unhealthy(&handle, &down_url) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(balance);
        task.join().await.unwrap();
        s1.abort();
        s2.abort();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn grpc_checks_against_a_real_tonic_health_server() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let (reporter, service) = tonic_health::server::health_reporter();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        let mut policy = checked(50);
        if let Some(hc) = policy.health_check.as_mut() {
            hc.protocol = HealthProtocol::Grpc;
        }
        let svc = Weighted::new(
            tower::service_fn(|_: common::Req| async {
                Ok::<_, Infallible>(http::Response::new(""))
            }),
            1,
        );
        let balance = Balance::<_, common::Req>::new(policy, [(url.clone(), svc)]);
        let handle = balance.handle();
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
        let task = balance.health_task(GrpcProbe::new(client)).spawn();
        let health = |h: &fluxgate_balance::BalanceHandle<String>| h.snapshot()[0].health;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(health(&handle), Health::Healthy);
        reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        while health(&handle) == Health::Healthy {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        while health(&handle) == Health::Unhealthy {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(balance);
        task.join().await.unwrap();
        server.abort();
    })
    .await
    .unwrap();
}
