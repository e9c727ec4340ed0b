//! The canary part of `status`: phase, weight, step, the last decision in words, both sides.

use std::collections::BTreeMap;
use std::fmt::Write;

use fluxgate_core::api::CanaryStatus;

use super::units::{millis, or_dash, percent};
use crate::table;

/// Every canary of the section.
pub(super) fn section(canaries: &BTreeMap<String, CanaryStatus>) -> String {
    if canaries.is_empty() {
        return "CANARIES: none\n".to_owned();
    }
    let mut out = String::new();
    for (i, (name, canary)) in canaries.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "CANARY {name}");
        out.push_str(&one(canary));
    }
    out
}

fn one(c: &CanaryStatus) -> String {
    let step = match c.step {
        Some(i) if !c.steps.is_empty() => {
            let weights: Vec<String> = c.steps.iter().map(ToString::to_string).collect();
            format!("{}/{} [{}]", i + 1, c.steps.len(), weights.join(","))
        }
        other => or_dash(other.map(|i| i + 1)),
    };
    let last = c.last_decision.as_ref();
    let header = ["PHASE", "WEIGHT", "STEP", "FAILED CHECKS", "LAST DECISION"].map(str::to_owned);
    let row = [
        c.phase.clone(),
        format!("{}%", c.weight),
        step,
        c.failed_checks.to_string(),
        or_dash(last.map(|d| &d.kind)),
    ];
    let mut out = table::render(&[header, row], "  ");
    if let Some(decision) = last {
        let ago = millis(Some(decision.ago_ms));
        let _ = writeln!(out, "  reason: {} ({ago} ago)", decision.text());
    }
    let _ = writeln!(out, "  view: {}", view(c));
    let mut rows = vec![
        ["SIDE", "ROUTED", "REQUESTS", "ERR%", "P99"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for (side, stats) in [("stable", &c.stable), ("canary", &c.canary)] {
        rows.push(vec![
            side.to_owned(),
            stats.routed.to_string(),
            stats.window_requests.to_string(),
            percent(stats.error_rate),
            millis(stats.p99_ms),
        ]);
    }
    out.push_str(&table::render(&rows, "  "));
    out
}

/// Whose state the phase and weight are, in words.
fn view(c: &CanaryStatus) -> String {
    let Some(fleet) = &c.fleet else {
        return match c.view.as_str() {
            "" => "not said (an older gateway)".to_owned(),
            _ => "local: this gateway decides alone (no fleet)".to_owned(),
        };
    };
    let role = if fleet.leader {
        "judging the fleet's merged traffic"
    } else {
        "following"
    };
    if c.view == "fleet" {
        format!(
            "fleet: replica {} {role}, state version {}; the side figures below are this \
             gateway's own traffic",
            fleet.replica, fleet.version
        )
    } else {
        format!(
            "LOCAL ONLY: replica {} cannot reach the fleet's store ({} failed ticks{}); the \
             last known fleet state, judged on this gateway's traffic",
            fleet.replica,
            fleet.failures,
            fleet
                .last_error
                .as_deref()
                .map_or_else(String::new, |e| format!(", last: {e}"))
        )
    }
}
