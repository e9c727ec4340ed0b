//! The server: peer address extension, h2c, and graceful shutdown.

mod support;

use fluxgate_gateway::server::RequestBody;
use std::convert::Infallible;

use fluxgate_core::key::PeerAddr;
use http::{Request, Response, Version};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::{client, full, serve, text, within};
use tokio::sync::{mpsc, oneshot};

#[tokio::test]
async fn inserts_the_peer_address_and_speaks_h2c() {
    let server = serve(tower::service_fn(
        |request: Request<RequestBody>| async move {
            let peer = request
                .extensions()
                .get::<PeerAddr>()
                .map(|peer| peer.0.ip().to_string());
            let answer = format!("{:?} {}", request.version(), peer.unwrap_or_default());
            Ok::<_, Infallible>(Response::new(full(answer)))
        },
    ))
    .await;
    let url = format!("http://{}/", server.local_addr());
    let http1 = within(client().request(Request::get(&url).body(full("")).unwrap())).await;
    assert_eq!(text(http1.unwrap()).await, "HTTP/1.1 127.0.0.1");

    let h2c = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let request = Request::get(&url)
        .version(Version::HTTP_2)
        .body(full(""))
        .unwrap();
    let response = within(h2c.request(request)).await.unwrap();
    assert_eq!(text(response).await, "HTTP/2.0 127.0.0.1");
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_stops_accepting() {
    // The handler tells the test it started, then waits for the test's go.
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
    let server = serve(tower::service_fn(move |_request: Request<RequestBody>| {
        let started_tx = started_tx.clone();
        async move {
            let (go_tx, go_rx) = oneshot::channel();
            let _ = started_tx.send(go_tx);
            let _ = go_rx.await;
            Ok::<_, Infallible>(Response::new(full("done")))
        }
    }))
    .await;
    let addr = server.local_addr();
    let in_flight = tokio::spawn(
        client().request(
            Request::get(format!("http://{addr}/"))
                .body(full(""))
                .unwrap(),
        ),
    );
    let go = within(started_rx.recv()).await.unwrap();

    let shutdown = tokio::spawn(server.shutdown());
    // Once the listener is closed, the request is still in flight: let it finish now.
    within(async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(!shutdown.is_finished());
    go.send(()).unwrap();
    let response = within(in_flight).await.unwrap().unwrap();
    assert_eq!(text(response).await, "done");
    within(shutdown).await.unwrap();
}

/// Thread-per-core serving: two workers on one port, each connection served by one of them
/// (the worker index the service sees), keep-alive connections staying on their worker, and a
/// shutdown that lets the in-flight request finish on its worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_one_port_and_drain_on_shutdown() {
    use fluxgate_gateway::server::{ServerConfig, spawn_workers, worker_index};

    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
    let service = tower::service_fn(move |request: Request<RequestBody>| {
        let started_tx = started_tx.clone();
        async move {
            if request.uri().path() == "/hold" {
                let (go_tx, go_rx) = oneshot::channel();
                let _ = started_tx.send(go_tx);
                let _ = go_rx.await;
            }
            Ok::<_, Infallible>(Response::new(full(worker_index().to_string())))
        }
    });
    let addr = "127.0.0.1:0".parse().unwrap();
    let server = spawn_workers(addr, service, ServerConfig::default(), 2)
        .await
        .unwrap();
    let url = format!("http://{}", server.local_addr());
    // Fresh connections until both workers answered.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let fresh = client();
        let response =
            within(fresh.request(Request::get(format!("{url}/")).body(full("")).unwrap())).await;
        seen.insert(text(response.unwrap()).await);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen,
        ["1".to_owned(), "2".to_owned()].into(),
        "both workers serve"
    );
    // Keep-alive: the requests of one connection stay on the worker that accepted it.
    let stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut workers = std::collections::BTreeSet::new();
    for _ in 0..20 {
        within(sender.ready()).await.unwrap();
        let request = Request::get("/").body(full("")).unwrap();
        let response = within(sender.send_request(request)).await.unwrap();
        workers.insert(text(response).await);
    }
    assert_eq!(workers.len(), 1, "{workers:?}");

    let in_flight =
        tokio::spawn(client().request(Request::get(format!("{url}/hold")).body(full("")).unwrap()));
    let go = within(started_rx.recv()).await.unwrap();
    let shutdown = tokio::spawn(server.shutdown());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let _ = go.send(());
    let response = within(in_flight).await.unwrap().unwrap();
    assert!(matches!(text(response).await.as_str(), "1" | "2"));
    within(shutdown).await.unwrap();
}

