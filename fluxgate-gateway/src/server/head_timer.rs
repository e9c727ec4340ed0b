//! A coarse timer for the HTTP/1.1 header-read timeout, hyper's and the own path's: one slot per
//! connection, swept by one task per server loop, instead of a tokio timer entry registered and
//! removed per request. The slot also tells an own HTTP/1.1 connection that its server loop
//! drains ([`HeadTimers::drain`]).
//!
//! hyper arms the header-read timeout each time it starts reading a request head (on a
//! keep-alive connection, right after the previous response) and drops it once the head is
//! read: with tokio's timer that is, per request, a timer entry made, inserted in the runtime's
//! wheel under its lock and removed again (about 1,600 instructions of the gateway's 43,600).
//! Here a connection's [`HeadTimer`] owns one [`Slot`] that holds the armed deadline; arming and
//! disarming are atomic stores, and the sweeper task wakes the connections whose deadline has
//! passed every `tick` (a tenth of the timeout, between 10 ms and 1 s). hyper closes the
//! connection of a late head (without an answer) between `timeout` and `timeout + tick` after it
//! armed the timer.
//!
//! Deadlines are [`Stamp`]s of tokio's `Instant`s (hyper's are turned back into tokio's), so
//! the timer follows a paused clock in tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use fluxgate_core::clock::Stamp;
use futures::task::AtomicWaker;
use hyper::rt::{Sleep, Timer};
use tokio::time::Instant;

/// A slot's deadline when nothing is armed.
const DISARMED: u64 = u64::MAX;

/// A slot's deadline once the sweeper found it passed (a stamp is never 0: its origin lies more
/// than a year before the first).
const FIRED: u64 = 0;

/// The connections' slots of one server loop, and the sweeper that wakes them.
#[derive(Debug, Clone)]
pub(super) struct HeadTimers {
    registry: Arc<Registry>,
}

#[derive(Debug)]
struct Registry {
    slots: Mutex<Vec<Weak<Slot>>>,
}

/// One connection's armed deadline (a [`Stamp`]'s nanoseconds), whether its server loop is
/// draining, and the waker of the task reading its head.
#[derive(Debug)]
struct Slot {
    deadline: AtomicU64,
    draining: AtomicBool,
    waker: AtomicWaker,
}

/// What woke an own HTTP/1.1 connection waiting for a request head ([`HeadTimer::poll_woken`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Woken {
    /// The head is late: the armed deadline has passed.
    Late,
    /// The server loop drains, and the connection is idle.
    Draining,
}

