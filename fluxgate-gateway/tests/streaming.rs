//! Bodies stream through the proxy in both directions: no chunk waits for the whole body. On the
//! own HTTP/1.1 pool (the gateway's default) and on hyper-util's pooled client (the tests named
//! `…_on_hypers_client`).

mod support;

use bytes::Bytes;
use fluxgate_gateway::proxy::ProxyConfig;
use fluxgate_gateway::server::RequestBody;
use http::{Request, Response};
use http_body_util::BodyExt;
use support::{channel_body, client, full, proxy_to, serve, within};
use tokio::sync::mpsc;

#[tokio::test]
async fn response_chunks_reach_the_client_before_the_upstream_sends_the_next() {
    response_chunks(true).await;
}

#[tokio::test]
async fn response_chunks_reach_the_client_before_the_upstream_sends_the_next_on_hypers_client() {
    response_chunks(false).await;
}

async fn response_chunks(pool: bool) {
    // The upstream sends "first", then hands the rest of its body to the test.
    let (senders_tx, mut senders_rx) = mpsc::unbounded_channel();
    let upstream = serve(tower::service_fn(move |_request: Request<RequestBody>| {
        let senders_tx = senders_tx.clone();
        async move {
            let (sender, body) = channel_body();
            sender.send(Bytes::from_static(b"first")).await.unwrap();
            senders_tx.send(sender).unwrap();
            Ok::<_, std::convert::Infallible>(Response::new(body))
        }
    }))
    .await;
    let proxy = proxy_to(
        &format!("http://{}", upstream.local_addr()),
        ProxyConfig::default().http1_pool(pool),
    )
    .await;

    let request = Request::get(format!("http://{}/stream", proxy.local_addr()))
        .body(full(""))
        .unwrap();
    let response = within(client().request(request)).await.unwrap();
    let mut body = response.into_body();
    let first = within(body.frame())
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(first, "first");

    // Only now does the upstream send the rest.
    let rest = within(senders_rx.recv()).await.unwrap();
    rest.send(Bytes::from_static(b"second")).await.unwrap();
    drop(rest);
    let second = within(body.frame())
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(second, "second");
    assert!(within(body.frame()).await.is_none());
}

#[tokio::test]
async fn a_large_upload_streams_to_the_upstream() {
    large_upload(true).await;
}

#[tokio::test]
async fn a_large_upload_streams_to_the_upstream_on_hypers_client() {
    large_upload(false).await;
}

async fn large_upload(pool: bool) {
    const CHUNK: usize = 256 * 1024;
    const CHUNKS: usize = 32;
    // The upstream reports every chunk it reads, then answers with the total.
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<usize>();
    let upstream = serve(tower::service_fn(move |request: Request<RequestBody>| {
        let seen_tx = seen_tx.clone();
        async move {
            let mut body = request.into_body();
            let mut total = 0;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    total += data.len();
                    let _ = seen_tx.send(total);
                }
            }
            Ok::<_, hyper::Error>(Response::new(full(total.to_string())))
        }
    }))
    .await;
    let proxy = proxy_to(
        &format!("http://{}", upstream.local_addr()),
        ProxyConfig::default().http1_pool(pool),
    )
    .await;

    let (sender, body) = channel_body();
    let request = Request::post(format!("http://{}/upload", proxy.local_addr()))
        .body(body)
        .unwrap();
    let response = tokio::spawn(client().request(request));

    sender.send(Bytes::from(vec![b'a'; CHUNK])).await.unwrap();
    // The upstream sees data while the client has sent one chunk of 32 and holds the rest back.
    let seen = within(seen_rx.recv()).await.unwrap();
    assert!(seen > 0 && seen <= CHUNK, "{seen}");
    for _ in 1..CHUNKS {
        sender.send(Bytes::from(vec![b'b'; CHUNK])).await.unwrap();
    }
    drop(sender);

    let response = within(response).await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let total = within(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(total, (CHUNK * CHUNKS).to_string());
}
