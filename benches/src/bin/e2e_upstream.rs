//! The upstream of the end-to-end load comparison (`benches/e2e/run.sh`) and of the soak
//! (`benches/e2e/soak.sh`): a small hyper server that reads each request's body (as a service
//! does) and answers every request (`/healthz` included) with `200` and a 13-byte body. Given a NAME, it also sends `x-served-by: NAME`,
//! so that a client can tell the upstreams apart.
//!
//! Run with: `cargo run --release -p fluxgate-benches --bin e2e_upstream -- 127.0.0.1:18001 [NAME]`

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = b"hello, world\n";

async fn answer(
    name: Option<HeaderValue>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // A body cut short is answered all the same: this upstream only counts what it served.
    let _ = request.into_body().collect().await;
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    if let Some(name) = name {
        response.headers_mut().insert("x-served-by", name);
    }
    Ok(response)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:18001")
        .parse()
        .map_err(std::io::Error::other)?;
    let name = match std::env::args().nth(2) {
        Some(name) => Some(HeaderValue::from_str(&name).map_err(std::io::Error::other)?),
        None => None,
    };
    let listener = TcpListener::bind(addr).await?;
    println!("e2e_upstream listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let name = name.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(name.clone(), request));
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                eprintln!("e2e_upstream: {error}");
            }
        });
    }
}
