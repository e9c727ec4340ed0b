//! The canary's state machine: phases, weight, steps and failed checks. Pure; the shared state
//! holds it under a lock that only the judge and the handle take.

use std::time::Duration;

use tokio::time::Instant;

use crate::decision::{Action, Check, Decision, Finding, Phase, RollbackReason};
use crate::error::CanaryError;
use crate::route::Route;
use crate::settings::{InsufficientSamples, Settings};
use crate::snapshot::Transitions;

/// What an analysis measured on the canary's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Measurement {
    pub(crate) samples: u64,
    pub(crate) error_rate: Option<f64>,
    pub(crate) p99: Option<Duration>,
}

#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) settings: Settings,
    pub(crate) phase: Phase,
    pub(crate) weight: u8,
    pub(crate) step: Option<usize>,
    pub(crate) failed_checks: u32,
    pub(crate) last: Option<(Decision, Instant)>,
    pub(crate) transitions: Transitions,
}

impl Machine {
    pub(crate) fn new(settings: Settings, now: Instant) -> Self {
        let mut machine = Self {
            settings,
            phase: Phase::Progressing,
            weight: 0,
            step: None,
            failed_checks: 0,
            last: None,
            transitions: Transitions::default(),
        };
        machine.start(now);
        machine
    }

    fn start(&mut self, now: Instant) {
        self.phase = Phase::Progressing;
        self.failed_checks = 0;
        self.step = (!self.settings.steps.is_empty()).then_some(0);
        self.weight = self.step_weight();
        self.decide(
            Decision::Started {
                weight: self.weight,
            },
            now,
        );
    }

    fn step_weight(&self) -> u8 {
        match self.step {
            Some(i) => self.settings.steps.get(i).copied().unwrap_or(100),
            None => self.settings.weight,
        }
    }

    /// What the request path reads.
    pub(crate) fn route(&self) -> Route {
        let (weight, matched) = match self.phase {
            _ if !self.settings.enabled => (0, false),
            Phase::Progressing | Phase::Paused => (self.weight, true),
            Phase::Promoted => (100, true),
            Phase::RolledBack => (0, !self.settings.rollback_matched),
        };
        Route {
            weight,
            matched,
            rules: self.settings.rules,
        }
    }

    fn judging(&self) -> bool {
        self.settings.enabled && self.phase == Phase::Progressing
    }

    /// One interval's analysis.
    pub(crate) fn analyse(&mut self, m: Measurement, on_few: InsufficientSamples, now: Instant) {
        if !self.judging() {
            return;
        }
        let min = self.settings.min_requests;
        let failure = if m.samples < u64::from(min) {
            match on_few {
                InsufficientSamples::Hold => {
                    self.decide(
                        Decision::Held {
                            samples: m.samples,
                            min_requests: min,
                        },
                        now,
                    );
                    return;
                }
                InsufficientSamples::Pass => None,
                InsufficientSamples::Fail => Some(Finding::TooFewSamples { min_requests: min }),
            }
        } else {
            self.failed_finding(m)
        };
        match failure {
            Some(finding) => {
                let check = Check {
                    finding,
                    samples: m.samples,
                };
                self.failed_checks = self.failed_checks.saturating_add(1);
                let failed_checks = self.failed_checks;
                self.decide(
                    Decision::CheckFailed {
                        check,
                        failed_checks,
                    },
                    now,
                );
                if failed_checks >= self.settings.failure_threshold {
                    let reason = RollbackReason::FailedChecks {
                        check,
                        failed_checks,
                    };
                    self.roll_back(reason, now);
                }
            }
            None => self.pass(m.samples, now),
        }
    }

    fn failed_finding(&self, m: Measurement) -> Option<Finding> {
        let s = &self.settings;
        if let (Some(target), Some(value)) = (s.target_error_rate, m.error_rate)
            && value > target
        {
            return Some(Finding::ErrorRate { value, target });
        }
        if let (Some(target), Some(value)) = (s.target_p99_latency, m.p99)
            && value > target
        {
            return Some(Finding::P99Latency { value, target });
        }
        None
    }

