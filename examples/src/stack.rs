//! The gateway's request path, assembled from FluxGate's layers and following one policy.
//!
//! ```text
//! GatewayService ─ RateLimit ─┬─ Canary ─┬─ stable: Buffer ─ Http503 ─ Balance ─ Proxy… ─ upstreams
//!   (body, 502)   (the slot)  │  (slot)  └─ canary: Buffer ─ Http503 ─ Balance ─ Proxy… ─ canary upstreams
//!                             └─ (no canary upstreams: the stable side alone)
//! ```
//!
//! - **Rate limiting first**, so that a refused request (`429`) costs nothing further down;
//!   it follows the policy's `rateLimit` through the [`PolicySlot`](fluxgate_core::store::PolicySlot).
//! - **The canary** chooses a side per request from the policy's `canary` section, judges the
//!   canary side and rolls it back on its own. Without canary upstreams there is no canary layer.
//! - **Each side is a [`Balance`]** over one [`Proxy`] per upstream (keyed by the upstream URL),
//!   wrapped in [`Http503`] (no healthy endpoint: `503`) and shared through a tower [`Buffer`]
//!   (a `Balance` is not `Clone`). Active health checks (`GET /healthz` by default) run through
//!   the proxy's hyper client, as the policy's `loadBalancing.healthCheck` says.
//! - **Policy changes** reach every layer: the rate limiter and the canary read the slot on
//!   their own; each balancer's [`PolicyFollower`](fluxgate_balance::PolicyFollower) puts the
//!   new `loadBalancing` section in force on it.
//! - [`GatewayService`] takes any request body and never fails: a failure below it (a closed
//!   buffer) becomes a `502`. The proxy answers `502`/`504` for upstream failures.
//!
//! Keep the [`Gateway`] alive while its service is used: dropping it stops the health checks,
//! the canary judge and the policy follower.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use fluxgate_core::store::{PolicyId, PolicyStore};
//! use fluxgate_examples::server::{ServerConfig, spawn};
//! use fluxgate_examples::stack::{Gateway, StackConfig};
//!
//! let store = PolicyStore::new();
//! let id = PolicyId::new("payments", "checkout-service-policy");
//! let config = StackConfig::new(vec!["http://127.0.0.1:3000,weight=3".parse()?]);
//! let gateway = Gateway::build(&store, &id, &config)?;
//! let server = spawn("127.0.0.1:8080".parse()?, gateway.service(), ServerConfig::default()).await?;
//! # drop(server); Ok(()) }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use fluxgate::admin::{Admin, AdminBuilder};
use fluxgate_balance::future::ResponseFuture as BalanceFuture;
use fluxgate_balance::health::HttpProbe;
use fluxgate_balance::{Balance, BalanceHandle, Http503, Http503Future, Static, Weighted};
use fluxgate_canary::{Canary, CanaryError, CanaryHandle};
use fluxgate_core::policy::LoadBalancing;
use fluxgate_core::store::{PolicyId, PolicyStore};
use fluxgate_ratelimit::store::RedisStore;
use fluxgate_ratelimit::{MetricsSnapshot, RateLimit, RateLimitLayer};
use futures::FutureExt;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::task::JoinHandle;
use tower::buffer::Buffer;
use tower::util::Oneshot;
use tower::{Layer, Service, ServiceExt};

use crate::proxy::{self, BoxError, Proxy, ProxyBody, ProxyClient, ProxyConfig, proxy_client};
use crate::upstream::UpstreamSpec;

/// The request type inside the stack.
pub type ProxyRequest = Request<ProxyBody>;

/// One side: a buffered, 503-answering balancer over proxies.
type Side = Buffer<ProxyRequest, Http503Future<BalanceFuture<proxy::ResponseFuture, String>>>;

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>;

/// What a [`Gateway`] is built from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StackConfig {
    /// The stable side's upstreams, with their weights.
    pub upstreams: Vec<UpstreamSpec>,
    /// The canary side's upstreams; none means no canary layer.
    pub canary_upstreams: Vec<UpstreamSpec>,
    /// How each proxy forwards (timeout, `Host`).
    pub proxy: ProxyConfig,
    /// Requests each side's buffer holds while its balancer is busy; default 1024.
    pub buffer: usize,
    /// Where rate-limit counters live: `None` for this process only, or a Redis store shared
    /// with the other replicas (its sync task is the caller's to spawn).
    pub rate_limit_store: Option<RedisStore>,
}

