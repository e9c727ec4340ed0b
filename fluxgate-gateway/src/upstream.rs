//! Upstream addresses as given on the command line: `URL` or `URL,weight=N`.
//!
//! An [`Upstream`] is a plain `http://host:port[/prefix]` URL; the proxy sends each request to its
//! scheme and authority and puts the prefix in front of the request's path. An [`UpstreamSpec`] is
//! an upstream with the weight it gets from the balancer.
//!
//! # Example
//!
//! ```
//! use fluxgate_gateway::upstream::UpstreamSpec;
//!
//! let spec: UpstreamSpec = "http://127.0.0.1:3000/api,weight=3".parse().unwrap();
//! assert_eq!(spec.weight.get(), 3);
//! assert_eq!(spec.upstream.authority().as_str(), "127.0.0.1:3000");
//! assert_eq!(spec.upstream.path_prefix(), "/api");
//! assert!("ftp://example.com".parse::<UpstreamSpec>().is_err());
//! ```

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use http::Uri;
use http::uri::{Authority, Scheme};

/// Why an upstream URL or `URL,weight=N` argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The text is not a URL at all.
    #[error("`{0}` is not a valid URL")]
    InvalidUrl(String),
    /// The scheme is missing or is not `http` (this example has no TLS connector).
    #[error("`{0}`: only http:// upstreams are supported")]
    UnsupportedScheme(String),
    /// The URL has no host.
    #[error("`{0}` has no host")]
    MissingHost(String),
    /// The URL carries a query string, which an upstream base URL cannot have.
    #[error("`{0}`: an upstream URL cannot have a query string")]
    HasQuery(String),
    /// `weight=` is not a whole number from 1 to 4294967295.
    #[error("weight `{0}` is not a whole number of at least 1")]
    BadWeight(String),
    /// An option after the URL other than `weight=N`.
    #[error("unknown upstream option `{0}`, expected weight=N")]
    UnknownOption(String),
}

/// An upstream base URL: `http://host:port` with an optional path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
    /// Empty, or starts with `/` and does not end with one.
    prefix: String,
}

impl Upstream {
    /// The scheme requests are sent with (always `http` for now).
    #[must_use]
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// The `host:port` requests are sent to.
    #[must_use]
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The path put in front of every request's path: empty, or `/segment...` without a final `/`.
    #[must_use]
    pub fn path_prefix(&self) -> &str {
        &self.prefix
    }

    /// The URI for a request whose path and query are `path_and_query` (e.g. `/a?b=1`).
    ///
    /// # Errors
    ///
    /// When the joined text is not a valid URI.
    pub fn join(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let mut joined = String::with_capacity(self.prefix.len() + path_and_query.len());
        joined.push_str(&self.prefix);
        joined.push_str(path_and_query);
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(joined)
            .build()
    }
}

impl FromStr for Upstream {
    type Err = UpstreamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let uri: Uri = s
            .parse()
            .map_err(|_| UpstreamError::InvalidUrl(s.to_owned()))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(UpstreamError::UnsupportedScheme(s.to_owned()));
        }
        let Some(authority) = uri.authority().cloned() else {
            return Err(UpstreamError::MissingHost(s.to_owned()));
        };
        if authority.host().is_empty() {
            return Err(UpstreamError::MissingHost(s.to_owned()));
        }
        if uri.query().is_some() {
            return Err(UpstreamError::HasQuery(s.to_owned()));
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(Self {
            scheme: Scheme::HTTP,
            authority,
            prefix,
        })
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.prefix)
    }
}

/// An upstream and its weight, parsed from `URL` or `URL,weight=N` (the weight defaults to 1).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamSpec {
    /// Where requests go.
    pub upstream: Upstream,
    /// Its share of the requests, relative to the other upstreams' weights.
    pub weight: NonZeroU32,
}

impl UpstreamSpec {
    /// An upstream with the given weight.
    #[must_use]
    pub fn new(upstream: Upstream, weight: NonZeroU32) -> Self {
        Self { upstream, weight }
    }
}

impl FromStr for UpstreamSpec {
    type Err = UpstreamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(',');
        let upstream = parts.next().unwrap_or_default().trim().parse()?;
        let mut weight = NonZeroU32::MIN;
        for option in parts.map(str::trim) {
            match option.split_once('=') {
                Some(("weight", value)) => {
                    weight = value
                        .parse()
                        .map_err(|_| UpstreamError::BadWeight(value.to_owned()))?;
                }
                _ => return Err(UpstreamError::UnknownOption(option.to_owned())),
            }
        }
        Ok(Self { upstream, weight })
    }
}

impl fmt::Display for UpstreamSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},weight={}", self.upstream, self.weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefix_and_weight() {
        let spec: UpstreamSpec = "http://localhost:8000/v1/,weight=5".parse().unwrap();
        assert_eq!(spec.upstream.path_prefix(), "/v1");
        assert_eq!(spec.weight.get(), 5);
        let uri = spec.upstream.join("/orders?id=7").unwrap();
        assert_eq!(uri.to_string(), "http://localhost:8000/v1/orders?id=7");
        let plain: UpstreamSpec = "http://[::1]:81".parse().unwrap();
        assert_eq!(plain.weight.get(), 1);
        assert_eq!(plain.upstream.path_prefix(), "");
        assert_eq!(plain.to_string(), "http://[::1]:81,weight=1");
    }

    #[test]
    fn refuses_bad_arguments() {
        let cases = [
            (
                "https://a:1",
                UpstreamError::UnsupportedScheme("https://a:1".into()),
            ),
            ("a:1", UpstreamError::UnsupportedScheme("a:1".into())),
            (
                "http://a:1?x=1",
                UpstreamError::HasQuery("http://a:1?x=1".into()),
            ),
            ("http://a:1,weight=0", UpstreamError::BadWeight("0".into())),
            ("http://a:1,weight=x", UpstreamError::BadWeight("x".into())),
            (
                "http://a:1,wait=2",
                UpstreamError::UnknownOption("wait=2".into()),
            ),
            ("not a url", UpstreamError::InvalidUrl("not a url".into())),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<UpstreamSpec>(), Err(expected), "{text}");
        }
    }
}
