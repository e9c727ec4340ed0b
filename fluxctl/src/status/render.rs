//! The `status` summary: policies, balancers, canaries and rate limits, one section each, then
//! the sections this version does not know, one line each.

use std::collections::BTreeMap;
use std::fmt::Write;

use fluxgate_core::api::{EndpointStatus, RateLimitStatus, Status, StoreStatus};

use super::canary;
use super::units::{ago, loose, millis, number, percent};
use crate::table;

/// The whole summary of a status document.
pub(super) fn summary(status: &Status) -> String {
    let sections = [
        ("POLICIES", status.store.as_ref().map(policies)),
        ("BALANCERS", status.balancers.as_ref().map(balancers)),
        ("CANARIES", status.canaries.as_ref().map(canary::section)),
        (
            "RATE LIMITS",
            status.rate_limits.as_deref().map(rate_limits),
        ),
    ];
    let mut out = String::new();
    for (i, (title, shown)) in sections.into_iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match shown {
            Some(shown) => out.push_str(&shown),
            None => {
                let _ = writeln!(out, "{title}: absent");
            }
        }
    }
    for (name, value) in &status.extra {
        let _ = write!(out, "\n{}: {}\n", name.to_uppercase(), loose(value));
    }
    out
}

/// The policy store: generation, counts, last rejection, the policies in force.
fn policies(store: &StoreStatus) -> String {
    let mut out = format!(
        "POLICIES: generation {}, {} applied, {} rejected\n",
        store.generation, store.applied, store.rejected,
    );
    match &store.last_rejection {
        Some(r) => {
            let when = ago(r.at_unix_seconds);
            let _ = writeln!(out, "  last rejection: {} ({when})", r.message);
        }
        None => out.push_str("  last rejection: none\n"),
    }
    if let Some(r) = &store.last_removal {
        let when = ago(r.at_unix_seconds);
        let _ = writeln!(out, "  last removal: {} ({}, {when})", r.id, r.reason);
    }
    for r in &store.renamed {
        let _ = writeln!(out, "  renamed: {} -> {}", r.from, r.to);
    }
    for id in &store.retained {
        let _ = writeln!(out, "  retained after leaving its file: {id}");
    }
    let mut rows = vec![vec!["POLICY".to_owned(), "GENERATION".to_owned()]];
    for policy in &store.policies {
        rows.push(vec![policy.id.clone(), policy.generation.to_string()]);
    }
    if rows.len() == 1 {
        out.push_str("  no policy in force\n");
    } else {
        out.push_str(&table::render(&rows, "  "));
    }
    out
}

/// A table per balancer.
fn balancers(section: &BTreeMap<String, Vec<EndpointStatus>>) -> String {
    if section.is_empty() {
        return "BALANCERS: none\n".to_owned();
    }
    let mut out = String::new();
    for (name, endpoints) in section {
        let _ = writeln!(out, "BALANCER {name}");
        let mut rows = vec![
            [
                "ENDPOINT", "HEALTH", "WEIGHT", "INFLIGHT", "P95", "ERR%", "DRAINED",
            ]
            .map(str::to_owned)
            .to_vec(),
        ];
        rows.extend(endpoints.iter().map(endpoint));
        out.push_str(&table::render(&rows, "  "));
    }
    out
}

/// One row of a balancer's table.
fn endpoint(e: &EndpointStatus) -> Vec<String> {
    let health = if e.healthy { "healthy" } else { "unhealthy" };
    let health = if e.probing {
        format!("{health},probing")
    } else {
        health.to_owned()
    };
    #[allow(clippy::float_cmp)] // the same integer weight, converted
    let weight = if e.effective_weight == f64::from(e.weight) {
        e.weight.to_string()
    } else {
        format!("{}/{}", number(e.effective_weight), e.weight)
    };
    let drained = match (&e.drained, &e.drained_detail) {
        (None, _) => "-".to_owned(),
        (Some(reason), Some(detail)) => format!("{reason} ({detail})"),
        (Some(reason), None) => reason.clone(),
    };
    vec![
        e.endpoint.clone(),
        health,
        weight,
        e.in_flight.to_string(),
        millis(e.p95_ms),
        percent(e.error_rate),
        drained,
    ]
}

/// Admitted and refused requests per policy, and per limit of each.
fn rate_limits(section: &[RateLimitStatus]) -> String {
    let mut rows = vec![
        ["POLICY", "LIMIT", "KEY", "ADMITTED", "REFUSED"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for (i, counts) in section.iter().enumerate() {
        let policy = counts
            .policy
            .clone()
            .unwrap_or_else(|| format!("#{}", i + 1));
        rows.push(vec![
            policy.clone(),
            "(all)".to_owned(),
            "-".to_owned(),
            counts.admitted.to_string(),
            counts.refused.to_string(),
        ]);
        for limit in &counts.limits {
            rows.push(vec![
                policy.clone(),
                limit.name.clone(),
                limit.key.clone(),
                limit.admitted.to_string(),
                limit.refused.to_string(),
            ]);
        }
    }
    if rows.len() == 1 {
        return "RATE LIMITS: none\n".to_owned();
    }
    let mut out = format!("RATE LIMITS\n{}", table::render(&rows, "  "));
    for (i, counts) in section.iter().enumerate() {
        let policy = counts.policy.as_deref().unwrap_or("-");
        out.push_str(&trouble(i, policy, counts));
    }
    out
}

/// The failures an operator must see under the table: a shared store down or failing, and
/// requests that had no client address to key on.
fn trouble(i: usize, policy: &str, counts: &RateLimitStatus) -> String {
    let mut out = String::new();
    if let Some(store) = &counts.store {
        let state = if store.down {
            "DOWN (falling back)"
        } else {
            "up"
        };
        out.push_str(&format!(
            "  {policy} (#{n}) shared store {state}: {} replicas, {} outages, {} fallback decisions, {} timeouts, {} failed syncs\n",
            store.replicas,
            store.outages,
            store.fallback_decisions,
            store.timeouts,
            store.sync_failures,
            n = i + 1,
        ));
    }
    if counts.no_client_address > 0 {
        out.push_str(&format!(
            "  {policy} (#{n}) {} requests had no client address and shared one bucket: serve with the peer address\n",
            counts.no_client_address,
            n = i + 1,
        ));
    }
    out
}
