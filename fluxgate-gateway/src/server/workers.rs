//! Thread-per-core serving: one current-thread tokio runtime per worker thread, each serving the
//! connections that one acceptor hands it, as nginx runs one event loop per worker process.
//!
//! The acceptor (a task on the runtime that called [`spawn_workers`]) owns the one listening
//! socket and hands each new connection to the worker with the fewest open connections (ties
//! go round the workers in turn). Keep-alive connections stay where they were put, so the
//! kernel's hash of `SO_REUSEPORT` sockets, which gives one worker 19 of 32 connections as
//! easily as 16, would leave one core queueing while the other idles; counting evens them out
//! whatever the clients' addresses: a few long connections, as an L4 load balancer in front
//! keeps, would otherwise leave one core with most of the traffic. The hand-over costs a
//! channel send and a wake of the worker per connection, none per request: with a new
//! connection per request (`Connection: close`) the gateway serves about 11% fewer requests
//! per second than with a socket per worker (24.7k against 27.7k in one run, 2 cores).
//!
//! A connection lives on the worker it was handed to, with its requests and their futures:
//! nothing moves between threads on the request path. What the workers share is the service's
//! own shared state (the policy, the limits, the canary's judge, the balancers' tables), which
//! FluxGate's layers keep lock-free. Background tasks (health checks, the judge, Redis sync)
//! stay on the runtime that called [`spawn_workers`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

pub use fluxgate_proxy::worker::worker_index;

use super::incoming::{Connections, Handed};
use super::{HttpService, ResponseBody, ServerConfig, ServerError, ServerHandle, serve_incoming};

/// One worker as the acceptor sees it: where to hand it connections, and how many it has open.
struct Worker {
    connections: mpsc::UnboundedSender<Handed>,
    open: Arc<AtomicUsize>,
}

/// Binds `addr` (a port that another socket listens on is refused; bind to port 0 for an
/// ephemeral one) and serves it on `workers` threads (at least 1), each a current-thread
/// runtime running [`serve`](super::serve)'s loop over the connections handed to it by an
/// acceptor on the calling runtime. The handle stops them all: the acceptor closes the socket
/// and each worker drains its connections as [`serve`](super::serve) does.
///
/// # Errors
///
/// [`ServerError::Bind`] when the address cannot be bound or a worker thread cannot start.
pub async fn spawn_workers<S, B>(
    addr: SocketAddr,
    service: S,
    config: ServerConfig,
    workers: usize,
) -> Result<ServerHandle, ServerError>
where
    S: HttpService<B>,
    B: ResponseBody,
{
    let bind_error = |source| ServerError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    let (stop, stopped) = watch::channel(false);
    let mut done = Vec::new();
    let mut handoff = Vec::new();
    for index in 0..workers.max(1) {
        let (finished, finished_rx) = oneshot::channel::<()>();
        done.push(finished_rx);
        let (connections, handed) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        handoff.push(Worker {
            connections,
            open: Arc::clone(&open),
        });
        let incoming = Connections::Handed {
            connections: handed,
            open,
        };
        let (service, config, mut stopped) = (service.clone(), config.clone(), stopped.clone());
        std::thread::Builder::new()
            .name(format!("fluxgate-worker-{}", index + 1))
            .spawn(move || {
                fluxgate_proxy::worker::set_worker_index(index + 1);
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "a serving worker cannot start its runtime");
                        return;
                    }
                };
                runtime.block_on(serve_incoming(incoming, service, config, async move {
                    // A dropped sender is a stop too.
                    let _ = stopped.wait_for(|stop| *stop).await;
                }));
                // The connections still open are dropped with the runtime, before the handle
                // hears that this worker is done (a drain counts what it cut after that).
                drop(runtime);
                drop(finished);
            })
            .map_err(bind_error)?;
    }
    let (shutdown, signal) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        tokio::select! {
            () = accept(listener, handoff) => {}
            _ = signal => {}
        }
        // The listener and the hand-over channels are closed by now: the workers drain.
        let _ = stop.send(true);
        for finished in done {
            let _ = finished.await;
        }
    });
    Ok(ServerHandle {
        local_addr,
        shutdown: Some(shutdown),
        task,
    })
}

/// Accepts connections on `listener` and hands each to a worker; returns when no worker is
/// left to take one.
async fn accept(listener: TcpListener, mut workers: Vec<Worker>) {
    let mut turn = 0;
    while !workers.is_empty() {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%peer, %error, "an accepted connection could not be handed over");
                continue;
            }
        };
        let mut handed = Some((stream, peer));
        while let Some(connection) = handed.take() {
            let Some(index) = fewest_open(&workers, turn) else {
                break;
            };
            turn = (index + 1) % workers.len();
            let worker = &workers[index];
            worker.open.fetch_add(1, Ordering::Relaxed);
            if let Err(mpsc::error::SendError(connection)) = worker.connections.send(connection) {
                // That worker has stopped (its runtime could not start): the others take its share.
                tracing::error!("a serving worker has stopped; its connections go to the others");
                workers.swap_remove(index);
                turn = 0;
                handed = Some(connection);
            }
        }
    }
    tracing::error!("no serving worker is left; the listener closes");
}

/// The worker with the fewest open connections, looking from `turn` on so that ties go round.
fn fewest_open(workers: &[Worker], turn: usize) -> Option<usize> {
    let n = workers.len();
    (0..n)
        .map(|i| (turn + i) % n)
        .min_by_key(|&i| workers[i].open.load(Ordering::Relaxed))
}
