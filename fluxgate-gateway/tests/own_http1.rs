//! The server's own HTTP/1.1 path, spoken to by a raw client on a real socket: keep-alive and
//! pipelining, HTTP/1.0, `HEAD`, small request bodies that came whole, chunked responses with
//! trailers, bodies that do not match their length, the hand-over to hyper (a chunked, large or
//! late body, a malformed or oversized head, h2c), the header-read timeout and the drain.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use fluxgate_core::key::PeerAddr;
use fluxgate_gateway::proxy::ProxyBody;
use fluxgate_gateway::server::{RequestBody, ServerConfig, ServerHandle, spawn};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use support::{full, loopback, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response as read off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        (self.headers.iter())
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// A client that reads responses off one connection.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(server: &ServerHandle) -> Self {
        let stream = within(TcpStream::connect(server.local_addr()))
            .await
            .unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads more; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0; 16 * 1024];
        let n = within(self.stream.read(&mut chunk)).await.unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Whether the server closed the connection (nothing more comes).
    async fn closed(&mut self) -> bool {
        !self.fill().await && self.buf.is_empty()
    }

    /// Reads one response to a request; `head`: the request was a `HEAD`.
    async fn response(&mut self, head: bool) -> Raw {
        let (status, headers, len) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut slots);
            if let httparse::Status::Complete(len) = parsed.parse(&self.buf).unwrap() {
                let headers = (parsed.headers.iter())
                    .map(|h| {
                        let value = String::from_utf8(h.value.to_vec()).unwrap();
                        (h.name.to_ascii_lowercase(), value)
                    })
                    .collect::<Vec<_>>();
                break (parsed.code.unwrap(), headers, len);
            }
            assert!(self.fill().await, "closed before a response head");
        };
        self.buf.drain(..len);
        let mut raw = Raw {
            status,
            headers,
            body: Vec::new(),
            trailers: Vec::new(),
        };
        if head || status == 204 || status == 304 {
            return raw;
        }
        if let Some(length) = raw.header("content-length") {
            let length: usize = length.parse().unwrap();
            while self.buf.len() < length {
                assert!(self.fill().await, "closed inside a body");
            }
            raw.body = self.buf.drain(..length).collect();
        } else if raw.header("transfer-encoding") == Some("chunked") {
            self.chunked(&mut raw).await;
        } else {
            while self.fill().await {}
            raw.body = std::mem::take(&mut self.buf);
        }
        raw
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8(self.buf[..end].to_vec()).unwrap();
                self.buf.drain(..end + 2);
                return line;
            }
            assert!(self.fill().await, "closed inside a chunked body");
        }
    }

    async fn chunked(&mut self, raw: &mut Raw) {
        loop {
            let size = usize::from_str_radix(&self.line().await, 16).unwrap();
            if size == 0 {
                break;
            }
            while self.buf.len() < size + 2 {
                assert!(self.fill().await, "closed inside a chunk");
            }
            raw.body.extend(self.buf.drain(..size));
            assert_eq!(self.buf.drain(..2).collect::<Vec<_>>(), b"\r\n");
        }
        loop {
            let line = self.line().await;
            if line.is_empty() {
                return;
            }
            let (name, value) = line.split_once(": ").unwrap();
            raw.trailers.push((name.to_owned(), value.to_owned()));
        }
    }
}

