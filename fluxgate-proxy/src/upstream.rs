//! Upstream addresses, as given on the gateway's command line: `URL[,protocol=P][,weight=N]`.
//!
//! An [`Upstream`] is an `http://` or `https://host:port[/prefix]` URL; the proxy sends each
//! request to its scheme and authority and puts the prefix in front of the request's path. An
//! [`UpstreamSpec`] is an upstream with the weight it gets from the balancer and the
//! [`Protocol`] it is spoken to in:
//!
//! | `protocol=` | `http://` | `https://` |
//! | --- | --- | --- |
//! | (none) | HTTP/1.1 | TLS, ALPN chooses HTTP/2 or HTTP/1.1 |
//! | `http1` | HTTP/1.1 | TLS, HTTP/1.1 |
//! | `h2c` | HTTP/2 with prior knowledge | (refused: h2c is cleartext) |
//! | `grpc` | HTTP/2 with prior knowledge, `grpc.health.v1` health checks | TLS, HTTP/2, `grpc.health.v1` health checks |
//!
//! # Example
//!
//! ```
//! use fluxgate_proxy::upstream::{Protocol, UpstreamSpec};
//!
//! let spec: UpstreamSpec = "http://127.0.0.1:3000/api,weight=3".parse().unwrap();
//! assert_eq!(spec.weight.get(), 3);
//! assert_eq!(spec.upstream.authority().as_str(), "127.0.0.1:3000");
//! assert_eq!(spec.upstream.path_prefix(), "/api");
//! let grpc: UpstreamSpec = "http://127.0.0.1:50051,protocol=grpc".parse().unwrap();
//! assert_eq!(grpc.protocol, Protocol::Grpc);
//! assert!("ftp://example.com".parse::<UpstreamSpec>().is_err());
//! ```

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use http::Uri;
use http::uri::{Authority, PathAndQuery, Scheme};

/// Why an upstream URL or `URL,weight=N` argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The text is not a URL at all.
    #[error("`{0}` is not a valid URL")]
    InvalidUrl(String),
    /// The scheme is missing or is neither `http` nor `https`.
    #[error("`{0}`: an upstream URL starts with http:// or https://")]
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
    /// An option after the URL other than `weight=N` or `protocol=P`.
    #[error("unknown upstream option `{0}`, expected weight=N or protocol=http1|h2c|grpc")]
    UnknownOption(String),
    /// `protocol=` names no protocol this gateway speaks.
    #[error("protocol `{0}` is not one of http1, h2c, grpc")]
    BadProtocol(String),
    /// `protocol=h2c` with an `https://` URL (h2c is HTTP/2 without TLS).
    #[error(
        "`{0}`: protocol=h2c is cleartext HTTP/2; an https:// upstream negotiates HTTP/2 by ALPN (or use protocol=grpc)"
    )]
    H2cOverTls(String),
}

/// How the gateway speaks to an upstream; see the [module docs](self) for the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// No `protocol=`: HTTP/1.1 for `http://`, ALPN (HTTP/2 or HTTP/1.1) for `https://`.
    #[default]
    Auto,
    /// `protocol=http1`: HTTP/1.1.
    Http1,
    /// `protocol=h2c`: HTTP/2 with prior knowledge, without TLS.
    H2c,
    /// `protocol=grpc`: HTTP/2 (prior knowledge, or over TLS), health-checked with
    /// `grpc.health.v1.Health/Check` instead of an HTTP `GET`.
    Grpc,
}

impl Protocol {
    /// Whether requests go over HTTP/2 only (`h2c`, `grpc`).
    #[must_use]
    pub fn is_http2(self) -> bool {
        matches!(self, Self::H2c | Self::Grpc)
    }

    /// The `protocol=` value, or `None` for [`Protocol::Auto`].
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        match self {
            Self::Auto => None,
            Self::Http1 => Some("http1"),
            Self::H2c => Some("h2c"),
            Self::Grpc => Some("grpc"),
        }
    }
}

impl FromStr for Protocol {
    type Err = UpstreamError;

    /// `http1`, `h2c` or `grpc`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "http1" => Ok(Self::Http1),
            "h2c" => Ok(Self::H2c),
            "grpc" => Ok(Self::Grpc),
            _ => Err(UpstreamError::BadProtocol(s.to_owned())),
        }
    }
}

/// An upstream base URL: `http://host:port` or `https://host:port` with an optional path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
    /// Empty, or starts with `/` and does not end with one.
    prefix: String,
}

impl Upstream {
    /// The scheme requests are sent with: `http` or `https`.
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

