//! One side of the stack: a balancer shared by every clone of the stack (no buffer), and the
//! task that passes a changing endpoint set to it while no request comes.

use fluxgate_balance::{Balance, BalanceHandle, RespondUnavailable, Retry, Weighted};
use fluxgate_core::policy::LoadBalancing;
use fluxgate_core::store::{PolicyId, PolicyStore};
use fluxgate_core::task::TaskHandle;
use futures::StreamExt as _;
use futures::channel::mpsc;
use tower::discover::Change;

use super::service::SideService;
use super::{BoxError, Endpoint, EndpointChanges, SharedProbe};

/// The discovery of a side's balancer: the endpoint changes the stack passes it (none when the
/// side's endpoints are fixed).
pub(super) type SideDiscovery<K, S> =
    mpsc::UnboundedReceiver<Result<Change<K, Weighted<S>>, BoxError>>;

/// What starting one side takes: its balancer's policy follower and health checks are spawned.
pub(super) struct SideStart<'a, K> {
    pub(super) store: &'a PolicyStore,
    pub(super) id: &'a PolicyId,
    pub(super) probe: Option<&'a SharedProbe<K>>,
    pub(super) tasks: &'a mut Vec<TaskHandle>,
}

impl<K> SideStart<'_, K>
where
    K: Eq + Clone + Send + Sync + 'static,
{
    /// A side over `endpoints`, and the `changes` to come if any: each change is passed to
    /// the balancer, which takes it in at once (its handle and health checks see it).
    pub(super) fn start<S, B, RB>(
        self,
        policy: LoadBalancing,
        endpoints: Vec<(K, Weighted<S>)>,
        changes: Option<EndpointChanges<K, S>>,
    ) -> (SideService<K, S, B>, BalanceHandle<K>)
    where
        S: Endpoint<B, RB>,
        B: Send + 'static,
        RB: Default + Send + 'static,
    {
        let (tx, rx): (_, SideDiscovery<K, S>) = mpsc::unbounded();
        let balance = Balance::from_discover(policy, rx).with_endpoints(endpoints);
        let handle = balance.handle();
        self.tasks.push(handle.follow(self.store, self.id).spawn());
        if let Some(probe) = self.probe {
            self.tasks.push(balance.health_task(probe.clone()).spawn());
        }
        // Without changes the sender is dropped here: the discovery ends at once.
        if let Some(mut changes) = changes {
            let follower = balance.clone();
            self.tasks.push(TaskHandle::spawn(async move {
                while let Some(change) = changes.next().await {
                    if tx.unbounded_send(change).is_err() {
                        return;
                    }
                    if let Err(error) = follower.apply_changes() {
                        tracing::warn!(%error, "endpoint discovery failed");
                    }
                }
            }));
        }
        (
            Retry::new(RespondUnavailable::new(balance), &handle),
            handle,
        )
    }
}
