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

/// A string value (not a key) of a JSON document: its token's byte span
/// (quotes included) and its decoded text.
pub struct StringValue<'a> {
    /// Start of the token (the opening quote).
    pub start: usize,
    /// End of the token (after the closing quote).
    pub end: usize,
    /// The decoded value.
    pub text: std::borrow::Cow<'a, str>,
}

/// Every string value of a valid JSON document, in order. `Err` when an
/// escape cannot be decoded (only possible for invalid JSON).
pub fn string_values(text: &str) -> Result<Vec<StringValue<'_>>, &'static str> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'"' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let mut escaped = false;
        while j < s.len() && s[j] != b'"' {
            if s[j] == b'\\' {
                escaped = true;
                j += 1;
            }
            j += 1;
        }
        let end = (j + 1).min(s.len());
        let is_key = s[end..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b':');
        if !is_key {
            let token = text.get(i..end).ok_or("bad string token")?;
            let decoded = if escaped {
                std::borrow::Cow::Owned(
                    serde_json::from_str::<String>(token).map_err(|_| "bad string escape")?,
                )
            } else {
                std::borrow::Cow::Borrowed(
                    token.get(1..token.len().saturating_sub(1)).unwrap_or(""),
                )
            };
            out.push(StringValue {
                start: i,
                end,
                text: decoded,
            });
        }
        i = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_values_skip_keys_and_decode_escapes() {
        let doc = r#"{"a":"x","b":["y\u0040z",{"c" : "w\"q"}],"d":1}"#;
        let values: Vec<String> = string_values(doc)
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.text.into_owned())
            .collect();
        assert_eq!(values, vec!["x", "y@z", "w\"q"]);
        let spans: Vec<&str> = string_values(doc)
            .unwrap_or_default()
            .into_iter()
            .map(|v| &doc[v.start..v.end])
            .collect();
        assert_eq!(spans, vec!["\"x\"", "\"y\\u0040z\"", "\"w\\\"q\""]);
    }
}