/// A connection on `addr`, kept open, and the worker that serves it.
async fn connection_on(
    addr: std::net::SocketAddr,
) -> (
    hyper::client::conn::http1::SendRequest<fluxgate_gateway::proxy::ProxyBody>,
    String,
) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    within(sender.ready()).await.unwrap();
    let request = Request::get("/").body(full("")).unwrap();
    let response = within(sender.send_request(request)).await.unwrap();
    let worker = text(response).await;
    (sender, worker)
}

/// Keep-alive connections are spread evenly over the workers whatever the clients' addresses:
/// each new one goes to the worker with the fewest open (8 connections held open on 2 workers
/// are 4 and 4, then 10 are 5 and 5, where a hash of the addresses gives an even split of 8
/// about one time in four).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_take_new_connections_by_fewest_open() {
    use fluxgate_gateway::server::{ServerConfig, spawn_workers, worker_index};

    let service = tower::service_fn(|_: Request<RequestBody>| async {
        Ok::<_, Infallible>(Response::new(full(worker_index().to_string())))
    });
    let addr = "127.0.0.1:0".parse().unwrap();
    let server = spawn_workers(addr, service, ServerConfig::default(), 2)
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(connection_on(server.local_addr()).await);
    }
    let on = |held: &[(_, String)], worker: &str| held.iter().filter(|(_, w)| w == worker).count();
    assert_eq!((on(&held, "1"), on(&held, "2")), (4, 4));

    // Another 2: one each, whatever their ports.
    for _ in 0..2 {
        held.push(connection_on(server.local_addr()).await);
    }
    assert_eq!((on(&held, "1"), on(&held, "2")), (5, 5));
    within(server.shutdown()).await;
}

/// Reads from `stream` until the server closes it (or an error), everything it sent.
async fn read_to_close(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut reply = Vec::new();
    let _ = within(stream.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).into_owned()
}

/// Reads one response of a `Content-Length` body from `stream` (the test's answer is `ok`).
async fn read_answer(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 1024];
    while !reply.ends_with(b"\r\n\r\nok") {
        let n = within(stream.read(&mut chunk)).await.unwrap();
        assert_ne!(n, 0, "closed after {:?}", String::from_utf8_lossy(&reply));
        reply.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// A client that does not finish its request head within `header_read_timeout` has its
/// connection closed, without an answer (hyper's behaviour: a slow-loris client holds no
/// connection for long); one whose heads each arrive in time is served on the same keep-alive
/// connection for as long as it likes.
#[tokio::test]
async fn a_late_request_head_closes_the_connection_and_heads_in_time_keep_it() {
    use std::time::Duration;

    use fluxgate_gateway::server::{ServerConfig, spawn};
    use tokio::io::AsyncWriteExt;
    use tokio::time::Instant;

    let timeout = Duration::from_millis(500);
    let mut config = ServerConfig::default();
    config.header_read_timeout = timeout;
    let service = tower::service_fn(|_: Request<RequestBody>| async {
        Ok::<_, Infallible>(Response::new(full("ok")))
    });
    let server = spawn(support::loopback(), service, config).await.unwrap();
    let addr = server.local_addr();

    // Half a head, and nothing more.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    slow.write_all(b"GET / HTTP/1.1\r\nhost: gw\r\n")
        .await
        .unwrap();
    let reply = read_to_close(&mut slow).await;
    assert!(reply.is_empty(), "{reply:?}");
    assert!(started.elapsed() >= timeout, "closed before its timeout");

    // Five heads 300ms apart on one connection: 1.2s in all, each within the timeout.
    let mut steady = tokio::net::TcpStream::connect(addr).await.unwrap();
    for _ in 0..5 {
        steady
            .write_all(b"GET / HTTP/1.1\r\nhost: gw\r\n\r\n")
            .await
            .unwrap();
        let answer = read_answer(&mut steady).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Then silence: the idle connection is closed once the next head is late.
    let closed = read_to_close(&mut steady).await;
    assert!(closed.is_empty(), "{closed:?}");
    server.shutdown().await;
}
