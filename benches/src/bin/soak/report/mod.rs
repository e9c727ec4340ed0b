//! The soak's report: client outcomes by cause (per replica, per stream, per time slice), each
//! upstream failure and its drain, the canary's progression as each replica saw it, and the
//! memory and descriptors of every gateway replica and of Redis.

mod fleet;
mod kills;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use fluxgate_core::policy::TrafficPolicySpec;

use crate::chaos::Kill;
use crate::load::{CONNECT, IO, OutcomeKey, TIMEOUT, Tally};
use crate::store::RedisSample;
use crate::watch::{ProcSample, StatusPoint};

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
    /// Seconds per row of the timelines.
    pub(crate) slice: usize,
    /// The killed upstream's URL, as the stable balancer names it.
    pub(crate) failed_endpoint: String,
    /// Its kills and restarts.
    pub(crate) kills: Vec<Kill>,
    /// The gateways' policy.
    pub(crate) policy: TrafficPolicySpec,
    /// The clients' outcomes, one tally per stream and replica.
    pub(crate) tallies: &'a [Arc<Tally>],
    /// How many gateway replicas.
    pub(crate) replicas: usize,
    /// `/proc/loadavg` at the start.
    pub(crate) load_start: String,
    /// Each gateway process after the warm-up.
    pub(crate) proc_start: Vec<ProcSample>,
    /// Each gateway process every second.
    pub(crate) samples: Vec<Vec<ProcSample>>,
    /// Seconds between two reads of `/api/status`.
    pub(crate) poll: f64,
    /// Each replica's `/api/status` readings.
    pub(crate) status: Vec<Vec<StatusPoint>>,
    /// Redis every second (empty without Redis).
    pub(crate) redis: Vec<RedisSample>,
    /// Redis after the warm-up.
    pub(crate) redis_start: Option<RedisSample>,
    /// Redis keys (count, bytes) per pattern after the warm-up.
    pub(crate) keys_start: BTreeMap<String, (u64, u64)>,
    /// Redis keys (count, bytes) per pattern when the last request has been sent.
    pub(crate) keys_end: BTreeMap<String, (u64, u64)>,
}

impl Run<'_> {
    /// The tallies `keep` selects.
    fn select(&self, keep: impl Fn(&Tally) -> bool) -> Vec<&Tally> {
        self.tallies
            .iter()
            .map(|t| &**t)
            .filter(|t| keep(t))
            .collect()
    }
}

/// The outcomes of some seconds of some tallies, added up.
#[derive(Debug, Default)]
struct Totals {
    sent: u64,
    skipped: u64,
    peak_in_flight: u64,
    outcomes: BTreeMap<OutcomeKey, u64>,
    served: BTreeMap<String, u64>,
    latencies: Vec<u32>,
}

/// The columns of [`Totals::row`], after `sent`.
const KNOWN: [Range<u16>; 8] = [
    200..300,
    429..430,
    502..503,
    503..504,
    504..505,
    CONNECT..CONNECT + 1,
    IO..IO + 1,
    TIMEOUT..TIMEOUT + 1,
];

const HEADER: &str = "                          sent     2xx    429   502  503  504 other  conn    io tmout  skip  p50 ms  p99 ms  max ms\n";

