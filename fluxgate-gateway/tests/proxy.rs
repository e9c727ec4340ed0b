//! Forwarding through the proxy: URIs, headers, bodies and bad client input, on the own HTTP/1.1
//! pool (the gateway's default) and on hyper-util's pooled client (the tests named
//! `…_on_hypers_client`).

mod support;

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::SocketAddr;

use fluxgate_gateway::proxy::{ProxyBody, ProxyConfig};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::{client, echo_upstream, echoed, full, proxy_to, text, within};
use tokio::net::TcpListener;

/// The default proxy config, on the own HTTP/1.1 pool when `pool`, else on hyper-util's client.
fn config(pool: bool) -> ProxyConfig {
    ProxyConfig::default().http1_pool(pool)
}

#[tokio::test]
async fn forwards_get_and_post_with_headers_query_and_prefix() {
    forwards_get_and_post(true).await;
}

#[tokio::test]
async fn forwards_get_and_post_with_headers_query_and_prefix_on_hypers_client() {
    forwards_get_and_post(false).await;
}

async fn forwards_get_and_post(pool: bool) {
    let upstream = echo_upstream().await;
    let base = format!("http://{}/base/", upstream.local_addr());
    let proxy = proxy_to(&base, config(pool)).await;
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
    upstream_host(true).await;
}

#[tokio::test]
async fn sends_the_upstream_host_when_not_preserving_on_hypers_client() {
    upstream_host(false).await;
}

async fn upstream_host(pool: bool) {
    let upstream = echo_upstream().await;
    let base = format!("http://{}", upstream.local_addr());
    let proxy = proxy_to(&base, config(pool).preserve_host(false)).await;
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
    x_forwarded_for(true).await;
}

#[tokio::test]
async fn appends_the_peer_to_x_forwarded_for_on_hypers_client() {
    x_forwarded_for(false).await;
}

async fn x_forwarded_for(pool: bool) {
    let upstream = echo_upstream().await;
    let proxy = proxy_to(&format!("http://{}", upstream.local_addr()), config(pool)).await;
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
    hop_by_hop(true).await;
}

#[tokio::test]
async fn removes_hop_by_hop_headers_both_ways_on_hypers_client() {
    hop_by_hop(false).await;
}

/// The hop-by-hop headers of the raw client requests of [`hop_by_hop`], `Host` and one
/// end-to-end header.
const HOPS: &str = "Host: gw.test\r\nConnection: close, X-Secret\r\nX-Secret: s\r\n\
    Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: x-t\r\n\
    Upgrade: websocket\r\nProxy-Authorization: Basic eA==\r\nX-Kept: k\r\n";

/// Answers with the names of the request's headers, sorted, and hop-by-hop headers of its own.
async fn list_headers(request: Request<Incoming>) -> Result<Response<ProxyBody>, Infallible> {
    let mut seen: Vec<String> = request.headers().keys().map(ToString::to_string).collect();
    seen.sort();
    let mut response = Response::new(full(seen.join(",")));
    let headers = response.headers_mut();
    headers.insert("keep-alive", "timeout=5".parse().unwrap());
    headers.insert("proxy-authenticate", "Basic".parse().unwrap());
    headers.insert("x-up-secret", "1".parse().unwrap());
    headers.insert("connection", "x-up-secret".parse().unwrap());
    headers.insert("x-up-kept", "1".parse().unwrap());
    Ok(response)
}

/// Sends `request` on a new connection to `addr`; gives the answer, lower-cased, once the
/// server closes.
async fn raw_exchange(addr: SocketAddr, request: String) -> String {
    let raw = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(support::LIMIT)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    });
    within(raw).await.unwrap().to_ascii_lowercase()
}

async fn hop_by_hop(pool: bool) {
    // hyper's server writes the `Connection` a service sets (the gateway's own server path
    // leaves it out of its answers to requests without a body).
    let listener = TcpListener::bind(support::loopback()).await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(list_headers));
            tokio::spawn(connection);
        }
    });
    let proxy = proxy_to(&format!("http://{upstream}"), config(pool)).await;

    // Raw requests, so that every hop-by-hop header reaches the proxy as written: a chunked
    // POST, whose body streams upstream (over hyper's HTTP/1 client on the own pool too), and a
    // GET, which the own pool exchanges itself. `transfer-encoding` is the proxy's own framing
    // of the streamed body, not the client's.
    let post = format!(
        "POST /h HTTP/1.1\r\n{HOPS}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    );
    let get = format!("GET /h HTTP/1.1\r\n{HOPS}\r\n");
    for (request, framing) in [(post, "transfer-encoding,"), (get, "")] {
        let answer = raw_exchange(proxy.local_addr(), request).await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let sent =
            format!("host,{framing}x-forwarded-for,x-forwarded-host,x-forwarded-proto,x-kept");
        assert_eq!(body, sent);
        assert!(head.contains("x-up-kept: 1"), "{head}");
        for gone in ["keep-alive", "proxy-authenticate", "x-up-secret"] {
            assert!(!head.contains(gone), "{gone} in {head}");
        }
    }
}

/// The proxy refuses before choosing a connection: the own pool's run is enough.
#[tokio::test]
async fn refuses_what_it_cannot_forward_with_400() {
    let upstream = echo_upstream().await;
    let proxy = proxy_to(&format!("http://{}", upstream.local_addr()), config(true)).await;
    let request = Request::get(format!("http://{}/", proxy.local_addr()))
        .header("host", "bad host")
        .body(full(""))
        .unwrap();
    let response = within(client().request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(text(response).await.contains("Host"));
}
