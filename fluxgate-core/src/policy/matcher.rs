//! Compiled canary match rules: [`CanaryMatcher`] and [`ValueMatcher`].

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue, Uri, header::COOKIE, request::Parts};
use regex::Regex;

use super::{CanaryMatch, MatchCondition, MatchType, PolicyError, PolicyErrorKind, PolicyErrors};

/// How one value is compared, with its regular expression compiled once.
///
/// ```
/// use fluxgate_core::policy::{MatchType, ValueMatcher};
///
/// let m = ValueMatcher::new(MatchType::Prefix, "beta-").unwrap();
/// assert!(m.is_match("beta-7"));
/// assert!(!m.is_match("stable"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ValueMatcher {
    /// The whole value equals this.
    Exact(String),
    /// The value starts with this.
    Prefix(String),
    /// The regular expression matches somewhere in the value.
    Regex(Regex),
}

impl ValueMatcher {
    /// Builds a matcher; compiles `value` when `kind` is [`MatchType::Regex`].
    ///
    /// # Errors
    ///
    /// The regex error, as a [`regex::Error`].
    ///
    /// ```
    /// # use fluxgate_core::policy::{MatchType, ValueMatcher};
    /// assert!(ValueMatcher::new(MatchType::Regex, "(").is_err());
    /// ```
    pub fn new(kind: MatchType, value: &str) -> Result<Self, regex::Error> {
        Ok(match kind {
            MatchType::Prefix => Self::Prefix(value.to_owned()),
            MatchType::Regex => Self::Regex(Regex::new(value)?),
            _ => Self::Exact(value.to_owned()),
        })
    }

    /// Whether `value` matches.
    ///
    /// ```
    /// # use fluxgate_core::policy::{MatchType, ValueMatcher};
    /// assert!(ValueMatcher::new(MatchType::Regex, "^v[0-9]+$").unwrap().is_match("v12"));
    /// ```
    #[must_use]
    pub fn is_match(&self, value: &str) -> bool {
        match self {
            Self::Exact(expected) => value == expected,
            Self::Prefix(prefix) => value.starts_with(prefix.as_str()),
            Self::Regex(regex) => regex.is_match(value),
        }
    }

    /// Whether a header value matches: the same answer as [`is_match`](Self::is_match) on
    /// [`HeaderValue::to_str`] (a value with a byte outside visible ASCII and tab never matches),
    /// but an exact or prefix match compares the bytes first and checks them only when they
    /// match, instead of checking every value before comparing it.
    ///
    /// ```
    /// # use fluxgate_core::policy::{MatchType, ValueMatcher};
    /// use http::HeaderValue;
    ///
    /// let exact = ValueMatcher::new(MatchType::Exact, "true").unwrap();
    /// assert!(exact.is_match_value(&HeaderValue::from_static("true")));
    /// assert!(!exact.is_match_value(&HeaderValue::from_static("false")));
    /// let prefix = ValueMatcher::new(MatchType::Prefix, "v2").unwrap();
    /// assert!(prefix.is_match_value(&HeaderValue::from_static("v2.1")));
    /// assert!(!prefix.is_match_value(&HeaderValue::from_bytes(b"v2\xff").unwrap()));
    /// ```
    #[must_use]
    pub fn is_match_value(&self, value: &HeaderValue) -> bool {
        let bytes = value.as_bytes();
        match self {
            Self::Exact(expected) => bytes == expected.as_bytes() && visible(bytes),
            Self::Prefix(prefix) => bytes.starts_with(prefix.as_bytes()) && visible(bytes),
            Self::Regex(regex) => value.to_str().is_ok_and(|v| regex.is_match(v)),
        }
    }
}

/// Whether `HeaderValue::to_str` takes these bytes: visible ASCII and tab only.
fn visible(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
}

#[derive(Debug, Clone)]
struct Entry {
    header: Option<(HeaderName, ValueMatcher)>,
    cookie: Option<(String, ValueMatcher)>,
    query: Option<(String, ValueMatcher)>,
}

/// A canary's match rules: a request matches when any entry matches, and an entry matches
/// when all of its conditions do. No entries match nothing.
///
/// Matching does not allocate, except to percent-decode a query parameter that is encoded.
///
/// ```
/// use fluxgate_core::policy::{CanaryMatch, CanaryMatcher, MatchCondition};
///
/// let rules = [CanaryMatch { cookie: Some(MatchCondition::exact("tier", "beta")), ..Default::default() }];
/// let matcher = CanaryMatcher::new(&rules).unwrap();
/// let request = http::Request::get("/").header("cookie", "a=1; tier=beta").body(()).unwrap();
/// assert!(matcher.matches(request.headers(), request.uri()));
/// ```
#[derive(Debug, Clone, Default)]
pub struct CanaryMatcher {
    entries: Vec<Entry>,
}