impl StackConfig {
    /// A stack over `upstreams`, without canary, with the default proxy config.
    #[must_use]
    pub fn new(upstreams: Vec<UpstreamSpec>) -> Self {
        Self {
            upstreams,
            canary_upstreams: Vec::new(),
            proxy: ProxyConfig::default(),
            buffer: 1024,
            rate_limit_store: None,
        }
    }

    /// Shares the rate-limit counters with other replicas through `store`.
    #[must_use]
    pub fn rate_limit_store(mut self, store: RedisStore) -> Self {
        self.rate_limit_store = Some(store);
        self
    }

    /// Sets the canary side's upstreams.
    #[must_use]
    pub fn canary_upstreams(mut self, upstreams: Vec<UpstreamSpec>) -> Self {
        self.canary_upstreams = upstreams;
        self
    }

    /// Sets the proxy config.
    #[must_use]
    pub fn proxy(mut self, proxy: ProxyConfig) -> Self {
        self.proxy = proxy;
        self
    }
}

/// Why a [`Gateway`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// There is no stable upstream.
    #[error("the gateway needs at least one upstream")]
    NoUpstream,
    /// The canary router could not be built.
    #[error("canary: {0}")]
    Canary(#[from] CanaryError),
}

/// The canary side of a running gateway.
#[derive(Debug, Clone)]
struct CanaryParts {
    handle: CanaryHandle,
    endpoints: BalanceHandle<String>,
}

/// A running request path and the handles to watch and steer it; see the [module docs](self).
#[derive(Debug)]
pub struct Gateway {
    service: GatewayService,
    rate_limit: Limits,
    stable: BalanceHandle<String>,
    canary: Option<CanaryParts>,
    tasks: Vec<JoinHandle<()>>,
}

impl Gateway {
    /// Builds the stack following the policy `id` of `store`, and spawns its background tasks
    /// (health checks, canary judge, balancer policy follower). Must run inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`StackError`] without upstreams, or when the canary cannot be built.
    pub fn build(
        store: &PolicyStore,
        id: &PolicyId,
        config: &StackConfig,
    ) -> Result<Self, StackError> {
        if config.upstreams.is_empty() {
            return Err(StackError::NoUpstream);
        }
        let slot = store.slot(id);
        let policy = slot
            .load_full()
            .and_then(|p| p.compiled().load_balancing().cloned())
            .unwrap_or_default();
        let client = proxy_client();
        let mut tasks = Vec::new();
        let (stable_side, stable) = side(&client, config, &config.upstreams, &policy, &mut tasks);
        tasks.push(stable.follow(store, id).spawn());
        let (routed, canary) = if config.canary_upstreams.is_empty() {
            (Route::Direct(stable_side), None)
        } else {
            let (canary_side, endpoints) = side(
                &client,
                config,
                &config.canary_upstreams,
                &policy,
                &mut tasks,
            );
            tasks.push(endpoints.follow(store, id).spawn());
            let (router, judge) = Canary::new(stable_side, canary_side, slot.clone())?;
            tasks.push(judge.spawn());
            let handle = router.handle();
            (
                Route::Split(router),
                Some(CanaryParts { handle, endpoints }),
            )
        };
        let (rate_limit, inner) = match &config.rate_limit_store {
            None => {
                let layer = RateLimitLayer::from_slot(slot);
                let service = Limited::Local(layer.layer(routed));
                (Limits::Local(layer), service)
            }
            Some(store) => {
                let layer = RateLimitLayer::builder().store(store.clone()).follow(slot);
                let service = Limited::Redis(layer.layer(routed));
                (Limits::Redis(layer), service)
            }
        };
        let service = GatewayService { inner };
        Ok(Self {
            service,
            rate_limit,
            stable,
            canary,
            tasks,
        })
    }

    /// The service to serve: cheap to clone, one clone per connection or request.
    #[must_use]
    pub fn service(&self) -> GatewayService {
        self.service.clone()
    }

    /// The rate limiter's counts so far.
    #[must_use]
    pub fn rate_limit_metrics(&self) -> MetricsSnapshot {
        match &self.rate_limit {
            Limits::Local(layer) => layer.metrics(),
            Limits::Redis(layer) => layer.metrics(),
        }
    }

    /// The stable side's balancer.
    #[must_use]
    pub fn stable(&self) -> &BalanceHandle<String> {
        &self.stable
    }

