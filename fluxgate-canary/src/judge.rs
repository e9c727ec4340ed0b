//! The judge: the background task that analyses the canary every interval and checks its error
//! budget every tick.

use std::sync::{Arc, Weak};
use std::time::Duration;

use fluxgate_core::task::TaskHandle;
use tokio::time::Instant;

use crate::shared::{Shared, Windows};

/// The canary's judge, returned by [`Canary::new`](crate::Canary::new) for the caller to run.
///
/// It wakes every `budget_tick` (200ms) to check the error budget and every `interval` to run
/// the analysis; both fall on the window buckets' boundaries, so an analysis reads exactly the
/// interval that just ended. It also takes in new policy versions from a
/// [`PolicySlot`](fluxgate_core::store::PolicySlot) when there is no traffic to do it. It stops
/// by itself at its first tick after the last clone of the router is dropped (handles do not
/// keep it running). Without a judge running, the canary routes but is never judged.
///
/// ```
/// use fluxgate_canary::Canary;
/// use fluxgate_core::policy::{CanarySpec, CompiledPolicy, TrafficPolicy};
/// use tower::service_fn;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut policy = TrafficPolicy::new(None, "web");
/// let mut spec = CanarySpec::default();
/// spec.weight = 10;
/// policy.spec.canary = Some(spec);
/// let compiled = CompiledPolicy::compile(&policy)?;
/// let svc = service_fn(|_: http::Request<()>| async { Ok::<_, std::io::Error>(http::Response::new(())) });
/// let (canary, judge) = Canary::new(svc, svc, compiled.canary().unwrap())?;
/// let task = judge.spawn();
/// drop(canary);
/// task.await?; // the judge ends once the router is gone
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "the canary is never judged unless its judge runs"]
pub struct Judge {
    shared: Arc<Shared>,
    alive: Weak<()>,
}

impl Judge {
    pub(crate) fn new(shared: Arc<Shared>, alive: Weak<()>) -> Self {
        Self { shared, alive }
    }

    /// Runs the judge until the router is dropped.
    pub async fn run(self) {
        if self.shared.fleet.is_some() {
            return crate::fleet::run(self.shared, self.alive).await;
        }
        let tick = self.shared.options.budget_tick;
        let mut windows = self.shared.windows.load_full();
        let (mut next_budget, mut next_analysis) = schedule(&windows, tick, Instant::now());
        loop {
            tokio::time::sleep_until(next_budget.min(next_analysis)).await;
            if self.alive.strong_count() == 0 {
                return;
            }
            self.shared.refresh();
            let now = Instant::now();
            let current = self.shared.windows.load_full();
            if !Arc::ptr_eq(&current, &windows) {
                windows = current;
                (next_budget, next_analysis) = schedule(&windows, tick, now);
                continue;
            }
            if now >= next_budget {
                self.shared.resample(now);
                self.shared.check_budget(now);
                next_budget = next_after(windows.origin, tick, now);
            }
            if now >= next_analysis {
                self.shared.analyse(now);
                next_analysis = next_after(windows.origin, windows.interval, now);
            }
        }
    }

    /// Spawns [`run`](Self::run) on the current tokio runtime. Dropping the returned handle
    /// stops the judge ([`TaskHandle`]); it also ends on its own when the router is gone.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`tokio::spawn`] does.
    pub fn spawn(self) -> TaskHandle {
        TaskHandle::spawn(self.run())
    }
}

fn schedule(windows: &Windows, tick: Duration, now: Instant) -> (Instant, Instant) {
    (
        next_after(windows.origin, tick, now),
        next_after(windows.origin, windows.interval, now),
    )
}

/// The first `origin + k·period` strictly after `now`.
fn next_after(origin: Instant, period: Duration, now: Instant) -> Instant {
    let period_ns = period.as_nanos().max(1);
    let elapsed = now.saturating_duration_since(origin).as_nanos();
    let k = elapsed / period_ns + 1;
    let offset = u64::try_from(k * period_ns).unwrap_or(u64::MAX);
    origin + Duration::from_nanos(offset)
}
