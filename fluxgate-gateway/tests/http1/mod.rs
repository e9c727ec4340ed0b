//! A raw HTTP/1.1 client connection: requests written byte for byte (malformed ones too),
//! responses read one at a time, so that several go over one keep-alive connection.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One response: status, head (lower-cased), body.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawResponse {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim())
        })
    }
}

/// A client connection.
pub struct Conn {
    stream: TcpStream,
    buffered: Vec<u8>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        Ok(Self {
            stream,
            buffered: Vec::new(),
        })
    }

    /// Writes `bytes` as they are.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// `GET path` with `host: gw` and the `extra` header lines.
    pub async fn get(&mut self, path: &str, extra: &[&str]) -> std::io::Result<()> {
        let mut head = format!("GET {path} HTTP/1.1\r\nhost: gw\r\n");
        for line in extra {
            head.push_str(line);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        self.send(head.as_bytes()).await
    }

    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        self.buffered.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Reads the next response (a `content-length` or chunked body, or to the end), or `None`
    /// when the connection ends first.
    pub async fn response(&mut self) -> std::io::Result<Option<RawResponse>> {
        let end = loop {
            if let Some(i) = self.buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill().await? {
                return Ok(None);
            }
        };
        let head = String::from_utf8_lossy(&self.buffered[..end]).to_lowercase();
        self.buffered.drain(..end);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut response = RawResponse {
            status,
            head,
            body: String::new(),
        };
        let body = if let Some(len) = response.header("content-length") {
            let len: usize = len.parse().unwrap_or(0);
            while self.buffered.len() < len {
                if !self.fill().await? {
                    return Ok(None);
                }
            }
            self.buffered.drain(..len).collect::<Vec<u8>>()
        } else if response.header("transfer-encoding") == Some("chunked") {
            // Read to the last chunk; the tests' bodies are small.
            while !self.buffered.windows(5).any(|w| w == b"0\r\n\r\n") {
                if !self.fill().await? {
                    return Ok(None);
                }
            }
            std::mem::take(&mut self.buffered)
        } else {
            while self.fill().await? {}
            std::mem::take(&mut self.buffered)
        };
        response.body = String::from_utf8_lossy(&body).into_owned();
        Ok(Some(response))
    }
}
