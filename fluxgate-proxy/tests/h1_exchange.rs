//! The proxy's own HTTP/1.1 exchange (requests without a body or with a small one in memory,
//! `ProxyConfig::http1_pool`)
//! against a scripted upstream on a real socket, which answers each request by its path with
//! bytes written by hand: every framing of RFC 9112 section 6.3, interim heads, connections
//! kept or not, and the malformed answers that must become a `502` or a failed body.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fluxgate_balance::RetryableRequest;
use fluxgate_proxy::{Http1Error, Proxy, ProxyBody, ProxyConfig, proxy_client};
use http::{Method, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::{BodyExt, Empty};
use support::{text, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The answer to a request for `path`, and whether the upstream closes the connection after it.
fn answer(path: &str) -> (Vec<u8>, bool) {
    let ok = |extra: &str, body: &str| {
        let head = format!(
            "HTTP/1.1 200 OK\r\n{extra}Content-Length: {}\r\n\r\n",
            body.len()
        );
        (format!("{head}{body}").into_bytes(), false)
    };
    let raw = |text: &str, close: bool| (text.as_bytes().to_vec(), close);
    match path {
        "/chunked" => raw(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-checksum: 42\r\n\r\n",
            false,
        ),
        "/chunked-and-length" => raw(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
            false,
        ),
        "/until-close" => raw("HTTP/1.1 200 OK\r\n\r\nall of it, until the end", true),
        "/no-content" => raw("HTTP/1.1 204 No Content\r\n\r\n", false),
        "/not-modified" => raw(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
            false,
        ),
        "/hints" => raw(
            "HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
            false,
        ),
        "/close" => ok("Connection: close\r\n", "closing"),
        "/http10" => raw("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold", false),
        "/stray" => raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", false),
        "/cut" => raw("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true),
        "/conflicting" => raw(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
            false,
        ),
        "/garbage" => raw("SSH-2.0-OpenSSH\r\n\r\n", false),
        "/switching" => raw(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            false,
        ),
        "/huge-head" => {
            let filler = format!("X-Filler: {}\r\n", "a".repeat(1000));
            let head = format!(
                "HTTP/1.1 200 OK\r\n{}Content-Length: 0\r\n\r\n",
                filler.repeat(70)
            );
            (head.into_bytes(), false)
        }
        "/big" => ok("", &"x".repeat(300_000)),
        other => ok("", &format!("ok {other}")),
    }
}

/// The `Content-Length` of a request head (0 without one).
fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, value)| value.trim().parse().unwrap())
}

