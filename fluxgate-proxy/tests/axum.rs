//! The forwarding service from axum: a `Router` whose fallback is a `Balance` over two
//! `Proxy`s, served by plain `axum::serve` with connect info, in front of two real upstreams.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use bytes::Bytes;
use fluxgate_balance::{Balance, FixedEndpoints, RespondUnavailable, Retry, Weighted};
use fluxgate_proxy::{BoxError, Proxy, ProxyConfig, proxy_client};
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::{closed_port, echo_upstream, echoed, text, within};
use tower::ServiceBuilder;

type Balanced = Balance<FixedEndpoints<String, Weighted<Proxy>>, Request<Body>>;

/// An axum gateway balancing over one proxy per upstream (retrying a request an upstream
/// refused on another); its address.
async fn gateway(upstreams: &[SocketAddr], config: &ProxyConfig) -> SocketAddr {
    let client = proxy_client();
    let endpoints = upstreams.iter().map(|addr| {
        let url = format!("http://{addr}");
        let proxy = Proxy::new(client.clone(), url.parse().unwrap(), config.clone());
        (url, Weighted::new(proxy, 1))
    });
    let balance: Balanced = Balance::new(Default::default(), endpoints);
    let handle = balance.handle();
    let upstreams = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|error: BoxError| async move {
            (StatusCode::BAD_GATEWAY, error.to_string())
        }))
        .service(Retry::new(RespondUnavailable::new(balance), &handle));
    let app = Router::new().fallback_service(upstreams);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    );
    tokio::spawn(async move { serve.await });
    addr
}

/// A request to the gateway carrying hop-by-hop headers the upstream must not see.
fn request(gateway: SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://{gateway}{path}"))
        .header("connection", "x-client-secret")
        .header("x-client-secret", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic dXNlcjpwYXNz")
        .header("x-kept", "yes")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn balances_over_proxies_behind_axum() {
    let a = echo_upstream("a").await;
    let b = echo_upstream("b").await;
    let config = ProxyConfig::default().forwarded(true);
    let gateway = gateway(&[a, b], &config).await;
    // One keep-alive client: the requests share its pooled connection to the gateway.
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    let mut seen = BTreeSet::new();
    for n in 0..8 {
        let response = within(client.request(request(gateway, &format!("/orders/{n}"))))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        seen.insert(headers["x-upstream"].to_str().unwrap().to_owned());
        for hop in [
            "connection",
            "keep-alive",
            "proxy-authenticate",
            "x-upstream-secret",
        ] {
            assert!(!headers.contains_key(hop), "the client got {hop}");
        }
        let echo = text(response).await;
        assert!(echo.starts_with(&format!("GET /orders/{n}\n")), "{echo}");
        assert_eq!(
            echoed(&echo, "x-forwarded-for").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(echoed(&echo, "x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(echoed(&echo, "host"), Some(gateway.to_string()));
        assert_eq!(
            echoed(&echo, "forwarded"),
            Some(format!("for=127.0.0.1;proto=http;host=\"{gateway}\""))
        );
        assert_eq!(echoed(&echo, "x-kept").as_deref(), Some("yes"));
        for hop in [
            "connection",
            "keep-alive",
            "proxy-authorization",
            "x-client-secret",
        ] {
            assert_eq!(echoed(&echo, hop), None, "the upstream got {hop}: {echo}");
        }
    }
    let both: BTreeSet<String> = ["a".into(), "b".into()].into();
    assert_eq!(seen, both);
}

#[tokio::test]
async fn rewrites_host_without_forwarded_by_default() {
    let upstream = echo_upstream("only").await;
    let config = ProxyConfig::default().preserve_host(false);
    let gateway = gateway(&[upstream], &config).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = request(gateway, "/");
    request
        .headers_mut()
        .insert("x-forwarded-for", "192.0.2.1".parse().unwrap());
    let response = within(client.request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echo = text(response).await;
    assert_eq!(echoed(&echo, "host"), Some(upstream.to_string()));
    assert_eq!(echoed(&echo, "x-forwarded-host"), Some(gateway.to_string()));
    assert_eq!(
        echoed(&echo, "x-forwarded-for").as_deref(),
        Some("192.0.2.1, 127.0.0.1")
    );
    assert_eq!(echoed(&echo, "forwarded"), None);
}

#[tokio::test]
async fn retries_a_refused_request_on_the_other_endpoint() {
    let dead = closed_port().await;
    let live = echo_upstream("live").await;
    let gateway = gateway(&[dead, live], &ProxyConfig::default()).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    for n in 0..4 {
        let response = within(client.request(request(gateway, &format!("/{n}"))))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-upstream"], "live");
    }
}
