//! [`KubeSource`]: follows `TrafficPolicy` objects with a watcher and applies them to a store.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::follow::Follower;
use super::{KubeSourceError, KubeTrafficPolicy, ReportPolicy};
use crate::store::PolicyStore;

/// How often reports are asked again and failed status writes retried, by default.
const RESYNC: Duration = Duration::from_secs(1);

/// How a [`KubeSource`] is doing, for status pages and tests.
///
/// ```
/// let status = fluxgate_core::store::KubeSourceStatus::default();
/// assert!(!status.synced && status.last_error.is_none());
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct KubeSourceStatus {
    /// Whether the last (re)list is complete and the watch is following changes.
    pub synced: bool,
    /// How many full lists were loaded (the first, then one per watcher restart).
    pub syncs: u64,
    /// How many policy changes it put in force or deleted.
    pub changes: u64,
    /// How many objects the store refused.
    pub rejected: u64,
    /// How many status writes succeeded.
    pub status_writes: u64,
    /// How many watch or status-write failures happened.
    pub failures: u64,
    /// The last failure; it stays after recovery, for status pages.
    pub last_error: Option<KubeSourceError>,
}

/// Follows `TrafficPolicy` custom resources in one namespace (or all) and applies them to a
/// [`PolicyStore`], writing each object's status back.
///
/// Every object is read into a [`TrafficPolicy`](crate::policy::TrafficPolicy) from its name,
/// namespace, labels, annotations, generation and spec (the server's own metadata is left out)
/// and applied; the store validates it, so an invalid object is refused and the policy in force
/// stays. A deleted object is deleted from the store, and after a watcher restart the objects
/// absent from the new list are deleted too.
///
/// Each object's `status` is written back through the status subresource (a merge patch on
/// `.../status`): `observedGeneration`, an `Accepted` condition (`True`, or `False` with reason
/// `Invalid` and the validation errors, each naming its field, as its message), a `Programmed`
/// condition (whether a generation is in force, and which in its `observedGeneration`), and the
/// canary's phase and weight. What the policy's user adds (a gateway: its canary, upstreams it
/// cannot reach) comes from a [`ReportPolicy`] given to [`report_with`](Self::report_with),
/// asked again every [`resync`](Self::resync) period; without one, `Programmed` says whether
/// the store holds the policy. A status is written only when it changed; a failed write is
/// logged, counted and retried with backoff (from the resync period up to 30s).
///
/// The work is a future the caller spawns ([`run`](Self::run)), or a task that stops when its
/// [`KubeSourceHandle`] is dropped ([`spawn`](Self::spawn)). Watch errors are retried with
/// kube's default backoff (800ms doubling up to 30s).
///
/// It is tested against a scripted API server (a mock service behind [`kube::Client::new`]),
/// as this example is, not against a real cluster.
///
/// # Example
///
/// ```
/// use fluxgate_core::store::{KubeSource, PolicyId, PolicyStore};
/// # use http::{Request, Response};
/// # use kube::client::Body;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let (service, mut server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
/// // In a cluster: `kube::Client::try_default().await?`; here, a scripted API server.
/// let client = kube::Client::new(service, "payments");
/// let store = PolicyStore::new();
/// let source = KubeSource::new(client, store.clone()).spawn();
/// # let object = serde_json::json!({
/// #     "apiVersion": "fluxgate.io/v1beta1", "kind": "TrafficPolicy",
/// #     "metadata": {"name": "checkout", "namespace": "payments", "generation": 1, "resourceVersion": "1"},
/// #     "spec": {"rateLimit": {"requestsPerSecond": 100, "burstSize": 20}},
/// # });
/// # let list = serde_json::json!({"apiVersion": "fluxgate.io/v1beta1", "kind": "TrafficPolicyList",
/// #     "metadata": {"resourceVersion": "1"}, "items": [object.clone()]});
/// # let mut pending = Vec::new();
/// # let mut changes = store.subscribe();
/// # while store.get(&PolicyId::new("payments", "checkout")).is_none() {
/// #     tokio::select! {
/// #         Some((request, reply)) = server.next_request() => {
/// #             let query = request.uri().query().unwrap_or_default().to_owned();
/// #             if query.contains("watch=true") { pending.push(reply); continue; }
/// #             let body = if request.uri().path().ends_with("/status") { &object } else { &list };
/// #             reply.send_response(Response::new(Body::from(serde_json::to_vec(body)?)));
/// #         }
/// #         _ = changes.changed() => {}
/// #     }
/// # }
/// let policy = store.get(&PolicyId::new("payments", "checkout")).unwrap();
/// assert_eq!(policy.id().name(), "checkout");
/// drop(source); // stops following
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct KubeSource {
    pub(super) client: Client,
    pub(super) namespace: Option<String>,
    pub(super) store: PolicyStore,
    config: watcher::Config,
    pub(super) status: watch::Sender<KubeSourceStatus>,
    pub(super) reporter: Option<Arc<dyn ReportPolicy>>,
    pub(super) resync: Duration,
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource")
            .field("namespace", &self.namespace)
            .field("store", &self.store)
            .field("reporter", &self.reporter.is_some())
            .field("resync", &self.resync)
            .finish_non_exhaustive()
    }
}

