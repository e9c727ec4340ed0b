//! Turning a request into its key, borrowing from the request where possible.

use std::borrow::Cow;
use std::net::IpAddr;

use http::{Extensions, HeaderMap, Request, Uri, header, request::Parts};

use super::client_ip::ClientIpConfig;
use super::hash::fnv1a;
use super::{KeySource, peer_addr};

/// The longest key [`KeyExtractor`] accepts by default, in bytes.
pub const DEFAULT_MAX_KEY_LEN: usize = 256;

/// The key of one request, as [`KeyExtractor::extract`] finds it.
///
/// ```
/// use fluxgate_core::key::Extracted;
///
/// let key = Extracted::Key(b"tenant-7".as_slice().into());
/// assert_eq!(key.as_bytes(), Some(&b"tenant-7"[..]));
/// assert_eq!(key.hash64(), Some(fluxgate_core::key::fnv1a(b"tenant-7")));
/// assert_eq!(Extracted::Missing.hash64(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Extracted<'r> {
    /// The value of a header, cookie or query parameter: raw bytes, not necessarily UTF-8,
    /// borrowed from the request unless percent-decoding had to build it.
    Key(Cow<'r, [u8]>),
    /// The client's IP address (for [`KeySource::Ip`]).
    Ip(IpAddr),
    /// The request has no such header, cookie or parameter, or its value is empty; for `ip`, the
    /// request has no peer address ([`peer_addr`](super::peer_addr) finds none).
    Missing,
    /// The value is longer than the extractor's maximum key length.
    TooLong,
}

impl Extracted<'_> {
    /// The key's bytes, for [`Extracted::Key`] only.
    #[must_use]
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Key(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// A stable hash of the key ([`fnv1a`] of its bytes, or of the address's 4 or 16 octets),
    /// `None` when there is no key. It allocates nothing.
    #[must_use]
    pub fn hash64(&self) -> Option<u64> {
        match self {
            Self::Key(bytes) => Some(fnv1a(bytes)),
            Self::Ip(IpAddr::V4(v4)) => Some(fnv1a(&v4.octets())),
            Self::Ip(IpAddr::V6(v6)) => Some(fnv1a(&v6.octets())),
            Self::Missing | Self::TooLong => None,
        }
    }

    /// The same result, owning its bytes (to keep as a map key beyond the request).
    ///
    /// ```
    /// use fluxgate_core::key::Extracted;
    ///
    /// let owned: Extracted<'static> = Extracted::Key(b"k".as_slice().into()).into_owned();
    /// assert_eq!(owned.as_bytes(), Some(&b"k"[..]));
    /// ```
    #[must_use]
    pub fn into_owned(self) -> Extracted<'static> {
        match self {
            Self::Key(bytes) => Extracted::Key(Cow::Owned(bytes.into_owned())),
            Self::Ip(ip) => Extracted::Ip(ip),
            Self::Missing => Extracted::Missing,
            Self::TooLong => Extracted::TooLong,
        }
    }
}

/// Finds a request's key as a policy's `keyExtractor` says.
///
/// - `header.NAME`: the first value of the header, surrounding whitespace trimmed;
/// - `cookie.NAME`: every `Cookie` header in order, split on `;`, each pair split at its first
///   `=`, names and values trimmed, one pair of surrounding double quotes removed; the first
///   pair with that name wins, even if its value is empty;
/// - `query.NAME`: the query string split on `&`, each pair at its first `=`; the first pair with
///   that (raw, undecoded) name wins. Its value is percent-decoded only when it contains `%`
///   (invalid escapes stay as they are, `+` is not a space), so it allocates only then;
/// - `ip`: the client's address under the [`ClientIpConfig`] (no proxy trusted by default).
///
/// An empty value is [`Extracted::Missing`]; a value longer than the maximum key length
/// ([`DEFAULT_MAX_KEY_LEN`] by default) is [`Extracted::TooLong`]. Values are bytes: non-UTF-8
/// headers and decoded parameters work as keys.
///
/// ```
/// use fluxgate_core::key::{Extracted, KeyExtractor};
///
/// let extractor = KeyExtractor::new("cookie.session".parse().unwrap());
/// let request = http::Request::builder()
///     .header("cookie", "theme=dark; session = abc123 ; session=later")
///     .body(())
///     .unwrap();
/// assert_eq!(extractor.extract(&request).as_bytes(), Some(&b"abc123"[..]));
/// assert_eq!(extractor.extract(&http::Request::new(())), Extracted::Missing);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyExtractor {
    source: KeySource,
    client_ip: ClientIpConfig,
    max_len: usize,
}

impl KeyExtractor {
    /// An extractor for `source`, trusting no proxy, with keys up to [`DEFAULT_MAX_KEY_LEN`].
    #[must_use]
    pub fn new(source: KeySource) -> Self {
        Self {
            source,
            client_ip: ClientIpConfig::default(),
            max_len: DEFAULT_MAX_KEY_LEN,
        }
    }

    /// Finds the client's address with `config` (trusted proxies, forwarded header).
    #[must_use]
    pub fn client_ip_config(mut self, config: ClientIpConfig) -> Self {
        self.client_ip = config;
        self
    }

