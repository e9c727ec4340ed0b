//! Each upstream kill: when each replica took the upstream out of rotation and back, and the
//! client errors around it (from a second before the kill to a second before the next one).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{FAILURE_STREAK, Run};
use crate::chaos::Kill;
use crate::load::ClientError;
use crate::watch::{EndpointState, StatusPoint};

fn failed_state<'p>(run: &Run<'_>, point: &'p StatusPoint) -> Option<&'p EndpointState> {
    point
        .endpoints
        .iter()
        .find(|e| e.side == "stable" && e.endpoint == run.failed_endpoint)
}

fn out_of_rotation(state: &EndpointState) -> bool {
    !state.healthy || state.drained.is_some()
}

/// The state of the failed endpoint in a reading, in a word.
pub(super) fn state_word(run: &Run<'_>, point: &StatusPoint) -> &'static str {
    failed_state(run, point).map_or("?", |s| match (s.healthy, s.drained.as_deref()) {
        (true, None) => "in",
        (false, None) => "unhealthy",
        (_, Some(_)) => "drained",
    })
}

/// The failed endpoint's states in a window of readings, each with when it was first seen
/// (milliseconds after the kill): `in`, `unhealthy`, or `drained (REASON)`.
fn sequence(run: &Run<'_>, points: &[StatusPoint], kill: f64, until: f64) -> String {
    let mut seen: Vec<String> = Vec::new();
    let mut last = String::new();
    for point in points.iter().filter(|p| p.at >= kill && p.at < until) {
        let Some(state) = failed_state(run, point) else {
            continue;
        };
        let word = match (&state.drained, state.healthy) {
            (Some(why), true) => format!("drained ({why})"),
            (Some(why), false) => format!("drained ({why}), unhealthy"),
            (None, false) => "unhealthy".to_owned(),
            (None, true) => "in".to_owned(),
        };
        if word != last {
            seen.push(format!("{word} +{:.1}s", point.at - kill));
            last = word;
        }
    }
    seen.join(" -> ")
}

/// What one replica's readings show of one kill.
fn drain_line(run: &Run<'_>, points: &[StatusPoint], kill: &Kill, until: f64) -> String {
    let window = points.iter().filter(|p| p.at >= kill.at && p.at < until);
    let mut last_in = kill.at;
    let mut out_at = None;
    for point in window {
        let Some(state) = failed_state(run, point) else {
            continue;
        };
        if out_of_rotation(state) {
            let why = match (&state.drained, state.healthy) {
                (Some(why), true) => format!("drained ({why})"),
                (Some(why), false) => format!("drained ({why}), unhealthy"),
                (None, _) => "unhealthy by the checks".to_owned(),
            };
            out_at = Some((point.at, why));
            break;
        }
        last_in = point.at;
    }
    let Some((seen_out, why)) = out_at else {
        return "never seen out of rotation".to_owned();
    };
    let ms = |t: f64| (t - kill.at) * 1000.0;
    let mut line = format!(
        "out between +{:.0} and +{:.0} ms: {why}",
        ms(last_in),
        ms(seen_out)
    );
    let back = kill.back_at.and_then(|b| {
        points
            .iter()
            .filter(|p| p.at >= b.max(seen_out) && p.at < until)
            .find(|p| failed_state(run, p).is_some_and(|s| !out_of_rotation(s)))
    });
    match (kill.back_at, back) {
        (Some(b), Some(p)) => {
            let _ = write!(
                line,
                "; back in rotation {:.1}s after the restart",
                p.at - b
            );
        }
        (Some(_), None) => line.push_str("; NOT back in rotation before the next kill"),
        (None, _) => {}
    }
    line
}

/// `count×cause` of some errors, and when they were sent: relative to `kill` if given, else in
/// seconds since the start.
fn summary(errors: &[ClientError], kill: Option<f64>) -> String {
    if errors.is_empty() {
        return "0".to_owned();
    }
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for error in errors {
        *kinds.entry(error.outcome.name()).or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n}×{k}")).collect();
    let first = errors
        .iter()
        .map(|e| e.sent_at)
        .fold(f64::INFINITY, f64::min);
    let last = errors
        .iter()
        .map(|e| e.sent_at)
        .fold(f64::NEG_INFINITY, f64::max);
    let when = match kill {
        Some(kill) => format!(
            "{:+.0} to {:+.0} ms from the kill",
            (first - kill) * 1000.0,
            (last - kill) * 1000.0
        ),
        None => format!("{first:.3}s to {last:.3}s"),
    };
    format!("{} [{}] sent {when}", errors.len(), kinds.join(", "))
}

/// Every kill, then the errors far from any kill.
pub(super) fn render(out: &mut String, run: &Run<'_>) {
    let errors: Vec<Vec<ClientError>> = (0..run.replicas)
        .map(|replica| {
            let mut all = Vec::new();
            for tally in run.select(|t| t.replica == replica) {
                all.extend(tally.errors.lock().expect("not poisoned").iter().copied());
            }
            all
        })
        .collect();
    let _ = writeln!(
        out,
        "\n== the kills of {} (each replica's /api/status; client errors sent from 1s before \
         the kill to 1s before the next)",
        run.failed_endpoint
    );
    let end = run.duration as f64;
    let mut total = 0;
    for (i, kill) in run.kills.iter().enumerate() {
        let until = run.kills.get(i + 1).map_or(end + 10.0, |k| k.at) - 1.0;
        let back = kill
            .back_at
            .map_or(String::new(), |b| format!(", listening again at {b:.2}s"));
        let _ = writeln!(
            out,
            "kill {} at {:.2}s{}{back}",
            i + 1,
            kill.at,
            if kill.killed { "" } else { " (kill FAILED)" }
        );
        for (replica, errors) in errors.iter().enumerate() {
            let points = run.status.get(replica).map_or(&[][..], Vec::as_slice);
            let near: Vec<ClientError> = errors
                .iter()
                .filter(|e| e.sent_at >= kill.at - 1.0 && e.sent_at < until)
                .copied()
                .collect();
            total += near.len();
            let after_restart = kill.back_at.map_or(String::new(), |back| {
                let n = near.iter().filter(|e| e.sent_at >= back).count();
                format!("; {n} of them sent after the restart")
            });
            let _ = writeln!(
                out,
                "   r{replica}: {}\n       states: {}\n       errors {}{after_restart}",
                drain_line(run, points, kill, until),
                sequence(run, points, kill.at, until),
                summary(&near, Some(kill.at))
            );
        }
    }
    let first = run.kills.first().map_or(end + 10.0, |k| k.at) - 1.0;
    for (replica, errors) in errors.iter().enumerate() {
        let far: Vec<ClientError> = errors
            .iter()
            .filter(|e| e.sent_at < first)
            .copied()
            .collect();
        let _ = writeln!(
            out,
            "   r{replica}: client errors sent before the first kill (none expected): {}",
            summary(&far, None)
        );
    }
    let _ = writeln!(
        out,
        "   client errors around the kills, all replicas: {total}"
    );
    expected(out, run);
}

/// What the policy's numbers predict for the errors between a failure and its drain.
fn expected(out: &mut String, run: &Run<'_>) {
    let lb = run.policy.load_balancing.as_ref();
    if lb.is_some_and(|lb| lb.outlier_detection.is_some()) {
        let _ = writeln!(
            out,
            "   expected per replica and kill - passive: {FAILURE_STREAK} failures in a row drain \
             it on the request path: about {FAILURE_STREAK} errors (more if more were in flight \
             to it)"
        );
    }
    if let Some(hc) = lb.and_then(|lb| lb.health_check.as_ref()) {
        let every = hc.interval.as_std().as_secs_f64();
        let k = f64::from(hc.unhealthy_threshold);
        let _ = writeln!(
            out,
            "   - active: {} failed checks {} apart mark it unhealthy {:.0}-{:.0} ms after the kill",
            hc.unhealthy_threshold,
            hc.interval,
            (k - 1.0) * every * 1000.0,
            k * every * 1000.0,
        );
    }
}
