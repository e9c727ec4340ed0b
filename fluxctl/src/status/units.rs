//! Numbers of the status document as people read them: percentages, durations, times ago.

use std::fmt::Display;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// A value, or `-` when absent.
pub(super) fn or_dash<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// A float with at most two decimals and no trailing zeros.
pub(super) fn number(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A share in [0, 1] as a percentage (`0.5%`), `-` when absent.
pub(super) fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "-".to_owned(), |x| format!("{:.1}%", x * 100.0))
}

/// Milliseconds as a duration (`850µs`, `12.4ms`, `1.5s`), `-` when absent.
pub(super) fn millis(ms: Option<f64>) -> String {
    match ms {
        None => "-".to_owned(),
        Some(ms) if ms < 1.0 => format!("{}µs", number(ms * 1e3)),
        Some(ms) if ms < 1e3 => format!("{}ms", number(ms)),
        Some(ms) => format!("{}s", number(ms / 1e3)),
    }
}

/// How long ago a Unix time (seconds) was, for people (`42s ago`, `3m ago`, `5h ago`).
pub(super) fn ago(unix_seconds: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match now.saturating_sub(unix_seconds) {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s => format!("{}h ago", s / 3600),
    }
}

/// A JSON value of a section this version does not know, on one line: an object's fields as
/// `key=value`, strings unquoted.
pub(super) fn loose(value: &Value) -> String {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", scalar(v)))
                .collect();
            fields.join(", ")
        }
        other => scalar(other),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_read_as_text() {
        assert_eq!(or_dash(None::<u8>), "-");
        assert_eq!(or_dash(Some(3)), "3");
        assert_eq!(percent(Some(0.0123)), "1.2%");
        assert_eq!(millis(Some(512.25)), "512.25ms");
        assert_eq!(millis(Some(0.5)), "500µs");
        assert_eq!(millis(Some(1500.0)), "1.5s");
        assert_eq!(
            loose(&json!({"joined": true, "url": "redis://x"})),
            "joined=true, url=redis://x"
        );
        assert_eq!(loose(&json!([1, 2])), "[1,2]");
    }
}
