//! Shared helpers: scriptable in-process endpoints and a request driver.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use fluxgate_balance::Weighted;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tower::{BoxError, Service, ServiceExt};

pub type Req = http::Request<()>;
pub type Resp = http::Response<&'static str>;
pub type EndpointFuture = Pin<Box<dyn Future<Output = Result<Resp, Infallible>> + Send>>;

pub type EndpointList = Vec<(&'static str, Weighted<Endpoint>)>;
pub type Scripts = HashMap<&'static str, Arc<Script>>;

/// What an endpoint does, changeable while the test runs.
#[derive(Debug, Default)]
pub struct Script {
    pub latency_ms: AtomicU64,
    pub status: AtomicU16,
    pub served: AtomicU64,
    /// Reported utilisation in thousandths (0: none).
    pub util: AtomicU32,
}

#[derive(Clone)]
pub struct Endpoint {
    pub name: &'static str,
    pub script: Arc<Script>,
}

impl Service<Req> for Endpoint {
    type Response = Resp;
    type Error = Infallible;
    type Future = EndpointFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Req) -> Self::Future {
        let script = Arc::clone(&self.script);
        let name = self.name;
        script.served.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            let ms = script.latency_ms.load(Ordering::Relaxed);
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let status = match script.status.load(Ordering::Relaxed) {
                0 => 200,
                s => s,
            };
            let mut response = http::Response::builder().status(status);
            let util = script.util.load(Ordering::Relaxed);
            if util > 0 {
                response = response.header(
                    "endpoint-load-metrics",
                    format!("TEXT cpu_utilization={}", f64::from(util) / 1000.0),
                );
            }
            Ok(response.body(name).unwrap())
        })
    }
}

pub fn endpoint(name: &'static str, latency_ms: u64) -> (Endpoint, Arc<Script>) {
    let script = Arc::new(Script::default());
    script.latency_ms.store(latency_ms, Ordering::Relaxed);
    (
        Endpoint {
            name,
            script: Arc::clone(&script),
        },
        script,
    )
}

/// Endpoints named by `names`, with `latencies` and weight 1 each, plus their scripts.
pub fn endpoints(spec: &[(&'static str, u64, u32)]) -> (EndpointList, Scripts) {
    let mut list = Vec::new();
    let mut scripts = HashMap::new();
    for &(name, latency, weight) in spec {
        let (e, s) = endpoint(name, latency);
        list.push((name, Weighted::new(e, weight)));
        scripts.insert(name, s);
    }
    (list, scripts)
}

/// Counts of answers per endpoint name, and of errors.
#[derive(Debug, Default)]
pub struct Tally {
    pub by_name: HashMap<&'static str, u64>,
    pub errors: u64,
    pub failed_status: u64,
}

impl Tally {
    pub fn get(&self, name: &str) -> u64 {
        self.by_name.get(name).copied().unwrap_or(0)
    }
}

/// Sends `n` requests, at most `concurrency` at a time, `gap` apart (if any).
pub async fn drive<S>(svc: &mut S, n: usize, concurrency: usize, gap: Option<Duration>) -> Tally
where
    S: Service<Req, Response = Resp, Error = BoxError>,
{
    let mut tally = Tally::default();
    let mut in_flight = FuturesUnordered::new();
    let record = |tally: &mut Tally, r: Result<Resp, BoxError>| match r {
        Ok(resp) => {
            if resp.status().is_server_error() {
                tally.failed_status += 1;
            }
            *tally.by_name.entry(*resp.body()).or_default() += 1;
        }
        Err(_) => tally.errors += 1,
    };
    for _ in 0..n {
        while in_flight.len() >= concurrency {
            if let Some(r) = in_flight.next().await {
                record(&mut tally, r);
            }
        }
        let fut = svc.ready().await.unwrap().call(http::Request::new(()));
        in_flight.push(fut);
        if let Some(gap) = gap {
            // Keep completing responses while waiting.
            let sleep = tokio::time::sleep(gap);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    Some(r) = in_flight.next(), if !in_flight.is_empty() => record(&mut tally, r),
                }
            }
        }
    }
    while let Some(r) = in_flight.next().await {
        record(&mut tally, r);
    }
    tally
}
