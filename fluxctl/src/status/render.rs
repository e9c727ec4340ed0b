//! The `status` summary: policies, balancers, canaries and rate limits, one section each.

use std::fmt::Write;

use serde_json::Value;

use super::canary;
use super::json::{ago, field, millis, named, percent, plain, text};
use crate::table;

/// A section: its title, the keys it may be under, how it is shown.
type Section = (&'static str, &'static [&'static str], fn(&Value) -> String);

/// The whole summary of a status document.
pub(super) fn summary(document: &Value) -> String {
    let mut out = String::new();
    let sections: [Section; 4] = [
        ("POLICIES", &["policies", "store"], policies),
        ("BALANCERS", &["balancers", "upstreams"], balancers),
        ("CANARIES", &["canaries", "canary"], canary::section),
        (
            "RATE LIMITS",
            &["rateLimits", "ratelimits", "limiter"],
            rate_limits,
        ),
    ];
    for (i, (title, keys, render)) in sections.into_iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match field(document, keys) {
            Some(section) => out.push_str(&render(section)),
            None => {
                let _ = writeln!(out, "{title}: absent");
            }
        }
    }
    out
}

/// The policy store: generation, counts, last rejection, the policies in force.
fn policies(store: &Value) -> String {
    let mut out = format!(
        "POLICIES: generation {}, {} applied, {} rejected\n",
        text(store, &["generation"]),
        text(store, &["applied"]),
        text(store, &["rejected"]),
    );
    match field(store, &["lastRejection", "last_rejection"]) {
        Some(rejection) => {
            let message = match rejection {
                Value::Object(_) => text(rejection, &["message", "error", "reason"]),
                other => plain(other),
            };
            let when = match field(rejection, &["atUnixSeconds", "at"]) {
                Some(Value::Number(n)) => n.as_f64().map(|s| format!(" ({})", ago(s))),
                Some(other) => Some(format!(" (at {})", plain(other))),
                None => None,
            };
            let _ = writeln!(
                out,
                "  last rejection: {message}{}",
                when.unwrap_or_default()
            );
        }
        None => out.push_str("  last rejection: none\n"),
    }
    if let Some(list) = field(store, &["policies", "items"]) {
        let mut rows = vec![vec!["POLICY".to_owned(), "GENERATION".to_owned()]];
        for (id, policy) in named(list, &["id", "name"]) {
            rows.push(vec![id, text(policy, &["generation", "version"])]);
        }
        if rows.len() == 1 {
            out.push_str("  no policy in force\n");
        } else {
            out.push_str(&table::render(&rows, "  "));
        }
    }
    out
}

/// A table per balancer.
fn balancers(section: &Value) -> String {
    let all = named(section, &["name", "upstream"]);
    if all.is_empty() {
        return "BALANCERS: none\n".to_owned();
    }
    let mut out = String::new();
    for (name, balancer) in all {
        let endpoints = match balancer {
            Value::Array(_) => Some(balancer),
            _ => field(balancer, &["endpoints", "backends"]),
        };
        let _ = writeln!(out, "BALANCER {name}");
        let Some(endpoints) = endpoints.and_then(Value::as_array) else {
            out.push_str("  endpoints: absent\n");
            continue;
        };
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
fn endpoint(e: &Value) -> Vec<String> {
    let health = match field(e, &["health", "healthy"]) {
        Some(Value::Bool(true)) => "healthy".to_owned(),
        Some(Value::Bool(false)) => "unhealthy".to_owned(),
        Some(other) => plain(other),
        None => "-".to_owned(),
    };
    let health = match field(e, &["probing"]) {
        Some(Value::Bool(true)) => format!("{health},probing"),
        _ => health,
    };
    let effective = field(
        e,
        &["effectiveWeight", "weightInEffect", "effective_weight"],
    );
    let configured = field(e, &["weight"]);
    let weight = match (effective, configured) {
        (Some(eff), Some(conf)) if eff.as_f64() != conf.as_f64() => {
            format!("{}/{}", plain(eff), plain(conf))
        }
        (Some(w), _) | (None, Some(w)) => plain(w),
        (None, None) => "-".to_owned(),
    };
    let why = field(e, &["drainedDetail", "why", "drainReason"]).map(plain);
    let drained = match (field(e, &["drained"]), why) {
        (None | Some(Value::Bool(false)), _) => "-".to_owned(),
        (Some(Value::Bool(true)), Some(why)) => why,
        (Some(Value::Bool(true)), None) => "yes".to_owned(),
        (Some(reason), Some(why)) => format!("{} ({why})", plain(reason)),
        (Some(reason), None) => plain(reason),
    };
    vec![
        text(e, &["endpoint", "key", "address", "addr", "url"]),
        health,
        weight,
        text(e, &["inFlight", "inflight", "in_flight"]),
        millis(field(e, &["p95Ms", "p95", "latencyP95Ms"])),
        percent(field(e, &["errorRate", "error_rate"])),
        drained,
    ]
}

/// Admitted and refused requests per policy, and per limit of each.
fn rate_limits(section: &Value) -> String {
    let mut rows = vec![
        ["POLICY", "LIMIT", "KEY", "ADMITTED", "REFUSED"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for (policy, counts) in named(section, &["policy", "name", "id"]) {
        let count = |c: &Value, keys| text(c, keys);
        rows.push(vec![
            policy.clone(),
            "(all)".to_owned(),
            "-".to_owned(),
            count(counts, &["admitted", "allowed"]),
            count(counts, &["refused", "denied", "limited"]),
        ]);
        let limits = field(counts, &["limits"]).map_or_else(Vec::new, |l| named(l, &["name"]));
        for (name, limit) in limits {
            rows.push(vec![
                policy.clone(),
                name,
                count(limit, &["key", "keyExtractor"]),
                count(limit, &["admitted", "allowed"]),
                count(limit, &["refused", "denied", "limited"]),
            ]);
        }
    }
    if rows.len() == 1 {
        return "RATE LIMITS: none\n".to_owned();
    }
    format!("RATE LIMITS\n{}", table::render(&rows, "  "))
}
