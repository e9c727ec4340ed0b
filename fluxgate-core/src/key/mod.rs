//! Request keys: which part of a request identifies a client for rate limiting and stickiness.
//!
//! A policy names the key with a `keyExtractor` string: `ip`, `header.NAME`, `cookie.NAME` or
//! `query.NAME`. [`KeySource`] is that string parsed once, when the policy is compiled, and a
//! [`KeyExtractor`] applies it to each request, borrowing the key from the request
//! ([`Extracted`]) without allocating. The `ip` key is the connection's peer ([`PeerAddr`],
//! or axum's and tonic's connect info with the `axum` and `tonic` features: [`peer_addr`]),
//! or the address a trusted proxy forwarded ([`ClientIpConfig`], [`Cidr`]): forwarded headers
//! are never believed unless the peer is a configured trusted proxy. [`Extracted::hash64`]
//! gives a stable hash for shards and stickiness.
//!
//! # Example
//!
//! ```
//! use fluxgate_core::key::{ClientIpConfig, Extracted, KeyExtractor, KeySource, PeerAddr};
//!
//! let source: KeySource = "header.X-Client-Id".parse().unwrap();
//! assert_eq!(source, KeySource::Header(http::HeaderName::from_static("x-client-id")));
//! assert_eq!(source.to_string(), "header.x-client-id");
//! assert!("body.user".parse::<KeySource>().is_err());
//!
//! let by_ip = KeyExtractor::new(KeySource::Ip)
//!     .client_ip_config(ClientIpConfig::new().trust("10.0.0.0/8".parse().unwrap()));
//! let mut request = http::Request::builder()
//!     .header("x-forwarded-for", "198.51.100.20, 10.1.1.1")
//!     .body(())
//!     .unwrap();
//! request.extensions_mut().insert(PeerAddr("10.0.0.5:50000".parse().unwrap()));
//! assert_eq!(by_ip.extract(&request), Extracted::Ip("198.51.100.20".parse().unwrap()));
//! ```

mod cidr;
mod client_ip;
mod extract;
mod hash;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use http::{Extensions, HeaderName};

pub use cidr::{Cidr, CidrError, normalize};
pub use client_ip::{ClientIpConfig, ForwardedHeader};
pub use extract::{DEFAULT_MAX_KEY_LEN, Extracted, KeyExtractor};
pub use hash::fnv1a;

/// The address of the connection's peer, as a request extension.
///
/// Servers put it into each request's extensions (`request.extensions_mut().insert(PeerAddr(addr))`)
/// so that the `ip` key, X-Forwarded-For handling and the proxy can see who is connected; a hyper
/// server's accept loop does it (hyper and hyper-util put no address in the request). The `ip`
/// key also finds the address without it (see [`peer_addr`]): under axum with the `axum` feature
/// once the app is served with connect info, the one line
/// `axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())`;
/// under a tonic server with the `tonic` feature, always.
///
/// ```
/// use fluxgate_core::key::PeerAddr;
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(PeerAddr("192.0.2.7:41000".parse().unwrap()));
/// assert_eq!(request.extensions().get::<PeerAddr>().unwrap().0.port(), 41000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

/// The connection's peer as the server recorded it in `extensions`: [`PeerAddr`] first, then
/// axum's `ConnectInfo<SocketAddr>` (feature `axum`), then tonic's `TcpConnectInfo` (feature
/// `tonic`). `None` when none of them is there.
///
/// ```
/// use fluxgate_core::key::{PeerAddr, peer_addr};
///
/// let mut request = http::Request::new(());
/// assert_eq!(peer_addr(request.extensions()), None);
/// request.extensions_mut().insert(PeerAddr("192.0.2.7:41000".parse().unwrap()));
/// assert_eq!(peer_addr(request.extensions()), Some("192.0.2.7:41000".parse().unwrap()));
/// ```
#[must_use]
pub fn peer_addr(extensions: &Extensions) -> Option<SocketAddr> {
    if let Some(peer) = extensions.get::<PeerAddr>() {
        return Some(peer.0);
    }
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0);
    }
    #[cfg(feature = "tonic")]
    if let Some(info) = extensions.get::<tonic::transport::server::TcpConnectInfo>() {
        return info.remote_addr();
    }
    None
}