impl HeadTimers {
    /// The timers of one server loop whose header-read timeout is `timeout`; spawns the sweeper
    /// on the current runtime. The sweeper ends once every clone of the result is dropped and
    /// every connection made by it is closed (connections left after a drain keep their
    /// timeout).
    pub(super) fn start(timeout: Duration) -> Self {
        let registry = Arc::new(Registry {
            slots: Mutex::new(Vec::new()),
        });
        let tick = (timeout / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::spawn(sweep(Arc::clone(&registry), tick));
        Self { registry }
    }

    /// The timer of a new connection (hyper's HTTP/1.1 builder takes it).
    pub(super) fn connection(&self) -> HeadTimer {
        let slot = Arc::new(Slot {
            deadline: AtomicU64::new(DISARMED),
            draining: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        lock(&self.registry.slots).push(Arc::downgrade(&slot));
        HeadTimer { slot }
    }

    /// Tells every connection's slot that the server loop drains, and wakes it (an own HTTP/1.1
    /// connection waiting idle for its next request head then closes).
    pub(super) fn drain(&self) {
        for slot in lock(&self.registry.slots).iter().filter_map(Weak::upgrade) {
            slot.draining.store(true, Ordering::Release);
            slot.waker.wake();
        }
    }
}

/// Every `tick`, wakes the connections whose deadline has passed and forgets closed ones; ends
/// when it holds the last reference to `registry` and no connection is left.
async fn sweep(registry: Arc<Registry>, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = stamp(Instant::now());
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

/// A connection's timer: every sleep it makes arms the connection's one slot.
#[derive(Debug)]
pub(super) struct HeadTimer {
    slot: Arc<Slot>,
}

/// The own HTTP/1.1 path arms and disarms the slot itself, once per request head, and polls it
/// beside its read.
impl HeadTimer {
    /// Arms the connection's deadline `timeout` from now.
    pub(super) fn arm(&self, timeout: Duration) {
        let nanos = stamp(Instant::now() + timeout);
        self.slot.deadline.store(nanos, Ordering::Release);
    }

    /// Disarms the connection's deadline.
    pub(super) fn disarm(&self) {
        self.slot.deadline.store(DISARMED, Ordering::Release);
    }

    /// Whether the server loop drains.
    pub(super) fn is_draining(&self) -> bool {
        self.slot.draining.load(Ordering::Acquire)
    }

    /// Ready once the armed deadline has passed, or, when `idle` (no part of a head read yet),
    /// once the server loop drains. No clock read: the sweeper decides.
    pub(super) fn poll_woken(&self, cx: &mut Context<'_>, idle: bool) -> Poll<Woken> {
        // Registered before the checks: a sweep or a drain after them finds the waker.
        self.slot.waker.register(cx.waker());
        if self.slot.deadline.load(Ordering::Acquire) == FIRED {
            Poll::Ready(Woken::Late)
        } else if idle && self.is_draining() {
            Poll::Ready(Woken::Draining)
        } else {
            Poll::Pending
        }
    }
}

// hyper's `Timer` takes and gives `std` instants: they are tokio's clock's (`now`), and turned
// back into tokio's at once.
#[allow(clippy::disallowed_types)]
impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until((Instant::now() + duration).into_std())
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn Sleep>> {
        let nanos = stamp(Instant::from_std(deadline));
        self.slot.deadline.store(nanos, Ordering::Release);
        Box::pin(HeadSleep {
            nanos,
            slot: Arc::clone(&self.slot),
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: std::time::Instant) {
        match sleep.as_mut().downcast_mut_pin::<HeadSleep>() {
            Some(mut sleep) => {
                let nanos = stamp(Instant::from_std(new_deadline));
                sleep.nanos = nanos;
                sleep.slot.deadline.store(nanos, Ordering::Release);
            }
            None => *sleep = self.sleep_until(new_deadline),
        }
    }

    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

/// One armed deadline; dropping it disarms the slot (unless another sleep armed it since).
#[derive(Debug)]
struct HeadSleep {
    /// The deadline as the slot holds it.
    nanos: u64,
    slot: Arc<Slot>,
}

impl Future for HeadSleep {
    type Output = ();

    /// Ready once the sweeper has found the deadline passed: no clock read here.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Registered before the check: a sweep after the check finds the waker.
        self.slot.waker.register(cx.waker());
        if self.slot.deadline.load(Ordering::Acquire) == FIRED {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Sleep for HeadSleep {}

impl Drop for HeadSleep {
    fn drop(&mut self) {
        let _ = self.slot.deadline.compare_exchange(
            self.nanos,
            DISARMED,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

/// `at` as a slot holds it: its stamp, never [`FIRED`] nor [`DISARMED`].
fn stamp(at: Instant) -> u64 {
    Stamp::from(at).nanos().clamp(FIRED + 1, DISARMED - 1)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};

    use super::*;

    /// Counts its wakes.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A server loop's timers with a 1s timeout (a 100ms tick), one connection's timer, and a
    /// waker that counts its wakes.
    fn one_connection() -> (HeadTimers, HeadTimer, Arc<Count>, Waker) {
        let timers = HeadTimers::start(Duration::from_secs(1));
        let timer = timers.connection();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        (timers, timer, count, waker)
    }

    fn poll(sleep: &mut Pin<Box<dyn Sleep>>, waker: &Waker) -> Poll<()> {
        sleep.as_mut().poll(&mut Context::from_waker(waker))
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_head_is_woken_within_a_tick_of_its_deadline() {
        let (_timers, timer, count, waker) = one_connection();
        let mut sleep = timer.sleep(Duration::from_secs(1));
        assert_eq!(poll(&mut sleep, &waker), Poll::Pending);
        tokio::time::sleep(Duration::from_millis(950)).await;
        assert_eq!(
            count.0.load(Ordering::Relaxed),
            0,
            "woken before the deadline"
        );
        // The tick is 100ms: the sweep after the deadline wakes it.
        tokio::time::sleep(Duration::from_millis(160)).await;
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(poll(&mut sleep, &waker), Poll::Ready(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_sleep_disarms_its_connection() {
        let (_timers, timer, count, waker) = one_connection();
        // Heads read in time, one after another, on the same connection.
        for _ in 0..5 {
            let mut sleep = timer.sleep(Duration::from_secs(1));
            assert_eq!(poll(&mut sleep, &waker), Poll::Pending);
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            count.0.load(Ordering::Relaxed),
            0,
            "a disarmed slot was woken"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn closed_connections_leave_the_sweep() {
        let timers = HeadTimers::start(Duration::from_secs(1));
        let kept = timers.connection();
        for _ in 0..3 {
            drop(timers.connection());
        }
        assert_eq!(lock(&timers.registry.slots).len(), 4);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(lock(&timers.registry.slots).len(), 1);
        // The server loop gone, the sweeper stays for the connection left, then ends.
        let registry = Arc::downgrade(&timers.registry);
        drop(timers);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(registry.upgrade().is_some());
        drop(kept);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(registry.upgrade().is_none(), "the sweeper did not end");
    }
}
