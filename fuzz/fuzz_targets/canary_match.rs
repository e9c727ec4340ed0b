//! Canary match evaluation: compiled match rules against arbitrary headers and URIs.
//!
//! Input: text lines. Rules come first, one a line, `KIND TYPE NAME VALUE` (KIND is `h`, `c` or
//! `q`; TYPE is `e`, `p` or `r` for exact, prefix, regex), up to a blank line; then the URI; then
//! `name: value` headers. Rules or lines that are not valid are skipped.
#![no_main]

use fluxgate_core::policy::{CanaryMatch, CanaryMatcher, MatchCondition, MatchType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut rules = Vec::new();
    for line in lines.by_ref() {
        if line.is_empty() || rules.len() >= 8 {
            break;
        }
        let mut parts = line.splitn(4, ' ');
        let (Some(kind), Some(kind_type), Some(name), value) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let match_type = match kind_type {
            "p" => MatchType::Prefix,
            // Keep regexes small: compiling a huge one is slow, not wrong.
            "r" if value.is_none_or(|v| v.len() <= 64) => MatchType::Regex,
            _ => MatchType::Exact,
        };
        let mut condition = MatchCondition::exact(name, value.unwrap_or(""));
        condition.match_type = match_type;
        let mut rule = CanaryMatch::default();
        match kind {
            "h" => rule.header = Some(condition),
            "c" => rule.cookie = Some(condition),
            _ => rule.query = Some(condition),
        }
        rules.push(rule);
    }
    let Ok(matcher) = CanaryMatcher::new(&rules) else {
        return;
    };
    let mut builder = http::Request::builder();
    if let Some(uri) = lines.next()
        && let Ok(uri) = uri.parse::<http::Uri>()
    {
        builder = builder.uri(uri);
    }
    let Ok(mut request) = builder.body(()) else {
        return;
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.trim().as_bytes()),
            http::HeaderValue::from_bytes(value.trim().as_bytes()),
        ) else {
            continue;
        };
        request.headers_mut().append(name, value);
    }
    let matched = matcher.matches(request.headers(), request.uri());
    let (parts, ()) = request.into_parts();
    assert_eq!(matched, matcher.matches_parts(&parts));
    if matcher.is_empty() {
        assert!(!matched, "an empty matcher matched");
    }
});
