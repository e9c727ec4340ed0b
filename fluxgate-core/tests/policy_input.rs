//! Whole-input problems and input forms: JSON, empty, garbage, non-UTF-8, syntax, depth, size.

use fluxgate_core::policy::{
    MAX_DEPTH, MAX_INPUT_BYTES, PolicyErrorKind as K, parse_documents, parse_policies,
};

const GOOD: &str = "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata:\n  name: a\n";

fn only_error(input: &[u8]) -> fluxgate_core::policy::PolicyError {
    let errors = parse_policies(input).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    errors.first().clone()
}

#[test]
fn json_object_and_array_parse() {
    let object = r#"{"apiVersion": "fluxgate.io/v1beta1", "kind": "TrafficPolicy",
        "metadata": {"name": "a", "namespace": "b"},
        "spec": {"rateLimit": [{"requestsPerSecond": 2.5, "burstSize": 3}]}}"#;
    let policies = parse_policies(object.as_bytes()).unwrap();
    assert_eq!(
        policies[0].spec.rate_limit.as_ref().unwrap().0[0].requests_per_second,
        2.5
    );
    let array = format!("[{object},\n {object}]");
    let parsed = parse_documents(array.as_bytes());
    assert_eq!(parsed.documents.len(), 2);
    assert!(parsed.is_ok());
    let bad = r#"{"apiVersion": "fluxgate.io/v1beta1", "kind": "TrafficPolicy",
  "metadata": {"name": "a"},
  "spec": {"canary": {"weight": 101}}}"#;
    let error = only_error(bad.as_bytes());
    assert_eq!(
        (error.path.as_str(), error.line),
        ("spec.canary.weight", Some(3))
    );
}

#[test]
fn empty_and_comment_only_inputs() {
    for input in [
        "",
        "   \n\n",
        "# nothing here\n# at all\n",
        "---\n",
        "---\n---\n",
    ] {
        let error = only_error(input.as_bytes());
        assert_eq!(error.kind, K::Empty, "{input:?}");
        assert_eq!(error.document, None);
    }
}

#[test]
fn non_utf8_is_refused_with_its_line() {
    let mut input = GOOD.as_bytes().to_vec();
    input.extend_from_slice(b"spec:\n  x: \xff\xfe\n");
    let error = only_error(&input);
    assert_eq!(
        (error.kind, error.line, error.column),
        (K::InvalidUtf8, Some(6), Some(6))
    );
}

#[test]
fn syntax_errors_have_lines() {
    let input = format!("{GOOD}spec:\n  canary: [1, 2\n");
    let error = only_error(input.as_bytes());
    assert_eq!(error.kind, K::Syntax);
    assert!(error.line.is_some_and(|l| l >= 6), "{error}");
    let error = only_error(b"kind: a\n  bad: indentation\n");
    assert_eq!((error.kind, error.line), (K::Syntax, Some(2)));
    let error = only_error(b"a: 1\na: 2\n");
    assert_eq!(error.kind, K::Syntax, "duplicate keys: {error}");
}

#[test]
fn binary_garbage_is_an_error() {
    let garbage: Vec<u8> = (0u8..=255).cycle().take(4096).map(|b| b & 0x7f).collect();
    assert!(parse_policies(&garbage).is_err());
    assert!(parse_policies(b"\0\x01\x02{[").is_err());
}

#[test]
fn scalar_and_list_documents_are_not_objects() {
    let error = only_error(b"just a string\n");
    assert_eq!((error.kind, error.line), (K::NotAnObject, Some(1)));
    let error = only_error(b"- a\n- b\n");
    assert_eq!(error.kind, K::NotAnObject);
    assert_eq!(error.found.as_deref(), Some("a list"));
    let input = format!("{GOOD}---\n42\n");
    let parsed = parse_documents(input.as_bytes());
    assert!(parsed.documents[0].result.is_ok());
    let error = parsed.documents[1]
        .result
        .as_ref()
        .unwrap_err()
        .first()
        .clone();
    assert_eq!(
        (error.kind, error.line, error.document),
        (K::NotAnObject, Some(6), Some(1))
    );
}

#[test]
fn deep_nesting_is_refused() {
    let depth = MAX_DEPTH + 5;
    let flow = format!("{GOOD}spec: {}{}\n", "[".repeat(depth), "]".repeat(depth));
    assert_eq!(only_error(flow.as_bytes()).kind, K::TooDeep);
    let huge = format!("a: {}\n", "[".repeat(200_000));
    assert_eq!(only_error(huge.as_bytes()).kind, K::TooDeep);
    let mut block = String::from("a:\n");
    for level in 1..1200 {
        block.push_str(&" ".repeat(level));
        block.push_str("b:\n");
    }
    assert_eq!(only_error(block.as_bytes()).kind, K::TooDeep);
    let dashes = format!("{}x\n", "- ".repeat(100_000));
    assert_eq!(only_error(dashes.as_bytes()).kind, K::TooDeep);
    let mut aliases = String::from("a0: &a0 [x]\n");
    for i in 1..5000 {
        aliases.push_str(&format!("a{i}: &a{i} [*a{}]\n", i - 1));
    }
    assert_eq!(only_error(aliases.as_bytes()).kind, K::TooDeep);
}

#[test]
fn too_large_input_is_refused() {
    let mut input = GOOD.as_bytes().to_vec();
    input.resize(MAX_INPUT_BYTES + 1, b' ');
    let error = only_error(&input);
    assert_eq!(error.kind, K::TooLarge);
    assert!(
        error.to_string().contains("at most 1048576 bytes"),
        "{error}"
    );
}

#[test]
fn one_bad_document_does_not_hide_the_others() {
    let input = format!("{GOOD}---\nkind: [\n---\n{GOOD}");
    let parsed = parse_documents(input.as_bytes());
    assert_eq!(parsed.documents.len(), 3);
    assert!(parsed.documents[0].result.is_ok());
    assert_eq!(
        parsed.documents[1]
            .result
            .as_ref()
            .unwrap_err()
            .first()
            .kind,
        K::Syntax
    );
    assert!(parsed.documents[2].result.is_ok());
}

#[test]
fn wrong_types_at_the_top() {
    let error = only_error(b"apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: 5\n");
    assert_eq!(
        (error.kind, error.path.as_str(), error.line),
        (K::InvalidType, "metadata", Some(3))
    );
    let error = only_error(
        b"apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {name: a}\nspec: nope\n",
    );
    assert_eq!((error.kind, error.path.as_str()), (K::InvalidType, "spec"));
}
