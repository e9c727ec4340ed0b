//! The status a policy object should have: its `Accepted` and `Programmed` conditions and its
//! canary, from the apply's outcome, the store and the [`PolicyReport`].

use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::{ACCEPTED, PROGRAMMED, PolicyReport, TrafficPolicyStatus};

/// What the last apply of an object said: accepted, or refused with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    Accepted,
    Refused(String),
}

/// What is known of one object when its status is computed.
#[derive(Debug)]
pub(super) struct Facts<'a> {
    /// The object's `metadata.generation`.
    pub(super) generation: Option<i64>,
    pub(super) verdict: &'a Verdict,
    /// `Some` when the store holds a policy under the object's id: the generation in force.
    pub(super) in_force: Option<Option<i64>>,
    /// The user's report; `None` when the policy is not used (no `Programmed` condition).
    pub(super) report: Option<PolicyReport>,
}

/// One condition before its transition time is known.
struct Cond {
    type_: &'static str,
    status: bool,
    reason: String,
    message: String,
    observed_generation: Option<i64>,
}

/// The status `facts` call for; each condition keeps its `lastTransitionTime` from `previous`
/// while its status stays, so an unchanged status compares equal to `previous`.
pub(super) fn desired(
    facts: Facts<'_>,
    previous: Option<&TrafficPolicyStatus>,
) -> TrafficPolicyStatus {
    let generation = facts.generation;
    let accepted = match facts.verdict {
        Verdict::Accepted => Cond {
            type_: ACCEPTED,
            status: true,
            reason: "Accepted".to_owned(),
            message: "the policy is valid".to_owned(),
            observed_generation: generation,
        },
        Verdict::Refused(message) => Cond {
            type_: ACCEPTED,
            status: false,
            reason: "Invalid".to_owned(),
            message: message.clone(),
            observed_generation: generation,
        },
    };
    let programmed = facts
        .report
        .as_ref()
        .map(|report| programmed(generation, facts.verdict, facts.in_force, report));
    let conditions = std::iter::once(accepted)
        .chain(programmed)
        .map(|cond| condition(cond, previous))
        .collect();
    TrafficPolicyStatus {
        observed_generation: generation,
        conditions,
        canary: facts.report.and_then(|r| r.canary),
    }
}

fn programmed(
    generation: Option<i64>,
    verdict: &Verdict,
    in_force: Option<Option<i64>>,
    report: &PolicyReport,
) -> Cond {
    let Some(in_force) = in_force else {
        return Cond {
            type_: PROGRAMMED,
            status: false,
            reason: "Invalid".to_owned(),
            message: "no generation of the policy was accepted".to_owned(),
            observed_generation: generation,
        };
    };
    if let Some((reason, message)) = &report.not_programmed {
        return Cond {
            type_: PROGRAMMED,
            status: false,
            reason: reason.clone(),
            message: message.clone(),
            observed_generation: in_force,
        };
    }
    let message = match (verdict, in_force) {
        (Verdict::Accepted, _) => "the policy is in force".to_owned(),
        (Verdict::Refused(_), Some(kept)) => {
            format!("generation {kept} stays in force; the newer one was refused")
        }
        (Verdict::Refused(_), None) => {
            "the policy in force before stays; this one was refused".to_owned()
        }
    };
    Cond {
        type_: PROGRAMMED,
        status: true,
        reason: "Programmed".to_owned(),
        message,
        observed_generation: in_force,
    }
}

fn condition(cond: Cond, previous: Option<&TrafficPolicyStatus>) -> Condition {
    let status = if cond.status { "True" } else { "False" };
    let last_transition_time = previous
        .and_then(|p| p.condition(cond.type_))
        .filter(|p| p.status == status)
        .map_or_else(now, |p| p.last_transition_time.clone());
    Condition {
        type_: cond.type_.to_owned(),
        status: status.to_owned(),
        reason: cond.reason,
        message: cond.message,
        observed_generation: cond.observed_generation,
        last_transition_time,
    }
}

fn now() -> Time {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    Time(Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CanaryStatus;

    fn facts(verdict: &Verdict, in_force: Option<Option<i64>>) -> Facts<'_> {
        Facts {
            generation: Some(2),
            verdict,
            in_force,
            report: Some(PolicyReport::programmed().canary(CanaryStatus::new("Paused", 5))),
        }
    }

    #[test]
    fn an_unchanged_status_compares_equal() {
        let first = desired(facts(&Verdict::Accepted, Some(Some(2))), None);
        let again = desired(facts(&Verdict::Accepted, Some(Some(2))), Some(&first));
        assert_eq!(first, again);
        assert_eq!(first.canary, Some(CanaryStatus::new("Paused", 5)));
        assert_eq!(first.programmed().unwrap().observed_generation, Some(2));
    }

    #[test]
    fn a_refusal_keeps_the_generation_in_force_programmed() {
        let refused = Verdict::Refused("spec.canary.weight: too big".to_owned());
        let status = desired(facts(&refused, Some(Some(1))), None);
        let accepted = status.accepted().unwrap();
        assert_eq!(
            (accepted.status.as_str(), accepted.reason.as_str()),
            ("False", "Invalid")
        );
        let programmed = status.programmed().unwrap();
        assert_eq!(programmed.status, "True");
        assert_eq!(programmed.observed_generation, Some(1));
        let never = desired(facts(&refused, None), None);
        assert_eq!(never.programmed().unwrap().status, "False");
    }

    #[test]
    fn no_report_no_programmed_condition() {
        let mut facts = facts(&Verdict::Accepted, Some(Some(2)));
        facts.report = None;
        let status = desired(facts, None);
        assert!(status.programmed().is_none() && status.canary.is_none());
    }
}
