//! [`Stack`]: the recommended request path, assembled from one policy and the endpoint sets.
//!
//! ```text
//! RateLimit ─ Route ─┬─ Canary ─┬─ stable: Retry ─ RespondUnavailable ─ Balance ─ endpoints
//!                    │          └─ canary: Retry ─ RespondUnavailable ─ Balance ─ canary endpoints
//!                    └─ (no canary endpoints) stable side alone
//! ```
//!
//! See the [crate docs](crate) for why the layers come in this order.
//!
//! The layering is not part of the API: a [`Stack`] hands out a [`StackService`] (answering
//! with a [`StackBody`] through a [`StackFuture`]), whose type names the endpoints, the bodies
//! and the key, and neither the layers inside nor the rate-limit store (always an
//! [`AnyStore`]: the local one or a Redis one).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use fluxgate_balance::health::{Probe, ProbeFuture};
use fluxgate_balance::{BalanceHandle, Weighted};
use fluxgate_canary::fleet::{Fleet, FleetStore};
use fluxgate_canary::{Canary, CanaryError, CanaryHandle};
use fluxgate_core::outcome::ObservedBody;
use fluxgate_core::policy::HealthCheck;
use fluxgate_core::store::{PolicyId, PolicyStore};
use fluxgate_core::task::TaskHandle;
use fluxgate_ratelimit::RateLimitLayer;
use fluxgate_ratelimit::store::AnyStore;
use futures::{Stream, StreamExt as _};
use http::{Request, Response};
use tower::discover::Change;
use tower::util::Either;
use tower::{Layer, Service, ServiceExt};

/// The boxed error type, [`fluxgate_core::BoxError`] (the same type as `tower::BoxError`).
pub use fluxgate_core::BoxError;

mod service;
mod side;

use service::Observed;
pub use service::{StackBody, StackFuture, StackService};
use side::SideStart;

/// What the stack takes as an endpoint: a service answering `Request<B>` with `Response<RB>`,
/// cheap to clone (each clone of the stack polls and calls its own copy), sendable; implemented
/// for every such service.
///
/// ```
/// use fluxgate::stack::Endpoint;
///
/// fn takes<S: Endpoint<String, String>>(_: &S) {}
/// let echo = tower::service_fn(|request: http::Request<String>| async move {
///     Ok::<_, std::io::Error>(http::Response::new(request.into_body()))
/// });
/// takes(&echo);
/// ```
pub trait Endpoint<B, RB>:
    Service<Request<B>, Response = Response<RB>, Error: Into<BoxError>, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T, B, RB> Endpoint<B, RB> for T
where
    T: Service<Request<B>, Response = Response<RB>> + Clone + Send + Sync + 'static,
    T::Error: Into<BoxError>,
    T::Future: Send + 'static,
{
}

/// Changes to one side's endpoints (tower's `Discover`): inserts and removals by key.
pub type EndpointChanges<K, S> =
    Pin<Box<dyn Stream<Item = Result<Change<K, Weighted<S>>, BoxError>> + Send>>;

/// Why a [`Stack`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// There is no stable endpoint.
    #[error("the stack needs at least one stable endpoint")]
    NoEndpoint,
    /// The canary router could not be built.
    #[error("canary: {0}")]
    Canary(#[from] CanaryError),
}

/// Builds a [`Stack`] following one policy of a [`PolicyStore`]; see the [crate docs](crate).
///
/// ```
/// use fluxgate::stack::StackBuilder;
/// use fluxgate::store::{PolicyId, PolicyStore};
/// use tower::service_fn;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let store = PolicyStore::new();
/// let endpoint = service_fn(|_: http::Request<String>| async {
///     Ok::<_, std::io::Error>(http::Response::new(String::from("hello")))
/// });
/// let stack = StackBuilder::new(&store, &PolicyId::new("shop", "web"))
///     .endpoint("a", endpoint, 1)
///     .build()?;
/// assert!(stack.canary().is_none());
/// # Ok(()) }
/// ```
#[must_use]
pub struct StackBuilder<K, S> {
    store: PolicyStore,
    id: PolicyId,
    stable: Vec<(K, Weighted<S>)>,
    canary: Vec<(K, Weighted<S>)>,
    changes: [Option<EndpointChanges<K, S>>; 2],
    rate_limit: RateLimitLayer<AnyStore>,
    probe: Option<SharedProbe<K>>,
    fleet: Option<Arc<dyn FleetStore>>,
}

