//! [`FleetStore`]: what a shared store does for the replicas of a canary, and [`Fleet`], what
//! a canary router is given to join one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fluxgate_core::store::PolicyId;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::counts::SideCounts;
use super::overview::FleetOverview;
use super::state::FleetState;

/// The future a [`FleetStore`] method returns.
pub type FleetFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, FleetError>> + Send + 'a>>;

/// Why the shared store could not do what was asked.
///
/// ```
/// use fluxgate_canary::fleet::FleetError;
///
/// assert!(FleetError::Timeout.is_unreachable());
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The store cannot be reached (refused, lost connection).
    #[error("shared store unreachable: {0}")]
    Unreachable(String),
    /// The store did not answer in time.
    #[error("shared store timed out")]
    Timeout,
    /// The store answered with an error.
    #[error("shared store error: {0}")]
    Command(String),
    /// A record in the store is not readable.
    #[error("unreadable canary record: {0}")]
    Corrupt(String),
    /// A fleet action does not apply to the fleet's phase, or kept conflicting with other writes.
    #[error("fleet action refused: {0}")]
    Refused(String),
}

impl FleetError {
    /// Whether the store could not be reached or did not answer (as opposed to refusing).
    #[must_use]
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Timeout)
    }
}

/// One replica's tick, sent to [`FleetStore::sync`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SyncRequest {
    /// The canary: its policy's namespace and name.
    pub id: PolicyId,
    /// The replica.
    pub replica: String,
    /// The replica's wall clock, milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// The replica's counts in the bucket of `now_ms` so far: they replace the ones it stored
    /// in that bucket before (each replica has its own entry in a bucket, so a lost answer
    /// never counts twice).
    pub counts: SideCounts,
    /// The width of a bucket.
    pub bucket: Duration,
    /// How many buckets make the analysis window.
    pub buckets: u32,
    /// How long the decision lease lasts without renewal.
    pub lease_ttl: Duration,
    /// How long a replica stays listed without a heartbeat.
    pub heartbeat_ttl: Duration,
    /// The sliding window this replica judged at its previous tick as the lease holder, for
    /// the store to keep for operators ([`FleetStore::overview`]) if this replica still holds
    /// the lease; `None` when it did not judge.
    pub judged: Option<SideCounts>,
}

impl SyncRequest {
    /// The index of the bucket of `now_ms`.
    #[must_use]
    pub fn bucket_index(&self) -> u64 {
        self.now_ms / self.bucket_ms()
    }

    /// The bucket width in milliseconds (at least 1).
    #[must_use]
    pub fn bucket_ms(&self) -> u64 {
        u64::try_from(self.bucket.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// How long a bucket is kept: the window, two buckets more, and 5 seconds.
    #[must_use]
    pub fn bucket_ttl(&self) -> Duration {
        self.bucket * (self.buckets + 2) + Duration::from_secs(5)
    }
}

/// The fleet's counts around now, for the lease holder: the buckets of the window.
///
/// With `n` buckets and the current one `c`: `oldest` is bucket `c - n`, `middle` the buckets
/// `c - n + 1 ..= c - 1` added up, `current` bucket `c` (still filling).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MergedWindow {
    /// Bucket `c - n`.
    pub oldest: SideCounts,
    /// Buckets `c - n + 1 ..= c - 1`.
    pub middle: SideCounts,
    /// Bucket `c`.
    pub current: SideCounts,
}

impl MergedWindow {
    /// A window from its three parts.
    #[must_use]
    pub fn new(oldest: SideCounts, middle: SideCounts, current: SideCounts) -> Self {
        Self {
            oldest,
            middle,
            current,
        }
    }

    /// The last `n` complete buckets: what an analysis judges.
    #[must_use]
    pub fn complete(&self) -> SideCounts {
        let mut sum = self.oldest.clone();
        sum.merge(&self.middle);
        sum
    }

    /// The last `n` buckets, the current one included: what the error budget judges.
    #[must_use]
    pub fn sliding(&self) -> SideCounts {
        let mut sum = self.middle.clone();
        sum.merge(&self.current);
        sum
    }
}

/// What [`FleetStore::sync`] answers.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct SyncReply {
    /// The fleet's canary state, if there is one.
    pub state: Option<FleetState>,
    /// Whether this replica holds the decision lease (taken or renewed by this call).
    pub leader: bool,
    /// The merged window, for the lease holder only.
    pub window: Option<MergedWindow>,
}

impl SyncReply {
    /// A reply.
    #[must_use]
    pub fn new(state: Option<FleetState>, leader: bool, window: Option<MergedWindow>) -> Self {
        Self {
            state,
            leader,
            window,
        }
    }
}

/// What a compare-and-set [`FleetStore::write`] did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WriteResult {
    /// The state was written.
    Written,
    /// Another version is stored (the state in the store, if any); nothing was written.
    Conflict(Option<FleetState>),
}

