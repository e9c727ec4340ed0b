//! A small YAML writer for JSON values: what `get -o yaml` and `diff` print.

use serde_json::Value;

/// `value` as block-style YAML, ending with a newline.
pub(crate) fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    for line in lines(value) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The lines of `value` at indentation 0.
pub(crate) fn lines(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut out = Vec::new();
            for (key, child) in map {
                let key = scalar_string(key);
                if is_block(child) {
                    out.push(format!("{key}:"));
                    let indent = if child.is_array() { "" } else { "  " };
                    out.extend(lines(child).into_iter().map(|l| format!("{indent}{l}")));
                } else {
                    out.push(format!("{key}: {}", inline(child)));
                }
            }
            out
        }
        Value::Array(items) if !items.is_empty() => {
            let mut out = Vec::new();
            for item in items {
                if is_block(item) {
                    for (i, line) in lines(item).into_iter().enumerate() {
                        let prefix = if i == 0 { "- " } else { "  " };
                        out.push(format!("{prefix}{line}"));
                    }
                } else {
                    out.push(format!("- {}", inline(item)));
                }
            }
            out
        }
        other => vec![inline(other)],
    }
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => false,
    }
}

fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar_string(s),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
    }
}

/// A string as a plain scalar when that reads back as the same string, else double-quoted.
fn scalar_string(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        s.to_owned()
    } else {
        Value::String(s.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_block_yaml() {
        let value = serde_json::json!({
            "kind": "TrafficPolicy",
            "spec": {"list": [{"a": 1, "b": "30s"}, "x"], "empty": {}, "on": "yes"}
        });
        assert_eq!(
            to_yaml(&value),
            "kind: TrafficPolicy\nspec:\n  empty: {}\n  list:\n  - a: 1\n    b: \"30s\"\n  - x\n  \"on\": \"yes\"\n"
        );
    }
}
