//! Forwarding through the proxy: URIs, headers, bodies and bad client input.

mod support;

use std::io::{Read, Write};

use fluxgate_gateway::proxy::ProxyConfig;
use http::{Request, StatusCode};
use support::{client, echo_upstream, echoed, full, proxy_to, text, within};

#[tokio::test]
async fn forwards_get_and_post_with_headers_query_and_prefix() {
    let upstream = echo_upstream().await;
    let base = format!("http://{}/base/", upstream.local_addr());
    let proxy = proxy_to(&base, ProxyConfig::default()).await;
    let client = client();

    let get = Request::get(format!("http://{}/orders?id=7&x=a%20b", proxy.local_addr()))
        .header("x-client-id", "c-42")
        .body(full(""))
        .unwrap();
    let response = within(client.request(get)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-upstream"], "echo");
    let echo = text(response).await;
    assert!(
        echo.starts_with("GET /base/orders?id=7&x=a%20b\n"),
        "{echo}"
    );
    assert_eq!(echoed(&echo, "x-client-id").as_deref(), Some("c-42"));
    assert_eq!(echoed(&echo, "host"), Some(proxy.local_addr().to_string()));
    assert_eq!(echoed(&echo, "x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        echoed(&echo, "x-forwarded-host"),
        Some(proxy.local_addr().to_string())
    );

    let post = Request::post(format!("http://{}/pay", proxy.local_addr()))
        .header("content-type", "application/json")
        .body(full(r#"{"amount":12}"#))
        .unwrap();
    let response = within(client.request(post)).await.unwrap();
    let echo = text(response).await;
    assert!(echo.starts_with("POST /base/pay\n"), "{echo}");
    assert!(echo.ends_with("\n\n{\"amount\":12}"), "{echo}");
    assert_eq!(
        echoed(&echo, "content-type").as_deref(),
        Some("application/json")
    );

    proxy.shutdown().await;
    upstream.shutdown().await;
}

#[tokio::test]
async fn sends_the_upstream_host_when_not_preserving() {
    let upstream = echo_upstream().await;
    let base = format!("http://{}", upstream.local_addr());
    let proxy = proxy_to(&base, ProxyConfig::default().preserve_host(false)).await;
    let request = Request::get(format!("http://{}/", proxy.local_addr()))
        .header("host", "shop.example")
        .body(full(""))
        .unwrap();
    let echo = text(within(client().request(request)).await.unwrap()).await;
    assert_eq!(
        echoed(&echo, "host"),
        Some(upstream.local_addr().to_string())
    );
    assert_eq!(
        echoed(&echo, "x-forwarded-host").as_deref(),
        Some("shop.example")
    );
}

#[tokio::test]
async fn appends_the_peer_to_x_forwarded_for() {
    let upstream = echo_upstream().await;
    let proxy = proxy_to(
        &format!("http://{}", upstream.local_addr()),
        ProxyConfig::default(),
    )
    .await;
    let url = format!("http://{}/", proxy.local_addr());

    let fresh = Request::get(&url).body(full("")).unwrap();
    let echo = text(within(client().request(fresh)).await.unwrap()).await;
    assert_eq!(
        echoed(&echo, "x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );

    let chained = Request::get(&url)
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .body(full(""))
        .unwrap();
    let echo = text(within(client().request(chained)).await.unwrap()).await;
    assert_eq!(
        echoed(&echo, "x-forwarded-for").as_deref(),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(echoed(&echo, "x-forwarded-proto").as_deref(), Some("https"));
}

#[tokio::test]
async fn removes_hop_by_hop_headers_both_ways() {
    let upstream = support::serve(tower::service_fn(
        |request: http::Request<fluxgate_gateway::server::RequestBody>| async move {
            let mut seen: Vec<String> = request.headers().keys().map(ToString::to_string).collect();
            seen.sort();
            let mut response = http::Response::new(full(seen.join(",")));
            let headers = response.headers_mut();
            headers.insert("keep-alive", "timeout=5".parse().unwrap());
            headers.insert("proxy-authenticate", "Basic".parse().unwrap());
            headers.insert("x-up-secret", "1".parse().unwrap());
            headers.insert("connection", "x-up-secret".parse().unwrap());
            headers.insert("x-up-kept", "1".parse().unwrap());
            Ok::<_, std::convert::Infallible>(response)
        },
    ))
    .await;
    let proxy = proxy_to(
        &format!("http://{}", upstream.local_addr()),
        ProxyConfig::default(),
    )
    .await;

    // A raw request, so that every hop-by-hop header reaches the proxy as written.
    let addr = proxy.local_addr();
    let raw = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(support::LIMIT)).unwrap();
        stream
            .write_all(
                b"POST /h HTTP/1.1\r\nHost: gw.test\r\nConnection: close, X-Secret\r\n\
                  X-Secret: s\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n\
                  TE: trailers\r\nTrailer: x-t\r\nUpgrade: websocket\r\n\
                  Proxy-Authorization: Basic eA==\r\nTransfer-Encoding: chunked\r\n\
                  X-Kept: k\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            )
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    });
    let answer = within(raw).await.unwrap().to_ascii_lowercase();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // `transfer-encoding` is the proxy's own framing of the streamed body, not the client's.
    assert_eq!(
        body,
        "host,transfer-encoding,x-forwarded-for,x-forwarded-host,x-forwarded-proto,x-kept"
    );
    assert!(head.contains("x-up-kept: 1"), "{head}");
    for gone in ["keep-alive", "proxy-authenticate", "x-up-secret"] {
        assert!(!head.contains(gone), "{gone} in {head}");
    }
}

#[tokio::test]
async fn refuses_what_it_cannot_forward_with_400() {
    let upstream = echo_upstream().await;
    let proxy = proxy_to(
        &format!("http://{}", upstream.local_addr()),
        ProxyConfig::default(),
    )
    .await;
    let request = Request::get(format!("http://{}/", proxy.local_addr()))
        .header("host", "bad host")
        .body(full(""))
        .unwrap();
    let response = within(client().request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(text(response).await.contains("Host"));
}
