//! A small YAML tree with a line and column on every node, built from saphyr's marked tree.

use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

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

/// Nesting that saphyr may build before we can check it: its tree is dropped, hashed and cloned
/// recursively, so the pre-scan refuses input whose estimated nesting passes this.
const PRESCAN_LIMIT: usize = 1000;

/// Loads the YAML documents of `text`, whose first line is line `first_line` of the input.
pub(crate) fn load(text: &str, first_line: usize) -> Result<Vec<Node>, Box<PolicyError>> {
    if let Some(line) = prescan_too_deep(text) {
        return Err(Box::new(too_deep(first_line + line - 1, 1)));
    }
    let docs = MarkedYaml::load_from_str(text).map_err(|e| {
        let mark = e.marker();
        Box::new(
            PolicyError::new(PolicyErrorKind::Syntax, "")
                .with_hint(e.info())
                .at(mark.line() + first_line - 1, mark.col() + 1),
        )
    })?;
    let mut builder = Builder {
        next_id: 0,
        offset: first_line - 1,
    };
    docs.iter().map(|doc| builder.convert(doc, 0)).collect()
}

fn too_deep(line: usize, col: usize) -> PolicyError {
    PolicyError::new(PolicyErrorKind::TooDeep, "")
        .found_expected("deeper nesting", format!("at most {MAX_DEPTH} levels"))
        .at(line, col)
}

struct Builder {
    next_id: u32,
    offset: usize,
}

impl Builder {
    fn convert(&mut self, yaml: &MarkedYaml<'_>, depth: usize) -> Result<Node, Box<PolicyError>> {
        let line = yaml.span.start.line() + self.offset;
        let col = yaml.span.start.col() + 1;
        if depth > MAX_DEPTH {
            return Err(Box::new(too_deep(line, col)));
        }
        let value = match &yaml.data {
            YamlData::Value(scalar) => match scalar {
                Scalar::Null => Value::Null,
                Scalar::Boolean(b) => Value::Bool(*b),
                Scalar::Integer(i) => Value::Int(*i),
                Scalar::FloatingPoint(f) => Value::Float(f.into_inner()),
                Scalar::String(s) => Value::Str(s.to_string()),
            },
            YamlData::Representation(s, _, _) => Value::Str(s.to_string()),
            YamlData::Sequence(items) => Value::Seq(
                items
                    .iter()
                    .map(|item| self.convert(item, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            YamlData::Mapping(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| Ok((self.convert(k, depth + 1)?, self.convert(v, depth + 1)?)))
                    .collect::<Result<_, Box<PolicyError>>>()?,
            ),
            YamlData::Tagged(_, inner) => return self.convert(inner, depth),
            _ => {
                return Err(Box::new(
                    PolicyError::new(PolicyErrorKind::Syntax, "")
                        .with_hint("a value that cannot be read")
                        .at(line, col),
                ));
            }
        };
        self.next_id += 1;
        Ok(Node {
            id: self.next_id,
            line,
            col,
            value,
        })
    }
}

impl Node {
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

/// An upper bound of the nesting of `text`, from indentation, `- `/`? ` indicators, brackets and
/// aliases; returns the line (from 1) where it passes [`PRESCAN_LIMIT`].
fn prescan_too_deep(text: &str) -> Option<usize> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut aliases = 0usize;
    let mut quote: Option<char> = None;
    for (n, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        let mut indicators = 0;
        if quote.is_none() && flow == 0 && !rest.is_empty() && !rest.starts_with('#') {
            while indents.last().is_some_and(|&top| top > indent) {
                indents.pop();
            }
            if indents.last().is_none_or(|&top| top < indent) {
                indents.push(indent);
            }
            let mut tail = rest;
            while let Some(after) = tail.strip_prefix("- ").or_else(|| tail.strip_prefix("? ")) {
                indicators += 1;
                tail = after.trim_start();
            }
        }
        let mut prev = ' ';
        let mut escaped = false;
        let mut peak = flow;
        for c in rest.chars() {
            match quote {
                Some('"') if escaped => escaped = false,
                Some('"') if c == '\\' => escaped = true,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '#' && prev.is_whitespace() => break,
                None if (c == '"' || c == '\'') && " [{,:".contains(prev) => quote = Some(c),
                None if c == '[' || c == '{' => {
                    flow += 1;
                    peak = peak.max(flow);
                }
                None if c == ']' || c == '}' => flow = flow.saturating_sub(1),
                None if c == '*' && " [{,:-".contains(prev) => aliases += 1,
                None => {}
            }
            prev = c;
        }
        let estimate = (indents.len() * 2 + indicators + peak + 1).saturating_mul(aliases + 1);
        if estimate > PRESCAN_LIMIT {
            return Some(n + 1);
        }
    }
    None
}
