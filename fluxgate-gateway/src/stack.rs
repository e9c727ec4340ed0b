//! The gateway's request path, assembled from FluxGate's layers and following one policy.
//!
//! ```text
//! Front ─ GatewayService ─ RateLimit ─┬─ Canary ─┬─ stable: Retry ─ RespondUnavailable ─ Balance ─ Proxy… ─ upstreams
//!          (body, 502)   (the slot)  │  (slot)  └─ canary: Retry ─ RespondUnavailable ─ Balance ─ Proxy… ─ canary upstreams
//!                                    └─ (no canary upstreams: the stable side alone)
//! ```
//!
//! [`Front`] (strict HTTP, request id, span, access log) is the door every request takes.
//!
//! It is [`fluxgate::stack::StackBuilder`]'s stack over one [`Proxy`] per upstream, behind a
//! service that takes any request body.
//!
//! - **Rate limiting first**, so that a refused request (`429`) costs nothing further down;
//!   it follows the policy's `rateLimit` through the [`PolicySlot`](fluxgate_core::store::PolicySlot).
//! - **The canary** chooses a side per request from the policy's `canary` section, judges the
//!   canary side and rolls it back on its own. Without canary upstreams there is no canary layer.
//! - **Each side is a [`Balance`](fluxgate_balance::Balance)** over one [`Proxy`] per upstream (keyed by the upstream URL),
//!   wrapped in [`RespondUnavailable`](fluxgate_balance::RespondUnavailable) (no healthy endpoint: `503`); every
//!   connection's clone of the stack shares it without a buffer (no channel, no task hop per
//!   request). Active health checks run through the proxies' hyper clients,
//!   as the policy's `loadBalancing.healthCheck` says: `grpc.health.v1.Health/Check` for
//!   `protocol=grpc` upstreams (and for all when the policy's check says `protocol: grpc`),
//!   otherwise `GET` of its `path` (`/healthz` by default).
//! - **Protocols**: each upstream is spoken to as its [`UpstreamSpec`] says (HTTP/1.1, h2c,
//!   gRPC, TLS with ALPN), through [`StackConfig::clients`].
//! - **Policy changes** reach every layer: the rate limiter and the canary read the slot on
//!   their own; each balancer's [`PolicyFollower`](fluxgate_balance::PolicyFollower) puts the
//!   new `loadBalancing` section in force on it.
//! - [`GatewayService`] takes any request body and never fails: a failure below it (a failed
//!   endpoint discovery) becomes a `502`. The proxy answers `502`/`504` for upstream failures. To a gRPC
//!   request (`content-type: application/grpc*`) every such refusal (`502`, `503`, `504`, ...)
//!   is a trailers-only gRPC answer instead (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, ...); the rate
//!   limiter answers gRPC's `RESOURCE_EXHAUSTED` itself. The balancers and the canary see the
//!   HTTP statuses (so a `502` counts as the upstream's failure), and a `grpc-status` in the
//!   trailers when the body ends (the balancer's [`PendingOutcome`](fluxgate_balance::future::PendingOutcome)).
//!
//! Keep the [`Gateway`] alive while its service is used: dropping it stops the health checks,
//! the canary judge and the policy follower.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use fluxgate_core::store::{PolicyId, PolicyStore};
//! use fluxgate_gateway::server::{ServerConfig, spawn};
//! use fluxgate_gateway::stack::{Gateway, StackConfig};
//!
//! let store = PolicyStore::new();
//! let id = PolicyId::new("payments", "checkout-service-policy");
//! let config = StackConfig::new(vec!["http://127.0.0.1:3000,weight=3".parse()?]);
//! let gateway = Gateway::build(&store, &id, &config)?;
//! let server = spawn("127.0.0.1:8080".parse()?, gateway.service(), ServerConfig::default()).await?;
//! # drop(server); Ok(()) }
//! ```

use std::sync::Arc;

use fluxgate::admin::{Admin, AdminBuilder};
pub use fluxgate::stack::StackError;
use fluxgate::stack::{Stack, StackBuilder};
use fluxgate_balance::BalanceHandle;
use fluxgate_canary::fleet::FleetStore;
use fluxgate_canary::{CanaryHandle, Side};
use fluxgate_core::store::{PolicyId, PolicyStore};
use fluxgate_ratelimit::store::{AnyStore, RedisStore};
use fluxgate_ratelimit::{MetricsSnapshot, RateLimitLayer};
use http::Request;

