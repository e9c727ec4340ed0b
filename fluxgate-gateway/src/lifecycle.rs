//! The gateway's lifecycle: readiness, the stop signals and the drain of a graceful shutdown.
//!
//! What the `fluxgate` binary does with it, in order:
//! 1. it wraps the served request path in [`Lifecycle::track`], which counts the requests in
//!    flight (from their arrival to the end of their response body);
//! 2. the admin API's `/readyz` answers with [`Lifecycle::readiness`]: ready once the listeners
//!    are bound ([`Lifecycle::listening`]), while the policy is in the store, while each side
//!    (stable, and canary when there is one) has at least one endpoint that passes its health
//!    checks, and until the shutdown begins; `/healthz` stays `200` as long as the process
//!    serves;
//! 3. [`shutdown_signal`], installed before anything else starts, waits for `SIGTERM` (what
//!    Kubernetes sends) or `SIGINT` (Ctrl-C);
//! 4. [`Lifecycle::drain`] turns `/readyz` to `503`, stops accepting connections (a new
//!    connection is refused), lets the requests in flight finish, closing each connection after
//!    its last response, and waits for them at most the grace period. Requests still running at
//!    its end are cut (their connections are dropped when the process exits) and counted in a
//!    warning and in the [`DrainReport`]; the process still exits `0`, since it did what a
//!    shutdown asks within the time it was given.
//!
//! Give Kubernetes a `terminationGracePeriodSeconds` above the grace period (`--grace-period`,
//! 30s by default), plus the `preStop` delay if there is one.
//!
//! ```no_run
//! # async fn run(gateway: fluxgate_gateway::stack::Gateway, store: fluxgate_core::store::PolicyStore, id: fluxgate_core::store::PolicyId) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use fluxgate_gateway::lifecycle::{Lifecycle, shutdown_signal};
//! use fluxgate_gateway::server::{ServerConfig, spawn};
//!
//! let stop = shutdown_signal()?;
//! let grace = Duration::from_secs(30);
//! let lifecycle = Lifecycle::new();
//! let mut config = ServerConfig::default();
//! config.drain_timeout = grace;
//! let proxy = spawn("127.0.0.1:8080".parse()?, lifecycle.track(gateway.service()), config).await?;
//! let admin = gateway.admin(&id).readiness(lifecycle.readiness(&gateway, store, id.clone())).build();
//! let admin = spawn("127.0.0.1:9090".parse()?, admin.router(), ServerConfig::default()).await?;
//! lifecycle.listening();
//! stop.await;
//! let report = lifecycle.drain(proxy, grace).await;
//! admin.shutdown().await;
//! assert_eq!(report.cut, 0);
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use fluxgate_balance::{BalanceHandle, Health};
use fluxgate_core::store::{PolicyId, PolicyStore};
use http::{Request, Response};
use http_body::Body;
use tower::Service;

use crate::server::ServerHandle;
use crate::stack::Gateway;
use crate::watched::{End, Watched, Watcher};

/// The state of one gateway process; see the [module docs](self). Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    listening: AtomicBool,
    draining: AtomicBool,
    in_flight: AtomicUsize,
    /// Requests dropped before their end during a drain (a serving worker's runtime drops the
    /// connections still open when its drain times out).
    cut: AtomicUsize,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Requests still in flight when the grace period ended.
    pub cut: usize,
}

impl Lifecycle {
    /// A process that is starting: not listening yet, not ready.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the listeners as bound.
    pub fn listening(&self) {
        self.state.listening.store(true, Ordering::Relaxed);
    }

