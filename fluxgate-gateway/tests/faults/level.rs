//! The process's open file descriptors and resident memory, before, during and after a fault.
//!
//! The faults run the gateway stack in this test process, so the process is measured: open
//! descriptors from `/proc/self/fd`, resident memory (`VmRSS`) and its high-water mark (`VmHWM`,
//! reset through `/proc/self/clear_refs` when a watch starts) from `/proc/self/status`.
//!
//! Descriptors must come back to the baseline within [`FD_SLACK`], not counting the keep-alive
//! connections between the gateway and its upstreams: the proxy's client pools idle upstream
//! connections for 90s (as a real gateway should), and in this one process each pooled
//! connection holds two descriptors, the gateway's end and the upstream's. They are counted
//! exactly, as established loopback TCP sockets with an upstream's port at either end.
//!
//! Memory must come back within [`RSS_SLACK_KIB`] of the baseline (or a bound the fault sets
//! with [`Watch::rss_slack`]): the allocator keeps freed pages for reuse rather than giving them
//! back, so the resident size stays near the fault's peak, and the first requests of a test
//! fill caches and buffers once. A leak shows as growth beyond that with every repetition.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Descriptors the process may hold beyond its baseline after a fault (and beyond the pooled
/// upstream connections): a connection that is still closing when the count settles.
pub const FD_SLACK: usize = 4;

/// Resident memory the process may keep beyond its baseline after a fault, in KiB (16 MiB).
pub const RSS_SLACK_KIB: u64 = 16 * 1024;

/// How long [`Watch::finish`] waits for the descriptors to come back.
const SETTLE: Duration = Duration::from_secs(10);

/// Descriptors and resident memory at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Level {
    /// Open file descriptors.
    pub fds: usize,
    /// Descriptors of pooled connections to the watched upstream ports.
    pub pooled: usize,
    /// Resident memory, KiB.
    pub rss_kib: u64,
}

impl Level {
    /// The level now, counting pooled connections to `ports`. The descriptors and the pooled
    /// ones come from one listing of `/proc/self/fd`, so that `pooled <= fds` always holds.
    pub fn now(ports: &[u16]) -> Self {
        let held = socket_inodes();
        Self {
            fds: held.fds,
            pooled: established(ports, &held.sockets),
            rss_kib: status_kib("VmRSS:").unwrap_or(0),
        }
    }

    /// The level once the process has settled: two readings 100ms apart that agree on the
    /// descriptors (at most 2s), so that connections still closing after the traffic that came
    /// before do not skew a baseline.
    pub async fn settled(ports: &[u16]) -> Self {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = Self::now(ports);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let next = Self::now(ports);
            if (next.fds, next.pooled) == (last.fds, last.pooled) || Instant::now() > deadline {
                return next;
            }
            last = next;
        }
    }

    /// Descriptors other than the pooled upstream connections.
    pub fn own_fds(&self) -> usize {
        self.fds.saturating_sub(self.pooled)
    }
}

/// The number of file descriptors this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// A `kB` field of `/proc/self/status`, such as `VmRSS:`.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// Established IPv4 TCP sockets with one of `ports` at either end that this process holds a
/// descriptor of.
///
/// Every test upstream listens on its own ephemeral loopback port, so these are the gateway's
/// connections to it and the upstream's ends of them, all in this process. Connections still in
/// the upstream's accept queue are established but have no descriptor yet: they are not
/// counted (matching by socket inode), so that `fds - pooled` counts descriptors only.
fn established(ports: &[u16], held: &std::collections::HashSet<u64>) -> usize {
    let Ok(table) = std::fs::read_to_string("/proc/self/net/tcp") else {
        return 0;
    };
    let port_of = |addr: &str| {
        addr.split_once(':')
            .and_then(|(_, port)| u16::from_str_radix(port, 16).ok())
    };
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Fields: sl, local address, remote address, state ("01" is ESTABLISHED), tx:rx,
            // tr:when, retrnsmt, uid, timeout, inode, ...
            fields.len() > 9
                && fields[3] == "01"
                && [fields[1], fields[2]]
                    .iter()
                    .any(|addr| port_of(addr).is_some_and(|port| ports.contains(&port)))
                && fields[9]
                    .parse::<u64>()
                    .is_ok_and(|inode| held.contains(&inode))
        })
        .count()
}

