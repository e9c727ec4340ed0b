//! [`KubeSource`]: follows `TrafficPolicy` objects with a watcher and applies them to a store.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::convert::{next_status, object_id, to_policy};
use super::{KubeSourceError, KubeTrafficPolicy, TrafficPolicyStatus};
use crate::store::{ApplyError, PolicyId, PolicyStore};

/// How long a status write may take before it is given up (and retried on the next event).
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

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
/// absent from the new list are deleted too. Each object's `status` gets `observedGeneration`
/// and an `Accepted` condition: `True`, or `False` with the validation errors as its message.
/// A status that already says so is not written again.
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
    client: Client,
    namespace: Option<String>,
    store: PolicyStore,
    config: watcher::Config,
    status: watch::Sender<KubeSourceStatus>,
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource")
            .field("namespace", &self.namespace)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// The task of a spawned [`KubeSource`]; dropping it stops the following.
///
/// See [`KubeSource`] for an example.
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
        }
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
        let mut follower = Follower {
            source: self,
            resource,
            owned: BTreeSet::new(),
            listing: None,
        };
        async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                follower.handle(event).await;
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

// === impl Follower ===

/// The state of a running source: what it put in the store, and the list being loaded.
struct Follower {
    source: KubeSource,
    resource: ApiResource,
    owned: BTreeSet<PolicyId>,
    listing: Option<BTreeSet<PolicyId>>,
}

impl Follower {
    async fn handle(&mut self, event: Result<Event<DynamicObject>, watcher::Error>) {
        match event {
            Ok(Event::Init) => {
                self.listing = Some(BTreeSet::new());
                self.source.status.send_modify(|s| s.synced = false);
            }
            Ok(Event::InitApply(object)) => {
                let id = self.id(&object);
                if let Some(listing) = &mut self.listing {
                    listing.insert(id.clone());
                }
                self.apply(id, &object).await;
            }
            Ok(Event::InitDone) => self.finish_listing(),
            Ok(Event::Apply(object)) => {
                let id = self.id(&object);
                self.apply(id, &object).await;
            }
            Ok(Event::Delete(object)) => {
                let id = self.id(&object);
                self.delete(&id);
            }
            Err(error) => {
                tracing::warn!(%error, "watching TrafficPolicy objects failed; retrying");
                self.fail(KubeSourceError::Watch(Arc::new(error)));
            }
        }
    }

    fn id(&self, object: &DynamicObject) -> PolicyId {
        let default = self
            .source
            .namespace
            .as_deref()
            .unwrap_or(crate::store::DEFAULT_NAMESPACE);
        object_id(object, default)
    }

    /// Deletes what this source put in the store and the new list no longer has.
    fn finish_listing(&mut self) {
        let listed = self.listing.take().unwrap_or_default();
        let gone: Vec<PolicyId> = self.owned.difference(&listed).cloned().collect();
        for id in &gone {
            self.delete(id);
        }
        self.source.status.send_modify(|s| {
            s.synced = true;
            s.syncs += 1;
        });
    }

    async fn apply(&mut self, id: PolicyId, object: &DynamicObject) {
        let outcome = match to_policy(object, &id) {
            Ok(policy) => self
                .source
                .store
                .apply(&policy)
                .map(|report| report.changes.iter().any(crate::store::Change::is_change)),
            Err(errors) => Err(self.source.store.reject(ApplyError::Invalid(errors))),
        };
        match &outcome {
            Ok(changed) => {
                self.owned.insert(id.clone());
                if *changed {
                    self.source.status.send_modify(|s| s.changes += 1);
                }
            }
            Err(_) => self.source.status.send_modify(|s| s.rejected += 1),
        }
        if let Some(status) = next_status(object, outcome.as_ref().map(|_| ())) {
            self.write_status(&id, &status).await;
        }
    }

    fn delete(&mut self, id: &PolicyId) {
        self.owned.remove(id);
        let report = self.source.store.delete(id);
        if !report.changes.is_empty() {
            self.source.status.send_modify(|s| s.changes += 1);
        }
    }

    async fn write_status(&self, id: &PolicyId, status: &TrafficPolicyStatus) {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.source.client.clone(), id.namespace(), &self.resource);
        let patch = Patch::Merge(json!({ "status": status }));
        let params = PatchParams::default();
        let write = api.patch_status(id.name(), &params, &patch);
        match tokio::time::timeout(STATUS_TIMEOUT, write).await {
            Ok(Ok(_)) => self.source.status.send_modify(|s| s.status_writes += 1),
            Ok(Err(source)) => {
                tracing::warn!(%id, error = %source, "writing a TrafficPolicy status failed");
                self.fail(KubeSourceError::Status {
                    id: id.clone(),
                    source: Arc::new(source),
                });
            }
            Err(_) => self.fail(KubeSourceError::StatusTimeout(id.clone())),
        }
    }

    fn fail(&self, error: KubeSourceError) {
        self.source.status.send_modify(|s| {
            s.failures += 1;
            s.last_error = Some(error);
        });
    }
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
