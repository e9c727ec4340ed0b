//! Semantic checks of a deserialized [`TrafficPolicy`]: ranges, names, durations, references.

use std::fmt::Display;

use super::node::LineMap;
use super::{
    API_VERSION, CanaryMatch, CanarySpec, Duration, HealthCheck, KIND, LoadBalancing,
    MatchCondition, MatchType, OutlierDetection, PolicyError, PolicyErrorKind, RateLimitSpec,
    RateLimits, TrafficPolicy,
};
use crate::key::KeySource;

/// The shortest interval a policy may ask for.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Collects every semantic error of a policy; `lines` gives them lines when there is a source.
pub(crate) struct Checker<'a> {
    lines: Option<&'a LineMap>,
    errors: Vec<PolicyError>,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(lines: Option<&'a LineMap>) -> Self {
        Self {
            lines,
            errors: Vec::new(),
        }
    }

    pub(crate) fn into_errors(self) -> Vec<PolicyError> {
        self.errors
    }

    fn push(&mut self, path: &str, found: impl Display, expected: impl Into<String>) {
        let mut error = PolicyError::new(PolicyErrorKind::InvalidValue, path)
            .found_expected(found.to_string(), expected);
        if let Some(lines) = self.lines {
            let mut key = path;
            loop {
                if let Some(&(line, col)) = lines.get(key) {
                    error = error.at(line, col);
                    break;
                }
                match key.rfind(['.', '[']) {
                    Some(i) => key = &key[..i],
                    None => break,
                }
            }
        }
        self.errors.push(error);
    }

    fn int_range(&mut self, path: &str, value: u32, min: u32, max: u32) {
        if !(min..=max).contains(&value) {
            self.push(path, value, format!("an integer from {min} to {max}"));
        }
    }

    fn at_least_one(&mut self, path: &str, value: u32) {
        if value < 1 {
            self.push(path, value, "an integer of at least 1");
        }
    }

    fn rate(&mut self, path: &str, value: f64) {
        if !(0.0..=1.0).contains(&value) {
            self.push(path, value, "a rate from 0 to 1");
        }
    }

    fn positive(&mut self, path: &str, value: f64) {
        if !(value.is_finite() && value > 0.0) {
            self.push(path, value, "a number greater than 0");
        }
    }

    fn interval(&mut self, path: &str, value: Duration) {
        if value < MIN_INTERVAL {
            self.push(
                path,
                value,
                format!("a duration of at least {MIN_INTERVAL}"),
            );
        }
    }

    fn positive_duration(&mut self, path: &str, value: Duration) {
        if value == Duration::ZERO {
            self.push(path, value, "a duration greater than 0s");
        }
    }

    fn key_source(&mut self, path: &str, value: &str) {
        if let Err(e) = value.parse::<KeySource>() {
            let expected = format!("one of ip, header.NAME, cookie.NAME, query.NAME ({e})");
            self.push(path, format!("{value:?}"), expected);
        }
    }

    /// Checks a whole policy.
    pub(crate) fn policy(&mut self, policy: &TrafficPolicy) {
        if policy.api_version != API_VERSION {
            self.push(
                "apiVersion",
                format!("{:?}", policy.api_version),
                API_VERSION,
            );
        }
        if policy.kind != KIND {
            self.push("kind", format!("{:?}", policy.kind), KIND);
        }
        let meta = &policy.metadata;
        if !is_dns_name(&meta.name, 253, true) {
            let expected = "a DNS-1123 name (lowercase letters, digits, '-' and '.', at most 253)";
            self.push("metadata.name", format!("{:?}", meta.name), expected);
        }
        if let Some(ns) = meta
            .namespace
            .as_deref()
            .filter(|ns| !is_dns_name(ns, 63, false))
        {
            let expected = "a DNS-1123 label (lowercase letters, digits and '-', at most 63)";
            self.push("metadata.namespace", format!("{ns:?}"), expected);
        }
        if let Some(target) = &policy.spec.target_ref {
            for (field, value) in [("kind", &target.kind), ("name", &target.name)] {
                if value.is_empty() {
                    self.push(
                        &format!("spec.targetRef.{field}"),
                        "\"\"",
                        "a non-empty string",
                    );
                }
            }
        }
        if let Some(lb) = &policy.spec.load_balancing {
            self.load_balancing(lb);
        }
        if let Some(limits) = &policy.spec.rate_limit {
            self.rate_limits(limits);
        }
        if let Some(canary) = &policy.spec.canary {
            self.canary(canary);
        }
    }

    fn load_balancing(&mut self, lb: &LoadBalancing) {
        if let Some(hc) = &lb.health_check {
            self.health_check(hc);
        }
        if let Some(od) = &lb.outlier_detection {
            self.outlier_detection(od);
        }
        if let Some(retries) = &lb.retries {
            self.int_range(
                "spec.loadBalancing.retries.budgetPercent",
                retries.budget_percent,
                0,
                100,
            );
        }
    }

    fn health_check(&mut self, hc: &HealthCheck) {
        let p = "spec.loadBalancing.healthCheck";
        self.interval(&format!("{p}.interval"), hc.interval);
        self.positive_duration(&format!("{p}.timeout"), hc.timeout);
        self.at_least_one(&format!("{p}.unhealthyThreshold"), hc.unhealthy_threshold);
        self.at_least_one(&format!("{p}.healthyThreshold"), hc.healthy_threshold);
        if !hc.path.starts_with('/') {
            self.push(
                &format!("{p}.path"),
                format!("{:?}", hc.path),
                "a path starting with /",
            );
        }
        if hc.expected_statuses.is_empty() {
            self.push(
                &format!("{p}.expectedStatuses"),
                "[]",
                "at least one status",
            );
        }
        for (i, status) in hc.expected_statuses.iter().enumerate() {
            if !(100..=599).contains(status) {
                let path = format!("{p}.expectedStatuses[{i}]");
                self.push(&path, status, "an HTTP status from 100 to 599");
            }
        }
    }

    fn outlier_detection(&mut self, od: &OutlierDetection) {
        let p = "spec.loadBalancing.outlierDetection";
        self.interval(&format!("{p}.interval"), od.interval);
        self.rate(&format!("{p}.maxErrorRate"), od.max_error_rate);
        self.positive_duration(&format!("{p}.maxP95Latency"), od.max_p95_latency);
        self.positive_duration(&format!("{p}.baseEjectionTime"), od.base_ejection_time);
        if od.max_ejection_time < od.base_ejection_time {
            let expected = format!(
                "a duration of at least baseEjectionTime ({})",
                od.base_ejection_time
            );
            self.push(
                &format!("{p}.maxEjectionTime"),
                od.max_ejection_time,
                expected,
            );
        }
        self.int_range(
            &format!("{p}.maxEjectionPercent"),
            od.max_ejection_percent,
            0,
            100,
        );
    }

    fn rate_limits(&mut self, limits: &RateLimits) {
        // One limit written as a mapping has no index in its path.
        let indexed = limits.0.len() != 1
            || self
                .lines
                .is_some_and(|lines| lines.contains_key("spec.rateLimit[0]"));
        for (i, limit) in limits.0.iter().enumerate() {
            let path = if indexed {
                format!("spec.rateLimit[{i}]")
            } else {
                "spec.rateLimit".to_owned()
            };
            self.rate_limit(&path, limit);
        }
    }

    fn rate_limit(&mut self, p: &str, limit: &RateLimitSpec) {
        self.positive(&format!("{p}.requestsPerSecond"), limit.requests_per_second);
        self.at_least_one(&format!("{p}.burstSize"), limit.burst_size);
        self.key_source(&format!("{p}.keyExtractor"), &limit.key_extractor);
        for (i, tier) in limit.overrides.iter().enumerate() {
            let q = format!("{p}.overrides[{i}]");
            if tier.key.is_empty() {
                self.push(&format!("{q}.key"), "\"\"", "a non-empty key");
            } else if limit.overrides[..i].iter().any(|t| t.key == tier.key) {
                self.push(
                    &format!("{q}.key"),
                    format!("{:?}", tier.key),
                    "a key not listed before",
                );
            }
            self.positive(&format!("{q}.requestsPerSecond"), tier.requests_per_second);
            self.at_least_one(&format!("{q}.burstSize"), tier.burst_size);
        }
        self.interval(&format!("{p}.sync.interval"), limit.sync.interval);
        self.positive_duration(&format!("{p}.sync.timeout"), limit.sync.timeout);
    }

    fn canary(&mut self, canary: &CanarySpec) {
        let p = "spec.canary";
        self.int_range(&format!("{p}.weight"), canary.weight, 0, 100);
        for (i, entry) in canary.matches.iter().enumerate() {
            self.canary_match(&format!("{p}.match[{i}]"), entry);
        }
        if let Some(key) = &canary.sticky_key {
            self.key_source(&format!("{p}.stickyKey"), key);
        }
        for (i, step) in canary.steps.iter().enumerate() {
            let path = format!("{p}.steps[{i}]");
            if !(1..=100).contains(step) {
                self.push(&path, step, "a percent from 1 to 100");
            } else if let Some(previous) = canary.steps[..i].last().filter(|prev| *prev >= step) {
                self.push(
                    &path,
                    step,
                    format!("a percent above the previous step ({previous})"),
                );
            }
        }
        self.interval(&format!("{p}.interval"), canary.interval);
        self.at_least_one(&format!("{p}.failureThreshold"), canary.failure_threshold);
        self.rate(&format!("{p}.errorBudget"), canary.error_budget);
        if let Some(metrics) = &canary.metrics {
            if let Some(rate) = metrics.target_error_rate {
                self.rate(&format!("{p}.metrics.targetErrorRate"), rate);
            }
            if let Some(latency) = metrics.target_p99_latency {
                self.positive_duration(&format!("{p}.metrics.targetP99Latency"), latency);
            }
        }
    }

    fn canary_match(&mut self, p: &str, entry: &CanaryMatch) {
        let conditions = [
            ("header", &entry.header),
            ("cookie", &entry.cookie),
            ("query", &entry.query),
        ];
        if conditions.iter().all(|(_, c)| c.is_none()) {
            self.push(p, "an empty entry", "at least one of header, cookie, query");
        }
        for (what, condition) in conditions {
            if let Some(condition) = condition {
                self.condition(&format!("{p}.{what}"), what, condition);
            }
        }
    }

    fn condition(&mut self, p: &str, what: &str, condition: &MatchCondition) {
        let name = &condition.name;
        let valid_name = match what {
            "header" => http::HeaderName::from_bytes(name.as_bytes()).is_ok(),
            _ => format!("{what}.{name}").parse::<KeySource>().is_ok(),
        };
        if !valid_name {
            self.push(
                &format!("{p}.name"),
                format!("{name:?}"),
                format!("a valid {what} name"),
            );
        }
        if condition.match_type == MatchType::Regex
            && let Err(e) = regex::Regex::new(&condition.value)
        {
            let detail = e.to_string().lines().last().unwrap_or_default().to_owned();
            let expected = format!("a valid regular expression ({})", detail.trim());
            self.push(
                &format!("{p}.value"),
                format!("{:?}", condition.value),
                expected,
            );
        }
    }
}

/// A DNS-1123 subdomain (`dots` true) or label: lowercase alphanumerics and `-` (and `.`),
/// starting and ending with an alphanumeric, at most `max` characters.
fn is_dns_name(name: &str, max: usize, dots: bool) -> bool {
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    name.len() <= max
        && edge(name.as_bytes().first())
        && edge(name.as_bytes().last())
        && name.split('.').all(|part| !part.is_empty() || !dots)
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.')
        })
}
