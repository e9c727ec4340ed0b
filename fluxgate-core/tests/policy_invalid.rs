//! Invalid documents: each error names the field path, the line and the kind.

use fluxgate_core::policy::{PolicyErrorKind as K, parse_documents, parse_policies};

/// Lines 1-6; a case's `spec` lines start at line 7.
const HEAD: &str = "apiVersion: fluxgate.io/v1beta1
kind: TrafficPolicy
metadata:
  name: checkout
  namespace: payments
spec:
";

/// (spec lines, or a whole document when it starts with `apiVersion`/`kind`, path, line, kind)
const CASES: &[(&str, &str, usize, K)] = &[
    (
        "  canary:\n    weight: 150\n",
        "spec.canary.weight",
        8,
        K::InvalidValue,
    ),
    (
        "  canary:\n    weight: -1\n",
        "spec.canary.weight",
        8,
        K::InvalidValue,
    ),
    (
        "  canary:\n    weight: ten\n",
        "spec.canary.weight",
        8,
        K::InvalidType,
    ),
    (
        "  loadBalancng: {}\n",
        "spec.loadBalancng",
        7,
        K::UnknownField,
    ),
    (
        "  loadBalancing:\n    algorithm: round-robbin\n",
        "spec.loadBalancing.algorithm",
        8,
        K::InvalidValue,
    ),
    (
        "  loadBalancing:\n    healthCheck:\n      interval: 5ms\n",
        "spec.loadBalancing.healthCheck.interval",
        9,
        K::InvalidValue,
    ),
    (
        "  loadBalancing:\n    healthCheck:\n      interval: soon\n",
        "spec.loadBalancing.healthCheck.interval",
        9,
        K::InvalidValue,
    ),
    (
        "  loadBalancing:\n    healthCheck:\n      unhealthyThreshold: 0\n",
        "spec.loadBalancing.healthCheck.unhealthyThreshold",
        9,
        K::InvalidValue,
    ),
    (
        "  loadBalancing:\n    healthCheck:\n      path: healthz\n",
        "spec.loadBalancing.healthCheck.path",
        9,
        K::InvalidValue,
    ),
    (
        "  loadBalancing:\n    healthCheck:\n      expectedStatuses: [200, 700]\n",
        "spec.loadBalancing.healthCheck.expectedStatuses[1]",
        9,
        K::InvalidValue,
    ),
    (
        "  loadBalancing:\n    healthCheck:\n      protocol: tcp\n",
        "spec.loadBalancing.healthCheck.protocol",
        9,
        K::InvalidValue,
    ),
    (
        "  loadBalancing:\n    outlierDetection:\n      maxErrorRate: 1.5\n",
        "spec.loadBalancing.outlierDetection.maxErrorRate",
        9,
        K::InvalidValue,
    ),
    (
        "  loadBalancing:\n    outlierDetection:\n      maxEjectionPercent: 101\n",
        "spec.loadBalancing.outlierDetection.maxEjectionPercent",
        9,
        K::InvalidValue,
    ),
    (
        "  loadBalancing:\n    slowStart:\n      window: -1s\n",
        "spec.loadBalancing.slowStart.window",
        9,
        K::InvalidValue,
    ),
    (
        "  rateLimit:\n    requestsPerSecond: 0\n    burstSize: 1\n",
        "spec.rateLimit.requestsPerSecond",
        8,
        K::InvalidValue,
    ),
    (
        "  rateLimit:\n    requestsPerSecond: 10\n    burstSize: 0\n",
        "spec.rateLimit.burstSize",
        9,
        K::InvalidValue,
    ),
    (
        "  rateLimit:\n    requestsPerSecond: 10\n",
        "spec.rateLimit.burstSize",
        8,
        K::MissingField,
    ),
    (
        "  rateLimit:\n    requestsPerSecond: 10\n    burstSize: 2\n    keyExtractor: body.user\n",
        "spec.rateLimit.keyExtractor",
        10,
        K::InvalidValue,
    ),
    (
        "  rateLimit:\n    - requestsPerSecond: 10\n      burstSize: 2\n    - requestsPerSecond: 10\n      burstSize: 2\n      algorithm: leaky\n",
        "spec.rateLimit[1].algorithm",
        12,
        K::InvalidValue,
    ),
    (
        "  rateLimit:\n    - requestsPerSecond: 10\n      burstSize: 2\n      sync:\n        interval: 1ms\n",
        "spec.rateLimit[0].sync.interval",
        11,
        K::InvalidValue,
    ),
    (
        "  rateLimit:\n    requestsPerSecond: 1\n    burstSize: 1\n    overrides:\n      - {key: a, requestsPerSecond: 5, burstSize: 5}\n      - {key: a, requestsPerSecond: 5, burstSize: 5}\n",
        "spec.rateLimit.overrides[1].key",
        12,
        K::InvalidValue,
    ),
    (
        "  rateLimit:\n    requestsPerSecond: 1\n    burstSize: 1\n    shadow: maybe\n",
        "spec.rateLimit.shadow",
        10,
        K::InvalidType,
    ),
    (
        "  canary:\n    match:\n      - {}\n",
        "spec.canary.match[0]",
        9,
        K::InvalidValue,
    ),
    (
        "  canary:\n    match:\n      - header: {name: x-a, value: a}\n      - header:\n          name: x-b\n          value: \"(\"\n          type: regex\n",
        "spec.canary.match[1].header.value",
        12,
        K::InvalidValue,
    ),
    (
        "  canary:\n    match:\n      - header:\n          name: \"bad name\"\n          value: a\n",
        "spec.canary.match[0].header.name",
        10,
        K::InvalidValue,
    ),
    (
        "  canary:\n    match:\n      - header:\n          value: a\n",
        "spec.canary.match[0].header.name",
        10,
        K::MissingField,
    ),
    (
        "  canary:\n    match:\n      - cookie: {name: a, value: b, type: glob}\n",
        "spec.canary.match[0].cookie.type",
        9,
        K::InvalidValue,
    ),
    (
        "  canary:\n    stickyKey: header.\n",
        "spec.canary.stickyKey",
        8,
        K::InvalidValue,
    ),
    (
        "  canary:\n    steps: [5, 5, 20]\n",
        "spec.canary.steps[1]",
        8,
        K::InvalidValue,
    ),
    (
        "  canary:\n    steps: [0]\n",
        "spec.canary.steps[0]",
        8,
        K::InvalidValue,
    ),
    (
        "  canary:\n    failureThreshold: 0\n",
        "spec.canary.failureThreshold",
        8,
        K::InvalidValue,
    ),
    (
        "  canary:\n    errorBudget: 98.5\n",
        "spec.canary.errorBudget",
        8,
        K::InvalidValue,
    ),
    (
        "  canary:\n    metrics:\n      targetErrorRate: -0.1\n",
        "spec.canary.metrics.targetErrorRate",
        9,
        K::InvalidValue,
    ),
    (
        "  canary:\n    metrics:\n      targetP99Latency: 300\n",
        "spec.canary.metrics.targetP99Latency",
        9,
        K::InvalidType,
    ),
    (
        "  canary:\n    enabled: yes\n",
        "spec.canary.enabled",
        8,
        K::InvalidType,
    ),
    ("  canary: [1, 2]\n", "spec.canary", 7, K::InvalidType),
    (
        "  targetRef:\n    kind: Deployment\n",
        "spec.targetRef.name",
        8,
        K::MissingField,
    ),
    (
        "apiVersion: fluxgate.io/v1\nkind: TrafficPolicy\nmetadata:\n  name: a\n",
        "apiVersion",
        1,
        K::InvalidValue,
    ),
    (
        "apiVersion: fluxgate.io/v1beta1\nkind: Policy\nmetadata:\n  name: a\n",
        "kind",
        2,
        K::InvalidValue,
    ),
    (
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata:\n  namespace: a\n",
        "metadata.name",
        4,
        K::MissingField,
    ),
    (
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata:\n  name: Checkout_Service\n",
        "metadata.name",
        4,
        K::InvalidValue,
    ),
    (
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata:\n  name: a\n  namespace: pay.ments\n",
        "metadata.namespace",
        5,
        K::InvalidValue,
    ),
    (
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata:\n  name: a\n  uid: x\n",
        "metadata.uid",
        5,
        K::UnknownField,
    ),
    (
        "apiVersion: fluxgate.io/v1beta1\nmetadata:\n  name: a\n",
        "kind",
        1,
        K::MissingField,
    ),
];

