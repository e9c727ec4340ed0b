//! The client address reaches the layer under plain `axum::serve`: separate buckets per client
//! with `into_make_service_with_connect_info`, and a loud warning and a count without it.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use fluxgate_core::policy::RateLimitSpec;
use fluxgate_ratelimit::RateLimitLayer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};

/// A limit on the default key (`ip`): one request, then one a minute.
fn layer() -> RateLimitLayer {
    RateLimitLayer::builder()
        .limit(RateLimitSpec::new(1.0 / 60.0, 1))
        .build()
        .unwrap()
}

fn app(layer: &RateLimitLayer) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer.clone())
}

/// `GET /` from a socket bound to `from`, over HTTP/1.1; the status code.
async fn get_from(from: &str, server: SocketAddr) -> u16 {
    let call = async {
        let socket = TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
            .unwrap();
        let mut stream = socket.connect(server).await.unwrap();
        let request = b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n";
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        answer[9..12].parse().unwrap()
    };
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the server answers")
}

#[tokio::test]
async fn connect_info_gives_each_client_its_own_bucket() {
    let layer = layer();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app(&layer).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });

    assert_eq!(get_from("127.0.0.1", addr).await, 200);
    assert_eq!(get_from("127.0.0.1", addr).await, 429);
    // Another address is another client, with its own bucket.
    assert_eq!(get_from("127.0.0.2", addr).await, 200);
    let metrics = layer.metrics();
    assert_eq!((metrics.admitted, metrics.refused), (2, 1));
    assert_eq!(metrics.no_client_address, 0);
}

/// The log lines written while it runs.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn without_an_address_it_warns_once_and_counts() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The server runs on this thread (current-thread runtime), so the default reaches it.
    let _guard = tracing::subscriber::set_default(subscriber);

    let layer = layer();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app(&layer);
    tokio::spawn(async move { axum::serve(listener, app).await });

    assert_eq!(get_from("127.0.0.1", addr).await, 200);
    // One shared bucket, as documented: the other client is refused.
    assert_eq!(get_from("127.0.0.2", addr).await, 429);
    assert_eq!(layer.metrics().no_client_address, 2);
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        logs.matches("without a client address").count(),
        1,
        "{logs}"
    );
    assert!(logs.contains("WARN"), "{logs}");
    assert!(
        logs.contains("into_make_service_with_connect_info"),
        "{logs}"
    );
}
