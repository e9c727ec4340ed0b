//! Test backends that count their calls and answer with a chosen status and delay.
#![allow(dead_code, unreachable_pub)]

pub mod fleet;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use fluxgate_canary::{BoxError, Canary, CanaryOptions, Judge};
use fluxgate_core::policy::{CompiledCanary, CompiledPolicy, parse_policies};
use http::{Request, Response, StatusCode};
use tower::{Service, ServiceExt};

/// A backend named `name`, counting calls, answering `status` after `delay`.
#[derive(Clone, Debug)]
pub struct Backend {
    pub name: &'static str,
    pub calls: Arc<AtomicUsize>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
    /// Every `fail_every`-th call answers 500 (0: never).
    fail_every: Arc<AtomicU64>,
}

impl Backend {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            calls: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            delay_ms: Arc::default(),
            fail_every: Arc::default(),
        }
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
    pub fn fail_every(&self, n: u64) {
        self.fail_every.store(n, Ordering::SeqCst);
    }
}

impl Service<Request<()>> for Backend {
    type Response = Response<&'static str>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) as u64 + 1;
        let every = self.fail_every.load(Ordering::SeqCst);
        let status = if every > 0 && n.is_multiple_of(every) {
            500
        } else {
            self.status.load(Ordering::SeqCst)
        };
        let delay = Duration::from_millis(self.delay_ms.load(Ordering::SeqCst));
        let name = self.name;
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut response = Response::new(name);
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            Ok(response)
        })
    }
}

pub type Router = Canary<Backend, Backend>;

/// A compiled canary from the YAML of `spec.canary` (a flow mapping).
pub fn canary(spec: &str) -> CompiledCanary {
    compiled(spec).canary().unwrap().clone()
}

pub fn compiled(spec: &str) -> CompiledPolicy {
    let yaml = format!(
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {{name: web, namespace: t}}\nspec:\n  canary: {spec}\n"
    );
    CompiledPolicy::compile(&parse_policies(yaml.as_bytes()).unwrap()[0]).unwrap()
}

pub fn yaml(spec: &str) -> String {
    format!(
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {{name: web, namespace: t}}\nspec:\n  canary: {spec}\n"
    )
}

/// A router with fresh backends, and its judge spawned.
pub fn router(spec: &str) -> (Router, Backend, Backend) {
    router_with(spec, CanaryOptions::default())
}

pub fn router_with(spec: &str, options: CanaryOptions) -> (Router, Backend, Backend) {
    let (stable, canary) = (Backend::new("stable"), Backend::new("canary"));
    let (router, judge): (Router, Judge) =
        Canary::with_options(stable.clone(), canary.clone(), canary_src(spec), options).unwrap();
    judge.spawn().detach();
    (router, stable, canary)
}

fn canary_src(spec: &str) -> CompiledCanary {
    canary(spec)
}

/// Sends one request; returns the name of the side that answered.
pub async fn send(router: &Router, request: Request<()>) -> Result<&'static str, BoxError> {
    Ok(*router.clone().oneshot(request).await?.body().get_ref())
}

pub async fn get(router: &Router) -> &'static str {
    send(router, Request::new(())).await.unwrap()
}

/// Sends `n` plain requests at once (concurrently, so delays overlap).
pub async fn burst(router: &Router, n: usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let r = router.clone();
        set.spawn(async move { r.oneshot(Request::new(())).await.map(|_| ()) });
    }
    while let Some(result) = set.join_next().await {
        let _ = result.unwrap();
    }
}

/// Sleeps just past the next analysis when called right after the previous one.
pub async fn next_interval(interval: Duration) {
    tokio::time::sleep(interval).await;
}
