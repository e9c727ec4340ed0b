//! The soak's report: client outcomes per phase and over time, the failure and its drain, the
//! canary's progression and the gateway's memory and file descriptors.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::ops::Range;

use fluxgate_core::policy::TrafficPolicySpec;

use crate::load::{ClientError, Outcome, Tally};
use crate::watch::{EndpointState, ProcSample, StatusPoint};

/// The balancer's default failure streak that drains an endpoint at once (not in the policy).
const FAILURE_STREAK: u32 = 5;

/// Everything a soak run measured.
#[derive(Debug)]
pub(crate) struct Run<'a> {
    /// Requests per second over the ordinary client keys.
    pub(crate) rate: f64,
    /// Requests per second from the `greedy` key.
    pub(crate) greedy_rate: f64,
    /// How many ordinary client keys.
    pub(crate) keys: usize,
    /// Seconds of load.
    pub(crate) duration: u64,
    /// When the upstream was killed, in seconds since the start.
    pub(crate) failed_at: f64,
    /// The killed upstream's URL, as the stable balancer names it.
    pub(crate) failed_endpoint: String,
    /// The gateway's policy.
    pub(crate) policy: TrafficPolicySpec,
    /// The clients' outcomes.
    pub(crate) tally: &'a Tally,
    /// `/proc/loadavg` at the start.
    pub(crate) load_start: String,
    /// The gateway process after the warm-up.
    pub(crate) rss_start: ProcSample,
    /// The gateway process every second.
    pub(crate) samples: Vec<ProcSample>,
    /// `/api/status` readings.
    pub(crate) status: Vec<StatusPoint>,
}

/// The outcomes of some seconds, added up.
#[derive(Debug, Default)]
struct Totals {
    sent: u64,
    skipped: u64,
    peak_in_flight: u64,
    outcomes: BTreeMap<u16, u64>,
    served: BTreeMap<String, u64>,
    latencies: Vec<u32>,
}

impl Totals {
    fn of(tally: &Tally, seconds: Range<usize>) -> Self {
        let mut totals = Self::default();
        for second in tally.seconds.get(seconds).unwrap_or_default() {
            totals.sent += second.sent.load(std::sync::atomic::Ordering::Relaxed);
            totals.skipped += second.skipped.load(std::sync::atomic::Ordering::Relaxed);
            let peak = second
                .peak_in_flight
                .load(std::sync::atomic::Ordering::Relaxed);
            totals.peak_in_flight = totals.peak_in_flight.max(peak);
            let detail = second.detail.lock().expect("not poisoned");
            for (key, n) in &detail.outcomes {
                *totals.outcomes.entry(*key).or_default() += n;
            }
            for (name, n) in &detail.served_by {
                *totals.served.entry(name.clone()).or_default() += n;
            }
            totals.latencies.extend(&detail.latencies_us);
        }
        totals.latencies.sort_unstable();
        totals
    }

    fn count(&self, keep: impl Fn(u16) -> bool) -> u64 {
        self.outcomes
            .iter()
            .filter(|(k, _)| keep(**k))
            .map(|(_, n)| n)
            .sum()
    }

    fn errors(&self) -> u64 {
        self.count(|k| k < 200 || (k >= 300 && k != 429))
    }

    /// The `q` quantile of the latencies, in milliseconds.
    fn quantile_ms(&self, q: f64) -> f64 {
        let Some(last) = self.latencies.len().checked_sub(1) else {
            return 0.0;
        };
        let at = ((last as f64) * q).round() as usize;
        f64::from(self.latencies[at]) / 1000.0
    }

    fn canary_share(&self) -> f64 {
        let all: u64 = self.served.values().sum();
        let canary = self.served.get("canary").copied().unwrap_or(0);
        100.0 * canary as f64 / all.max(1) as f64
    }

