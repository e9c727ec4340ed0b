//! Where a serving loop takes its connections from: its own listener, or the connections an
//! acceptor hands it (thread-per-core serving, [`spawn_workers`](super::spawn_workers)).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// An accepted connection, as the acceptor hands it to a worker: still a std socket (in
/// non-blocking mode), since it is registered with the worker's own runtime.
pub(super) type Handed = (std::net::TcpStream, SocketAddr);

/// A serving loop's source of connections.
pub(super) enum Connections {
    /// Accepts on its own listener.
    Listener(TcpListener),
    /// Takes the connections handed to it, and counts those it has open in `open`.
    Handed {
        connections: mpsc::UnboundedReceiver<Handed>,
        open: Arc<AtomicUsize>,
    },
}

impl Connections {
    /// The next connection; `None` once the acceptor is gone (no more will come).
    pub(super) async fn next(&mut self) -> Option<std::io::Result<(TcpStream, SocketAddr, Open)>> {
        match self {
            Self::Listener(listener) => {
                Some((listener.accept().await).map(|(stream, peer)| (stream, peer, Open(None))))
            }
            Self::Handed { connections, open } => {
                let (stream, peer) = connections.recv().await?;
                // Counted open by the acceptor when it handed it: the guard counts it closed.
                let guard = Open(Some(Arc::clone(open)));
                Some(TcpStream::from_std(stream).map(|stream| (stream, peer, guard)))
            }
        }
    }
}

/// Held by a connection's task: counts the connection closed in its worker's count when the
/// task ends.
pub(super) struct Open(Option<Arc<AtomicUsize>>);

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(open) = &self.0 {
            open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
