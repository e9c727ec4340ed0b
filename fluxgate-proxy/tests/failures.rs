//! What the proxy answers itself when the upstream fails: `504` when it does not answer within
//! the timeout, `502` when it closes or resets the connection before answering or when nothing
//! listens (with the request given back for a balancer's retry, a small body in memory
//! included); over hyper-util's pooled client and over the proxy's own HTTP/1.1 connections
//! alike.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use fluxgate_balance::RetryableRequest;
use fluxgate_proxy::{Proxy, ProxyBody, ProxyConfig, proxy_client};
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use support::{closed_port, dropping_upstream, hanging_upstream, text, within};
use tower::ServiceExt;

/// Sends a bodiless `GET /` through a proxy to `upstream` with a short timeout, over the
/// proxy's own HTTP/1.1 connections when `own`.
async fn get_over(upstream: SocketAddr, own: bool) -> Response<ProxyBody> {
    let config = ProxyConfig::default()
        .timeout(Duration::from_millis(200))
        .http1_pool(own);
    let url = format!("http://{upstream}").parse().unwrap();
    let proxy = Proxy::new(proxy_client(), url, config);
    let request = Request::get("/").body(Empty::<Bytes>::new()).unwrap();
    within(proxy.oneshot(request)).await.unwrap()
}

/// [`get_over`] both ways: the pooled client's response, then the own connections'.
async fn get(upstream: SocketAddr) -> [Response<ProxyBody>; 2] {
    [
        get_over(upstream, false).await,
        get_over(upstream, true).await,
    ]
}

#[tokio::test]
async fn the_own_connections_504_never_comes_before_the_timeout() {
    // Their deadline is coarse (swept every tenth of the timeout, at least 10 ms): late by up to
    // a tick, never early. On a connection already made, and on a new one.
    let upstream = hanging_upstream().await;
    let config = ProxyConfig::default()
        .timeout(Duration::from_millis(200))
        .http1_pool(true);
    let proxy = Proxy::new(
        proxy_client(),
        format!("http://{upstream}").parse().unwrap(),
        config,
    );
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        let request = Request::get("/").body(Empty::<Bytes>::new()).unwrap();
        let response = within(proxy.clone().oneshot(request)).await.unwrap();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn answers_504_when_the_upstream_hangs() {
    for response in get(hanging_upstream().await).await {
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(response.extensions().get::<RetryableRequest>().is_none());
        let body = text(response).await;
        assert!(body.starts_with("504 Gateway Timeout"), "{body}");
    }
}

#[tokio::test]
async fn answers_502_when_the_upstream_closes_before_answering() {
    for reset in [false, true] {
        for response in get(dropping_upstream(reset).await).await {
            assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "reset: {reset}");
            let given_back = response.extensions().get::<RetryableRequest>().unwrap();
            assert!(given_back.was_sent(), "reset: {reset}");
        }
    }
}

#[tokio::test]
async fn answers_502_when_nothing_listens() {
    for response in get(closed_port().await).await {
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let given_back = response.extensions().get::<RetryableRequest>().unwrap();
        assert!(!given_back.was_sent());
        let body = text(response).await;
        assert!(body.starts_with("502 Bad Gateway"), "{body}");
    }
}

#[tokio::test]
async fn a_whole_body_is_given_back_with_the_502_of_a_refused_connection() {
    let upstream = closed_port().await;
    let config = ProxyConfig::default().http1_pool(true);
    let proxy = Proxy::new(
        proxy_client(),
        format!("http://{upstream}").parse().unwrap(),
        config,
    );
    let request = Request::post("/orders")
        .header("content-length", "9")
        .body(http_body_util::Full::new(Bytes::from_static(
            b"{\"sku\":1}",
        )))
        .unwrap();
    let response = within(proxy.oneshot(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let given_back = response.extensions().get::<RetryableRequest>().unwrap();
    assert!(!given_back.was_sent());
    // As a `ProxyBody` request, its body whole, for a balancer of those to send again.
    let again: Request<ProxyBody> = given_back.take().unwrap();
    assert_eq!(again.uri(), "/orders");
    assert_eq!(again.headers()["content-length"], "9");
    let body = http_body_util::BodyExt::collect(again.into_body()).await;
    assert_eq!(body.unwrap().to_bytes(), "{\"sku\":1}");
}
