//! Parsing: bytes → documents → [`TrafficPolicy`] values or located [`PolicyErrors`].
//!
//! YAML (and JSON, a subset) is read by serde-saphyr ([`super::node`]), under a budget of
//! depth, aliases and size. What stays here is what the crate does not give:
//! - the split at `---` lines, so that a syntax error in one document does not hide the others
//!   (serde-saphyr's multi-document reading stops at the first error of the stream);
//! - the collection of every error of a document: serde stops at the first error, so the
//!   document's tree is deserialized again without each failing field ([`MAX_PASSES`] at
//!   most; an in-memory pass, not a re-parse), and the value checks run on the result.

use serde::Deserialize;

use super::de::NodeDe;
use super::node::{self, LineMap, Node, Value};
use super::validate::Checker;
use super::{MAX_INPUT_BYTES, PolicyError, PolicyErrorKind, PolicyErrors, TrafficPolicy};

/// Deserialization passes per document: each pass that fails records its error and drops the
/// offending field, so that the next pass can find the following error.
const MAX_PASSES: usize = 64;

/// The result of parsing an input: one [`ParsedDocument`] per document, in order.
///
/// A problem with the input as a whole (too large, not UTF-8, empty, malformed before any
/// document) is reported as a single entry whose errors have no document index.
///
/// ```
/// use fluxgate_core::policy::parse_documents;
///
/// let input = b"apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {name: a}\n---\nkind: Nope\n";
/// let parsed = parse_documents(input);
/// assert_eq!(parsed.documents.len(), 2);
/// assert!(parsed.documents[0].result.is_ok());
/// assert_eq!(parsed.documents[1].index, 1);
/// assert!(!parsed.is_ok());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ParsedDocuments {
    /// Every document of the input (never empty).
    pub documents: Vec<ParsedDocument>,
}

impl ParsedDocuments {
    /// Whether every document is a valid policy.
    ///
    /// ```
    /// # use fluxgate_core::policy::parse_documents;
    /// assert!(!parse_documents(b"").is_ok());
    /// ```
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.documents.iter().all(|d| d.result.is_ok())
    }

    /// The policies, or every error of every invalid document.
    ///
    /// ```
    /// # use fluxgate_core::policy::parse_documents;
    /// let policies = parse_documents(b"{apiVersion: fluxgate.io/v1beta1, kind: TrafficPolicy, metadata: {name: a}}")
    ///     .into_result()
    ///     .unwrap();
    /// assert_eq!(policies[0].metadata.name, "a");
    /// ```
    pub fn into_result(self) -> Result<Vec<TrafficPolicy>, PolicyErrors> {
        let mut policies = Vec::new();
        let mut errors = Vec::new();
        for document in self.documents {
            match document.result {
                Ok(policy) => policies.push(policy),
                Err(e) => errors.extend(e.into_vec()),
            }
        }
        PolicyErrors::from_vec(errors).map_or(Ok(policies), Err)
    }
}

/// One document of an input and what became of it.
///
/// ```
/// use fluxgate_core::policy::parse_documents;
///
/// let parsed = parse_documents(b"apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {name: a, namespace: b}\n");
/// let doc = &parsed.documents[0];
/// assert_eq!(doc.id.as_deref(), Some("b/a"));
/// assert_eq!(doc.line, 1);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ParsedDocument {
    /// Position of the document in the input, from 0.
    pub index: usize,
    /// `namespace/name` (or `name`), when the document names itself.
    pub id: Option<String>,
    /// The line where the document starts.
    pub line: usize,
    /// The policy, or all of the document's errors.
    pub result: Result<TrafficPolicy, PolicyErrors>,
}

