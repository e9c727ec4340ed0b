//! The `TrafficPolicy` document: its model, parsing from YAML or JSON, validation and compiled form.
//!
//! Use [`parse_documents`] (or [`parse_policies`]) to read policy files, [`TrafficPolicy::validate`]
//! to check a policy built in code, and [`CompiledPolicy::compile`] to get what the layers read on
//! the hot path. Every error is a [`PolicyError`] with the document, the field path, the line and
//! the value found; they come collected in [`PolicyErrors`].
//!
//! # Example
//!
//! ```
//! use fluxgate_core::policy::{parse_policies, CompiledPolicy};
//!
//! let yaml = br#"
//! apiVersion: fluxgate.io/v1beta1
//! kind: TrafficPolicy
//! metadata:
//!   name: checkout
//!   namespace: payments
//! spec:
//!   canary:
//!     weight: 10
//!     match:
//!       - header: {name: x-canary, value: "true"}
//! "#;
//! let policies = parse_policies(yaml)?;
//! let compiled = CompiledPolicy::compile(&policies[0])?;
//! assert_eq!(compiled.id(), "payments/checkout");
//!
//! let request = http::Request::get("/pay").header("x-canary", "true").body(())?;
//! let canary = compiled.canary().unwrap();
//! assert!(canary.matcher.matches(request.headers(), request.uri()));
//!
//! let bad = parse_policies(b"apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {name: a}\nspec:\n  loadBalancng: {}\n");
//! assert_eq!(
//!     bad.unwrap_err().to_string(),
//!     "document 1 (a), line 5: spec.loadBalancng: unknown field, did you mean loadBalancing?"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod balance;
mod canary;
mod compile;
mod de;
mod duration;
mod error;
mod matcher;
mod node;
mod parse;
mod ratelimit;
mod types;
mod validate;

pub use balance::{
    BalanceAlgorithm, HealthCheck, HealthProtocol, LoadBalancing, OutlierDetection, Retries,
    SlowStart,
};
pub use canary::{CanaryMatch, CanaryMetrics, CanarySpec, MatchCondition, MatchType};
pub use compile::{CompiledCanary, CompiledPolicy, CompiledRateLimit};
pub use duration::{Duration, DurationError};
pub use error::{PolicyError, PolicyErrorKind, PolicyErrors};
pub use matcher::{CanaryMatcher, ValueMatcher};
pub use parse::{ParsedDocument, ParsedDocuments, parse_documents, parse_policies};
pub use ratelimit::{
    LimitAlgorithm, MissingKey, RateLimitSpec, RateLimits, RateOverride, RateSync, StoreFailure,
    SyncMode,
};
pub use types::{ObjectMeta, TargetRef, TrafficPolicy, TrafficPolicySpec};

/// The `apiVersion` of every policy.
pub const API_VERSION: &str = "fluxgate.io/v1beta1";

/// The `kind` of every policy.
pub const KIND: &str = "TrafficPolicy";

/// The largest input [`parse_documents`] reads: 1 MiB.
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// The deepest nesting of mappings and lists a document may have (a policy needs about 6).
pub const MAX_DEPTH: usize = 32;

impl TrafficPolicy {
    /// Checks the policy's values (ranges, names, durations, key sources, regexes).
    ///
    /// Errors carry field paths but no lines, since a policy built in code has no source.
    ///
    /// # Errors
    ///
    /// Every problem found, as [`PolicyErrors`].
    ///
    /// ```
    /// use fluxgate_core::policy::{CanarySpec, TrafficPolicy};
    ///
    /// let mut policy = TrafficPolicy::new(Some("payments"), "checkout");
    /// let mut canary = CanarySpec::default();
    /// canary.weight = 150;
    /// policy.spec.canary = Some(canary);
    /// let errors = policy.validate().unwrap_err();
    /// assert_eq!(errors.first().path, "spec.canary.weight");
    /// assert_eq!(errors.first().line, None);
    /// ```
    pub fn validate(&self) -> Result<(), PolicyErrors> {
        let mut checker = validate::Checker::new(None);
        checker.policy(self);
        let id = self.id();
        let mut errors = checker.into_errors();
        for error in &mut errors {
            error.id = Some(id.clone());
        }
        PolicyErrors::from_vec(errors).map_or(Ok(()), Err)
    }
}
