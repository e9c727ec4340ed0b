//! The fleet over time: each replica's view of the canary and of the failed endpoint, the
//! replicas' memory and descriptors, and Redis.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Run, Totals, kills::state_word};
use crate::store::RedisSample;
use crate::watch::{ProcSample, StatusPoint};

/// The reading in force at `at`: the last one taken at or before it.
fn point_at(points: &[StatusPoint], at: f64) -> Option<&StatusPoint> {
    points.iter().take_while(|p| p.at <= at).last()
}

fn sample_at(samples: &[ProcSample], at: f64) -> Option<&ProcSample> {
    samples.iter().take_while(|s| s.at <= at).last()
}

/// Per slice: errors and canary share, then at its end each replica's canary weight and view of
/// the failed endpoint, RSS, fds and connections, and Redis.
pub(super) fn timeline(out: &mut String, run: &Run<'_>) {
    let _ = writeln!(
        out,
        "\n== every {}s, at the end of the slice, per replica (r0/r1/...): canary weight, the failed \
         endpoint (in = in rotation), RSS MB, fds, connections from clients+to upstreams; Redis \
         used_memory and keys",
        run.slice
    );
    let _ = writeln!(
        out,
        "slice        errors canary%  weight        failed-endpoint        RSS MB            fds          conns             redis"
    );
    let n = run.duration as usize;
    let all = run.select(|_| true);
    let join = |cells: Vec<String>| cells.join("/");
    for from in (0..n).step_by(run.slice.max(1)) {
        let to = (from + run.slice.max(1)).min(n);
        let at = to as f64;
        let t = Totals::of(&all, from..to);
        let (mut weight, mut state, mut rss, mut fds, mut conns) =
            (vec![], vec![], vec![], vec![], vec![]);
        for replica in 0..run.replicas {
            let point = run.status.get(replica).and_then(|p| point_at(p, at));
            weight.push(point.map_or("?".to_owned(), |p| p.weight.to_string()));
            state.push(point.map_or("?", |p| state_word(run, p)).to_owned());
            let sample = run.samples.get(replica).and_then(|s| sample_at(s, at));
            rss.push(sample.map_or("?".to_owned(), |s| {
                format!("{:.1}", s.rss_kb as f64 / 1024.0)
            }));
            fds.push(sample.map_or("?".to_owned(), |s| s.fds.to_string()));
            conns.push(sample.map_or("?".to_owned(), |s| {
                format!("{}+{}", s.client_conns, s.upstream_conns)
            }));
        }
        let redis = run
            .redis
            .iter()
            .take_while(|r| r.at <= at)
            .last()
            .map_or(String::new(), |r| {
                format!("{:.2} MB {} keys", r.used_memory as f64 / 1e6, r.keys)
            });
        let _ = writeln!(
            out,
            "{:>4}-{:<4}s {:>7}{:>7.1}%  {:<13} {:<22} {:<17} {:<12} {:<17} {redis}",
            from,
            to,
            t.errors(),
            t.canary_share(),
            join(weight),
            join(state),
            join(rss),
            join(fds),
            join(conns),
        );
    }
}

