//! [`RedisConnectError`], and keeping credentials out of messages.

/// Why [`RedisStore::connect`](super::RedisStore::connect) failed.
///
/// Messages never carry a password: URLs are redacted (`redis://:***@host`) and the password's
/// text is scrubbed from Redis' own messages.
///
/// ```
/// use fluxgate_ratelimit::store::RedisConnectError;
///
/// let e = RedisConnectError::Unreachable { url: "redis://:***@10.0.0.1".into(), message: "refused".into() };
/// assert!(!e.to_string().contains("s3cret"));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RedisConnectError {
    /// The URL does not parse, or asks for something this build lacks (`rediss://` without TLS).
    #[error("invalid Redis URL {url}: {message}")]
    InvalidUrl {
        /// The URL, without its password.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// Redis refused the credentials.
    #[error("Redis at {url} refused the credentials: {message}")]
    Auth {
        /// The URL, without its password.
        url: String,
        /// Redis' answer.
        message: String,
    },
    /// The TLS handshake failed (`rediss://`): the server's certificate is not trusted (see
    /// [`RedisOptions::tls_root_certificate`](super::RedisOptions::tls_root_certificate)) or
    /// not for this host, or the server wants a client certificate.
    #[error("TLS with Redis at {url} failed: {message}")]
    Tls {
        /// The URL, without its password.
        url: String,
        /// rustls' reason.
        message: String,
    },
    /// Redis could not be reached in time.
    #[error("cannot reach Redis at {url}: {message}")]
    Unreachable {
        /// The URL, without its password.
        url: String,
        /// What went wrong.
        message: String,
    },
}

/// A Redis failure on the request path, as [`StoreError::Unavailable`](super::super::StoreError)
/// carries it (scrubbed of credentials).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Scrubbed(pub(crate) String);

/// `message` with every occurrence of `secret` replaced by `***`.
pub(crate) fn scrub(message: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() => message.replace(secret, "***"),
        _ => message.to_owned(),
    }
}

/// Classifies a connection error.
pub(crate) fn connect_error(
    url: &str,
    secret: Option<&str>,
    error: &redis::RedisError,
) -> RedisConnectError {
    let url = fluxgate_core::store::redact_url(url);
    let message = scrub(&error.to_string(), secret);
    let auth = matches!(error.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
        || error.kind() == redis::ErrorKind::AuthenticationFailed;
    if auth {
        RedisConnectError::Auth { url, message }
    } else if is_tls(error) {
        RedisConnectError::Tls { url, message }
    } else if error.kind() == redis::ErrorKind::InvalidClientConfig {
        RedisConnectError::InvalidUrl { url, message }
    } else {
        RedisConnectError::Unreachable { url, message }
    }
}

/// Whether a rustls error caused `error` (redis-rs keeps it inside an `io::Error`, itself in an
/// `Arc`, which `source()` skips over).
fn is_tls(error: &redis::RedisError) -> bool {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let rustls = |e: &(dyn std::error::Error + Send + Sync + 'static)| {
        e.is::<rustls::Error>()
            || e.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .is_some_and(|inner| inner.is::<rustls::Error>())
    };
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<Shared>().is_some_and(|arc| rustls(&**arc)) {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_the_password() {
        assert_eq!(
            scrub("auth s3cret failed", Some("s3cret")),
            "auth *** failed"
        );
        assert_eq!(scrub("x", Some("")), "x");
    }
}
