//! The running state of a [`KubeSource`]: the objects it follows, what it put in the store, and
//! the status each object has on the server.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tokio::time::Instant;

use super::conditions::{Facts, Verdict, desired};
use super::convert::{object_id, refusal_message, server_status, to_policy};
use super::{KubeSource, KubeSourceError, PolicyReport, TrafficPolicyStatus};
use crate::store::{ApplyError, Change, PolicyId};

/// How long a status write may take before it is given up (and retried).
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest wait between two attempts to write a status.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One object as last seen, and its status on the server.
#[derive(Debug)]
struct Tracked {
    generation: Option<i64>,
    /// The object's labels and annotations, which the policy carries too.
    meta: Meta,
    verdict: Verdict,
    /// The status the server holds: read from the object, or written by us since.
    server: Option<TrafficPolicyStatus>,
    /// After a failed write: when to try again, and the wait after that.
    retry: Option<(Instant, Duration)>,
}

type Meta = (
    Option<BTreeMap<String, String>>,
    Option<BTreeMap<String, String>>,
);

/// The state of a running source: what it put in the store, the list being loaded and the
/// objects whose status it keeps.
pub(super) struct Follower {
    source: KubeSource,
    resource: ApiResource,
    owned: BTreeSet<PolicyId>,
    listing: Option<BTreeSet<PolicyId>>,
    tracked: BTreeMap<PolicyId, Tracked>,
}

impl Follower {
    pub(super) fn new(source: KubeSource, resource: ApiResource) -> Self {
        Self {
            source,
            resource,
            owned: BTreeSet::new(),
            listing: None,
            tracked: BTreeMap::new(),
        }
    }

    pub(super) async fn handle(&mut self, event: Result<Event<DynamicObject>, watcher::Error>) {
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

    /// Asks the reports again and writes the statuses they changed, or whose last write failed
    /// and whose backoff is over.
    pub(super) async fn resync(&mut self) {
        let now = Instant::now();
        let due: Vec<PolicyId> = self
            .tracked
            .iter()
            .filter(|(_, t)| t.retry.is_none_or(|(at, _)| at <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.sync(&id).await;
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
        self.tracked.retain(|id, _| listed.contains(id));
        self.source.status.send_modify(|s| {
            s.synced = true;
            s.syncs += 1;
        });
    }

    async fn apply(&mut self, id: PolicyId, object: &DynamicObject) {
        let meta = (
            object.metadata.labels.clone(),
            object.metadata.annotations.clone(),
        );
        // An object refused before and unchanged since (the echo of its status write) is not
        // read and refused again.
        if let Some(tracked) = self.tracked.get_mut(&id)
            && matches!(tracked.verdict, Verdict::Refused(_))
            && tracked.generation == object.metadata.generation
            && tracked.meta == meta
        {
            tracked.server = server_status(object);
            self.sync(&id).await;
            return;
        }
        let store = &self.source.store;
        let outcome = match to_policy(object, &id) {
            Ok(policy) => store
                .apply(&policy)
                .map(|report| report.changes.iter().any(Change::is_change)),
            Err(errors) => Err(store.reject(ApplyError::Invalid(errors))),
        };
        let verdict = match &outcome {
            Ok(changed) => {
                self.owned.insert(id.clone());
                if *changed {
                    self.source.status.send_modify(|s| s.changes += 1);
                }
                Verdict::Accepted
            }
            Err(error) => {
                self.source.status.send_modify(|s| s.rejected += 1);
                Verdict::Refused(refusal_message(error))
            }
        };
        let tracked = Tracked {
            generation: object.metadata.generation,
            meta,
            verdict,
            server: server_status(object),
            retry: None,
        };
        self.tracked.insert(id.clone(), tracked);
        self.sync(&id).await;
    }

    fn delete(&mut self, id: &PolicyId) {
        self.owned.remove(id);
        self.tracked.remove(id);
        let report = self.source.store.delete(id);
        if !report.changes.is_empty() {
            self.source.status.send_modify(|s| s.changes += 1);
        }
    }

    /// Writes the status of `id` if it differs from the server's.
    async fn sync(&mut self, id: &PolicyId) {
        let report = match &self.source.reporter {
            Some(reporter) => reporter.report(id),
            None => Some(PolicyReport::programmed()),
        };
        let in_force = self
            .source
            .store
            .get(id)
            .map(|p| p.compiled().policy().metadata.generation);
        let Some(tracked) = self.tracked.get(id) else {
            return;
        };
        let facts = Facts {
            generation: tracked.generation,
            verdict: &tracked.verdict,
            in_force,
            report,
        };
        let status = desired(facts, tracked.server.as_ref());
        if tracked.server.as_ref() == Some(&status) {
            return;
        }
        let written = self.write_status(id, &status).await;
        if let Some(tracked) = self.tracked.get_mut(id) {
            if written {
                tracked.server = Some(status);
                tracked.retry = None;
            } else {
                let wait = tracked
                    .retry
                    .map_or(self.source.resync, |(_, wait)| (wait * 2).min(MAX_BACKOFF));
                tracked.retry = Some((Instant::now() + wait, wait));
            }
        }
    }

    async fn write_status(&self, id: &PolicyId, status: &TrafficPolicyStatus) -> bool {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.source.client.clone(), id.namespace(), &self.resource);
        let patch = Patch::Merge(json!({ "status": status }));
        let params = PatchParams::default();
        let write = api.patch_status(id.name(), &params, &patch);
        let error = match tokio::time::timeout(STATUS_TIMEOUT, write).await {
            Ok(Ok(_)) => {
                self.source.status.send_modify(|s| s.status_writes += 1);
                return true;
            }
            Ok(Err(source)) => KubeSourceError::Status {
                id: id.clone(),
                source: Arc::new(source),
            },
            Err(_) => KubeSourceError::StatusTimeout(id.clone()),
        };
        tracing::warn!(%id, %error, "writing a TrafficPolicy status failed; retrying");
        self.fail(error);
        false
    }

    fn fail(&self, error: KubeSourceError) {
        self.source.status.send_modify(|s| {
            s.failures += 1;
            s.last_error = Some(error);
        });
    }
}
