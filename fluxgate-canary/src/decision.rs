//! What the judge and the handle decide, and why: [`Phase`], [`Decision`], [`Check`].

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::millis::{de_millis, millis};

/// Where a canary release stands.
///
/// ```
/// use fluxgate_canary::Phase;
///
/// assert_eq!(Phase::RolledBack.to_string(), "rolled-back");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Phase {
    /// Receiving its weight (and matched requests), judged every interval, advancing by steps.
    Progressing,
    /// Weight frozen by hand: no analysis, no step; the error budget is still enforced.
    Paused,
    /// Promoted: every request goes to the canary; the judge no longer acts.
    Promoted,
    /// Rolled back: nothing goes to the canary (matched requests neither, unless the policy
    /// sets `rollbackMatched: false`); the judge no longer acts.
    RolledBack,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Progressing => "progressing",
            Self::Paused => "paused",
            Self::Promoted => "promoted",
            Self::RolledBack => "rolled-back",
        })
    }
}

/// A manual action on a canary, through a [`CanaryHandle`](crate::CanaryHandle).
///
/// ```
/// use fluxgate_canary::Action;
///
/// assert_eq!(Action::Abort.to_string(), "abort");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Send every request to the canary.
    Promote,
    /// Roll back now.
    Abort,
    /// Freeze the weight.
    Pause,
    /// Unfreeze the weight.
    Resume,
    /// Start over from the first step.
    Restart,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Promote => "promote",
            Self::Abort => "abort",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Restart => "restart",
        })
    }
}

/// One metric of the canary, measured against its target.
///
/// ```
/// use fluxgate_canary::Finding;
///
/// let finding = Finding::ErrorRate { value: 0.05, target: 0.01 };
/// assert_eq!(finding.to_string(), "error rate 5.00% > target 1.00%");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "metric",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum Finding {
    /// Failures and overloads per request, against `metrics.targetErrorRate`.
    ErrorRate {
        /// The measured rate, in [0, 1].
        value: f64,
        /// The highest acceptable rate.
        target: f64,
    },
    /// The 99th percentile latency, against `metrics.targetP99Latency`.
    P99Latency {
        /// The measured p99 (milliseconds in JSON).
        #[serde(serialize_with = "millis", deserialize_with = "de_millis")]
        value: Duration,
        /// The highest acceptable p99 (milliseconds in JSON).
        #[serde(serialize_with = "millis", deserialize_with = "de_millis")]
        target: Duration,
    },
    /// Successes per request over the sliding budget window, against `errorBudget`.
    Availability {
        /// The measured availability, in [0, 1].
        value: f64,
        /// The lowest acceptable availability.
        budget: f64,
    },
    /// Fewer canary requests than `minRequests`, counted as a failure by
    /// [`InsufficientSamples::Fail`](crate::InsufficientSamples::Fail).
    TooFewSamples {
        /// `minRequests`.
        min_requests: u32,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ErrorRate { value, target } => write!(
                f,
                "error rate {:.2}% > target {:.2}%",
                value * 100.0,
                target * 100.0
            ),
            Self::P99Latency { value, target } => write!(f, "p99 {value:?} > target {target:?}"),
            Self::Availability { value, budget } => write!(
                f,
                "availability {:.2}% < budget {:.2}%",
                value * 100.0,
                budget * 100.0
            ),
            Self::TooFewSamples { min_requests } => write!(f, "fewer than {min_requests} requests"),
        }
    }
}

/// A failed check: what was measured, and on how many canary requests.
///
/// ```
/// use fluxgate_canary::{Check, Finding};
///
/// let check = Check { finding: Finding::Availability { value: 0.9, budget: 0.985 }, samples: 40 };
/// assert_eq!(check.to_string(), "availability 90.00% < budget 98.50% over 40 requests");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The metric, its value and its target.
    pub finding: Finding,
    /// The canary requests the metric was measured on.
    pub samples: u64,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} over {} requests", self.finding, self.samples)
    }
}

/// Why a canary was rolled back.
///
/// ```
/// use fluxgate_canary::RollbackReason;
///
/// assert_eq!(RollbackReason::Manual.to_string(), "aborted by hand");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "reason",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum RollbackReason {
    /// `failureThreshold` analyses failed in a row; the last one's check.
    FailedChecks {
        /// The last failed check.
        check: Check,
        /// The failed checks in a row.
        failed_checks: u32,
    },
    /// The continuous error-budget check failed.
    ErrorBudget(Check),
    /// [`CanaryHandle::abort`](crate::CanaryHandle::abort).
    Manual,
}

impl fmt::Display for RollbackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FailedChecks {
                check,
                failed_checks,
            } => write!(f, "{failed_checks} failed checks, last: {check}"),
            Self::ErrorBudget(check) => write!(f, "error budget: {check}"),
            Self::Manual => f.write_str("aborted by hand"),
        }
    }
}

/// One decision of the judge or the handle; the last one is in the
/// [`Snapshot`](crate::Snapshot), and each is a tracing event (target `fluxgate_canary`).
///
/// ```
/// use fluxgate_canary::Decision;
///
/// assert_eq!(Decision::Advanced { from: 5, to: 10 }.to_string(), "advanced from 5% to 10%");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum Decision {
    /// The canary started (or restarted) at this weight.
    Started {
        /// The weight, in percent.
        weight: u8,
    },
    /// An analysis passed and the weight moved to the next step.
    Advanced {
        /// The previous weight.
        from: u8,
        /// The new weight.
        to: u8,
    },
    /// An analysis passed and there is no step to advance to (a fixed-weight canary).
    Passed {
        /// The canary requests judged.
        samples: u64,
    },
    /// An analysis had fewer than `minRequests` canary requests: neither pass nor failure.
    Held {
        /// The canary requests seen.
        samples: u64,
        /// `minRequests`.
        min_requests: u32,
    },
    /// An analysis failed; the weight holds.
    CheckFailed {
        /// What failed.
        check: Check,
        /// Failed checks in a row, this one included.
        failed_checks: u32,
    },
    /// Promoted (by the last step's passing analysis, or by hand).
    Promoted {
        /// Whether by hand.
        manual: bool,
    },
    /// Rolled back.
    RolledBack(RollbackReason),
    /// Paused by hand.
    Paused,
    /// Resumed by hand.
    Resumed,
    /// A new policy version was taken in.
    PolicyUpdated {
        /// The store generation of the new version (0: the policy or its canary was removed).
        generation: u64,
    },
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Started { weight } => write!(f, "started at {weight}%"),
            Self::Advanced { from, to } => write!(f, "advanced from {from}% to {to}%"),
            Self::Passed { samples } => write!(f, "analysis passed over {samples} requests"),
            Self::Held {
                samples,
                min_requests,
            } => write!(f, "held: {samples} requests < minRequests {min_requests}"),
            Self::CheckFailed {
                check,
                failed_checks,
            } => write!(f, "check {failed_checks} failed: {check}"),
            Self::Promoted { manual: true } => f.write_str("promoted by hand"),
            Self::Promoted { manual: false } => f.write_str("promoted after the last step"),
            Self::RolledBack(reason) => write!(f, "rolled back: {reason}"),
            Self::Paused => f.write_str("paused"),
            Self::Resumed => f.write_str("resumed"),
            Self::PolicyUpdated { generation } => {
                write!(f, "policy updated (generation {generation})")
            }
        }
    }
}
