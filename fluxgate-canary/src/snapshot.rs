//! A canary's state as the handle reads it: [`Snapshot`], [`SideStats`], [`Transitions`].
//!
//! Each of them (and [`Decision`], [`Phase`] and the types in them) is [`serde::Serialize`], for
//! an admin endpoint: field names are camelCase, enums are tagged (`phase: "rolledBack"`,
//! `{"kind": "rolledBack", "reason": "errorBudget", ...}`), durations are milliseconds (a
//! floating-point number; fields named `...Ms`, and the `value`/`target` of a p99 finding).

use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::decision::{Decision, Phase};
use crate::millis::{millis, opt_millis};

/// The last decision in JSON: the decision's fields and `agoMs`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LastDecision<'a> {
    #[serde(flatten)]
    decision: &'a Decision,
    #[serde(serialize_with = "millis")]
    ago_ms: &'a Duration,
}

fn last_decision<S: Serializer>(
    last: &Option<(Decision, Duration)>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    last.as_ref()
        .map(|(decision, ago_ms)| LastDecision { decision, ago_ms })
        .serialize(serializer)
}

/// How many times each kind of decision was taken: the canary's metrics.
///
/// ```
/// use fluxgate_canary::Transitions;
///
/// assert_eq!(Transitions::default().rolled_back, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Transitions {
    /// Starts and restarts.
    pub started: u64,
    /// Step advances.
    pub advanced: u64,
    /// Passing analyses (advances and promotions by analysis included).
    pub passed: u64,
    /// Analyses held for too few samples.
    pub held: u64,
    /// Failed analyses.
    pub failed: u64,
    /// Promotions.
    pub promoted: u64,
    /// Rollbacks.
    pub rolled_back: u64,
    /// Pauses.
    pub paused: u64,
    /// Resumes.
    pub resumed: u64,
    /// Policy versions taken in.
    pub policy_updates: u64,
}

impl Transitions {
    pub(crate) fn count(&mut self, decision: &Decision) {
        let counter = match decision {
            Decision::Started { .. } => &mut self.started,
            Decision::Advanced { .. } => {
                self.passed += 1;
                &mut self.advanced
            }
            Decision::Passed { .. } => &mut self.passed,
            Decision::Held { .. } => &mut self.held,
            Decision::CheckFailed { .. } => &mut self.failed,
            Decision::Promoted { manual } => {
                self.passed += u64::from(!manual);
                &mut self.promoted
            }
            Decision::RolledBack(_) => &mut self.rolled_back,
            Decision::Paused => &mut self.paused,
            Decision::Resumed => &mut self.resumed,
            Decision::PolicyUpdated { .. } => &mut self.policy_updates,
        };
        *counter += 1;
    }
}

/// The traffic of one side.
///
/// ```
/// use fluxgate_canary::SideStats;
///
/// assert_eq!(SideStats::default().error_rate, None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SideStats {
    /// Requests routed to this side since the router was built.
    pub routed: u64,
    /// Responses (and errors) in the last full analysis window.
    pub window_requests: u64,
    /// Failures and overloads per response in that window; `None` without responses.
    pub error_rate: Option<f64>,
    /// The 99th percentile latency in that window; `None` without responses (`p99Ms` in JSON).
    #[serde(rename = "p99Ms", serialize_with = "opt_millis")]
    pub p99: Option<Duration>,
    /// One response in this many is timed for the latencies (1: every one; a busy side is
    /// sampled, see the [crate docs](crate#latency-sampling)); 0 in a default value.
    pub timed_one_in: u32,
}

/// A canary's state at one moment, as [`CanaryHandle::snapshot`](crate::CanaryHandle::snapshot)
/// reads it.
///
/// ```
/// use fluxgate_canary::{Canary, Phase};
/// use fluxgate_core::policy::{CanarySpec, CompiledPolicy, TrafficPolicy};
/// use tower::service_fn;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut policy = TrafficPolicy::new(None, "web");
/// let mut spec = CanarySpec::default();
/// spec.weight = 10;
/// policy.spec.canary = Some(spec);
/// let compiled = CompiledPolicy::compile(&policy)?;
/// let svc = service_fn(|_: http::Request<()>| async { Ok::<_, std::io::Error>(http::Response::new(())) });
/// let (canary, _judge) = Canary::new(svc, svc, compiled.canary().unwrap())?;
/// let snapshot = canary.handle().snapshot();
/// assert_eq!((snapshot.phase, snapshot.weight, snapshot.step), (Phase::Progressing, 10, None));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Snapshot {
    /// The phase.
    pub phase: Phase,
    /// Whether the policy has the canary enabled (`false` without a policy or `canary` section).
    pub enabled: bool,
    /// The weight the machine is at, in percent (the share of unmatched requests routed to the
    /// canary is 100 once promoted and 0 once rolled back or disabled).
    pub weight: u8,
    /// The index of the current step, when the policy has steps.
    pub step: Option<usize>,
    /// The policy's steps.
    pub steps: Vec<u8>,
    /// Failed analyses in a row.
    pub failed_checks: u32,
    /// The last decision, and how long ago it was taken (in JSON, the decision's fields and
    /// `agoMs`).
    #[serde(serialize_with = "last_decision")]
    pub last_decision: Option<(Decision, Duration)>,
    /// The stable side's traffic.
    pub stable: SideStats,
    /// The canary side's traffic.
    pub canary: SideStats,
    /// Decisions taken, by kind.
    pub transitions: Transitions,
    /// The store generation of the policy in force (`None` for a fixed canary).
    pub generation: Option<u64>,
    /// How this replica stands with its fleet, when it has one
    /// ([`CanaryBuilder::fleet`](crate::CanaryBuilder::fleet)); the figures above are then this
    /// replica's own traffic, and the phase and weight the fleet's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::FleetStatus>,
}
