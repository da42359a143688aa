//! The spec's permitted data types, for extension data.

use bytes::Bytes;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A value of one of PAGI's permitted data types (strings, byte strings,
/// 64-bit integers, finite floats, absence, lists and maps).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Absence of a value (`undef`).
    Null,
    /// A signed 64-bit integer; also the spec's boolean (0 or 1).
    Int(i64),
    /// A finite IEEE 754 double.
    Float(f64),
    /// A text string.
    Str(String),
    /// A byte string.
    Bytes(Bytes),
    /// A list.
    List(Vec<Value>),
    /// A map with string keys.
    Map(BTreeMap<String, Value>),
}

/// The capabilities a server advertises on a scope (`scope.extensions`):
/// each present key names an extension (e.g. `websocket.http.response`)
/// mapping to its (possibly empty) data. Apps check [`Extensions::contains`]
/// before sending an extension's events.
///
/// ```
/// let mut ext = pagi::Extensions::default();
/// ext.insert("websocket.http.response", Default::default());
/// assert!(ext.contains("websocket.http.response"));
/// assert!(!ext.contains("fullflush"));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extensions(Vec<(Cow<'static, str>, Arc<ExtensionData>)>);

/// The data of one extension: a map of the spec's permitted values.
pub type ExtensionData = BTreeMap<String, Value>;

// A short list sorted by name rather than a `BTreeMap`: a scope has a
// handful of extensions at most, and dropping an empty map walks the tree
// (the server drops one empty set per request). The data is shared: a
// server builds it once per connection (TLS details, say) and every scope
// on that connection gets it for a reference count.
impl Extensions {
    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| n.as_ref().cmp(name))
    }

    /// Whether the extension `name` is advertised.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// The data of extension `name`, if advertised.
    pub fn get(&self, name: &str) -> Option<&ExtensionData> {
        self.find(name).ok().map(|i| &*self.0[i].1)
    }

    /// Advertise extension `name` with `data` (replacing earlier data).
    pub fn insert(&mut self, name: impl Into<Cow<'static, str>>, data: ExtensionData) {
        self.insert_shared(name, Arc::new(data));
    }

    /// Advertise extension `name` with data shared with other scopes.
    pub fn insert_shared(&mut self, name: impl Into<Cow<'static, str>>, data: Arc<ExtensionData>) {
        let name = name.into();
        match self.find(&name) {
            Ok(i) => self.0[i].1 = data,
            Err(i) => self.0.insert(i, (name, data)),
        }
    }

    /// The advertised extension names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_stay_sorted_and_insert_replaces() {
        let mut ext = Extensions::default();
        ext.insert("tls", BTreeMap::new());
        ext.insert("fullflush", BTreeMap::new());
        let mut data = BTreeMap::new();
        data.insert("v".to_owned(), Value::Int(2));
        ext.insert("tls", data.clone());
        assert_eq!(ext.names().collect::<Vec<_>>(), ["fullflush", "tls"]);
        assert_eq!(ext.get("tls"), Some(&data));
        assert!(ext.contains("fullflush") && !ext.contains("http2"));
    }
}