/// The scripted upstream: the connections it accepted, and the request heads and bodies it read.
struct Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Upstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (count, seen, read) = (
            Arc::clone(&accepted),
            Arc::clone(&heads),
            Arc::clone(&bodies),
        );
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (seen, bodies) = (Arc::clone(&seen), Arc::clone(&read));
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            let mut chunk = [0; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        // A `Content-Length` body is read (and answered as the path says).
                        let length = content_length(&head);
                        while buf.len() < length {
                            let mut chunk = [0; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body: Vec<u8> = buf.drain(..length).collect();
                        bodies.lock().unwrap().push(body);
                        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                        let head_request = head.starts_with("HEAD ");
                        seen.lock().unwrap().push(head);
                        let (mut bytes, close) = answer(&path);
                        if head_request {
                            // The head of the answer only, as a server answers HEAD.
                            let end = bytes.windows(4).position(|w| w == b"\r\n\r\n");
                            bytes.truncate(end.map_or(bytes.len(), |end| end + 4));
                        }
                        if stream.write_all(&bytes).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            accepted,
            heads,
            bodies,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn proxy(&self) -> Proxy {
        let url = format!("http://{}", self.addr).parse().unwrap();
        Proxy::new(proxy_client(), url, ProxyConfig::default().http1_pool(true))
    }
}

async fn send(proxy: &Proxy, method: Method, path: &str) -> Response<ProxyBody> {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Empty::<Bytes>::new())
        .unwrap();
    within(proxy.clone().oneshot(request)).await.unwrap()
}

async fn get(proxy: &Proxy, path: &str) -> Response<ProxyBody> {
    send(proxy, Method::GET, path).await
}

#[tokio::test]
async fn the_request_goes_up_in_origin_form_on_one_kept_connection() {
    let upstream = Upstream::start().await;
    let proxy = upstream.proxy();
    for i in 0..5 {
        let response = get(&proxy, &format!("/item?id={i}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, format!("ok /item?id={i}"));
    }
    assert_eq!(upstream.accepted(), 1);
    let heads = upstream.heads.lock().unwrap().clone();
    assert!(
        heads[0].starts_with("GET /item?id=0 HTTP/1.1\r\n"),
        "{}",
        heads[0]
    );
    assert!(
        heads[0].contains(&format!("\r\nhost: {}", upstream.addr)),
        "{}",
        heads[0]
    );
}

/// A body fed through a channel, with a known size (an `Incoming` with a `Content-Length`).
struct Sized(http_body_util::Channel<Bytes>, u64);

impl http_body::Body for Sized {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::pin::Pin::new(&mut self.0).poll_frame(cx)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.1)
    }
}

#[tokio::test]
async fn a_small_body_in_memory_goes_up_with_its_head_on_the_kept_connection() {
    let upstream = Upstream::start().await;
    let proxy = upstream.proxy();
    assert_eq!(text(get(&proxy, "/before").await).await, "ok /before");
    let post = |body: &'static str| {
        Request::post("/orders")
            .header("content-length", body.len())
            .body(http_body_util::Full::new(Bytes::from_static(
                body.as_bytes(),
            )))
            .unwrap()
    };
    for body in ["{\"sku\":42}", "{\"sku\":43}"] {
        let response = within(proxy.clone().oneshot(post(body))).await.unwrap();
        assert_eq!(text(response).await, "ok /orders");
    }
    assert_eq!(text(get(&proxy, "/after").await).await, "ok /after");
    // All four on the own exchange's one connection: hyper's client would have opened another.
    assert_eq!(upstream.accepted(), 1);
    let bodies = upstream.bodies.lock().unwrap().clone();
    assert_eq!(bodies[1], b"{\"sku\":42}");
    assert_eq!(bodies[2], b"{\"sku\":43}");
    let heads = upstream.heads.lock().unwrap().clone();
    assert!(
        heads[1].starts_with("POST /orders HTTP/1.1\r\n"),
        "{}",
        heads[1]
    );
    assert!(heads[1].contains("\r\ncontent-length: 10"), "{}", heads[1]);
}

#[tokio::test]
async fn a_body_still_on_its_way_streams_through_hypers_client() {
    let upstream = Upstream::start().await;
    let proxy = upstream.proxy();
    assert_eq!(text(get(&proxy, "/before").await).await, "ok /before");
    // Its length is known and small, but nothing of it is there yet: hyper's client streams it.
    let (mut tx, body) = http_body_util::Channel::new(1);
    let request = Request::post("/upload")
        .header("content-length", "11")
        .body(Sized(body, 11))
        .unwrap();
    let call = tokio::spawn(proxy.clone().oneshot(request));
    tx.send_data(Bytes::from_static(b"hello ")).await.unwrap();
    tx.send_data(Bytes::from_static(b"world")).await.unwrap();
    drop(tx);
    let response = within(call).await.unwrap().unwrap();
    assert_eq!(text(response).await, "ok /upload");
    assert_eq!(upstream.bodies.lock().unwrap()[1], b"hello world");
    assert_eq!(
        upstream.accepted(),
        2,
        "the streamed body took the own connection"
    );
}

