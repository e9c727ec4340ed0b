//! A small YAML tree with a line and column on every node, read by serde-saphyr.
//!
//! serde-saphyr parses, resolves scalars and aliases, refuses duplicate keys, enforces the
//! depth and alias budget and locates each value ([`Spanned`]). The tree exists because a
//! policy document is checked as a whole: [`super::de`] reads it once per error found, dropping
//! the failing field, so that every error of a document is reported, each with its field path
//! — serde, and so serde-saphyr deserializing straight into the policy types, stops at the
//! first error.

use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::granit_parser::ErrorKind;
use serde_saphyr::{Budget, DuplicateKeyPolicy, Error, ExternalMessageSource, Options, Spanned};

use super::{MAX_DEPTH, PolicyError, PolicyErrorKind};

/// A value with where it starts in the input (line and column from 1) and an id unique in its tree.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) id: u32,
    pub(crate) line: usize,
    pub(crate) col: usize,
    pub(crate) value: Value,
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// Field path → (line, column) of every key and list item of a document.
pub(crate) type LineMap = HashMap<String, (usize, usize)>;

/// Loads the YAML documents of `text`, whose first line is line `first_line` of the input.
pub(crate) fn load(text: &str, first_line: usize) -> Result<Vec<Node>, Box<PolicyError>> {
    let mut budget = Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.flow_nesting_limit = MAX_DEPTH;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    options.strict_booleans = true;
    options.underscored_numbers_as_strings = true;
    let mut docs: Vec<Node> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| Box::new(located(&e, first_line)))?;
    let mut next_id = 0;
    for doc in &mut docs {
        doc.number(&mut next_id, first_line - 1);
    }
    Ok(docs)
}

/// A serde-saphyr error as a policy error: budget breaches of nesting and aliases are
/// [`TooDeep`](PolicyErrorKind::TooDeep), other breaches [`TooLarge`](PolicyErrorKind::TooLarge),
/// the rest [`Syntax`](PolicyErrorKind::Syntax).
fn located(e: &Error, first_line: usize) -> PolicyError {
    let (line, col) = e.location().map_or((first_line, 1), |at| {
        let line = usize::try_from(at.line()).unwrap_or(usize::MAX).max(1);
        let col = usize::try_from(at.column()).unwrap_or(usize::MAX).max(1);
        (line.saturating_add(first_line - 1), col)
    });
    let mut inner = e;
    while let Error::AliasError { error, .. } | Error::WithSnippet { error, .. } = inner {
        inner = error;
    }
    let kind = match inner {
        Error::Budget { breach, .. } => match breach {
            BudgetBreach::Depth { .. }
            | BudgetBreach::Aliases { .. }
            | BudgetBreach::Anchors { .. }
            | BudgetBreach::AliasAnchorRatio { .. } => PolicyErrorKind::TooDeep,
            _ => PolicyErrorKind::TooLarge,
        },
        Error::AliasReplayLimitExceeded { .. }
        | Error::AliasExpansionLimitExceeded { .. }
        | Error::AliasReplayStackDepthExceeded { .. } => PolicyErrorKind::TooDeep,
        // The scanner's own nesting cap (flow collections) may trip before the budget's.
        Error::ExternalMessage { source, .. }
            if matches!(&**source, ExternalMessageSource::Parser(scan)
                if matches!(scan.kind(), ErrorKind::RecursionLimitExceeded)) =>
        {
            PolicyErrorKind::TooDeep
        }
        _ => PolicyErrorKind::Syntax,
    };
    let error = PolicyError::new(kind, "");
    let error = if kind == PolicyErrorKind::TooDeep {
        error.found_expected("deeper nesting", format!("at most {MAX_DEPTH} levels"))
    } else {
        // The message without its location, which is the error's own (and counts from the
        // input's first line, not the document's).
        let message = match inner {
            Error::DuplicateMappingKey { key: Some(key), .. } => format!("duplicate key {key:?}"),
            Error::DuplicateMappingKey { key: None, .. } => "duplicate key".to_owned(),
            other => other.to_string(),
        };
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m);
        error.with_hint(message)
    };
    error.at(line, col)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        let at = spanned.referenced;
        Ok(Self {
            id: 0,
            line: usize::try_from(at.line()).unwrap_or(usize::MAX).max(1),
            col: usize::try_from(at.column()).unwrap_or(usize::MAX).max(1),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }

    #[allow(clippy::cast_precision_loss)] // beyond i64, a number is as close as it gets
    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(i64::try_from(u).map_or(Value::Float(u as f64), Value::Int))
    }

    fn visit_f64<E>(self, x: f64) -> Result<Value, E> {
        Ok(Value::Float(x))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Str(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::Str(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<Node, Node>()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }
}

impl Node {
    /// Gives every node of the tree its id and moves its line down by `offset`.
    fn number(&mut self, next_id: &mut u32, offset: usize) {
        *next_id += 1;
        self.id = *next_id;
        self.line = self.line.saturating_add(offset);
        match &mut self.value {
            Value::Seq(items) => items.iter_mut().for_each(|n| n.number(next_id, offset)),
            Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                k.number(next_id, offset);
                v.number(next_id, offset);
            }),
            _ => {}
        }
    }

    /// The text of a mapping key as it appears in a field path.
    pub(crate) fn key_text(&self) -> String {
        match &self.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => "null".to_owned(),
            Value::Seq(_) | Value::Map(_) => "?".to_owned(),
        }
    }

    /// The value at `key` of a mapping node.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string at `key` of a mapping node.
    pub(crate) fn get_str(&self, key: &str) -> Option<&str> {
        match &self.get(key)?.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Removes the mapping entry whose key or value has `id`; false when none is found.
    pub(crate) fn remove_entry(&mut self, id: u32) -> bool {
        match &mut self.value {
            Value::Map(entries) => {
                let before = entries.len();
                entries.retain(|(k, v)| k.id != id && v.id != id);
                before != entries.len() || entries.iter_mut().any(|(_, v)| v.remove_entry(id))
            }
            Value::Seq(items) => items.iter_mut().any(|item| item.remove_entry(id)),
            _ => false,
        }
    }

    /// Adds the location of every key and list item below this node to `lines`.
    pub(crate) fn record_lines(&self, path: &str, lines: &mut LineMap) {
        match &self.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    let child = join(path, &k.key_text());
                    lines.insert(child.clone(), (k.line, k.col));
                    v.record_lines(&child, lines);
                }
            }
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let child = format!("{path}[{i}]");
                    lines.insert(child.clone(), (item.line, item.col));
                    item.record_lines(&child, lines);
                }
            }
            _ => {}
        }
    }
}

/// `path.key`, or `key` at the top.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}
