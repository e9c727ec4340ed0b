//! Replicas of one canary as in-process routers, each with its own Redis client and judge.

use std::time::Duration;

use fluxgate_canary::fleet::{Fleet, FleetStatus, RedisFleet};
use fluxgate_canary::{Canary, Phase, Snapshot};
use fluxgate_core::store::PolicyId;
use http::Request;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use super::{Backend, Router, canary};

/// The canary's id in the store (the support policies are `t/web`).
pub fn id() -> PolicyId {
    PolicyId::new("t", "web")
}

/// One replica: its router, its own backends and its judge's task.
pub struct Replica {
    pub name: &'static str,
    pub router: Router,
    pub stable: Backend,
    pub canary: Backend,
    pub judge: Option<fluxgate_core::task::TaskHandle>,
}

impl Replica {
    /// A replica over `url` with canary `spec`; its canary answers `canary_status`.
    pub async fn start(url: &str, spec: &str, name: &'static str, canary_status: u16) -> Self {
        let store = RedisFleet::connect(url).await.unwrap();
        Self::with_store(store, spec, name, canary_status)
    }

    /// A replica over `store`.
    pub fn with_store(
        store: RedisFleet,
        spec: &str,
        name: &'static str,
        canary_status: u16,
    ) -> Self {
        let fleet = Fleet::new(store, id()).replica(name);
        let (stable, canary_backend) = (Backend::new("stable"), Backend::new("canary"));
        canary_backend.set_status(canary_status);
        let (router, judge) = Canary::builder(stable.clone(), canary_backend.clone(), canary(spec))
            .fleet(fleet)
            .build()
            .unwrap();
        Self {
            name,
            router,
            stable,
            canary: canary_backend,
            judge: Some(judge.spawn()),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.router.handle().snapshot()
    }

    pub fn fleet(&self) -> FleetStatus {
        self.snapshot().fleet.unwrap()
    }

    pub fn phase(&self) -> Phase {
        self.snapshot().phase
    }

    /// Sends `n` plain requests, one after the other.
    pub async fn send(&self, n: usize) {
        for _ in 0..n {
            let _ = self.router.clone().oneshot(Request::new(())).await;
        }
    }

    /// Stops the judge (the replica keeps routing on its last state).
    pub fn stop_judge(&mut self) {
        if let Some(judge) = self.judge.take() {
            judge.abort();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop_judge();
    }
}

/// Polls `check` every 20ms until it holds or `limit` passes; whether it held.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP proxy in front of Redis that can cut its connections (a partition) or delay every
/// chunk it forwards (a slow network).
pub struct Link {
    pub url: String,
    cut: tokio::sync::watch::Sender<bool>,
    delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: JoinHandle<()>,
}

impl Link {
    pub async fn start(redis_port: u16) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let (cut, cut_rx) = tokio::sync::watch::channel(false);
        let delay_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let delay = delay_ms.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *cut_rx.borrow() {
                    continue; // refused: dropped at once
                }
                let mut cut_rx = cut_rx.clone();
                let delay = delay.clone();
                tokio::spawn(async move {
                    let Ok(server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", redis_port)).await
                    else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let pump =
                        |mut from: tokio::net::tcp::OwnedReadHalf,
                         mut to: tokio::net::tcp::OwnedWriteHalf| {
                            let delay = delay.clone();
                            async move {
                                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                                let mut buf = vec![0u8; 16 * 1024];
                                loop {
                                    let n = match from.read(&mut buf).await {
                                        Ok(0) | Err(_) => return,
                                        Ok(n) => n,
                                    };
                                    let ms = delay.load(Ordering::SeqCst);
                                    if ms > 0 {
                                        tokio::time::sleep(Duration::from_millis(ms)).await;
                                    }
                                    if to.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        };
                    tokio::select! {
                        () = pump(cr, sw) => {}
                        () = pump(sr, cw) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self {
            url,
            cut,
            delay_ms,
            task,
        }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Accepts connections again.
    pub fn heal(&self) {
        self.cut.send_replace(false);
    }

    /// Delays every chunk forwarded either way.
    pub fn delay(&self, delay: Duration) {
        self.delay_ms.store(
            delay.as_millis() as u64,
            std::sync::atomic::Ordering::SeqCst,
        );
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}
