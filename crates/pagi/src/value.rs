//! The spec's permitted data types, for extension data.

use bytes::Bytes;
use std::collections::BTreeMap;

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
pub struct Extensions(BTreeMap<String, BTreeMap<String, Value>>);

impl Extensions {
    /// Whether the extension `name` is advertised.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The data of extension `name`, if advertised.
    pub fn get(&self, name: &str) -> Option<&BTreeMap<String, Value>> {
        self.0.get(name)
    }

    /// Advertise extension `name` with `data`.
    pub fn insert(&mut self, name: impl Into<String>, data: BTreeMap<String, Value>) {
        self.0.insert(name.into(), data);
    }

    /// The advertised extension names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}
