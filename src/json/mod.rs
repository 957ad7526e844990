//! Small JSON helpers shared by the body and stream handling, the hot
//! path's typed reader ([`read`]) and JSON values of no fixed shape
//! ([`value`]).

pub mod float;
pub mod read;
pub mod value;

pub use read::Raw;
pub use value::{Map, Number, Value};

/// A field that may be absent, borrowed raw; unlike `Option`, a JSON `null`
/// is `Some` (its span can be replaced like any other value).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Present<'a>(pub Option<Raw<'a>>);

#[cfg(test)]
impl<'de: 'a, 'a> serde::Deserialize<'de> for Present<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a serde_json::value::RawValue>::deserialize(d)
            .map(|raw| Present(Some(Raw::new(raw.get()))))
    }
}

impl<'a> read::FromJson<'a> for Present<'a> {
    fn read(r: &mut read::Reader<'a>) -> read::R<Self> {
        r.raw().map(|raw| Present(Some(raw)))
    }
}

/// `text` as one JSON value, as `serde_json::from_str::<Value>` reads it.
pub fn parse(text: &str) -> Result<Value, read::Failure> {
    Value::parse(text)
}

/// Sorts `items` by `key`, ascending and stable (ties keep their order), as
/// `sort_by_key` does. Every caller shares one instantiation of the
/// module's sort ([`crate::sort`]), on `(key, index)` triples (unique, so
/// its instability does not show), instead of one stable sort per element
/// type and key (~4.5 KB of wasm each).
pub fn sort_spans<T>(items: &mut [T], key: impl Fn(&T) -> (usize, usize)) {
    // Often already in order (one detector, one splice): nothing to move.
    if items.windows(2).all(|w| key(&w[0]) <= key(&w[1])) {
        return;
    }
    let mut order: Vec<(usize, usize, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let (a, b) = key(item);
            (a, b, i)
        })
        .collect();
    crate::sort::sort(&mut order);
    // Position `j` takes the item at `order[j].2`: walk each cycle of that
    // permutation once, marking the positions done.
    for i in 0..order.len() {
        let mut j = i;
        while let Some(slot) = order.get_mut(j) {
            let from = std::mem::replace(&mut slot.2, usize::MAX);
            if from == usize::MAX || from == i {
                break;
            }
            items.swap(j, from);
            j = from;
        }
    }
}

/// Byte offset of `inner` (a sub-slice of `outer`) within `outer`.
pub fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

/// Appends `n` in decimal, as JSON (and `format!`) write it, without
/// `core::fmt`.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Encodes `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    push_string(&mut out, s);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `s` as a JSON string literal, escaped as `serde_json` escapes
/// it (the two-character escapes, `\u00XX` for other control characters,
/// nothing else).
pub fn push_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    // Plain runs are found eight bytes at a time in the VM.
    while let Some(i) = bytes
        .get(start..)
        .and_then(crate::bytes::string_stop)
        .map(|k| start + k)
    {
        let b = bytes.get(i).copied().unwrap_or_default();
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            _ => b'u',
        };
        out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        out.push(b'\\');
        out.push(short);
        if short == b'u' {
            out.extend_from_slice(&[
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        }
        start = i + 1;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}

/// Appends `x` as `serde_json` writes an `f64` (shortest round trip, by
/// the `zmij` crate serde_json formats with; `null` when not finite).
pub fn push_float(out: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(x).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Appends `n` as serde_json writes a number.
pub fn push_number(out: &mut Vec<u8>, n: Number) {
    match n {
        Number::Pos(n) => push_decimal(out, n),
        Number::Neg(n) => {
            out.push(b'-');
            push_decimal(out, n.unsigned_abs());
        }
        Number::Float(x) => push_float(out, x),
    }
}

/// Appends `v` as `serde_json::to_vec` writes it (compact, an object's
/// keys in order), without serde_json's serializer.
pub fn push_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => push_number(out, *n),
        Value::String(s) => push_string(out, s),
        Value::Array(items) => push_array(out, items.iter()),
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_string(out, k);
                out.push(b':');
                push_value(out, v);
            }
            out.push(b'}');
        }
    }
}

/// Appends the values `items` as a JSON array.
pub fn push_array<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = &'a Value>) {
    out.push(b'[');
    for (i, v) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_value(out, v);
    }
    out.push(b']');
}

