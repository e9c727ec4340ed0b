//! A policy version's limits, prepared once for the request path.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use fluxgate_core::key::{ClientIpConfig, KeyExtractor, KeySource};
use fluxgate_core::policy::{CompiledPolicy, LimitAlgorithm, MissingKey};
use http::HeaderValue;

use crate::Quota;
use crate::metrics::LimitCounters;
use crate::response::StateCache;
use crate::store::{LimitSync, LimiterSpec, MAX_LIMITS, RateLimitStore};

/// One quota of a limit (its default, or an override tier), with its header values.
#[derive(Debug)]
pub(crate) struct Tier<L> {
    pub(crate) limiter: L,
    /// `"name";q=QUOTA;w=SECONDS[;burst=BURST]`
    pub(crate) policy_header: HeaderValue,
}

/// A limit's override tiers, by key bytes and, for keys that are an IP address in its canonical
/// text, by address too (so that IP-keyed requests find theirs without formatting the address).
#[derive(Debug)]
pub(crate) struct Overrides<L> {
    tiers: Vec<Tier<L>>,
    by_bytes: HashMap<Box<[u8]>, usize>,
    by_ip: HashMap<IpAddr, usize>,
}

impl<L> Overrides<L> {
    pub(crate) fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    /// The override for a header, cookie or query value.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Tier<L>> {
        self.by_bytes.get(key).and_then(|&i| self.tiers.get(i))
    }

    /// The override whose key is `ip`'s text.
    pub(crate) fn get_ip(&self, ip: IpAddr) -> Option<&Tier<L>> {
        self.by_ip.get(&ip).and_then(|&i| self.tiers.get(i))
    }
}

/// One limit of the policy in force.
#[derive(Debug)]
pub(crate) struct PreparedLimit<L> {
    pub(crate) name: String,
    /// The `RateLimit` values of this limit (its name as a structured-field string within).
    pub(crate) states: StateCache,
    pub(crate) extractor: KeyExtractor,
    pub(crate) missing: MissingKey,
    pub(crate) shadow: bool,
    pub(crate) default: Tier<L>,
    pub(crate) overrides: Overrides<L>,
    pub(crate) counters: Arc<LimitCounters>,
}

/// The limits of one policy version.
#[derive(Debug)]
pub(crate) struct Prepared<L> {
    pub(crate) generation: u64,
    pub(crate) policy: Option<String>,
    pub(crate) limits: Vec<PreparedLimit<L>>,
}

/// Counters by limit identity, so that they survive policy versions.
#[derive(Debug, Default)]
pub(crate) struct CounterRegistry(Mutex<HashMap<String, Arc<LimitCounters>>>);

impl CounterRegistry {
    fn get(&self, identity: &str) -> Arc<LimitCounters> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(identity.to_owned()).or_default())
    }
}

impl<L> Prepared<L> {
    /// A version without limits (no policy in force): everything passes.
    pub(crate) fn empty(generation: u64) -> Self {
        Self {
            generation,
            policy: None,
            limits: Vec::new(),
        }
    }

    pub(crate) fn new<St: RateLimitStore<Limiter = L>>(
        store: &St,
        policy: &CompiledPolicy,
        generation: u64,
        client_ip: &ClientIpConfig,
        max_key_len: usize,
        counters: &CounterRegistry,
    ) -> Self {
        let all = policy.rate_limits();
        if all.len() > MAX_LIMITS {
            tracing::warn!(
                policy = policy.id(),
                limits = all.len(),
                "only the first {MAX_LIMITS} rate limits apply"
            );
        }
        let limits = all
            .iter()
            .take(MAX_LIMITS)
            .enumerate()
            .map(|(i, limit)| {
                let name = limit.name.clone().unwrap_or_else(|| format!("limit-{i}"));
                let identity = identity(policy.id(), &name, &limit.key, limit.algorithm);
                let sf_name = sf_string(&name);
                let sync = LimitSync::new(limit.sync_mode, limit.sync_interval, limit.sync_timeout)
                    .on_failure(limit.on_store_failure);
                let tier = |rps: f64, burst: u32| {
                    let quota = Quota::new(rps, burst);
                    let spec =
                        LimiterSpec::new(identity.clone(), limit.algorithm, quota).sync(sync);
                    Tier {
                        limiter: store.limiter(&spec),
                        policy_header: policy_header(&sf_name, quota, limit.algorithm),
                    }
                };
                PreparedLimit {
                    default: tier(limit.requests_per_second, limit.burst_size),
                    overrides: overrides(&limit.overrides, tier),
                    extractor: KeyExtractor::new(limit.key.clone())
                        .client_ip_config(client_ip.clone())
                        .max_key_len(max_key_len),
                    missing: limit.missing_key,
                    shadow: limit.shadow,
                    counters: counters.get(&identity),
                    name,
                    states: StateCache::new(sf_name),
                }
            })
            .collect();
        Self {
            generation,
            policy: Some(policy.id().to_owned()),
            limits,
        }
    }
}

