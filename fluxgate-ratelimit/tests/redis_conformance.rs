//! The store conformance suite against a real redis-server, in strict and synced modes.
#![cfg(feature = "redis")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fluxgate_core::policy::SyncMode;
use fluxgate_ratelimit::conformance;
use fluxgate_ratelimit::store::{AnyStore, RedisClock, RedisOptions, RedisStore};
use fluxgate_test_support::RedisServer;

async fn run(mode: SyncMode, erased: bool) {
    let server = RedisServer::start().unwrap();
    // The suite runs on a paused clock, which jumps to the next timer while a command is on the
    // wire: no decision timeout, and the store's own clock instead of Redis' TIME.
    let options = RedisOptions::new()
        .mode(mode)
        .clock(RedisClock::Local)
        .no_timeout();
    let base = RedisStore::connect(&server.url(), options).await.unwrap();
    tokio::time::pause();
    let n = AtomicUsize::new(0);
    let make = || base.scoped(&format!("conf{}", n.fetch_add(1, Ordering::Relaxed)));
    if erased {
        conformance::run_all(|| AnyStore::from(make())).await;
    } else {
        conformance::run_all(make).await;
    }
    if mode == SyncMode::Strict {
        assert!(base.stats().failed_calls == 0);
    }
}

/// Runs `future` on its own current-thread runtime, failing after `secs` of wall-clock time
/// (the paused clock cannot bound it).
fn bounded(secs: u64, future: impl Future<Output = ()> + Send + 'static) {
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(future);
        let _ = done.send(());
    });
    match wait.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("did not finish in {secs}s"),
        Err(_) => panic!("the suite failed (see above)"),
    }
}

#[test]
fn strict_mode_conforms() {
    bounded(60, run(SyncMode::Strict, false));
}

#[test]
fn synced_mode_conforms() {
    bounded(60, run(SyncMode::Synced, false));
}

#[test]
fn any_store_over_redis_conforms() {
    bounded(60, run(SyncMode::Strict, true));
}