#[test]
fn every_invalid_document_names_path_line_and_kind() {
    assert!(CASES.len() >= 25);
    for (i, (body, path, line, kind)) in CASES.iter().enumerate() {
        let text = if body.starts_with("apiVersion") || body.starts_with("kind") {
            (*body).to_owned()
        } else {
            format!("{HEAD}{body}")
        };
        let errors =
            parse_policies(text.as_bytes()).expect_err(&format!("case {i} ({path}) parsed"));
        let found = errors.iter().find(|e| e.path == *path);
        let error = found.unwrap_or_else(|| panic!("case {i}: no error at {path}: {errors}"));
        assert_eq!(error.line, Some(*line), "case {i}: {error}");
        assert_eq!(error.kind, *kind, "case {i}: {error}");
        assert_eq!(error.document, Some(0), "case {i}");
    }
}

#[test]
fn messages_read_well() {
    let text = format!("{HEAD}  loadBalancng: {{}}\n  canary:\n    weight: 150\n");
    let errors = parse_policies(text.as_bytes()).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "document 1 (payments/checkout), line 7: spec.loadBalancng: unknown field, did you mean loadBalancing?\n\
         document 1 (payments/checkout), line 9: spec.canary.weight: found 150, expected an integer from 0 to 100"
    );
    let text = format!("{HEAD}  loadBalancing:\n    algorithm: round-robbin\n");
    let message = parse_policies(text.as_bytes()).unwrap_err().to_string();
    assert!(
        message
            .contains("found \"round-robbin\", expected one of weighted-round-robin, round-robin"),
        "{message}"
    );
    assert!(message.ends_with("did you mean round-robin?"), "{message}");
    let text = format!(
        "{HEAD}  rateLimit:\n    requestsPerSecond: 1\n    burstSize: 1\n    keyExtractor: body.user\n"
    );
    let message = parse_policies(text.as_bytes()).unwrap_err().to_string();
    assert!(
        message.contains("unknown key kind `body.user`"),
        "{message}"
    );
}