impl Totals {
    fn of(tallies: &[&Tally], seconds: Range<usize>) -> Self {
        let mut totals = Self::default();
        for tally in tallies {
            for second in tally.seconds.get(seconds.clone()).unwrap_or_default() {
                totals.sent += second.sent.load(Ordering::Relaxed);
                totals.skipped += second.skipped.load(Ordering::Relaxed);
                let peak = second.peak_in_flight.load(Ordering::Relaxed);
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
        let [ok, limited, e502, e503, e504, connect, io, timeout] =
            KNOWN.map(|r| self.count(|k| r.contains(&k)));
        let other = self.count(|k| !KNOWN.iter().any(|r| r.contains(&k)));
        format!(
            "{label:<24}{:>8}{:>8}{:>7}{:>6}{:>5}{:>5}{:>6}{:>6}{:>6}{:>6}{:>6}{:>8.2}{:>8.2}{:>8.1}\n",
            self.sent,
            ok,
            limited,
            e502,
            e503,
            e504,
            other,
            connect,
            io,
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

/// The whole report, as text.
pub(crate) fn render(run: &Run<'_>) -> String {
    let mut out = String::new();
    machine(&mut out, run);
    policy(&mut out, run);
    outcomes(&mut out, run);
    slices(&mut out, run);
    fleet::timeline(&mut out, run);
    kills::render(&mut out, run);
    fleet::canary(&mut out, run);
    fleet::memory(&mut out, run);
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
    let kills: Vec<String> = run
        .kills
        .iter()
        .map(|k| match k.back_at {
            Some(back) => format!("{:.1}s (back {:.1}s)", k.at, back),
            None => format!("{:.1}s", k.at),
        })
        .collect();
    let _ = writeln!(
        out,
        "== load: {} req/s over {} client keys + {} req/s from key `greedy`, open loop, {}s, spread \
         over {} gateway replica(s) (keep-alive); upstream {} killed at {}",
        run.rate,
        run.keys,
        run.greedy_rate,
        run.duration,
        run.replicas,
        run.failed_endpoint,
        kills.join(", ")
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

/// Client outcomes by cause over the whole run: per replica, per stream, in total.
fn outcomes(out: &mut String, run: &Run<'_>) {
    let n = run.duration as usize;
    let _ = writeln!(
        out,
        "\n== client outcomes by cause over the whole run (errors: conn = no connection to the \
         gateway, io = reset or truncated on an open one, tmout = no answer in time)"
    );
    out.push_str(HEADER);
    for replica in 0..run.replicas {
        let tallies = run.select(|t| t.replica == replica && t.stream == 0);
        let label = format!("replica {replica}, keys");
        out.push_str(&Totals::of(&tallies, 0..n).row(&label));
    }
    let ordinary = Totals::of(&run.select(|t| t.stream == 0), 0..n);
    out.push_str(&ordinary.row("all replicas, keys"));
    let greedy = Totals::of(&run.select(|t| t.stream == 1), 0..n);
    if greedy.sent > 0 {
        out.push_str(&greedy.row("all replicas, greedy"));
    }
    out.push_str(&Totals::of(&run.select(|_| true), 0..n).row("total"));
    let mut messages: BTreeMap<String, u64> = BTreeMap::new();
    for tally in run.tallies {
        for (message, n) in tally.messages.lock().expect("not poisoned").iter() {
            *messages.entry(message.clone()).or_default() += n;
        }
    }
    for (message, n) in &messages {
        let _ = writeln!(out, "   conn/io errors: {n} × {message}");
    }
    let limited = ordinary.count(|k| k == 429);
    let _ = writeln!(
        out,
        "   429s of the ordinary keys (below their limit): {limited}{}",
        if limited == 0 {
            ""
        } else {
            "  <- NOT EXPECTED"
        }
    );
    if greedy.sent > 0 {
        let admitted = greedy.count(|k| k != 429) as f64 / run.duration.max(1) as f64;
        let limit = run
            .policy
            .rate_limit
            .iter()
            .flat_map(|l| &l.0)
            .map(|l| l.requests_per_second)
            .reduce(f64::min)
            .unwrap_or(f64::INFINITY);
        let _ = writeln!(
            out,
            "   the greedy key: {admitted:.1} req/s admitted for a limit of {limit} req/s{}; the \
             rest refused with 429 by design",
            if run.replicas > 1 {
                " (shared by all replicas)"
            } else {
                ""
            }
        );
    }
}

/// Client outcomes per time slice (all replicas), then the errors of each replica by cause.
fn slices(out: &mut String, run: &Run<'_>) {
    let n = run.duration as usize;
    let slice = run.slice.max(1);
    let _ = writeln!(
        out,
        "\n== client outcomes every {slice}s, all replicas (requests counted in the second they \
         were sent; kills marked *)"
    );
    out.push_str(HEADER);
    let all = run.select(|_| true);
    for from in (0..n).step_by(slice) {
        let to = (from + slice).min(n);
        let killed = run
            .kills
            .iter()
            .any(|k| k.at >= from as f64 && k.at < to as f64);
        let label = format!("{from:>4}-{to:<4}s{}", if killed { " *" } else { "" });
        out.push_str(&Totals::of(&all, from..to).row(&label));
    }
    if run.replicas < 2 {
        return;
    }
    let _ = writeln!(
        out,
        "\n== client errors every {slice}s by replica (count × cause)"
    );
    for from in (0..n).step_by(slice) {
        let to = (from + slice).min(n);
        let cells: Vec<String> = (0..run.replicas)
            .map(|replica| {
                let t = Totals::of(&run.select(|t| t.replica == replica), from..to);
                let kinds: Vec<String> = t
                    .outcomes
                    .iter()
                    .filter(|(k, _)| **k < 200 || (**k >= 300 && **k != 429))
                    .map(|(k, n)| format!("{n}×{}", cause(*k)))
                    .collect();
                let kinds = if kinds.is_empty() {
                    "-".to_owned()
                } else {
                    kinds.join(" ")
                };
                format!("r{replica}: {kinds:<22}")
            })
            .collect();
        let _ = writeln!(out, "{from:>4}-{to:<4}s  {}", cells.join(" "));
    }
}

/// The name of an outcome key.
fn cause(key: OutcomeKey) -> String {
    match key {
        CONNECT => "conn".to_owned(),
        IO => "io".to_owned(),
        TIMEOUT => "tmout".to_owned(),
        status => status.to_string(),
    }
}
