//! What the filter does to model output before the client sees it: the
//! tool allowlist, response moderation, output schema validation and
//! redaction, for a whole JSON response ([`check_json`]) or a stream, event
//! by event ([`StreamGuard`]).

use crate::chunk::Event;
use crate::error::ApiError;
use crate::guard::{called_tools, schema, Guardrails, OnSchemaFail, REFUSAL_MESSAGE};
use crate::json::Value;
use crate::redact::{Counts, Redactor, Unscannable};

/// Bytes the filter wrote itself (always UTF-8) as text.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The policies that apply to one response.
#[derive(Clone, Copy)]
pub struct Policy<'a> {
    /// Redaction of output, when on.
    pub redactor: Option<&'a Redactor>,
    /// Guardrails.
    pub guard: &'a Guardrails,
    /// The schema the output must match, when any.
    pub schema: Option<&'a Value>,
}

impl Policy<'_> {
    /// Whether a JSON response must be held whole before it goes on.
    pub fn holds_json(&self) -> bool {
        self.redactor.is_some()
            || !self.guard.response_patterns.is_empty()
            || self.guard.allowed_tools.is_some()
            || self.schema.is_some()
    }

    /// Whether a response the filter cannot read (a `content-encoding` it
    /// cannot decode) may go on unchecked: only when redaction is off (or
    /// `on_error: pass`) and no output guardrail needs to read it (a schema
    /// check that only counts may miss one).
    pub fn passes_unreadable(&self) -> bool {
        self.redactor.is_none_or(|r| r.pass_on_error) && self.passes_unreadable_guards()
    }

    /// [`Policy::passes_unreadable`] as far as the output guardrails go.
    pub fn passes_unreadable_guards(&self) -> bool {
        self.guard.response_patterns.is_empty()
            && self.guard.allowed_tools.is_none()
            && (self.schema.is_none()
                || self
                    .guard
                    .schema
                    .as_ref()
                    .is_none_or(|s| s.on_fail == crate::guard::OnSchemaFail::Count))
    }

    /// Whether stream events must be inspected one by one.
    pub fn watches_stream(&self) -> bool {
        !self.guard.response_patterns.is_empty()
            || self.guard.allowed_tools.is_some()
            || self.schema.is_some()
    }
}

/// The outcome of checking a JSON response.
#[derive(Debug, Default)]
pub struct Verdict {
    /// The body to send instead, when it changed.
    pub body: Option<Vec<u8>>,
    /// Answer with this error instead.
    pub error: Option<ApiError>,
    /// The output schema check, when one applied.
    pub schema_pass: Option<bool>,
    /// Output replaced by the refusal message.
    pub output_blocked: bool,
    /// Redaction could not scan the body (`Some(why)`).
    pub unscannable: Option<&'static str>,
}

fn contents(v: &Value) -> Vec<&str> {
    let items = |key: &str| v[key].as_array().into_iter().flatten();
    let chat = items("choices").filter_map(|c| c["message"]["content"].as_str());
    // Anthropic Messages: `text` blocks; Responses: the `output_text` parts
    // of `message` items.
    let messages = items("content")
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str());
    let responses = items("output")
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().into_iter().flatten())
        .filter(|p| p["type"] == "output_text")
        .filter_map(|p| p["text"].as_str());
    chat.chain(messages).chain(responses).collect()
}

/// `v` with every answer text replaced by the refusal, in its API's shape.
fn refused(v: &Value) -> Value {
    let mut out = v.clone();
    let refusal = || Value::from(REFUSAL_MESSAGE);
    let Some(top) = out.as_object_mut() else {
        return out;
    };
    for choice in objects(top.get_mut("choices")) {
        if choice.get("message").is_none_or(Value::is_null) {
            choice.insert("message".into(), Value::Object(crate::json::Map::new()));
        }
        if let Some(message) = choice.get_mut("message").and_then(Value::as_object_mut) {
            message.insert("content".into(), refusal());
        }
        choice.insert("finish_reason".into(), Value::from("content_filter"));
    }
    if top.get("type").is_some_and(|t| *t == "message") {
        let mut block = crate::json::Map::new();
        block.insert("type".into(), Value::from("text"));
        block.insert("text".into(), refusal());
        top.insert("content".into(), Value::Array(vec![Value::Object(block)]));
        top.insert("stop_reason".into(), Value::from("refusal"));
    }
    for item in objects(top.get_mut("output")) {
        for part in objects(item.get_mut("content")) {
            if part.get("type").is_some_and(|t| *t == "output_text") {
                part.insert("text".into(), refusal());
            }
        }
    }
    out
}

