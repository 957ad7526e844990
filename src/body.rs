//! Request body handling: validate the JSON, read what the filter needs
//! (stream flag, a token estimate of the prompt), and apply the filter's
//! edits (`model`, the output cap, `stream_options.include_usage`, each as
//! the request's API spells it: [`crate::dialect`]) while leaving every
//! other byte exactly as the client sent it.

use crate::error::ApiError;
use crate::json::read::{FromJson, Kind, Reader, R};
use crate::json::{json_string, offset_in, Present};
use crate::tokens::TokenCounter;
#[cfg(test)]
use serde::Deserialize;
use std::borrow::Cow;

/// The top-level fields the filter reads; every other field is validated
/// (as JSON) and skipped.
#[derive(Default)]
#[cfg_attr(test, derive(Deserialize))]
struct TopLevel<'a> {
    #[cfg_attr(test, serde(borrow, default))]
    model: Present<'a>,
    #[cfg_attr(test, serde(borrow, default))]
    stream: Present<'a>,
    #[cfg_attr(test, serde(borrow, default))]
    stream_options: Present<'a>,
    // The prompt, wherever its API keeps it: Chat and Messages `messages`,
    // Completions `prompt`, Responses and Embeddings `input`, Responses
    // `instructions`, Messages `system`.
    #[cfg_attr(test, serde(default))]
    messages: Counted,
    #[cfg_attr(test, serde(default))]
    prompt: Counted,
    #[cfg_attr(test, serde(default))]
    input: Counted,
    #[cfg_attr(test, serde(default))]
    instructions: Counted,
    #[cfg_attr(test, serde(default))]
    system: Counted,
    #[cfg_attr(test, serde(borrow, default))]
    max_tokens: Present<'a>,
    #[cfg_attr(test, serde(borrow, default))]
    max_completion_tokens: Present<'a>,
    #[cfg_attr(test, serde(borrow, default))]
    max_output_tokens: Present<'a>,
    #[cfg_attr(test, serde(borrow, default))]
    tools: Present<'a>,
    #[cfg_attr(test, serde(borrow, default))]
    response_format: Present<'a>,
    /// Responses: `text.format` is its structured output.
    #[cfg_attr(test, serde(borrow, default))]
    text: Present<'a>,
}

crate::from_json!(TopLevel<'a> {
    model,
    stream,
    stream_options,
    messages,
    prompt,
    input,
    instructions,
    system,
    max_tokens,
    max_completion_tokens,
    max_output_tokens,
    tools,
    response_format,
    text,
});

/// Counts the text of every string value inside a field (keys excluded).
#[derive(Default)]
struct Counted(TokenCounter);

impl<'a> FromJson<'a> for Counted {
    fn read(r: &mut Reader<'a>) -> R<Self> {
        let mut counter = TokenCounter::default();
        r.strings(&mut |s, ascii| {
            if ascii {
                counter.add_ascii(s.len());
            } else {
                counter.add(s);
            }
        })?;
        Ok(Counted(counter))
    }
}

/// serde's reading of a counted field: the reference the hand reader is
/// held to.
#[cfg(test)]
mod counted_by_serde {
    use super::{Counted, TokenCounter};
    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde::Deserialize;
    use std::fmt;

    impl<'de> Deserialize<'de> for Counted {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let mut counter = TokenCounter::default();
            d.deserialize_any(CountVisitor(&mut counter))?;
            Ok(Counted(counter))
        }
    }

    struct CountVisitor<'c>(&'c mut TokenCounter);

    impl<'de> de::DeserializeSeed<'de> for CountVisitor<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for CountVisitor<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_str<E>(self, v: &str) -> Result<(), E> {
            self.0.add(v);
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(CountVisitor(&mut *self.0))?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while map.next_key::<de::IgnoredAny>()?.is_some() {
                map.next_value_seed(CountVisitor(&mut *self.0))?;
            }
            Ok(())
        }
    }
}