    /// Refuses keys longer than `max_len` bytes with [`Extracted::TooLong`].
    ///
    /// ```
    /// use fluxgate_core::key::{Extracted, KeyExtractor};
    ///
    /// let extractor = KeyExtractor::new("header.x-api-key".parse().unwrap()).max_key_len(4);
    /// let request = http::Request::builder().header("x-api-key", "12345").body(()).unwrap();
    /// assert_eq!(extractor.extract(&request), Extracted::TooLong);
    /// ```
    #[must_use]
    pub fn max_key_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// Where the key comes from.
    #[must_use]
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// The key of `request`.
    pub fn extract<'r, B>(&self, request: &'r Request<B>) -> Extracted<'r> {
        self.extract_from(request.headers(), request.uri(), request.extensions())
    }

    /// The key of a request's head.
    ///
    /// ```
    /// use fluxgate_core::key::KeyExtractor;
    ///
    /// let extractor = KeyExtractor::new("query.api_key".parse().unwrap());
    /// let (parts, ()) = http::Request::get("/v1/items?api_key=k%2F1&page=2").body(()).unwrap().into_parts();
    /// assert_eq!(extractor.extract_parts(&parts).as_bytes(), Some(&b"k/1"[..]));
    /// ```
    pub fn extract_parts<'r>(&self, parts: &'r Parts) -> Extracted<'r> {
        self.extract_from(&parts.headers, &parts.uri, &parts.extensions)
    }

    /// The key from a request's headers, URI and extensions, however the caller holds them.
    pub fn extract_from<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
        extensions: &Extensions,
    ) -> Extracted<'r> {
        let value = match &self.source {
            KeySource::Ip => {
                let peer = peer_addr(extensions).map(|p| p.ip());
                return self
                    .client_ip
                    .client_ip(peer, headers)
                    .map_or(Extracted::Missing, Extracted::Ip);
            }
            KeySource::Header(name) => headers.get(name).map(|v| v.as_bytes().trim_ascii()),
            KeySource::Cookie(name) => cookie(headers, name.as_bytes()),
            KeySource::Query(name) => {
                let Some(raw) = query_param(uri, name.as_bytes()) else {
                    return Extracted::Missing;
                };
                if raw.len() > self.max_len.saturating_mul(3) {
                    return Extracted::TooLong;
                }
                return self.check(percent_decode(raw));
            }
        };
        value.map_or(Extracted::Missing, |v| self.check(Cow::Borrowed(v)))
    }

    /// The client's address for `request`, as the `ip` key would find it.
    ///
    /// ```
    /// use fluxgate_core::key::{KeyExtractor, PeerAddr};
    ///
    /// let extractor = KeyExtractor::new("header.x-user".parse().unwrap());
    /// let mut request = http::Request::new(());
    /// request.extensions_mut().insert(PeerAddr("[::ffff:192.0.2.8]:9000".parse().unwrap()));
    /// assert_eq!(extractor.client_ip(&request), Some("192.0.2.8".parse().unwrap()));
    /// ```
    pub fn client_ip<B>(&self, request: &Request<B>) -> Option<IpAddr> {
        let peer = peer_addr(request.extensions()).map(|p| p.ip());
        self.client_ip.client_ip(peer, request.headers())
    }

    fn check<'r>(&self, value: Cow<'r, [u8]>) -> Extracted<'r> {
        if value.is_empty() {
            Extracted::Missing
        } else if value.len() > self.max_len {
            Extracted::TooLong
        } else {
            Extracted::Key(value)
        }
    }
}

/// The value of the first cookie named `name` over all `Cookie` headers.
fn cookie<'r>(headers: &'r HeaderMap, name: &[u8]) -> Option<&'r [u8]> {
    headers.get_all(header::COOKIE).iter().find_map(|line| {
        line.as_bytes().split(|b| *b == b';').find_map(|pair| {
            let (key, value) = split_pair(pair);
            (key.trim_ascii() == name).then(|| match value.trim_ascii() {
                [b'"', inner @ .., b'"'] => inner,
                value => value,
            })
        })
    })
}

/// The raw value of the first query parameter named `name`.
fn query_param<'r>(uri: &'r Uri, name: &[u8]) -> Option<&'r [u8]> {
    let query = uri.query()?.as_bytes();
    query.split(|b| *b == b'&').find_map(|pair| {
        let (key, value) = split_pair(pair);
        (key == name).then_some(value)
    })
}

/// Splits `key=value` at the first `=`; without one, the value is empty.
fn split_pair(pair: &[u8]) -> (&[u8], &[u8]) {
    match pair.iter().position(|b| *b == b'=') {
        Some(eq) => (&pair[..eq], &pair[eq + 1..]),
        None => (pair, &[]),
    }
}

/// Decodes `%XX` escapes; borrows when there is no `%`. Invalid escapes are kept as they are.
fn percent_decode(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'%') {
        return Cow::Borrowed(raw);
    }
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&byte) = raw.get(i) {
        if byte == b'%'
            && let (Some(high), Some(low)) = (hex(raw.get(i + 1)), hex(raw.get(i + 2)))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests;