/// A body that sends `chunks` as separate frames, then `trailers`, with no length known.
fn streamed(chunks: &[&'static str], trailers: Option<HeaderMap>) -> ProxyBody {
    let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = (chunks.iter())
        .map(|chunk| Ok(Frame::data(Bytes::from_static(chunk.as_bytes()))))
        .collect();
    frames.extend(trailers.map(|t| Ok(Frame::trailers(t))));
    StreamBody::new(futures::stream::iter(frames))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A server whose service answers by the path:
/// - `/echo`: `METHOD PATH VERSION PEER BODY-LENGTH`;
/// - `/stream`: three chunks with no length, and a trailer;
/// - `/long`: a body longer than its `Content-Length`;
/// - `/short`: a body shorter than its `Content-Length`;
/// - `/slow`: `done` after 300 ms.
async fn server(config: ServerConfig) -> ServerHandle {
    let service = tower::service_fn(|request: Request<RequestBody>| async move {
        let path = request.uri().path().to_owned();
        let response = match path.as_str() {
            "/stream" => {
                let mut trailers = HeaderMap::new();
                trailers.insert("x-checksum", "abc".parse().unwrap());
                Response::new(streamed(&["one ", "two ", "three"], Some(trailers)))
            }
            "/long" | "/short" => {
                let mut response = Response::new(streamed(&["0123456789"], None));
                let length = if path == "/long" { "4" } else { "20" };
                response
                    .headers_mut()
                    .insert("content-length", length.parse().unwrap());
                response
            }
            "/hop" | "/hop-close" => {
                let mut response = Response::new(full("hop"));
                let connection = if path == "/hop" {
                    "keep-alive, x-trace"
                } else {
                    "close,X-Trace , x-span"
                };
                let headers = response.headers_mut();
                headers.insert("connection", connection.parse().unwrap());
                headers.insert("x-trace", "1".parse().unwrap());
                response
            }
            "/slow" => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Response::new(full("done"))
            }
            _ => {
                let peer = request.extensions().get::<PeerAddr>().map(|p| p.0.ip());
                let line = format!(
                    "{} {} {:?} {}",
                    request.method(),
                    request.uri(),
                    request.version(),
                    peer.map(|ip| ip.to_string()).unwrap_or_default()
                );
                let body = request.into_body().collect().await.unwrap().to_bytes();
                Response::new(full(format!("{line} {}", body.len())))
            }
        };
        Ok::<_, Infallible>(response)
    });
    spawn(loopback(), service, config).await.unwrap()
}

#[tokio::test]
async fn keep_alive_and_pipelined_requests_on_one_connection() {
    let server = server(ServerConfig::default()).await;
    let mut client = Client::connect(&server).await;
    for i in 0..3 {
        client
            .send(format!("GET /echo?n={i} HTTP/1.1\r\nhost: a\r\n\r\n").as_bytes())
            .await;
        let response = client.response(false).await;
        assert_eq!(response.status, 200);
        assert_eq!(
            response.text(),
            format!("GET /echo?n={i} HTTP/1.1 127.0.0.1 0")
        );
        assert!(response.header("date").is_some_and(|d| d.ends_with(" GMT")));
        assert_eq!(response.header("connection"), None);
    }
    // Three requests in one write, answered in order.
    client
        .send(b"GET /echo?p=1 HTTP/1.1\r\nhost: a\r\n\r\nHEAD /echo?p=2 HTTP/1.1\r\nhost: a\r\n\r\nGET /echo?p=3 HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n")
        .await;
    assert_eq!(
        client.response(false).await.text(),
        "GET /echo?p=1 HTTP/1.1 127.0.0.1 0"
    );
    let head = client.response(true).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(
            "HEAD /echo?p=2 HTTP/1.1 127.0.0.1 0"
                .len()
                .to_string()
                .as_str()
        )
    );
    assert_eq!(
        client.response(false).await.text(),
        "GET /echo?p=3 HTTP/1.1 127.0.0.1 0"
    );
    // The client's `Connection: close` is honoured.
    client
        .send(b"GET /echo HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .await;
    let last = client.response(false).await;
    assert_eq!(last.header("connection"), Some("close"));
    assert!(client.closed().await);
    server.shutdown().await;
}

/// A service's `Connection` options other than `close` and `keep-alive` go out as it wrote
/// them (the headers it named stay hop-by-hop); its `close` closes the connection.
#[tokio::test]
async fn the_services_connection_options_go_out_and_its_close_is_honoured() {
    let server = server(ServerConfig::default()).await;
    let mut client = Client::connect(&server).await;
    client.send(b"GET /hop HTTP/1.1\r\nhost: a\r\n\r\n").await;
    let response = client.response(false).await;
    assert_eq!(response.header("connection"), Some("x-trace"));
    assert_eq!(response.header("x-trace"), Some("1"));
    client
        .send(b"GET /hop-close HTTP/1.1\r\nhost: a\r\n\r\n")
        .await;
    let response = client.response(false).await;
    let connection: Vec<_> = (response.headers.iter())
        .filter(|(name, _)| name == "connection")
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(connection, ["X-Trace, x-span", "close"]);
    assert_eq!(response.text(), "hop");
    assert!(client.closed().await);
    server.shutdown().await;
}

#[tokio::test]
async fn http_1_0_clients_get_keep_alive_only_when_asked_and_bodies_until_close() {
    let server = server(ServerConfig::default()).await;
    let mut client = Client::connect(&server).await;
    client.send(b"GET /echo HTTP/1.0\r\n\r\n").await;
    let response = client.response(false).await;
    assert_eq!(response.text(), "GET /echo HTTP/1.0 127.0.0.1 0");
    assert_eq!(response.header("connection"), Some("close"));
    assert!(client.closed().await);

    let mut client = Client::connect(&server).await;
    client
        .send(b"GET /echo HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
        .await;
    let response = client.response(false).await;
    assert_eq!(response.header("connection"), Some("keep-alive"));
    // No length known: an HTTP/1.0 client gets the body until the connection closes.
    client
        .send(b"GET /stream HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
        .await;
    let response = client.response(false).await;
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(response.header("transfer-encoding"), None);
    assert_eq!(response.text(), "one two three");
    server.shutdown().await;
}

#[tokio::test]
async fn a_body_of_unknown_length_is_chunked_with_its_trailers() {
    let server = server(ServerConfig::default()).await;
    let mut client = Client::connect(&server).await;
    for _ in 0..2 {
        client
            .send(b"GET /stream HTTP/1.1\r\nhost: a\r\n\r\n")
            .await;
        let response = client.response(false).await;
        assert_eq!(response.header("transfer-encoding"), Some("chunked"));
        assert_eq!(response.text(), "one two three");
        assert_eq!(
            response.trailers,
            vec![("x-checksum".to_owned(), "abc".to_owned())]
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_body_that_does_not_match_its_length_closes_the_connection() {
    let server = server(ServerConfig::default()).await;
    for path in ["/long", "/short"] {
        let mut client = Client::connect(&server).await;
        client
            .send(format!("GET {path} HTTP/1.1\r\nhost: a\r\n\r\n").as_bytes())
            .await;
        // The head went out with the declared length; the connection then ends.
        let mut rest = Vec::new();
        while client.fill().await {}
        rest.extend_from_slice(&client.buf);
        let text = String::from_utf8_lossy(&rest).into_owned();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {text}");
        let body = text.split_once("\r\n\r\n").unwrap().1;
        if path == "/long" {
            assert!(
                body.is_empty(),
                "{path}: more than the length was sent: {body:?}"
            );
        } else {
            assert_eq!(body, "0123456789", "{path}");
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn small_bodies_that_came_whole_are_served_and_the_rest_go_to_hyper() {
    let server = server(ServerConfig::default()).await;
    let mut client = Client::connect(&server).await;
    client.send(b"GET /echo HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert_eq!(
        client.response(false).await.text(),
        "GET /echo HTTP/1.1 127.0.0.1 0"
    );
    // A small body in two writes: served here if both came before the read, by hyper if not.
    client
        .send(b"POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhel")
        .await;
    client.send(b"lo").await;
    assert_eq!(
        client.response(false).await.text(),
        "POST /echo HTTP/1.1 127.0.0.1 5"
    );
    // A body over 64 KiB: hyper streams it (the head and the first bytes replayed to it).
    let big = vec![b'x'; 70 * 1024];
    client
        .send(
            format!(
                "PUT /echo HTTP/1.1\r\nhost: a\r\ncontent-length: {}\r\n\r\n",
                big.len()
            )
            .as_bytes(),
        )
        .await;
    client.send(&big).await;
    assert_eq!(
        client.response(false).await.text(),
        format!("PUT /echo HTTP/1.1 127.0.0.1 {}", big.len())
    );
    // The connection is hyper's now: chunked, then plain, pipelined.
    client
        .send(b"POST /echo HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /echo HTTP/1.1\r\nhost: a\r\n\r\n")
        .await;
    assert_eq!(
        client.response(false).await.text(),
        "POST /echo HTTP/1.1 127.0.0.1 3"
    );
    assert_eq!(
        client.response(false).await.text(),
        "GET /echo HTTP/1.1 127.0.0.1 0"
    );
    // A chunked body first: straight to hyper.
    let mut client = Client::connect(&server).await;
    client
        .send(b"POST /echo HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n")
        .await;
    assert_eq!(
        client.response(false).await.text(),
        "POST /echo HTTP/1.1 127.0.0.1 2"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_body_still_on_its_way_is_streamed_and_a_service_may_answer_before_it() {
    let server = server(ServerConfig::default()).await;
    let mut client = Client::connect(&server).await;
    // Three of ten bytes with the head: hyper gets the connection and streams the rest.
    client
        .send(b"POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\nabc")
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.send(b"defghij").await;
    assert_eq!(
        client.response(false).await.text(),
        "POST /echo HTTP/1.1 127.0.0.1 10"
    );
    // A service that answers without the body is not kept waiting for it.
    let mut client = Client::connect(&server).await;
    client
        .send(b"POST /stream HTTP/1.1\r\nhost: a\r\ncontent-length: 1000\r\n\r\n")
        .await;
    assert_eq!(client.response(false).await.text(), "one two three");
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_and_oversized_heads_get_hypers_answers() {
    let mut config = ServerConfig::default();
    config.max_header_bytes = 16 * 1024;
    config.max_headers = 10;
    let server = server(config).await;
    let mut client = Client::connect(&server).await;
    client.send(b"GET /echo HTTP/1.1\r\nho st: a\r\n\r\n").await;
    assert_eq!(client.response(false).await.status, 400);

    let mut client = Client::connect(&server).await;
    let big = format!(
        "GET /echo HTTP/1.1\r\nhost: a\r\nx-big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    client.send(big.as_bytes()).await;
    assert_eq!(client.response(false).await.status, 431);

    let mut client = Client::connect(&server).await;
    let mut many = String::from("GET /echo HTTP/1.1\r\nhost: a\r\n");
    for i in 0..12 {
        many.push_str(&format!("x-{i}: {i}\r\n"));
    }
    many.push_str("\r\n");
    client.send(many.as_bytes()).await;
    assert_eq!(client.response(false).await.status, 431);
    server.shutdown().await;
}

#[tokio::test]
async fn a_late_head_closes_the_connection_without_an_answer() {
    let mut config = ServerConfig::default();
    config.header_read_timeout = Duration::from_millis(200);
    let server = server(config).await;
    let mut client = Client::connect(&server).await;
    // A request in time, then half of the next head.
    client.send(b"GET /echo HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert_eq!(client.response(false).await.status, 200);
    client.send(b"GET /echo HTTP/1.1\r\nho").await;
    assert!(client.closed().await, "the late head got an answer");
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_finishes_in_flight_ones() {
    let server = server(ServerConfig::default()).await;
    let mut idle = Client::connect(&server).await;
    idle.send(b"GET /echo HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert_eq!(idle.response(false).await.status, 200);
    let mut busy = Client::connect(&server).await;
    busy.send(b"GET /slow HTTP/1.1\r\nhost: a\r\n\r\n").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let shutdown = tokio::spawn(server.shutdown());
    assert!(idle.closed().await, "an idle connection stayed open");
    let response = busy.response(false).await;
    assert_eq!(response.text(), "done");
    assert_eq!(response.header("connection"), Some("close"));
    assert!(busy.closed().await);
    within(shutdown).await.unwrap();
}
