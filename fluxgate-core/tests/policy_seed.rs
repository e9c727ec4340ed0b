//! The bundled example policy parses to exactly the expected values, with defaults applied.

use fluxgate_core::key::KeySource;
use fluxgate_core::policy::{
    BalanceAlgorithm, CompiledPolicy, LimitAlgorithm, MatchType, MissingKey, StoreFailure,
    SyncMode, parse_documents, parse_policies,
};

const SEED: &[u8] = include_bytes!("../../fluxgate-gateway/policies/checkout-service-policy.yaml");

#[test]
fn seed_parses_to_the_expected_values() {
    let policies = parse_policies(SEED).unwrap();
    assert_eq!(policies.len(), 1);
    let p = &policies[0];
    assert_eq!(p.api_version, "fluxgate.io/v1beta1");
    assert_eq!(p.kind, "TrafficPolicy");
    assert_eq!(p.metadata.name, "checkout-service-policy");
    assert_eq!(p.metadata.namespace.as_deref(), Some("payments"));
    assert!(p.metadata.labels.is_empty() && p.metadata.annotations.is_empty());
    assert_eq!(p.id(), "payments/checkout-service-policy");

    let target = p.spec.target_ref.as_ref().unwrap();
    assert_eq!(
        (
            target.api_group.as_str(),
            target.kind.as_str(),
            target.name.as_str()
        ),
        ("apps/v1", "Deployment", "checkout-service")
    );

    let lb = p.spec.load_balancing.as_ref().unwrap();
    assert_eq!(lb.algorithm, BalanceAlgorithm::WeightedRoundRobin);
    let hc = lb.health_check.as_ref().unwrap();
    assert_eq!(hc.interval.as_std().as_millis(), 200);
    assert_eq!(hc.unhealthy_threshold, 3);
    assert_eq!(hc.healthy_threshold, 2, "default");
    assert_eq!(hc.timeout.as_std().as_secs(), 1, "default");
    assert_eq!(hc.path, "/healthz", "default");
    assert_eq!(hc.expected_statuses, (200..=299).collect::<Vec<u16>>());
    assert!(lb.outlier_detection.is_none() && lb.slow_start.is_none());

    let limits = &p.spec.rate_limit.as_ref().unwrap().0;
    assert_eq!(limits.len(), 1);
    let rl = &limits[0];
    assert_eq!(rl.requests_per_second, 1200.0);
    assert_eq!(rl.burst_size, 150);
    assert_eq!(rl.key_extractor, "header.X-Client-Id");
    assert_eq!(rl.algorithm, LimitAlgorithm::SlidingWindow);
    assert_eq!(rl.missing_key, MissingKey::Ip);
    assert_eq!(rl.sync.mode, SyncMode::Synced);
    assert_eq!(rl.sync.interval.to_string(), "50ms");
    assert_eq!(rl.on_store_failure, StoreFailure::Local);
    assert!(!rl.shadow && rl.overrides.is_empty() && rl.name.is_none());

    let canary = p.spec.canary.as_ref().unwrap();
    assert!(canary.enabled);
    assert_eq!(canary.weight, 10);
    assert_eq!(canary.matches.len(), 1);
    let header = canary.matches[0].header.as_ref().unwrap();
    assert_eq!(
        (header.name.as_str(), header.value.as_str()),
        ("x-canary", "true")
    );
    assert_eq!(header.match_type, MatchType::Exact);
    assert!(canary.matches[0].cookie.is_none());
    assert_eq!(canary.interval.to_string(), "10s");
    assert_eq!((canary.min_requests, canary.failure_threshold), (20, 3));
    assert_eq!(canary.error_budget, 0.985);
    assert!(canary.rollback_matched && canary.steps.is_empty() && canary.sticky_key.is_none());
    let metrics = canary.metrics.as_ref().unwrap();
    assert_eq!(metrics.target_error_rate, Some(0.01));
    assert_eq!(
        metrics.target_p99_latency.unwrap().as_std().as_millis(),
        300
    );
}

#[test]
fn seed_document_has_index_id_and_line() {
    let parsed = parse_documents(SEED);
    assert_eq!(parsed.documents.len(), 1);
    let doc = &parsed.documents[0];
    assert_eq!(doc.index, 0);
    assert_eq!(doc.id.as_deref(), Some("payments/checkout-service-policy"));
    assert_eq!(doc.line, 1);
    assert!(parsed.is_ok());
}

#[test]
fn seed_compiles() {
    let policy = &parse_policies(SEED).unwrap()[0];
    let compiled = CompiledPolicy::compile(policy).unwrap();
    assert_eq!(compiled.id(), "payments/checkout-service-policy");
    let limit = &compiled.rate_limits()[0];
    assert_eq!(
        limit.key,
        KeySource::Header(http::HeaderName::from_static("x-client-id"))
    );
    let canary = compiled.canary().unwrap();
    assert_eq!(canary.weight, 10);
    assert_eq!(canary.target_p99_latency.unwrap().as_millis(), 300);
    let yes = http::Request::get("/")
        .header("x-canary", "true")
        .body(())
        .unwrap();
    let no = http::Request::get("/")
        .header("x-canary", "false")
        .body(())
        .unwrap();
    assert!(canary.matcher.matches(yes.headers(), yes.uri()));
    assert!(!canary.matcher.matches(no.headers(), no.uri()));
    assert_eq!(compiled.clone().policy(), policy);
}

#[test]
fn seed_round_trips_through_json_and_yaml_forms() {
    let policy = &parse_policies(SEED).unwrap()[0];
    let json = serde_json::to_string_pretty(policy).unwrap();
    assert_eq!(&parse_policies(json.as_bytes()).unwrap()[0], policy);
    let compact = serde_json::to_string(policy).unwrap();
    assert_eq!(&parse_policies(compact.as_bytes()).unwrap()[0], policy);
    // One limit serializes back as a mapping, as written.
    let value = serde_json::to_value(policy).unwrap();
    assert!(value["spec"]["rateLimit"].is_object());
}
