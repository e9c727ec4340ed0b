//! Synced mode's local view of each key: the global counts last read from Redis, plus this
//! replica's admissions not yet pushed. Decisions here take no network round trip.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::Params;
use crate::quota::{MAX_WINDOW_COUNT, Window, WindowDecision, decide_window};
use crate::store::Outcome;
use crate::store::table::{PassThrough, shards_for};

/// The most shards a table splits into.
const MAX_SHARDS: usize = 16;
const EPOCH_BITS: u64 = (1 << 24) - 1;

/// Units pushed to Redis: `(window number, previous window's, that window's)` (GCRA: units last).
pub(crate) type Deltas = (u64, u64, u64);

/// One key's synced state.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) name: Box<str>,
    epoch: u64,
    /// Global counts as last read (sliding: previous, current; GCRA: theoretical arrival time).
    remote: [u64; 2],
    /// This replica's admissions not yet pushed (sliding: previous, current; GCRA: units last).
    pending: [u64; 2],
    in_flight: Option<Deltas>,
    /// GCRA: this replica's view of the theoretical arrival time (µs).
    tat: u64,
    /// Units left under which decisions go to Redis (what other replicas took per sync, doubled).
    margin: u64,
    last: u64,
    /// Whether the fallback has taken this state (until the next local decision or read).
    handed: bool,
}

type Map = HashMap<u64, Entry, BuildHasherDefault<PassThrough>>;

/// A limiter's keys in synced mode.
#[derive(Debug)]
pub(crate) struct Table {
    shards: Box<[Mutex<Map>]>,
    /// `64 - log2(shards.len())`: a key's shard is its top bits.
    shift: u32,
    per_shard: usize,
}

/// What a local decision found.
pub(crate) enum Local {
    Decided(Outcome),
    /// Near the limit, unknown, or the table is full: ask Redis.
    Strict,
}

impl Table {
    pub(crate) fn new(max_keys: usize) -> Self {
        let (count, shift) = shards_for(max_keys, MAX_SHARDS);
        Self {
            shards: (0..count).map(|_| Mutex::default()).collect(),
            shift,
            per_shard: max_keys.div_ceil(count).max(1),
        }
    }

