//! Properties: nothing panics on any input, and serialize-then-parse is the identity.

use fluxgate_core::policy::{
    BalanceAlgorithm, CanaryMatch, CanaryMetrics, CanarySpec, Duration, HealthCheck, LoadBalancing,
    MatchCondition, MatchType, OutlierDetection, RateLimitSpec, RateLimits, RateOverride,
    SlowStart, TrafficPolicy, parse_documents, parse_policies,
};
use proptest::prelude::*;

const SEED: &str = include_str!("../../fluxgate-gateway/policies/checkout-service-policy.yaml");

fn duration() -> impl Strategy<Value = Duration> {
    (10_000_000u64..100_000_000_000)
        .prop_map(|ns| Duration::from(std::time::Duration::from_nanos(ns)))
}

fn condition() -> impl Strategy<Value = MatchCondition> {
    ("[a-z][a-z0-9-]{0,8}", "[ -~]{0,10}", 0..2u8).prop_map(|(n, v, t)| {
        let mut c = MatchCondition::exact(&n, &v);
        c.match_type = if t == 0 {
            MatchType::Exact
        } else {
            MatchType::Prefix
        };
        c
    })
}

fn policy() -> impl Strategy<Value = TrafficPolicy> {
    (
        "[a-z]([a-z0-9-]{0,9}[a-z0-9])?",
        proptest::option::of("[a-z]{1,8}"),
        proptest::option::of((duration(), 1u32..10, 0.0f64..1.0, 0u32..=100)),
        proptest::collection::vec(
            (0.001f64..1e6, 1u32..1000, any::<bool>(), "[a-z]{1,5}"),
            0..3,
        ),
        proptest::option::of((
            0u32..=100,
            proptest::collection::vec(
                (
                    condition(),
                    proptest::option::of(condition()),
                    proptest::option::of(condition()),
                ),
                0..3,
            ),
            duration(),
            any::<bool>(),
        )),
    )
        .prop_map(|(name, ns, lb, limits, canary)| {
            let mut p = TrafficPolicy::new(ns.as_deref(), &name);
            p.metadata.labels.insert("app".into(), name);
            p.spec.load_balancing = lb.map(|(interval, threshold, rate, percent)| {
                let mut lb = LoadBalancing::default();
                lb.algorithm = BalanceAlgorithm::PeakEwma;
                let mut hc = HealthCheck::default();
                hc.interval = interval;
                hc.unhealthy_threshold = threshold;
                lb.health_check = Some(hc);
                let mut od = OutlierDetection::default();
                od.max_error_rate = rate;
                od.max_ejection_percent = percent;
                lb.outlier_detection = Some(od);
                lb.slow_start = Some(SlowStart::default());
                lb
            });
            if !limits.is_empty() {
                p.spec.rate_limit = Some(RateLimits(
                    limits
                        .into_iter()
                        .map(|(rps, burst, shadow, key)| {
                            let mut l = RateLimitSpec::new(rps, burst);
                            l.shadow = shadow;
                            l.overrides.push(RateOverride {
                                key,
                                requests_per_second: rps * 2.0,
                                burst_size: burst,
                            });
                            l
                        })
                        .collect(),
                ));
            }
            p.spec.canary = canary.map(|(weight, entries, interval, enabled)| {
                let mut c = CanarySpec::default();
                c.weight = weight;
                c.enabled = enabled;
                c.interval = interval;
                c.steps = vec![5, 10, 50];
                c.sticky_key = Some("cookie.session".into());
                c.matches = entries
                    .into_iter()
                    .map(|(header, cookie, query)| CanaryMatch {
                        header: Some(header),
                        cookie,
                        query,
                    })
                    .collect();
                let mut m = CanaryMetrics::default();
                m.target_error_rate = Some(0.01);
                m.target_p99_latency = Some(interval);
                c.metrics = Some(m);
                c
            });
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let parsed = parse_documents(&bytes);
        prop_assert!(!parsed.documents.is_empty());
    }

    #[test]
    fn near_valid_yaml_never_panics(
        cut in 0usize..SEED.len(),
        insert in "[ -~\n\t]{0,12}",
        drop in 0usize..20,
    ) {
        let mut text = SEED.to_owned();
        let at = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.insert_str(at, &insert);
        let end = (at + drop).min(text.len());
        if text.is_char_boundary(end) {
            text.replace_range(at..end, "");
        }
        let _ = parse_documents(text.as_bytes());
    }

    #[test]
    fn serialize_then_parse_is_the_identity(p in policy()) {
        let json = serde_json::to_string(&p).unwrap();
        let back = parse_policies(json.as_bytes());
        prop_assert!(back.is_ok(), "{json}\n{}", back.unwrap_err());
        prop_assert_eq!(&back.unwrap()[0], &p);
    }

    #[test]
    fn durations_round_trip(ns in any::<u64>()) {
        let d = Duration::from(std::time::Duration::from_nanos(ns));
        prop_assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
    }
}
