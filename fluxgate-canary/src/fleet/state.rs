//! [`FleetState`]: the one record of a canary that every replica follows, how a replica's
//! machine adopts it and exports it, and [`request`]: a fleet action from outside a replica.

use std::time::Duration;

use fluxgate_core::store::PolicyId;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::store::{FleetError, FleetStore, WriteResult, unix_ms};
use crate::decision::{Action, Decision, Phase};
use crate::machine::Machine;
use crate::settings::Settings;
use crate::snapshot::Transitions;

/// A canary's state as the fleet shares it: one record per policy, written by compare-and-set
/// on `version`.
///
/// In the store it is JSON (camelCase fields, the [`Decision`] as in a
/// [`Snapshot`](crate::Snapshot)).
///
/// ```
/// use fluxgate_canary::Phase;
/// use fluxgate_canary::fleet::FleetState;
///
/// let json = r#"{"version":3,"phase":"rolledBack","weight":0,"step":1,"failedChecks":0,
///   "lastDecision":{"kind":"rolledBack","reason":"manual"},"decidedAtMs":5,"decidedBy":"fluxctl",
///   "startedAtMs":1,"analysed":0}"#;
/// let state: FleetState = serde_json::from_str(json)?;
/// assert_eq!((state.phase, state.weight), (Phase::RolledBack, 0));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FleetState {
    /// Bumped by every write; a write names the version it replaces.
    pub version: u64,
    /// The phase.
    pub phase: Phase,
    /// The weight, in percent.
    pub weight: u8,
    /// The step index, when the policy has steps.
    pub step: Option<usize>,
    /// Failed analyses in a row.
    pub failed_checks: u32,
    /// The last decision and its reason.
    pub last_decision: Option<Decision>,
    /// When it was taken (Unix milliseconds).
    pub decided_at_ms: u64,
    /// Which replica (or tool) took it.
    pub decided_by: String,
    /// When the rollout started or last restarted (Unix milliseconds).
    pub started_at_ms: u64,
    /// The index (`unix_ms / interval`) of the last interval analysed, so that an interval is
    /// judged once across lease changes.
    pub analysed: u64,
}

impl FleetState {
    /// The next version of `self` as `machine` stands, decided by `by` at `now_ms` if the
    /// machine took a decision since it adopted `self`.
    pub(crate) fn next(
        prev: Option<&Self>,
        machine: &Machine,
        decided: bool,
        by: &str,
        now_ms: u64,
    ) -> Self {
        let last_decision = machine.last.map(|(d, _)| d);
        let restarted = decided && matches!(last_decision, Some(Decision::Started { .. }));
        let (decided_at_ms, decided_by) = match prev {
            Some(p) if !decided => (p.decided_at_ms, p.decided_by.clone()),
            _ => (now_ms, by.to_owned()),
        };
        Self {
            version: prev.map_or(1, |p| p.version + 1),
            phase: machine.phase,
            weight: machine.weight,
            step: machine.step,
            failed_checks: machine.failed_checks,
            last_decision,
            decided_at_ms,
            decided_by,
            started_at_ms: match prev {
                Some(p) if !restarted => p.started_at_ms,
                _ => now_ms,
            },
            analysed: prev.map_or(0, |p| p.analysed),
        }
    }

    /// Whether `machine` stands where this state says.
    pub(crate) fn matches(&self, machine: &Machine) -> bool {
        self.phase == machine.phase
            && self.weight == machine.weight
            && self.step == machine.step
            && self.failed_checks == machine.failed_checks
            && self.last_decision == machine.last.map(|(d, _)| d)
    }

    /// Puts `machine` where this state says; counts its decision when `count`.
    pub(crate) fn adopt_into(&self, machine: &mut Machine, count: bool, now: Instant) {
        machine.phase = self.phase;
        machine.weight = self.weight;
        machine.step = self.step;
        machine.failed_checks = self.failed_checks;
        let age = Duration::from_millis(unix_ms().saturating_sub(self.decided_at_ms));
        let at = now.checked_sub(age).unwrap_or(now);
        if let Some(decision) = self.last_decision {
            if count && machine.last.map(|(d, _)| d) != Some(decision) {
                machine.transitions.count(&decision);
            }
            machine.last = Some((decision, at));
        }
    }
}

/// How a replica stands with its fleet, in [`Snapshot::fleet`](crate::Snapshot::fleet): the
/// admin API's own type, so that the status document and `fluxctl` read it as written. When
/// `connected` is `false`, the state shown is the last known one (the local view), and only the
/// error budget is judged, on local traffic.
///
/// ```
/// use fluxgate_canary::fleet::FleetStatus;
///
/// assert!(!FleetStatus::default().connected);
/// ```
pub type FleetStatus = fluxgate_core::api::FleetMember;

/// Applies a manual action (promote, abort, pause, resume) to a canary's fleet state in
/// `store`, by compare-and-set (retried a few times on conflict): every replica follows within
/// a tick. This is what `fluxctl` calls, with `by` naming it.
///
/// # Errors
///
/// [`FleetError::Refused`] when the fleet has no state for `id`, the action does not apply to
/// its phase (or is `Restart`, which needs the policy), or writes kept conflicting; a store error.
///
/// ```
/// use fluxgate_canary::Action;
/// use fluxgate_canary::fleet::{request, LocalFleet};
/// use fluxgate_core::store::PolicyId;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = LocalFleet::new();
/// let refused = request(&store, &PolicyId::new("shop", "web"), Action::Abort, "fluxctl").await;
/// assert!(refused.is_err()); // no replica has started this canary
/// # }
/// ```
pub async fn request(
    store: &dyn FleetStore,
    id: &PolicyId,
    action: Action,
    by: &str,
) -> Result<FleetState, FleetError> {
    if action == Action::Restart {
        return Err(FleetError::Refused(
            "restart is done through a replica".to_owned(),
        ));
    }
    let mut current = store.load(id).await?;
    for _ in 0..5 {
        let Some(state) = current else {
            return Err(FleetError::Refused(format!("no fleet state for {id}")));
        };
        // A scratch machine: promote, abort, pause and resume need no settings.
        let now = Instant::now();
        let mut machine = Machine {
            settings: Settings::of(None),
            phase: state.phase,
            weight: state.weight,
            step: state.step,
            failed_checks: state.failed_checks,
            last: None,
            transitions: Transitions::default(),
        };
        machine
            .act(action, now)
            .map_err(|e| FleetError::Refused(e.to_string()))?;
        let next = FleetState::next(Some(&state), &machine, true, by, unix_ms());
        match store.write(id, &next).await? {
            WriteResult::Written => return Ok(next),
            WriteResult::Conflict(stored) => current = stored,
        }
    }
    Err(FleetError::Refused(format!(
        "{action} on {id}: the state kept changing"
    )))
}
