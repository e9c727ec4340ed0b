//! A policy version's limits, prepared once for the request path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use fluxgate_core::key::{ClientIpConfig, KeyExtractor, KeySource};
use fluxgate_core::policy::{CompiledPolicy, CompiledRateLimit, LimitAlgorithm, MissingKey};
use http::HeaderValue;

use crate::Quota;
use crate::metrics::LimitCounters;
use crate::store::{LimiterSpec, MAX_LIMITS, RateLimitStore};

/// One quota of a limit (its default, or an override tier), with its header values.
#[derive(Debug)]
pub(crate) struct Tier<L> {
    pub(crate) limiter: L,
    /// `"name";q=BURST;w=SECONDS`
    pub(crate) policy_header: HeaderValue,
}

/// One limit of the policy in force.
#[derive(Debug)]
pub(crate) struct PreparedLimit<L> {
    pub(crate) name: String,
    /// The name as a structured-field string (quoted).
    pub(crate) sf_name: String,
    pub(crate) extractor: KeyExtractor,
    pub(crate) missing: MissingKey,
    pub(crate) shadow: bool,
    pub(crate) default: Tier<L>,
    pub(crate) overrides: HashMap<Box<[u8]>, Tier<L>>,
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
                let tier = |rps: f64, burst: u32| {
                    let quota = Quota::new(rps, burst);
                    let spec = LimiterSpec::new(identity.clone(), limit.algorithm, quota);
                    Tier {
                        limiter: store.limiter(&spec),
                        policy_header: policy_header(&sf_name, quota, limit.algorithm),
                    }
                };
                PreparedLimit {
                    default: tier(limit.requests_per_second, limit.burst_size),
                    overrides: overrides(limit, tier),
                    extractor: KeyExtractor::new(limit.key.clone())
                        .client_ip_config(client_ip.clone())
                        .max_key_len(max_key_len),
                    missing: limit.missing_key,
                    shadow: limit.shadow,
                    counters: counters.get(&identity),
                    name,
                    sf_name,
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
    limit: &CompiledRateLimit,
    tier: impl Fn(f64, u32) -> Tier<L>,
) -> HashMap<Box<[u8]>, Tier<L>> {
    limit
        .overrides
        .iter()
        .map(|(key, (rps, burst))| (key.as_bytes().into(), tier(*rps, *burst)))
        .collect()
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

fn policy_header(sf_name: &str, quota: Quota, algorithm: LimitAlgorithm) -> HeaderValue {
    let value = format!(
        "{sf_name};q={};w={}",
        quota.burst_size(),
        quota.policy_window_secs(algorithm)
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("\"limit\""))
}
