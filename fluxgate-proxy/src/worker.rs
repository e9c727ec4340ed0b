//! Which serving worker the current thread is, for per-worker resources.
//!
//! A thread-per-core server runs one event loop per worker thread and numbers them `1..=N`
//! with [`set_worker_index`]; a [`Proxy`](crate::Proxy) built with
//! [`Proxy::per_worker`](crate::Proxy::per_worker) then sends through the worker's own client,
//! so that an upstream connection is only ever used by the thread that made it. Threads that
//! were never numbered (a multi-threaded tokio runtime, axum's `serve`) are worker 0 and share
//! the first client.
//!
//! # Example
//!
//! ```
//! use fluxgate_proxy::worker::{set_worker_index, worker_index};
//!
//! assert_eq!(worker_index(), 0);
//! std::thread::spawn(|| {
//!     set_worker_index(2);
//!     assert_eq!(worker_index(), 2);
//! })
//! .join()
//! .unwrap();
//! assert_eq!(worker_index(), 0);
//! ```

use std::cell::Cell;

std::thread_local! {
    /// The index of the serving worker this thread is (1-based; 0 on other threads).
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The serving worker the current thread is: what [`set_worker_index`] set on this thread
/// (`1..=workers` on a thread-per-core server's threads), 0 elsewhere.
///
/// ```
/// assert_eq!(fluxgate_proxy::worker::worker_index(), 0);
/// ```
#[must_use]
pub fn worker_index() -> usize {
    WORKER.with(Cell::get)
}

/// Numbers the current thread as serving worker `index` (1-based; 0 is "not a worker"). A
/// server calls it once on each worker thread before serving.
///
/// ```
/// use fluxgate_proxy::worker::{set_worker_index, worker_index};
///
/// std::thread::spawn(|| {
///     set_worker_index(1);
///     assert_eq!(worker_index(), 1);
/// })
/// .join()
/// .unwrap();
/// ```
pub fn set_worker_index(index: usize) {
    WORKER.with(|worker| worker.set(index));
}