use crate::access_log::{AccessLog, Served};
use crate::discovery::DnsDiscovery;
use crate::front::Front;
use crate::probe::GatewayProbe;
use crate::proxy::{Proxy, ProxyBody, ProxyClients, ProxyConfig};
use crate::upstream::UpstreamSpec;

mod service;

pub use service::{GatewayFuture, GatewayService};

/// The request type inside the stack.
pub type ProxyRequest = Request<ProxyBody>;

/// The facade's stack: one type, whichever store keeps the rate-limit counters.
type GatewayStack = Stack<String, Served<Proxy>, ProxyBody, ProxyBody>;

/// What a [`Gateway`] is built from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StackConfig {
    /// The stable side's upstreams, with their weights.
    pub upstreams: Vec<UpstreamSpec>,
    /// The canary side's upstreams; none means no canary layer.
    pub canary_upstreams: Vec<UpstreamSpec>,
    /// How each proxy forwards (timeout, `Host`, the own HTTP/1.1 pool: on, and used for the
    /// upstreams that speak HTTP/1.1).
    pub proxy: ProxyConfig,
    /// The clients the proxies and health checks use (the TLS roots of `https://` upstreams);
    /// default: verified with the system's roots.
    pub clients: ProxyClients,
    /// Where rate-limit counters live: `None` for this process only, or a Redis store shared
    /// with the other replicas (its sync task is the caller's to spawn).
    pub rate_limit_store: Option<RedisStore>,
    /// How upstreams named by DNS are resolved: every address is an endpoint, resolved again
    /// every interval (see [`crate::discovery`]).
    pub discovery: DnsDiscovery,
    /// Where the canary's state and judgement are shared with the other replicas (a
    /// `RedisFleet`); `None` for this process only.
    pub canary_fleet: Option<Arc<dyn FleetStore>>,
    /// The access log; default off.
    pub access_log: AccessLog,
}

impl StackConfig {
    /// A stack over `upstreams`, without canary, with the default proxy config.
    #[must_use]
    pub fn new(upstreams: Vec<UpstreamSpec>) -> Self {
        Self {
            upstreams,
            canary_upstreams: Vec::new(),
            proxy: ProxyConfig::default().http1_pool(true),
            clients: ProxyClients::system(),
            rate_limit_store: None,
            discovery: DnsDiscovery::new(),
            canary_fleet: None,
            access_log: AccessLog::off(),
        }
    }

    /// Shares the canary's state and judgement with the other replicas through `store`.
    #[must_use]
    pub fn canary_fleet(mut self, store: Arc<dyn FleetStore>) -> Self {
        self.canary_fleet = Some(store);
        self
    }

    /// Resolves upstreams named by DNS with `discovery`.
    #[must_use]
    pub fn discovery(mut self, discovery: DnsDiscovery) -> Self {
        self.discovery = discovery;
        self
    }

    /// Sets the access log.
    #[must_use]
    pub fn access_log(mut self, log: AccessLog) -> Self {
        self.access_log = log;
        self
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

    /// Sets the clients (for example [`ProxyClients::with_ca`], for upstreams signed by a
    /// private CA).
    #[must_use]
    pub fn clients(mut self, clients: ProxyClients) -> Self {
        self.clients = clients;
        self
    }

    /// Sets the proxy config.
    #[must_use]
    pub fn proxy(mut self, proxy: ProxyConfig) -> Self {
        self.proxy = proxy;
        self
    }
}

/// A running request path and the handles to watch and steer it; see the [module docs](self).
#[derive(Debug)]
pub struct Gateway {
    service: Front<GatewayService>,
    stack: GatewayStack,
}

impl Gateway {
    /// Builds the stack following the policy `id` of `store`, and spawns its background tasks
    /// (health checks, canary judge, balancer policy followers). Must run inside a tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// [`StackError`] without upstreams, or when the canary cannot be built.
    pub fn build(
        store: &PolicyStore,
        id: &PolicyId,
        config: &StackConfig,
    ) -> Result<Self, StackError> {
        let probe = GatewayProbe::new(
            &config.clients,
            config.upstreams.iter().chain(&config.canary_upstreams),
        );
        let mut builder = StackBuilder::new(store, id);
        if let Some(fleet) = &config.canary_fleet {
            builder = builder.canary_fleet(Arc::clone(fleet));
        }
        if let Some(redis) = &config.rate_limit_store {
            let layer = RateLimitLayer::builder()
                .store(AnyStore::from(redis.clone()))
                .follow(store.slot(id));
            builder = builder.rate_limit(layer);
        }
        let stack = endpoints(builder, config).health_checks(probe).build()?;
        Ok(Self {
            service: Front::new(
                GatewayService::new(stack.service()),
                config.access_log.clone(),
            ),
            stack,
        })
    }