/// `v` as `serde_json::to_vec` writes it.
pub fn value_bytes(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    push_value(&mut out, v);
    out
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
/// escape cannot be decoded (only possible for invalid JSON). Quotes and
/// backslashes are found several bytes at a time ([`crate::bytes`]).
pub fn string_values(text: &str) -> Result<Vec<StringValue<'_>>, &'static str> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // The next opening quote is most often a byte or three on (`":"`,
    // `","`): those are looked at one by one before the wide search.
    let next_quote = |rest: &[u8]| match rest.iter().take(4).position(|&b| b == b'"') {
        Some(k) => Some(k),
        None => crate::bytes::find(rest.get(4..)?, b'"').map(|k| k + 4),
    };
    while let Some(open) = s.get(i..).and_then(next_quote) {
        let i0 = i + open;
        let mut j = i0 + 1;
        let mut escaped = false;
        // The closing quote: skip each backslash and the byte after it.
        loop {
            match s
                .get(j..)
                .and_then(|rest| crate::bytes::find2(rest, b'"', b'\\'))
            {
                Some(k) if s.get(j + k) == Some(&b'\\') => {
                    escaped = true;
                    j += k + 2;
                }
                Some(k) => {
                    j += k;
                    break;
                }
                None => {
                    j = s.len();
                    break;
                }
            }
        }
        let end = (j + 1).min(s.len());
        let is_key = s[end..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b':');
        if !is_key {
            let token = text.get(i0..end).ok_or("bad string token")?;
            let decoded = if escaped {
                read::from_str::<std::borrow::Cow<'_, str>>(token)
                    .map_err(|_| "bad string escape")?
            } else {
                std::borrow::Cow::Borrowed(
                    token.get(1..token.len().saturating_sub(1)).unwrap_or(""),
                )
            };
            out.push(StringValue {
                start: i0,
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

    /// The writer writes every value as serde_json's serializer does: the
    /// values of every document of the readers' corpus, and floats of
    /// every magnitude.
    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let docs = read::differential::corpus(read::differential::EVENTS);
        let mut written = 0;
        for doc in &docs {
            let want = serde_json::from_slice::<serde_json::Value>(doc);
            let got = Value::from_slice(doc);
            assert_eq!(
                got.is_ok(),
                want.is_ok(),
                "{}",
                String::from_utf8_lossy(doc)
            );
            if let (Ok(got), Ok(want)) = (got, want) {
                assert_eq!(
                    value_bytes(&got),
                    serde_json::to_vec(&want).unwrap(),
                    "{want}"
                );
                assert_eq!(got, Value::from_serde(&want));
                written += 1;
            }
        }
        assert!(written > 1_000, "{written}");
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..20_000 {
            crate::testing::xorshift(&mut seed);
            let x = match i % 4 {
                0 => f64::from_bits(seed),
                1 => (seed % 1_000_000) as f64 / 1000.0,
                2 => (seed >> 11) as f64 * 1e-9,
                _ => -((seed % 97) as f64) / 7.0,
            };
            let mut got = Vec::new();
            push_float(&mut got, x);
            assert_eq!(got, serde_json::to_vec(&x).unwrap(), "{x:e}");
        }
        for s in [
            "",
            "plain",
            "quo\"te",
            "back\\slash",
            "\u{0}\u{1f}\u{7f}é\n\r\t\u{8}\u{c}",
        ] {
            assert_eq!(json_string(s), serde_json::to_string(s).unwrap());
        }
    }

    /// `string_values` as first written, a byte at a time.
    fn string_values_bytewise(text: &str) -> Result<Vec<(usize, usize, String)>, &'static str> {
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
                    read::from_str::<String>(token).map_err(|_| "bad string escape")?
                } else {
                    token
                        .get(1..token.len().saturating_sub(1))
                        .unwrap_or("")
                        .to_string()
                };
                out.push((i, end, decoded));
            }
            i = end;
        }
        Ok(out)
    }

    #[test]
    fn string_values_finds_what_the_bytewise_scan_found() {
        let pieces = [
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\"",
            "\\",
            "\\\"",
            "\\n",
            "\\u00e9",
            "a",
            "é",
            "\"k\":",
            "\"v\"",
            "12",
            "\"long value with no escapes at all, long enough for memchr\"",
        ];
        let mut seed = 0x1234_5678_9abc_def1u64;
        for _ in 0..50_000 {
            crate::testing::xorshift(&mut seed);
            let n = (seed % 24) as usize;
            let text: String = (0..n)
                .map(|k| pieces[((seed >> (k % 8 * 8)) as usize + k * 7) % pieces.len()])
                .collect();
            let got = string_values(&text).map(|v| {
                v.into_iter()
                    .map(|s| (s.start, s.end, s.text.into_owned()))
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, string_values_bytewise(&text), "{text:?}");
        }
        let doc = r#"{"model":"m","messages":[{"role":"user","content":"a \"quoted\" \\ word"}]}"#;
        assert_eq!(
            string_values(doc).unwrap().len(),
            3,
            "model, role and content"
        );
    }

    #[test]
    fn sort_spans_is_the_stable_sort() {
        // Every permutation shape: random lengths, many ties.
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        for len in 0..40 {
            for _ in 0..50 {
                let v: Vec<(usize, usize, usize)> = (0..len)
                    .map(|i| {
                        crate::testing::xorshift(&mut seed);
                        ((seed % 5) as usize, (seed / 5 % 3) as usize, i)
                    })
                    .collect();
                let mut want = v.clone();
                want.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
                let mut got = v;
                sort_spans(&mut got, |x| (x.0, usize::MAX - x.1));
                assert_eq!(got, want);
            }
        }
    }

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
