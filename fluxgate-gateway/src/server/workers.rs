//! Thread-per-core serving: one current-thread tokio runtime per worker thread, each with its
//! own listening socket on the same address (`SO_REUSEPORT`: the kernel spreads new
//! connections over them), as nginx runs one event loop per worker process.
//!
//! A connection lives on the worker that accepted it, with its requests and their futures:
//! nothing moves between threads on the request path. What the workers share is the service's
//! own shared state (the policy, the limits, the canary's judge, the balancers' tables), which
//! FluxGate's layers keep lock-free. Background tasks (health checks, the judge, Redis sync)
//! stay on the runtime that called [`spawn_workers`].

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};

pub use fluxgate_proxy::worker::worker_index;

use super::{HttpService, ResponseBody, ServerConfig, ServerError, ServerHandle, serve};

/// Binds `addr` once per worker (`SO_REUSEPORT`; a port 0 is chosen once and shared; a port
/// that another socket listens on is refused, as a plain bind would be) and runs
/// [`serve`] on each socket on its own thread, in a current-thread runtime. The handle stops
/// them all: each drains its connections as [`serve`] does.
///
/// # Errors
///
/// [`ServerError::Bind`] when a socket cannot be bound (or the platform has no
/// `SO_REUSEPORT`), or a worker thread cannot start.
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
    // SO_REUSEPORT would let these sockets join another process's on the same port (a second
    // gateway started by mistake would share its traffic): a plain bind first says whether
    // anyone listens there.
    if addr.port() != 0 {
        drop(std::net::TcpListener::bind(addr).map_err(bind_error)?);
    }
    let mut local_addr = addr;
    let mut sockets = Vec::new();
    for _ in 0..workers.max(1) {
        let listener = reuseport_listener(local_addr).map_err(bind_error)?;
        local_addr = listener.local_addr().map_err(bind_error)?;
        sockets.push(listener.into_std().map_err(bind_error)?);
    }
    let (stop, stopped) = watch::channel(false);
    let mut done = Vec::new();
    for (index, socket) in sockets.into_iter().enumerate() {
        let (finished, finished_rx) = oneshot::channel::<()>();
        done.push(finished_rx);
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
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(socket) {
                        Ok(listener) => listener,
                        Err(error) => {
                            tracing::error!(%error, "a serving worker cannot listen");
                            return;
                        }
                    };
                    serve(listener, service, config, async move {
                        // A dropped sender is a stop too.
                        let _ = stopped.wait_for(|stop| *stop).await;
                    })
                    .await;
                });
                // The connections still open are dropped with the runtime, before the handle
                // hears that this worker is done (a drain counts what it cut after that).
                drop(runtime);
                drop(finished);
            })
            .map_err(bind_error)?;
    }
    let (shutdown, signal) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = signal.await;
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

/// A listening socket on `addr` that other sockets may share (`SO_REUSEPORT`).
fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    #[cfg(not(unix))]
    return Err(std::io::Error::other("SO_REUSEPORT needs a Unix platform"));
    socket.bind(addr)?;
    socket.listen(1024)
}
