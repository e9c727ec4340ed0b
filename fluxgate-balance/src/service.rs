//! The [`Balance`] service: endpoints, discovery and the request path.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake};
use std::time::Duration;

use arc_swap::ArcSwap;
use fluxgate_core::clock::Stamp;
use fluxgate_core::policy::{BalanceAlgorithm, LoadBalancing, OutlierDetection};
use fluxgate_core::stripe::Striped;
use tower::BoxError;
use tower::discover::{Change, Discover};

use crate::endpoint::{self, Lane, Slots, States, Track, Weighted};
use crate::error::BalanceError;
use crate::handle::BalanceHandle;
use crate::select::{Picker, Rng, Selection};
use crate::shared::Shared;

/// The default failure streak that drains an endpoint at once (Envoy's `consecutive_5xx`).
pub(crate) const FAILURE_STREAK: u32 = 5;

/// What the last evaluation published for every clone: the endpoint set, the selection
/// tables, the tracking in force and the endpoint waiting for its trial request.
#[derive(Debug)]
pub(crate) struct Table<K, S> {
    pub(crate) slots: Arc<Slots<K, S>>,
    /// The slots' states, in the same order.
    pub(crate) states: Arc<States<K>>,
    pub(crate) sel: Selection,
    pub(crate) track: Track,
    pub(crate) probe: Option<usize>,
}

/// What every clone of a balancer shares.
pub(crate) struct Core<D: Discover> {
    pub(crate) shared: Arc<Shared<D::Key>>,
    pub(crate) table: ArcSwap<Table<D::Key, D::Service>>,
    /// The discovery and the evaluation's own state, taken by whichever clone finds work due
    /// (`try_lock`: a clone that finds it taken goes on with the published table).
    pub(crate) control: Mutex<Control<D>>,
    /// Raised by the discovery's waker (and at the start): the discovery may have changes.
    pub(crate) discover_woken: Arc<Flag>,
    /// When the next periodic evaluation is due (nanoseconds from the shared origin).
    pub(crate) next_eval: AtomicU64,
    /// The round-robin position of each thread (each from the cycle's start), so that clones
    /// made per request on a thread still walk one cycle, and threads do not share the
    /// position's cache line.
    pub(crate) cursor: Striped<AtomicUsize>,
}

impl<D: Discover> Drop for Core<D> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// The owner's part of a balancer: discovery, the endpoint list, the policy in force, and
/// the evaluation's random source (its methods are in `control.rs`).
pub(crate) struct Control<D: Discover> {
    pub(crate) discover: Option<D>,
    pub(crate) slots: Arc<Slots<D::Key, D::Service>>,
    /// The slots' states, in the same order (also published in [`Shared::endpoints`]).
    pub(crate) states: Arc<States<D::Key>>,
    pub(crate) policy: Arc<LoadBalancing>,
    /// The outlier detection in force (the policy's, its defaults, or none when disabled).
    pub(crate) od: Option<OutlierDetection>,
    pub(crate) generation: u64,
    /// An endpoint whose ejection ended, waiting for its single probe request.
    pub(crate) probe: Option<usize>,
    pub(crate) track: Track,
    pub(crate) half_life: Duration,
    /// Failures in a row that drain an endpoint at once (0: never).
    pub(crate) failure_streak: u32,
    pub(crate) rng: Rng,
    /// The eligible endpoints of the last evaluation (their change resets the cycle).
    pub(crate) eligible: Vec<usize>,
}

/// A wake-up flag: the discovery's waker raises it, the next `poll_ready` of any clone sees it.
#[derive(Debug, Default)]
pub(crate) struct Flag(AtomicBool);

