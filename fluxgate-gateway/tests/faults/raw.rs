//! Misbehaving upstreams on raw sockets.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How a raw upstream treats a connection, given its number (0 first).
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Reads the request and never answers (the socket stays open).
    Hang,
    /// Promises 1000 bytes, sends 100, then resets the connection (the first `n` connections;
    /// later ones answer `ok`).
    ResetMidBody { first: usize },
    /// Sends `len` body bytes one at a time, `gap` apart.
    Trickle { len: usize, gap: Duration },
}

/// A raw HTTP/1.1 upstream on loopback.
pub struct RawUpstream {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawUpstream {
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst);
                match behaviour {
                    Behaviour::Hang => held.push(stream),
                    _ => {
                        tokio::spawn(answer(stream, behaviour, n));
                    }
                }
            }
        });
        Self {
            addr,
            connections,
            task,
        }
    }

    pub fn spec(&self) -> fluxgate_gateway::upstream::UpstreamSpec {
        format!("http://{}", self.addr).parse().unwrap()
    }
}

/// Reads one request head (up to the blank line).
async fn read_head(stream: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    true
}

async fn answer(mut stream: TcpStream, behaviour: Behaviour, n: usize) {
    loop {
        if !read_head(&mut stream).await {
            return;
        }
        match behaviour {
            Behaviour::ResetMidBody { first } if n < first => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
                    .await;
                let _ = stream.write_all(&[b'x'; 100]).await;
                let _ = stream.flush().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                // SO_LINGER 0: closing sends RST instead of FIN.
                let _ = socket2_linger_zero(&stream);
                return;
            }
            Behaviour::Trickle { len, gap } => {
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for i in 0..len {
                    tokio::time::sleep(gap).await;
                    let byte = [b'a' + (i % 26) as u8];
                    if stream.write_all(&byte).await.is_err() {
                        return;
                    }
                }
            }
            _ => {
                if stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

#[allow(deprecated)]
fn socket2_linger_zero(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_linger(Some(Duration::ZERO))
}
