//! Small JSON helpers shared by the body and stream handling.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// A field that may be absent, borrowed raw; unlike `Option`, a JSON `null`
/// is `Some` (its span can be replaced like any other value).
#[derive(Debug, Default, Clone, Copy)]
pub struct Present<'a>(pub Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for Present<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(|raw| Present(Some(raw)))
    }
}

/// Byte offset of `inner` (a sub-slice of `outer`) within `outer`.
pub fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

/// Encodes `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}