/// The objects of the array `v`, when it is one.
fn objects(v: Option<&mut Value>) -> impl Iterator<Item = &mut crate::json::Map> {
    v.and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Checks the output schema on the assistant content.
fn schema_result(schema_: &Value, content: &str) -> Result<(), String> {
    let doc: Value = crate::json::parse(content).map_err(|_| "content is not JSON".to_string())?;
    schema::validate(schema_, &doc)
}

/// Checks the answer's first content against the output schema, when one
/// applies; `true` when the failure blocks the answer (`verdict` says why).
fn schema_blocks(policy: Policy<'_>, first: Option<&str>, verdict: &mut Verdict) -> bool {
    let Some(s) = policy.schema else {
        return false;
    };
    let result = first.map_or(Err("no content".to_string()), |c| schema_result(s, c));
    verdict.schema_pass = Some(result.is_ok());
    if let (Err(why), Some(check)) = (&result, &policy.guard.schema) {
        if check.on_fail == OnSchemaFail::Block {
            verdict.error = Some(ApiError::schema_validation_failed(why));
            return true;
        }
    }
    false
}

/// Reads a complete answer once: `observer` learns its usage and refusals
/// and, with a `policy`, the answer's checks run on the same parse
/// (`None` without one).
pub fn read_answer(
    observer: Option<&mut crate::response::ResponseObserver>,
    refusal_phrases: &[String],
    body: &[u8],
    policy: Option<Policy<'_>>,
    counts: &mut Counts,
) -> Option<Verdict> {
    let parsed = crate::bytes::utf8(body).ok().map(Event::parse);
    if let Some(o) = observer {
        match &parsed {
            Some(event) => {
                o.observe_parsed(event, refusal_phrases);
            }
            None => o.observe_json(body, refusal_phrases),
        }
    }
    Some(check_parsed(policy?, body, parsed.as_ref(), counts))
}

/// Checks a complete non-streaming JSON response.
pub fn check_json(policy: Policy<'_>, body: &[u8], counts: &mut Counts) -> Verdict {
    let parsed = crate::bytes::utf8(body).ok().map(Event::parse);
    check_parsed(policy, body, parsed.as_ref(), counts)
}

/// Checks a complete JSON response from its parse (`None`: the body is
/// not UTF-8); odd shapes are read as a document.
pub fn check_parsed(
    policy: Policy<'_>,
    body: &[u8],
    parsed: Option<&Event<'_>>,
    counts: &mut Counts,
) -> Verdict {
    match parsed {
        // A chat answer has choices; a Messages or Responses answer (no
        // choices) is read as a document, which knows their shapes.
        Some(Event::Chunk(chunk)) if !chunk.choices.is_empty() => {
            let texts = chunk
                .texts
                .iter()
                .filter_map(|(_, message)| message.as_deref());
            check_one_parse(policy, body, chunk.data, chunk.tool_names(), texts, counts)
        }
        Some(Event::Chunk(chunk)) if chunk.is_dialect_answer() => check_one_parse(
            policy,
            body,
            chunk.data,
            chunk.answer_tool_names(),
            chunk.answer_texts(),
            counts,
        ),
        _ => check_value(policy, body, counts),
    }
}

/// Checks a complete JSON answer from its one parse (`data`, the text of
/// `body`): the tools it calls, then the schema on its first text,
/// moderation (the rare blocked answer is rewritten from the document, as
/// [`check_value`] does), then redaction.
fn check_one_parse<'t>(
    policy: Policy<'_>,
    body: &[u8],
    data: &str,
    tools: impl Iterator<Item = &'t str>,
    mut texts: impl Iterator<Item = &'t str> + Clone,
    counts: &mut Counts,
) -> Verdict {
    let mut verdict = Verdict::default();
    if !policy.guard.disallowed_tools(tools).is_empty() {
        verdict.error = Some(ApiError::tool_call_not_allowed());
        return verdict;
    }
    if schema_blocks(policy, texts.clone().next(), &mut verdict) {
        return verdict;
    }
    if texts.any(|t| policy.guard.blocked_response(t)) {
        return check_value(policy, body, counts);
    }
    if let Some(r) = policy.redactor {
        // `body` parsed: it is valid JSON and UTF-8, no second validation.
        match r.redact_valid_json(data, counts) {
            Ok(Some(new)) => verdict.body = Some(new),
            Ok(None) => {}
            Err(Unscannable(why)) => verdict.unscannable = Some(why),
        }
    }
    verdict
}