/// What the filter does to a request body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Edits<'a> {
    /// Replace (or insert) the top-level `model`.
    pub model: Option<&'a str>,
    /// For streaming requests, make sure `stream_options.include_usage` is
    /// true so the provider reports usage in a final chunk.
    pub ensure_stream_usage: bool,
    /// Make a streaming request non-streaming: `stream` becomes `false`
    /// and `stream_options` (refused without `stream: true`) is removed.
    pub no_stream: bool,
    /// Cap whichever of `max_tokens` / `max_completion_tokens` the client
    /// sent; when it sent neither, insert `cap_param`.
    pub max_output_tokens: Option<u64>,
    /// The parameter inserted when the client sent no output limit, for
    /// Chat Completions (other APIs have their own: [`crate::dialect`]).
    pub cap_param: CapParam,
    /// The API the body is written for.
    pub api: crate::dialect::Api,
    /// Tool names allowed; others are reported in
    /// [`RequestInfo::disallowed_tools`] (or removed with `strip_tools`).
    pub allowed_tools: Option<&'a [String]>,
    /// Remove disallowed tools instead of reporting them (when at least
    /// one allowed tool remains).
    pub strip_tools: bool,
}

/// The name of the output-token limit the filter inserts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CapParam {
    /// `max_completion_tokens`: the current OpenAI name, accepted by every
    /// OpenAI model (reasoning models refuse `max_tokens`) and by vLLM.
    #[default]
    MaxCompletionTokens,
    /// `max_tokens`: for backends that only know the older name (and the
    /// name of legacy Completions and of Anthropic Messages).
    MaxTokens,
    /// `max_output_tokens`: the Responses API's.
    MaxOutputTokens,
}

impl CapParam {
    /// The JSON member name.
    pub fn as_str(self) -> &'static str {
        match self {
            CapParam::MaxCompletionTokens => "max_completion_tokens",
            CapParam::MaxTokens => "max_tokens",
            CapParam::MaxOutputTokens => "max_output_tokens",
        }
    }
}

/// What the filter learned from a request body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// `stream: true`.
    pub stream: bool,
    /// The filter added `include_usage` (the client did not ask for usage).
    pub usage_injected: bool,
    /// Estimated prompt tokens (the text of `messages`, `prompt`, `input`,
    /// `instructions` and `system`).
    pub prompt_tokens_est: u64,
    /// The `model` the client sent, if it was a string.
    pub client_model: Option<String>,
    /// The completion token limit the request goes upstream with.
    pub output_cap: Option<u64>,
    /// Tools offered that are not allowed (left in the request).
    pub disallowed_tools: Vec<String>,
    /// Tools removed by `strip_tools`.
    pub stripped_tools: Vec<String>,
    /// The schema of `response_format: {"type": "json_schema", …}`.
    pub response_schema: Option<crate::json::Value>,
}

/// The body to forward (`None`: unchanged) and what was learned.
#[derive(Debug)]
pub struct Prepared {
    /// The new body, when it changed.
    pub body: Option<Vec<u8>>,
    /// Facts about the request.
    pub info: RequestInfo,
}

