//! Policies swapped under load: no request fails or is dropped while the policy changes, and the
//! rate limiter keeps its counters across a change that does not touch its limit.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use http::StatusCode;
use support::gateway::{Named, Running, get};

/// A policy whose every section is set; `variant` changes the balancing algorithm, the canary
/// weight and a second rate limit, never the first one.
fn policy(variant: usize) -> String {
    let algorithm = [
        "weighted-round-robin",
        "round-robin",
        "least-request",
        "peak-ewma",
        "adaptive",
    ][variant % 5];
    let weight = 5 + variant % 10;
    let second = 100_000 + variant;
    format!(
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {{name: shop, namespace: test}}\n\
         spec:\n  loadBalancing: {{algorithm: {algorithm}}}\n\
         \x20 rateLimit:\n\
         \x20   - {{name: per-client, requestsPerSecond: 0.001, burstSize: 3, keyExtractor: header.X-Client-Id}}\n\
         \x20   - {{name: global, requestsPerSecond: {second}, burstSize: 100000, keyExtractor: ip}}\n\
         \x20 canary: {{weight: {weight}, minRequests: 1000000}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_while_policies_are_swapped() {
    let a = Named::start("a").await;
    let b = Named::start("b").await;
    let canary = Named::start("canary").await;
    let gw = Arc::new(Running::start(&policy(0), &[(&a, 1), (&b, 1)], &[&canary], None).await);

    // One client uses up its per-client limit before the swaps: it must stay refused after them.
    for _ in 0..3 {
        assert_eq!(
            get(&gw.url("/"), &[("x-client-id", "limited")])
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(
        get(&gw.url("/"), &[("x-client-id", "limited")])
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for client in 0..4 {
        let (gw, stop, served) = (Arc::clone(&gw), Arc::clone(&stop), Arc::clone(&served));
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                // A fresh client id per request, so that only a failure can refuse it.
                n += 1;
                let id = format!("client-{client}-{n}");
                let answer = get(&gw.url("/"), &[("x-client-id", &id)]).await;
                if answer.status != StatusCode::OK {
                    failures.push((answer.status, answer.body));
                }
                served.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }
    let generation = gw.store.generation();
    for variant in 1..=40 {
        gw.store
            .apply_bytes(policy(variant).as_bytes(), None)
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let failures = client.await.unwrap();
        assert!(
            failures.is_empty(),
            "requests failed during swaps: {failures:?}"
        );
    }
    assert_eq!(gw.store.generation(), generation + 40);
    assert!(
        served.load(Ordering::Relaxed) > 40,
        "traffic flowed during the swaps"
    );
    assert_eq!(
        get(&gw.url("/"), &[("x-client-id", "limited")])
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS,
        "the unchanged per-client limit kept its counter"
    );
}
