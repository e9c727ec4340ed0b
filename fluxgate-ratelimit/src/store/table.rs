//! A bounded, sharded map from hashed keys to one 64-bit state each, used by both algorithms
//! (as governor's [`StateStore`] for GCRA, directly for the sliding window).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use governor::nanos::Nanos;
use governor::state::StateStore;

use super::local::Clock;

/// The most shards a table splits into.
const MAX_SHARDS: usize = 64;
/// The fewest keys a shard is sized for: a table has as many shards as keep each at least this
/// big, so that keys spread unevenly over shards do not fill one long before the table is full.
pub(crate) const MIN_PER_SHARD: usize = 64;
/// The key standing for every new key once a table is full.
pub(crate) const OVERFLOW: u64 = 0;

/// How a state tells that its key is idle (indistinguishable from a key never seen).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Idle {
    /// GCRA: the theoretical arrival time has passed.
    Gcra,
    /// Sliding window of this many nanoseconds: both counts have expired.
    Window(u64),
}

/// Keys are already keyed hashes, so the map does not hash them again.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// How many shards hold `max_keys` (a power of two, at most `max`, each shard sized for at least
/// [`MIN_PER_SHARD`] keys) and the shift that takes a hash to its shard.
pub(crate) fn shards_for(max_keys: usize, max: usize) -> (usize, u32) {
    let wanted = (max_keys / MIN_PER_SHARD).clamp(1, max.max(1));
    // The largest power of two not above `wanted`.
    let count = 1_usize << (usize::BITS - 1 - wanted.leading_zeros());
    (count, 64 - count.trailing_zeros())
}

type Map = HashMap<u64, AtomicU64, BuildHasherDefault<PassThrough>>;

#[derive(Debug, Default)]
struct Shard {
    map: RwLock<Map>,
    last_sweep: AtomicU64,
}

/// One limiter's keys.
#[derive(Debug)]
pub(crate) struct Table {
    shards: Box<[Shard]>,
    /// `64 - log2(shards.len())`: a key's shard is its top bits.
    shift: u32,
    per_shard: usize,
    idle: Idle,
    clock: Clock,
    /// The clock reading that states are relative to (governor's limiter start for GCRA).
    origin: AtomicU64,
    sweep_every: u64,
    evicted: AtomicUsize,
}

impl Table {
    pub(crate) fn new(max_keys: usize, idle: Idle, clock: Clock, sweep_every: u64) -> Self {
        let origin = clock.nanos();
        let (count, shift) = shards_for(max_keys, MAX_SHARDS);
        Self {
            shards: (0..count).map(|_| Shard::default()).collect(),
            shift,
            per_shard: max_keys.div_ceil(count).max(1),
            idle,
            clock,
            origin: AtomicU64::new(origin.as_u64()),
            sweep_every,
            evicted: AtomicUsize::new(0),
        }
    }

    /// Nanoseconds since the table's origin.
    pub(crate) fn now(&self) -> u64 {
        let origin = self.origin.load(Ordering::Relaxed);
        self.clock.nanos().as_u64().saturating_sub(origin)
    }

    /// Moves the origin to now (after governor read its start, so that idleness is conservative).
    pub(crate) fn reset_origin(&self) {
        self.origin
            .store(self.clock.nanos().as_u64(), Ordering::Relaxed);
    }

    fn shard(&self, key: u64) -> &Shard {
        let i = usize::try_from(key.checked_shr(self.shift).unwrap_or(0)).unwrap_or(0);
        &self.shards[i % self.shards.len()]
    }

    fn read(shard: &Shard) -> RwLockReadGuard<'_, Map> {
        shard.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the key's state (`None` for a new key) and stores what it returns on success.
    /// A new key past the table's capacity uses the shared [`OVERFLOW`] state instead.
    pub(crate) fn update<T, E>(
        &self,
        key: u64,
        f: impl Fn(Option<u64>) -> Result<(T, u64), E>,
    ) -> Result<T, E> {
        let key = if key == OVERFLOW { 1 } else { key };
        let shard = self.shard(key);
        if let Some(state) = Self::read(shard).get(&key) {
            return cas(state, &f);
        }
        let mut map = shard.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = map.get(&key) {
            return cas(state, &f);
        }
        if map.len() >= self.per_shard {
            self.sweep(shard, &mut map);
        }
        if map.len() >= self.per_shard {
            drop(map);
            return self.update_overflow(&f);
        }
        let (value, state) = f(None)?;
        map.insert(key, AtomicU64::new(state));
        Ok(value)
    }