    fn row(&self, label: &str) -> String {
        let known = [200..300, 429..430, 502..503, 503..504, 504..505, 0..1, 1..2];
        let [ok, limited, e502, e503, e504, transport, timeout] =
            known.clone().map(|r| self.count(|k| r.contains(&k)));
        let other = self.count(|k| !known.iter().any(|r| r.contains(&k)));
        format!(
            "{label:<24}{:>7}{:>7}{:>6}{:>5}{:>5}{:>5}{:>6}{:>6}{:>6}{:>6}{:>8.2}{:>8.2}{:>8.1}\n",
            self.sent,
            ok,
            limited,
            e502,
            e503,
            e504,
            other,
            transport,
            timeout,
            self.skipped,
            self.quantile_ms(0.5),
            self.quantile_ms(0.99),
            self.latencies
                .last()
                .map_or(0.0, |&l| f64::from(l) / 1000.0),
        )
    }
}

const HEADER: &str = "                           sent    2xx   429  502  503  504 other trnsp tmout  skip  p50 ms  p99 ms  max ms\n";

/// The whole report, as text.
pub(crate) fn render(run: &Run<'_>) -> String {
    let mut out = String::new();
    machine(&mut out, run);
    policy(&mut out, run);
    let drain = drain(run);
    phases(&mut out, run, drain.as_ref());
    timeline(&mut out, run);
    failure(&mut out, run, drain.as_ref());
    canary(&mut out, run);
    memory(&mut out, run);
    out
}

fn machine(out: &mut String, run: &Run<'_>) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let load_end = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let first3 = |s: &str| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    let _ = writeln!(
        out,
        "== machine: {cores} cores; load average {} at the start, {} at the end",
        first3(&run.load_start),
        first3(&load_end)
    );
}

fn policy(out: &mut String, run: &Run<'_>) {
    let p = &run.policy;
    let _ = writeln!(
        out,
        "== load: {} req/s over {} client keys + {} req/s from key `greedy`, open loop, {}s; \
         upstream {} killed at {:.2}s",
        run.rate, run.keys, run.greedy_rate, run.duration, run.failed_endpoint, run.failed_at
    );
    if let Some(lb) = &p.load_balancing {
        if let Some(hc) = &lb.health_check {
            let _ = writeln!(
                out,
                "   policy healthCheck: every {}, timeout {}, unhealthyThreshold {}, healthyThreshold {}",
                hc.interval, hc.timeout, hc.unhealthy_threshold, hc.healthy_threshold
            );
        }
        if let Some(od) = &lb.outlier_detection {
            let _ = writeln!(
                out,
                "   policy outlierDetection: every {}, maxErrorRate {}, minRequests {}, \
                 baseEjectionTime {}; plus the balancer's streak of {FAILURE_STREAK} failures",
                od.interval, od.max_error_rate, od.min_requests, od.base_ejection_time
            );
        }
    }
    for limit in p.rate_limit.iter().flat_map(|l| &l.0) {
        let _ = writeln!(
            out,
            "   policy rateLimit: {} req/s, burst {}, per {}",
            limit.requests_per_second, limit.burst_size, limit.key_extractor
        );
    }
    if let Some(c) = &p.canary {
        let _ = writeln!(
            out,
            "   policy canary: steps {:?}, interval {}, minRequests {}, failureThreshold {}, errorBudget {}",
            c.steps, c.interval, c.min_requests, c.failure_threshold, c.error_budget
        );
    }
}

/// When the status first showed the failed endpoint out of rotation, and why.
#[derive(Debug)]
struct Drain {
    /// The last reading (after the failure) that still had it in rotation, if any.
    last_in: Option<f64>,
    /// The first reading that had it out.
    seen_out: f64,
    reason: String,
}

fn failed_state<'p>(run: &Run<'_>, point: &'p StatusPoint) -> Option<&'p EndpointState> {
    point
        .endpoints
        .iter()
        .find(|e| e.side == "stable" && e.endpoint == run.failed_endpoint)
}

fn out_of_rotation(state: &EndpointState) -> bool {
    !state.healthy || state.drained.is_some()
}

