//! Backend-reported utilisation: the ORCA `endpoint-load-metrics` response header.
//!
//! Two of its encodings are read: `TEXT cpu_utilization=0.3, mem_utilization=0.8` and
//! `JSON {"cpu_utilization": 0.3, ...}`. The utilisation kept is the largest of
//! `application_utilization`, `cpu_utilization` and `mem_utilization`. The binary (`BIN`)
//! encoding is ignored.

use std::sync::atomic::Ordering;

use http::{HeaderMap, HeaderName};

use crate::endpoint::EndpointState;

/// The ORCA per-request load report header.
/// (A `HeaderName` made once: looking a map up by `&str` parses the name on every response.)
pub(crate) const HEADER: HeaderName = HeaderName::from_static("endpoint-load-metrics");

/// Records the utilisation the response reports, if it reports one.
pub(crate) fn record<K>(state: &EndpointState<K>, headers: &HeaderMap) {
    let Some(value) = headers.get(&HEADER).and_then(|v| v.to_str().ok()) else {
        return;
    };
    if let Some(util) = parse(value) {
        let millis = (util.clamp(0.0, 4.0) * 1000.0).round() as u32;
        state.utilization.store(millis, Ordering::Relaxed);
    }
}

/// The largest utilisation in a header value, if any.
pub(crate) fn parse(value: &str) -> Option<f64> {
    let value = value.trim();
    let body = value
        .strip_prefix("TEXT")
        .or_else(|| value.strip_prefix("JSON"))?;
    let mut best: Option<f64> = None;
    for pair in body.split(',') {
        let Some((name, number)) = pair.split_once([':', '=']) else {
            continue;
        };
        let name = name
            .trim()
            .trim_matches(|c| c == '{' || c == '"' || c == ' ');
        if !matches!(
            name,
            "cpu_utilization" | "mem_utilization" | "application_utilization"
        ) {
            continue;
        }
        let number = number.trim().trim_end_matches('}').trim();
        if let Ok(x) = number.parse::<f64>()
            && x.is_finite()
            && x >= 0.0
        {
            best = Some(best.map_or(x, |b: f64| b.max(x)));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_text_and_json_encodings() {
        assert_eq!(
            parse("TEXT cpu_utilization=0.3, mem_utilization=0.8"),
            Some(0.8)
        );
        assert_eq!(
            parse("TEXT application_utilization=0.5, cpu_utilization=0.3128, rps_fractional=10"),
            Some(0.5)
        );
        assert_eq!(
            parse(r#"JSON {"cpu_utilization": 0.7, "rps_fractional": 99}"#),
            Some(0.7)
        );
        assert_eq!(parse("TEXT rps_fractional=3"), None);
        assert_eq!(parse("BIN abcd"), None);
        assert_eq!(parse("TEXT cpu_utilization=nan"), None);
    }
}
