//! Entry points for the fuzzers in `fuzz/` and for `tests/fuzz_corpus.rs`,
//! which replays their corpus in `make test`. Each takes arbitrary bytes,
//! must not panic, and checks the invariants of the code it drives.

use crate::body::{prepare, Edits};
use crate::config::{load, Plan};
use crate::redact::{sse::SseRedactor, Counts};
use crate::response::ResponseObserver;
use crate::sse::SseParser;

fn plan() -> Option<Plan> {
    load(
        br#"{"default_cluster": "a", "redaction": {"custom": [{"name": "employee_id", "pattern": "EMP-[0-9]{6}"}]},
        "guardrails": {"moderation": {"request_patterns": ["(?i)forbidden"], "response_patterns": ["(?i)evil ai"]}}}"#,
    )
    .ok()
}

/// Configuration parsing and validation.
pub fn config_load(data: &[u8]) {
    if let Ok(plan) = load(data) {
        // A loaded plan must route any request without panicking.
        struct None_;
        impl crate::route::RequestHeaders for None_ {
            fn header(&self, name: &str) -> Option<String> {
                (name == "content-type").then(|| "application/json".to_string())
            }
        }
        let _ = plan.decide_at("/v1/chat/completions", &None_, 1_700_000_000);
    }
}

/// Request body handling: validation, edits, redaction. Valid JSON in,
/// valid JSON out.
pub fn request_body(data: &[u8]) {
    let allowed = vec!["search_docs".to_string()];
    let edits = Edits {
        model: Some("fuzz-model"),
        ensure_stream_usage: true,
        no_stream: false,
        max_output_tokens: Some(256),
        cap_param: crate::body::CapParam::MaxCompletionTokens,
        api: crate::dialect::Api::Chat,
        allowed_tools: Some(&allowed),
        strip_tools: true,
    };
    if let Ok(prepared) = prepare(data, edits) {
        let out = prepared.body.unwrap_or_else(|| data.to_vec());
        assert!(
            crate::json::read::from_slice::<crate::json::read::Skip>(&out).is_ok(),
            "edits broke the JSON"
        );
        if let Some(plan) = plan() {
            if let Some(r) = &plan.redaction {
                if let Ok(Some(redacted)) = r.redact_json(&out, &mut Counts::default()) {
                    assert!(
                        crate::json::read::from_slice::<crate::json::read::Skip>(&redacted).is_ok(),
                        "redaction broke the JSON"
                    );
                }
            }
        }
    }
}

/// SSE parsing, response observation and stream redaction, with the input
/// cut into chunks of a size taken from its first byte.
pub fn sse_stream(data: &[u8]) {
    let Some((&size, stream)) = data.split_first() else {
        return;
    };
    let size = usize::from(size).max(1);
    let plan = plan();
    let mut parser = SseParser::new();
    let mut observer = ResponseObserver::new();
    let mut redactor = SseRedactor::new();
    let mut counts = Counts::default();
    let mut raw = Vec::new();
    for chunk in stream.chunks(size) {
        for event in parser.feed(chunk) {
            observer.observe_event(&event.data, &[]);
            if let Some(r) = plan.as_ref().and_then(|p| p.redaction.as_ref()) {
                let _ = redactor.rewrite(r, &event.data, &mut counts);
            }
            raw.extend_from_slice(&event.raw);
        }
    }
    raw.extend(parser.take_pending());
    if parser.pending_len() == 0 && stream.len() < crate::sse::MAX_PENDING {
        assert_eq!(raw, stream, "events and the held tail give back the stream");
    }
    let _ = observer.tokens(0);
}

/// Redaction of text: no panic, and the replacements are inert: a second
/// pass never alters them. (A second pass may still find something new:
/// detectors look at the context, and a replacement changes it, e.g.
/// `EMP-123456::1` hides `::1`, `[REDACTED:employee_id]::1` does not.)
pub fn redaction(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(plan) = plan() else { return };
    let Some(r) = &plan.redaction else { return };
    if let Some(once) = r.redact_text(text, &mut Counts::default()) {
        let twice = r
            .redact_text(&once, &mut Counts::default())
            .unwrap_or_else(|| once.clone());
        // Well-formed tokens only: `[REDACTED:` + a detector name + `]`
        // (the input itself may contain look-alikes).
        let tokens = |s: &str| -> Vec<String> {
            s.match_indices("[REDACTED:")
                .filter_map(|(i, prefix)| {
                    let name = &s[i + prefix.len()..];
                    let n = name
                        .bytes()
                        .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
                        .count();
                    (n > 0 && name.as_bytes().get(n) == Some(&b']'))
                        .then(|| s[i..i + prefix.len() + n + 1].to_string())
                })
                .collect()
        };
        let mut rest = twice.as_str();
        for token in tokens(&once) {
            let at = rest.find(&token);
            assert!(
                at.is_some(),
                "a second pass altered the replacement {token}"
            );
            rest = at.map_or("", |at| &rest[at + token.len()..]);
        }
    }
    let g = &plan.guardrails;
    let _ = g.blocked_request([text].into_iter());
    let _ = g.blocked_response(text);
}

/// Schema validation of arbitrary documents against arbitrary schemas
/// (the two separated by a 0xFF byte).
pub fn schema(data: &[u8]) {
    let mut parts = data.splitn(2, |b| *b == 0xFF);
    let (Some(schema), Some(doc)) = (parts.next(), parts.next()) else {
        return;
    };
    let (Ok(schema), Ok(doc)) = (
        crate::json::Value::from_slice(schema),
        crate::json::Value::from_slice(doc),
    ) else {
        return;
    };
    let _ = crate::guard::schema::validate(&schema, &doc);
}
