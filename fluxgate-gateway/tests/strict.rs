//! Strict HTTP at the gateway's door (issue 19 item 6), with raw requests on loopback: two
//! `Host` headers, userinfo in `Host` or in the target, an invalid `Host`, and an HTTP/1.1
//! request without `Host` are answered 400 and never forwarded; a malformed chunked request body is answered 400, not 502.

mod http1;
mod support;

use fluxgate_gateway::server::RequestBody;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fluxgate_core::store::{PolicyId, PolicyStore};
use fluxgate_gateway::server::ServerHandle;
use fluxgate_gateway::stack::{Gateway, StackConfig};
use http::{Request, Response};
use http_body_util::BodyExt;
use http1::{Conn, RawResponse};
use support::{full, serve, within};

const POLICY: &str = "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\n\
    metadata: {name: shop, namespace: test}\n\
    spec:\n  rateLimit: {requestsPerSecond: 1000, burstSize: 1000, keyExtractor: header.X-Client-Id}\n";

/// An upstream that counts the requests it gets (health checks aside) and answers with the
/// length of their body.
async fn counting() -> (ServerHandle, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&seen);
    let server = serve(tower::service_fn(move |request: Request<RequestBody>| {
        if request.uri().path() != "/healthz" {
            count.fetch_add(1, Ordering::SeqCst);
        }
        async move {
            let body = request.into_body().collect().await;
            let len = body.map_or(0, |b| b.to_bytes().len());
            Ok::<_, Infallible>(Response::new(full(format!("{len}"))))
        }
    }))
    .await;
    (server, seen)
}

/// A gateway over a counting upstream.
struct Fixture {
    server: ServerHandle,
    /// Requests the upstream got.
    seen: Arc<AtomicUsize>,
    _gateway: Gateway,
    _upstream: ServerHandle,
}

async fn gateway() -> Fixture {
    let (upstream, seen) = counting().await;
    let store = PolicyStore::new();
    store.apply_bytes(POLICY.as_bytes(), None).unwrap();
    let spec = format!("http://{}", upstream.local_addr()).parse().unwrap();
    let id = PolicyId::new("test", "shop");
    let gateway = Gateway::build(&store, &id, &StackConfig::new(vec![spec])).unwrap();
    let server = serve(gateway.service()).await;
    Fixture {
        server,
        seen,
        _gateway: gateway,
        _upstream: upstream,
    }
}

/// Sends `request` on a new connection and reads the answer.
async fn exchange(server: &ServerHandle, request: &str) -> RawResponse {
    let mut conn = within(Conn::connect(server.local_addr())).await.unwrap();
    within(conn.send(request.as_bytes())).await.unwrap();
    within(conn.response()).await.unwrap().expect("an answer")
}

#[tokio::test]
async fn ambiguous_hosts_are_refused_and_not_forwarded() {
    let Fixture { server, seen, .. } = &gateway().await;
    let cases = [
        (
            "GET / HTTP/1.1\r\nHost: a.example\r\nHost: evil.example\r\n\r\n",
            "more than one Host",
        ),
        (
            "GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n",
            "more than one Host",
        ),
        (
            "GET / HTTP/1.1\r\nHost: user@evil.example\r\n\r\n",
            "userinfo in the Host",
        ),
        (
            "GET / HTTP/1.1\r\nHost: user:pw@evil.example:80\r\n\r\n",
            "userinfo in the Host",
        ),
        (
            "GET / HTTP/1.1\r\nHost: a.example/x\r\n\r\n",
            "invalid Host",
        ),
        ("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", "no Host header"),
        (
            "GET http://user@evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",
            "userinfo in the request target",
        ),
    ];
    for (request, reason) in cases {
        let response = exchange(server, request).await;
        assert_eq!(response.status, 400, "{request:?}: {response:?}");
        assert!(response.body.contains(reason), "{response:?}");
        assert!(response.header("x-request-id").is_some());
    }
    assert_eq!(seen.load(Ordering::SeqCst), 0, "nothing was forwarded");

    let good = exchange(server, "GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n").await;
    assert_eq!(good.status, 200);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_malformed_chunked_body_is_a_400_not_a_502() {
    let Fixture { server, .. } = &gateway().await;
    let well_formed = "POST /orders HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n\
                       5\r\nhello\r\n0\r\n\r\n";
    let response = exchange(server, well_formed).await;
    assert_eq!((response.status, response.body.as_str()), (200, "5"));

    let malformed = [
        // A chunk size that is not hexadecimal.
        "POST /orders HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        // Chunk data longer than its size, then garbage where the next size belongs.
        "POST /orders HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
    ];
    for request in malformed {
        let response = exchange(server, request).await;
        assert_eq!(response.status, 400, "{request:?}: {response:?}");
        assert!(
            response.body.contains("malformed request body"),
            "{response:?}"
        );
    }
}
