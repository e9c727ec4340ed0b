use super::super::{ApplyError, PolicyId};

/// Why a Redis policy operation failed.
///
/// URLs in these errors never carry a password: it is replaced by `***` (see [`redact_url`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The Redis URL does not parse.
    #[error("invalid Redis URL {url}: {source}")]
    InvalidUrl {
        /// The URL, without its password.
        url: String,
        /// What redis-rs found wrong.
        #[source]
        source: redis::RedisError,
    },
    /// Redis cannot be reached (refused, timed out, or the connection was lost).
    #[error("cannot reach Redis at {url}: {message}")]
    Unreachable {
        /// The URL, without its password.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Redis answered a command with an error.
    #[error("Redis {context} failed: {source}")]
    Command {
        /// The operation (`apply`, `get`, `reload`, …).
        context: &'static str,
        /// The error.
        #[source]
        source: redis::RedisError,
    },
    /// A policy does not validate, or names another namespace; nothing was written.
    #[error(transparent)]
    Invalid(#[from] ApplyError),
    /// A compare-and-set write found another version than the one expected; nothing was written.
    #[error("conflict on {id}: expected version {expected}, Redis holds version {current}")]
    Conflict {
        /// The policy.
        id: PolicyId,
        /// The version the writer expected.
        expected: u64,
        /// The version Redis holds.
        current: u64,
    },
    /// A value stored in Redis is not a policy record.
    #[error("unreadable record for {id} in Redis: {message}")]
    Corrupt {
        /// The policy.
        id: PolicyId,
        /// What is wrong with it.
        message: String,
    },
}

impl RedisStoreError {
    /// Whether the error means Redis could not be reached (as opposed to a refused write).
    ///
    /// ```
    /// use fluxgate_core::store::RedisStoreError;
    ///
    /// let e = RedisStoreError::Unreachable { url: "redis://127.0.0.1:1".into(), message: "refused".into() };
    /// assert!(e.is_unreachable());
    /// ```
    #[must_use]
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Command { source, .. } => {
                source.is_io_error() || source.is_connection_dropped() || source.is_timeout()
            }
            _ => false,
        }
    }

    pub(super) fn command(context: &'static str, url: &str, source: redis::RedisError) -> Self {
        if source.is_io_error()
            || source.is_connection_dropped()
            || source.is_connection_refusal()
            || source.is_timeout()
        {
            Self::Unreachable {
                url: redact_url(url),
                message: source.to_string(),
            }
        } else {
            Self::Command { context, source }
        }
    }
}

/// `url` with the password (if any) replaced by `***`, for messages and logs.
///
/// ```
/// use fluxgate_core::store::redact_url;
///
/// assert_eq!(redact_url("redis://:hunter2@db:6379/0"), "redis://:***@db:6379/0");
/// assert_eq!(redact_url("rediss://admin:pw@db"), "rediss://admin:***@db");
/// assert_eq!(redact_url("https://gw.example/api"), "https://gw.example/api");
/// ```
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
    let redacted = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        "***".to_owned()
    };
    format!("{}{redacted}{}", &url[..scheme_end], &rest[at..])
}
