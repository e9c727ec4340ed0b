//! Replicas of one canary as in-process routers, each with its own Redis client and judge.

use std::time::Duration;

use fluxgate_canary::fleet::{Fleet, FleetStatus, RedisFleet};
use fluxgate_canary::{Canary, Phase, Snapshot};
use fluxgate_core::store::PolicyId;
use http::Request;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use super::{Backend, Router, canary};

/// The canary's id in the store (the support policies are `t/web`).
pub fn id() -> PolicyId {
    PolicyId::new("t", "web")
}

/// One replica: its router, its own backends and its judge's task.
pub struct Replica {
    pub name: &'static str,
    pub router: Router,
    pub stable: Backend,
    pub canary: Backend,
    pub judge: Option<JoinHandle<()>>,
}

impl Replica {
    /// A replica over `url` with canary `spec`; its canary answers `canary_status`.
    pub async fn start(url: &str, spec: &str, name: &'static str, canary_status: u16) -> Self {
        let store = RedisFleet::connect(url).await.unwrap();
        let fleet = Fleet::new(store, id()).replica(name);
        let (stable, canary_backend) = (Backend::new("stable"), Backend::new("canary"));
        canary_backend.set_status(canary_status);
        let (router, judge) = Canary::builder(stable.clone(), canary_backend.clone(), canary(spec))
            .fleet(fleet)
            .build()
            .unwrap();
        Self {
            name,
            router,
            stable,
            canary: canary_backend,
            judge: Some(judge.spawn()),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.router.handle().snapshot()
    }

    pub fn fleet(&self) -> FleetStatus {
        self.snapshot().fleet.unwrap()
    }

    pub fn phase(&self) -> Phase {
        self.snapshot().phase
    }

    /// Sends `n` plain requests, one after the other.
    pub async fn send(&self, n: usize) {
        for _ in 0..n {
            let _ = self.router.clone().oneshot(Request::new(())).await;
        }
    }

    /// Stops the judge (the replica keeps routing on its last state).
    pub fn stop_judge(&mut self) {
        if let Some(judge) = self.judge.take() {
            judge.abort();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop_judge();
    }
}

/// Polls `check` every 20ms until it holds or `limit` passes; whether it held.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
