//! The decision shared by every variant: which policy version is in force, each limit's key,
//! the store's verdict, the counts.

use std::array;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use fluxgate_core::key::{ClientIpConfig, Extracted, KeySource};
use fluxgate_core::policy::{CompiledPolicy, MissingKey};
use fluxgate_core::store::PolicySlot;
use http::{Request, StatusCode};

use crate::metrics::{self, LayerCounters, LimitSnapshot, MetricsSnapshot};
use crate::prepared::{CounterRegistry, Prepared, PreparedLimit, Tier};
use crate::response::Fields;
use crate::store::{Checks, KeyRef, MAX_LIMITS, Outcome, RateLimitStore, StoreError, Verdict};

/// Where a layer's limits come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Fixed(CompiledPolicy),
    Slot(PolicySlot),
}

/// How a layer answers, beyond its limits.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) client_ip: ClientIpConfig,
    pub(crate) admit_headers: bool,
    pub(crate) reject_status: StatusCode,
    pub(crate) max_key_len: usize,
}

/// What every service made by one layer shares.
#[derive(Debug)]
pub(crate) struct Shared<St: RateLimitStore> {
    pub(crate) store: St,
    pub(crate) source: Source,
    pub(crate) config: Config,
    pub(crate) counters: CounterRegistry,
    pub(crate) totals: LayerCounters,
    pub(crate) current: Mutex<Arc<Prepared<St::Limiter>>>,
    /// Whether the warning for a request without a client address has been logged.
    warned_no_address: AtomicBool,
}

/// Why a request was rejected before any limit was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    Missing(usize),
    TooLong(usize),
}

/// What to do with a request.
#[derive(Debug)]
pub(crate) enum Gate<F> {
    Admit(Option<Fields>),
    Refuse {
        limit: usize,
        retry_after: Duration,
        fields: Fields,
    },
    Reject(Reject),
    Wait(F),
}

impl<St: RateLimitStore> Shared<St> {
    pub(crate) fn new(store: St, source: Source, config: Config) -> Self {
        let counters = CounterRegistry::default();
        let first = match &source {
            Source::Fixed(policy) => Prepared::new(
                &store,
                policy,
                1,
                &config.client_ip,
                config.max_key_len,
                &counters,
            ),
            Source::Slot(_) => Prepared::empty(u64::MAX),
        };
        Self {
            store,
            source,
            config,
            counters,
            totals: LayerCounters::default(),
            current: Mutex::new(Arc::new(first)),
            warned_no_address: AtomicBool::new(false),
        }
    }

