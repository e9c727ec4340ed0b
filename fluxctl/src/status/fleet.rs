//! `status --redis`: the fleet as the shared Redis holds it, in a table or JSON.

use std::fmt::Write;

use fluxgate_canary::fleet::{FleetState, SideFigures};
use serde_json::{Value, json};

use super::units::{millis, or_dash, percent};
use crate::fleet::{Canary, Fleet};
use crate::table;

/// The fleet for people.
pub(super) fn summary(fleet: &Fleet) -> String {
    let mut out = format!("FLEET {} (Redis {})\n", fleet.namespace, fleet.url);
    let _ = writeln!(
        out,
        "REPLICAS sharing rate limits: {} live",
        fleet.replicas.len()
    );
    if !fleet.replicas.is_empty() {
        let mut rows = vec![["REPLICA", "HEARTBEAT EXPIRES IN"].map(str::to_owned)];
        for (name, ms) in &fleet.replicas {
            rows.push([name.clone(), millis(Some(*ms as f64))]);
        }
        out.push_str(&table::render(&rows, "  "));
    }
    if fleet.canaries.is_empty() && fleet.unstarted.is_empty() {
        out.push_str("\nCANARIES: none in the fleet's state\n");
    }
    for canary in &fleet.canaries {
        out.push('\n');
        out.push_str(&one(canary));
    }
    for name in &fleet.unstarted {
        let _ = write!(
            out,
            "\nCANARY {}/{name}: not started (no replica sharing this Redis runs it yet)\n",
            fleet.namespace
        );
    }
    out
}

fn one(canary: &Canary) -> String {
    let o = &canary.overview;
    let mut out = format!("CANARY {}\n", canary.name);
    if let Some(state) = &o.state {
        out.push_str(&state_table(state));
    }
    let leader = o
        .leader
        .as_deref()
        .unwrap_or("none (no replica judges now)");
    let _ = writeln!(
        out,
        "  replicas: {} live ({}); judged by: {leader}",
        o.replicas.len(),
        if o.replicas.is_empty() {
            "-".to_owned()
        } else {
            o.replicas.join(", ")
        }
    );
    match &o.window {
        Some(window) => {
            let _ = writeln!(
                out,
                "  the fleet's window, merged over every replica (judged by {}):",
                window.by
            );
            let mut rows = vec![["SIDE", "REQUESTS", "ERRORS", "ERR%", "P99"].map(str::to_owned)];
            for (side, counts) in [
                ("stable", &window.counts.stable),
                ("canary", &window.counts.canary),
            ] {
                let f = SideFigures::of(counts);
                rows.push([
                    side.to_owned(),
                    f.requests.to_string(),
                    f.errors.to_string(),
                    percent(f.error_rate),
                    millis(f.p99_ms),
                ]);
            }
            out.push_str(&table::render(&rows, "  "));
        }
        None => out.push_str("  the fleet's window: none published (no replica judges now)\n"),
    }
    out
}

fn state_table(state: &FleetState) -> String {
    let header = [
        "PHASE",
        "WEIGHT",
        "STEP",
        "FAILED CHECKS",
        "VERSION",
        "DECIDED BY",
    ];
    let row = [
        crate::fleet::phase_name(state.phase),
        format!("{}%", state.weight),
        or_dash(state.step.map(|s| s + 1)),
        state.failed_checks.to_string(),
        state.version.to_string(),
        state.decided_by.clone(),
    ];
    let mut out = table::render(&[header.map(str::to_owned), row], "  ");
    if let Some(decision) = &state.last_decision {
        let _ = writeln!(out, "  last decision: {decision}");
    }
    out
}

/// The fleet as one JSON document.
pub(super) fn json(fleet: &Fleet) -> Value {
    let side = |f: SideFigures| serde_json::to_value(f).unwrap_or(Value::Null);
    let canaries: serde_json::Map<String, Value> = fleet
        .canaries
        .iter()
        .map(|c| {
            let o = &c.overview;
            let window = o.window.as_ref().map(|w| {
                json!({
                    "by": w.by,
                    "atMs": w.at_ms,
                    "stable": side(SideFigures::of(&w.counts.stable)),
                    "canary": side(SideFigures::of(&w.counts.canary)),
                })
            });
            let value = json!({
                "state": o.state,
                "replicas": o.replicas,
                "leader": o.leader,
                "window": window,
            });
            (c.name.clone(), value)
        })
        .collect();
    let replicas: Vec<Value> = fleet
        .replicas
        .iter()
        .map(|(name, ms)| json!({"name": name, "expiresInMs": ms}))
        .collect();
    json!({
        "namespace": fleet.namespace,
        "redis": fleet.url,
        "replicas": replicas,
        "canaries": canaries,
        "notStarted": fleet.unstarted,
    })
}