#[test]
fn all_errors_of_a_document_are_collected() {
    let text = format!(
        "{HEAD}  canary:\n    weight: 150\n    enabled: maybe\n    stepz: [1]\n    errorBudget: 2\n  rateLimit:\n    requestsPerSecond: -1\n    burstSize: 0\n"
    );
    let errors = parse_policies(text.as_bytes()).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.canary.weight",
            "spec.canary.enabled",
            "spec.canary.stepz",
            "spec.canary.errorBudget",
            "spec.rateLimit.requestsPerSecond",
            "spec.rateLimit.burstSize",
        ],
        "{errors}"
    );
}

#[test]
fn multi_document_input_gives_per_document_results() {
    let good = format!("{HEAD}  canary:\n    weight: 5\n");
    let input = format!("{good}---\n{HEAD}  canary:\n    weight: 500\n");
    let parsed = parse_documents(input.as_bytes());
    assert_eq!(parsed.documents.len(), 2);
    assert!(parsed.documents[0].result.is_ok());
    let second = &parsed.documents[1];
    assert_eq!(second.index, 1);
    assert_eq!(second.line, 10);
    let errors = second.result.as_ref().unwrap_err();
    assert_eq!(errors.first().line, Some(17));
    assert_eq!(errors.first().document, Some(1));
    assert!(
        errors
            .to_string()
            .starts_with("document 2 (payments/checkout), line 17:")
    );
    assert!(parse_policies(input.as_bytes()).is_err());
}