/// Parses every document of a YAML (`---`-separated) or JSON (object or array) input.
///
/// Never panics. Inputs above [`MAX_INPUT_BYTES`] are refused. See [`ParsedDocuments`].
///
/// ```
/// use fluxgate_core::policy::parse_documents;
///
/// let parsed = parse_documents(br#"[{"apiVersion": "fluxgate.io/v1beta1", "kind": "TrafficPolicy", "metadata": {"name": "a"}}]"#);
/// assert!(parsed.is_ok());
/// ```
#[must_use]
pub fn parse_documents(input: &[u8]) -> ParsedDocuments {
    let whole = |error: PolicyError| ParsedDocuments {
        documents: vec![ParsedDocument {
            index: 0,
            id: None,
            line: 1,
            result: Err(error.into()),
        }],
    };
    if input.len() > MAX_INPUT_BYTES {
        return whole(
            PolicyError::new(PolicyErrorKind::TooLarge, "").found_expected(
                format!("{} bytes", input.len()),
                format!("at most {MAX_INPUT_BYTES} bytes"),
            ),
        );
    }
    let text = match std::str::from_utf8(input) {
        Ok(text) => text,
        Err(e) => {
            let before = &input[..e.valid_up_to()];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            return whole(PolicyError::new(PolicyErrorKind::InvalidUtf8, "").at(line, column));
        }
    };
    let mut documents = Vec::new();
    for (first_line, chunk) in chunks(text.strip_prefix('\u{feff}').unwrap_or(text)) {
        match node::load(chunk, first_line) {
            Ok(nodes) => {
                let json_array = chunk.trim_start().starts_with('[');
                for root in nodes {
                    match root.value {
                        Value::Null => {}
                        Value::Seq(items) if json_array => {
                            for item in items {
                                documents.push(document(documents.len(), item));
                            }
                        }
                        _ => documents.push(document(documents.len(), root)),
                    }
                }
            }
            Err(mut error) => {
                error.document = Some(documents.len());
                let error = *error;
                documents.push(ParsedDocument {
                    index: documents.len(),
                    id: None,
                    line: first_line,
                    result: Err(error.into()),
                });
            }
        }
    }
    if documents.is_empty() {
        return whole(PolicyError::new(PolicyErrorKind::Empty, "").at(1, 1));
    }
    ParsedDocuments { documents }
}

/// Parses every document of an input; fails with every error of every invalid document.
///
/// ```
/// use fluxgate_core::policy::parse_policies;
///
/// let yaml = b"apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata:\n  name: edge\n";
/// let policies = parse_policies(yaml).unwrap();
/// assert_eq!(policies[0].metadata.name, "edge");
/// assert!(parse_policies(b"kind: [").is_err());
/// ```
pub fn parse_policies(input: &[u8]) -> Result<Vec<TrafficPolicy>, PolicyErrors> {
    parse_documents(input).into_result()
}

/// Splits YAML text at `---` lines; yields (first line number, text) of each part.
fn chunks(text: &str) -> Vec<(usize, &str)> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let marker = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']));
        if marker && offset > start {
            parts.push((start_line, &text[start..offset]));
            start = offset;
            start_line = n + 1;
        }
        offset += line.len();
    }
    parts.push((start_line, &text[start..]));
    parts
}

/// Turns one document's tree into a policy or its errors.
fn document(index: usize, mut root: Node) -> ParsedDocument {
    let id = root.get("metadata").and_then(|meta| {
        let name = meta.get_str("name")?;
        Some(match meta.get_str("namespace") {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_owned(),
        })
    });
    let line = root.line;
    let mut errors = Vec::new();
    let policy = if matches!(root.value, Value::Map(_)) {
        deserialize(&mut root, &mut errors)
    } else {
        let found = match root.value {
            Value::Seq(_) => "a list",
            _ => "a scalar",
        };
        errors.push(
            PolicyError::new(PolicyErrorKind::NotAnObject, "")
                .found_expected(found, "a TrafficPolicy mapping")
                .at(root.line, root.col),
        );
        None
    };
    if let Some(policy) = &policy {
        let mut lines = LineMap::new();
        root.record_lines("", &mut lines);
        let mut checker = Checker::new(Some(&lines));
        checker.policy(policy);
        errors.extend(checker.into_errors());
    }
    errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
    for error in &mut errors {
        error.document = Some(index);
        error.id.clone_from(&id);
    }
    let result = match PolicyErrors::from_vec(errors) {
        Some(errors) => Err(errors),
        None => policy.ok_or_else(|| PolicyError::new(PolicyErrorKind::InvalidValue, "").into()),
    };
    ParsedDocument {
        index,
        id,
        line,
        result,
    }
}

/// Deserializes `root` in passes, dropping each field that fails so the next error shows.
fn deserialize(root: &mut Node, errors: &mut Vec<PolicyError>) -> Option<TrafficPolicy> {
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..MAX_PASSES {
        let failure = match TrafficPolicy::deserialize(NodeDe {
            node: root,
            path: String::new(),
        }) {
            Ok(policy) => return Some(policy),
            Err(e) => e,
        };
        let path = failure.error.path.clone();
        if failure.error.kind == PolicyErrorKind::MissingField && removed.contains(&path) {
            return None;
        }
        let dropped = failure.error.kind != PolicyErrorKind::MissingField
            && failure.node.is_some_and(|id| root.remove_entry(id));
        errors.push(failure.error);
        if !dropped {
            return None;
        }
        removed.push(path);
    }
    None
}