fn overrides<L>(
    keys: &HashMap<String, (f64, u32)>,
    tier: impl Fn(f64, u32) -> Tier<L>,
) -> Overrides<L> {
    let mut out = Overrides {
        tiers: Vec::with_capacity(keys.len()),
        by_bytes: HashMap::with_capacity(keys.len()),
        by_ip: HashMap::new(),
    };
    for (key, (rps, burst)) in keys {
        let i = out.tiers.len();
        out.tiers.push(tier(*rps, *burst));
        out.by_bytes.insert(key.as_bytes().into(), i);
        // Only the canonical text matches, as comparing with the address's text would.
        if let Ok(ip) = key.parse::<IpAddr>()
            && ip.to_string() == *key
        {
            out.by_ip.insert(ip, i);
        }
    }
    out
}

/// What identifies a limit across policy versions: policy, name (or position), key, algorithm.
fn identity(policy: &str, name: &str, key: &KeySource, algorithm: LimitAlgorithm) -> String {
    let algorithm = match algorithm {
        LimitAlgorithm::Gcra => "gcra",
        _ => "sliding-window",
    };
    format!("{policy}/{name}/{key}/{algorithm}")
}

/// `name` as an RFC 8941 string: printable ASCII, `"` and `\` escaped, anything else dropped.
pub(crate) fn sf_string(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `RateLimit-Policy` for one quota (draft-ietf-httpapi-ratelimit-headers-10): `q` requests
/// per `w` seconds, where the draft makes `w` a whole number of seconds; see [`advertised`].
fn policy_header(sf_name: &str, quota: Quota, algorithm: LimitAlgorithm) -> HeaderValue {
    let (q, w, burst) = advertised(quota, algorithm);
    let value = match burst {
        Some(burst) => format!("{sf_name};q={q};w={w};burst={burst}"),
        None => format!("{sf_name};q={q};w={w}"),
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("\"limit\""))
}

/// The longest window searched for a whole number of requests (an hour).
const MAX_POLICY_WINDOW: u32 = 3600;

/// What `RateLimit-Policy` advertises, `(q, w, burst)`: the burst per window when the burst is
/// regained (GCRA) or the window lasts (sliding window) a whole number of seconds; otherwise the
/// sustained rate over the shortest whole number of seconds holding a whole number of requests
/// (rounded down past an hour), with the burst as the `burst` parameter (what may come at once).
/// So 1200/s with a burst of 150 (regained in 125ms) is `q=1200;w=1;burst=150`, never the burst
/// per second.
pub(crate) fn advertised(quota: Quota, algorithm: LimitAlgorithm) -> (u64, u64, Option<u32>) {
    let rps = quota.requests_per_second();
    let natural = match algorithm {
        LimitAlgorithm::Gcra => quota.burst_size(),
        _ => quota.window_limit(),
    };
    if let Some(w) = whole(f64::from(natural) / rps) {
        return (u64::from(natural), w, None);
    }
    let burst = Some(quota.burst_size());
    for w in 1..=MAX_POLICY_WINDOW {
        if let Some(q) = whole(rps * f64::from(w)) {
            return (q, u64::from(w), burst);
        }
    }
    let w = (1.0 / rps).ceil().clamp(1.0, f64::from(u32::MAX));
    (to_u64((rps * w).floor()), to_u64(w), burst)
}

/// `x` when it is a whole number of at least 1 (to a relative 1e-9).
fn whole(x: f64) -> Option<u64> {
    let rounded = x.round();
    let exact = (x - rounded).abs() <= 1e-9 * x.abs().max(1.0);
    (x.is_finite() && exact && rounded >= 1.0).then(|| to_u64(rounded))
}

/// A finite non-negative float as an integer (saturating, which is the intent).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn to_u64(x: f64) -> u64 {
    x.max(0.0).min(u64::MAX as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_overrides_match_the_canonical_text_only() {
        let keys: HashMap<String, (f64, u32)> =
            ["192.0.2.7", "2001:db8::1", "2001:DB8::2", "client-a"]
                .into_iter()
                .map(|k| (k.to_owned(), (5.0, 5)))
                .collect();
        let tier = |_: f64, _: u32| Tier {
            limiter: (),
            policy_header: HeaderValue::from_static("x"),
        };
        let o = overrides(&keys, tier);
        assert!(o.get_ip("192.0.2.7".parse().unwrap()).is_some());
        assert!(o.get_ip("2001:db8::1".parse().unwrap()).is_some());
        // `2001:db8::2` is written differently, so the text comparison never matched it.
        assert!(o.get_ip("2001:db8::2".parse().unwrap()).is_none());
        assert!(o.get_ip("192.0.2.8".parse().unwrap()).is_none());
        assert!(o.get(b"client-a").is_some());
    }
}