/// Where a request's key comes from, as written in a policy's `keyExtractor`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeySource {
    /// `ip`: the client's IP address (the peer, or a forwarded address from a trusted proxy).
    Ip,
    /// `header.NAME`: the value of a request header (an API key, a client id).
    Header(HeaderName),
    /// `cookie.NAME`: the value of one cookie of the `Cookie` header.
    Cookie(String),
    /// `query.NAME`: the value of one parameter of the query string.
    Query(String),
}

/// Why a `keyExtractor` string is not a [`KeySource`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySourceError {
    /// The part before the first `.` is not `ip`, `header`, `cookie` or `query`.
    #[error("unknown key kind `{0}`")]
    UnknownKind(String),
    /// `header.`, `cookie.` or `query.` with nothing after the dot.
    #[error("`{0}.` needs a name after the dot, as in {0}.NAME")]
    MissingName(&'static str),
    /// The name after `header.` is not a valid HTTP header name.
    #[error("`{0}` is not a valid HTTP header name")]
    InvalidHeaderName(String),
    /// A cookie or query parameter name with characters that cannot appear in one.
    #[error("`{0}` is not a valid {1} name")]
    InvalidName(String, &'static str),
}

impl FromStr for KeySource {
    type Err = KeySourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, name) = match s.split_once('.') {
            Some((kind, name)) => (kind, Some(name)),
            None => (s, None),
        };
        match (kind, name) {
            ("ip", None) => Ok(Self::Ip),
            ("header", Some("")) => Err(KeySourceError::MissingName("header")),
            ("header", Some(name)) => HeaderName::from_bytes(name.as_bytes())
                .map(Self::Header)
                .map_err(|_| KeySourceError::InvalidHeaderName(name.to_owned())),
            ("cookie", Some(name)) => token(name, "cookie").map(Self::Cookie),
            ("query", Some(name)) => token(name, "query").map(Self::Query),
            ("header", None) => Err(KeySourceError::MissingName("header")),
            ("cookie", None) => Err(KeySourceError::MissingName("cookie")),
            ("query", None) => Err(KeySourceError::MissingName("query")),
            _ => Err(KeySourceError::UnknownKind(s.to_owned())),
        }
    }
}

/// Checks a cookie or query parameter name: not empty, visible ASCII, no separators.
fn token(name: &str, what: &'static str) -> Result<String, KeySourceError> {
    if name.is_empty() {
        return Err(KeySourceError::MissingName(what));
    }
    let valid = name
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"=;,&\"\\".contains(&b));
    if valid {
        Ok(name.to_owned())
    } else {
        Err(KeySourceError::InvalidName(name.to_owned(), what))
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip => f.write_str("ip"),
            Self::Header(name) => write!(f, "header.{name}"),
            Self::Cookie(name) => write!(f, "cookie.{name}"),
            Self::Query(name) => write!(f, "query.{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!("ip".parse::<KeySource>(), Ok(KeySource::Ip));
        assert_eq!(
            "cookie.session".parse::<KeySource>(),
            Ok(KeySource::Cookie("session".to_owned()))
        );
        assert_eq!(
            "query.api_key".parse::<KeySource>(),
            Ok(KeySource::Query("api_key".to_owned()))
        );
    }

    #[test]
    fn peer_addr_prefers_peer_addr_then_reads_connect_info() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let mut extensions = Extensions::new();
        assert_eq!(peer_addr(&extensions), None);
        #[cfg(feature = "tonic")]
        {
            extensions.insert(tonic::transport::server::TcpConnectInfo {
                local_addr: None,
                remote_addr: Some(addr("192.0.2.3:3")),
            });
            assert_eq!(peer_addr(&extensions), Some(addr("192.0.2.3:3")));
        }
        #[cfg(feature = "axum")]
        {
            extensions.insert(axum::extract::ConnectInfo(addr("192.0.2.2:2")));
            assert_eq!(peer_addr(&extensions), Some(addr("192.0.2.2:2")));
        }
        extensions.insert(PeerAddr(addr("192.0.2.1:1")));
        assert_eq!(peer_addr(&extensions), Some(addr("192.0.2.1:1")));
    }

    #[test]
    fn refuses_bad_sources() {
        for bad in [
            "",
            "ip.x",
            "header",
            "header.",
            "header.bad name",
            "cookie.a;b",
            "query.",
            "body.x",
        ] {
            assert!(bad.parse::<KeySource>().is_err(), "{bad:?} parsed");
        }
    }
}
