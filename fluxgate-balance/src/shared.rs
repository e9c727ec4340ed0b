//! State shared by the balancer, its handles and its health task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use fluxgate_core::clock::Stamp;
use fluxgate_core::policy::LoadBalancing;
use tokio::sync::Notify;

use crate::endpoint::EndpointState;

/// What the balancer, its [`BalanceHandle`](crate::BalanceHandle)s and its
/// [`HealthTask`](crate::HealthTask) share.
#[derive(Debug)]
pub(crate) struct Shared<K> {
    /// Every endpoint, in the balancer's order; replaced (rarely) when discovery changes the set.
    pub(crate) endpoints: ArcSwap<Vec<Arc<EndpointState<K>>>>,
    pub(crate) policy: ArcSwap<LoadBalancing>,
    /// Bumped by every policy change.
    pub(crate) generation: AtomicU64,
    /// Set when an endpoint's eligibility may have changed outside the balancer.
    pub(crate) dirty: Arc<AtomicBool>,
    /// Set when the balancer is dropped.
    pub(crate) closed: AtomicBool,
    /// Wakes the health task when the balancer is dropped or the policy changes.
    pub(crate) notify: Notify,
    pub(crate) origin: Stamp,
    /// Held while an evaluation judges the endpoints (the balancer's or the health task's).
    pub(crate) detecting: AtomicBool,
    /// When the endpoints were last judged (nanoseconds from `origin`).
    pub(crate) last_detect: AtomicU64,
    /// Failures in a row that drain an endpoint at once (0: never).
    pub(crate) failure_streak: AtomicU32,
}

impl<K> Shared<K> {
    pub(crate) fn new(policy: LoadBalancing) -> Self {
        Self {
            endpoints: ArcSwap::from_pointee(Vec::new()),
            policy: ArcSwap::from_pointee(policy),
            generation: AtomicU64::new(0),
            dirty: Arc::new(AtomicBool::new(false)),
            closed: AtomicBool::new(false),
            notify: Notify::new(),
            origin: Stamp::now(),
            detecting: AtomicBool::new(false),
            last_detect: AtomicU64::new(0),
            failure_streak: AtomicU32::new(crate::service::FAILURE_STREAK),
        }
    }

    /// Puts `policy` in force for the balancer (next request) and the health task (woken now).
    pub(crate) fn set_policy(&self, policy: LoadBalancing) {
        self.policy.store(Arc::new(policy));
        self.generation.fetch_add(1, Ordering::Release);
        self.mark_dirty();
        self.notify.notify_waiters();
    }

    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}