    /// [`join`](Self::join) for a request's parsed path and query: without a path prefix, the
    /// URI shares them (no copy, no parse).
    pub(crate) fn join_path(&self, path_and_query: &PathAndQuery) -> Result<Uri, http::Error> {
        if !self.prefix.is_empty() {
            return self.join(path_and_query.as_str());
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query.clone())
            .build()
    }
}

impl Upstream {
    /// The request target in origin form (the path prefix, then the request's path and query)
    /// for a connection to this upstream: without a prefix, the request's own (no copy).
    pub(crate) fn origin_form(&self, path_and_query: &PathAndQuery) -> Result<Uri, http::Error> {
        if self.prefix.is_empty() {
            return Ok(Uri::from(path_and_query.clone()));
        }
        let mut joined = String::with_capacity(self.prefix.len() + path_and_query.as_str().len());
        joined.push_str(&self.prefix);
        joined.push_str(path_and_query.as_str());
        Uri::builder().path_and_query(joined).build()
    }
}

impl FromStr for Upstream {
    type Err = UpstreamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let uri: Uri = s
            .parse()
            .map_err(|_| UpstreamError::InvalidUrl(s.to_owned()))?;
        let scheme = match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTP || *scheme == Scheme::HTTPS => scheme.clone(),
            _ => return Err(UpstreamError::UnsupportedScheme(s.to_owned())),
        };
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
            scheme,
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

impl Upstream {
    /// Whether the upstream is reached over TLS (`https://`).
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }
}

/// An upstream, its weight and its protocol, parsed from `URL[,protocol=P][,weight=N]` (the
/// weight defaults to 1, the protocol to [`Protocol::Auto`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamSpec {
    /// Where requests go.
    pub upstream: Upstream,
    /// Its share of the requests, relative to the other upstreams' weights.
    pub weight: NonZeroU32,
    /// How it is spoken to.
    pub protocol: Protocol,
}

impl UpstreamSpec {
    /// An upstream with the given weight, spoken to in [`Protocol::Auto`].
    #[must_use]
    pub fn new(upstream: Upstream, weight: NonZeroU32) -> Self {
        Self {
            upstream,
            weight,
            protocol: Protocol::Auto,
        }
    }

    /// Sets the protocol.
    ///
    /// # Errors
    ///
    /// [`UpstreamError::H2cOverTls`] for `h2c` with an `https://` upstream.
    pub fn with_protocol(mut self, protocol: Protocol) -> Result<Self, UpstreamError> {
        if protocol == Protocol::H2c && self.upstream.is_tls() {
            return Err(UpstreamError::H2cOverTls(self.upstream.to_string()));
        }
        self.protocol = protocol;
        Ok(self)
    }
}

impl FromStr for UpstreamSpec {
    type Err = UpstreamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(',');
        let upstream = parts.next().unwrap_or_default().trim().parse()?;
        let mut weight = NonZeroU32::MIN;
        let mut protocol = Protocol::Auto;
        for option in parts.map(str::trim) {
            match option.split_once('=') {
                Some(("weight", value)) => {
                    weight = value
                        .parse()
                        .map_err(|_| UpstreamError::BadWeight(value.to_owned()))?;
                }
                Some(("protocol", value)) => protocol = value.parse()?,
                _ => return Err(UpstreamError::UnknownOption(option.to_owned())),
            }
        }
        Self::new(upstream, weight).with_protocol(protocol)
    }
}

impl fmt::Display for UpstreamSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.upstream)?;
        if let Some(protocol) = self.protocol.name() {
            write!(f, ",protocol={protocol}")?;
        }
        write!(f, ",weight={}", self.weight)
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
        let grpc: UpstreamSpec = "https://a:1,protocol=grpc,weight=2".parse().unwrap();
        assert_eq!(grpc.protocol, Protocol::Grpc);
        assert!(grpc.upstream.is_tls());
        assert_eq!(grpc.to_string(), "https://a:1,protocol=grpc,weight=2");
        let h2c: UpstreamSpec = "http://a:1,protocol=h2c".parse().unwrap();
        assert!(h2c.protocol.is_http2());
    }

    #[test]
    fn refuses_bad_arguments() {
        let cases = [
            (
                "ftp://a:1",
                UpstreamError::UnsupportedScheme("ftp://a:1".into()),
            ),
            (
                "http://a:1,protocol=h3",
                UpstreamError::BadProtocol("h3".into()),
            ),
            (
                "https://a:1,protocol=h2c",
                UpstreamError::H2cOverTls("https://a:1".into()),
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
