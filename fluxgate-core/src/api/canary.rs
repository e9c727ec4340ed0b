//! A canary in [`Status`](super::Status), and the answer of `POST /api/canary/{action}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Extra;

/// One canary release: where it stands, its last decision, the traffic of both sides.
///
/// ```
/// use fluxgate_core::api::CanaryStatus;
///
/// let json = r#"{"phase": "rolledBack", "weight": 0, "steps": [5, 25], "step": 1,
///   "lastDecision": {"kind": "rolledBack", "reason": "manual", "summary": "rolled back: aborted by hand", "agoMs": 1250.0},
///   "canary": {"routed": 40, "errorRate": 0.1, "p99Ms": 230.0}}"#;
/// let canary: CanaryStatus = serde_json::from_str(json)?;
/// let last = canary.last_decision.as_ref().unwrap();
/// assert_eq!((last.kind.as_str(), last.text()), ("rolledBack", "rolled back: aborted by hand"));
/// assert_eq!(last.details["reason"], "manual");
/// assert_eq!((canary.canary.routed, canary.stable.routed), (40, 0));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct CanaryStatus {
    /// `progressing`, `paused`, `promoted` or `rolledBack`.
    pub phase: String,
    /// Whether the policy has the canary enabled.
    pub enabled: bool,
    /// The weight the release is at, in percent.
    pub weight: u8,
    /// The index of the current step, when the policy has steps.
    pub step: Option<usize>,
    /// The policy's steps (weights in percent).
    pub steps: Vec<u8>,
    /// Failed analyses in a row.
    pub failed_checks: u32,
    /// The last decision, if any.
    pub last_decision: Option<LastDecision>,
    /// The stable side's traffic.
    pub stable: SideStatus,
    /// The canary side's traffic.
    pub canary: SideStatus,
    /// Decisions taken, by kind (`started`, `advanced`, `rolledBack`, ...).
    pub transitions: BTreeMap<String, u64>,
    /// The store generation of the policy in force (`None` for a fixed canary).
    pub generation: Option<u64>,
    /// Whose phase and weight these are: `local` (this gateway decides alone), `fleet` (the
    /// fleet's shared state, followed) or `localOnly` (a fleet member that cannot reach the
    /// shared store: the last known state, judged on this gateway's traffic only). The sides'
    /// traffic figures are always this gateway's own.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub view: String,
    /// How this gateway stands with its fleet, when it is a member of one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetMember>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The traffic of one side of a canary.
///
/// ```
/// use fluxgate_core::api::SideStatus;
///
/// let side: SideStatus = serde_json::from_str(r#"{"routed": 960, "windowRequests": 96, "p99Ms": 41.5}"#)?;
/// assert_eq!((side.window_requests, side.p99_ms, side.error_rate), (96, Some(41.5), None));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct SideStatus {
    /// Requests routed to this side since the router was built.
    pub routed: u64,
    /// Responses (and errors) in the last full analysis window.
    pub window_requests: u64,
    /// Failures and overloads per response in that window; `None` without responses.
    pub error_rate: Option<f64>,
    /// The 99th percentile latency in that window, in milliseconds.
    pub p99_ms: Option<f64>,
    /// One response in this many is timed for the latencies (1: every one; a busy side is
    /// sampled); 0 from a gateway that does not say.
    pub timed_one_in: u32,
}

/// A canary's last decision: its kind, the sentence that says it, when, and its own fields.
///
/// ```
/// use fluxgate_core::api::LastDecision;
///
/// let json = r#"{"kind": "advanced", "from": 5, "to": 25, "agoMs": 800.0}"#;
/// let last: LastDecision = serde_json::from_str(json)?;
/// // Without `summary` (an older gateway), the text is the kind.
/// assert_eq!((last.text(), last.details["to"].as_u64()), ("advanced", Some(25)));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct LastDecision {
    /// `started`, `advanced`, `passed`, `held`, `checkFailed`, `promoted`, `rolledBack`,
    /// `paused`, `resumed` or `policyUpdated`.
    pub kind: String,
    /// The decision in words (`rolled back: error budget: availability 90.00% < budget 98.50%
    /// over 40 requests`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// How long ago it was taken, in milliseconds.
    pub ago_ms: f64,
    /// The decision's own fields (`from`/`to`, `reason`, `check`, `finding`, `samples`, ...).
    #[serde(flatten)]
    pub details: Extra,
}

impl LastDecision {
    /// The decision in words: the summary, or the kind when the gateway sent none.
    #[must_use]
    pub fn text(&self) -> &str {
        self.summary.as_deref().unwrap_or(&self.kind)
    }
}

/// How a gateway stands with the fleet that shares its canary's state.
///
/// ```
/// use fluxgate_core::api::FleetMember;
///
/// let json = r#"{"replica": "gw-1", "connected": false, "joined": true, "failures": 3,
///   "lastError": "shared store timed out"}"#;
/// let member: FleetMember = serde_json::from_str(json)?;
/// assert!(!member.connected && member.joined && !member.leader);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct FleetMember {
    /// This gateway's name in the fleet.
    pub replica: String,
    /// Whether its last tick reached the shared store.
    pub connected: bool,
    /// Whether it has read the fleet's state at least once.
    pub joined: bool,
    /// Whether it holds the decision lease (judges the fleet's merged traffic).
    pub leader: bool,
    /// The version of the fleet state it follows.
    pub version: u64,
    /// Ticks that could not reach the store.
    pub failures: u64,
    /// The last store error, kept after a recovery.
    pub last_error: Option<String>,
    /// The fleet's canary requests in the merged window (the lease holder only).
    pub window_requests: Option<u64>,
    /// A rollback decided on local traffic waits to be published to the fleet.
    pub rollback_pending: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Extra,
}
