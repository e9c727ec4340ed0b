//! [`PolicyFollower`]: keeps a balancer on the `loadBalancing` section of a policy in a
//! [`PolicyStore`], as a future the caller spawns.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use fluxgate_core::store::{PolicyId, PolicySlot, PolicyStore};
use fluxgate_core::task::TaskHandle;
use tokio::sync::watch;

use crate::handle::BalanceHandle;
use crate::shared::Shared;

/// Puts the `spec.loadBalancing` of one policy in force on a balancer whenever the store
/// changes; returned by [`BalanceHandle::follow`].
///
/// A policy without a `loadBalancing` section, or no policy under the id, means
/// [`LoadBalancing::default()`](fluxgate_core::policy::LoadBalancing::default). Endpoint health, drains and latency history survive every
/// change (see [`BalanceHandle::set_policy`]). The future completes once the balancer or the
/// store is dropped; dropping it stops the following (the policy in force stays).
#[must_use = "a policy follower does nothing unless spawned or polled"]
pub struct PolicyFollower {
    inner: Pin<Box<dyn Future<Output = ()> + Send + 'static>>,
}

impl fmt::Debug for PolicyFollower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyFollower").finish_non_exhaustive()
    }
}

impl Future for PolicyFollower {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.as_mut().poll(cx)
    }
}

impl PolicyFollower {
    /// Spawns the follower on the current tokio runtime. Dropping the returned handle stops
    /// it ([`TaskHandle`]); it also ends on its own when the balancer is gone.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`tokio::spawn`] does.
    pub fn spawn(self) -> TaskHandle {
        TaskHandle::spawn(self)
    }
}

impl<K: Send + Sync + 'static> BalanceHandle<K> {
    /// Follows the policy `id` in `store`: its `loadBalancing` is put in force now, and again
    /// after every change of the store that alters it. Spawns nothing: spawn the returned
    /// [`PolicyFollower`] (or [`PolicyFollower::spawn`] it).
    ///
    /// It takes the store rather than a [`PolicySlot`] alone so that it can tell when the store
    /// is gone and end; it keeps neither the store nor the balancer alive.
    ///
    /// ```
    /// use fluxgate_balance::{Balance, Weighted};
    /// use fluxgate_core::policy::{BalanceAlgorithm, LoadBalancing};
    /// use fluxgate_core::store::{PolicyId, PolicyStore};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let svc = || Weighted::new(tower::service_fn(|_: http::Request<()>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(()))
    /// # }), 1);
    ///
    /// let store = PolicyStore::new();
    /// let balance = Balance::<_, http::Request<()>>::new(LoadBalancing::default(), [("a", svc())]);
    /// let handle = balance.handle();
    /// let following = handle.follow(&store, &PolicyId::new("shop", "api")).spawn();
    /// store.apply_bytes(b"
    /// apiVersion: fluxgate.io/v1beta1
    /// kind: TrafficPolicy
    /// metadata: {name: api, namespace: shop}
    /// spec: {loadBalancing: {algorithm: peak-ewma}}
    /// ", None).unwrap();
    /// # for _ in 0..100 { if handle.policy().algorithm == BalanceAlgorithm::PeakEwma { break } tokio::task::yield_now().await; }
    /// assert_eq!(handle.policy().algorithm, BalanceAlgorithm::PeakEwma);
    /// drop(balance); // the follower ends on its own
    /// following.await.unwrap();
    /// # }
    /// ```
    pub fn follow(&self, store: &PolicyStore, id: &PolicyId) -> PolicyFollower {
        // Subscribed here, before the caller spawns, so that no change in between is missed.
        let changes = store.subscribe();
        PolicyFollower {
            inner: Box::pin(run(Arc::clone(&self.shared), store.slot(id), changes)),
        }
    }
}

async fn run<K>(shared: Arc<Shared<K>>, slot: PolicySlot, mut changes: watch::Receiver<u64>) {
    loop {
        let closed = shared.notify.notified();
        tokio::pin!(closed);
        closed.as_mut().enable();
        if shared.is_closed() {
            return;
        }
        let policy = slot
            .load_full()
            .and_then(|p| p.compiled().load_balancing().cloned())
            .unwrap_or_default();
        if **shared.policy.load() != policy {
            tracing::debug!(policy = %slot.id(), algorithm = ?policy.algorithm, "load balancing changed");
            shared.set_policy(policy);
            continue;
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = &mut closed => {}
        }
    }
}
