//! Strict HTTP at the gateway's door: requests that are ambiguous or malformed are answered
//! `400 Bad Request` instead of being forwarded.
//!
//! - [`check_head`] refuses a request with more than one `Host` header or an HTTP/1.1 request
//!   without any (RFC 9112 §3.2: a server MUST answer 400), a `Host` that is not a valid
//!   `host[:port]` authority, and a `Host` or absolute-form target carrying userinfo
//!   (`user@evil.example`), which an upstream or a log reader could take for another host.
//! - [`ClientBody`] wraps the client's request body and remembers when reading it failed (a
//!   malformed chunked encoding, a body shorter than its `Content-Length`): the proxy can only
//!   see that forwarding failed and answers `502`, so the gateway turns that answer into a `400`
//!   when the client's body is what failed ([`BodyFailed::is_set`]).
//!
//! ```
//! use fluxgate_gateway::strict::check_head;
//!
//! let request = http::Request::builder().header("host", "shop.example:8080").body(()).unwrap();
//! assert!(check_head(&request).is_ok());
//! let request = http::Request::builder().header("host", "user@evil.example").body(()).unwrap();
//! assert_eq!(check_head(&request), Err("userinfo in the Host header"));
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::header::HOST;
use http::{Request, Version};

use crate::watched::{End, Watched, Watcher};

/// Why a request head is refused, or `Ok` when it may be forwarded.
///
/// # Errors
///
/// A short reason (the body of the `400`).
pub fn check_head<B>(request: &Request<B>) -> Result<(), &'static str> {
    let mut hosts = request.headers().get_all(HOST).iter();
    if let Some(host) = hosts.next() {
        if hosts.next().is_some() {
            return Err("more than one Host header");
        }
        if host.as_bytes().contains(&b'@') {
            return Err("userinfo in the Host header");
        }
        if !fluxgate_core::host::is_host(host.as_bytes()) {
            return Err("invalid Host header");
        }
    } else if request.version() == Version::HTTP_11 && request.uri().authority().is_none() {
        return Err("no Host header");
    }
    if request
        .uri()
        .authority()
        .is_some_and(|authority| authority.as_str().contains('@'))
    {
        return Err("userinfo in the request target");
    }
    Ok(())
}

/// Set when a [`ClientBody`] failed; shared with whoever answers the request.
#[derive(Debug, Clone, Default)]
pub struct BodyFailed(Arc<AtomicBool>);

impl BodyFailed {
    /// Whether reading the client's body failed.
    #[must_use]
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Watcher for BodyFailed {
    fn ended(self, end: End) {
        if end == End::Failed {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// A client's request body that sets its [`BodyFailed`] (when some) if reading it fails.
pub type ClientBody<B> = Watched<B, Option<BodyFailed>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn with_hosts(hosts: &[&str]) -> Request<()> {
        let mut request = Request::new(());
        *request.version_mut() = Version::HTTP_2;
        for host in hosts {
            request.headers_mut().append(HOST, host.parse().unwrap());
        }
        request
    }

    #[test]
    fn hosts() {
        assert!(check_head(&with_hosts(&[])).is_ok());
        assert!(check_head(&with_hosts(&["a.example"])).is_ok());
        assert!(check_head(&with_hosts(&["[::1]:80"])).is_ok());
        assert!(check_head(&with_hosts(&["a.example", "a.example"])).is_err());
        assert!(check_head(&with_hosts(&["u:p@a.example"])).is_err());
        assert!(check_head(&with_hosts(&["a.example/x"])).is_err());
        assert!(check_head(&with_hosts(&[""])).is_err());
        // Stricter than `http`'s `Authority`, which takes both.
        assert!(check_head(&with_hosts(&["a.example:http"])).is_err());
        assert!(check_head(&with_hosts(&["[not-an-address]"])).is_err());
        let absolute = Request::get("http://u@a.example/").body(()).unwrap();
        assert!(check_head(&absolute).is_err());
        let mut no_host = Request::new(());
        *no_host.version_mut() = Version::HTTP_11;
        assert_eq!(check_head(&no_host), Err("no Host header"));
        *no_host.version_mut() = Version::HTTP_10;
        assert!(check_head(&no_host).is_ok());
    }
}