impl<K: fmt::Debug, S> fmt::Debug for StackBuilder<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn keys<K, S>(side: &[(K, Weighted<S>)]) -> Vec<&K> {
            side.iter().map(|(k, _)| k).collect()
        }
        f.debug_struct("StackBuilder")
            .field("id", &self.id)
            .field("stable", &keys(&self.stable))
            .field("canary", &keys(&self.canary))
            .field("changes", &self.changes.each_ref().map(|c| c.is_some()))
            .field("health_checks", &self.probe.is_some())
            .finish_non_exhaustive()
    }
}

impl<K, S> StackBuilder<K, S> {
    /// A stack following the policy `id` of `store`: no endpoints yet, rate limits in this
    /// process ([`LocalStore`](fluxgate_ratelimit::store::LocalStore)), no active health checks.
    pub fn new(store: &PolicyStore, id: &PolicyId) -> Self {
        Self {
            store: store.clone(),
            id: id.clone(),
            stable: Vec::new(),
            canary: Vec::new(),
            changes: [None, None],
            rate_limit: RateLimitLayer::builder()
                .store(AnyStore::local())
                .follow(store.slot(id)),
            probe: None,
            fleet: None,
        }
    }
}

impl<K, S> StackBuilder<K, S> {
    /// Adds a stable endpoint with its weight (at least 1).
    pub fn endpoint(mut self, key: K, service: S, weight: u32) -> Self {
        self.stable.push((key, Weighted::new(service, weight)));
        self
    }

    /// Adds a canary endpoint; with any, requests are split by the policy's `canary` section.
    pub fn canary_endpoint(mut self, key: K, service: S, weight: u32) -> Self {
        self.canary.push((key, Weighted::new(service, weight)));
        self
    }

    /// Changes the stable side's endpoints while it runs (DNS discovery, say): each insert or
    /// removal is passed to the balancer, which takes it in at once, requests or not (its
    /// handle and health checks see it).
    /// With changes, the stable side may start without endpoints.
    pub fn endpoint_changes(
        mut self,
        changes: impl Stream<Item = Result<Change<K, Weighted<S>>, BoxError>> + Send + 'static,
    ) -> Self {
        self.changes[0] = Some(changes.boxed());
        self
    }

    /// Changes the canary side's endpoints while it runs, as
    /// [`endpoint_changes`](Self::endpoint_changes) does for the stable side; with changes,
    /// there is a canary side even without canary endpoints yet.
    pub fn canary_endpoint_changes(
        mut self,
        changes: impl Stream<Item = Result<Change<K, Weighted<S>>, BoxError>> + Send + 'static,
    ) -> Self {
        self.changes[1] = Some(changes.boxed());
        self
    }

    /// Uses `layer` for rate limiting instead of a layer following the policy's `rateLimit` in
    /// this process. The layer is over [`AnyStore`], so the stack's type is the same whichever
    /// store keeps the counters: give the builder the store as an `AnyStore`
    /// (`RateLimitLayer::builder().store(AnyStore::from(redis)).follow(store.slot(&id))` for a
    /// Redis store shared by replicas, feature `redis`).
    ///
    /// ```
    /// use fluxgate::stack::StackBuilder;
    /// use fluxgate::store::{PolicyId, PolicyStore};
    /// use fluxgate::ratelimit::RateLimitLayer;
    /// use fluxgate::ratelimit::store::{AnyStore, LocalStore};
    /// use tower::service_fn;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let (store, id) = (PolicyStore::new(), PolicyId::new("shop", "web"));
    /// let counters = LocalStore::builder().max_keys(1_000).build();
    /// let layer = RateLimitLayer::builder()
    ///     .store(AnyStore::from(counters))
    ///     .admit_headers(false)
    ///     .follow(store.slot(&id));
    /// let endpoint = service_fn(|_: http::Request<String>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(String::new()))
    /// });
    /// let stack = StackBuilder::new(&store, &id)
    ///     .rate_limit(layer)
    ///     .endpoint("a", endpoint, 1)
    ///     .build()?;
    /// assert_eq!(stack.rate_limit().metrics().admitted, 0);
    /// # Ok(()) }
    /// ```
    pub fn rate_limit(mut self, layer: RateLimitLayer<AnyStore>) -> Self {
        self.rate_limit = layer;
        self
    }

    /// Shares the canary's state and judgement with the other replicas through `store` (a
    /// `RedisFleet`, feature `redis`), under the policy's namespace and name; see
    /// [`fluxgate_canary::fleet`].
    pub fn canary_fleet(mut self, store: Arc<dyn FleetStore>) -> Self {
        self.fleet = Some(store);
        self
    }

