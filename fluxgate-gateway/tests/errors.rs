//! What the proxy answers when the upstream fails: 502 and 504, on the own HTTP/1.1 pool (the
//! gateway's default) and on hyper-util's pooled client (the tests named `…_on_hypers_client`).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use fluxgate_gateway::proxy::ProxyConfig;
use fluxgate_gateway::server::ServerHandle;
use http::{Request, StatusCode};
use support::{client, full, proxy_to, text, within};
use tokio::net::TcpListener;

/// A proxy to `upstream` with `config`, on the own HTTP/1.1 pool when `pool`.
async fn proxy(upstream: SocketAddr, config: ProxyConfig, pool: bool) -> ServerHandle {
    proxy_to(&format!("http://{upstream}"), config.http1_pool(pool)).await
}

async fn get_through(proxy: SocketAddr) -> (StatusCode, String) {
    let request = Request::get(format!("http://{proxy}/x"))
        .body(full(""))
        .unwrap();
    let response = within(client().request(request)).await.unwrap();
    (response.status(), text(response).await)
}

#[tokio::test]
async fn refused_connection_is_502() {
    refused_connection(true).await;
}

#[tokio::test]
async fn refused_connection_is_502_on_hypers_client() {
    refused_connection(false).await;
}

async fn refused_connection(pool: bool) {
    // A port that was free a moment ago: connecting to it is refused.
    let listener = TcpListener::bind(support::loopback()).await.unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let proxy = proxy(closed, ProxyConfig::default(), pool).await;
    let (status, body) = get_through(proxy.local_addr()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.starts_with("502 Bad Gateway"), "{body}");
}

/// An upstream that accepts connections and closes them at once, with a reset when `reset`.
async fn closing_upstream(reset: bool) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind(support::loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            if reset {
                // A zero linger time makes the close send RST instead of FIN.
                stream.set_zero_linger().unwrap();
            }
            drop(stream);
        }
    });
    (addr, task)
}

#[tokio::test]
async fn upstream_closing_or_resetting_without_answer_is_502() {
    closing_without_answer(true).await;
}

#[tokio::test]
async fn upstream_closing_or_resetting_without_answer_is_502_on_hypers_client() {
    closing_without_answer(false).await;
}

async fn closing_without_answer(pool: bool) {
    for reset in [false, true] {
        let (upstream, task) = closing_upstream(reset).await;
        let proxy = proxy(upstream, ProxyConfig::default(), pool).await;
        let (status, body) = get_through(proxy.local_addr()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "reset: {reset}");
        assert!(body.starts_with("502 Bad Gateway"), "{body}");
        proxy.shutdown().await;
        task.abort();
    }
}

#[tokio::test]
async fn upstream_that_never_answers_is_504_after_the_timeout() {
    never_answers(true).await;
}

#[tokio::test]
async fn upstream_that_never_answers_is_504_after_the_timeout_on_hypers_client() {
    never_answers(false).await;
}

async fn never_answers(pool: bool) {
    let listener = TcpListener::bind(support::loopback()).await.unwrap();
    let upstream = listener.local_addr().unwrap();
    // Accepts and holds the connections open without ever reading or answering.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            held.push(listener.accept().await.unwrap().0);
        }
    });
    let config = ProxyConfig::default().timeout(Duration::from_millis(200));
    let proxy = proxy(upstream, config, pool).await;
    let started = tokio::time::Instant::now();
    let (status, body) = get_through(proxy.local_addr()).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(body.starts_with("504 Gateway Timeout"), "{body}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    silent.abort();
}