fn drain(run: &Run<'_>) -> Option<Drain> {
    let after = run.status.iter().filter(|p| p.at >= run.failed_at);
    let mut last_in = None;
    for point in after {
        let state = failed_state(run, point)?;
        if out_of_rotation(state) {
            let reason = match (&state.drained, state.healthy) {
                (Some(why), true) => format!("drained ({why}), still healthy by the checks"),
                (Some(why), false) => format!("drained ({why}), unhealthy by the checks"),
                (None, _) => "unhealthy by the checks".to_owned(),
            };
            return Some(Drain {
                last_in,
                seen_out: point.at,
                reason,
            });
        }
        last_in = Some(point.at);
    }
    None
}

fn phases(out: &mut String, run: &Run<'_>, drain: Option<&Drain>) {
    let n = run.tally.seconds.len();
    let fail = (run.failed_at.floor() as usize).min(n);
    let drained = drain.map_or(fail + 1, |d| d.seen_out.floor() as usize + 1);
    let drained = drained.clamp(fail, n);
    let _ = writeln!(
        out,
        "\n== client outcomes per phase (requests counted in the second they were sent)"
    );
    out.push_str(HEADER);
    let rows = [
        (format!("0-{fail}s before failure"), 0..fail),
        (format!("{fail}-{drained}s failure+drain"), fail..drained),
        (format!("{drained}-{n}s after drain"), drained..n),
        ("total".to_owned(), 0..n),
    ];
    for (label, range) in rows {
        out.push_str(&Totals::of(run.tally, range).row(&label));
    }
}

/// The canary reading in force at `at`: the last one taken at or before it.
fn status_at<'r>(run: &'r Run<'_>, at: f64) -> Option<&'r StatusPoint> {
    run.status.iter().take_while(|p| p.at <= at).last()
}

fn timeline(out: &mut String, run: &Run<'_>) {
    let _ = writeln!(
        out,
        "\n== every 5s: clients (errors = not 2xx/429; most requests waiting at once), canary share \
         of the 2xx, then at the end of the slice: the canary's weight, the failed endpoint, the \
         gateway's RSS, fds and connections (from clients / to upstreams)"
    );
    let _ = writeln!(
        out,
        "slice        sent    2xx   429 errors wait  p99 ms canary%  weight  failed-endpoint  RSS MB  fds  conns"
    );
    let n = run.tally.seconds.len();
    for from in (0..n).step_by(5) {
        let to = (from + 5).min(n);
        let t = Totals::of(run.tally, from..to);
        let point = status_at(run, to as f64);
        let weight = point.map_or("?".to_owned(), |p| format!("{}%", p.weight));
        let state = point.and_then(|p| failed_state(run, p)).map_or("?", |s| {
            match (s.healthy, s.drained.as_deref()) {
                (true, None) => "in rotation",
                (false, None) => "unhealthy",
                (_, Some(_)) => "drained",
            }
        });
        let sample = run.samples.iter().take_while(|s| s.at <= to as f64).last();
        let _ = writeln!(
            out,
            "{:>3}-{:<3}s {:>7}{:>7}{:>6}{:>7}{:>5}{:>8.2}{:>7.1}%{:>8}  {:<15}{:>7.1}{:>5}{:>7}",
            from,
            to,
            t.sent,
            t.count(|k| (200..300).contains(&k)),
            t.count(|k| k == 429),
            t.errors(),
            t.peak_in_flight,
            t.quantile_ms(0.99),
            t.canary_share(),
            weight,
            state,
            sample.map_or(0.0, |s| s.rss_kb as f64 / 1024.0),
            sample.map_or(0, |s| s.fds),
            sample.map_or("?".to_owned(), |s| format!(
                "{}/{}",
                s.client_conns, s.upstream_conns
            )),
        );
    }
}