    pub(crate) fn latest(&self) -> Arc<Prepared<St::Limiter>> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Source::Slot(slot) = &self.source {
            let applied = slot.load();
            let generation = applied.as_ref().map_or(0, |a| a.generation());
            if current.generation != generation {
                *current = Arc::new(match applied.as_ref() {
                    Some(a) => Prepared::new(
                        &self.store,
                        a.compiled(),
                        generation,
                        &self.config.client_ip,
                        self.config.max_key_len,
                        &self.counters,
                    ),
                    None => Prepared::empty(0),
                });
            }
        }
        Arc::clone(&current)
    }

    /// Brings `cached` up to the policy in force: one atomic load when nothing changed.
    pub(crate) fn refresh(&self, cached: &mut Arc<Prepared<St::Limiter>>) {
        if let Source::Slot(slot) = &self.source {
            let generation = slot.load().as_ref().map_or(0, |a| a.generation());
            if generation != cached.generation {
                *cached = self.latest();
            }
        }
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let prepared = self.latest();
        MetricsSnapshot {
            policy: prepared.policy.clone(),
            generation: prepared.generation,
            admitted: self.totals.admitted.get(),
            refused: self.totals.refused.get(),
            rejected: self.totals.rejected.get(),
            no_client_address: self.totals.no_client_address.get(),
            limits: prepared
                .limits
                .iter()
                .map(|l| -> LimitSnapshot {
                    l.counters
                        .snapshot(&l.name, &l.extractor.source().to_string())
                })
                .collect(),
            store: self.store.health(),
        }
    }

    /// Decides `request` under `prepared`; resolves an in-process store's answer at once.
    pub(crate) fn gate<B>(
        &self,
        prepared: &Prepared<St::Limiter>,
        request: &Request<B>,
    ) -> Gate<St::Future> {
        if let [limit] = &prepared.limits[..] {
            return self.gate_one(limit, request);
        }
        let mut keys: [Extracted<'_>; MAX_LIMITS] = array::from_fn(|_| Extracted::Missing);
        for (i, limit) in prepared.limits.iter().enumerate() {
            match resolve(limit, request, || self.no_address()) {
                Ok(key) => keys[i] = key,
                Err(reject) => {
                    self.totals.rejected.incr();
                    return Gate::Reject(reject.at(i));
                }
            }
        }
        let mut tiers: [Option<&Tier<St::Limiter>>; MAX_LIMITS] = [None; MAX_LIMITS];
        let mut checks = Checks::new();
        for (i, limit) in prepared.limits.iter().enumerate() {
            let key = key_ref(&keys[i]);
            let tier = tier(limit, key);
            tiers[i] = Some(tier);
            checks.push(&tier.limiter, key, limit.shadow);
        }
        let mut future = self.store.check(&checks);
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(&mut future).poll(&mut cx) {
            Poll::Ready(verdict) => self.finish(&prepared.limits, &tiers, verdict),
            Poll::Pending => Gate::Wait(future),
        }
    }

    /// The single-limit fast path: no key, tier or check arrays, and no [`Verdict`] when the
    /// store decides at once.
    fn gate_one<B>(
        &self,
        limit: &PreparedLimit<St::Limiter>,
        request: &Request<B>,
    ) -> Gate<St::Future> {
        let key = match resolve(limit, request, || self.no_address()) {
            Ok(key) => key,
            Err(reject) => {
                self.totals.rejected.incr();
                return Gate::Reject(reject);
            }
        };
        let key = key_ref(&key);
        let tier = tier(limit, key);
        let outcome = match self.store.check_now(&tier.limiter, key, limit.shadow) {
            Some(outcome) => outcome,
            None => {
                let mut checks = Checks::new();
                checks.push(&tier.limiter, key, limit.shadow);
                let mut future = self.store.check(&checks);
                let mut cx = Context::from_waker(Waker::noop());
                match Pin::new(&mut future).poll(&mut cx) {
                    Poll::Ready(Ok(verdict)) => verdict.outcome(0),
                    Poll::Ready(error) => return self.finish(&[limit], &[Some(tier)], error),
                    Poll::Pending => return Gate::Wait(future),
                }
            }
        };
        let stripe = metrics::stripe();
        match outcome {
            Outcome::Refused { retry_after } => {
                limit.counters.refused.incr_at(stripe);
                self.totals.refused.incr_at(stripe);
                Gate::Refuse {
                    limit: 0,
                    retry_after,
                    fields: fields(limit, Some(tier), 0, retry_after),
                }
            }
            outcome => {
                let admitted = match outcome {
                    Outcome::Admitted { remaining, reset } => {
                        limit.counters.admitted.incr_at(stripe);
                        Some((remaining, reset)).filter(|_| !limit.shadow)
                    }
                    Outcome::ShadowRefused { .. } => {
                        limit.counters.shadow_refused.incr_at(stripe);
                        None
                    }
                    _ => None,
                };
                self.totals.admitted.incr_at(stripe);
                let fields = admitted
                    .filter(|_| self.config.admit_headers)
                    .map(|(remaining, reset)| fields(limit, Some(tier), remaining, reset));
                Gate::Admit(fields)
            }
        }
    }

    /// Counts a request whose `ip` key found no client address; warns about the first.
    #[cold]
    fn no_address(&self) {
        self.totals.no_client_address.incr();
        if !self.warned_no_address.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "fluxgate_ratelimit",
                policy = self.latest().policy.as_deref().unwrap_or("-"),
                "a rate limit keyed on `ip` (or `missingKey: ip`) got a request without a \
                 client address, so every \
                 such request shares one bucket; serve axum with \
                 `app.into_make_service_with_connect_info::<SocketAddr>()` (feature `axum`), \
                 or insert `fluxgate_core::key::PeerAddr` in a hyper server's requests \
                 (counted in `no_client_address`; logged once)"
            );
        }
    }

    /// Decides `request` once a store's answer has come.
    pub(crate) fn finish_later<B>(
        &self,
        prepared: &Prepared<St::Limiter>,
        request: &Request<B>,
        verdict: Result<Verdict, StoreError>,
    ) -> Gate<St::Future> {
        let mut tiers: [Option<&Tier<St::Limiter>>; MAX_LIMITS] = [None; MAX_LIMITS];
        for (i, limit) in prepared.limits.iter().enumerate() {
            let key = resolve(limit, request, || {}).unwrap_or(Extracted::Missing);
            tiers[i] = Some(tier(limit, key_ref(&key)));
        }
        self.finish(&prepared.limits, &tiers, verdict)
    }

    fn finish<P: std::borrow::Borrow<PreparedLimit<St::Limiter>>>(
        &self,
        limits: &[P],
        tiers: &[Option<&Tier<St::Limiter>>],
        verdict: Result<Verdict, StoreError>,
    ) -> Gate<St::Future> {
        let verdict = match verdict {
            Ok(verdict) => verdict,
            Err(error) => {
                // Fail open: a store that cannot answer must not take the gateway down with it.
                tracing::debug!(%error, "rate-limit store failed; request admitted");
                self.totals.admitted.incr();
                return Gate::Admit(None);
            }
        };
        let mut tightest: Option<(usize, u32, Duration)> = None;
        for (i, limit) in limits.iter().map(P::borrow).enumerate() {
            match verdict.outcome(i) {
                Outcome::Admitted { remaining, reset } => {
                    limit.counters.admitted.incr();
                    if !limit.shadow && tightest.is_none_or(|(_, r, _)| remaining < r) {
                        tightest = Some((i, remaining, reset));
                    }
                }
                Outcome::Refused { retry_after } => {
                    limit.counters.refused.incr();
                    self.totals.refused.incr();
                    let fields = fields(limit, tiers[i], 0, retry_after);
                    return Gate::Refuse {
                        limit: i,
                        retry_after,
                        fields,
                    };
                }
                Outcome::ShadowRefused { .. } => limit.counters.shadow_refused.incr(),
                _ => {}
            }
        }
        self.totals.admitted.incr();
        let fields = tightest
            .filter(|_| self.config.admit_headers)
            .map(|(i, remaining, reset)| fields(limits[i].borrow(), tiers[i], remaining, reset));
        Gate::Admit(fields)
    }
}