/// A store the replicas of a canary share: [`LocalFleet`](super::LocalFleet) in one process,
/// `RedisFleet` (feature `redis`) across processes.
///
/// The [module docs](super) say what each method must do; the Redis store does each in one
/// atomic script.
pub trait FleetStore: fmt::Debug + Send + Sync + 'static {
    /// One replica's tick: stores its counts in the current bucket, beats its heartbeat, takes or
    /// renews the decision lease (held by one replica at a time, for `lease_ttl`), and returns
    /// the fleet state (and, to the lease holder, the merged window).
    fn sync<'a>(&'a self, request: &'a SyncRequest) -> FleetFuture<'a, SyncReply>;

    /// Writes `state` if the store holds version `state.version - 1` (0: none), and tells the
    /// watchers.
    fn write<'a>(&'a self, id: &'a PolicyId, state: &'a FleetState)
    -> FleetFuture<'a, WriteResult>;

    /// The fleet state of a canary, if any.
    fn load<'a>(&'a self, id: &'a PolicyId) -> FleetFuture<'a, Option<FleetState>>;

    /// The replicas whose heartbeat is live, sorted.
    fn replicas<'a>(&'a self, id: &'a PolicyId) -> FleetFuture<'a, Vec<String>>;

    /// Everything an operator reads about the canary's fleet: state, live replicas, the lease
    /// holder and the window it last judged.
    fn overview<'a>(&'a self, id: &'a PolicyId) -> FleetFuture<'a, FleetOverview>;

    /// Wakes `wake` (with `notify_one`) on every write to `id`'s state until `wake` is dropped;
    /// a store that cannot do it does nothing (replicas then follow by polling every tick).
    fn watch(&self, id: &PolicyId, wake: Weak<Notify>);
}

/// What a canary router is given to act with a fleet: the shared store, the canary's id in it
/// and this replica's name, with the timings.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_canary::fleet::{Fleet, LocalFleet};
/// use fluxgate_core::store::PolicyId;
///
/// let fleet = Fleet::new(LocalFleet::new(), PolicyId::new("shop", "web")).replica("gw-1");
/// assert_eq!(fleet.replica_name(), "gw-1");
/// assert_eq!(fleet.lease_ttl, Duration::from_secs(2));
/// ```
#[derive(Clone)]
#[must_use]
#[non_exhaustive]
pub struct Fleet {
    pub(crate) store: Arc<dyn FleetStore>,
    pub(crate) id: PolicyId,
    pub(crate) replica: String,
    /// How long the decision lease lasts without renewal (2s): the longest a fleet goes without
    /// a judge when the deciding replica dies.
    pub lease_ttl: Duration,
    /// How long a replica stays listed without a heartbeat (5s).
    pub heartbeat_ttl: Duration,
    /// How long one tick's round trip may take before the store counts as unreachable (1s).
    pub timeout: Duration,
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("store", &self.store)
            .field("id", &self.id)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// The canary `id` (its policy's namespace and name) in `store`, as a replica with a
    /// generated name (host, process id and a counter).
    pub fn new(store: impl FleetStore, id: PolicyId) -> Self {
        Self::shared(Arc::new(store), id)
    }

    /// Like [`new`](Self::new), with a store shared by several canaries.
    pub fn shared(store: Arc<dyn FleetStore>, id: PolicyId) -> Self {
        Self {
            store,
            id,
            replica: replica_name(),
            lease_ttl: Duration::from_secs(2),
            heartbeat_ttl: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
        }
    }

    /// Names this replica (unique in the fleet; it holds the lease under this name).
    pub fn replica(mut self, name: impl Into<String>) -> Self {
        self.replica = name.into();
        self
    }

    /// Sets [`lease_ttl`](Self::lease_ttl) (at least 100ms).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(100));
        self
    }

    /// This replica's name.
    #[must_use]
    pub fn replica_name(&self) -> &str {
        &self.replica
    }

    /// The canary's id in the store.
    #[must_use]
    pub fn id(&self) -> &PolicyId {
        &self.id
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn FleetStore> {
        &self.store
    }
}

/// `HOST-PID-N`: unique enough per process and canary.
fn replica_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "replica".to_owned());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{host}-{}-{n}", std::process::id())
}

/// Milliseconds since the Unix epoch: the wall clock when first asked, advanced by tokio's
/// clock since (so that a paused clock pauses it too).
pub(crate) fn unix_ms() -> u64 {
    static BASE: OnceLock<(u64, Instant)> = OnceLock::new();
    let (base, at) = BASE.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        (wall, Instant::now())
    });
    let elapsed = u64::try_from(Instant::now().saturating_duration_since(*at).as_millis());
    base.saturating_add(elapsed.unwrap_or(u64::MAX))
}
