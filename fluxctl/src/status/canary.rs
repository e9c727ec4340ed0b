//! The canary part of `status`: phase, weight, step, the last decision and why, both sides.

use std::fmt::Write;

use serde_json::Value;

use super::json::{field, millis, named, number, percent, plain, text};
use crate::table;

/// Every canary of the section (a map by name, an array, or one snapshot).
pub(super) fn section(canaries: &Value) -> String {
    let all = if field(canaries, &["phase"]).is_some() {
        vec![(String::new(), canaries)]
    } else {
        named(canaries, &["name"])
    };
    if all.is_empty() {
        return "CANARIES: none\n".to_owned();
    }
    let mut out = String::new();
    for (i, (name, snapshot)) in all.into_iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "CANARY {name}");
        out.push_str(&one(snapshot));
    }
    out
}

fn one(s: &Value) -> String {
    let step = match (
        field(s, &["step"]).and_then(Value::as_u64),
        field(s, &["steps"]),
    ) {
        (Some(i), Some(Value::Array(steps))) if !steps.is_empty() => {
            let weights: Vec<String> = steps.iter().map(plain).collect();
            format!("{}/{} [{}]", i + 1, steps.len(), weights.join(","))
        }
        (Some(i), _) => (i + 1).to_string(),
        (None, _) => "-".to_owned(),
    };
    let last = field(s, &["lastDecision", "last_decision"]);
    let kind = last.map_or_else(|| "-".to_owned(), |d| text(d, &["kind", "type"]));
    let header = ["PHASE", "WEIGHT", "STEP", "FAILED CHECKS", "LAST DECISION"].map(str::to_owned);
    let row = [
        text(s, &["phase"]),
        field(s, &["weight"]).map_or_else(|| "-".to_owned(), |w| format!("{}%", plain(w))),
        step,
        text(s, &["failedChecks", "failed_checks"]),
        kind,
    ];
    let mut out = table::render(&[header, row], "  ");
    if let Some(decision) = last {
        let when = field(decision, &["agoMs"])
            .map_or_else(String::new, |ago| format!(" ({} ago)", millis(Some(ago))));
        let _ = writeln!(out, "  reason: {}{when}", describe(decision));
    }
    let mut rows = vec![
        ["SIDE", "ROUTED", "REQUESTS", "ERR%", "P99"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for side in ["stable", "canary"] {
        if let Some(stats) = field(s, &[side]) {
            rows.push(vec![
                side.to_owned(),
                text(stats, &["routed"]),
                text(stats, &["windowRequests", "requests"]),
                percent(field(stats, &["errorRate", "error_rate"])),
                millis(field(stats, &["p99Ms", "p99"])),
            ]);
        }
    }
    if rows.len() > 1 {
        out.push_str(&table::render(&rows, "  "));
    }
    out
}

/// A decision in words, as the canary crate's `Display` puts it.
fn describe(d: &Value) -> String {
    let t = |keys: &[&str]| text(d, keys);
    match field(d, &["kind", "type"]).and_then(Value::as_str) {
        Some("started") => format!("started at {}%", t(&["weight"])),
        Some("advanced") => format!("advanced from {}% to {}%", t(&["from"]), t(&["to"])),
        Some("passed") => format!("analysis passed over {} requests", t(&["samples"])),
        Some("held") => format!(
            "held: {} requests < minRequests {}",
            t(&["samples"]),
            t(&["minRequests"])
        ),
        Some("checkFailed") => format!(
            "check {} failed: {}",
            t(&["failedChecks"]),
            field(d, &["check"]).map_or_else(|| "-".to_owned(), check)
        ),
        Some("promoted") => match field(d, &["manual"]) {
            Some(Value::Bool(true)) => "promoted by hand".to_owned(),
            _ => "promoted after the last step".to_owned(),
        },
        Some("rolledBack") => format!("rolled back: {}", rollback(d)),
        Some("policyUpdated") => format!("policy updated (generation {})", t(&["generation"])),
        Some(kind) => other_fields(kind, d),
        None => plain(d),
    }
}

fn rollback(d: &Value) -> String {
    match field(d, &["reason"]).and_then(Value::as_str) {
        Some("errorBudget") => format!("error budget: {}", check(d)),
        Some("failedChecks") => format!(
            "{} failed checks, last: {}",
            text(d, &["failedChecks"]),
            field(d, &["check"]).map_or_else(|| "-".to_owned(), check)
        ),
        Some("manual") => "aborted by hand".to_owned(),
        Some(reason) => other_fields(reason, d),
        None => "-".to_owned(),
    }
}

/// A failed check: `{finding: {metric, value, target|budget|minRequests}, samples}`.
fn check(c: &Value) -> String {
    let Some(f) = field(c, &["finding"]) else {
        return plain(c);
    };
    let share = |k| {
        field(f, &[k])
            .and_then(Value::as_f64)
            .map(|x| number(x * 100.0))
    };
    let finding = match field(f, &["metric"]).and_then(Value::as_str) {
        Some("errorRate") => format!(
            "error rate {}% > target {}%",
            share("value").unwrap_or_default(),
            share("target").unwrap_or_default()
        ),
        Some("p99Latency") => format!(
            "p99 {} > target {}",
            millis(field(f, &["value"])),
            millis(field(f, &["target"]))
        ),
        Some("availability") => format!(
            "availability {}% < budget {}%",
            share("value").unwrap_or_default(),
            share("budget").unwrap_or_default()
        ),
        Some("tooFewSamples") => format!("fewer than {} requests", text(f, &["minRequests"])),
        _ => plain(f),
    };
    format!("{finding} over {} requests", text(c, &["samples"]))
}

/// A kind this version does not know: its name and its other fields.
fn other_fields(kind: &str, d: &Value) -> String {
    let Some(map) = d.as_object() else {
        return kind.to_owned();
    };
    let rest: Vec<String> = map
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "kind" | "type" | "reason" | "agoMs"))
        .map(|(k, v)| format!("{k}={}", plain(v)))
        .collect();
    if rest.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind} ({})", rest.join(", "))
    }
}
