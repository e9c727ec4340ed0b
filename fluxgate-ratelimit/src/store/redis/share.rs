//! A limit's local fallback at this replica's share of the quota, remade when the fleet's size
//! changes.

use std::sync::{Mutex, PoisonError};

use super::super::{LimiterSpec, LocalLimiter, LocalStore, RateLimitStore};
use crate::Quota;

/// The fallback limiter of one limit for the last fleet size asked.
#[derive(Debug)]
pub(crate) struct Share {
    spec: LimiterSpec,
    current: Mutex<Option<(u32, LocalLimiter)>>,
}

impl Share {
    /// The fallback of the limit of `spec` (its whole quota; shares are cut from it).
    pub(crate) fn new(spec: LimiterSpec) -> Self {
        Self {
            spec,
            current: Mutex::new(None),
        }
    }

    /// The limiter at `1 / replicas` of the quota, from `store`; the counts start afresh when
    /// the fleet's size changes.
    pub(crate) fn limiter(&self, store: &LocalStore, replicas: u32) -> LocalLimiter {
        let n = replicas.max(1);
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        match &*current {
            Some((m, limiter)) if *m == n => limiter.clone(),
            _ => {
                let quota = self.spec.quota();
                let local = Quota::new(
                    quota.requests_per_second() / f64::from(n),
                    (quota.burst_size() / n).max(1),
                );
                let spec = LimiterSpec::new(self.spec.identity(), self.spec.algorithm(), local);
                let limiter = store.limiter(&spec);
                *current = Some((n, limiter.clone()));
                limiter
            }
        }
    }
}