fn failure(out: &mut String, run: &Run<'_>, drain: Option<&Drain>) {
    let errors = run.tally.errors.lock().expect("not poisoned").clone();
    let _ = writeln!(
        out,
        "\n== the failure: upstream killed at {:.3}s",
        run.failed_at
    );
    let Some(drain) = drain else {
        let _ = writeln!(
            out,
            "   /api/status never showed it out of rotation: NOT DRAINED"
        );
        error_summary(out, "all client errors", &errors);
        return;
    };
    let after_kill = drain
        .last_in
        .map_or(run.failed_at, |t| t.max(run.failed_at));
    let _ = writeln!(
        out,
        "   out of rotation between {:.2}s and {:.2}s ({:.0}-{:.0} ms after the kill): {}",
        after_kill,
        drain.seen_out,
        (after_kill - run.failed_at) * 1000.0,
        (drain.seen_out - run.failed_at) * 1000.0,
        drain.reason
    );
    let back: Vec<f64> = run
        .status
        .iter()
        .filter(|p| p.at > drain.seen_out)
        .filter(|p| failed_state(run, p).is_some_and(|s| !out_of_rotation(s)))
        .map(|p| p.at)
        .collect();
    let unhealthy = run
        .status
        .iter()
        .filter(|p| p.at >= run.failed_at)
        .find(|p| failed_state(run, p).is_some_and(|s| !s.healthy));
    if let Some(point) = unhealthy {
        let _ = writeln!(
            out,
            "   unhealthy by the active checks from {:.2}s ({:.0} ms after the kill)",
            point.at,
            (point.at - run.failed_at) * 1000.0
        );
    }
    if let Some(first) = back.first() {
        let _ = writeln!(
            out,
            "   back in rotation in {} later readings, first at {first:.2}s",
            back.len()
        );
    }
    let split = |keep: &dyn Fn(f64) -> bool| -> Vec<ClientError> {
        errors.iter().filter(|e| keep(e.sent_at)).copied().collect()
    };
    let kill = run.failed_at;
    error_summary(
        out,
        "sent more than 1s before the kill (none expected)",
        &split(&|t| t < kill - 1.0),
    );
    error_summary(
        out,
        "sent in the second before the kill (in flight when it died)",
        &split(&|t| t >= kill - 1.0 && t < kill),
    );
    error_summary(
        out,
        "sent from the kill to the drain reading",
        &split(&|t| t >= kill && t <= drain.seen_out),
    );
    error_summary(
        out,
        "sent after the drain reading",
        &split(&|t| t > drain.seen_out),
    );
    let around: Vec<f64> = errors
        .iter()
        .map(|e| e.sent_at)
        .filter(|&t| t >= kill - 1.0 && t <= drain.seen_out)
        .collect();
    if let Some(last) = around.iter().copied().reduce(f64::max) {
        let _ = writeln!(
            out,
            "   so the gateway stopped sending to it within {:.0} ms of the kill (the last failed \
             request left at {last:.3}s); {} client errors in all around the failure",
            (last - kill).max(0.0) * 1000.0,
            around.len()
        );
    }
    expected(out, run);
}

fn error_summary(out: &mut String, label: &str, errors: &[ClientError]) {
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for error in errors {
        let kind = match error.outcome {
            Outcome::Status(status) => status.as_u16().to_string(),
            Outcome::Transport => "transport".to_owned(),
            Outcome::TimedOut => "timeout".to_owned(),
        };
        *kinds.entry(kind).or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n}×{k}")).collect();
    let span = match (
        errors.iter().map(|e| e.sent_at).reduce(f64::min),
        errors.iter().map(|e| e.sent_at).reduce(f64::max),
    ) {
        (Some(first), Some(last)) => format!(", sent {first:.3}s to {last:.3}s"),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "   client errors {label}: {} [{}]{span}",
        errors.len(),
        kinds.join(", ")
    );
}