/// Checks a complete JSON response read as a document (the reference the
/// parsed path is tested against, and the path of unusual shapes).
fn check_value(policy: Policy<'_>, body: &[u8], counts: &mut Counts) -> Verdict {
    let mut verdict = Verdict::default();
    let parsed: Option<Value> = Value::from_slice(body).ok();
    if let Some(v) = &parsed {
        if !policy
            .guard
            .disallowed_tools(called_tools(v).iter().map(String::as_str))
            .is_empty()
        {
            verdict.error = Some(ApiError::tool_call_not_allowed());
            return verdict;
        }
        if schema_blocks(policy, contents(v).first().copied(), &mut verdict) {
            return verdict;
        }
        if contents(v).iter().any(|c| policy.guard.blocked_response(c)) {
            verdict.output_blocked = true;
            verdict.body = Some(crate::json::value_bytes(&refused(v)));
        }
    }
    if let Some(r) = policy.redactor {
        let current = verdict.body.as_deref().unwrap_or(body);
        // A body that parsed above is valid JSON: no second validation.
        let redacted = match parsed {
            Some(_) => crate::bytes::utf8(current)
                .map_err(|_| Unscannable("body is not UTF-8"))
                .and_then(|text| r.redact_valid_json(text, counts)),
            None => r.redact_json(current, counts),
        };
        match redacted {
            Ok(Some(new)) => verdict.body = Some(new),
            Ok(None) => {}
            Err(Unscannable(why)) => verdict.unscannable = Some(why),
        }
    }
    verdict
}

/// What to do with one stream event.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamAction {
    /// Send it on.
    Pass,
    /// Send these instead, end the stream and drop everything after: for
    /// chat chunks `data` payloads (then `[DONE]`), for Messages and
    /// Responses whole events.
    Stop(Vec<String>),
}

/// The `type` of an event's `data` when it is the object's first member
/// and has no escapes (`{"type":"…"`), as the providers write it.
fn leading_type(data: &str) -> Option<&str> {
    let rest = data.trim_start().strip_prefix("{\"type\":\"")?;
    let end = rest.find(['"', '\\'])?;
    (rest.as_bytes()[end] == b'"').then(|| &rest[..end])
}

/// Whether the stream guard reads events of type `kind` of `api`.
fn guard_reads(api: crate::dialect::Api, kind: &str) -> bool {
    match api {
        crate::dialect::Api::Messages => matches!(
            kind,
            "message_start"
                | "message_delta"
                | "content_block_start"
                | "content_block_delta"
                | "content_block_stop"
        ),
        crate::dialect::Api::Responses => matches!(
            kind,
            "response.output_item.added"
                | "response.output_item.done"
                | "response.output_text.delta"
        ),
        _ => true,
    }
}

/// Most streamed content kept for moderation and schema checks (1 MiB).
const MAX_CONTENT: usize = 1024 * 1024;

/// Per-stream guardrail state.
#[derive(Debug, Default)]
pub struct StreamGuard {
    content: String,
    stopped: bool,
    /// Messages: the content block open now (its index, whether it is text).
    open_block: Option<(u64, bool)>,
    /// Messages: the output tokens reported so far.
    output_tokens: u64,
    /// Responses: the `sequence_number` of the event read last.
    sequence: u64,
    /// Set when a refusal replaced the output.
    pub output_blocked: bool,
    /// Set when a disallowed tool call stopped the stream.
    pub tool_blocked: bool,
}

impl StreamGuard {
    /// A fresh stream.
    pub fn new() -> StreamGuard {
        StreamGuard::default()
    }

    /// Whether the stream was cut by a guardrail.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Inspects one event's `data`.
    pub fn on_event(&mut self, policy: Policy<'_>, data: &str) -> StreamAction {
        self.on_parsed(policy, &Event::parse(data))
    }

    /// Inspects one event, parsed once for every reader of the stream.
    pub fn on_parsed(&mut self, policy: Policy<'_>, event: &Event<'_>) -> StreamAction {
        if self.stopped {
            return StreamAction::Stop(Vec::new());
        }
        let chunk = match event {
            Event::Chunk(chunk) => chunk,
            Event::Unusual(data) => return self.on_text(policy, data),
            // Not an object (`[DONE]` included): nothing new to check.
            Event::Done | Event::Other => return StreamAction::Pass,
        };
        if !policy.guard.disallowed_tools(chunk.tool_names()).is_empty() {
            return self.stop_tool_call();
        }
        for (delta, _) in &chunk.texts {
            if let Some(text) = delta {
                self.add_content(text);
            }
        }
        self.check_content(policy)
    }

