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
use std::task::{Context, Poll};
use std::time::Duration;

use fluxgate_core::deadline::{Deadline, Sweeper};
use hyper::rt::{Sleep, Timer};
use tokio::time::Instant;

pub(super) use fluxgate_core::deadline::Woken;

/// The connections' deadlines of one server loop, and the sweeper that wakes them.
#[derive(Debug, Clone)]
pub(super) struct HeadTimers {
    sweeper: Sweeper,
}

impl HeadTimers {
    /// The timers of one server loop whose header-read timeout is `timeout`; spawns the sweeper
    /// on the current runtime. The sweeper ends once every clone of the result is dropped and
    /// every connection made by it is closed (connections left after a drain keep their
    /// timeout).
    pub(super) fn start(timeout: Duration) -> Self {
        Self {
            sweeper: Sweeper::start(Sweeper::tick_for(timeout)),
        }
    }

    /// The timer of a new connection (hyper's HTTP/1.1 builder takes it).
    pub(super) fn connection(&self) -> HeadTimer {
        HeadTimer {
            deadline: self.sweeper.deadline(),
        }
    }

    /// Tells every connection that the server loop drains, and wakes it (an own HTTP/1.1
    /// connection waiting idle for its next request head then closes).
    pub(super) fn drain(&self) {
        self.sweeper.signal();
    }
}

/// A connection's timer: every sleep it makes arms the connection's one deadline.
#[derive(Debug, Clone)]
pub(super) struct HeadTimer {
    deadline: Deadline,
}

/// The own HTTP/1.1 path arms and disarms the deadline itself, once per request head, and polls
/// it beside its read.
impl HeadTimer {
    /// Arms the connection's deadline `timeout` from now.
    pub(super) fn arm(&self, timeout: Duration) {
        self.deadline.arm_in(timeout);
    }

    /// Disarms the connection's deadline.
    pub(super) fn disarm(&self) {
        self.deadline.disarm();
    }

    /// Whether the server loop drains.
    pub(super) fn is_draining(&self) -> bool {
        self.deadline.is_signalled()
    }

    /// Ready once the armed deadline has passed, or, when `idle` (no part of a head read yet),
    /// once the server loop drains. No clock read: the sweeper decides.
    pub(super) fn poll_woken(&self, cx: &mut Context<'_>, idle: bool) -> Poll<Woken> {
        self.deadline.poll(cx, idle)
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
        let armed = self.deadline.arm_at(Instant::from_std(deadline));
        Box::pin(HeadSleep {
            armed,
            deadline: self.deadline.clone(),
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: std::time::Instant) {
        match sleep.as_mut().downcast_mut_pin::<HeadSleep>() {
            Some(mut sleep) => {
                sleep.armed = sleep.deadline.arm_at(Instant::from_std(new_deadline));
            }
            None => *sleep = self.sleep_until(new_deadline),
        }
    }

    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

/// One armed deadline; dropping it disarms the connection's (unless another sleep armed it since).
#[derive(Debug)]
struct HeadSleep {
    /// The deadline as armed.
    armed: u64,
    deadline: Deadline,
}

impl Future for HeadSleep {
    type Output = ();

    /// Ready once the sweeper has found the deadline passed: no clock read here.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.deadline.poll(cx, false).map(|_| ())
    }
}

impl Sleep for HeadSleep {}

impl Drop for HeadSleep {
    fn drop(&mut self) {
        self.deadline.disarm_if(self.armed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
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
}
