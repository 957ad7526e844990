//! Request body handling: validate the JSON and rewrite its top-level
//! `model` field, leaving every other byte exactly as the client sent it.

use crate::error::ApiError;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The top-level fields the filter reads; every other field is validated
/// (as JSON) and skipped.
#[derive(Deserialize)]
struct TopLevel<'a> {
    #[serde(borrow, default)]
    model: Present<'a>,
}

/// A field that may be absent; unlike `Option`, a JSON `null` is `Some`.
#[derive(Default)]
struct Present<'a>(Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for Present<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(|raw| Present(Some(raw)))
    }
}

/// Validates a request body and, when `model` is given, returns the body
/// with its top-level `model` replaced (or inserted when absent).
///
/// Returns `Ok(None)` when the body is valid and needs no change.
pub fn rewrite_model(body: &[u8], model: Option<&str>) -> Result<Option<Vec<u8>>, ApiError> {
    let top = parse_top_level(body)?;
    let Some(model) = model else {
        return Ok(None);
    };
    let encoded = json_string(model);
    match top.model.0 {
        Some(raw) => {
            let start = offset_in(body, raw.get().as_bytes());
            let end = start + raw.get().len();
            if body.get(start..end) == Some(encoded.as_bytes()) {
                return Ok(None);
            }
            let mut out = Vec::with_capacity(body.len() - (end - start) + encoded.len());
            out.extend_from_slice(&body[..start]);
            out.extend_from_slice(encoded.as_bytes());
            out.extend_from_slice(&body[end..]);
            Ok(Some(out))
        }
        None => {
            // Insert right after the opening brace; keep the object valid
            // whether or not it had members.
            let brace = body.iter().position(|b| *b == b'{').unwrap_or(0);
            let rest = &body[brace + 1..];
            let empty = rest
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'}');
            let mut out = Vec::with_capacity(body.len() + encoded.len() + 10);
            out.extend_from_slice(&body[..=brace]);
            out.extend_from_slice(b"\"model\":");
            out.extend_from_slice(encoded.as_bytes());
            if !empty {
                out.push(b',');
            }
            out.extend_from_slice(rest);
            Ok(Some(out))
        }
    }
}