    /// Checks both sides' endpoints with `probe` (an `HttpProbe`, a `GrpcProbe`, a `probe_fn`)
    /// as the policy's `loadBalancing.healthCheck` says (every 200ms, unhealthy after 3 failures
    /// by default).
    pub fn health_checks(mut self, probe: impl Probe<K>) -> Self {
        self.probe = Some(SharedProbe(Arc::new(probe)));
        self
    }
}

/// One probe shared by both sides' health tasks.
struct SharedProbe<K>(Arc<dyn Probe<K>>);

impl<K> Clone for SharedProbe<K> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<K: 'static> Probe<K> for SharedProbe<K> {
    fn probe(&self, key: &K, check: &HealthCheck) -> ProbeFuture {
        self.0.probe(key, check)
    }
}

/// The request path of [`StackBuilder::build`] and the handles to watch and steer it.
///
/// Keep it alive while its service is used: dropping it stops the health checks, the canary's
/// judge and the balancers' policy followers.
///
/// Its type names only what a user chooses: the endpoints' key `K` and service `S`, the request
/// body `B` and the endpoints' response body `RB`; not the rate-limit store, not the layers.
pub struct Stack<K: Eq, S, B, RB> {
    service: StackService<K, S, B, RB>,
    rate_limit: RateLimitLayer<AnyStore>,
    stable: BalanceHandle<K>,
    canary: Option<(CanaryHandle, BalanceHandle<K>)>,
    tasks: Vec<TaskHandle>,
}

impl<K: Eq, S, B, RB> fmt::Debug for Stack<K, S, B, RB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("canary", &self.canary.is_some())
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl<K: Eq + Clone, S: Clone, B, RB> Stack<K, S, B, RB> {
    /// The service to serve; clone it per connection or request.
    #[must_use]
    pub fn service(&self) -> StackService<K, S, B, RB> {
        self.service.clone()
    }
}

impl<K: Eq, S, B, RB> Stack<K, S, B, RB> {
    /// The rate-limit layer in force (its [`metrics`](RateLimitLayer::metrics), its store).
    pub fn rate_limit(&self) -> &RateLimitLayer<AnyStore> {
        &self.rate_limit
    }

    /// The stable side's balancer.
    #[must_use]
    pub fn stable(&self) -> &BalanceHandle<K> {
        &self.stable
    }

    /// The canary and the canary side's balancer, when there are canary endpoints.
    #[must_use]
    pub fn canary(&self) -> Option<(&CanaryHandle, &BalanceHandle<K>)> {
        self.canary.as_ref().map(|(c, b)| (c, b))
    }
}

impl<K, S> StackBuilder<K, S>
where
    K: Eq + Clone + Send + Sync + 'static,
{
    /// Builds the stack and spawns its tasks: the balancers' policy followers, their health
    /// checks (with a probe), the canary's judge. Must run inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`StackError`] without stable endpoints, or when the canary cannot be built.
    pub fn build<B, RB>(self) -> Result<Stack<K, S, B, RB>, StackError>
    where
        S: Endpoint<B, RB>,
        B: Send + 'static,
        RB: Default + Send + 'static,
    {
        let Self {
            store,
            id,
            stable,
            canary,
            changes: [stable_changes, canary_changes],
            rate_limit,
            probe,
            fleet,
        } = self;
        if stable.is_empty() && stable_changes.is_none() {
            return Err(StackError::NoEndpoint);
        }
        let slot = store.slot(&id);
        let policy = slot
            .load_full()
            .and_then(|p| p.compiled().load_balancing().cloned())
            .unwrap_or_default();
        let mut tasks = Vec::new();
        let mut side = |endpoints: Vec<(K, Weighted<S>)>,
                        changes: Option<EndpointChanges<K, S>>| {
            let start = SideStart {
                store: &store,
                id: &id,
                probe: probe.as_ref(),
                tasks: &mut tasks,
            };
            start.start(policy.clone(), endpoints, changes)
        };
        let (stable_side, stable) = side(stable, stable_changes);
        let (route, canary) = if canary.is_empty() && canary_changes.is_none() {
            let observed: Observed<RB> = |response| response.map(ObservedBody::observed);
            (Either::Right(stable_side.map_response(observed)), None)
        } else {
            let (canary_side, endpoints) = side(canary, canary_changes);
            let fleet = fleet.map(|store| Fleet::shared(store, id.clone()));
            let (router, judge) = Canary::builder(stable_side, canary_side, slot)
                .fleet_opt(fleet)
                .build()?;
            let handle = router.handle();
            tasks.push(judge.spawn());
            (Either::Left(router), Some((handle, endpoints)))
        };
        Ok(Stack {
            service: StackService::new(rate_limit.layer(route)),
            rate_limit,
            stable,
            canary,
            tasks,
        })
    }
}