impl Flag {
    pub(crate) fn take(&self) -> bool {
        self.0.load(Ordering::Relaxed) && self.0.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn raise(&self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.raise();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.raise();
    }
}

/// What `poll_ready` reserved for the next `call`.
#[derive(Debug)]
pub(crate) enum Reserved<S> {
    Endpoint {
        service: S,
        /// Its slot (and state) in the clone's lane.
        index: usize,
        track: Track,
        probe: bool,
    },
    NoEndpoint,
}

/// A load balancer over a changing set of endpoints, driven by a [`LoadBalancing`] policy.
///
/// See the [crate docs](crate) for the algorithms, health checks, outlier detection and caps.
///
/// # Sharing
///
/// `Balance` is cheap to clone (when the endpoints' services are `Clone`), and its clones are
/// one balancer: they share the endpoint set, the selection tables, the health and outlier
/// state and the policy, from any thread, without a lock or a channel on the request path. A
/// pick reads the tables the last evaluation published (swapped atomically); the evaluation
/// runs in whichever clone finds it due, the others go on with the published tables. Each
/// clone polls its own copy of the chosen endpoint's service, so an endpoint that is not ready
/// is skipped for another, not waited on. No `tower::buffer::Buffer` is needed (nor useful).
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
/// let balance = Balance::new(LoadBalancing::default(), [("a", endpoint("a")), ("b", endpoint("b"))]);
/// // Clones are the same balancer: round robin goes on from one clone to the next.
/// let first = balance.clone().oneshot(http::Request::new(())).await.unwrap();
/// let second = balance.clone().oneshot(http::Request::new(())).await.unwrap();
/// assert_ne!(first.body(), second.body());
/// # }
/// ```
pub struct Balance<D, Req>
where
    D: Discover,
{
    pub(crate) core: Arc<Core<D>>,
    pub(crate) ready: Option<Reserved<D::Service>>,
    /// Endpoint services (by endpoint identity) that were pending at the last `poll_ready`,
    /// kept so that their wake-ups reach this clone.
    pub(crate) waiting: Vec<(usize, D::Service)>,
    pub(crate) picker: Picker,
    /// When the last `poll_ready` ran: the start of the reserved request.
    pub(crate) now: Option<Stamp>,
    /// The stripe of the thread of the last `poll_ready` (see [`crate::hot`]).
    pub(crate) stripe: usize,
    /// The endpoints' states as of the set this clone last saw.
    pub(crate) lane: Option<Arc<Lane<D::Key>>>,
    /// This clone's copies of the first [`CACHED`] endpoints' services, kept from one request
    /// to the next rather than cloned from the shared slot each time (a clone of a proxy is a
    /// reference count that every worker would take turns at).
    pub(crate) cache: Vec<Option<D::Service>>,
    _req: PhantomData<fn(Req)>,
}

impl<D, Req> Clone for Balance<D, Req>
where
    D: Discover,
{
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
            ready: None,
            waiting: Vec::new(),
            picker: Picker::new(next_seed()),
            now: None,
            stripe: 0,
            lane: self.lane.clone(),
            cache: Vec::new(),
            _req: PhantomData,
        }
    }
}

/// The endpoints (the first ones of the set) whose services a clone keeps between requests.
pub(crate) const CACHED: usize = 16;

/// A seed for a clone's random source: a per-thread sequence, no shared write.
fn next_seed() -> u64 {
    thread_local! {
        static SEED: std::cell::Cell<u64> = std::cell::Cell::new(
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8),
        );
    }
    SEED.with(|seed| {
        let next = seed.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        seed.set(next);
        next
    })
}

/// The discovery of a static endpoint list: it never changes the set.
///
/// ```
/// use fluxgate_balance::FixedEndpoints;
/// let _none: FixedEndpoints<&str, ()> = FixedEndpoints::default();
/// ```
#[derive(Debug)]
pub struct FixedEndpoints<K, S>(PhantomData<fn() -> (K, S)>);

impl<K, S> Default for FixedEndpoints<K, S> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<K, S> Unpin for FixedEndpoints<K, S> {}

impl<K, S> futures::Stream for FixedEndpoints<K, S> {
    type Item = Result<Change<K, S>, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(None)
    }
}

// ===== impl Balance =====

