//! The admin API as an axum [`Router`]: status, Prometheus metrics, policy apply and canary
//! actions, for a gateway built from FluxGate's layers.
//!
//! Use it to give operators (and `fluxctl apply --gateway`) a way in: build an [`Admin`] from the
//! handles of the parts you run (the [`PolicyStore`], each balancer's [`BalanceHandle`], each
//! canary's [`CanaryHandle`], each [`RateLimitLayer`]), then mount [`Admin::router`] on a
//! listener of its own (or merge it into your router under a prefix with `Router::nest`).
//!
//! # Endpoints
//!
//! | method and path | answer |
//! | --- | --- |
//! | `GET /` | a live dashboard: one self-contained HTML page that polls `/api/status` every second |
//! | `GET /healthz` | `200 ok` |
//! | `GET /api/status` | JSON, a [`Status`](fluxgate_core::api::Status) (the types `fluxctl` reads): the store (generation, applied and refused counts, last refusal, removals that left a policy's traffic without a policy and the last one, policies renamed in their file and followed under the new name, policies kept in force after they left their file), the policies and their generations, every balancer's endpoints, every canary's [`Snapshot`](fluxgate_canary::Snapshot) with its last decision in words (`summary`), the rate-limit counts, the [sections](AdminBuilder::section) added |
//! | `GET /metrics` | Prometheus text format 0.0.4 (families below) |
//! | `PUT /api/policies?namespace=NS` | applies a YAML or JSON body through the store, all or nothing: `200` with `trafficpolicy NS/NAME created\|configured\|unchanged` lines, `400` with the validation errors (nothing applied), `503` without a store |
//! | `POST /api/canary/{promote,abort,pause,resume}[?name=NAME]` | acts on a canary (`name` is needed when there are several): `200` with its [`CanaryStatus`](fluxgate_core::api::CanaryStatus) as JSON, `404` for an unknown canary, `409` when the phase does not allow it |
//!
//! # Authentication
//!
//! With a [`token`](AdminBuilder::token), the mutating endpoints (`PUT`, `POST`) need
//! `Authorization: Bearer TOKEN` and answer `401` otherwise; the comparison takes the same time
//! wherever the first difference is. Reads stay open. Without a token everything is open: bind
//! the admin listener to loopback then ([`Admin::is_protected`] tells).
//!
//! # Metric families
//!
//! Counters end in `_total`; `fluxgate_upstream_request_duration_seconds` is a histogram; the
//! rest are gauges. Per upstream, `fluxgate_upstream_requests_total` and the duration histogram
//! count the whole run; the other upstream gauges come from the balancer's snapshots and cover its
//! recent window (`requests_last_second`, `error_ratio`, latency p95 and peak EWMA). The canary's
//! `routed_total` and transitions and the rate-limit and store counts are counters.
//!
//! | family | type | labels |
//! | --- | --- | --- |
//! | `fluxgate_policy_store_generation` | gauge | |
//! | `fluxgate_policy_applies_total` | counter | `result` (`applied`, `rejected`) |
//! | `fluxgate_policy_removals_total` | counter | |
//! | `fluxgate_policy_generation` | gauge | `policy` |
//! | `fluxgate_upstream_requests_total` | counter | `balancer`, `endpoint`, `outcome` (success, failure, overload) |
//! | `fluxgate_upstream_request_duration_seconds` | histogram (5ms to 10s) | `balancer`, `endpoint`, `le` |
//! | `fluxgate_upstream_healthy` | gauge (1/0) | `balancer`, `endpoint` |
//! | `fluxgate_upstream_drained` | gauge (1/0) | `balancer`, `endpoint`, `reason` |
//! | `fluxgate_upstream_weight`, `fluxgate_upstream_effective_weight` | gauge | `balancer`, `endpoint` |
//! | `fluxgate_upstream_in_flight` | gauge | `balancer`, `endpoint` |
//! | `fluxgate_upstream_requests_last_second` | gauge | `balancer`, `endpoint` |
//! | `fluxgate_upstream_error_ratio` | gauge | `balancer`, `endpoint` |
//! | `fluxgate_upstream_latency_p95_seconds`, `fluxgate_upstream_latency_ewma_seconds` | gauge | `balancer`, `endpoint` |
//! | `fluxgate_canary_weight_percent` | gauge | `canary` |
//! | `fluxgate_canary_phase` | gauge (1 for the current phase) | `canary`, `phase` |
//! | `fluxgate_canary_failed_checks` | gauge | `canary` |
//! | `fluxgate_canary_routed_total` | counter | `canary`, `side` |
//! | `fluxgate_canary_window_requests` | gauge | `canary`, `side` |
//! | `fluxgate_canary_error_ratio`, `fluxgate_canary_latency_p99_seconds` | gauge | `canary`, `side` |
//! | `fluxgate_canary_transitions_total` | counter | `canary`, `kind` |
//! | `fluxgate_ratelimit_requests_total` | counter | `policy`, `result` (`admitted`, `refused`, `rejected`) |
//! | `fluxgate_ratelimit_admitted_total`, `fluxgate_ratelimit_refused_total`, `fluxgate_ratelimit_shadow_refused_total` | counter | `policy`, `limit`, `key` |
//!
//! # Example
//!
//! ```no_run
//! use fluxgate::admin::Admin;
//! use fluxgate::core::store::{PolicyId, PolicyStore};
//! use fluxgate::ratelimit::RateLimitLayer;
//!
//! # async fn run() -> std::io::Result<()> {
//! let store = PolicyStore::new();
//! let limits = RateLimitLayer::from_slot(store.slot(&PolicyId::new("shop", "edge")));
//! let admin = Admin::builder()
//!     .store(store)
//!     .rate_limits(&limits)
//!     .token(std::env::var("ADMIN_TOKEN").ok())
//!     .build();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9090").await?;
//! axum::serve(listener, admin.router()).await
//! # }
//! ```

