//! One side of the stack: a balancer behind a buffer, and the nudges that make a balancer
//! over a changing endpoint set take the changes in while no request comes.

use std::task::{Context, Poll};

use fluxgate_balance::{Balance, BalanceHandle, Http503, Retry, Weighted};
use fluxgate_core::policy::LoadBalancing;
use fluxgate_core::store::{PolicyId, PolicyStore};
use futures::StreamExt as _;
use futures::channel::mpsc;
use futures::future::{Either, Ready, ready};
use http::{Request, Response};
use tokio::task::JoinHandle;
use tower::buffer::Buffer;
use tower::discover::Discover;
use tower::util::MapRequest;
use tower::{Service, ServiceExt};

use super::{BoxError, EndpointChanges, SharedProbe, Side, SideBuffer};

/// What a side's buffer carries: a request, or a nudge.
///
/// A balancer takes in the changes of its endpoint set in `poll_ready`, and a buffer polls
/// its service only for a message: a nudge is a message that gets the balancer ready (taking
/// the changes in, which its handles and health checks then see) and is answered at once,
/// without reaching an endpoint.
#[derive(Debug)]
// Not boxed: a request moves through the buffer without an allocation of its own.
#[allow(clippy::large_enum_variant)]
pub enum SideRequest<B> {
    /// A request for an endpoint.
    Request(Request<B>),
    /// Readiness only; answered with an empty response.
    Nudge,
}

/// Serves [`SideRequest`]s: requests go to the inner service, a nudge only waits for its
/// readiness (the reservation stays for the next request).
#[derive(Debug, Clone)]
pub struct Nudgeable<S>(pub(super) S);

impl<S, B, RB> Service<SideRequest<B>> for Nudgeable<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<RB>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: SideRequest<B>) -> Self::Future {
        match request {
            SideRequest::Request(request) => Either::Right(self.0.call(request)),
            SideRequest::Nudge => Either::Left(ready(Ok(Response::new(RB::default())))),
        }
    }
}

/// An endpoint's service as the stack takes it: `Request<B>` in, `Response<RB>` out.
pub(super) trait Endpoint<B, RB>:
    Service<Request<B>, Response = Response<RB>, Error: Into<BoxError>, Future: Send + 'static>
    + Send
    + 'static
{
}

impl<T, B, RB> Endpoint<B, RB> for T
where
    T: Service<Request<B>, Response = Response<RB>> + Send + 'static,
    T::Error: Into<BoxError>,
    T::Future: Send + 'static,
{
}

/// Wraps a request for a side's buffer.
pub(super) type AsSideRequest<B> = fn(Request<B>) -> SideRequest<B>;

/// What starting one side takes: its balancer's policy follower and health checks are spawned.
pub(super) struct SideStart<'a, K> {
    pub(super) store: &'a PolicyStore,
    pub(super) id: &'a PolicyId,
    pub(super) probe: Option<&'a SharedProbe<K>>,
    pub(super) buffer: usize,
    pub(super) tasks: &'a mut Vec<JoinHandle<()>>,
}

impl<K> SideStart<'_, K>
where
    K: Eq + Clone + Send + Sync + 'static,
{
    /// A side over `endpoints`, and the `changes` to come if any: each change is passed to
    /// the balancer and followed by a nudge.
    pub(super) fn start<S, B, RB>(
        self,
        policy: LoadBalancing,
        endpoints: Vec<(K, Weighted<S>)>,
        changes: Option<EndpointChanges<K, S>>,
    ) -> (Side<K, S, B>, BalanceHandle<K>)
    where
        S: Endpoint<B, RB>,
        B: Send + 'static,
        RB: Default + Send + 'static,
    {
        let Some(mut changes) = changes else {
            let (buffer, handle) = self.buffered(Balance::new(policy, endpoints));
            return (side(buffer, &handle), handle);
        };
        let (tx, rx) = mpsc::unbounded();
        let balance = Balance::from_discover(policy, rx).with_endpoints(endpoints);
        let tasks = &mut *self.tasks;
        let (buffer, handle) = SideStart { tasks, ..self }.buffered(balance);
        let mut nudge = buffer.clone();
        self.tasks.push(tokio::spawn(async move {
            while let Some(change) = changes.next().await {
                if tx.unbounded_send(change).is_err() {
                    return;
                }
                if let Ok(buffer) = nudge.ready().await {
                    // The answer is empty; a failure shows on the next request too.
                    let _ = buffer.call(SideRequest::Nudge).await;
                }
            }
        }));
        (side(buffer, &handle), handle)
    }

    /// Spawns the side's tasks and puts its balancer behind a buffer; whatever the discovery,
    /// the buffer has the same type.
    fn buffered<D, S, B, RB>(
        self,
        balance: Balance<D, Request<B>>,
    ) -> (SideBuffer<K, S, B>, BalanceHandle<K>)
    where
        D: Discover<Key = K, Service = Weighted<S>> + Unpin + Send + 'static,
        D::Error: Into<BoxError>,
        S: Endpoint<B, RB>,
        B: Send + 'static,
        RB: Default + Send + 'static,
    {
        let handle = balance.handle();
        self.tasks.push(handle.follow(self.store, self.id).spawn());
        if let Some(probe) = self.probe {
            self.tasks.push(balance.health_task(probe.clone()).spawn());
        }
        (
            Buffer::new(Nudgeable(Http503::new(balance)), self.buffer),
            handle,
        )
    }
}

/// The side over `buffer`: its requests wrapped as [`SideRequest::Request`].
/// The side over `buffer`: requests wrapped for it, and retried on another endpoint when one
/// gives them back.
fn side<T, B, K: Send + Sync + 'static>(
    buffer: T,
    handle: &BalanceHandle<K>,
) -> Retry<MapRequest<T, AsSideRequest<B>>> {
    let request: AsSideRequest<B> = SideRequest::Request;
    Retry::new(MapRequest::new(buffer, request), handle)
}
