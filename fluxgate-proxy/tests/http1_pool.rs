//! The proxy's own HTTP/1.1 connections (`ProxyConfig::http1_pool`) against a real hyper
//! upstream that counts the connections it accepts: kept alive and reused, never reused after
//! the upstream closed them or after a body that was not read to its end, request bodies
//! streamed up, concurrent requests on connections of their own.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fluxgate_proxy::{Proxy, ProxyBody, ProxyConfig, proxy_client};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use support::{text, within};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// An upstream that counts its connections. `GET /big` answers 1 MiB; `POST` echoes the body;
/// anything else answers `ok <path>`. With `idle_close`, a connection that sends no request for
/// that long is closed (hyper's header read timeout), as upstreams close idle keep-alives.
async fn upstream(idle_close: Option<Duration>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let service = service_fn(|request: Request<Incoming>| async move {
                let body = if request.uri().path() == "/big" {
                    Bytes::from(vec![b'x'; 1 << 20])
                } else if request.method() == http::Method::POST {
                    request.into_body().collect().await?.to_bytes()
                } else {
                    Bytes::from(format!("ok {}", request.uri().path()))
                };
                Ok::<_, hyper::Error>(Response::new(Full::new(body)))
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            if let Some(idle) = idle_close {
                builder.timer(TokioTimer::new()).header_read_timeout(idle);
            }
            tokio::spawn(async move {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, accepted)
}

fn proxy(addr: SocketAddr) -> Proxy {
    let url = format!("http://{addr}").parse().unwrap();
    Proxy::new(proxy_client(), url, ProxyConfig::default().http1_pool(true))
}

async fn send(proxy: &Proxy, request: Request<Full<Bytes>>) -> Response<ProxyBody> {
    let response: Result<_, Infallible> = within(proxy.clone().oneshot(request)).await;
    response.unwrap()
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::default()).unwrap()
}

#[tokio::test]
async fn sequential_requests_share_one_connection() {
    let (addr, accepted) = upstream(None).await;
    let proxy = proxy(addr);
    for i in 0..20 {
        let response = send(&proxy, get(&format!("/r{i}"))).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, format!("ok /r{i}"));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_used() {
    let (addr, accepted) = upstream(Some(Duration::from_millis(100))).await;
    let proxy = proxy(addr);
    for round in 0..3 {
        let response = send(&proxy, get("/")).await;
        assert_eq!(response.status(), StatusCode::OK, "round {round}");
        assert_eq!(text(response).await, "ok /");
        // The upstream closes the idle connection meanwhile.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_body_dropped_before_its_end_closes_its_connection() {
    let (addr, accepted) = upstream(None).await;
    let proxy = proxy(addr);
    let mut response = send(&proxy, get("/big")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let first = within(response.body_mut().frame()).await.unwrap().unwrap();
    assert!(first.is_data());
    drop(response);
    // The next request gets a connection of its own and its own answer, not the rest of 1 MiB.
    let response = send(&proxy, get("/after")).await;
    assert_eq!(text(response).await, "ok /after");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    // A body read to its end gives its connection back.
    let response = send(&proxy, get("/big")).await;
    assert_eq!(text(response).await.len(), 1 << 20);
    let response = send(&proxy, get("/last")).await;
    assert_eq!(text(response).await, "ok /last");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_request_body_streams_upstream() {
    let (addr, _) = upstream(None).await;
    let proxy = proxy(addr);
    let body = Full::new(Bytes::from_static(b"hello upstream"));
    let request = Request::post("/echo").body(body).unwrap();
    let response = send(&proxy, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "hello upstream");
}

#[tokio::test]
async fn concurrent_requests_open_connections_that_are_then_reused() {
    let (addr, accepted) = upstream(None).await;
    let proxy = proxy(addr);
    let concurrent = (0..8).map(|i| {
        let proxy = proxy.clone();
        tokio::spawn(async move { text(send(&proxy, get(&format!("/c{i}"))).await).await })
    });
    for (i, task) in concurrent.enumerate() {
        assert_eq!(within(task).await.unwrap(), format!("ok /c{i}"));
    }
    let opened = accepted.load(Ordering::SeqCst);
    assert!((1..=8).contains(&opened), "{opened}");
    for i in 0..20 {
        let response = send(&proxy, get(&format!("/s{i}"))).await;
        assert_eq!(text(response).await, format!("ok /s{i}"));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), opened);
}
