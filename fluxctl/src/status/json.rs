//! Tolerant reading of the status document: fields under several names, values as text.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The first of `keys` that `value` has with a non-null value.
pub(super) fn field<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter()
        .find_map(|key| value.get(key).filter(|v| !v.is_null()))
}

/// The named items of a section: an object's entries, or an array's items named by `name_keys`
/// (`#N` when they have none).
pub(super) fn named<'a>(section: &'a Value, name_keys: &[&str]) -> Vec<(String, &'a Value)> {
    match section {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let name = field(item, name_keys).map_or_else(|| format!("#{}", i + 1), plain);
                (name, item)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A value as text: strings unquoted, numbers trimmed, `-` for null.
pub(crate) fn plain(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n
            .as_f64()
            .filter(|_| !n.is_u64() && !n.is_i64())
            .map_or_else(|| n.to_string(), number),
        other => other.to_string(),
    }
}

/// The first of `keys` as text, `-` when absent.
pub(super) fn text(value: &Value, keys: &[&str]) -> String {
    field(value, keys).map_or_else(|| "-".to_owned(), plain)
}

/// A float with at most two decimals and no trailing zeros.
pub(super) fn number(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A share in [0, 1] as a percentage (`0.5%`); other JSON as text.
pub(super) fn percent(value: Option<&Value>) -> String {
    match value {
        Some(v) => v
            .as_f64()
            .map_or_else(|| plain(v), |x| format!("{:.1}%", x * 100.0)),
        None => "-".to_owned(),
    }
}

/// Milliseconds as a duration (`850µs`, `12.4ms`, `1.50s`); other JSON as text.
pub(super) fn millis(value: Option<&Value>) -> String {
    let Some(v) = value else {
        return "-".to_owned();
    };
    match v.as_f64() {
        Some(ms) if ms < 1.0 => format!("{}µs", number(ms * 1e3)),
        Some(ms) if ms < 1e3 => format!("{}ms", number(ms)),
        Some(ms) => format!("{}s", number(ms / 1e3)),
        None => plain(v),
    }
}

/// How long ago a Unix time (seconds) was, for people (`42s ago`, `3m ago`, `5h ago`).
pub(super) fn ago(unix_seconds: f64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let seconds = (now - unix_seconds).max(0.0);
    match seconds {
        s if s < 120.0 => format!("{s:.0}s ago"),
        s if s < 7200.0 => format!("{:.0}m ago", s / 60.0),
        s => format!("{:.0}h ago", s / 3600.0),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_read_as_text() {
        let v = json!({"a": null, "b": 1.5, "c": 3, "p": 0.0123, "ms": 512.25});
        assert_eq!(text(&v, &["a", "b"]), "1.5");
        assert_eq!(text(&v, &["c"]), "3");
        assert_eq!(text(&v, &["zz"]), "-");
        assert_eq!(percent(v.get("p")), "1.2%");
        assert_eq!(millis(v.get("ms")), "512.25ms");
        assert_eq!(millis(Some(&json!(0.5))), "500µs");
        assert_eq!(millis(Some(&json!(1500))), "1.5s");
        let items = json!([{"name": "x"}, {}]);
        let names: Vec<String> = named(&items, &["name"]).into_iter().map(|p| p.0).collect();
        assert_eq!(names, ["x", "#2"]);
    }
}