    pub(crate) fn shard(&self, hash: u64) -> MutexGuard<'_, Map> {
        let i = usize::try_from(hash.checked_shr(self.shift).unwrap_or(0)).unwrap_or(0);
        self.shards[i % self.shards.len()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides one request for `hash` at `now` (µs) as one of `replicas`; `name` builds the
    /// Redis key of a new entry.
    pub(crate) fn decide(
        &self,
        hash: u64,
        params: Params,
        now: u64,
        replicas: u32,
        name: impl FnOnce() -> String,
    ) -> Local {
        let replicas = u64::from(replicas.max(1));
        self.with_entry(hash, now, name, |entry| entry.decide(params, now, replicas))
            .unwrap_or(Local::Strict)
    }

    /// Runs `f` on the entry of `hash` (made, named by `name`, while the table has room), used
    /// at `now`; `None` when the table is full.
    #[inline]
    fn with_entry<R>(
        &self,
        hash: u64,
        now: u64,
        name: impl FnOnce() -> String,
        f: impl FnOnce(&mut Entry) -> R,
    ) -> Option<R> {
        let mut shard = self.shard(hash);
        let full = shard.len() >= self.per_shard;
        let entry = match shard.get_mut(&hash) {
            Some(entry) => entry,
            None if full => return None,
            None => shard
                .entry(hash)
                .or_insert_with(|| Entry::new(name().into())),
        };
        entry.last = now;
        Some(f(entry))
    }

    /// Gives back one unit of a local admission.
    pub(crate) fn refund(&self, hash: u64, params: Params) {
        if let Some(entry) = self.shard(hash).get_mut(&hash) {
            entry.pending[1] = entry.pending[1].saturating_sub(1);
            if let Params::Gcra { t, .. } = params {
                entry.tat = entry.tat.saturating_sub(t);
            }
        }
    }

    /// Moves a key's unsent units in flight and returns them (none when a push is in flight).
    pub(crate) fn take(&self, hash: u64) -> Option<Deltas> {
        self.shard(hash).get_mut(&hash).and_then(Entry::take)
    }

    /// Takes back units whose push failed.
    pub(crate) fn restore(&self, hash: u64, deltas: Deltas) {
        if let Some(entry) = self.shard(hash).get_mut(&hash) {
            entry.in_flight = None;
            if deltas.0 == entry.epoch {
                entry.pending[0] += deltas.1;
                entry.pending[1] += deltas.2;
            } else if deltas.0 + 1 == entry.epoch {
                entry.pending[0] += deltas.2;
            }
        }
    }

    /// Takes what Redis holds now for a key (`carried`: the reply includes the units in flight).
    pub(crate) fn absorb(&self, hash: u64, params: Params, state: [u64; 3], carried: bool) {
        if let Some(entry) = self.shard(hash).get_mut(&hash) {
            entry.absorb(params, state, carried);
        }
    }

    /// The keys to push now, their units moved in flight; drops idle keys.
    pub(crate) fn collect(&self, params: Params, now: u64, out: &mut Vec<(u64, String, Deltas)>) {
        let span = match params {
            Params::Window { w, .. } => 2 * w,
            Params::Gcra { t, tau } => tau + t,
        };
        for shard in &*self.shards {
            let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
            map.retain(|hash, entry| {
                let active = now.saturating_sub(entry.last) < span;
                let busy = entry.pending != [0, 0] || entry.in_flight.is_some();
                if (busy || active)
                    && let Some(deltas) = entry.take()
                {
                    out.push((*hash, entry.name.to_string(), deltas));
                }
                busy || active
            });
        }
    }

    /// The part of its quota the key of `hash` had used at `now` as this replica knows it: the
    /// counts last read from Redis plus its own units that Redis had not counted, as
    /// `(used, capacity)` (sliding window: the weighted count and the limit; GCRA: how far the
    /// theoretical arrival time is ahead, and the burst's span). Once per stay in the fallback:
    /// `None` for an unknown key, and until the key is decided here or read from Redis again
    /// (the fallback counts its own units meanwhile, on windows of its own).
    pub(crate) fn used_once(&self, hash: u64, params: Params, now: u64) -> Option<(u64, u64)> {
        let mut shard = self.shard(hash);
        let entry = shard.get_mut(&hash).filter(|e| !e.handed)?;
        entry.handed = true;
        Some(entry.used(params, now))
    }

    /// Counts a unit admitted for `hash` by the fallback as this replica's, not yet seen by
    /// Redis (the key is added, named by `name`, while the table has room).
    pub(crate) fn admitted(
        &self,
        hash: u64,
        params: Params,
        now: u64,
        name: impl FnOnce() -> String,
    ) {
        self.with_entry(hash, now, name, |entry| {
            match params {
                Params::Window { w, .. } => entry.roll(now / w),
                Params::Gcra { t, .. } => entry.tat = entry.tat.max(now) + t,
            }
            entry.pending[1] += 1;
        });
    }

    /// How many keys are held.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

impl Entry {
    fn new(name: Box<str>) -> Self {
        Self {
            name,
            epoch: 0,
            remote: [0, 0],
            pending: [0, 0],
            in_flight: None,
            tat: 0,
            margin: 0,
            last: 0,
            handed: false,
        }
    }

    fn take(&mut self) -> Option<Deltas> {
        if self.in_flight.is_some() {
            return None;
        }
        let deltas = (self.epoch, self.pending[0], self.pending[1]);
        self.pending = [0, 0];
        self.in_flight = Some(deltas);
        Some(deltas)
    }

    fn roll(&mut self, epoch: u64) {
        if epoch == self.epoch + 1 {
            self.remote = [self.remote[1], 0];
            self.pending = [self.pending[1], 0];
        } else if epoch > self.epoch {
            self.remote = [0, 0];
            self.pending = [0, 0];
        } else {
            return;
        }
        self.epoch = epoch;
    }

    /// (previous, current) as this replica knows them.
    fn counts(&self) -> (u64, u64) {
        let (mut prev, mut cur) = (
            self.remote[0] + self.pending[0],
            self.remote[1] + self.pending[1],
        );
        if let Some((tag, dp, dc)) = self.in_flight {
            if tag == self.epoch {
                prev += dp;
                cur += dc;
            } else if tag + 1 == self.epoch {
                prev += dc;
            }
        }
        (prev, cur)
    }

    /// What the key had used at `now`, and of what: see [`Table::each_used`].
    fn used(&mut self, params: Params, now: u64) -> (u64, u64) {
        match params {
            Params::Window { w, limit } => {
                self.roll(now / w);
                let (prev, cur) = self.counts();
                let left = u128::from(w - now % w);
                let weighted = (u128::from(prev) * left).div_ceil(u128::from(w));
                let used = u64::try_from(weighted).unwrap_or(u64::MAX);
                (used.saturating_add(cur), u64::from(limit))
            }
            Params::Gcra { tau, .. } => (self.tat.saturating_sub(now), tau),
        }
    }

    /// Units this replica admitted that Redis had not counted at the last read.
    fn unseen(&self) -> u64 {
        let flight = self.in_flight.map_or(0, |(_, dp, dc)| dp + dc);
        self.pending[0] + self.pending[1] + flight
    }

    /// Whether admitting one more unit locally (leaving `remaining`) would take this replica
    /// past its share of what was left at the last read: `replicas` replicas each admitting
    /// their share between reads admit no more than was left, so near the limit (and for small
    /// quotas) decisions go to Redis.
    fn beyond_share(&self, remaining: u64, replicas: u64) -> bool {
        let unseen = self.unseen();
        replicas * (unseen + 1) > remaining + 1 + unseen
    }

    fn decide(&mut self, params: Params, now: u64, replicas: u64) -> Local {
        self.handed = false;
        match params {
            Params::Window { w, limit } => {
                self.roll(now / w);
                let (prev, cur) = self.counts();
                let clamp = |n: u64| u32::try_from(n.min(u64::from(MAX_WINDOW_COUNT))).unwrap_or(0);
                let state = Window {
                    epoch: u32::try_from(self.epoch & EPOCH_BITS).unwrap_or(0),
                    previous: clamp(prev),
                    current: clamp(cur),
                };
                match decide_window(Some(state.pack()), now, w, limit) {
                    WindowDecision::Admit(_, remaining, _)
                        if u64::from(remaining) < self.margin
                            || self.beyond_share(u64::from(remaining), replicas) =>
                    {
                        Local::Strict
                    }
                    WindowDecision::Admit(_, remaining, reset) => {
                        self.pending[1] += 1;
                        Local::Decided(Outcome::Admitted {
                            remaining,
                            reset: reset * 1000,
                        })
                    }
                    WindowDecision::Refuse(wait) => Local::Decided(Outcome::Refused {
                        retry_after: wait * 1000,
                    }),
                }
            }
            Params::Gcra { t, tau } => {
                let next = self.tat.max(now) + t;
                if next - now > tau {
                    return Local::Decided(Outcome::Refused {
                        retry_after: Duration::from_micros(next - tau - now),
                    });
                }
                let remaining = (now + tau - next) / t;
                if remaining < self.margin || self.beyond_share(remaining, replicas) {
                    return Local::Strict;
                }
                self.tat = next;
                self.pending[1] += 1;
                Local::Decided(Outcome::Admitted {
                    remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
                    reset: Duration::from_micros(next - now),
                })
            }
        }
    }

    fn absorb(&mut self, params: Params, [s0, s1, s2]: [u64; 3], carried: bool) {
        let sent = match (carried, self.in_flight) {
            (true, Some((_, dp, dc))) => dp + dc,
            _ => 0,
        };
        if carried {
            self.in_flight = None;
        }
        self.handed = false;
        let others = match params {
            Params::Window { .. } => {
                let before = self.remote[0] + self.remote[1];
                if s0 == self.epoch + 1 {
                    self.roll(s0);
                }
                if s0 == self.epoch {
                    self.remote = [s1, s2];
                } else if s0 + 1 == self.epoch {
                    self.remote = [s2, 0];
                }
                (s1 + s2).saturating_sub(before + sent)
            }
            Params::Gcra { t, .. } => {
                let mine = self.pending[1] * t;
                let others = s0.saturating_sub(self.tat.saturating_sub(mine)) / t.max(1);
                self.tat = self.tat.max(s0 + mine);
                others
            }
        };
        self.margin = if others > 0 {
            2 * others + 1
        } else {
            self.margin / 2
        };
    }
}

#[cfg(test)]
mod tests;
