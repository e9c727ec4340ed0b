//! The [`Balance`] service: endpoints, discovery and the request path.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use fluxgate_core::outcome::Outcome;
use fluxgate_core::policy::{BalanceAlgorithm, LoadBalancing, OutlierDetection};
use tokio::time::Instant;
use tower::BoxError;
use tower::discover::{Change, Discover};
use tower_service::Service;

use crate::endpoint::{self, EndpointState, Track, Weighted};
use crate::error::BalanceError;
use crate::handle::BalanceHandle;
use crate::select::Selector;
use crate::shared::Shared;

/// The default failure streak that drains an endpoint at once (Envoy's `consecutive_5xx`).
pub(crate) const FAILURE_STREAK: u32 = 5;

/// One endpoint as the balancer owns it.
#[derive(Debug)]
pub(crate) struct Slot<K, S> {
    pub(crate) service: S,
    pub(crate) state: Arc<EndpointState<K>>,
}

/// What `poll_ready` reserved for the next `call`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reserved {
    Endpoint { index: usize, probe: bool },
    NoEndpoint,
}

/// A load balancer over a changing set of endpoints, driven by a [`LoadBalancing`] policy.
///
/// See the [crate docs](crate) for the algorithms, health checks, outlier detection and caps.
///
/// # Readiness and failure
///
/// `poll_ready` picks an endpoint and reserves it for the next `call`; it is pending only while
/// every eligible endpoint's service is pending. When no endpoint may take the request (none
/// healthy, all drained, none discovered yet), `poll_ready` is ready at once and the call fails
/// with [`BalanceError::NoHealthyEndpoints`]: the balancer never waits for an endpoint to come
/// back. An unhealthy endpoint leaves the rotation but stays in the set; only discovery removes
/// endpoints. A `call` without a reservation fails with [`BalanceError::NotReady`].
///
/// `Balance` is not `Clone`; share it behind `tower::buffer::Buffer` (as tower's own balancer).
///
/// ```
/// use fluxgate_balance::{Balance, Weighted};
/// use fluxgate_core::policy::LoadBalancing;
/// use tower::{Service, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let endpoint = |name: &'static str| {
///     Weighted::new(tower::service_fn(move |_: http::Request<()>| async move {
///         Ok::<_, std::convert::Infallible>(http::Response::new(name))
///     }), 1)
/// };
/// let mut balance = Balance::new(LoadBalancing::default(), [("a", endpoint("a")), ("b", endpoint("b"))]);
/// let first = balance.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
/// let second = balance.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
/// assert_ne!(first.body(), second.body());
/// # }
/// ```
pub struct Balance<D, Req>
where
    D: Discover,
{
    discover: Option<D>,
    pub(crate) slots: Vec<Slot<D::Key, D::Service>>,
    pub(crate) shared: Arc<Shared<D::Key>>,
    pub(crate) policy: Arc<LoadBalancing>,
    /// The outlier detection in force (the policy's, its defaults, or none when disabled).
    pub(crate) od: Option<OutlierDetection>,
    generation: u64,
    pub(crate) selector: Selector,
    /// An endpoint whose ejection ended, waiting for its single probe request.
    pub(crate) probe: Option<usize>,
    pub(crate) ready: Option<Reserved>,
    pub(crate) last_now: Instant,
    pub(crate) next_eval: Instant,
    pub(crate) track: Track,
    half_life: Duration,
    /// Failures in a row that drain an endpoint at once (0: never).
    pub(crate) failure_streak: u32,
    _req: PhantomData<fn(Req)>,
}

/// The discovery of a static endpoint list: it never changes the set.
///
/// ```
/// use fluxgate_balance::Static;
/// let _none: Static<&str, ()> = Static::default();
/// ```
#[derive(Debug)]
pub struct Static<K, S>(PhantomData<fn() -> (K, S)>);

impl<K, S> Default for Static<K, S> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<K, S> Unpin for Static<K, S> {}

impl<K, S> futures::Stream for Static<K, S> {
    type Item = Result<Change<K, S>, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(None)
    }
}

// ===== impl Balance =====

impl<K, S, Req> Balance<Static<K, Weighted<S>>, Req>
where
    K: Eq + Clone + Send + Sync + 'static,
{
    /// A balancer over a fixed list of `(key, endpoint)` pairs, following `policy`.
    ///
    /// Spawns nothing; call [`health_task`](Self::health_task) for active health checks.
    #[must_use]
    pub fn new(
        policy: LoadBalancing,
        endpoints: impl IntoIterator<Item = (K, Weighted<S>)>,
    ) -> Self {
        let mut balance = Self::from_discover(policy, Static::default());
        balance.extend(endpoints);
        balance
    }

    /// Adds (or replaces) endpoints, with the settings in force now.
    pub(crate) fn extend(&mut self, endpoints: impl IntoIterator<Item = (K, Weighted<S>)>) {
        for (key, endpoint) in endpoints {
            self.insert(key, endpoint, false);
        }
        self.publish();
    }
}

