//! Coarse deadlines for per-request timeouts on long-lived objects (connections): one [`Deadline`]
//! slot per object, swept by one task, instead of a tokio timer entry made, inserted in the
//! runtime's timer wheel (under its lock) and removed again for every request.
//!
//! Arming and disarming a deadline are atomic stores; polling one registers the task's waker and
//! reads an atomic, with no clock read. The [`Sweeper`]'s task reads the clock every `tick` and
//! wakes the deadlines that have passed, so a deadline fires between its instant and one tick
//! after it ([`Sweeper::tick_for`]: a tenth of the timeout, between 10 ms and 1 s). A sweeper can
//! also [`signal`](Sweeper::signal) every deadline (a server's drain).
//!
//! Times are [`Stamp`]s (a `tokio::time::Instant` converts to one), read as [`Stamp::now`] reads
//! them: deadlines follow a paused clock in tests with this crate's `test-util` feature.
//!
//! ```
//! use std::time::Duration;
//! use fluxgate_core::deadline::{Sweeper, Woken};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let sweeper = Sweeper::start(Duration::from_millis(10));
//! let deadline = sweeper.deadline();
//! deadline.arm_in(Duration::from_millis(50));
//! let woken = std::future::poll_fn(|cx| deadline.poll(cx, false)).await;
//! assert_eq!(woken, Woken::Passed);
//! # }
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;

use crate::clock::Stamp;

/// A slot's deadline when nothing is armed.
const DISARMED: u64 = u64::MAX;

/// A slot's deadline once the sweeper found it passed (a stamp is never 0: its origin lies more
/// than a year before the first).
const FIRED: u64 = 0;

/// The deadlines of one owner (a server loop, a connection pool), and the task that sweeps them.
/// Cheap to clone; the task ends once every clone and every deadline made by it is dropped.
#[derive(Debug, Clone)]
pub struct Sweeper {
    registry: Arc<Registry>,
}

#[derive(Debug)]
struct Registry {
    slots: Mutex<Vec<Weak<Slot>>>,
}

/// One deadline (a [`Stamp`]'s nanoseconds), whether its sweeper signalled it, and the waker of
/// the task waiting on it.
#[derive(Debug)]
struct Slot {
    deadline: AtomicU64,
    signalled: AtomicBool,
    waker: AtomicWaker,
}

/// What woke a task polling a [`Deadline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Woken {
    /// The armed deadline has passed.
    Passed,
    /// The sweeper signalled it ([`Sweeper::signal`]).
    Signalled,
}

impl Sweeper {
    /// A sweeper whose task, spawned on the current tokio runtime, runs every `tick`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as `tokio::spawn`).
    #[must_use]
    pub fn start(tick: Duration) -> Self {
        let registry = Arc::new(Registry {
            slots: Mutex::new(Vec::new()),
        });
        tokio::spawn(sweep(Arc::clone(&registry), tick));
        Self { registry }
    }

