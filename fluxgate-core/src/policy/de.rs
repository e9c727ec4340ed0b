//! A `serde::Deserializer` over [`Node`]s that reports errors with field paths and lines.
//!
//! Hand-written on purpose: deserializing through serde-saphyr straight into the policy types
//! would stop at the first error and phrase it in serde's words. Over the located tree, each
//! error names its node (so that [`super::parse`] can drop that field and find the next
//! error), its field path, the value found in a policy author's words, and for an unknown
//! field or variant the nearest allowed name ([`nearest`]).

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Unexpected,
    Visitor,
};

use super::node::{Node, Value, join};
use super::{PolicyError, PolicyErrorKind};

/// A deserialization error, located at the innermost node that saw it.
#[derive(Debug)]
pub(crate) struct DeError {
    pub(crate) error: PolicyError,
    /// The node the error is about, once located.
    pub(crate) node: Option<u32>,
    /// The field named by a missing-field error.
    missing: Option<&'static str>,
}

impl DeError {
    fn new(error: PolicyError) -> Self {
        Self {
            error,
            node: None,
            missing: None,
        }
    }

    fn locate(mut self, path: &str, node: &Node) -> Self {
        if self.node.is_none() {
            self.node = Some(node.id);
            self.error.path = match self.missing {
                Some(field) => join(path, field),
                None => path.to_owned(),
            };
            self.error = self.error.clone().at(node.line, node.col);
        }
        self
    }

    fn value(kind: PolicyErrorKind, unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::new(PolicyError::new(kind, "").found_expected(found(unexp), friendly(exp)))
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::new(PolicyError::new(PolicyErrorKind::InvalidValue, "").with_hint(msg.to_string()))
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::value(PolicyErrorKind::InvalidType, unexp, exp)
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::value(PolicyErrorKind::InvalidValue, unexp, exp)
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut error = PolicyError::new(PolicyErrorKind::InvalidValue, "").found_expected(
            format!("{variant:?}"),
            format!("one of {}", expected.join(", ")),
        );
        error.suggestion = nearest(variant, expected);
        Self::new(error)
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut error = PolicyError::new(PolicyErrorKind::UnknownField, "");
        error.suggestion = nearest(field, expected);
        Self::new(error)
    }

    fn missing_field(field: &'static str) -> Self {
        let mut error = Self::new(PolicyError::new(PolicyErrorKind::MissingField, ""));
        error.missing = Some(field);
        error
    }

    fn duplicate_field(_: &'static str) -> Self {
        Self::new(PolicyError::new(PolicyErrorKind::DuplicateField, ""))
    }
}

/// How a found value is shown: numbers and booleans bare, strings quoted.
fn found(unexp: Unexpected<'_>) -> String {
    match unexp {
        Unexpected::Bool(b) => b.to_string(),
        Unexpected::Unsigned(n) => n.to_string(),
        Unexpected::Signed(n) => n.to_string(),
        Unexpected::Float(x) => x.to_string(),
        Unexpected::Str(s) => format!("{s:?}"),
        Unexpected::Unit => "null".to_owned(),
        Unexpected::Seq => "a list".to_owned(),
        Unexpected::Map => "a mapping".to_owned(),
        other => other.to_string(),
    }
}

/// serde's names for what a visitor expects, in the words of a policy author.
fn friendly(exp: &dyn de::Expected) -> String {
    let exp = exp.to_string();
    match exp.as_str() {
        "u8" => "an integer from 0 to 255".to_owned(),
        "u16" => "an integer from 0 to 65535".to_owned(),
        "u32" | "u64" => "a non-negative integer".to_owned(),
        "i64" => "an integer".to_owned(),
        "f64" => "a number".to_owned(),
        "a map" => "a mapping".to_owned(),
        "a sequence" => "a list".to_owned(),
        _ if exp.starts_with("struct ") => "a mapping".to_owned(),
        _ => exp,
    }
}

/// The allowed name closest to `name`, when it is close enough to be a likely typo.
pub(crate) fn nearest(name: &str, candidates: &[&str]) -> Option<String> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (levenshtein(name, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

/// Edit distance between `a` and `b` (insertions, deletions, substitutions), case-insensitive.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().flat_map(char::to_lowercase).collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().flat_map(char::to_lowercase).enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Deserializes one node; `path` is its field path.
pub(crate) struct NodeDe<'a> {
    pub(crate) node: &'a Node,
    pub(crate) path: String,
}

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let path = self.path.as_str();
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(x) => visitor.visit_f64(*x),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqAcc {
                items: items.iter().enumerate(),
                path,
            }),
            Value::Map(entries) => visitor.visit_map(MapAcc {
                entries: entries.iter(),
                path,
                value: None,
            }),
        };
        result.map_err(|e| e.locate(path, self.node))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Map(_) => self.deserialize_any(visitor),
            other => Err(
                <DeError as de::Error>::invalid_type(unexpected(other), &"a mapping")
                    .locate(&self.path, self.node),
            ),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Str(s) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: DeError| e.locate(&self.path, self.node)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Int(i) => Unexpected::Signed(*i),
        Value::Float(x) => Unexpected::Float(*x),
        Value::Str(s) => Unexpected::Str(s),
        Value::Seq(_) => Unexpected::Seq,
        Value::Map(_) => Unexpected::Map,
    }
}

struct SeqAcc<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    path: &'a str,
}

impl<'de> SeqAccess<'de> for SeqAcc<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some((i, node)) => seed
                .deserialize(NodeDe {
                    node,
                    path: format!("{}[{i}]", self.path),
                })
                .map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAcc<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    path: &'a str,
    value: Option<(&'a Node, String)>,
}

impl<'de> MapAccess<'de> for MapAcc<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let path = join(self.path, &key.key_text());
        let parsed = seed.deserialize(NodeDe {
            node: key,
            path: path.clone(),
        })?;
        self.value = Some((value, path));
        Ok(Some(parsed))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.value.take() {
            Some((node, path)) => seed.deserialize(NodeDe { node, path }),
            None => Err(de::Error::custom("a value without its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}
