//! The admin API's token check: the scheme is case-insensitive (RFC 9110), and an
//! unauthenticated PUT is refused before its body is read; an authenticated one is bounded.

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use support::gateway::{Named, Running, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "s3cret-token";

const POLICY: &str = "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\n\
     metadata: {name: shop, namespace: test}\nspec:\n  rateLimit: {requestsPerSecond: 100, burstSize: 50}\n";

async fn running() -> (Running, Named) {
    let stable = Named::start("stable").await;
    let gw = Running::start(POLICY, &[(&stable, 1)], &[], Some(TOKEN)).await;
    (gw, stable)
}

#[tokio::test]
async fn a_lowercase_bearer_scheme_is_accepted() {
    let (gw, _stable) = running().await;
    let url = gw.admin_url("/api/policies");
    let changed = POLICY.replace("burstSize: 50", "burstSize: 60");
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let auth = format!("{scheme} {TOKEN}");
        let answer = send(Method::PUT, &url, &[("authorization", &auth)], &changed).await;
        assert_eq!(answer.status, StatusCode::OK, "{scheme}: {}", answer.body);
    }
    let answer = send(
        Method::PUT,
        &url,
        &[("authorization", "Basic s3cret-token")],
        &changed,
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

/// Sends a PUT's head announcing `length` bytes and `sent` bytes of body, and returns the status
/// line the admin API answers without waiting for the rest.
async fn put_head(gw: &Running, auth: Option<&str>, length: usize, sent: usize) -> String {
    let mut stream = tokio::net::TcpStream::connect(gw.admin.local_addr())
        .await
        .unwrap();
    let auth = auth.map_or(String::new(), |a| format!("authorization: {a}\r\n"));
    let head = format!(
        "PUT /api/policies HTTP/1.1\r\nhost: admin\r\n{auth}content-length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'#'; sent]).await.unwrap();
    let mut answer = vec![0; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("answered without the whole body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn an_unauthenticated_large_put_is_refused_before_its_body_is_read() {
    let (gw, _stable) = running().await;
    // 30 MB announced, 64 KiB sent: the token is checked first.
    let line = put_head(&gw, None, 30 << 20, 64 << 10).await;
    assert!(line.contains(" 401 "), "{line}");
    // A small body announced and not sent at all: refused without waiting for it.
    let line = put_head(&gw, Some("Bearer wrong"), 1000, 0).await;
    assert!(line.contains(" 401 "), "{line}");
    // With the token, a body over the bound is refused as too large.
    let auth = format!("Bearer {TOKEN}");
    let line = put_head(&gw, Some(&auth), 30 << 20, 64 << 10).await;
    assert!(line.contains(" 413 "), "{line}");
    assert_eq!(gw.store.generation(), 1, "nothing applied");
}
