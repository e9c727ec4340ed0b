//! The floor of a naive Rust proxy, for the end-to-end load comparison (`benches/e2e/run.sh`):
//! a plain hyper server on a multi-threaded tokio runtime that forwards every request to one
//! upstream through a pooled hyper-util client (HTTP/1.1 keep-alive to the upstream), streaming
//! both bodies, and appends `X-Forwarded-For` as nginx does. No policy, no limit, no balancing:
//! what any gateway built on hyper costs at least.
//!
//! Run with: `cargo run --release -p fluxgate-benches --bin e2e_hyper_proxy -- 127.0.0.1:18004
//! http://127.0.0.1:18001`

use std::net::SocketAddr;

use http::header::{CONNECTION, HOST};
use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, hyper::Error>;

/// Forwards `request` to `upstream` (scheme and authority), keeping path and query.
async fn forward(
    client: Client<HttpConnector, Incoming>,
    upstream: Uri,
    peer: SocketAddr,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut parts = upstream.into_parts();
    parts.path_and_query = Some(path);
    let Ok(uri) = Uri::from_parts(parts) else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.remove(CONNECTION);
    headers.remove(HOST);
    if let Ok(value) = HeaderValue::from_str(&peer.ip().to_string()) {
        headers.append("x-forwarded-for", value);
    }
    match client.request(request).await {
        Ok(response) => Ok(response.map(BodyExt::boxed_unsync)),
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = code;
    response
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .as_deref()
        .unwrap_or("127.0.0.1:18004")
        .parse()
        .map_err(std::io::Error::other)?;
    let upstream: Uri = args
        .next()
        .as_deref()
        .unwrap_or("http://127.0.0.1:18001")
        .parse()
        .map_err(std::io::Error::other)?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    let listener = TcpListener::bind(addr).await?;
    println!(
        "e2e_hyper_proxy listening on {} for {upstream}",
        listener.local_addr()?
    );
    loop {
        let (stream, peer) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service =
                service_fn(move |request| forward(client.clone(), upstream.clone(), peer, request));
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                eprintln!("e2e_hyper_proxy: {error}");
            }
        });
    }
}