/// Validates a request body and applies `edits`.
pub fn prepare(body: &[u8], edits: Edits<'_>) -> Result<Prepared, ApiError> {
    let top = parse_top_level(body)?;
    let mut info = RequestInfo {
        stream: top.stream.0.is_some_and(|raw| raw.get() == "true"),
        prompt_tokens_est: top.messages.0.tokens()
            + top.prompt.0.tokens()
            + top.input.0.tokens()
            + top.instructions.0.tokens()
            + top.system.0.tokens(),
        client_model: top
            .model
            .0
            .and_then(|raw| crate::json::read::from_str::<String>(raw.get()).ok()),
        ..RequestInfo::default()
    };
    // (start, end, replacement): end == start inserts after the brace.
    let mut splices: Vec<(usize, usize, Cow<'static, [u8]>)> = Vec::new();
    let brace = body.iter().position(|b| *b == b'{').unwrap_or(0) + 1;
    let object_empty = body[brace..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'}');

    if let Some(model) = edits.model {
        let encoded = json_string(model);
        match top.model.0 {
            Some(raw) if raw.get() == encoded => {}
            Some(raw) => {
                let start = offset_in(body, raw.get().as_bytes());
                splices.push((start, start + raw.get().len(), encoded.into_bytes().into()));
            }
            None => splices.push((
                brace,
                brace,
                format!("\"model\":{encoded}").into_bytes().into(),
            )),
        }
    }
    let output_cap = edits.api.output_cap(edits.cap_param);
    let limits = output_cap.fields.iter().filter_map(|f| match *f {
        "max_tokens" => top.max_tokens.0,
        "max_completion_tokens" => top.max_completion_tokens.0,
        "max_output_tokens" => top.max_output_tokens.0,
        _ => None,
    });
    // The Responses API refuses a `max_output_tokens` below 16.
    let floor = if edits.api == crate::dialect::Api::Responses {
        16
    } else {
        1
    };
    if let Some(cap) = edits.max_output_tokens.map(|c| c.max(floor)) {
        let mut seen = false;
        for raw in limits {
            // A null limit means "no limit": it gets the cap like a larger one.
            seen = true;
            let asked = raw.get().parse::<u64>().ok();
            if asked.is_none_or(|n| n > cap) {
                let start = offset_in(body, raw.get().as_bytes());
                splices.push((
                    start,
                    start + raw.get().len(),
                    cap.to_string().into_bytes().into(),
                ));
            }
            info.output_cap = Some(
                asked
                    .map_or(cap, |n| n.min(cap))
                    .min(info.output_cap.unwrap_or(u64::MAX)),
            );
        }
        if let (false, Some(param)) = (seen, output_cap.insert) {
            let name = param.as_str();
            splices.push((
                brace,
                brace,
                format!("\"{name}\":{cap}").into_bytes().into(),
            ));
            info.output_cap = Some(cap);
        }
    } else {
        info.output_cap = limits.filter_map(|raw| raw.get().parse::<u64>().ok()).min();
    }
    if let (Some(allowed), Some(raw)) = (edits.allowed_tools, top.tools.0) {
        if let Ok(crate::json::Value::Array(tools)) = crate::json::parse(raw.get()) {
            // Chat: `function.name`; Responses and Messages: `name`; a
            // built-in tool without one (Responses `web_search`,
            // `file_search`, …) by its `type`.
            let name = |t: &crate::json::Value| {
                t["function"]["name"]
                    .as_str()
                    .or_else(|| t["name"].as_str())
                    .or_else(|| t["type"].as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let (ok, bad): (Vec<_>, Vec<_>) = tools
                .iter()
                .partition(|t| allowed.iter().any(|a| *a == name(t)));
            if !bad.is_empty() {
                if edits.strip_tools && !ok.is_empty() {
                    info.stripped_tools = bad.iter().map(|t| name(t)).collect();
                    let mut kept = Vec::new();
                    crate::json::push_array(&mut kept, ok.iter().copied());
                    let start = offset_in(body, raw.get().as_bytes());
                    splices.push((start, start + raw.get().len(), kept.into()));
                } else {
                    info.disallowed_tools = bad.iter().map(|t| name(t)).collect();
                }
            }
        }
    }
    // Chat: `response_format: {"type": "json_schema", "json_schema":
    // {"schema"}}`; Responses: `text: {"format": {"type": "json_schema",
    // "schema"}}`.
    if let Some(raw) = top.response_format.0 {
        if let Ok(v) = crate::json::parse(raw.get()) {
            if v["type"] == "json_schema" {
                info.response_schema = v["json_schema"].get("schema").cloned();
            }
        }
    } else if let Some(raw) = top.text.0 {
        if let Ok(v) = crate::json::parse(raw.get()) {
            if v["format"]["type"] == "json_schema" {
                info.response_schema = v["format"].get("schema").cloned();
            }
        }
    }
    if edits.ensure_stream_usage && info.stream && edits.api.asks_stream_usage() {
        match top.stream_options.0 {
            None => {
                splices.push((
                    brace,
                    brace,
                    br#""stream_options":{"include_usage":true}"#.as_slice().into(),
                ));
                info.usage_injected = true;
            }
            Some(raw) => {
                let parsed = crate::json::parse(raw.get());
                if let Ok(crate::json::Value::Object(mut map)) = parsed {
                    if map.get("include_usage") != Some(&crate::json::Value::Bool(true)) {
                        map.insert("include_usage".into(), crate::json::Value::Bool(true));
                        let start = offset_in(body, raw.get().as_bytes());
                        let value = crate::json::value_bytes(&crate::json::Value::Object(map));
                        splices.push((start, start + raw.get().len(), value.into()));
                        info.usage_injected = true;
                    }
                }
            }
        }
    }
    if edits.no_stream && info.stream {
        if let Some(raw) = top.stream.0 {
            let start = offset_in(body, raw.get().as_bytes());
            splices.push((start, start + raw.get().len(), b"false".as_slice().into()));
        }
        if let Some(span) = top
            .stream_options
            .0
            .and_then(|raw| member_span(body, raw.get()))
        {
            splices.push((span.0, span.1, b"".as_slice().into()));
        }
    }
    if splices.is_empty() {
        return Ok(Prepared { body: None, info });
    }
    // Inserts after the brace go before a removal that starts there.
    crate::json::sort_spans(&mut splices, |s| (s.0, usize::from(s.0 != s.1)));
    let inserts = splices.iter().filter(|s| s.0 == s.1).count();
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut at = 0;
    let mut inserted = 0;
    for (start, end, bytes) in &splices {
        out.extend_from_slice(&body[at..*start]);
        out.extend_from_slice(bytes);
        if start == end {
            inserted += 1;
            // Separate inserted members from each other and from the rest.
            if inserted < inserts || !object_empty {
                out.push(b',');
            }
        }
        at = *end;
    }
    out.extend_from_slice(&body[at..]);
    Ok(Prepared {
        body: Some(out),
        info,
    })
}

/// The span of the object member whose value is `value` (a slice of
/// `body`), with one comma beside it: the key, its colon, the value and
/// the comma after it (or, for the last member, the comma before it).
fn member_span(body: &[u8], value: &str) -> Option<(usize, usize)> {
    let value_start = offset_in(body, value.as_bytes());
    let value_end = value_start + value.len();
    let before = |mut i: usize| {
        while i > 0 && body[i - 1].is_ascii_whitespace() {
            i -= 1;
        }
        i
    };
    let colon = before(value_start);
    if colon == 0 || body[colon - 1] != b':' {
        return None;
    }
    let key_end = before(colon - 1);
    if key_end == 0 || body[key_end - 1] != b'"' {
        return None;
    }
    // The key's opening quote (a key that is `stream_options` holds none).
    let key_start = body[..key_end - 1].iter().rposition(|b| *b == b'"')?;
    let mut after = value_end;
    while after < body.len() && body[after].is_ascii_whitespace() {
        after += 1;
    }
    if body.get(after) == Some(&b',') {
        return Some((key_start, after + 1));
    }
    let comma = before(key_start);
    if comma > 0 && body[comma - 1] == b',' {
        return Some((comma - 1, value_end));
    }
    Some((key_start, value_end))
}

/// Validates a request body and, when `model` is given, returns the body
/// with its top-level `model` replaced (or inserted when absent).
///
/// Returns `Ok(None)` when the body is valid and needs no change.
pub fn rewrite_model(body: &[u8], model: Option<&str>) -> Result<Option<Vec<u8>>, ApiError> {
    prepare(
        body,
        Edits {
            model,
            ..Edits::default()
        },
    )
    .map(|p| p.body)
}

fn parse_top_level(body: &[u8]) -> Result<TopLevel<'_>, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => return Err(ApiError::invalid_json("request body is empty")),
        Some(b'{') => {}
        Some(_) => return Err(ApiError::invalid_json("request body must be a JSON object")),
    }
    // serde_json skips ignored strings without checking their UTF-8.
    let (text, ascii) = crate::bytes::utf8_ascii(body)
        .map_err(|_| ApiError::invalid_json("request body is not valid UTF-8"))?;
    // Read as text: its UTF-8 is checked already. A refusal is where and
    // why serde_json would have refused the document.
    crate::json::read::from_text_or_failure::<TopLevel<'_>>(text, ascii).map_err(|f| {
        let (line, column) = f.line_column(body);
        refusal(f.kind(), line, column)
    })
}