impl CanaryMatcher {
    /// Compiles match entries (header names parsed, regexes compiled).
    ///
    /// # Errors
    ///
    /// [`PolicyErrors`] for an invalid header name or regex.
    ///
    /// ```
    /// # use fluxgate_core::policy::{CanaryMatcher};
    /// assert!(CanaryMatcher::new(&[]).unwrap().is_empty());
    /// ```
    pub fn new(rules: &[CanaryMatch]) -> Result<Self, PolicyErrors> {
        let mut entries = Vec::with_capacity(rules.len());
        for (i, rule) in rules.iter().enumerate() {
            let path = |what: &str| format!("spec.canary.match[{i}].{what}");
            let header = match &rule.header {
                Some(c) => {
                    let name = HeaderName::from_bytes(c.name.as_bytes()).map_err(|_| {
                        PolicyError::new(PolicyErrorKind::InvalidValue, path("header.name"))
                            .found_expected(format!("{:?}", c.name), "a valid header name")
                    })?;
                    Some((name, condition(c, path("header.value"))?))
                }
                None => None,
            };
            let named = |c: &Option<MatchCondition>, what: &str| -> Result<_, PolicyErrors> {
                c.as_ref()
                    .map(|c| Ok((c.name.clone(), condition(c, path(what))?)))
                    .transpose()
            };
            entries.push(Entry {
                header,
                cookie: named(&rule.cookie, "cookie.value")?,
                query: named(&rule.query, "query.value")?,
            });
        }
        Ok(Self { entries })
    }

    /// Whether there are no entries (nothing matches).
    ///
    /// ```
    /// # use fluxgate_core::policy::CanaryMatcher;
    /// assert!(CanaryMatcher::default().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a request with these headers and URI matches.
    ///
    /// ```
    /// # use fluxgate_core::policy::CanaryMatcher;
    /// let request = http::Request::get("/?a=1").body(()).unwrap();
    /// assert!(!CanaryMatcher::default().matches(request.headers(), request.uri()));
    /// ```
    #[must_use]
    pub fn matches(&self, headers: &HeaderMap, uri: &Uri) -> bool {
        self.entries.iter().any(|entry| {
            entry
                .header
                .as_ref()
                .is_none_or(|(name, m)| headers.get_all(name).iter().any(|v| m.is_match_value(v)))
                && entry
                    .cookie
                    .as_ref()
                    .is_none_or(|(name, m)| cookie_matches(headers, name, m))
                && entry
                    .query
                    .as_ref()
                    .is_none_or(|(name, m)| query_matches(uri, name, m))
        })
    }

    /// Whether a request (its head) matches.
    ///
    /// ```
    /// # use fluxgate_core::policy::CanaryMatcher;
    /// let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
    /// assert!(!CanaryMatcher::default().matches_parts(&parts));
    /// ```
    #[must_use]
    pub fn matches_parts(&self, parts: &Parts) -> bool {
        self.matches(&parts.headers, &parts.uri)
    }
}

/// Compiles one condition's value matcher; `path` names its value.
fn condition(c: &MatchCondition, path: String) -> Result<ValueMatcher, PolicyErrors> {
    ValueMatcher::new(c.match_type, &c.value).map_err(|e| {
        PolicyError::new(PolicyErrorKind::InvalidValue, path)
            .found_expected(format!("{:?}", c.value), "a valid regular expression")
            .with_hint(e.to_string())
            .into()
    })
}

/// Whether any cookie called `name` in any `Cookie` header has a matching value.
fn cookie_matches(headers: &HeaderMap, name: &str, m: &ValueMatcher) -> bool {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .any(|(n, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            n.trim() == name && m.is_match(v)
        })
}

/// Whether any query parameter called `name` has a matching value.
fn query_matches(uri: &Uri, name: &str, m: &ValueMatcher) -> bool {
    uri.query().is_some_and(|query| {
        query.split('&').any(|pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            decode(n) == name && m.is_match(&decode(v))
        })
    })
}

/// Percent-decodes a query component (`+` is a space); borrows when there is nothing to decode.
fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let digit = |at: usize| bytes.get(at).and_then(|b| hex(*b));
                match (digit(i + 1), digit(i + 2)) {
                    (Some(hi), Some(lo)) => {
                        out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}