    /// The service to serve: cheap to clone, one clone per connection or request.
    #[must_use]
    pub fn service(&self) -> Front<GatewayService> {
        self.service.clone()
    }

    /// The rate limiter's counts so far.
    #[must_use]
    pub fn rate_limit_metrics(&self) -> MetricsSnapshot {
        self.stack.rate_limit().metrics()
    }

    /// The stable side's balancer.
    #[must_use]
    pub fn stable(&self) -> &BalanceHandle<String> {
        self.stack.stable()
    }

    fn canary_parts(&self) -> Option<(&CanaryHandle, &BalanceHandle<String>)> {
        self.stack.canary()
    }

    /// The canary, when there are canary upstreams.
    #[must_use]
    pub fn canary(&self) -> Option<&CanaryHandle> {
        self.canary_parts().map(|(handle, _)| handle)
    }

    /// The canary side's balancer, when there are canary upstreams.
    #[must_use]
    pub fn canary_endpoints(&self) -> Option<&BalanceHandle<String>> {
        self.canary_parts().map(|(_, endpoints)| endpoints)
    }

    /// An admin API builder that already knows this gateway's parts (balancers `stable` and
    /// `canary`, the canary under the policy's name, the rate limits); add the store and token.
    pub fn admin(&self, id: &PolicyId) -> AdminBuilder {
        let mut admin = Admin::builder()
            .balancer("stable", self.stable().clone())
            .rate_limits(self.stack.rate_limit());
        if let Some((handle, endpoints)) = self.canary_parts() {
            admin = admin
                .balancer("canary", endpoints.clone())
                .canary(id.to_string(), handle.clone());
        }
        admin
    }
}

/// Adds a proxy per upstream of `config` to `builder`, keyed by the upstream URL; an upstream
/// named by DNS is a proxy per address, followed by [`DnsDiscovery`].
fn endpoints(
    mut builder: StackBuilder<String, Served<Proxy>>,
    config: &StackConfig,
) -> StackBuilder<String, Served<Proxy>> {
    let logged = config.access_log.is_on();
    let make = |side| {
        let (clients, proxy) = (config.clients.clone(), config.proxy.clone());
        move |spec: &UpstreamSpec| {
            let clients = clients.each_for_upstream(spec);
            // The own HTTP/1.1 pool only for upstreams that speak HTTP/1.1.
            let own = proxy.http1_pool && !spec.protocol.is_http2();
            let proxy = proxy.clone().http1_pool(own);
            let upstream = Proxy::per_worker(clients, spec.upstream.clone(), proxy);
            Served::new(upstream, spec.upstream.to_string(), side).read_by(logged)
        }
    };
    let stable = config
        .discovery
        .start(&config.upstreams, make(Side::Stable));
    for (key, proxy, weight) in stable.initial {
        builder = builder.endpoint(key, proxy, weight);
    }
    if let Some(changes) = stable.changes {
        builder = builder.endpoint_changes(changes);
    }
    let canary = config
        .discovery
        .start(&config.canary_upstreams, make(Side::Canary));
    for (key, proxy, weight) in canary.initial {
        builder = builder.canary_endpoint(key, proxy, weight);
    }
    if let Some(changes) = canary.changes {
        builder = builder.canary_endpoint_changes(changes);
    }
    builder
}