/// The error for a body that is not a JSON object of the shape read. Never
/// echoes the body: the message says where, not what.
fn refusal(kind: Kind, line: usize, column: usize) -> ApiError {
    let what = match kind {
        Kind::Eof => "request body is truncated JSON",
        Kind::Data => "request body has an invalid top-level field",
        Kind::Syntax => "request body is not valid JSON",
    };
    ApiError::invalid_json(&format!("{what} (line {line}, column {column})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a read of the top level gives: each raw field and each count,
    /// or the error a client gets.
    fn summary(top: Result<TopLevel<'_>, ApiError>) -> String {
        match top {
            Err(e) => e.message,
            Ok(t) => format!(
                "{:?}",
                (
                    [
                        t.model,
                        t.stream,
                        t.stream_options,
                        t.max_tokens,
                        t.max_completion_tokens
                    ],
                    [t.max_output_tokens, t.tools, t.response_format, t.text],
                    [t.messages, t.prompt, t.input, t.instructions, t.system].map(|c| c.0),
                )
            ),
        }
    }

    /// The request bodies of every API, read by hand and by serde's derive
    /// (the reference): the same fields, the same counts, and for every
    /// broken variant the same error at the same line and column.
    #[test]
    fn top_level_reads_as_serde_does() {
        const BODIES: &[&str] = &[
            r#"{"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi \u00e9 \"x\" \ud83d\ude00"}],"stream":true,"stream_options":{"include_usage":false},"max_tokens":50,"tools":[{"type":"function","function":{"name":"search","parameters":{"type":"object","properties":{}}}}],"response_format":{"type":"json_object"},"temperature":0.7}"#,
            r#"{"model":"gpt-5","instructions":"Answer.","input":[{"role":"user","content":[{"type":"input_text","text":"Hello"}]}],"max_output_tokens":100,"text":{"format":{"type":"text"}},"reasoning":{"effort":"low"}}"#,
            r#"{"model":"claude","system":[{"type":"text","text":"sys","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"Hey"}],"max_tokens":1024,"stream":false,"metadata":{"user_id":"u"}}"#,
            r#"{"model":"text-embedding-3-small","input":["a","b",1.5e3,-0,12345678901234567890,-7],"encoding_format":"float"}"#,
            r#"{"model":"x","prompt":"Say hi","max_completion_tokens":5,"n":1,"logit_bias":{"50256":-100}}"#,
            "{\n  \"model\": \"m\",\n  \"messages\": [\n    {\"role\": \"user\",\n     \"content\": \"a\\nb\"}\n  ],\n  \"max_tokens\": 3\n}\n",
        ];
        let docs = crate::json::read::differential::corpus(BODIES);
        let (mut read, mut refused) = (0, 0);
        for doc in &docs {
            let Ok(text) = std::str::from_utf8(doc) else {
                continue;
            };
            // What `parse_top_level` refuses before reading.
            if doc.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
                continue;
            }
            let want = summary(serde_json::from_str::<TopLevel<'_>>(text).map_err(|e| {
                let kind = match e.classify() {
                    serde_json::error::Category::Eof => Kind::Eof,
                    serde_json::error::Category::Data => Kind::Data,
                    _ => Kind::Syntax,
                };
                refusal(kind, e.line(), e.column())
            }));
            let got = summary(parse_top_level(doc));
            assert_eq!(got, want, "{text:?}");
            if want.starts_with("request body") {
                refused += 1;
            } else {
                read += 1;
            }
        }
        assert!(
            read > 1_000 && refused > 5_000,
            "{read} read, {refused} refused"
        );
    }

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
        let mut next = move || crate::testing::xorshift(&mut state);
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

    fn prep(body: &str, model: Option<&str>) -> (String, RequestInfo) {
        let p = prepare(
            body.as_bytes(),
            Edits {
                model,
                ensure_stream_usage: true,
                no_stream: false,
                ..Edits::default()
            },
        )
        .unwrap();
        let out = p
            .body
            .map(|b| String::from_utf8(b).unwrap())
            .unwrap_or(body.to_string());
        (out, p.info)
    }

    #[test]
    fn streaming_requests_get_include_usage() {
        let (out, info) = prep(r#"{"stream":true,"model":"a"}"#, Some("b"));
        assert_eq!(
            out,
            r#"{"stream_options":{"include_usage":true},"stream":true,"model":"b"}"#
        );
        assert!(info.stream && info.usage_injected);
        assert_eq!(info.client_model.as_deref(), Some("a"));

        let (out, info) = prep(r#"{"stream":true,"stream_options":{"x":1}}"#, Some("b"));
        assert_eq!(
            out,
            r#"{"model":"b","stream":true,"stream_options":{"include_usage":true,"x":1}}"#
        );
        assert!(info.usage_injected);

        let asked = r#"{"stream":true,"stream_options":{"include_usage":true}}"#;
        let (out, info) = prep(asked, None);
        assert_eq!(out, asked);
        assert!(info.stream && !info.usage_injected);

        let (out, info) = prep(r#"{"stream":false}"#, None);
        assert_eq!(out, r#"{"stream":false}"#);
        assert!(!info.stream);

        let (out, _) = prep(r#"{"stream":true}"#, Some("m"));
        assert_eq!(
            out,
            r#"{"model":"m","stream_options":{"include_usage":true},"stream":true}"#
        );
        serde_json::from_str::<serde_json::Value>(&out).unwrap();
    }

    fn with(body: &str, edits: Edits<'_>) -> (String, RequestInfo) {
        let p = prepare(body.as_bytes(), edits).unwrap();
        let out = p
            .body
            .map(|b| String::from_utf8(b).unwrap())
            .unwrap_or(body.to_string());
        serde_json::from_str::<serde_json::Value>(&out).unwrap();
        (out, p.info)
    }

    #[test]
    fn a_copy_is_made_non_streaming_whatever_the_member_order() {
        let run = |body: &str| {
            let p = prepare(
                body.as_bytes(),
                Edits {
                    model: Some("m"),
                    no_stream: true,
                    ..Edits::default()
                },
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
            let out =
                String::from_utf8(p.body.unwrap_or_else(|| body.as_bytes().to_vec())).unwrap();
            let v: serde_json::Value =
                serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
            assert_eq!(v["stream"], false, "{out}");
            assert!(v.get("stream_options").is_none(), "{out}");
            assert_eq!(v["model"], "m", "{out}");
            out
        };
        assert_eq!(
            run(r#"{"model":"a","stream":true,"stream_options":{"include_usage":true}}"#),
            r#"{"model":"m","stream":false}"#
        );
        assert_eq!(
            run(r#"{"stream_options":{"include_usage":true},"stream":true,"model":"a"}"#),
            r#"{"stream":false,"model":"m"}"#
        );
        assert_eq!(
            run(r#"{"stream_options":{"x":1},"stream":true}"#),
            r#"{"model":"m","stream":false}"#
        );
        run(
            r#" { "stream" : true , "stream_options" : { "include_usage" : true } , "messages": [] } "#,
        );
        run(r#"{"messages":[],"stream":true,"stream_options":{},"n":1}"#);
        run(r#"{"stream":true}"#);
        // Not a stream: nothing to do.
        let p = prepare(
            br#"{"stream":false}"#,
            Edits {
                no_stream: true,
                ..Edits::default()
            },
        );
        assert!(p.is_ok_and(|p| p.body.is_none()));
    }

    #[test]
    fn each_api_gets_its_own_cap_and_no_stream_options_it_would_refuse() {
        use crate::dialect::Api;
        let run = |api: Api, body: &str| {
            with(
                body,
                Edits {
                    max_output_tokens: Some(100),
                    ensure_stream_usage: true,
                    no_stream: false,
                    api,
                    ..Edits::default()
                },
            )
        };
        // Responses: `max_output_tokens`, capped or inserted; never
        // `max_tokens` or `stream_options` (the API refuses both).
        let (out, info) = run(Api::Responses, r#"{"input":"hi","stream":true}"#);
        assert_eq!(
            out,
            r#"{"max_output_tokens":100,"input":"hi","stream":true}"#
        );
        assert_eq!((info.output_cap, info.usage_injected), (Some(100), false));
        assert_eq!(
            run(Api::Responses, r#"{"max_output_tokens":5000}"#).0,
            r#"{"max_output_tokens":100}"#
        );
        assert_eq!(
            run(Api::Responses, r#"{"max_output_tokens":50}"#)
                .1
                .output_cap,
            Some(50)
        );
        // A budget under the Responses API's minimum of 16 is written as 16.
        let (out, info) = with(
            r#"{"input":"x"}"#,
            Edits {
                max_output_tokens: Some(10),
                api: Api::Responses,
                ..Edits::default()
            },
        );
        assert_eq!(
            (out.as_str(), info.output_cap),
            (r#"{"max_output_tokens":16,"input":"x"}"#, Some(16))
        );
        // Messages: `max_tokens` lowered, never inserted; no `stream_options`.
        let (out, info) = run(
            Api::Messages,
            r#"{"max_tokens":4096,"stream":true,"messages":[]}"#,
        );
        assert_eq!(out, r#"{"max_tokens":100,"stream":true,"messages":[]}"#);
        assert_eq!((info.output_cap, info.usage_injected), (Some(100), false));
        assert_eq!(
            run(Api::Messages, r#"{"messages":[]}"#).0,
            r#"{"messages":[]}"#
        );
        assert_eq!(
            run(Api::Messages, r#"{"max_completion_tokens":900}"#).0,
            r#"{"max_completion_tokens":900}"#
        );
        // An API the filter does not know: no member it might refuse.
        let (out, info) = run(Api::Other, r#"{"messages":[],"stream":true}"#);
        assert_eq!(
            (out.as_str(), info.output_cap, info.usage_injected),
            (r#"{"messages":[],"stream":true}"#, None, false)
        );
        // Embeddings: no output to cap.
        let (out, info) = run(Api::Embeddings, r#"{"input":["a","b"],"model":"e"}"#);
        assert_eq!(
            (out.as_str(), info.output_cap),
            (r#"{"input":["a","b"],"model":"e"}"#, None)
        );
        // Legacy Completions: `max_tokens`, and usage asked of a stream.
        let (out, info) = run(Api::Completions, r#"{"prompt":"x","stream":true}"#);
        assert_eq!(
            out,
            r#"{"max_tokens":100,"stream_options":{"include_usage":true},"prompt":"x","stream":true}"#
        );
        assert!(info.usage_injected);
    }

    #[test]
    fn the_prompt_is_estimated_wherever_its_api_keeps_it() {
        let est = |body: &str| with(body, Edits::default()).1.prompt_tokens_est;
        let text = "the quick brown fox jumps over the lazy dog";
        let alone = est(&format!(r#"{{"input":"{text}"}}"#));
        assert!(alone > 5, "{alone}");
        for field in ["messages", "prompt", "instructions", "system"] {
            assert_eq!(
                est(&format!(r#"{{"{field}":["{text}"]}}"#)),
                alone,
                "{field}"
            );
        }
        assert_eq!(
            est(&format!(
                r#"{{"input":[{{"content":[{{"text":"{text}"}}]}}]}}"#
            )),
            alone
        );
        assert_eq!(
            est(&format!(r#"{{"instructions":"{text}","input":"{text}"}}"#)),
            2 * alone
        );
        assert_eq!(
            est(&format!(r#"{{"model":"{text}"}}"#)),
            0,
            "not the prompt"
        );
    }

    #[test]
    fn output_tokens_are_capped_or_inserted() {
        let cap = |body: &str| {
            with(
                body,
                Edits {
                    max_output_tokens: Some(100),
                    ..Edits::default()
                },
            )
        };
        assert_eq!(
            cap(r#"{"max_tokens":500}"#),
            (
                r#"{"max_tokens":100}"#.into(),
                RequestInfo {
                    output_cap: Some(100),
                    ..RequestInfo::default()
                }
            )
        );
        assert_eq!(cap(r#"{"max_tokens":50}"#).1.output_cap, Some(50));
        assert_eq!(cap(r#"{"max_tokens":50}"#).0, r#"{"max_tokens":50}"#);
        assert_eq!(
            cap(r#"{"max_completion_tokens":9999}"#).0,
            r#"{"max_completion_tokens":100}"#
        );
        assert_eq!(
            cap(r#"{"n":1}"#).0,
            r#"{"max_completion_tokens":100,"n":1}"#
        );
        let old_name = with(
            r#"{"n":1}"#,
            Edits {
                max_output_tokens: Some(100),
                cap_param: CapParam::MaxTokens,
                ..Edits::default()
            },
        );
        assert_eq!(old_name.0, r#"{"max_tokens":100,"n":1}"#);
        // Both sent: each is lowered, neither is added.
        assert_eq!(
            cap(r#"{"max_tokens":500,"max_completion_tokens":20}"#).0,
            r#"{"max_tokens":100,"max_completion_tokens":20}"#
        );
        assert_eq!(cap(r#"{"max_tokens":null}"#).0, r#"{"max_tokens":100}"#);
        assert_eq!(cap(r#"{"max_tokens":"lots"}"#).0, r#"{"max_tokens":100}"#);
        assert_eq!(
            with(r#"{"max_tokens":42}"#, Edits::default()).1.output_cap,
            Some(42)
        );
    }

    #[test]
    fn tools_are_checked_and_stripped() {
        let allowed = vec!["search_docs".to_string()];
        let body = r#"{"tools":[{"type":"function","function":{"name":"search_docs"}},{"type":"function","function":{"name":"rm_rf"}}]}"#;
        let (out, info) = with(
            body,
            Edits {
                allowed_tools: Some(&allowed),
                ..Edits::default()
            },
        );
        assert_eq!(out, body);
        assert_eq!(info.disallowed_tools, vec!["rm_rf"]);
        let (out, info) = with(
            body,
            Edits {
                allowed_tools: Some(&allowed),
                strip_tools: true,
                ..Edits::default()
            },
        );
        assert_eq!(
            out,
            r#"{"tools":[{"function":{"name":"search_docs"},"type":"function"}]}"#
        );
        assert_eq!(info.stripped_tools, vec!["rm_rf"]);
        assert!(info.disallowed_tools.is_empty());
        let only_bad = r#"{"tools":[{"type":"function","function":{"name":"rm_rf"}}]}"#;
        let (_, info) = with(
            only_bad,
            Edits {
                allowed_tools: Some(&allowed),
                strip_tools: true,
                ..Edits::default()
            },
        );
        assert_eq!(
            info.disallowed_tools,
            vec!["rm_rf"],
            "nothing left to keep: reported"
        );
    }

    #[test]
    fn response_schema_is_read() {
        let body = r#"{"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}}}"#;
        let (_, info) = with(body, Edits::default());
        assert_eq!(
            info.response_schema,
            Some(crate::json_value!({"type": "object"}))
        );
        let (_, info) = with(
            r#"{"response_format":{"type":"json_object"}}"#,
            Edits::default(),
        );
        assert_eq!(info.response_schema, None);
        // Responses: `text.format`.
        let body = r#"{"input":"x","text":{"format":{"type":"json_schema","name":"x","strict":true,"schema":{"type":"object","required":["a"]}}}}"#;
        let (_, info) = with(body, Edits::default());
        assert_eq!(
            info.response_schema,
            Some(crate::json_value!({"type": "object", "required": ["a"]}))
        );
        for other in [
            r#"{"input":"x","text":{"format":{"type":"text"}}}"#,
            r#"{"input":"x","text":{"verbosity":"low"}}"#,
            r#"{"input":"x","text":"json_schema"}"#,
        ] {
            assert_eq!(with(other, Edits::default()).1.response_schema, None);
        }
    }

    #[test]
    fn offered_tools_of_every_api_are_named_for_the_allowlist() {
        let allowed = vec!["search_docs".to_string(), "web_search".to_string()];
        let edits = |strip| Edits {
            allowed_tools: Some(&allowed),
            strip_tools: strip,
            ..Edits::default()
        };
        // Responses: function tools named at the top, built-ins by type.
        let responses = r#"{"input":"x","tools":[{"type":"function","name":"search_docs","parameters":{}},{"type":"web_search"},{"type":"code_interpreter","container":{"type":"auto"}},{"type":"function","name":"rm_rf","parameters":{}}]}"#;
        let (_, info) = with(responses, edits(false));
        assert_eq!(info.disallowed_tools, vec!["code_interpreter", "rm_rf"]);
        let (out, info) = with(responses, edits(true));
        assert_eq!(info.stripped_tools, vec!["code_interpreter", "rm_rf"]);
        let kept: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(kept["tools"].as_array().map(Vec::len), Some(2), "{out}");
        // Messages: client tools and server tools both carry a name.
        let messages = r#"{"max_tokens":9,"messages":[],"tools":[{"name":"search_docs","input_schema":{"type":"object"}},{"type":"web_search_20250305","name":"web_search","max_uses":3},{"type":"bash_20250124","name":"bash"}]}"#;
        let (out, info) = with(messages, edits(true));
        assert_eq!(info.stripped_tools, vec!["bash"]);
        let kept: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(kept["tools"][1]["name"], "web_search", "{out}");
    }

    #[test]
    fn prompt_tokens_are_estimated_from_messages_and_prompt() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"abcdabcdabcd"},
            {"role":"user","content":[{"type":"text","text":"我们今天"}]}],"temperature":0.5}"#;
        let (_, info) = prep(body, None);
        // "user" x2 + "abcd" x3 = 20 ASCII -> 5; "text" -> 1 more ASCII run; 4 CJK.
        assert_eq!(info.prompt_tokens_est, (4u64 + 4 + 12 + 4).div_ceil(4) + 4);
        let (_, info) = prep(r#"{"prompt":"abcdefgh"}"#, None);
        assert_eq!(info.prompt_tokens_est, 2);
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