#[tokio::test]
async fn a_chunked_body_comes_through_with_its_trailers_and_keeps_the_connection() {
    let upstream = Upstream::start().await;
    let proxy = upstream.proxy();
    let response = get(&proxy, "/chunked").await;
    assert_eq!(response.status(), StatusCode::OK);
    // Transfer-Encoding is hop-by-hop: the client's server frames the body its own way.
    assert!(response.headers().get("transfer-encoding").is_none());
    let collected = within(response.into_body().collect()).await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-checksum"], "42");
    assert_eq!(collected.to_bytes(), "hello, world");
    assert_eq!(text(get(&proxy, "/after").await).await, "ok /after");
    assert_eq!(upstream.accepted(), 1);
}

#[tokio::test]
async fn bodies_without_a_length_or_with_both_framings_do_not_keep_the_connection() {
    let upstream = Upstream::start().await;
    let proxy = upstream.proxy();
    assert_eq!(
        text(get(&proxy, "/until-close").await).await,
        "all of it, until the end"
    );
    assert_eq!(text(get(&proxy, "/chunked-and-length").await).await, "hi");
    assert_eq!(text(get(&proxy, "/close").await).await, "closing");
    assert_eq!(text(get(&proxy, "/http10").await).await, "old");
    assert_eq!(text(get(&proxy, "/last").await).await, "ok /last");
    assert_eq!(upstream.accepted(), 5);
}

#[tokio::test]
async fn responses_without_a_body_keep_the_connection() {
    let upstream = Upstream::start().await;
    let proxy = upstream.proxy();
    let response = send(&proxy, Method::HEAD, "/sized").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.body().is_end_stream());
    assert_eq!(text(response).await, "");
    for path in ["/no-content", "/not-modified"] {
        let response = get(&proxy, path).await;
        assert!(response.body().is_end_stream(), "{path}");
        assert_eq!(text(response).await, "", "{path}");
    }
    let response = get(&proxy, "/hints").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("link").is_none());
    assert_eq!(text(response).await, "final");
    assert_eq!(text(get(&proxy, "/last").await).await, "ok /last");
    assert_eq!(upstream.accepted(), 1);
}

#[tokio::test]
async fn a_large_body_is_read_across_many_reads() {
    let upstream = Upstream::start().await;
    let proxy = upstream.proxy();
    let response = get(&proxy, "/big").await;
    assert_eq!(response.body().size_hint().exact(), Some(300_000));
    assert_eq!(text(response).await.len(), 300_000);
    assert_eq!(text(get(&proxy, "/next").await).await, "ok /next");
    assert_eq!(upstream.accepted(), 1);
}

#[tokio::test]
async fn bytes_after_a_response_retire_its_connection() {
    let upstream = Upstream::start().await;
    let proxy = upstream.proxy();
    assert_eq!(text(get(&proxy, "/stray").await).await, "ok");
    // The stray bytes are never read as the next response.
    assert_eq!(text(get(&proxy, "/next").await).await, "ok /next");
    assert_eq!(upstream.accepted(), 2);
}

#[tokio::test]
async fn a_body_cut_short_ends_with_an_error() {
    let upstream = Upstream::start().await;
    let proxy = upstream.proxy();
    let response = get(&proxy, "/cut").await;
    assert_eq!(response.status(), StatusCode::OK);
    let error = within(response.into_body().collect()).await.unwrap_err();
    assert!(
        matches!(error.downcast_ref(), Some(Http1Error::ClosedInBody)),
        "{error}"
    );
    assert_eq!(text(get(&proxy, "/next").await).await, "ok /next");
}

#[tokio::test]
async fn a_malformed_or_oversized_head_is_a_502_with_the_request_given_back() {
    let upstream = Upstream::start().await;
    let proxy = upstream.proxy();
    for path in ["/conflicting", "/garbage", "/switching", "/huge-head"] {
        let response = get(&proxy, path).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{path}");
        let given_back = response.extensions().get::<RetryableRequest>().unwrap();
        assert!(given_back.was_sent(), "{path}");
        let body = text(response).await;
        assert!(body.starts_with("502 Bad Gateway"), "{path}: {body}");
    }
    // Each failed connection was closed; the next request is served on a new one.
    assert_eq!(text(get(&proxy, "/next").await).await, "ok /next");
    assert_eq!(upstream.accepted(), 5);
}