impl<D, K, S, Req> Balance<D, Req>
where
    D: Discover<Key = K, Service = Weighted<S>>,
    K: Eq + Clone + Send + Sync + 'static,
{
    /// A balancer over the endpoints `discover` inserts and removes (tower's [`Discover`]: a
    /// stream of [`Change`]s), following `policy`. The set is empty until the first `poll_ready`.
    #[must_use]
    pub fn from_discover(policy: LoadBalancing, discover: D) -> Self {
        let shared = Arc::new(Shared::new(policy));
        let policy = shared.policy.load_full();
        let now = Instant::now();
        let seed = endpoint::nanos_since(shared.origin, now) ^ (Arc::as_ptr(&shared) as u64);
        let mut balance = Self {
            discover: Some(discover),
            slots: Vec::new(),
            shared,
            selector: Selector::new(policy.algorithm, seed),
            od: policy.outlier_detection_in_force(),
            policy,
            generation: 0,
            probe: None,
            ready: None,
            last_now: now,
            next_eval: now,
            track: Track {
                ewma: false,
                quantiles: false,
                orca: false,
                slow_limit: Duration::MAX,
                streak: 0,
            },
            half_life: Duration::from_secs(1),
            failure_streak: FAILURE_STREAK,
            _req: PhantomData,
        };
        balance.track = track_for(&balance.policy, FAILURE_STREAK);
        balance
    }

    /// Sets the half-life of the latency moving average used by `peak-ewma` and `adaptive`
    /// (1s by default). Applies to endpoints added afterwards.
    #[must_use]
    pub fn with_latency_half_life(mut self, half_life: Duration) -> Self {
        self.half_life = half_life;
        self
    }

    /// Sets how many failures in a row (5xx but 503, timeouts, transport errors, failed
    /// readiness; 429 and 503 too) drain an endpoint at once, without waiting for the next
    /// evaluation of its error rate: 5 by default (Envoy's `consecutive_5xx`); 0 turns this
    /// off. It applies only while outlier detection is on (the default), and counts towards
    /// `maxEjectionPercent` like any drain.
    ///
    /// Lower reacts sooner to an endpoint that starts failing everything (each step saves one
    /// failed request and one round of that endpoint's share of traffic), at the price of
    /// draining healthy endpoints on chance streaks: with independent errors at rate `p`, a
    /// streak of `n` starts at about one request in `1 / pⁿ`.
    ///
    /// ```
    /// use fluxgate_balance::{Balance, Weighted};
    /// use fluxgate_core::policy::{LoadBalancing, OutlierDetection};
    /// use tower::{Service, ServiceExt};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    ///
    /// let status = |code: u16| Weighted::new(tower::service_fn(move |_: http::Request<()>| async move {
    ///     http::Response::builder().status(code).body(())
    /// }), 1);
    /// let mut policy = LoadBalancing::default();
    /// policy.outlier_detection = Some(OutlierDetection::default());
    /// let mut balance = Balance::new(policy, [("ok", status(200)), ("bad", status(500))])
    ///     .with_consecutive_failures(2);
    /// let mut failed = 0;
    /// for _ in 0..20 {
    ///     let response = balance.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
    ///     failed += usize::from(response.status().is_server_error());
    /// }
    /// assert_eq!(failed, 2);
    /// # }
    /// ```
    #[must_use]
    pub fn with_consecutive_failures(mut self, threshold: u32) -> Self {
        self.failure_streak = threshold;
        self.shared
            .failure_streak
            .store(threshold, Ordering::Relaxed);
        self.track = track_for(&self.policy, threshold);
        self
    }

    /// A handle for snapshots and policy changes.
    #[must_use]
    pub fn handle(&self) -> BalanceHandle<K> {
        BalanceHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The number of endpoints, eligible or not.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no endpoints at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Adds (or replaces) `endpoints` now, before any change of the discovery: a balancer
    /// over a discovery starts with them (and its handles see them) without waiting for its
    /// first `poll_ready`.
    ///
    /// ```
    /// use fluxgate_balance::{Balance, Weighted};
    /// use fluxgate_core::policy::LoadBalancing;
    /// # let svc = Weighted::new(tower::service_fn(|_: http::Request<()>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(()))
    /// # }), 1);
    /// let (_changes, discover) = futures::channel::mpsc::unbounded::<Result<tower::discover::Change<&str, _>, std::io::Error>>();
    /// let balance = Balance::<_, http::Request<()>>::from_discover(LoadBalancing::default(), discover)
    ///     .with_endpoints([("a", svc)]);
    /// assert_eq!(balance.handle().snapshot().len(), 1);
    /// ```
    #[must_use]
    pub fn with_endpoints(mut self, endpoints: impl IntoIterator<Item = (K, Weighted<S>)>) -> Self {
        for (key, endpoint) in endpoints {
            self.insert(key, endpoint, false);
        }
        self.publish();
        self
    }

    fn insert(&mut self, key: K, endpoint: Weighted<S>, ramp: bool) {
        let existing = self.slots.iter().position(|s| s.state.key == key);
        let Some(state) = EndpointState::new(
            key,
            endpoint.weight,
            self.shared.origin,
            Arc::clone(&self.shared.dirty),
            self.half_life,
            ramp,
        ) else {
            tracing::error!("endpoint state could not be built; endpoint ignored");
            return;
        };
        let slot = Slot {
            service: endpoint,
            state: Arc::new(state),
        };
        match existing {
            Some(at) => self.slots[at] = slot,
            None => self.slots.push(slot),
        }
    }

    /// Publishes the endpoint list to handles and the health task, and asks for an evaluation.
    fn publish(&mut self) {
        let list = self.slots.iter().map(|s| Arc::clone(&s.state)).collect();
        self.shared.endpoints.store(Arc::new(list));
        self.probe = None;
        self.selector.current.clear();
        self.shared.mark_dirty();
    }

    pub(crate) fn poll_discover(&mut self, cx: &mut Context<'_>) -> Result<(), BalanceError>
    where
        D: Unpin,
        D::Error: Into<BoxError>,
    {
        let mut changed = false;
        while let Some(discover) = self.discover.as_mut() {
            match Pin::new(discover).poll_discover(cx) {
                Poll::Pending => break,
                Poll::Ready(None) => self.discover = None,
                Poll::Ready(Some(Err(e))) => return Err(BalanceError::Discover(e.into())),
                Poll::Ready(Some(Ok(Change::Insert(key, endpoint)))) => {
                    let ramp = !self.selector.eligible.is_empty();
                    self.insert(key, endpoint, ramp);
                    changed = true;
                }
                Poll::Ready(Some(Ok(Change::Remove(key)))) => {
                    if let Some(at) = self.slots.iter().position(|s| s.state.key == key) {
                        self.slots.swap_remove(at);
                        changed = true;
                    }
                }
            }
        }
        if changed {
            self.publish();
        }
        Ok(())
    }

    pub(crate) fn refresh_policy(&mut self) {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.generation = generation;
            self.policy = self.shared.policy.load_full();
            self.od = self.policy.outlier_detection_in_force();
            self.track = track_for(&self.policy, self.failure_streak);
            if self.selector.algorithm != self.policy.algorithm {
                self.selector.algorithm = self.policy.algorithm;
                self.selector.current.clear();
            }
            self.shared.mark_dirty();
        }
    }

    /// Polls slot `index`'s readiness; `true` when it is ready.
    pub(crate) fn try_slot(
        &mut self,
        cx: &mut Context<'_>,
        index: usize,
        pending: &mut bool,
    ) -> bool
    where
        S: Service<Req>,
    {
        let Some(slot) = self.slots.get_mut(index) else {
            return false;
        };
        match slot.service.service.poll_ready(cx) {
            Poll::Ready(Ok(())) => true,
            Poll::Pending => {
                *pending = true;
                false
            }
            Poll::Ready(Err(_)) => {
                // Counted as a failure, so that a service whose readiness keeps failing is drained
                // by the failure streak; never evicted.
                let now = Instant::now();
                if slot.state.record(now, None, Outcome::Failure, self.track) {
                    self.shared.mark_dirty();
                }
                false
            }
        }
    }
}

fn track_for(policy: &LoadBalancing, failure_streak: u32) -> Track {
    let latency_aware = matches!(
        policy.algorithm,
        BalanceAlgorithm::PeakEwma | BalanceAlgorithm::Adaptive
    );
    let od = policy.outlier_detection_in_force();
    Track {
        ewma: latency_aware,
        quantiles: od.is_some(),
        orca: policy.algorithm == BalanceAlgorithm::Adaptive,
        slow_limit: od
            .as_ref()
            .map_or(Duration::MAX, |od| od.max_p95_latency.as_std()),
        streak: if od.is_some() { failure_streak } else { 0 },
    }
}

impl<D, Req> fmt::Debug for Balance<D, Req>
where
    D: Discover,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balance")
            .field("endpoints", &self.slots.len())
            .field("eligible", &self.selector.eligible.len())
            .field("algorithm", &self.policy.algorithm)
            .finish_non_exhaustive()
    }
}

impl<D, Req> Drop for Balance<D, Req>
where
    D: Discover,
{
    fn drop(&mut self) {
        self.shared.close();
    }
}
