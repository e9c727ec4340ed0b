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
//! | `GET /healthz` | `200 ok` (the process is alive) |
//! | `GET /readyz` | `200 ready`, or `503` with the reason the [readiness check](AdminBuilder::readiness) gives (always `200` without one) |
//! | `GET /api/status` | JSON, a [`Status`](fluxgate_core::api::Status) (the types `fluxctl` reads): the store (generation, applied and refused counts, last refusal, removals that left a policy's traffic without a policy and the last one, policies renamed in their file and followed under the new name, policies kept in force after they left their file), the policies and their generations, every balancer's endpoints, every canary's [`Snapshot`](fluxgate_canary::Snapshot) with its last decision in words (`summary`), the rate-limit counts, the [sections](AdminBuilder::section) added |
//! | `GET /metrics` | Prometheus text format 0.0.4, or OpenMetrics by `Accept` (see [Metrics](#metrics)) |
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
//! # Metrics
//!
//! `GET /metrics` exports the parts given to the builder through [`crate::metrics::Metrics`]
//! (the families are listed there): the Prometheus text format 0.0.4, or OpenMetrics when the
//! scraper's `Accept` asks for `application/openmetrics-text`.
//!
//! # Example
//!
//! ```no_run
//! use fluxgate::admin::Admin;
//! use fluxgate::store::{PolicyId, PolicyStore};
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
use prometheus_client::registry::Registry;

use crate::metrics::{Format, Metrics};

pub use status::EndpointView;

type EndpointsFn = Box<dyn Fn() -> Vec<EndpointView> + Send + Sync>;
type LimitsFn = Box<dyn Fn() -> MetricsSnapshot + Send + Sync>;
type SectionFn = Box<dyn Fn() -> serde_json::Value + Send + Sync>;
type ReadinessFn = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

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
    readiness: Option<ReadinessFn>,
    registry: Registry,
}

/// Builds an [`Admin`]; every part is optional.
///
/// ```
/// use fluxgate::admin::Admin;
/// use fluxgate::store::PolicyStore;
///
/// let admin = Admin::builder().store(PolicyStore::new()).token(Some("s3cret".into())).build();
/// assert!(admin.is_protected());
/// let _router: axum::Router = admin.router();
/// ```
#[must_use]
pub struct AdminBuilder {
    inner: Inner,
    metrics: Metrics,
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
                readiness: None,
                registry: Registry::default(),
            },
            metrics: Metrics::new(),
        }
    }

    /// Whether the mutating endpoints require a bearer token.
    #[must_use]
    pub fn is_protected(&self) -> bool {
        self.inner.token.is_some()
    }

    /// What `GET /readyz` answers: the [readiness check](AdminBuilder::readiness), `Ok` without one.
    ///
    /// # Errors
    ///
    /// The reason the check gives for not being ready.
    pub fn readiness(&self) -> Result<(), String> {
        self.inner
            .readiness
            .as_ref()
            .map_or(Ok(()), |check| check())
    }

    /// The status document `GET /api/status` answers.
    #[must_use]
    pub fn status(&self) -> serde_json::Value {
        status::document(&self.inner)
    }

    /// The Prometheus text (format 0.0.4) `GET /metrics` answers.
    #[must_use]
    pub fn metrics(&self) -> String {
        crate::metrics::encode(&self.inner.registry, Format::Text)
    }

    /// The routes of the [module docs](self), ready to serve or to nest in a bigger router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(handlers::dashboard))
            .route("/healthz", get(handlers::healthz))
            .route("/readyz", get(handlers::readyz))
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
            .field("readiness", &self.readiness.is_some())
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
        self.metrics = self.metrics.store(store.clone());
        self.inner.store = Some(store);
        self
    }

    /// A canary to report and steer, under `name` (`?name=` of the canary actions).
    pub fn canary(mut self, name: impl Into<String>, handle: CanaryHandle) -> Self {
        let name = name.into();
        self.metrics = self.metrics.canary(name.clone(), handle.clone());
        self.inner.canaries.push((name, handle));
        self
    }

    /// A balancer to report, under `name`; its endpoints are named by their keys' `Display`.
    pub fn balancer<K>(mut self, name: impl Into<String>, handle: BalanceHandle<K>) -> Self
    where
        K: Clone + fmt::Display + Send + Sync + 'static,
    {
        let name = name.into();
        self.metrics = self.metrics.balancer(name.clone(), handle.clone());
        let read = move || {
            handle
                .snapshot()
                .iter()
                .map(EndpointView::from_snapshot)
                .collect()
        };
        self.inner.balancers.push((name, Box::new(read)));
        self
    }

    /// A rate limit layer whose counts to report (call again for several layers).
    pub fn rate_limits<St: RateLimitStore>(mut self, layer: &RateLimitLayer<St>) -> Self {
        self.metrics = self.metrics.rate_limits(layer);
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

    /// The check `GET /readyz` answers with: `Ok(())` is `200 ready`, `Err(reason)` is `503`
    /// with the reason (a gateway that is starting, draining, or has no healthy endpoint).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use fluxgate::admin::Admin;
    ///
    /// let draining = Arc::new(AtomicBool::new(false));
    /// let flag = Arc::clone(&draining);
    /// let admin = Admin::builder()
    ///     .readiness(move || if flag.load(Ordering::Relaxed) { Err("draining".into()) } else { Ok(()) })
    ///     .build();
    /// assert!(admin.readiness().is_ok());
    /// draining.store(true, Ordering::Relaxed);
    /// assert_eq!(admin.readiness(), Err("draining".to_owned()));
    /// ```
    pub fn readiness(
        mut self,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.inner.readiness = Some(Box::new(check));
        self
    }

    /// The admin API.
    pub fn build(mut self) -> Admin {
        self.metrics.register(&mut self.inner.registry);
        Admin {
            inner: Arc::new(self.inner),
        }
    }
}