    fn update_overflow<T, E>(
        &self,
        f: &impl Fn(Option<u64>) -> Result<(T, u64), E>,
    ) -> Result<T, E> {
        let shard = self.shard(OVERFLOW);
        if let Some(state) = Self::read(shard).get(&OVERFLOW) {
            return cas(state, f);
        }
        let mut map = shard.map.write().unwrap_or_else(PoisonError::into_inner);
        match map.get(&OVERFLOW) {
            Some(state) => cas(state, f),
            None => {
                let (value, state) = f(None)?;
                map.insert(OVERFLOW, AtomicU64::new(state));
                Ok(value)
            }
        }
    }

    /// Changes an existing key's state with `f` (a refund); nothing happens to an absent key.
    pub(crate) fn adjust(&self, key: u64, f: impl Fn(u64) -> u64) {
        let key = if key == OVERFLOW { 1 } else { key };
        let map = Self::read(self.shard(key));
        let update = |state: &AtomicU64| {
            let _ = state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| Some(f(s)));
        };
        if let Some(state) = map.get(&key) {
            update(state);
        } else if let Some(overflow) = Self::read(self.shard(OVERFLOW)).get(&OVERFLOW) {
            update(overflow);
        }
    }

    /// Removes idle keys from a full shard, at most once per sweep interval.
    fn sweep(&self, shard: &Shard, map: &mut Map) {
        let now = self.now();
        let last = shard.last_sweep.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < self.sweep_every {
            return;
        }
        shard.last_sweep.store(now.max(1), Ordering::Relaxed);
        let before = map.len();
        map.retain(|_, state| !self.is_idle(state.load(Ordering::Acquire), now));
        self.evicted
            .fetch_add(before - map.len(), Ordering::Relaxed);
    }

    fn is_idle(&self, state: u64, now: u64) -> bool {
        match self.idle {
            Idle::Gcra => state <= now,
            Idle::Window(window) => super::super::quota::Window::idle(state, now / window.max(1)),
        }
    }

    /// Removes every idle key; returns how many were removed.
    pub(crate) fn evict_idle(&self) -> usize {
        let now = self.now();
        let mut removed = 0;
        for shard in &*self.shards {
            let mut map = shard.map.write().unwrap_or_else(PoisonError::into_inner);
            let before = map.len();
            map.retain(|_, state| !self.is_idle(state.load(Ordering::Acquire), now));
            removed += before - map.len();
        }
        self.evicted.fetch_add(removed, Ordering::Relaxed);
        removed
    }

    /// How many keys are held now.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| Self::read(s).len()).sum()
    }

    /// Keys evicted since the table was made.
    pub(crate) fn evicted(&self) -> usize {
        self.evicted.load(Ordering::Relaxed)
    }
}

fn cas<T, E>(state: &AtomicU64, f: &impl Fn(Option<u64>) -> Result<(T, u64), E>) -> Result<T, E> {
    let mut current = state.load(Ordering::Acquire);
    loop {
        let (value, next) = f(Some(current))?;
        match state.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(value),
            Err(actual) => current = actual,
        }
    }
}

/// Governor's view of a table: GCRA's theoretical arrival time per key.
#[derive(Debug, Clone)]
pub(crate) struct GcraState(pub(crate) std::sync::Arc<Table>);

impl StateStore for GcraState {
    type Key = u64;

    fn measure_and_replace<T, F, E>(&self, key: &u64, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.update(*key, |state| {
            f(state.map(Nanos::from)).map(|(value, tat)| (value, tat.as_u64()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::shards_for;

    #[test]
    fn shards_leave_each_room_for_at_least_64_keys() {
        assert_eq!(shards_for(64, 64), (1, 64));
        assert_eq!(shards_for(127, 64), (1, 64));
        assert_eq!(shards_for(128, 64), (2, 63));
        assert_eq!(shards_for(1024, 64), (16, 60));
        assert_eq!(shards_for(100_000, 64), (64, 58));
        assert_eq!(shards_for(100_000, 16), (16, 60));
        assert_eq!(shards_for(0, 64), (1, 64));
    }
}