/// The task of a spawned [`KubeSource`]; dropping it stops the following.
///
/// See [`KubeSource`] for an example.
#[must_use = "dropping the handle stops following the TrafficPolicy objects"]
#[derive(Debug)]
pub struct KubeSourceHandle {
    task: JoinHandle<()>,
    status: watch::Receiver<KubeSourceStatus>,
}

// === impl KubeSource ===

impl KubeSource {
    /// A source following the client's default namespace, applying to `store`.
    pub fn new(client: Client, store: PolicyStore) -> Self {
        let namespace = Some(client.default_namespace().to_owned());
        Self {
            client,
            namespace,
            store,
            config: watcher::Config::default(),
            status: watch::Sender::new(KubeSourceStatus::default()),
            reporter: None,
            resync: RESYNC,
        }
    }

    /// Adds `reporter`'s word to each status: the `Programmed` condition's failures and the
    /// canary (see [`ReportPolicy`]).
    ///
    /// ```
    /// # use fluxgate_core::store::{KubeSource, PolicyId, PolicyReport, PolicyStore};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let (service, _server) = tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
    /// let followed = PolicyId::new("payments", "checkout");
    /// let source = KubeSource::new(kube::Client::new(service, "payments"), PolicyStore::new())
    ///     .report_with(move |id: &PolicyId| (*id == followed).then(PolicyReport::programmed))
    ///     .resync(std::time::Duration::from_secs(2));
    /// assert!(format!("{source:?}").contains("reporter: true"));
    /// # }
    /// ```
    pub fn report_with(mut self, reporter: impl ReportPolicy) -> Self {
        self.reporter = Some(Arc::new(reporter));
        self
    }

    /// How often the reports are asked again (and failed status writes retried at the
    /// soonest); 1s by default.
    pub fn resync(mut self, period: Duration) -> Self {
        self.resync = period.max(Duration::from_millis(10));
        self
    }

    /// Follows `namespace` instead of the client's default one.
    ///
    /// ```
    /// # use fluxgate_core::store::{KubeSource, PolicyStore};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let (service, _server) = tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
    /// let client = kube::Client::new(service, "default");
    /// let source = KubeSource::new(client, PolicyStore::new())
    ///     .namespace("payments")
    ///     .labels("gateway=edge"); // or `.all_namespaces()`
    /// assert!(format!("{source:?}").contains("payments"));
    /// # }
    /// ```
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Follows every namespace.
    pub fn all_namespaces(mut self) -> Self {
        self.namespace = None;
        self
    }

    /// Follows only the objects whose labels match `selector` (such as `gateway=edge`).
    pub fn labels(mut self, selector: &str) -> Self {
        self.config = self.config.labels(selector);
        self
    }

    /// A receiver of the source's [`KubeSourceStatus`].
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<KubeSourceStatus> {
        self.status.subscribe()
    }

    /// The following, as a future that never ends; spawn it, and drop it to stop.
    pub fn run(self) -> impl Future<Output = ()> + Send + 'static {
        let resource = ApiResource::erase::<KubeTrafficPolicy>(&());
        let api: Api<DynamicObject> = match &self.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        let stream = watcher(api, self.config.clone()).default_backoff();
        let mut tick = tokio::time::interval(self.resync);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut follower = Follower::new(self, resource);
        async move {
            let mut stream = std::pin::pin!(stream);
            loop {
                tokio::select! {
                    event = stream.next() => match event {
                        Some(event) => follower.handle(event).await,
                        None => break,
                    },
                    _ = tick.tick() => follower.resync().await,
                }
            }
        }
    }

    /// Spawns [`run`](Self::run) on the current Tokio runtime.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime, as [`tokio::spawn`] does.
    pub fn spawn(self) -> KubeSourceHandle {
        let status = self.subscribe();
        KubeSourceHandle {
            task: tokio::spawn(self.run()),
            status,
        }
    }
}

fn watcher(
    api: Api<DynamicObject>,
    config: watcher::Config,
) -> impl futures::Stream<Item = Result<Event<DynamicObject>, watcher::Error>> + Send {
    watcher::watcher(api, config)
}

// === impl KubeSourceHandle ===

impl KubeSourceHandle {
    /// The source's current [`KubeSourceStatus`].
    #[must_use]
    pub fn status(&self) -> KubeSourceStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every change of the status.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<KubeSourceStatus> {
        self.status.clone()
    }
}

impl Drop for KubeSourceHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