/// What the policy's numbers predict for the errors between the failure and the drain.
fn expected(out: &mut String, run: &Run<'_>) {
    let weight = status_at(run, run.failed_at).map_or(0, |p| p.weight);
    let stable = status_at(run, run.failed_at).map_or(1, |p| {
        p.endpoints.iter().filter(|e| e.side == "stable").count()
    });
    let limit = run
        .policy
        .rate_limit
        .iter()
        .flat_map(|l| &l.0)
        .map(|l| l.requests_per_second)
        .reduce(f64::min)
        .unwrap_or(f64::INFINITY);
    let admitted = run.rate + run.greedy_rate.min(limit);
    let to_failed = admitted * (1.0 - weight as f64 / 100.0) / stable.max(1) as f64;
    let _ = writeln!(
        out,
        "   expected: the canary had {weight}% at the failure, so ~{to_failed:.0} req/s went to the \
         failed upstream (1 of {stable} equal stable endpoints)"
    );
    let lb = run.policy.load_balancing.as_ref();
    if lb.is_some_and(|lb| lb.outlier_detection.is_some()) {
        let _ = writeln!(
            out,
            "   - passive: {FAILURE_STREAK} failures in a row drain it on the request path: \
             exactly {FAILURE_STREAK} errors (a request in flight at the kill counts in the \
             streak), more only if more than {FAILURE_STREAK} were in flight to it"
        );
    }
    if let Some(hc) = lb.and_then(|lb| lb.health_check.as_ref()) {
        let every = hc.interval.as_std().as_secs_f64();
        let k = f64::from(hc.unhealthy_threshold);
        let _ = writeln!(
            out,
            "   - active: {} failed checks {} apart mark it unhealthy {:.0}-{:.0} ms after the \
             failure (refused connections fail a check at once): ~{:.0}-{:.0} errors",
            hc.unhealthy_threshold,
            hc.interval,
            (k - 1.0) * every * 1000.0,
            k * every * 1000.0,
            to_failed * (k - 1.0) * every,
            to_failed * k * every
        );
    }
}

fn canary(out: &mut String, run: &Run<'_>) {
    let _ = writeln!(
        out,
        "\n== canary progression (from /api/status; canary share of the clients' 2xx per slice above)"
    );
    let mut last: Option<(&str, u64)> = None;
    for point in &run.status {
        let now = (point.phase.as_str(), point.weight);
        if last != Some(now) {
            let _ = writeln!(
                out,
                "   {:>6.2}s  {:<12} weight {:>3}%  last decision: {}",
                point.at, point.phase, point.weight, point.decision
            );
            last = Some(now);
        }
    }
    let verdict = match last {
        Some(("promoted", _)) => "promoted",
        Some(("rolledBack", _)) => "ROLLED BACK",
        Some(_) => "not promoted within the run",
        None => "no status readings",
    };
    let _ = writeln!(out, "   result: {verdict}");
}

fn memory(out: &mut String, run: &Run<'_>) {
    let start = run.rss_start;
    let during: Vec<&ProcSample> = run
        .samples
        .iter()
        .filter(|s| s.at <= run.duration as f64)
        .collect();
    let end = during.last().copied().unwrap_or(&start);
    let peak = during
        .iter()
        .copied()
        .max_by_key(|s| s.rss_kb)
        .unwrap_or(&start);
    let fds_peak = during.iter().map(|s| s.fds).max().unwrap_or(start.fds);
    let conns = |s: &ProcSample| format!("{}/{}", s.client_conns, s.upstream_conns);
    let conns_peak = during
        .iter()
        .copied()
        .max_by_key(|s| s.client_conns + s.upstream_conns)
        .unwrap_or(&start);
    let _ = writeln!(
        out,
        "\n== gateway process: RSS {} kB at the start (after warm-up), peak {} kB at {:.0}s, {} kB \
         at the end ({:+} kB); fds {} / peak {} / end {}; threads {} / end {}",
        start.rss_kb,
        peak.rss_kb,
        peak.at,
        end.rss_kb,
        end.rss_kb as i64 - start.rss_kb as i64,
        start.fds,
        fds_peak,
        end.fds,
        start.threads,
        end.threads
    );
    let _ = writeln!(
        out,
        "   connections from clients / to upstreams: {} at the start, peak {} at {:.0}s, {} at the end",
        conns(&start),
        conns(conns_peak),
        conns_peak.at,
        conns(end)
    );
    let half = during.len() / 2;
    let mean = |s: &[&ProcSample]| s.iter().map(|x| x.rss_kb).sum::<u64>() / s.len().max(1) as u64;
    let _ = writeln!(
        out,
        "   mean RSS: first half {} kB, second half {} kB",
        mean(&during[..half]),
        mean(&during[half..])
    );
}
