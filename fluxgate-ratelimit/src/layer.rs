//! [`RateLimitLayer`], [`ErroringRateLimitLayer`] and their builder.

use std::sync::Arc;

use fluxgate_core::key::{ClientIpConfig, DEFAULT_MAX_KEY_LEN};
use fluxgate_core::policy::{CompiledPolicy, RateLimitSpec, RateLimits, TrafficPolicy};
use fluxgate_core::store::PolicySlot;
use http::StatusCode;
use tower_layer::Layer;

use crate::error::IntoError;
use crate::gate::{Config, Shared, Source};
use crate::metrics::MetricsSnapshot;
use crate::service::{ErroringRateLimit, RateLimit};
use crate::store::{LocalStore, RateLimitStore};
use crate::{BoxError, RateLimitError};

/// Applies a policy's rate limits to every request, answering refusals with HTTP responses
/// ([`RateLimit`]).
///
/// Build it from a [`PolicySlot`] to follow a [`PolicyStore`](fluxgate_core::store::PolicyStore)
/// (a new policy version applies from the next request; counters of unchanged limits are kept),
/// from a [`CompiledPolicy`], or from limits written in code with [`builder`](Self::builder).
/// Every service it makes shares one set of counters and one store. Cloning is cheap.
///
/// ```
/// use fluxgate_core::store::{PolicyId, PolicyStore};
/// use fluxgate_ratelimit::RateLimitLayer;
///
/// let policies = PolicyStore::new();
/// let layer = RateLimitLayer::from_slot(policies.slot(&PolicyId::new("payments", "checkout")));
/// assert!(layer.metrics().policy.is_none());
/// ```
#[derive(Debug)]
#[must_use]
pub struct RateLimitLayer<St: RateLimitStore = LocalStore> {
    shared: Arc<Shared<St>>,
}

/// Like [`RateLimitLayer`], but refused requests fail with an error ([`ErroringRateLimit`]): a boxed
/// [`RateLimitError`] when made by [`RateLimitLayer::erroring`], a boxed `tonic::Status` when made by
/// `RateLimitLayer::grpc` (feature `tonic`).
///
/// ```
/// use fluxgate_core::policy::RateLimitSpec;
/// use fluxgate_ratelimit::RateLimitLayer;
///
/// let typed = RateLimitLayer::builder().limit(RateLimitSpec::new(5.0, 5)).build().unwrap().erroring();
/// assert_eq!(typed.metrics().refused, 0);
/// ```
#[derive(Debug)]
#[must_use]
pub struct ErroringRateLimitLayer<St: RateLimitStore = LocalStore> {
    shared: Arc<Shared<St>>,
    into_error: IntoError,
}

/// Builds a [`RateLimitLayer`].
///
/// ```
/// use fluxgate_core::key::ClientIpConfig;
/// use fluxgate_core::policy::{LimitAlgorithm, RateLimitSpec};
/// use fluxgate_ratelimit::{RateLimitLayer, store::LocalStore};
///
/// let mut per_key = RateLimitSpec::new(100.0, 20);
/// per_key.key_extractor = "header.x-api-key".into();
/// per_key.algorithm = LimitAlgorithm::Gcra;
/// let layer = RateLimitLayer::builder()
///     .limit(RateLimitSpec::new(1000.0, 200))
///     .limit(per_key)
///     .store(LocalStore::builder().max_keys(200_000).build())
///     .client_ip(ClientIpConfig::new().trust("10.0.0.0/8".parse().unwrap()))
///     .admit_headers(false)
///     .build()
///     .unwrap();
/// assert_eq!(layer.metrics().limits.len(), 2);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RateLimitLayerBuilder<St = LocalStore> {
    store: St,
    limits: Vec<RateLimitSpec>,
    config: Config,
}

impl<St: RateLimitStore> Clone for RateLimitLayer<St> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<St: RateLimitStore> Clone for ErroringRateLimitLayer<St> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            into_error: self.into_error,
        }
    }
}

impl RateLimitLayer {
    /// A builder with a new [`LocalStore`] and the defaults: trust no proxy, RateLimit fields on
    /// admitted responses, `400` for a missing key under `missingKey: reject`.
    pub fn builder() -> RateLimitLayerBuilder {
        RateLimitLayerBuilder {
            store: LocalStore::new(),
            limits: Vec::new(),
            config: Config {
                client_ip: ClientIpConfig::new(),
                admit_headers: true,
                reject_status: StatusCode::BAD_REQUEST,
                max_key_len: DEFAULT_MAX_KEY_LEN,
            },
        }
    }

    /// Follows the policy in `slot` with the defaults (see [`builder`](Self::builder)).
    pub fn from_slot(slot: PolicySlot) -> Self {
        Self::builder().follow(slot)
    }

    /// Applies `policy`'s rate limits with the defaults (see [`builder`](Self::builder)).
    ///
    /// ```
    /// use fluxgate_core::policy::{CompiledPolicy, RateLimitSpec, RateLimits, TrafficPolicy};
    /// use fluxgate_ratelimit::RateLimitLayer;
    ///
    /// let mut policy = TrafficPolicy::new(Some("shop"), "edge");
    /// policy.spec.rate_limit = Some(RateLimits(vec![RateLimitSpec::new(10.0, 5)]));
    /// let layer = RateLimitLayer::from_policy(CompiledPolicy::compile(&policy).unwrap());
    /// assert_eq!(layer.metrics().policy.as_deref(), Some("shop/edge"));
    /// ```
    pub fn from_policy(policy: CompiledPolicy) -> Self {
        Self::builder().policy(policy)
    }
}