/// The canary's progression (replica 0's readings) and whether the replicas agreed.
pub(super) fn canary(out: &mut String, run: &Run<'_>) {
    let _ = writeln!(
        out,
        "\n== canary progression (replica 0's /api/status; view and lease holder as it says)"
    );
    let first = run.status.first().map_or(&[][..], Vec::as_slice);
    let mut last: Option<(&str, u64)> = None;
    for point in first {
        let now = (point.phase.as_str(), point.weight);
        if last != Some(now) {
            let _ = writeln!(
                out,
                "   {:>7.2}s  {:<12} weight {:>3}%  last decision: {:<10} view {}{}",
                point.at,
                point.phase,
                point.weight,
                point.decision,
                point.view,
                if point.leader { " (leader)" } else { "" }
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
    if run.replicas > 1 {
        agreement(out, run);
    }
}

/// Compares the replicas' (phase, weight) poll by poll and reports the disagreements.
fn agreement(out: &mut String, run: &Run<'_>) {
    let mut ticks: BTreeMap<u64, Vec<&StatusPoint>> = BTreeMap::new();
    for points in &run.status {
        for point in points {
            ticks.entry(point.tick).or_default().push(point);
        }
    }
    let mut views: BTreeMap<String, u64> = BTreeMap::new();
    let mut leaders: BTreeMap<usize, u64> = BTreeMap::new();
    for points in ticks.values() {
        for (replica, point) in points.iter().enumerate() {
            *views.entry(point.view.clone()).or_default() += 1;
            if point.leader {
                *leaders.entry(replica).or_default() += 1;
            }
        }
    }
    // Runs of consecutive polls in which the replicas did not all show the same canary state.
    let mut spans: Vec<(f64, f64, String)> = Vec::new();
    let mut open: Option<(f64, f64, String)> = None;
    let mut complete = 0;
    for points in ticks.values().filter(|p| p.len() == run.replicas) {
        complete += 1;
        let at = points[0].at;
        let first = (&points[0].phase, points[0].weight);
        if points.iter().all(|p| (&p.phase, p.weight) == first) {
            spans.extend(open.take());
            continue;
        }
        let seen: Vec<String> = points
            .iter()
            .map(|p| format!("{} {}%", p.phase, p.weight))
            .collect();
        match &mut open {
            Some((_, last, _)) => *last = at,
            None => open = Some((at, at, seen.join(" / "))),
        }
    }
    spans.extend(open);
    let poll = run.poll;
    let long: Vec<&(f64, f64, String)> = spans
        .iter()
        .filter(|(from, to, _)| to - from + poll > 1.0)
        .collect();
    let _ = writeln!(
        out,
        "   agreement: {complete} polls read all {} replicas; {} disagreement(s) on phase/weight, \
         the longest {:.2}s; {} lasting more than 1s{}",
        run.replicas,
        spans.len(),
        spans
            .iter()
            .map(|(from, to, _)| to - from + poll)
            .fold(0.0, f64::max),
        long.len(),
        if long.is_empty() {
            ""
        } else {
            "  <- NOT EXPECTED"
        }
    );
    for (from, to, seen) in spans.iter().take(12) {
        let _ = writeln!(out, "     {from:>7.2}s-{to:.2}s  r0/r1/...: {seen}");
    }
    let _ = writeln!(
        out,
        "   views read: {views:?}; polls in which each replica held the lease: {leaders:?}"
    );
}

/// The descriptors that are not TCP connections to clients or upstreams (listeners, Redis,
/// timers, the log...): what should stay flat whatever the traffic.
fn other_fds(s: &ProcSample) -> u64 {
    s.fds.saturating_sub(s.client_conns + s.upstream_conns)
}

/// Each replica's process and Redis, at the start, peak and end.
pub(super) fn memory(out: &mut String, run: &Run<'_>) {
    let _ = writeln!(out, "\n== processes: start (after warm-up) / peak / end");
    for (replica, start) in run.proc_start.iter().enumerate() {
        let during: Vec<&ProcSample> = run
            .samples
            .get(replica)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter(|s| s.at <= run.duration as f64)
            .collect();
        let end = during.last().copied().unwrap_or(start);
        let peak = |f: fn(&ProcSample) -> u64| during.iter().map(|s| f(s)).max().unwrap_or(0);
        let half = during.len() / 2;
        let mean =
            |s: &[&ProcSample]| s.iter().map(|x| x.rss_kb).sum::<u64>() / s.len().max(1) as u64;
        let _ = writeln!(
            out,
            "   replica {replica}: RSS {} / {} / {} kB ({:+} kB; mean first half {} kB, second \
             half {} kB); fds {} / {} / {} (less the connections: {} / {} / {}); threads {} / {} \
             / {}; connections from clients+to upstreams {}+{} / {}+{}",
            start.rss_kb,
            peak(|s| s.rss_kb),
            end.rss_kb,
            end.rss_kb as i64 - start.rss_kb as i64,
            mean(&during[..half]),
            mean(&during[half..]),
            start.fds,
            peak(|s| s.fds),
            end.fds,
            other_fds(start),
            peak(other_fds),
            other_fds(end),
            start.threads,
            peak(|s| s.threads),
            end.threads,
            start.client_conns,
            start.upstream_conns,
            end.client_conns,
            end.upstream_conns,
        );
    }
    let redis: Vec<&RedisSample> = run
        .redis
        .iter()
        .filter(|r| r.at <= run.duration as f64)
        .collect();
    let (Some(start), Some(end)) = (run.redis_start, redis.last()) else {
        return;
    };
    let peak = |f: fn(&RedisSample) -> u64| redis.iter().map(|r| f(r)).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "   redis: used_memory {} / {} / {} bytes ({:+}); keys {} / {} / {}",
        start.used_memory,
        peak(|r| r.used_memory),
        end.used_memory,
        end.used_memory as i64 - start.used_memory as i64,
        start.keys,
        peak(|r| r.keys),
        end.keys
    );
    let third = redis.get(redis.len() / 3).copied().unwrap_or(&start);
    let _ = writeln!(
        out,
        "   redis at the start / a third in ({:.0}s) / the end: dataset {} / {} / {} bytes, Lua VM {} \
         / {} / {}, client buffers {} / {} / {}",
        third.at,
        start.dataset,
        third.dataset,
        end.dataset,
        start.lua,
        third.lua,
        end.lua,
        start.clients,
        third.clients,
        end.clients
    );
    let patterns: std::collections::BTreeSet<&String> =
        run.keys_start.keys().chain(run.keys_end.keys()).collect();
    let mut patterns: Vec<&String> = patterns.into_iter().collect();
    patterns.sort_by_key(|p| std::cmp::Reverse(run.keys_end.get(*p).map_or(0, |e| e.1)));
    let _ = writeln!(
        out,
        "   redis keys by pattern (MEMORY USAGE), start -> end of the load:"
    );
    for p in patterns.iter().take(12) {
        let (k0, b0) = run.keys_start.get(*p).copied().unwrap_or_default();
        let (k1, b1) = run.keys_end.get(*p).copied().unwrap_or_default();
        let _ = writeln!(
            out,
            "     {p:<48} {k0:>5} keys {b0:>8} B -> {k1:>5} keys {b1:>8} B"
        );
    }
}