    /// Whether the shutdown has begun.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.state.draining.load(Ordering::Relaxed)
    }

    /// Requests in flight through [`track`](Self::track)ed services.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::Relaxed)
    }

    /// `service`, with its requests counted until their response bodies end or are dropped.
    #[must_use]
    pub fn track<S>(&self, service: S) -> Tracked<S> {
        Tracked {
            inner: service,
            state: Arc::clone(&self.state),
        }
    }

    /// The readiness check of the admin API's `/readyz` (see the [module docs](self)), over
    /// the policy `id` of `store` and the sides of `gateway`.
    pub fn readiness(
        &self,
        gateway: &Gateway,
        store: PolicyStore,
        id: PolicyId,
    ) -> impl Fn() -> Result<(), String> + Send + Sync + 'static {
        let state = Arc::clone(&self.state);
        let mut sides = vec![("stable", gateway.stable().clone())];
        if let Some(canary) = gateway.canary_endpoints() {
            sides.push(("canary", canary.clone()));
        }
        move || {
            if state.draining.load(Ordering::Relaxed) {
                return Err("shutting down".to_owned());
            }
            if !state.listening.load(Ordering::Relaxed) {
                return Err("starting: the listeners are not bound yet".to_owned());
            }
            if store.get(&id).is_none() {
                return Err(format!("policy {id} is not loaded"));
            }
            match sides.iter().find(|(_, side)| !any_healthy(side)) {
                Some((name, _)) => Err(format!("no healthy {name} endpoint")),
                None => Ok(()),
            }
        }
    }

    /// Turns readiness off, stops `server` accepting and waits for its requests in flight, at
    /// most `grace`; see the [module docs](self).
    pub async fn drain(&self, server: ServerHandle, grace: Duration) -> DrainReport {
        self.state.draining.store(true, Ordering::Relaxed);
        let in_flight = self.in_flight();
        tracing::info!(
            in_flight,
            ?grace,
            "draining: no new connections, finishing the requests in flight"
        );
        // The server's own drain timeout should end it first; this bounds a misconfigured one.
        let bound = grace.saturating_add(Duration::from_secs(1));
        if tokio::time::timeout(bound, server.shutdown())
            .await
            .is_err()
        {
            tracing::debug!("the server did not stop within the grace period");
        }
        // Still running (the multi-threaded runtime's connection tasks live on until the process
        // exits), or dropped by the server at its drain timeout (a worker's runtime ends).
        let cut = self.in_flight() + self.state.cut.swap(0, Ordering::Relaxed);
        if cut > 0 {
            tracing::warn!(
                cut,
                ?grace,
                "the grace period is over: requests still in flight are cut"
            );
        } else {
            tracing::info!("drained: every request finished");
        }
        DrainReport { cut }
    }
}

fn any_healthy(side: &BalanceHandle<String>) -> bool {
    side.snapshot()
        .iter()
        .any(|endpoint| endpoint.health == Health::Healthy)
}

/// Installs the handlers of `SIGTERM` and `SIGINT` (elsewhere than on Unix, Ctrl-C) at once,
/// and returns the future that waits for the first of them and names it. Install them early: a
/// signal that arrives while the gateway starts is then not fatal, and ends it once started.
///
/// # Errors
///
/// When the signal handlers cannot be installed.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = &'static str> + Send> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        })
    }
}

/// One request in flight, counted down when dropped (with its response body); dropped before
/// its end during a drain, it is counted as cut.
pub struct InFlight {
    state: Arc<State>,
    ended: bool,
}

impl InFlight {
    fn new(state: &Arc<State>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            state: Arc::clone(state),
            ended: false,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.ended && self.state.draining.load(Ordering::Relaxed) {
            self.state.cut.fetch_add(1, Ordering::Relaxed);
        }
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Watcher for InFlight {
    /// However the body ended, the request is no longer in flight; a body dropped before its
    /// end is a cut one (during a drain).
    fn ended(mut self, end: End) {
        self.ended = end != End::Dropped;
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InFlight")
    }
}

/// A service whose requests a [`Lifecycle`] counts; made by [`Lifecycle::track`].
#[derive(Debug, Clone)]
pub struct Tracked<S> {
    inner: S,
    state: Arc<State>,
}

impl<S, R, B> Service<Request<R>> for Tracked<S>
where
    S: Service<Request<R>, Response = Response<B>>,
    B: Body,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<R>) -> Self::Future {
        let guard = InFlight::new(&self.state);
        TrackedFuture {
            inner: self.inner.call(request),
            guard: Some(guard),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Tracked`].
    #[derive(Debug)]
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        guard: Option<InFlight>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let guard = this.guard.take();
        Poll::Ready(Ok(response.map(|inner| Watched::new(inner, guard))))
    }
}

/// A response body counted in flight until it ends or is dropped.
pub type TrackedBody<B> = Watched<B, Option<InFlight>>;