    /// The canary, when there are canary upstreams.
    #[must_use]
    pub fn canary(&self) -> Option<&CanaryHandle> {
        self.canary.as_ref().map(|c| &c.handle)
    }

    /// The canary side's balancer, when there are canary upstreams.
    #[must_use]
    pub fn canary_endpoints(&self) -> Option<&BalanceHandle<String>> {
        self.canary.as_ref().map(|c| &c.endpoints)
    }

    /// An admin API builder that already knows this gateway's parts (balancers `stable` and
    /// `canary`, the canary under the policy's name, the rate limits); add the store and token.
    pub fn admin(&self, id: &PolicyId) -> AdminBuilder {
        let mut admin = Admin::builder().balancer("stable", self.stable.clone());
        admin = match &self.rate_limit {
            Limits::Local(layer) => admin.rate_limits(layer),
            Limits::Redis(layer) => admin.rate_limits(layer),
        };
        if let Some(canary) = &self.canary {
            admin = admin
                .balancer("canary", canary.endpoints.clone())
                .canary(id.to_string(), canary.handle.clone());
        }
        admin
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One side: a proxy per upstream in a balancer, its health task spawned.
fn side(
    client: &ProxyClient,
    config: &StackConfig,
    upstreams: &[UpstreamSpec],
    policy: &LoadBalancing,
    tasks: &mut Vec<JoinHandle<()>>,
) -> (Side, BalanceHandle<String>) {
    let endpoints = upstreams.iter().map(|spec| {
        let proxy = Proxy::new(client.clone(), spec.upstream.clone(), config.proxy.clone());
        (
            spec.upstream.to_string(),
            Weighted::new(proxy, spec.weight.get()),
        )
    });
    let balance: Balance<Static<String, Weighted<Proxy>>, ProxyRequest> =
        Balance::new(policy.clone(), endpoints);
    let handle = balance.handle();
    tasks.push(
        balance
            .health_task(HttpProbe::<_, ProxyBody>::new(client.clone()))
            .spawn(),
    );
    (
        Buffer::new(Http503::new(balance), config.buffer.max(1)),
        handle,
    )
}

/// The canary router, or the stable side alone.
#[derive(Debug, Clone)]
enum Route {
    Direct(Side),
    Split(Canary<Side, Side>),
}

impl Service<ProxyRequest> for Route {
    type Response = Response<ProxyBody>;
    type Error = BoxError;
    type Future = BoxFuture<Response<ProxyBody>, BoxError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Self::Direct(side) => side.poll_ready(cx),
            Self::Split(canary) => canary.poll_ready(cx),
        }
    }

    fn call(&mut self, request: ProxyRequest) -> Self::Future {
        match self {
            Self::Direct(side) => Box::pin(side.call(request)),
            Self::Split(canary) => {
                let future = canary.call(request);
                Box::pin(async move { Ok(future.await?.map(BodyExt::boxed_unsync)) })
            }
        }
    }
}

/// The rate limit layer, over the local store or over Redis.
#[derive(Debug)]
enum Limits {
    Local(RateLimitLayer),
    Redis(RateLimitLayer<RedisStore>),
}

/// The rate-limited request path, over the local store or over Redis.
#[derive(Debug, Clone)]
enum Limited {
    Local(RateLimit<Route>),
    Redis(RateLimit<Route, RedisStore>),
}

/// The whole request path as one service; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct GatewayService {
    inner: Limited,
}

impl<B> Service<Request<B>> for GatewayService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = BoxFuture<Response<ProxyBody>, Infallible>;

    /// Always ready: readiness is awaited per request in `call` (the buffers give backpressure).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let request: ProxyRequest = request.map(|body| body.map_err(Into::into).boxed_unsync());
        let answer = |result: Result<Response<ProxyBody>, BoxError>| {
            Ok(result.unwrap_or_else(|error| bad_gateway(&error)))
        };
        match &self.inner {
            Limited::Local(inner) => {
                let call: Oneshot<RateLimit<Route>, ProxyRequest> = inner.clone().oneshot(request);
                Box::pin(call.map(answer))
            }
            Limited::Redis(inner) => Box::pin(inner.clone().oneshot(request).map(answer)),
        }
    }
}

/// The answer when a request fails inside the gateway (a closed buffer).
fn bad_gateway(error: &BoxError) -> Response<ProxyBody> {
    tracing::warn!(%error, "request failed inside the gateway");
    proxy::text_response(
        StatusCode::BAD_GATEWAY,
        "the gateway could not route the request",
    )
}