impl Reject {
    fn at(self, i: usize) -> Self {
        match self {
            Self::Missing(_) => Self::Missing(i),
            Self::TooLong(_) => Self::TooLong(i),
        }
    }
}

fn fields<L>(
    limit: &PreparedLimit<L>,
    tier: Option<&Tier<L>>,
    remaining: u32,
    reset: Duration,
) -> Fields {
    let policy = &tier.unwrap_or(&limit.default).policy_header;
    Fields::new(policy, &limit.states, remaining, reset)
}

/// The key of `request` for `limit`, after the missing-key rule; `Missing` here means the shared
/// bucket. `no_address` is called when an `ip` key (or the `ip` fallback) finds no address.
fn resolve<'r, L, B>(
    limit: &PreparedLimit<L>,
    request: &'r Request<B>,
    no_address: impl FnOnce(),
) -> Result<Extracted<'r>, Reject> {
    match limit.extractor.extract(request) {
        key @ (Extracted::Key(_) | Extracted::Ip(_)) => Ok(key),
        Extracted::TooLong => Err(Reject::TooLong(0)),
        _ if *limit.extractor.source() == KeySource::Ip => {
            no_address();
            match limit.missing {
                MissingKey::Reject => Err(Reject::Missing(0)),
                _ => Ok(Extracted::Missing),
            }
        }
        _ => match limit.missing {
            MissingKey::Reject => Err(Reject::Missing(0)),
            MissingKey::Ip => Ok(match limit.extractor.client_ip(request) {
                Some(ip) => Extracted::Ip(ip),
                None => {
                    no_address();
                    Extracted::Missing
                }
            }),
            _ => Ok(Extracted::Missing),
        },
    }
}

fn key_ref<'a>(key: &'a Extracted<'_>) -> KeyRef<'a> {
    match key {
        Extracted::Key(bytes) => KeyRef::Bytes(bytes),
        Extracted::Ip(ip) => KeyRef::Ip(*ip),
        _ => KeyRef::Shared,
    }
}

/// The tier of `key`: an override when one matches the key (or the client IP's canonical text).
fn tier<'p, L>(limit: &'p PreparedLimit<L>, key: KeyRef<'_>) -> &'p Tier<L> {
    if limit.overrides.is_empty() {
        return &limit.default;
    }
    let found = match key {
        KeyRef::Bytes(bytes) => limit.overrides.get(bytes),
        KeyRef::Ip(ip) => limit.overrides.get_ip(ip),
        _ => None,
    };
    found.unwrap_or(&limit.default)
}