    /// An event that is not shaped like a chunk, read on its own (and the
    /// reference the parsed path is tested against).
    pub(crate) fn on_text(&mut self, policy: Policy<'_>, data: &str) -> StreamAction {
        let Ok(v) = crate::json::parse(data) else {
            return StreamAction::Pass;
        };
        if !policy
            .guard
            .disallowed_tools(called_tools(&v).iter().map(String::as_str))
            .is_empty()
        {
            return self.stop_tool_call();
        }
        for choice in v["choices"].as_array().into_iter().flatten() {
            if let Some(text) = choice["delta"]["content"].as_str() {
                self.add_content(text);
            }
        }
        self.check_content(policy)
    }

    /// Inspects one event of a Messages or Responses stream (its `data`):
    /// tool calls as they start (`tool_use` blocks, `function_call` items)
    /// and the text deltas. A stop carries whole SSE events in the API's
    /// own shape: Anthropic's `error` event for a tool call, its refusal
    /// (`stop_reason: "refusal"`) for blocked text; the Responses `error`
    /// event for either.
    pub fn on_dialect_event(
        &mut self,
        policy: Policy<'_>,
        api: crate::dialect::Api,
        data: &str,
    ) -> StreamAction {
        use crate::dialect::Api;
        if self.stopped {
            return StreamAction::Stop(Vec::new());
        }
        // Providers write `type` first: an event that tells the guard
        // nothing (Responses' `response.completed` repeats the whole
        // output) is passed without a parse.
        if leading_type(data).is_some_and(|t| !guard_reads(api, t)) {
            return StreamAction::Pass;
        }
        let Ok(v) = crate::json::parse(data.trim()) else {
            return StreamAction::Pass;
        };
        let kind = v["type"].as_str().unwrap_or("");
        let (tool, text) = match api {
            Api::Messages => {
                let usage = v["usage"]["output_tokens"].as_u64();
                if let Some(n) = usage.or(v["message"]["usage"]["output_tokens"].as_u64()) {
                    self.output_tokens = n;
                }
                match kind {
                    "content_block_start" => {
                        let block = &v["content_block"];
                        let index = v["index"].as_u64().unwrap_or(0);
                        self.open_block = Some((index, block["type"] == "text"));
                        let is_call = block["type"]
                            .as_str()
                            .is_some_and(|t| crate::guard::MESSAGES_TOOL_CALLS.contains(&t));
                        (is_call.then(|| block["name"].as_str()).flatten(), None)
                    }
                    "content_block_stop" => {
                        self.open_block = None;
                        (None, None)
                    }
                    "content_block_delta" if v["delta"]["type"] == "text_delta" => {
                        (None, v["delta"]["text"].as_str())
                    }
                    _ => (None, None),
                }
            }
            Api::Responses => {
                // An error takes the number of the event it replaces.
                self.sequence = v["sequence_number"]
                    .as_u64()
                    .unwrap_or(self.sequence.saturating_add(1));
                match kind {
                    "response.output_item.added" | "response.output_item.done"
                        if v["item"]["type"]
                            .as_str()
                            .is_some_and(|t| crate::guard::RESPONSES_TOOL_CALLS.contains(&t)) =>
                    {
                        (v["item"]["name"].as_str(), None)
                    }
                    "response.output_text.delta" => (None, v["delta"].as_str()),
                    _ => (None, None),
                }
            }
            _ => (None, None),
        };
        if let Some(name) = tool {
            if !policy
                .guard
                .disallowed_tools(std::iter::once(name))
                .is_empty()
            {
                self.stopped = true;
                self.tool_blocked = true;
                return StreamAction::Stop(vec![
                    self.dialect_error(api, &ApiError::tool_call_not_allowed())
                ]);
            }
        }
        let Some(text) = text else {
            return StreamAction::Pass;
        };
        self.add_content(text);
        if !policy.guard.blocked_response(&self.content) {
            return StreamAction::Pass;
        }
        self.stopped = true;
        self.output_blocked = true;
        if api != Api::Messages {
            return StreamAction::Stop(vec![self.dialect_error(api, &ApiError::output_blocked())]);
        }
        // Anthropic ends a stream its safety checks stop as a refusal.
        use crate::redact::stream::sse_event;
        let mut events = Vec::with_capacity(4);
        if let Some((index, is_text)) = self.open_block {
            // Keys in the order serde_json's map wrote them (sorted).
            let mut n = Vec::new();
            crate::json::push_decimal(&mut n, index);
            if is_text {
                let mut delta = br#"{"delta":{"text":"#.to_vec();
                crate::json::push_string(&mut delta, REFUSAL_MESSAGE);
                delta.extend_from_slice(br#","type":"text_delta"}"#);
                delta.extend_from_slice(br#","index":"#);
                delta.extend_from_slice(&n);
                delta.extend_from_slice(br#","type":"content_block_delta"}"#);
                events.push(sse_event("content_block_delta", &lossy(&delta)));
            }
            let mut stop = br#"{"index":"#.to_vec();
            stop.extend_from_slice(&n);
            stop.extend_from_slice(br#","type":"content_block_stop"}"#);
            events.push(sse_event("content_block_stop", &lossy(&stop)));
        }
        let mut delta = br#"{"delta":{"stop_reason":"refusal","stop_sequence":null},"type":"message_delta","usage":{"output_tokens":"#.to_vec();
        crate::json::push_decimal(&mut delta, self.output_tokens);
        delta.extend_from_slice(b"}}");
        events.push(sse_event("message_delta", &lossy(&delta)));
        events.push(sse_event("message_stop", r#"{"type":"message_stop"}"#));
        StreamAction::Stop(events)
    }

    /// `err` as the `error` event of `api`'s streams.
    fn dialect_error(&self, api: crate::dialect::Api, err: &ApiError) -> String {
        let data = match api {
            crate::dialect::Api::Messages => {
                String::from_utf8_lossy(&err.anthropic_body()).into_owned()
            }
            _ => err.responses_error_event(self.sequence),
        };
        crate::redact::stream::sse_event("error", &data)
    }

    fn add_content(&mut self, text: &str) {
        if self.content.len() + text.len() <= MAX_CONTENT {
            self.content.push_str(text);
        }
    }

    fn stop_tool_call(&mut self) -> StreamAction {
        self.stopped = true;
        self.tool_blocked = true;
        let err = ApiError::tool_call_not_allowed();
        StreamAction::Stop(vec![String::from_utf8_lossy(&err.body()).into_owned()])
    }

    /// Stops the stream when the content so far is blocked.
    fn check_content(&mut self, policy: Policy<'_>) -> StreamAction {
        if policy.guard.blocked_response(&self.content) {
            self.stopped = true;
            self.output_blocked = true;
            let mut refusal = br#"{"choices":[{"delta":{"content":"#.to_vec();
            crate::json::push_string(&mut refusal, REFUSAL_MESSAGE);
            refusal.extend_from_slice(
                br#"},"finish_reason":"content_filter","index":0}],"object":"chat.completion.chunk"}"#,
            );
            return StreamAction::Stop(vec![lossy(&refusal)]);
        }
        StreamAction::Pass
    }

    /// The schema check of the whole streamed content.
    pub fn schema_pass(&self, policy: Policy<'_>) -> Option<bool> {
        policy
            .schema
            .map(|s| schema_result(s, &self.content).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::SchemaCheck;
    use crate::json_value as json;

    fn guard() -> Guardrails {
        Guardrails {
            response_patterns: vec![crate::pattern::Pattern::new("(?i)as an evil ai")
                .unwrap_or_else(|_| unreachable!())],
            allowed_tools: Some(vec!["search_docs".into()]),
            schema: Some(SchemaCheck {
                on_fail: OnSchemaFail::Block,
                default_schema: None,
            }),
            ..Guardrails::default()
        }
    }

    fn response(content: &str) -> Vec<u8> {
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn the_leading_type_is_read_only_when_it_comes_first_unescaped() {
        assert_eq!(
            leading_type(r#"{"type":"response.completed","response":{}}"#),
            Some("response.completed")
        );
        assert_eq!(leading_type(r#" {"type":"ping"}"#), Some("ping"));
        for unknown in [
            r#"{"delta":"x","type":"response.output_text.delta"}"#,
            r#"{"type":"a\u0062"}"#,
            r#"{"type": "ping"}"#,
            r#"{"type":"unterminated"#,
            "",
        ] {
            assert_eq!(leading_type(unknown), None, "{unknown}");
        }
        // An event read whatever its key order: the parse decides.
        let g = guard();
        let p = Policy {
            redactor: None,
            guard: &g,
            schema: None,
        };
        let mut s = StreamGuard::new();
        let late = r#"{"item":{"type":"function_call","name":"rm_rf"},"type":"response.output_item.added","sequence_number":4}"#;
        assert!(matches!(
            s.on_dialect_event(p, crate::dialect::Api::Responses, late),
            StreamAction::Stop(_)
        ));
        // An event the guard does not read is passed unparsed, even one
        // that would not parse.
        let mut s = StreamGuard::new();
        assert_eq!(
            s.on_dialect_event(
                p,
                crate::dialect::Api::Responses,
                r#"{"type":"response.completed","response":{"output":[{"type":"function_call","name":"rm_rf"}"#
            ),
            StreamAction::Pass
        );
    }

    #[test]
    fn messages_and_responses_answers_get_the_output_checks_in_their_shapes() {
        let g = guard();
        let mut c = Counts::default();
        let p = Policy {
            redactor: None,
            guard: &g,
            schema: None,
        };
        let message = |blocks: Value| {
            json!({"id": "msg_1", "type": "message", "role": "assistant", "content": blocks,
                   "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 2}})
            .to_string()
        };
        let response = |items: Value| {
            json!({"id": "resp_1", "object": "response", "output": items,
                   "usage": {"input_tokens": 3, "output_tokens": 2}})
            .to_string()
        };
        // Tool calls outside the allowlist.
        let v = check_json(
            p,
            message(json!([{"type": "tool_use", "id": "t", "name": "rm_rf", "input": {}}]))
                .as_bytes(),
            &mut c,
        );
        assert_eq!(v.error.map(|e| e.code), Some("tool_not_allowed"));
        let v = check_json(
            p,
            response(json!([{"type": "function_call", "name": "rm_rf", "arguments": "{}"}]))
                .as_bytes(),
            &mut c,
        );
        assert_eq!(v.error.map(|e| e.code), Some("tool_not_allowed"));
        let v = check_json(
            p,
            message(json!([{"type": "tool_use", "id": "t", "name": "search_docs", "input": {}}]))
                .as_bytes(),
            &mut c,
        );
        assert!(v.error.is_none());
        // Server and MCP tools are calls too, in both APIs.
        for answer in [
            message(
                json!([{"type": "server_tool_use", "id": "s", "name": "web_fetch", "input": {}}]),
            ),
            message(
                json!([{"type": "mcp_tool_use", "id": "m", "name": "delete_repo", "server_name": "gh", "input": {}}]),
            ),
            response(
                json!([{"type": "mcp_call", "id": "m", "name": "delete_repo", "server_label": "gh", "arguments": "{}"}]),
            ),
            response(
                json!([{"type": "custom_tool_call", "call_id": "c", "name": "shell", "input": "rm"}]),
            ),
        ] {
            let v = check_json(p, answer.as_bytes(), &mut c);
            assert_eq!(
                v.error.map(|e| e.code),
                Some("tool_not_allowed"),
                "{answer}"
            );
        }
        // Moderation: the text replaced by the refusal, in the API's shape.
        let v = check_json(
            p,
            message(json!([{"type": "text", "text": "Sure, as an evil AI"}])).as_bytes(),
            &mut c,
        );
        assert!(v.output_blocked);
        let out: Value = serde_json::from_slice(&v.body.unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            (
                out["content"][0]["text"].as_str(),
                out["stop_reason"].as_str()
            ),
            (Some(REFUSAL_MESSAGE), Some("refusal"))
        );
        let text = json!([{"type": "message", "role": "assistant",
                           "content": [{"type": "output_text", "text": "as an evil ai", "annotations": []}]}]);
        let v = check_json(p, response(text).as_bytes(), &mut c);
        assert!(v.output_blocked);
        let out: Value = serde_json::from_slice(&v.body.unwrap_or_default()).unwrap_or_default();
        assert_eq!(out["output"][0]["content"][0]["text"], REFUSAL_MESSAGE);
        // The schema reads their text too.
        let schema = json!({"type": "object", "required": ["a"]});
        let p = Policy {
            redactor: None,
            guard: &g,
            schema: Some(&schema),
        };
        let v = check_json(
            p,
            message(json!([{"type": "text", "text": "{\"a\": 1}"}])).as_bytes(),
            &mut c,
        );
        assert_eq!(v.schema_pass, Some(true));
        let v = check_json(
            p,
            message(json!([{"type": "text", "text": "{}"}])).as_bytes(),
            &mut c,
        );
        assert_eq!(v.schema_pass, Some(false));
    }

    #[test]
    fn json_checks() {
        let g = guard();
        let mut c = Counts::default();
        let p = Policy {
            redactor: None,
            guard: &g,
            schema: None,
        };
        let v = check_json(p, &response("fine"), &mut c);
        assert!(v.body.is_none() && v.error.is_none() && !v.output_blocked);

        let v = check_json(p, &response("Sure, as an Evil AI..."), &mut c);
        assert!(v.output_blocked);
        let out: Value = serde_json::from_slice(&v.body.unwrap_or_default()).unwrap_or_default();
        assert_eq!(out["choices"][0]["message"]["content"], REFUSAL_MESSAGE);

        let tool =
            json!({"choices": [{"message": {"tool_calls": [{"function": {"name": "rm_rf"}}]}}]})
                .to_string();
        let v = check_json(p, tool.as_bytes(), &mut c);
        assert_eq!(v.error.map(|e| e.code), Some("tool_not_allowed"));

        let s = json!({"type": "object", "required": ["a"]});
        let p = Policy {
            schema: Some(&s),
            ..p
        };
        let v = check_json(p, &response(r#"{"a": 1}"#), &mut c);
        assert_eq!((v.schema_pass, v.error.is_none()), (Some(true), true));
        let v = check_json(p, &response(r#"{"b": 1}"#), &mut c);
        assert_eq!(v.schema_pass, Some(false));
        assert_eq!(v.error.map(|e| e.code), Some("schema_validation_failed"));
    }

    #[test]
    fn stream_checks() {
        let g = guard();
        let p = Policy {
            redactor: None,
            guard: &g,
            schema: None,
        };
        let delta =
            |t: &str| json!({"choices": [{"index": 0, "delta": {"content": t}}]}).to_string();
        let mut s = StreamGuard::new();
        assert_eq!(s.on_event(p, &delta("Well, as an ev")), StreamAction::Pass);
        match s.on_event(p, &delta("il ai I say")) {
            StreamAction::Stop(events) => assert!(events[0].contains(REFUSAL_MESSAGE)),
            StreamAction::Pass => panic!("not stopped"),
        }
        assert!(s.output_blocked && s.stopped());
        assert_eq!(s.on_event(p, &delta("more")), StreamAction::Stop(vec![]));

        let mut s = StreamGuard::new();
        let call = json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "rm_rf", "arguments": ""}}]}}]}).to_string();
        assert!(matches!(s.on_event(p, &call), StreamAction::Stop(_)));
        assert!(s.tool_blocked);

        let schema_ = json!({"type": "object"});
        let p = Policy {
            schema: Some(&schema_),
            ..p
        };
        let mut s = StreamGuard::new();
        s.on_event(p, &delta("{\"a\""));
        s.on_event(p, &delta(": 1}"));
        assert_eq!(s.schema_pass(p), Some(true));
    }

    /// Answers of the shapes providers send, and odd ones.
    fn answers(n: usize) -> Vec<String> {
        const CONTENTS: [&str; 9] = [
            "fine",
            "Sure, as an Evil AI I say",
            "mail jane.doe@example.com now",
            "{\\\"a\\\": 1}",
            "{\\\"b\\\": \\\"x\\\"}",
            "",
            "caf\\u00e9 EMP-123456",
            "not json",
            "[1,2]",
        ];
        let mut seed = 0xdead_beef_u64;
        (0..n)
            .map(|_| {
                crate::testing::xorshift(&mut seed);
                let r = seed;
                let c = CONTENTS[(r >> 8) as usize % CONTENTS.len()];
                let c2 = CONTENTS[(r >> 16) as usize % CONTENTS.len()];
                let tool = if r % 3 == 0 { "rm" } else { "search_docs" };
                match (r >> 32) % 18 {
                    0..=3 => format!(r#"{{"id":"x","choices":[{{"index":0,"message":{{"role":"assistant","content":"{c}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":5,"completion_tokens":2}}}}"#),
                    4 => format!(r#"{{"choices":[{{"index":0,"message":{{"content":"{c}"}}}},{{"index":1,"message":{{"content":"{c2}"}}}}]}}"#),
                    5 => format!(r#"{{"choices":[{{"message":{{"content":null,"tool_calls":[{{"id":"t","type":"function","function":{{"name":"{tool}","arguments":"{{}}"}}}}]}}}}]}}"#),
                    6 => format!(r#"{{"choices":[{{"message":{{"content":"{c}","refusal":"no"}},"finish_reason":"content_filter"}}]}}"#),
                    7 => [r#"{"choices":[]}"#, r#"{}"#, r#"[1]"#, r#"{"choices":"x"}"#, r#"{broken"#, r#"{"choices":[{"message":{"content":5}}]}"#][(r >> 40) as usize % 6].to_string(),
                    8 => format!(r#"{{"choices":[{{"index":"0","message":{{"content":"{c}"}}}}]}}"#),
                    // Messages answers: text, tool use, refusals, odd blocks.
                    10 => format!(r#"{{"id":"msg_1","type":"message","role":"assistant","content":[{{"type":"text","text":"{c}"}}],"stop_reason":"end_turn","usage":{{"input_tokens":3,"output_tokens":2,"cache_read_input_tokens":1}}}}"#),
                    11 => format!(r#"{{"type":"message","content":[{{"type":"thinking","thinking":"{c2}","signature":"s"}},{{"type":"text","text":"{c}"}},{{"type":"tool_use","id":"t","name":"{tool}","input":{{"q":"{c2}"}}}}],"stop_reason":"tool_use"}}"#),
                    12 => format!(r#"{{"type":"message","content":[{{"type":"server_tool_use","id":"s","name":"{tool}","input":{{}}}},{{"type":"text","text":"{c}"}},{{"type":"text","text":"{c2}"}}],"stop_reason":"{}"}}"#, if r % 2 == 0 { "refusal" } else { "end_turn" }),
                    13 => [r#"{"type":"message","content":"plain"}"#, r#"{"content":[{"type":"text","text":5}]}"#, r#"{"content":[{"type":"tool_use","name":["x"]}]}"#, r#"{"content":[],"stop_reason":null}"#, r#"{"content":[{"type":"text"}],"content":[]}"#, r#"{"content":[{"text":"no type"}]}"#][(r >> 40) as usize % 6].to_string(),
                    // Responses answers: message items, calls, refusals, reasoning.
                    14 => format!(r#"{{"id":"resp_1","object":"response","output":[{{"type":"message","id":"m","role":"assistant","content":[{{"type":"output_text","text":"{c}","annotations":[]}}]}}],"usage":{{"input_tokens":4,"input_tokens_details":{{"cached_tokens":1}},"output_tokens":2}}}}"#),
                    15 => format!(r#"{{"object":"response","output":[{{"type":"reasoning","id":"r","summary":[{{"type":"summary_text","text":"{c2}"}}]}},{{"type":"function_call","name":"{tool}","arguments":"{{}}"}},{{"type":"message","content":[{{"type":"output_text","text":"{c}"}},{{"type":"output_text","text":"{c2}"}}]}}]}}"#),
                    16 => format!(r#"{{"object":"response","output":[{{"type":"message","content":[{{"type":"{}","text":"{c}","refusal":"{c2}"}}]}},{{"type":"mcp_call","name":"{tool}","server_label":"s"}}]}}"#, if r % 2 == 0 { "refusal" } else { "output_text" }),
                    17 => [r#"{"output":"x"}"#, r#"{"output":[{"type":"message","content":"text"}]}"#, r#"{"output":[{"type":"message","content":[{"type":"output_text","text":{"a":1}}]}]}"#, r#"{"output":[],"content":[]}"#, r#"{"output":[{"type":"function_call","name":7}]}"#, r#"{"output":[{"content":[{"type":"output_text","text":"untyped item"}]}]}"#][(r >> 40) as usize % 6].to_string(),
                    _ => format!(r#"{{"choices":[{{"message":{{"content":"{c}"}}}}],"choices":[{{"message":{{"content":"{c2}"}}}}]}}"#),
                }
            })
            .collect()
    }

    /// One parse of a JSON answer decides what the document reading did:
    /// the same verdict and the same observed usage and refusal.
    #[test]
    fn a_parsed_answer_is_checked_as_the_document_was() {
        let r = crate::redact::tests::redactor(crate::redact::Replacement::Template(
            "[R:{type}]".into(),
        ));
        let g = guard();
        let schema = json!({"type": "object", "required": ["a"]});
        for body in answers(4_000) {
            for (redactor, schema) in [
                (None, None),
                (Some(&r), None),
                (Some(&r), Some(&schema)),
                (None, Some(&schema)),
            ] {
                let p = Policy {
                    redactor,
                    guard: &g,
                    schema,
                };
                let (mut c1, mut c2) = (Counts::default(), Counts::default());
                let new = check_json(p, body.as_bytes(), &mut c1);
                let old = check_value(p, body.as_bytes(), &mut c2);
                let why = format!(
                    "{body} redact {} schema {}",
                    redactor.is_some(),
                    schema.is_some()
                );
                assert_eq!(new.body, old.body, "{why}");
                assert_eq!(new.error, old.error, "{why}");
                assert_eq!(new.schema_pass, old.schema_pass, "{why}");
                assert_eq!(new.output_blocked, old.output_blocked, "{why}");
                assert_eq!(new.unscannable, old.unscannable, "{why}");
                assert_eq!(c1, c2, "{why}");
            }
            let phrases = ["as an evil".to_string()];
            let (mut o1, mut o2) = (
                crate::response::ResponseObserver::new(),
                crate::response::ResponseObserver::new(),
            );
            o1.observe_parsed(&Event::parse(&body), &phrases);
            o2.observe_json(body.as_bytes(), &phrases);
            assert_eq!(o1.tokens(9), o2.tokens(9), "{body}");
            assert_eq!(o1.refused(), o2.refused(), "{body}");
        }
    }
}
