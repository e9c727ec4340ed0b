//! [`BalanceLayer`]: builds a [`Balance`] over a list of endpoint keys from a connector that
//! turns each key into a service.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use fluxgate_core::policy::LoadBalancing;
use tower_layer::Layer;

use crate::endpoint::Weighted;
use crate::service::{Balance, FixedEndpoints};

/// Makes the service of one endpoint from its key: a hyper client bound to an upstream URL, a
/// tonic `Channel` from `Endpoint::connect_lazy`, or any closure `FnMut(&K) -> S`.
///
/// It is called once per endpoint when the layer is applied, and must not block: connect
/// lazily (tower's async `MakeService` does not fit here for that reason).
///
/// ```
/// use fluxgate_balance::MakeEndpoint;
///
/// let mut make = |url: &String| format!("client for {url}");
/// assert_eq!(make.make_endpoint(&"http://a".to_owned()), "client for http://a");
/// ```
pub trait MakeEndpoint<K> {
    /// The endpoint's service.
    type Service;

    /// The service sending requests to the endpoint `key`.
    fn make_endpoint(&mut self, key: &K) -> Self::Service;
}

impl<K, F, S> MakeEndpoint<K> for F
where
    F: FnMut(&K) -> S,
{
    type Service = S;

    fn make_endpoint(&mut self, key: &K) -> S {
        self(key)
    }
}

/// A [`Layer`] that wraps a [`MakeEndpoint`] (a connector) into a [`Balance`] over a fixed list
/// of weighted endpoint keys, following a [`LoadBalancing`] policy.
///
/// The layer holds configuration only and is cheap to clone. Applying it calls the connector
/// once per endpoint and spawns nothing: get the balancer's [`handle`](Balance::handle) for
/// [`health_task`](Balance::health_task), [`follow`](crate::BalanceHandle::follow) and
/// snapshots. For a changing set of endpoints, use [`Balance::from_discover`].
///
/// The resulting service is a [`Balance`]: cheap to clone (its clones are one balancer), its
/// errors boxed: put it under [`RespondUnavailableLayer`](crate::RespondUnavailableLayer) in HTTP stacks.
///
/// ```
/// use fluxgate_balance::{BalanceLayer, RespondUnavailableLayer};
/// use fluxgate_core::policy::LoadBalancing;
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let connect = |url: &&'static str| {
///     let url = *url;
///     tower::service_fn(move |_: http::Request<()>| async move {
///         Ok::<_, std::convert::Infallible>(http::Response::new(url))
///     })
/// };
/// let mut svc = ServiceBuilder::new()
///     .layer(RespondUnavailableLayer)
///     .layer(BalanceLayer::new(LoadBalancing::default(), [("http://a", 2), ("http://b", 1)]))
///     .service(connect);
/// let handle = svc.get_ref().handle();
/// let mut bodies = Vec::new();
/// for _ in 0..3 {
///     let response = svc.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
///     bodies.push(*response.body());
/// }
/// assert_eq!(bodies, ["http://a", "http://b", "http://a"]);
/// assert_eq!(handle.snapshot().len(), 2);
/// # }
/// ```
#[must_use]
pub struct BalanceLayer<K, Req> {
    policy: LoadBalancing,
    endpoints: Arc<[(K, u32)]>,
    half_life: Option<Duration>,
    failure_streak: Option<u32>,
    _req: PhantomData<fn(Req)>,
}

impl<K, Req> BalanceLayer<K, Req> {
    /// A layer balancing over `endpoints`, `(key, weight)` pairs (weight 0 counts as 1), as
    /// `policy` says.
    pub fn new(policy: LoadBalancing, endpoints: impl IntoIterator<Item = (K, u32)>) -> Self {
        Self {
            policy,
            endpoints: endpoints.into_iter().collect(),
            half_life: None,
            failure_streak: None,
            _req: PhantomData,
        }
    }

    /// See [`Balance::with_consecutive_failures`].
    pub fn consecutive_failures(mut self, threshold: u32) -> Self {
        self.failure_streak = Some(threshold);
        self
    }

    /// See [`Balance::with_latency_half_life`].
    pub fn latency_half_life(mut self, half_life: Duration) -> Self {
        self.half_life = Some(half_life);
        self
    }
}

impl<K, M, Req> Layer<M> for BalanceLayer<K, Req>
where
    K: Eq + Clone + Send + Sync + 'static,
    M: MakeEndpoint<K>,
{
    type Service = Balance<FixedEndpoints<K, Weighted<M::Service>>, Req>;

    fn layer(&self, mut make: M) -> Self::Service {
        let endpoints = self.endpoints.iter().map(|(key, weight)| {
            let service = make.make_endpoint(key);
            (key.clone(), Weighted::new(service, *weight))
        });
        let mut balance = Balance::new(self.policy.clone(), []);
        if let Some(half_life) = self.half_life {
            balance = balance.with_latency_half_life(half_life);
        }
        if let Some(threshold) = self.failure_streak {
            balance = balance.with_consecutive_failures(threshold);
        }
        balance.extend(endpoints);
        balance
    }
}

impl<K, Req> Clone for BalanceLayer<K, Req> {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
            endpoints: Arc::clone(&self.endpoints),
            half_life: self.half_life,
            failure_streak: self.failure_streak,
            _req: PhantomData,
        }
    }
}

impl<K: fmt::Debug, Req> fmt::Debug for BalanceLayer<K, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceLayer")
            .field("policy", &self.policy)
            .field("endpoints", &self.endpoints)
            .field("latency_half_life", &self.half_life)
            .field("consecutive_failures", &self.failure_streak)
            .finish()
    }
}
