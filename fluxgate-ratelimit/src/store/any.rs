//! [`AnyStore`]: one store type for every store this crate has, so that the types above a rate
//! limit (a stack, a gateway) do not change with where its counters live.

use std::future::{Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{
    Checks, KeyRef, LimiterSpec, LocalLimiter, LocalStore, Outcome, RateLimitStore, StoreError,
    StoreHealth, Verdict,
};
#[cfg(feature = "redis")]
use super::{RedisCheck, RedisLimiter, RedisStore};

/// The in-process [`LocalStore`] or (feature `redis`) a [`RedisStore`](super::RedisStore),
/// behind one type: a `RateLimitLayer<AnyStore>` has the same type whichever store it was built
/// with.
///
/// The local store keeps its fast path: [`check_now`](RateLimitStore::check_now) decides a
/// single-limit request in place, and [`check`](RateLimitStore::check) answers with a ready
/// [`AnyCheck`] (no allocation, no task wake-up). Each call costs one branch on the store kind.
///
/// ```
/// use fluxgate_core::policy::LimitAlgorithm;
/// use fluxgate_ratelimit::store::{AnyStore, KeyRef, LimiterSpec, LocalStore, Outcome, RateLimitStore};
/// use fluxgate_ratelimit::{Quota, RateLimitLayer};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = AnyStore::from(LocalStore::new());
/// assert!(store.as_local().is_some());
/// let limiter = store.limiter(&LimiterSpec::new("api", LimitAlgorithm::Gcra, Quota::new(1.0, 1)));
/// let first = store.check_now(&limiter, KeyRef::Shared, false);
/// assert!(matches!(first, Some(Outcome::Admitted { .. })));
///
/// // A layer over any store: the same type for the local store and a Redis one.
/// let layer: RateLimitLayer<AnyStore> = RateLimitLayer::builder().store(store).build().unwrap();
/// # drop(layer); }
/// ```
#[derive(Debug, Clone)]
pub struct AnyStore {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Local(LocalStore),
    #[cfg(feature = "redis")]
    Redis(RedisStore),
}

impl AnyStore {
    /// A new in-process store ([`LocalStore::new`]).
    ///
    /// ```
    /// assert!(fluxgate_ratelimit::store::AnyStore::local().as_local().is_some());
    /// ```
    #[must_use]
    pub fn local() -> Self {
        Self::from(LocalStore::new())
    }

    /// The in-process store, if this is one.
    ///
    /// ```
    /// use fluxgate_ratelimit::store::{AnyStore, LocalStore};
    ///
    /// let store = AnyStore::from(LocalStore::new());
    /// assert_eq!(store.as_local().map(LocalStore::key_count), Some(0));
    /// ```
    #[must_use]
    pub fn as_local(&self) -> Option<&LocalStore> {
        match &self.kind {
            Kind::Local(store) => Some(store),
            #[cfg(feature = "redis")]
            Kind::Redis(_) => None,
        }
    }

    /// The Redis store, if this is one (feature `redis`).
    ///
    /// ```
    /// assert!(fluxgate_ratelimit::store::AnyStore::local().as_redis().is_none());
    /// ```
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn as_redis(&self) -> Option<&RedisStore> {
        match &self.kind {
            Kind::Redis(store) => Some(store),
            Kind::Local(_) => None,
        }
    }
}

impl Default for AnyStore {
    fn default() -> Self {
        Self::local()
    }
}

impl From<LocalStore> for AnyStore {
    fn from(store: LocalStore) -> Self {
        Self {
            kind: Kind::Local(store),
        }
    }
}

#[cfg(feature = "redis")]
impl From<RedisStore> for AnyStore {
    fn from(store: RedisStore) -> Self {
        Self {
            kind: Kind::Redis(store),
        }
    }
}

/// The limiter of an [`AnyStore`]: the limiter of the store it holds.
///
/// ```
/// use fluxgate_core::policy::LimitAlgorithm;
/// use fluxgate_ratelimit::store::{AnyStore, LimiterSpec, RateLimitStore};
/// use fluxgate_ratelimit::Quota;
///
/// let spec = LimiterSpec::new("api", LimitAlgorithm::SlidingWindow, Quota::new(5.0, 5));
/// let limiter = AnyStore::local().limiter(&spec);
/// assert!(limiter.as_local().is_some());
/// ```
#[derive(Debug)]
pub struct AnyLimiter {
    kind: LimiterKind,
}

#[derive(Debug)]
enum LimiterKind {
    Local(LocalLimiter),
    #[cfg(feature = "redis")]
    Redis(RedisLimiter),
}

impl AnyLimiter {
    /// The in-process limiter, if the store is the local one.
    #[must_use]
    pub fn as_local(&self) -> Option<&LocalLimiter> {
        match &self.kind {
            LimiterKind::Local(limiter) => Some(limiter),
            #[cfg(feature = "redis")]
            LimiterKind::Redis(_) => None,
        }
    }

    /// The Redis limiter, if the store is a Redis one (feature `redis`).
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn as_redis(&self) -> Option<&RedisLimiter> {
        match &self.kind {
            LimiterKind::Redis(limiter) => Some(limiter),
            LimiterKind::Local(_) => None,
        }
    }
}

/// The answer of [`AnyStore`]'s [`check`](RateLimitStore::check): the local store's ready
/// verdict (no allocation) or the Redis store's [`RedisCheck`](super::RedisCheck).
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct AnyCheck {
    kind: CheckKind,
}

#[derive(Debug)]
enum CheckKind {
    Local(Ready<Result<Verdict, StoreError>>),
    #[cfg(feature = "redis")]
    Redis(RedisCheck),
}

impl Future for AnyCheck {
    type Output = Result<Verdict, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.kind {
            CheckKind::Local(ready) => Pin::new(ready).poll(cx),
            #[cfg(feature = "redis")]
            CheckKind::Redis(check) => Pin::new(check).poll(cx),
        }
    }
}

