//! [`LocalFleet`]: the shared store of canaries in one process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use fluxgate_core::store::PolicyId;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::counts::SideCounts;
use super::overview::{FleetOverview, PublishedWindow};
use super::state::FleetState;
use super::store::{FleetFuture, FleetStore, MergedWindow, SyncReply, SyncRequest, WriteResult};

/// A [`FleetStore`] in this process: routers built with clones of it act as one fleet (for
/// several routers over one policy in one process, and for tests). It behaves as the Redis store
/// does, with the same expiries (leases, heartbeats, buckets), on tokio's clock.
///
/// ```
/// use fluxgate_canary::Canary;
/// use fluxgate_canary::fleet::{Fleet, LocalFleet};
/// use fluxgate_core::policy::{CanarySpec, CompiledPolicy, TrafficPolicy};
/// use fluxgate_core::store::PolicyId;
/// use tower::service_fn;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut policy = TrafficPolicy::new(Some("shop"), "web");
/// let mut spec = CanarySpec::default();
/// spec.weight = 10;
/// policy.spec.canary = Some(spec);
/// let compiled = CompiledPolicy::compile(&policy)?;
/// let svc = service_fn(|_: http::Request<()>| async { Ok::<_, std::io::Error>(http::Response::new(())) });
/// let store = LocalFleet::new();
/// let id = PolicyId::new("shop", "web");
/// let (a, judge_a) = Canary::builder(svc, svc, compiled.canary().unwrap())
///     .fleet(Fleet::new(store.clone(), id.clone()))
///     .build()?;
/// let (b, judge_b) = Canary::builder(svc, svc, compiled.canary().unwrap())
///     .fleet(Fleet::new(store.clone(), id))
///     .build()?;
/// let _tasks = (judge_a.spawn(), judge_b.spawn());
/// tokio::time::sleep(std::time::Duration::from_millis(500)).await;
/// a.handle().abort()?; // through one replica...
/// tokio::time::sleep(std::time::Duration::from_millis(500)).await;
/// assert_eq!(b.handle().snapshot().phase, fluxgate_canary::Phase::RolledBack); // ...on both
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct LocalFleet {
    canaries: Arc<Mutex<HashMap<PolicyId, Entry>>>,
}

#[derive(Debug, Default)]
struct Entry {
    state: Option<FleetState>,
    lease: Option<(String, Instant)>,
    heartbeats: HashMap<String, Instant>,
    /// Bucket → replica → its counts there.
    buckets: BTreeMap<u64, BTreeMap<String, SideCounts>>,
    watchers: Vec<Weak<Notify>>,
    /// The window the lease holder last judged, until it expires.
    judged: Option<(PublishedWindow, Instant)>,
}

impl LocalFleet {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, id: &PolicyId, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut canaries = self.canaries.lock().unwrap_or_else(PoisonError::into_inner);
        f(canaries.entry(id.clone()).or_default())
    }
}

impl Entry {
    fn sync(&mut self, request: &SyncRequest) -> SyncReply {
        let now = Instant::now();
        let current = request.bucket_index();
        let n = u64::from(request.buckets.max(1));
        if !request.counts.is_empty() {
            self.buckets
                .entry(current)
                .or_default()
                .insert(request.replica.clone(), request.counts.clone());
        }
        let oldest = current.saturating_sub(n);
        self.buckets.retain(|b, _| *b >= oldest);
        self.heartbeats
            .insert(request.replica.clone(), now + request.heartbeat_ttl);
        self.heartbeats.retain(|_, until| *until > now);
        let leader = match &self.lease {
            Some((holder, until)) if *until > now && *holder != request.replica => false,
            _ => {
                self.lease = Some((request.replica.clone(), now + request.lease_ttl));
                true
            }
        };
        if let (true, Some(counts)) = (leader, &request.judged) {
            let window = PublishedWindow::new(&request.replica, request.now_ms, counts.clone());
            self.judged = Some((window, now + request.heartbeat_ttl));
        }
        let window = leader.then(|| {
            let get = |b: u64| {
                let mut sum = SideCounts::default();
                for counts in self.buckets.get(&b).into_iter().flat_map(BTreeMap::values) {
                    sum.merge(counts);
                }
                sum
            };
            let mut middle = SideCounts::default();
            for b in (oldest + 1)..current {
                middle.merge(&get(b));
            }
            MergedWindow::new(
                if current >= n {
                    get(oldest)
                } else {
                    SideCounts::default()
                },
                middle,
                get(current),
            )
        });
        SyncReply::new(self.state.clone(), leader, window)
    }

    fn overview(&self, now: Instant) -> FleetOverview {
        let mut replicas: Vec<String> = self
            .heartbeats
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(r, _)| r.clone())
            .collect();
        replicas.sort();
        FleetOverview {
            state: self.state.clone(),
            replicas,
            leader: self
                .lease
                .as_ref()
                .filter(|(_, until)| *until > now)
                .map(|(holder, _)| holder.clone()),
            window: self
                .judged
                .as_ref()
                .filter(|(_, until)| *until > now)
                .map(|(window, _)| window.clone()),
        }
    }

    fn write(&mut self, state: &FleetState) -> WriteResult {
        let stored = self.state.as_ref().map_or(0, |s| s.version);
        if stored + 1 != state.version {
            return WriteResult::Conflict(self.state.clone());
        }
        self.state = Some(state.clone());
        self.watchers.retain(|w| match w.upgrade() {
            Some(wake) => {
                wake.notify_one();
                true
            }
            None => false,
        });
        WriteResult::Written
    }
}

impl FleetStore for LocalFleet {
    fn sync<'a>(&'a self, request: &'a SyncRequest) -> FleetFuture<'a, SyncReply> {
        let reply = self.with(&request.id, |e| e.sync(request));
        Box::pin(std::future::ready(Ok(reply)))
    }

    fn write<'a>(
        &'a self,
        id: &'a PolicyId,
        state: &'a FleetState,
    ) -> FleetFuture<'a, WriteResult> {
        let result = self.with(id, |e| e.write(state));
        Box::pin(std::future::ready(Ok(result)))
    }

    fn load<'a>(&'a self, id: &'a PolicyId) -> FleetFuture<'a, Option<FleetState>> {
        let state = self.with(id, |e| e.state.clone());
        Box::pin(std::future::ready(Ok(state)))
    }

    fn replicas<'a>(&'a self, id: &'a PolicyId) -> FleetFuture<'a, Vec<String>> {
        let live = self.with(id, |e| e.overview(Instant::now()).replicas);
        Box::pin(std::future::ready(Ok(live)))
    }

    fn overview<'a>(&'a self, id: &'a PolicyId) -> FleetFuture<'a, FleetOverview> {
        let overview = self.with(id, |e| e.overview(Instant::now()));
        Box::pin(std::future::ready(Ok(overview)))
    }

    fn watch(&self, id: &PolicyId, wake: Weak<Notify>) {
        self.with(id, |e| e.watchers.push(wake));
    }
}