impl<K, S, Req> Balance<FixedEndpoints<K, Weighted<S>>, Req>
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
        Self::from_discover(policy, FixedEndpoints::default()).with_endpoints(endpoints)
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
        let seed =
            endpoint::nanos_since(shared.origin, Stamp::now()) ^ (Arc::as_ptr(&shared) as u64);
        let slots = Arc::new(Vec::new());
        let states = Arc::new(Vec::new());
        let table = Table {
            slots: Arc::clone(&slots),
            states: Arc::clone(&states),
            sel: Selection::new(policy.algorithm),
            track: track_for(&policy, FAILURE_STREAK),
            probe: None,
        };
        let control = Control {
            discover: Some(discover),
            slots,
            states,
            od: policy.outlier_detection_in_force(),
            track: track_for(&policy, FAILURE_STREAK),
            policy,
            generation: 0,
            probe: None,
            half_life: Duration::from_secs(1),
            failure_streak: FAILURE_STREAK,
            rng: Rng::new(seed),
            eligible: Vec::new(),
        };
        let flag = Arc::new(Flag::default());
        flag.raise();
        Self {
            core: Arc::new(Core {
                shared,
                table: ArcSwap::from_pointee(table),
                control: Mutex::new(control),
                discover_woken: flag,
                next_eval: AtomicU64::new(0),
                cursor: Striped::default(),
            }),
            ready: None,
            waiting: Vec::new(),
            picker: Picker::new(seed.rotate_left(17)),
            now: None,
            stripe: 0,
            lane: None,
            cache: Vec::new(),
            _req: PhantomData,
        }
    }

    /// Sets the half-life of the latency moving average used by `peak-ewma` and `adaptive`
    /// (1s by default). Applies to endpoints added afterwards.
    #[must_use]
    pub fn with_latency_half_life(self, half_life: Duration) -> Self {
        self.control().half_life = half_life;
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
    pub fn with_consecutive_failures(self, threshold: u32) -> Self {
        self.core
            .shared
            .failure_streak
            .store(threshold, Ordering::Relaxed);
        {
            let mut control = self.control();
            control.failure_streak = threshold;
            control.track = track_for(&control.policy, threshold);
            control.evaluate(&self.core, Stamp::now());
        }
        self
    }

    /// A handle for snapshots and policy changes.
    #[must_use]
    pub fn handle(&self) -> BalanceHandle<K> {
        BalanceHandle {
            shared: Arc::clone(&self.core.shared),
        }
    }

    /// The number of endpoints, eligible or not.
    #[must_use]
    pub fn len(&self) -> usize {
        self.core.table.load().slots.len()
    }

    /// Whether there are no endpoints at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    pub fn with_endpoints(self, endpoints: impl IntoIterator<Item = (K, Weighted<S>)>) -> Self {
        self.extend(endpoints);
        self
    }

    /// Adds (or replaces) endpoints, with the settings in force now.
    pub(crate) fn extend(&self, endpoints: impl IntoIterator<Item = (K, Weighted<S>)>) {
        let mut control = self.control();
        let mut slots = control.slots.to_vec();
        for (key, endpoint) in endpoints {
            control.insert(&self.core.shared, &mut slots, key, endpoint, false);
        }
        control.set_slots(&self.core, slots);
    }

    /// Takes in the changes the discovery has now, without waiting for a request (a request
    /// on any clone takes them in too): for a task that feeds the discovery, so that handles
    /// and health checks see a new endpoint at once. `true` when the set changed.
    ///
    /// # Errors
    ///
    /// [`BalanceError::Discover`] when the discovery failed.
    ///
    /// ```
    /// use fluxgate_balance::{Balance, Weighted};
    /// use fluxgate_core::policy::LoadBalancing;
    /// use tower::discover::Change;
    /// # let svc = Weighted::new(tower::service_fn(|_: http::Request<()>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(()))
    /// # }), 1);
    /// let (changes, discover) = futures::channel::mpsc::unbounded::<Result<Change<&str, _>, std::io::Error>>();
    /// let balance = Balance::<_, http::Request<()>>::from_discover(LoadBalancing::default(), discover);
    /// changes.unbounded_send(Ok(Change::Insert("a", svc))).unwrap();
    /// assert!(balance.apply_changes().unwrap());
    /// assert_eq!(balance.len(), 1);
    /// ```
    pub fn apply_changes(&self) -> Result<bool, BalanceError>
    where
        D: Unpin,
        D::Error: Into<BoxError>,
    {
        self.core.discover_woken.take();
        self.control().poll_discover(&self.core)
    }

    /// The control part, waiting for it (only the builder methods do; the request path only
    /// ever tries it).
    fn control(&self) -> std::sync::MutexGuard<'_, Control<D>> {
        self.core
            .control
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub(crate) fn track_for(policy: &LoadBalancing, failure_streak: u32) -> Track {
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
        let table = self.core.table.load();
        f.debug_struct("Balance")
            .field("endpoints", &table.slots.len())
            .field("eligible", &table.sel.eligible.len())
            .field("algorithm", &table.sel.algorithm)
            .finish_non_exhaustive()
    }
}