/// One listing of `/proc/self/fd`: how many descriptors, and the inodes of the sockets among
/// them (their links read `socket:[INODE]`).
struct Held {
    fds: usize,
    sockets: std::collections::HashSet<u64>,
}

fn socket_inodes() -> Held {
    let mut held = Held {
        fds: 0,
        sockets: std::collections::HashSet::new(),
    };
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return held;
    };
    for entry in entries.flatten() {
        held.fds += 1;
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let inode: Option<u64> = link.to_str().and_then(|link| {
            link.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        });
        held.sockets.extend(inode);
    }
    held
}

/// Watches one fault: the baseline, the peaks while it lasts, and the level once it has passed.
pub struct Watch {
    fault: &'static str,
    ports: Vec<u16>,
    before: Level,
    rss_slack_kib: u64,
    peak_fds: Arc<AtomicUsize>,
    peak_rss: Arc<AtomicU64>,
    sampler: JoinHandle<()>,
}

impl Watch {
    /// Takes the baseline (call it with the gateway up and idle) and starts sampling the peaks.
    /// `ports` are the upstreams' ports, whose pooled connections are not counted as leaks.
    pub async fn start(fault: &'static str, ports: &[u16]) -> Self {
        let before = Level::settled(ports).await;
        // "5" resets VmHWM to the current RSS (Linux 4.0+); without it the peak is the sampled one.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let peak_fds = Arc::new(AtomicUsize::new(before.fds));
        let peak_rss = Arc::new(AtomicU64::new(before.rss_kib));
        let (fds, rss) = (Arc::clone(&peak_fds), Arc::clone(&peak_rss));
        let sampler = tokio::spawn(async move {
            loop {
                fds.fetch_max(open_fds(), Ordering::Relaxed);
                rss.fetch_max(status_kib("VmRSS:").unwrap_or(0), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Self {
            fault,
            ports: ports.to_vec(),
            before,
            rss_slack_kib: RSS_SLACK_KIB,
            peak_fds,
            peak_rss,
            sampler,
        }
    }

    /// Allows `kib` of resident memory beyond the baseline instead of [`RSS_SLACK_KIB`].
    #[must_use]
    pub fn rss_slack(mut self, kib: u64) -> Self {
        self.rss_slack_kib = kib;
        self
    }

    /// Call once the fault has passed and the gateway is idle: waits (at most 10s) for the
    /// descriptors to come back, prints the figures and asserts both bounds.
    pub async fn finish(self) -> Level {
        let deadline = Instant::now() + SETTLE;
        let mut after = Level::now(&self.ports);
        while after.own_fds() > self.before.own_fds() + FD_SLACK && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            after = Level::now(&self.ports);
        }
        self.sampler.abort();
        let peak_fds = self.peak_fds.load(Ordering::Relaxed).max(after.fds);
        let sampled = self.peak_rss.load(Ordering::Relaxed);
        let peak_rss = status_kib("VmHWM:").unwrap_or(0).max(sampled);
        let (before, mib) = (self.before, |kib: u64| kib as f64 / 1024.0);
        println!(
            "fault {}: fds before {} (pooled {}) peak {peak_fds} after {} (pooled {}); \
             rss before {:.1} MiB peak {:.1} MiB after {:.1} MiB",
            self.fault,
            before.fds,
            before.pooled,
            after.fds,
            after.pooled,
            mib(before.rss_kib),
            mib(peak_rss),
            mib(after.rss_kib),
        );
        assert!(
            after.own_fds() <= before.own_fds() + FD_SLACK,
            "{}: descriptors {before:?} -> {after:?}",
            self.fault
        );
        assert!(
            after.rss_kib <= before.rss_kib + self.rss_slack_kib,
            "{}: resident memory {before:?} -> {after:?}",
            self.fault
        );
        after
    }
}

/// Waits (at most 10s) until the open descriptors are within [`FD_SLACK`] of `baseline`;
/// returns the last count.
pub async fn fds_settle(baseline: usize) -> usize {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = open_fds();
        if now <= baseline + FD_SLACK || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
