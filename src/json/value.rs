//! JSON of no fixed shape, as values: output schemas, answers of odd
//! shapes, the `tools` and `stream_options` a request body rewrites, the
//! copies shadow traffic scores. serde_json's `Value`, without serde_json:
//! read by the hand reader ([`super::read`]), written by
//! [`super::push_value`], an object's keys kept sorted as serde_json's
//! default map keeps them.

use std::ops::Index;

/// A JSON value.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object.
    Object(Map),
}

/// A JSON number as serde_json holds one: a non-negative integer, a
/// negative one, or a float (never infinite or NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// An integer from 0 to `u64::MAX`.
    Pos(u64),
    /// An integer from `i64::MIN` to -1.
    Neg(i64),
    /// Any other number.
    Float(f64),
}

/// Never NaN (JSON has none), so equality is total, as serde_json's.
impl Eq for Number {}

impl Eq for Value {}

/// An object: its entries sorted by key, each key once (serde_json's
/// default map, a `BTreeMap`; also the configuration's maps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Map<T = Value>(Vec<(String, T)>);

impl<T> Default for Map<T> {
    fn default() -> Self {
        Map(Vec::new())
    }
}

impl<T> Map<T> {
    /// An empty object.
    pub fn new() -> Self {
        Map(Vec::new())
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&T> {
        self.find(key)
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|e| &e.1)
    }

    /// The value under `key`, to change.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut T> {
        match self.find(key) {
            Ok(i) => self.0.get_mut(i).map(|e| &mut e.1),
            Err(_) => None,
        }
    }

    /// Whether `key` is there.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value` (replacing what was there).
    pub fn insert(&mut self, key: String, value: T) {
        match self.find(&key) {
            Ok(i) => {
                if let Some(e) = self.0.get_mut(i) {
                    e.1 = value;
                }
            }
            Err(i) => self.0.insert(i, (key, value)),
        }
    }

    /// The entries, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &T)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    /// The values, by key.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|(_, v)| v)
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a, T> IntoIterator for &'a Map<T> {
    type Item = (&'a String, &'a T);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, T)>,
        fn(&'a (String, T)) -> (&'a String, &'a T),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

/// serde's map, as the reference the configuration's reader is tested
/// against.
#[cfg(test)]
impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Map<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        std::collections::BTreeMap::<String, T>::deserialize(d)
            .map(|m| Map(m.into_iter().collect()))
    }
}

/// serde_json's value, as the reference the configuration's reader is
/// tested against.
#[cfg(test)]
impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(d).map(|v| Value::from_serde(&v))
    }
}

#[cfg(test)]
impl Value {
    /// serde_json's value as ours.
    pub fn from_serde(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Number(match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Number::Pos(u),
                (None, Some(i)) => Number::Neg(i),
                _ => Number::Float(n.as_f64().unwrap_or_default()),
            }),
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(a) => Value::Array(a.iter().map(Value::from_serde).collect()),
            serde_json::Value::Object(m) => Value::Object(Map(m
                .iter()
                .map(|(k, v)| (k.clone(), Value::from_serde(v)))
                .collect())),
        }
    }
}

static NULL: Value = Value::Null;

impl Value {
    /// Reads one JSON document, as `serde_json::from_str::<Value>` does.
    pub fn parse(text: &str) -> Result<Value, super::read::Failure> {
        super::read::from_str_or_failure(text)
    }

    /// Reads one JSON document from bytes, as `serde_json::from_slice`.
    pub fn from_slice(bytes: &[u8]) -> Result<Value, super::read::Failure> {
        super::read::from_slice_or_failure(bytes)
    }

    /// An object's value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object().and_then(|m| m.get(key))
    }

    /// The string, when it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, when it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The elements, when it is an array.
    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The elements to change, when it is an array.
    pub fn as_array_mut(&mut self) -> Option<&mut Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The entries, when it is an object.
    pub fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The entries to change, when it is an object.
    pub fn as_object_mut(&mut self) -> Option<&mut Map> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// An integer from 0 to `u64::MAX`.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(Number::Pos(n)) => Some(*n),
            _ => None,
        }
    }

    /// An integer in `i64`'s range.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(Number::Pos(n)) => i64::try_from(*n).ok(),
            Value::Number(Number::Neg(n)) => Some(*n),
            _ => None,
        }
    }

    /// Any number, as a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(Number::Pos(n)) => Some(*n as f64),
            Value::Number(Number::Neg(n)) => Some(*n as f64),
            Value::Number(Number::Float(f)) => Some(*f),
            _ => None,
        }
    }

    /// Compact JSON text, as serde_json's `to_string`.
    pub fn to_json(&self) -> String {
        String::from_utf8_lossy(&super::value_bytes(self)).into_owned()
    }

    /// Whether it is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Whether it is a boolean.
    pub fn is_boolean(&self) -> bool {
        matches!(self, Value::Bool(_))
    }

    /// Whether it is a number.
    pub fn is_number(&self) -> bool {
        matches!(self, Value::Number(_))
    }

    /// Whether it is a string.
    pub fn is_string(&self) -> bool {
        matches!(self, Value::String(_))
    }

    /// Whether it is an array.
    pub fn is_array(&self) -> bool {
        matches!(self, Value::Array(_))
    }

    /// Whether it is an object.
    pub fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }
}

impl Index<&str> for Value {
    type Output = Value;

    /// An object's value under the key; `null` when there is none.
    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

impl Index<usize> for Value {
    type Output = Value;

    /// An array's element; `null` when there is none.
    fn index(&self, i: usize) -> &Value {
        self.as_array().and_then(|a| a.get(i)).unwrap_or(&NULL)
    }
}

impl PartialEq<&str> for Value {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl PartialEq<str> for Value {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.into())
    }
}

/// `serde_json::json!`, as our value (tests only).
#[cfg(test)]
#[macro_export]
macro_rules! json_value {
    ($($t:tt)+) => {
        $crate::json::Value::from_serde(&serde_json::json!($($t)+))
    };
}

/// Compact JSON, as serde_json's `Display` (tests only: the module writes
/// values with [`super::push_value`]).
#[cfg(test)]
impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_json())
    }
}

/// As serde_json serializes the same value (tests only).
#[cfg(test)]
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v: serde_json::Value =
            serde_json::from_slice(&super::value_bytes(self)).map_err(serde::ser::Error::custom)?;
        v.serialize(s)
    }
}
