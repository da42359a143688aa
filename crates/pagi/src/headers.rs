//! Header lists: ordered `(name, value)` byte pairs, duplicates allowed.

use bytes::Bytes;
use std::fmt;

/// An ordered list of `(name, value)` byte pairs, as in the spec's
/// `ArrayRef[ArrayRef[Bytes]]`. Names of request headers are lower-case;
/// values are opaque bytes. Duplicate names are kept (e.g. `set-cookie`).
///
/// ```
/// let h = pagi::Headers::from([("content-type", "text/plain"), ("set-cookie", "a=1")]);
/// assert_eq!(h.get("Content-Type").map(|v| &v[..]), Some(&b"text/plain"[..]));
/// assert_eq!(h.len(), 2);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(Bytes, Bytes)>);

impl Headers {
    /// An empty list.
    pub const fn new() -> Self {
        Headers(Vec::new())
    }

    /// An empty list with room for `n` pairs.
    pub fn with_capacity(n: usize) -> Self {
        Headers(Vec::with_capacity(n))
    }

    /// Append a pair.
    pub fn push(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.0.push((name.into(), value.into()));
    }

    /// Append a pair, builder style.
    pub fn with(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.push(name, value);
        self
    }

    /// The first value whose name matches `name` case-insensitively.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Every value whose name matches `name` case-insensitively, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Whether any comma-separated element of the `name` values equals
    /// `token` (both case-insensitive), as in `Connection: keep-alive,
    /// Upgrade` or `TE: trailers`.
    ///
    /// ```
    /// let h = pagi::Headers::new().with("connection", "keep-alive, Upgrade");
    /// assert!(h.has_token("Connection", "upgrade"));
    /// assert!(!h.has_token("connection", "close"));
    /// ```
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name).any(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// Whether a header named `name` (case-insensitive) is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Remove every header named `name` (case-insensitive).
    pub fn remove(&mut self, name: &str) {
        self.0
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
    }

    /// The pairs, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, (Bytes, Bytes)> {
        self.0.iter()
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Check every pair with [`validate_header`].
    pub fn validate(&self) -> Result<(), InvalidHeader> {
        self.0.iter().try_for_each(|(n, v)| validate_header(n, v))
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.0
                    .iter()
                    .map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

impl<K: Into<Bytes>, V: Into<Bytes>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Headers(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<K: Into<Bytes>, V: Into<Bytes>> From<Vec<(K, V)>> for Headers {
    fn from(v: Vec<(K, V)>) -> Self {
        v.into_iter().collect()
    }
}

impl<K: Into<Bytes>, V: Into<Bytes>, const N: usize> From<[(K, V); N]> for Headers {
    fn from(v: [(K, V); N]) -> Self {
        v.into_iter().collect()
    }
}

impl IntoIterator for Headers {
    type Item = (Bytes, Bytes);
    type IntoIter = std::vec::IntoIter<(Bytes, Bytes)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a (Bytes, Bytes);
    type IntoIter = std::slice::Iter<'a, (Bytes, Bytes)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Why a header cannot go on the wire (see [`validate_header`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidHeader {
    what: &'static str,
}

impl fmt::Display for InvalidHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
}

impl std::error::Error for InvalidHeader {}

/// The spec's header byte-safety rule: a server MUST NOT emit a header whose
/// name or value contains CR, LF or NUL, nor a name with any other control
/// character (or that is empty, or holds a separator that cannot be in an
/// HTTP token). Servers call this on every header an app sends and fail the
/// send on error, so apps need not pre-validate.
///
/// ```
/// assert!(pagi::validate_header(b"x-ok", b"fine value").is_ok());
/// assert!(pagi::validate_header(b"x-bad", b"a\r\nInjected: 1").is_err());
/// assert!(pagi::validate_header(b"bad\x01name", b"v").is_err());
/// ```
pub fn validate_header(name: &[u8], value: &[u8]) -> Result<(), InvalidHeader> {
    if name.is_empty() {
        return Err(InvalidHeader {
            what: "Invalid header name: empty",
        });
    }
    if name.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(InvalidHeader {
            what: "Invalid header name: contains CR, LF, or null byte",
        });
    }
    if name.iter().any(|&b| !is_tchar(b)) {
        return Err(InvalidHeader {
            what: "Invalid header name: contains control characters or separators",
        });
    }
    if value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(InvalidHeader {
            what: "Invalid header value: contains CR, LF, or null byte",
        });
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_injection_is_rejected() {
        for v in [&b"a\rb"[..], b"a\nb", b"a\0b"] {
            assert!(validate_header(b"x", v).is_err());
        }
        assert!(validate_header(b"x y", b"v").is_err());
        assert!(validate_header(b"", b"v").is_err());
        assert!(validate_header(b"X-Custom_1", b"tab\tis fine").is_ok());
    }

    #[test]
    fn lookup_is_case_insensitive_and_keeps_duplicates() {
        let h = Headers::from(vec![("set-cookie", "a"), ("Set-Cookie", "b")]);
        assert_eq!(h.get_all("SET-COOKIE").count(), 2);
        let mut h2 = h.clone();
        h2.remove("set-cookie");
        assert!(h2.is_empty());
    }
}
