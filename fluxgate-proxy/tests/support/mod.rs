//! Real upstreams on 127.0.0.1 for the proxy's tests: one that echoes the request's headers, one
//! that never answers, one that drops the connection before answering.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// How long any step of a test may take before the test fails instead of hanging.
pub const BOUND: Duration = Duration::from_secs(20);

/// Awaits `future`, failing the test if it takes longer than [`BOUND`].
pub async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(BOUND, future)
        .await
        .expect("the test step did not finish within its bound")
}

/// A hyper HTTP/1.1 upstream named `name`: it answers each request with `name` in
/// `x-upstream`, one `header: value` line per request header in the body, and hop-by-hop
/// headers of its own (which the proxy must not pass on).
pub async fn echo_upstream(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(move |request: Request<Incoming>| async move {
                let mut text = format!("{} {}\n", request.method(), request.uri());
                for (header, value) in request.headers() {
                    let value = String::from_utf8_lossy(value.as_bytes());
                    text.push_str(&format!("{header}: {value}\n"));
                }
                let response = Response::builder()
                    .header("x-upstream", name)
                    .header("connection", "x-upstream-secret")
                    .header("x-upstream-secret", "1")
                    .header("keep-alive", "timeout=30")
                    .header("proxy-authenticate", "Basic")
                    .body(Full::new(Bytes::from(text)))
                    .unwrap();
                Ok::<_, Infallible>(response)
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// An upstream that accepts connections and never answers (it keeps them open).
pub async fn hanging_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// An upstream that reads the start of each request, then drops the connection before any
/// response: closed (FIN) or, with `reset`, reset (RST, `SO_LINGER` zero).
pub async fn dropping_upstream(reset: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = [0; 1024];
            let _ = stream.read(&mut buffer).await;
            if reset {
                let _ = stream.set_zero_linger();
            }
            drop(stream);
        }
    });
    addr
}

/// An address nothing listens on (a port bound, then released).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// The value of `header` in an echoed body, if the upstream received it.
pub fn echoed(echo: &str, header: &str) -> Option<String> {
    echo.lines().find_map(|line| {
        let (name, value) = line.split_once(": ")?;
        (name == header).then(|| value.to_owned())
    })
}

/// The whole body of a response, as text.
pub async fn text<B>(response: Response<B>) -> String
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let bytes = within(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}