    /// The tick for deadlines `timeout` after their arming: a tenth of it, between 10 ms and 1 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_core::deadline::Sweeper;
    ///
    /// assert_eq!(Sweeper::tick_for(Duration::from_secs(30)), Duration::from_secs(1));
    /// assert_eq!(Sweeper::tick_for(Duration::from_secs(2)), Duration::from_millis(200));
    /// assert_eq!(Sweeper::tick_for(Duration::from_millis(20)), Duration::from_millis(10));
    /// ```
    #[must_use]
    pub fn tick_for(timeout: Duration) -> Duration {
        (timeout / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// A new deadline, disarmed, swept by this sweeper.
    #[must_use]
    pub fn deadline(&self) -> Deadline {
        let slot = Arc::new(Slot {
            deadline: AtomicU64::new(DISARMED),
            signalled: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        lock(&self.registry.slots).push(Arc::downgrade(&slot));
        Deadline { slot }
    }

    /// Signals every live deadline of this sweeper and wakes its task.
    pub fn signal(&self) {
        for slot in lock(&self.registry.slots).iter().filter_map(Weak::upgrade) {
            slot.signalled.store(true, Ordering::Release);
            slot.waker.wake();
        }
    }
}

/// Every `tick`, wakes the deadlines that have passed and forgets dropped ones; ends when it
/// holds the last reference to `registry` and no deadline is left.
async fn sweep(registry: Arc<Registry>, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = stamp(Stamp::now());
        let mut slots = lock(&registry.slots);
        slots.retain(|slot| match slot.upgrade() {
            Some(slot) => {
                let deadline = slot.deadline.load(Ordering::Acquire);
                if deadline != FIRED
                    && deadline <= now
                    && slot
                        .deadline
                        .compare_exchange(deadline, FIRED, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    slot.waker.wake();
                }
                true
            }
            None => false,
        });
        if slots.is_empty() && Arc::strong_count(&registry) == 1 {
            return;
        }
    }
}

/// One object's deadline, made by a [`Sweeper`]; see the [module docs](self). Clones share the
/// deadline (the sweeper forgets it once every clone is dropped).
#[derive(Debug, Clone)]
pub struct Deadline {
    slot: Arc<Slot>,
}

impl Deadline {
    /// Arms the deadline `timeout` from now (replacing any armed one).
    pub fn arm_in(&self, timeout: Duration) {
        // A stamp read directly: no `Instant` to convert.
        self.arm_at(Stamp::now() + timeout);
    }

    /// Arms the deadline at `at`, an `Instant` or a [`Stamp`] (replacing any armed one);
    /// returns the value a later [`disarm_if`](Self::disarm_if) takes.
    pub fn arm_at(&self, at: impl Into<Stamp>) -> u64 {
        let nanos = stamp(at.into());
        self.slot.deadline.store(nanos, Ordering::Release);
        nanos
    }

    /// Disarms the deadline.
    pub fn disarm(&self) {
        self.slot.deadline.store(DISARMED, Ordering::Release);
    }

    /// Disarms the deadline if it is still the one [`arm_at`](Self::arm_at) returned `armed` for
    /// (and has not passed).
    pub fn disarm_if(&self, armed: u64) {
        let _ = self.slot.deadline.compare_exchange(
            armed,
            DISARMED,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    /// Whether the sweeper signalled this deadline.
    #[must_use]
    pub fn is_signalled(&self) -> bool {
        self.slot.signalled.load(Ordering::Acquire)
    }

    /// Ready once the armed deadline has passed, or, with `signal`, once the sweeper signalled
    /// it. Registers the task's waker; reads no clock.
    pub fn poll(&self, cx: &mut Context<'_>, signal: bool) -> Poll<Woken> {
        // Registered before the checks: a sweep or a signal after them finds the waker.
        self.slot.waker.register(cx.waker());
        if self.slot.deadline.load(Ordering::Acquire) == FIRED {
            Poll::Ready(Woken::Passed)
        } else if signal && self.is_signalled() {
            Poll::Ready(Woken::Signalled)
        } else {
            Poll::Pending
        }
    }
}

/// `at` as a slot holds it: its stamp, never [`FIRED`] nor [`DISARMED`].
fn stamp(at: Stamp) -> u64 {
    at.nanos().clamp(FIRED + 1, DISARMED - 1)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};

    use tokio::time::Instant;

    use super::*;

    /// Counts its wakes.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A sweeper with a 100ms tick, one deadline, and a waker that counts its wakes.
    fn one_deadline() -> (Sweeper, Deadline, Arc<Count>, Waker) {
        let sweeper = Sweeper::start(Duration::from_millis(100));
        let deadline = sweeper.deadline();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        (sweeper, deadline, count, waker)
    }

    fn poll(deadline: &Deadline, waker: &Waker, signal: bool) -> Poll<Woken> {
        deadline.poll(&mut Context::from_waker(waker), signal)
    }

    #[tokio::test(start_paused = true)]
    async fn a_passed_deadline_is_woken_within_a_tick() {
        let (_sweeper, deadline, count, waker) = one_deadline();
        deadline.arm_in(Duration::from_secs(1));
        assert_eq!(poll(&deadline, &waker, false), Poll::Pending);
        tokio::time::sleep(Duration::from_millis(950)).await;
        assert_eq!(count.0.load(Ordering::Relaxed), 0, "woken early");
        tokio::time::sleep(Duration::from_millis(160)).await;
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(poll(&deadline, &waker, false), Poll::Ready(Woken::Passed));
    }

    #[tokio::test(start_paused = true)]
    async fn disarmed_deadlines_are_never_woken() {
        let (_sweeper, deadline, count, waker) = one_deadline();
        for _ in 0..5 {
            let armed = deadline.arm_at(Instant::now() + Duration::from_secs(1));
            assert_eq!(poll(&deadline, &waker, false), Poll::Pending);
            tokio::time::sleep(Duration::from_millis(600)).await;
            deadline.disarm_if(armed);
        }
        deadline.arm_in(Duration::from_millis(500));
        deadline.disarm();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            count.0.load(Ordering::Relaxed),
            0,
            "a disarmed slot was woken"
        );
        assert_eq!(poll(&deadline, &waker, false), Poll::Pending);
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_wakes_only_who_listens_for_it() {
        let (sweeper, deadline, count, waker) = one_deadline();
        assert_eq!(poll(&deadline, &waker, true), Poll::Pending);
        sweeper.signal();
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert!(deadline.is_signalled());
        assert_eq!(poll(&deadline, &waker, false), Poll::Pending);
        assert_eq!(poll(&deadline, &waker, true), Poll::Ready(Woken::Signalled));
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_deadlines_leave_the_sweep_and_the_task_ends() {
        let sweeper = Sweeper::start(Duration::from_millis(100));
        let kept = sweeper.deadline();
        for _ in 0..3 {
            drop(sweeper.deadline());
        }
        assert_eq!(lock(&sweeper.registry.slots).len(), 4);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(lock(&sweeper.registry.slots).len(), 1);
        // The owner gone, the task stays for the deadline left, then ends.
        let registry = Arc::downgrade(&sweeper.registry);
        drop(sweeper);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(registry.upgrade().is_some());
        drop(kept);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(registry.upgrade().is_none(), "the sweeper did not end");
    }
}