mod auth;
mod handlers;
mod metrics;
mod status;

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post, put};
use fluxgate_balance::BalanceHandle;
use fluxgate_canary::CanaryHandle;
use fluxgate_core::store::PolicyStore;
use fluxgate_ratelimit::{MetricsSnapshot, RateLimitLayer, store::RateLimitStore};

pub use status::EndpointView;

type EndpointsFn = Box<dyn Fn() -> Vec<EndpointView> + Send + Sync>;
type LimitsFn = Box<dyn Fn() -> MetricsSnapshot + Send + Sync>;
type SectionFn = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The admin API of one gateway; see the [module docs](self). Cloning is cheap.
#[derive(Clone)]
pub struct Admin {
    inner: Arc<Inner>,
}

struct Inner {
    store: Option<PolicyStore>,
    canaries: Vec<(String, CanaryHandle)>,
    balancers: Vec<(String, EndpointsFn)>,
    rate_limits: Vec<LimitsFn>,
    sections: Vec<(String, SectionFn)>,
    token: Option<String>,
}

/// Builds an [`Admin`]; every part is optional.
///
/// ```
/// use fluxgate::admin::Admin;
/// use fluxgate::core::store::PolicyStore;
///
/// let admin = Admin::builder().store(PolicyStore::new()).token(Some("s3cret".into())).build();
/// assert!(admin.is_protected());
/// let _router: axum::Router = admin.router();
/// ```
#[must_use]
pub struct AdminBuilder {
    inner: Inner,
}

impl Admin {
    /// An empty builder.
    pub fn builder() -> AdminBuilder {
        AdminBuilder {
            inner: Inner {
                store: None,
                canaries: Vec::new(),
                balancers: Vec::new(),
                rate_limits: Vec::new(),
                sections: Vec::new(),
                token: None,
            },
        }
    }

    /// Whether the mutating endpoints require a bearer token.
    #[must_use]
    pub fn is_protected(&self) -> bool {
        self.inner.token.is_some()
    }

    /// The status document `GET /api/status` answers.
    #[must_use]
    pub fn status(&self) -> serde_json::Value {
        status::document(&self.inner)
    }

    /// The Prometheus text `GET /metrics` answers.
    #[must_use]
    pub fn metrics(&self) -> String {
        metrics::exposition(&self.inner)
    }

    /// The routes of the [module docs](self), ready to serve or to nest in a bigger router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(handlers::dashboard))
            .route("/healthz", get(handlers::healthz))
            .route("/api/status", get(handlers::status))
            .route("/metrics", get(handlers::metrics))
            .route("/api/policies", put(handlers::put_policies))
            .route("/api/canary/{action}", post(handlers::canary_action))
            .with_state(self.clone())
    }
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("store", &self.store.is_some())
            .field("canaries", &names(&self.canaries))
            .field("balancers", &names(&self.balancers))
            .field("rate_limits", &self.rate_limits.len())
            .field("sections", &names(&self.sections))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn names<T>(list: &[(String, T)]) -> Vec<&str> {
    list.iter().map(|(name, _)| name.as_str()).collect()
}

impl fmt::Debug for AdminBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl AdminBuilder {
    /// The store the policies are read from (`/api/status`, `/metrics`) and applied to
    /// (`PUT /api/policies`).
    pub fn store(mut self, store: PolicyStore) -> Self {
        self.inner.store = Some(store);
        self
    }

    /// A canary to report and steer, under `name` (`?name=` of the canary actions).
    pub fn canary(mut self, name: impl Into<String>, handle: CanaryHandle) -> Self {
        self.inner.canaries.push((name.into(), handle));
        self
    }

    /// A balancer to report, under `name`; its endpoints are named by their keys' `Display`.
    pub fn balancer<K>(mut self, name: impl Into<String>, handle: BalanceHandle<K>) -> Self
    where
        K: Clone + fmt::Display + Send + Sync + 'static,
    {
        let read = move || {
            handle
                .snapshot()
                .iter()
                .map(EndpointView::from_snapshot)
                .collect()
        };
        self.inner.balancers.push((name.into(), Box::new(read)));
        self
    }

    /// A rate limit layer whose counts to report (call again for several layers).
    pub fn rate_limits<St: RateLimitStore>(mut self, layer: &RateLimitLayer<St>) -> Self {
        let layer = layer.clone();
        self.inner
            .rate_limits
            .push(Box::new(move || layer.metrics()));
        self
    }

    /// A section of its own in `/api/status`, under `name`, read on each request (the state of
    /// a part the admin API does not know, such as the gateway's link to Redis).
    ///
    /// ```
    /// use fluxgate::admin::Admin;
    ///
    /// let admin = Admin::builder().section("redis", || serde_json::json!({"joined": false})).build();
    /// assert_eq!(admin.status()["redis"]["joined"], false);
    /// ```
    pub fn section<F>(mut self, name: impl Into<String>, read: F) -> Self
    where
        F: Fn() -> serde_json::Value + Send + Sync + 'static,
    {
        self.inner.sections.push((name.into(), Box::new(read)));
        self
    }

    /// The bearer token the mutating endpoints require; `None` leaves them open.
    pub fn token(mut self, token: Option<String>) -> Self {
        self.inner.token = token.filter(|t| !t.is_empty());
        self
    }

    /// The admin API.
    pub fn build(self) -> Admin {
        Admin {
            inner: Arc::new(self.inner),
        }
    }
}
