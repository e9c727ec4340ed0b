//! Errors of the canary router and its handle.

use fluxgate_core::window::WindowError;

use crate::decision::{Action, Phase};

/// What went wrong building a canary, using its handle, or calling it out of turn.
///
/// ```
/// use fluxgate_canary::{Action, CanaryError, Phase};
///
/// let error = CanaryError::InvalidTransition { action: Action::Pause, phase: Phase::RolledBack };
/// assert_eq!(error.to_string(), "cannot pause a canary that is rolled-back");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CanaryError {
    /// A manual action that does not apply to the canary's phase (pausing a rolled-back canary).
    #[error("cannot {action} a canary that is {phase}")]
    InvalidTransition {
        /// The action asked for.
        action: Action,
        /// The phase the canary was in.
        phase: Phase,
    },
    /// `call` came without a `poll_ready` that returned `Ready(Ok)` for both sides.
    #[error("the canary router was called before poll_ready reported both sides ready")]
    NotReady,
    /// The analysis windows could not be built for the policy's interval.
    #[error("analysis window: {0}")]
    Window(#[from] WindowError),
}