    fn pass(&mut self, samples: u64, now: Instant) {
        self.failed_checks = 0;
        match self.step {
            Some(i) if i + 1 < self.settings.steps.len() => {
                let from = self.weight;
                self.step = Some(i + 1);
                self.weight = self.step_weight();
                self.decide(
                    Decision::Advanced {
                        from,
                        to: self.weight,
                    },
                    now,
                );
            }
            Some(_) => self.promote(false, now),
            None => self.decide(Decision::Passed { samples }, now),
        }
    }

    /// The continuous error-budget check over the sliding window.
    pub(crate) fn budget(&mut self, samples: u64, availability: Option<f64>, now: Instant) {
        let active = matches!(self.phase, Phase::Progressing | Phase::Paused);
        if !self.settings.enabled || !active || samples < u64::from(self.settings.min_requests) {
            return;
        }
        let budget = self.settings.error_budget;
        if let Some(value) = availability.filter(|a| *a < budget) {
            let check = Check {
                finding: Finding::Availability { value, budget },
                samples,
            };
            self.roll_back(RollbackReason::ErrorBudget(check), now);
        }
    }

    /// Promotion: every unmatched request goes to the canary, and the weight says so.
    fn promote(&mut self, manual: bool, now: Instant) {
        self.phase = Phase::Promoted;
        self.weight = 100;
        self.decide(Decision::Promoted { manual }, now);
    }

    fn roll_back(&mut self, reason: RollbackReason, now: Instant) {
        self.phase = Phase::RolledBack;
        self.weight = 0;
        self.decide(Decision::RolledBack(reason), now);
    }

    /// A manual action.
    pub(crate) fn act(&mut self, action: Action, now: Instant) -> Result<(), CanaryError> {
        let invalid = CanaryError::InvalidTransition {
            action,
            phase: self.phase,
        };
        match (action, self.phase) {
            (Action::Promote, Phase::Progressing | Phase::Paused) => self.promote(true, now),
            (Action::Abort, Phase::Progressing | Phase::Paused | Phase::Promoted) => {
                self.roll_back(RollbackReason::Manual, now);
            }
            (Action::Pause, Phase::Progressing) => {
                self.phase = Phase::Paused;
                self.decide(Decision::Paused, now);
            }
            (Action::Resume, Phase::Paused) => {
                self.phase = Phase::Progressing;
                self.decide(Decision::Resumed, now);
            }
            (Action::Restart, _) => self.start(now),
            _ => return Err(invalid),
        }
        Ok(())
    }

    /// A new policy version: targets, thresholds and steps change; progress stays where it can.
    pub(crate) fn update(&mut self, settings: Settings, generation: u64, now: Instant) {
        let old_steps = std::mem::replace(&mut self.settings, settings);
        self.refit(old_steps.steps != self.settings.steps, generation, now);
    }

    /// Puts the weight on the policy's steps after a policy change (`steps_changed`: on the
    /// highest step at or below the weight).
    pub(crate) fn refit(&mut self, steps_changed: bool, generation: u64, now: Instant) {
        let steps = &self.settings.steps;
        if steps_changed {
            // The weight never rises with a policy change: the step kept is the highest one at
            // or below the current weight (the first step if all are above it).
            self.step = (!steps.is_empty())
                .then(|| steps.iter().rposition(|s| *s <= self.weight).unwrap_or(0));
        }
        if matches!(self.phase, Phase::Progressing | Phase::Paused) {
            self.weight = self.step_weight();
        }
        self.decide(Decision::PolicyUpdated { generation }, now);
    }

    fn decide(&mut self, decision: Decision, now: Instant) {
        self.transitions.count(&decision);
        match decision {
            Decision::RolledBack(_) | Decision::CheckFailed { .. } => tracing::warn!(
                target: "fluxgate_canary", phase = %self.phase, weight = self.weight,
                failed_checks = self.failed_checks, "canary {decision}"
            ),
            _ => tracing::info!(
                target: "fluxgate_canary", phase = %self.phase, weight = self.weight,
                failed_checks = self.failed_checks, "canary {decision}"
            ),
        }
        self.last = Some((decision, now));
    }
}

#[cfg(test)]
mod tests;