fn parse_top_level(body: &[u8]) -> Result<TopLevel<'_>, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => return Err(ApiError::invalid_json("request body is empty")),
        Some(b'{') => {}
        Some(_) => return Err(ApiError::invalid_json("request body must be a JSON object")),
    }
    // serde_json skips ignored strings without checking their UTF-8.
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::invalid_json("request body is not valid UTF-8"))?;
    serde_json::from_str::<TopLevel<'_>>(text).map_err(|e| {
        // Never echo the body: the message says where, not what.
        let what = match e.classify() {
            serde_json::error::Category::Eof => "request body is truncated JSON",
            serde_json::error::Category::Data => "request body has an invalid `model` field",
            _ => "request body is not valid JSON",
        };
        ApiError::invalid_json(&format!(
            "{what} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// Byte offset of `inner` (a sub-slice of `outer`) within `outer`.
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

/// Encodes `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(body: &str, model: &str) -> String {
        match rewrite_model(body.as_bytes(), Some(model)) {
            Ok(Some(b)) => String::from_utf8(b).unwrap_or_default(),
            Ok(None) => body.to_string(),
            Err(e) => format!("ERR {} {}", e.status, e.code),
        }
    }

    #[test]
    fn replaces_model_keeping_every_other_byte() {
        let body = "{ \"messages\" : [{\"role\":\"user\",\"content\":\"caf\\u00e9 \\\"q\\\"\"}],\n  \"model\" :\t\"gpt-4o-mini\" , \"temperature\":0.70}";
        let out = rewrite(body, "gpt-4.1-mini");
        assert_eq!(out, body.replace("\"gpt-4o-mini\"", "\"gpt-4.1-mini\""));
    }

    #[test]
    fn nested_model_keys_are_not_touched() {
        let body = r#"{"metadata":{"model":"x"},"model":"a","tools":[{"model":"y"}]}"#;
        assert_eq!(
            rewrite(body, "b"),
            r#"{"metadata":{"model":"x"},"model":"b","tools":[{"model":"y"}]}"#
        );
    }

    #[test]
    fn inserts_model_when_absent() {
        assert_eq!(
            rewrite(r#"{"messages":[]}"#, "m"),
            r#"{"model":"m","messages":[]}"#
        );
        assert_eq!(rewrite("  { }", "m"), r#"  {"model":"m" }"#);
    }

    #[test]
    fn model_values_are_escaped() {
        assert_eq!(
            rewrite(r#"{"model":"a"}"#, "we\"ird"),
            r#"{"model":"we\"ird"}"#
        );
    }

    #[test]
    fn escaped_key_is_recognised() {
        assert_eq!(
            rewrite(r#"{"mod\u0065l":"a"}"#, "b"),
            r#"{"mod\u0065l":"b"}"#
        );
    }

    #[test]
    fn non_string_model_is_replaced_too() {
        assert_eq!(rewrite(r#"{"model":null}"#, "b"), r#"{"model":"b"}"#);
    }

    #[test]
    fn unchanged_when_already_right_or_no_model_configured() {
        assert!(matches!(
            rewrite_model(br#"{"model":"a"}"#, Some("a")),
            Ok(None)
        ));
        assert!(matches!(rewrite_model(br#"{"model":"a"}"#, None), Ok(None)));
    }

    #[test]
    fn invalid_bodies_are_400_without_echoing_content() {
        for body in [
            "",
            "   ",
            "[1,2]",
            "\"str\"",
            "{\"model\":\"secret-prompt",
            "{\"messages\": [secret]}",
            "{\"model\":\"a\",\"model\":\"b\"}",
            "{\"a\":1} trailing",
            "{\"a\":\"\u{0}\"}",
        ] {
            match rewrite_model(body.as_bytes(), Some("m")) {
                Err(e) => {
                    assert_eq!(e.status, 400, "{body:?}");
                    assert_eq!(e.code, "invalid_json");
                    assert!(!e.message.contains("secret"), "{}", e.message);
                }
                Ok(_) => panic!("accepted {body:?}"),
            }
        }
    }

    /// Random and mutated bodies never panic, and every accepted body comes
    /// out as a JSON object carrying the new model and the same other fields.
    #[test]
    fn arbitrary_bodies_never_panic() {
        let seeds: [&[u8]; 4] = [
            br#"{"model":"a","messages":[{"role":"user","content":"hi \u00e9"}],"n":1}"#,
            br#"{"messages":[],"model":null,"x":{"model":[1,2,{"a":"b"}]}}"#,
            b"{}",
            br#"  {"stream":true , "model" : "gpt" }  "#,
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let seed = seeds[round % seeds.len()];
            let mut body = seed.to_vec();
            for _ in 0..(next() % 4) {
                let r = next();
                let pos = (r as usize >> 8) % (body.len() + 1);
                match r % 3 {
                    0 if pos < body.len() => body[pos] = (r >> 32) as u8,
                    1 => body.insert(pos, (r >> 40) as u8),
                    _ if pos < body.len() => {
                        body.remove(pos);
                    }
                    _ => {}
                }
            }
            if let Ok(Some(out)) = rewrite_model(&body, Some("new-model")) {
                let v: serde_json::Value = match serde_json::from_slice(&out) {
                    Ok(v) => v,
                    Err(e) => panic!(
                        "rewrite produced invalid JSON {e}: {:?}",
                        String::from_utf8_lossy(&out)
                    ),
                };
                assert_eq!(v["model"], "new-model");
                let before: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if let (Some(a), Some(b)) = (before.as_object(), v.as_object()) {
                    assert_eq!(a.len() + usize::from(!a.contains_key("model")), b.len());
                }
            }
        }
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert!(rewrite_model(b"{\"a\":\"\xff\"}", Some("m")).is_err());
    }

    #[test]
    fn deep_nesting_is_handled_without_a_crash() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            rewrite_model(deep.as_bytes(), Some("m")),
            Ok(Some(_))
        ));
        let unbalanced = format!("{{\"a\":{}}}", "[".repeat(100_000));
        assert!(rewrite_model(unbalanced.as_bytes(), Some("m")).is_err());
    }
}