impl<St: RateLimitStore> RateLimitLayer<St> {
    /// The counts so far, for an admin endpoint.
    #[must_use]
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.snapshot()
    }

    /// The same limits, failing refused requests with [`RateLimitError`] instead of answering.
    ///
    /// tonic cannot read this error: a tonic client makes it `Code::Unknown`. Around a tonic
    /// `Channel` or in a tonic `Server`, use `grpc` (feature `tonic`).
    pub fn erroring(self) -> ErroringRateLimitLayer<St> {
        ErroringRateLimitLayer {
            shared: self.shared,
            into_error: boxed,
        }
    }

    /// The same limits, failing refused requests with a boxed `tonic::Status` (feature `tonic`):
    /// around a tonic `Channel` the client's call returns it as is, `RESOURCE_EXHAUSTED` with
    /// `retry-after` and `grpc-retry-pushback-ms` in the metadata (see
    /// [`From<RateLimitError> for tonic::Status`](RateLimitError)); in a tonic `Server` (its
    /// `layer`), tonic answers it as a trailers-only response. The [`RateLimitError`] is the
    /// status's `source()`.
    ///
    /// ```
    /// use fluxgate_core::policy::RateLimitSpec;
    /// use fluxgate_ratelimit::RateLimitLayer;
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut per_client = RateLimitSpec::new(1.0, 1);
    /// per_client.key_extractor = "header.x-client-id".into();
    /// let layer = RateLimitLayer::builder().limit(per_client).build().unwrap().grpc();
    /// let service = layer.layer(service_fn(|_req: http::Request<()>| async {
    ///     Ok::<_, std::convert::Infallible>(())
    /// }));
    /// let request = || http::Request::builder().header("x-client-id", "a").body(()).unwrap();
    /// assert!(service.clone().oneshot(request()).await.is_ok());
    /// let error = service.oneshot(request()).await.unwrap_err();
    /// let status = error.downcast::<tonic::Status>().unwrap();
    /// assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    /// assert_eq!(status.metadata().get("retry-after").unwrap(), "1");
    /// # }
    /// ```
    #[cfg(feature = "tonic")]
    pub fn grpc(self) -> ErroringRateLimitLayer<St> {
        ErroringRateLimitLayer {
            shared: self.shared,
            into_error: status,
        }
    }
}

fn boxed(error: RateLimitError) -> BoxError {
    Box::new(error)
}

#[cfg(feature = "tonic")]
fn status(error: RateLimitError) -> BoxError {
    Box::new(tonic::Status::from(error))
}

impl<St: RateLimitStore> ErroringRateLimitLayer<St> {
    /// The counts so far, for an admin endpoint.
    #[must_use]
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.snapshot()
    }
}

impl<S, St: RateLimitStore> Layer<S> for RateLimitLayer<St> {
    type Service = RateLimit<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, Arc::clone(&self.shared))
    }
}

impl<S, St: RateLimitStore> Layer<S> for ErroringRateLimitLayer<St> {
    type Service = ErroringRateLimit<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        ErroringRateLimit::new(inner, Arc::clone(&self.shared), self.into_error)
    }
}

impl<St: RateLimitStore> RateLimitLayerBuilder<St> {
    /// Adds a limit (as a policy's `spec.rateLimit` entry would); see [`build`](Self::build).
    pub fn limit(mut self, limit: RateLimitSpec) -> Self {
        self.limits.push(limit);
        self
    }

    /// Uses `store` for the counters.
    pub fn store<St2: RateLimitStore>(self, store: St2) -> RateLimitLayerBuilder<St2> {
        RateLimitLayerBuilder {
            store,
            limits: self.limits,
            config: self.config,
        }
    }

    /// Finds client addresses (for `ip` keys and the missing-key fallback) with `config`.
    pub fn client_ip(mut self, config: ClientIpConfig) -> Self {
        self.config.client_ip = config;
        self
    }

    /// Whether admitted responses carry the RateLimit fields (yes by default).
    pub fn admit_headers(mut self, on: bool) -> Self {
        self.config.admit_headers = on;
        self
    }

    /// The status for a request without a key under `missingKey: reject` (`400` by default;
    /// `401` suits API keys). gRPC requests get `UNAUTHENTICATED` for 401, `INVALID_ARGUMENT`
    /// otherwise.
    pub fn reject_status(mut self, status: StatusCode) -> Self {
        self.config.reject_status = status;
        self
    }

    /// Keys longer than `bytes` are rejected with 400 (256 by default).
    pub fn max_key_len(mut self, bytes: usize) -> Self {
        self.config.max_key_len = bytes;
        self
    }

    /// The layer with the limits added with [`limit`](Self::limit), validated as the
    /// `spec.rateLimit` of a policy named `inline`.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::InvalidPolicy`] when a limit is invalid (zero rate, bad key source, ...).
    pub fn build(self) -> Result<RateLimitLayer<St>, RateLimitError> {
        let mut policy = TrafficPolicy::new(None, "inline");
        policy.spec.rate_limit = Some(RateLimits(self.limits.clone()));
        let compiled = CompiledPolicy::compile(&policy).map_err(RateLimitError::InvalidPolicy)?;
        Ok(self.policy(compiled))
    }

    /// The layer applying `policy`'s rate limits (the limits added here are ignored).
    pub fn policy(self, policy: CompiledPolicy) -> RateLimitLayer<St> {
        self.with_source(Source::Fixed(policy))
    }

    /// The layer following the policy in `slot`: no limits while the slot is empty.
    pub fn follow(self, slot: PolicySlot) -> RateLimitLayer<St> {
        self.with_source(Source::Slot(slot))
    }

    fn with_source(self, source: Source) -> RateLimitLayer<St> {
        RateLimitLayer {
            shared: Arc::new(Shared::new(self.store, source, self.config)),
        }
    }
}
