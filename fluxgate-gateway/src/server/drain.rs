//! Graceful shutdown of a server loop's connections, hyper's and the own HTTP/1.1 path's.
//!
//! Every connection task holds a [`Watcher`]; [`Drain::shutdown`] signals them and waits until
//! every watcher is dropped. A hyper connection waits for the signal beside its connection
//! ([`Watcher::watch`]) and then asks hyper to finish gracefully. An own HTTP/1.1 connection is
//! told through its head timer's slot (no registration per request) and only holds its watcher
//! to be counted.

use std::future::Future;
use std::pin::{Pin, pin};

use tokio::sync::watch;

/// The drain signal of one server loop.
#[derive(Debug)]
pub(super) struct Drain {
    signal: watch::Sender<bool>,
}

/// A connection's end of the drain signal; the connection counts as open while it is held.
#[derive(Debug)]
pub(super) struct Watcher {
    signal: watch::Receiver<bool>,
}

impl Drain {
    pub(super) fn new() -> Self {
        Self {
            signal: watch::channel(false).0,
        }
    }

    pub(super) fn watcher(&self) -> Watcher {
        Watcher {
            signal: self.signal.subscribe(),
        }
    }

    /// Signals every watcher and waits until all of them are dropped.
    pub(super) async fn shutdown(self) {
        self.signal.send_replace(true);
        self.signal.closed().await;
    }
}

impl Watcher {
    /// Drives `connection` to its end; once the drain is signalled, calls `graceful` on it (hyper's
    /// `graceful_shutdown`: finish the requests in flight, then close) and goes on driving it.
    pub(super) async fn watch<C, T>(
        mut self,
        connection: C,
        graceful: impl FnOnce(Pin<&mut C>),
    ) -> T
    where
        C: Future<Output = T>,
    {
        let mut connection = pin!(connection);
        tokio::select! {
            biased;
            done = connection.as_mut() => return done,
            // An error: the server loop is gone without a shutdown, which is one too.
            _ = self.signal.wait_for(|draining| *draining) => {}
        }
        graceful(connection.as_mut());
        connection.await
    }
}
