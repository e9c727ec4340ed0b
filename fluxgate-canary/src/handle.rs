//! [`CanaryHandle`]: promote, abort, pause, resume and read a canary from outside the data path.

use std::sync::Arc;

use crate::decision::Action;
use crate::error::CanaryError;
use crate::shared::Shared;
use crate::snapshot::Snapshot;

/// A handle on a canary's state, for an admin endpoint or a CLI: cheap to clone, `Send + Sync`.
///
/// Every action takes effect on the next request (the route word is republished at once), is a
/// tracing event and is counted in [`Snapshot::transitions`].
///
/// ```
/// use fluxgate_canary::{Action, Canary, CanaryError, Phase};
/// use fluxgate_core::policy::{CanarySpec, CompiledPolicy, TrafficPolicy};
/// use tower::service_fn;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut policy = TrafficPolicy::new(None, "web");
/// let mut spec = CanarySpec::default();
/// spec.weight = 10;
/// policy.spec.canary = Some(spec);
/// let compiled = CompiledPolicy::compile(&policy)?;
/// let svc = service_fn(|_: http::Request<()>| async { Ok::<_, std::io::Error>(http::Response::new(())) });
/// let (canary, _judge) = Canary::new(svc, svc, compiled.canary().unwrap())?;
/// let handle = canary.handle();
/// handle.pause()?;
/// handle.resume()?;
/// handle.abort()?;
/// assert_eq!(handle.snapshot().phase, Phase::RolledBack);
/// assert_eq!(
///     handle.pause(),
///     Err(CanaryError::InvalidTransition { action: Action::Pause, phase: Phase::RolledBack })
/// );
/// handle.restart()?;
/// assert_eq!(handle.snapshot().weight, 10);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CanaryHandle {
    shared: Arc<Shared>,
}

impl CanaryHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Promotes the canary: every request goes to it from now on, and the judge stops acting.
    ///
    /// # Errors
    ///
    /// [`CanaryError::InvalidTransition`] unless progressing or paused.
    pub fn promote(&self) -> Result<(), CanaryError> {
        self.act(Action::Promote)
    }

    /// Rolls back now (reason: manual); also from a promoted canary.
    ///
    /// # Errors
    ///
    /// [`CanaryError::InvalidTransition`] when already rolled back.
    pub fn abort(&self) -> Result<(), CanaryError> {
        self.act(Action::Abort)
    }

    /// Freezes the weight: no analysis, no step; the error budget is still enforced.
    ///
    /// # Errors
    ///
    /// [`CanaryError::InvalidTransition`] unless progressing.
    pub fn pause(&self) -> Result<(), CanaryError> {
        self.act(Action::Pause)
    }

    /// Resumes a paused canary; its next analysis is at the next interval boundary.
    ///
    /// # Errors
    ///
    /// [`CanaryError::InvalidTransition`] unless paused.
    pub fn resume(&self) -> Result<(), CanaryError> {
        self.act(Action::Resume)
    }

    /// Starts over from any phase: first step (or the policy's weight), no failed checks.
    ///
    /// # Errors
    ///
    /// None today; kept fallible like the other actions.
    pub fn restart(&self) -> Result<(), CanaryError> {
        self.act(Action::Restart)
    }

    /// Applies an [`Action`].
    ///
    /// # Errors
    ///
    /// [`CanaryError::InvalidTransition`] when the action does not apply to the phase.
    pub fn act(&self, action: Action) -> Result<(), CanaryError> {
        self.shared.refresh();
        self.shared.act(action)
    }

    /// The canary's state now.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        self.shared.refresh();
        self.shared.snapshot()
    }
}
