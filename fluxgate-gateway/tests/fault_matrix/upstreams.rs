//! Upstreams for the fault rows that the shared `faults/raw.rs` does not have: a port that refuses
//! connections, one that answers bytes that are not HTTP, and a slow real hyper server.
#![allow(dead_code, unreachable_pub)]

use fluxgate_gateway::server::RequestBody;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use fluxgate_gateway::server::ServerHandle;
use http::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::support::{full, serve};

/// A loopback port nothing listens on (bound, then closed): connections are refused.
pub fn refusing() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// An upstream that answers every request with bytes that are not HTTP, then closes.
pub struct Garbage {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Garbage {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Garbage {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    let _ = stream
                        .write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe garbage\r\n\r\n")
                        .await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { addr, task }
    }
}

/// A real hyper upstream that answers `slow` after `delay`.
pub async fn slow(delay: Duration) -> ServerHandle {
    serve(tower::service_fn(
        move |_request: Request<RequestBody>| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, Infallible>(Response::new(full("slow")))
        },
    ))
    .await
}
