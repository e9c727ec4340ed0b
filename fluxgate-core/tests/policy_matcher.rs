//! Canary match semantics: exact/prefix/regex, AND within an entry, OR between entries.

use fluxgate_core::policy::{CanaryMatch, CanaryMatcher, MatchCondition, MatchType};
use http::Request;

fn cond(name: &str, value: &str, kind: MatchType) -> Option<MatchCondition> {
    let mut c = MatchCondition::exact(name, value);
    c.match_type = kind;
    Some(c)
}

fn matcher(entries: &[CanaryMatch]) -> CanaryMatcher {
    CanaryMatcher::new(entries).unwrap()
}

fn hit(m: &CanaryMatcher, uri: &str, headers: &[(&str, &str)]) -> bool {
    let mut builder = Request::get(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let (parts, ()) = builder.body(()).unwrap().into_parts();
    m.matches_parts(&parts)
}

#[test]
fn header_exact_prefix_regex() {
    let exact = matcher(&[CanaryMatch {
        header: cond("x-canary", "true", MatchType::Exact),
        ..Default::default()
    }]);
    assert!(hit(&exact, "/", &[("x-canary", "true")]));
    assert!(!hit(&exact, "/", &[("x-canary", "true2")]));
    assert!(!hit(&exact, "/", &[]));
    assert!(
        hit(&exact, "/", &[("x-canary", "no"), ("x-canary", "true")]),
        "any value of a repeated header"
    );
    let prefix = matcher(&[CanaryMatch {
        header: cond("x-version", "v2", MatchType::Prefix),
        ..Default::default()
    }]);
    assert!(hit(&prefix, "/", &[("x-version", "v2.1")]));
    assert!(!hit(&prefix, "/", &[("x-version", "v1")]));
    let regex = matcher(&[CanaryMatch {
        header: cond("user-agent", "^Mozilla/.*Mobile", MatchType::Regex),
        ..Default::default()
    }]);
    assert!(hit(
        &regex,
        "/",
        &[("user-agent", "Mozilla/5.0 (iPhone) Mobile Safari")]
    ));
    assert!(!hit(&regex, "/", &[("user-agent", "curl/8")]));
}

#[test]
fn conditions_and_within_entry_or_between_entries() {
    let m = matcher(&[
        CanaryMatch {
            header: cond("x-team", "core", MatchType::Exact),
            query: cond("beta", "1", MatchType::Exact),
            ..Default::default()
        },
        CanaryMatch {
            cookie: cond("canary", "always", MatchType::Exact),
            ..Default::default()
        },
    ]);
    assert!(hit(&m, "/?beta=1", &[("x-team", "core")]));
    assert!(
        !hit(&m, "/?beta=1", &[("x-team", "edge")]),
        "AND: header fails"
    );
    assert!(!hit(&m, "/", &[("x-team", "core")]), "AND: query missing");
    assert!(
        hit(&m, "/", &[("cookie", "canary=always")]),
        "OR: second entry"
    );
    assert!(!CanaryMatcher::default().matches(&http::HeaderMap::new(), &"/".parse().unwrap()));
}

#[test]
fn cookies_with_several_cookies_and_spaces() {
    let m = matcher(&[CanaryMatch {
        cookie: cond("tier", "beta", MatchType::Exact),
        ..Default::default()
    }]);
    assert!(hit(
        &m,
        "/",
        &[("cookie", "session=abc;  tier=beta ; theme=dark")]
    ));
    assert!(hit(
        &m,
        "/",
        &[("cookie", "session=abc"), ("cookie", "tier=\"beta\"")]
    ));
    assert!(!hit(&m, "/", &[("cookie", "mytier=beta; tier=stable")]));
    assert!(!hit(&m, "/", &[("cookie", "tier")]));
}

#[test]
fn query_with_repeated_and_encoded_params() {
    let m = matcher(&[CanaryMatch {
        query: cond("group", "beta users", MatchType::Exact),
        ..Default::default()
    }]);
    assert!(hit(&m, "/p?group=a&group=beta+users", &[]));
    assert!(hit(&m, "/p?x=1&group=beta%20users", &[]));
    assert!(hit(&m, "/p?gr%6Fup=beta%20users", &[]), "encoded name");
    assert!(!hit(&m, "/p?group=beta", &[]));
    assert!(!hit(&m, "/p", &[]));
    let flag = matcher(&[CanaryMatch {
        query: cond("canary", "", MatchType::Exact),
        ..Default::default()
    }]);
    assert!(hit(&flag, "/?canary", &[]), "a parameter with no value");
    let bad = matcher(&[CanaryMatch {
        query: cond("q", "%zz", MatchType::Exact),
        ..Default::default()
    }]);
    assert!(hit(&bad, "/?q=%zz", &[]), "malformed escapes stay literal");
}

#[test]
fn invalid_regex_and_header_name_are_refused() {
    assert!(
        CanaryMatcher::new(&[CanaryMatch {
            header: cond("x", "(", MatchType::Regex),
            ..Default::default()
        }])
        .is_err()
    );
    assert!(
        CanaryMatcher::new(&[CanaryMatch {
            header: cond("bad name", "a", MatchType::Exact),
            ..Default::default()
        }])
        .is_err()
    );
}

/// A header value is matched on its bytes, with the same answers as matching its `to_str`
/// (values with a byte outside visible ASCII and tab never match): every byte value, alone,
/// behind a matching prefix and in the middle of an exact value.
#[test]
fn header_values_match_as_their_text_would() {
    use fluxgate_core::policy::ValueMatcher;
    use http::HeaderValue;

    let matchers = [
        ValueMatcher::new(MatchType::Exact, "a\tb").unwrap(),
        ValueMatcher::new(MatchType::Exact, "ab").unwrap(),
        ValueMatcher::new(MatchType::Exact, "é").unwrap(),
        ValueMatcher::new(MatchType::Prefix, "a").unwrap(),
        ValueMatcher::new(MatchType::Prefix, "").unwrap(),
        ValueMatcher::new(MatchType::Regex, "^a.b$").unwrap(),
    ];
    let mut values = Vec::new();
    for byte in 0..=u8::MAX {
        for bytes in [vec![byte], vec![b'a', byte], vec![b'a', byte, b'b']] {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                values.push(value);
            }
        }
    }
    values.push(HeaderValue::from_bytes("é".as_bytes()).unwrap());
    let mut matched = 0;
    for m in &matchers {
        for value in &values {
            let by_text = value.to_str().is_ok_and(|v| m.is_match(v));
            assert_eq!(m.is_match_value(value), by_text, "{m:?} on {value:?}");
            matched += usize::from(by_text);
        }
    }
    // Not vacuous: the prefixes and the regex match many of the values.
    assert!(matched > 300, "{matched}");
}