/// The checks of `checks` whose limiters `pick` finds in the store's own kind; `None` when a
/// limiter was made by another kind of store.
fn narrow<'a, L>(
    checks: &Checks<'a, AnyLimiter>,
    pick: impl Fn(&'a AnyLimiter) -> Option<&'a L>,
) -> Option<Checks<'a, L>> {
    let mut narrowed = Checks::new();
    for check in checks.iter() {
        narrowed.push(pick(check.limiter)?, check.key, check.shadow);
    }
    Some(narrowed)
}

fn foreign_limiter() -> StoreError {
    StoreError::Unavailable("a limiter made by another kind of store".into())
}

impl RateLimitStore for AnyStore {
    type Limiter = AnyLimiter;
    type Future = AnyCheck;

    fn limiter(&self, spec: &LimiterSpec) -> AnyLimiter {
        let kind = match &self.kind {
            Kind::Local(store) => LimiterKind::Local(store.limiter(spec)),
            #[cfg(feature = "redis")]
            Kind::Redis(store) => LimiterKind::Redis(store.limiter(spec)),
        };
        AnyLimiter { kind }
    }

    fn check(&self, checks: &Checks<'_, AnyLimiter>) -> AnyCheck {
        let kind = match &self.kind {
            Kind::Local(store) => CheckKind::Local(match narrow(checks, AnyLimiter::as_local) {
                Some(checks) => store.check(&checks),
                None => std::future::ready(Err(foreign_limiter())),
            }),
            #[cfg(feature = "redis")]
            Kind::Redis(store) => match narrow(checks, AnyLimiter::as_redis) {
                Some(checks) => CheckKind::Redis(store.check(&checks)),
                None => CheckKind::Local(std::future::ready(Err(foreign_limiter()))),
            },
        };
        AnyCheck { kind }
    }

    #[inline]
    fn check_now(&self, limiter: &AnyLimiter, key: KeyRef<'_>, shadow: bool) -> Option<Outcome> {
        match (&self.kind, &limiter.kind) {
            (Kind::Local(store), LimiterKind::Local(limiter)) => {
                store.check_now(limiter, key, shadow)
            }
            #[cfg(feature = "redis")]
            (Kind::Redis(store), LimiterKind::Redis(limiter)) => {
                store.check_now(limiter, key, shadow)
            }
            #[cfg(feature = "redis")]
            _ => None,
        }
    }

    fn health(&self) -> Option<StoreHealth> {
        match &self.kind {
            Kind::Local(store) => store.health(),
            #[cfg(feature = "redis")]
            Kind::Redis(store) => store.health(),
        }
    }
}
