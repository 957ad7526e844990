//! The other APIs LLM apps call, as strict as the real ones where clients
//! notice. Messages also streams, with Anthropic's event sequence
//! (`message_start`, `content_block_start`, `ping`, a `content_block_delta`
//! per word, `content_block_stop`, `message_delta` with the stop reason and
//! the cumulative usage, `message_stop`; each with its `event:` line,
//! compressed per `accept-encoding`, split mid-event with `x-mock-split`);
//! Responses streams, with its event sequence (`response.created`, …,
//! a `response.output_text.delta` per word, the `.done` events with the
//! whole text, `response.completed` with the usage; `sequence_number` on
//! each).
//!
//! | path | answers | refuses (400, in the API's own error shape) |
//! |---|---|---|
//! | `/v1/responses` | a `response` object: `output[0]` a `message` with one `output_text`, `usage {input_tokens, input_tokens_details.cached_tokens, output_tokens, output_tokens_details.reasoning_tokens, total_tokens}` | any parameter the Responses API does not define (`max_tokens`, `max_completion_tokens`, `messages`, …: `unknown_parameter`), `stream_options` other than `include_obfuscation`, `max_output_tokens` below 16 (`integer_below_min_value`) |
//! | `/v1/messages` | a Messages `message`: `content[0]` a `text` block, `stop_reason: "end_turn"`, `usage {input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, service_tier}` where `input_tokens` excludes the cache | a missing `anthropic-version` header, a missing `model`/`max_tokens`/`messages` (`Field required`), any other field (`Extra inputs are not permitted`), `max_tokens` < 1 |
//! | `/v1/embeddings` | a `list` of one `embedding` per input (8 floats; base64 of little-endian `f32` when `encoding_format: "base64"`, the openai SDK's default), `usage {prompt_tokens, total_tokens}` | any parameter Embeddings does not define (`max_tokens`, …: `unknown_parameter`) |
//!
//! `x-mock-status: S` answers S with the API's error shape;
//! `x-mock-reply`, `x-mock-cached-tokens` work as for chat; on
//! `/v1/messages`, `x-mock-cache-write-tokens: N` reports min(N, the prompt
//! tokens not read from the cache) as `cache_creation_input_tokens`.

use crate::http::Request;
use serde_json::{json, Value};

/// Which of these APIs a path is, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI Responses.
    Responses,
    /// Anthropic Messages.
    Messages,
    /// OpenAI Embeddings.
    Embeddings,
}

impl Api {
    /// The API served at `path` (query ignored).
    pub fn of_path(path: &str) -> Option<Api> {
        match path.split('?').next().unwrap_or("") {
            "/v1/responses" => Some(Api::Responses),
            "/v1/messages" => Some(Api::Messages),
            "/v1/embeddings" => Some(Api::Embeddings),
            _ => None,
        }
    }

    /// An error body in this API's shape.
    pub fn error(
        self,
        status: u16,
        message: &str,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Value {
        match self {
            Api::Messages => {
                let kind = match status {
                    400 => "invalid_request_error",
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    413 => "request_too_large",
                    429 => "rate_limit_error",
                    529 => "overloaded_error",
                    _ => "api_error",
                };
                json!({"type": "error", "error": {"type": kind, "message": message},
                       "request_id": "req_mock"})
            }
            _ => {
                let kind = if status == 400 {
                    "invalid_request_error"
                } else {
                    "server_error"
                };
                json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
            }
        }
    }
}

const RESPONSES_PARAMS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "max_output_tokens",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "text",
    "stream",
    "stream_options",
    "store",
    "metadata",
    "previous_response_id",
    "reasoning",
    "parallel_tool_calls",
    "truncation",
    "user",
    "include",
    "background",
    "prompt",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "top_logprobs",
    "max_tool_calls",
    "conversation",
];

const MESSAGES_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_k",
    "top_p",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
];

const EMBEDDINGS_PARAMS: &[&str] = &["model", "input", "encoding_format", "dimensions", "user"];

/// The first rule `request` breaks: (message, param, code).
pub fn check(
    api: Api,
    req: &Request,
    request: &Value,
) -> Option<(String, Option<String>, Option<&'static str>)> {
    let Some(fields) = request.as_object() else {
        return Some(("the request body must be a JSON object".into(), None, None));
    };
    match api {
        Api::Responses | Api::Embeddings => {
            let known = if api == Api::Responses {
                RESPONSES_PARAMS
            } else {
                EMBEDDINGS_PARAMS
            };
            if let Some(k) = fields.keys().find(|k| !known.contains(&k.as_str())) {
                return Some((
                    format!("Unknown parameter: '{k}'."),
                    Some(k.clone()),
                    Some("unknown_parameter"),
                ));
            }
            if let Some(opts) = fields.get("stream_options").and_then(Value::as_object) {
                if let Some(k) = opts.keys().find(|k| *k != "include_obfuscation") {
                    let param = format!("stream_options.{k}");
                    return Some((
                        format!("Unknown parameter: '{param}'."),
                        Some(param),
                        Some("unknown_parameter"),
                    ));
                }
            }
            if let Some(n) = fields.get("max_output_tokens").and_then(Value::as_i64) {
                if n < 16 {
                    return Some((
                        format!("Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {n} instead."),
                        Some("max_output_tokens".into()),
                        Some("integer_below_min_value"),
                    ));
                }
            }
        }
        Api::Messages => {
            if req.header("anthropic-version").is_none() {
                return Some(("anthropic-version: header is required".into(), None, None));
            }
            for required in ["model", "max_tokens", "messages"] {
                if !fields.contains_key(required) {
                    return Some((format!("{required}: Field required"), None, None));
                }
            }
            if let Some(k) = fields
                .keys()
                .find(|k| !MESSAGES_FIELDS.contains(&k.as_str()))
            {
                return Some((format!("{k}: Extra inputs are not permitted"), None, None));
            }
            if fields
                .get("max_tokens")
                .and_then(Value::as_i64)
                .is_none_or(|n| n < 1)
            {
                return Some((
                    "max_tokens: Input should be greater than or equal to 1".into(),
                    None,
                    None,
                ));
            }
        }
    }
    None
}

/// A Responses stream of `reply`: the API's events in order, each with its
/// `sequence_number`, the text in `response.output_text.delta` events (a
/// word each), the whole text again in the `.done` events and in
/// `response.completed`, which carries the usage.
pub fn responses_events(request: &Value, n: u64, reply: &str, p: Prompt) -> Vec<(String, Value)> {
    let mut done = answer(Api::Responses, request, n, reply, p);
    let item_id = format!("msg_mock{n}");
    let mut in_progress = done.clone();
    in_progress["status"] = json!("in_progress");
    in_progress["output"] = json!([]);
    in_progress["usage"] = Value::Null;
    let item = done["output"][0].clone();
    let mut item_added = item.clone();
    item_added["status"] = json!("in_progress");
    item_added["content"] = json!([]);
    let part = item["content"][0].clone();
    let mut part_added = part.clone();
    part_added["text"] = json!("");
    let at = |kind: &str, mut body: Value| {
        body["type"] = json!(kind);
        (kind.to_string(), body)
    };
    let mut events = vec![
        at("response.created", json!({"response": in_progress.clone()})),
        at("response.in_progress", json!({"response": in_progress})),
        at(
            "response.output_item.added",
            json!({"output_index": 0, "item": item_added}),
        ),
        at(
            "response.content_part.added",
            json!({"item_id": item_id, "output_index": 0,
            "content_index": 0, "part": part_added}),
        ),
    ];
    for (i, w) in reply.split(' ').enumerate() {
        let text = if i == 0 {
            w.to_string()
        } else {
            format!(" {w}")
        };
        events.push(at(
            "response.output_text.delta",
            json!({"item_id": item_id, "output_index": 0,
            "content_index": 0, "delta": text, "logprobs": []}),
        ));
    }
    events.push(at(
        "response.output_text.done",
        json!({"item_id": item_id, "output_index": 0,
        "content_index": 0, "text": reply, "logprobs": []}),
    ));
    events.push(at(
        "response.content_part.done",
        json!({"item_id": item_id, "output_index": 0,
        "content_index": 0, "part": part}),
    ));
    events.push(at(
        "response.output_item.done",
        json!({"output_index": 0, "item": item}),
    ));
    done["status"] = json!("completed");
    events.push(at("response.completed", json!({"response": done})));
    for (seq, (_, body)) in events.iter_mut().enumerate() {
        body["sequence_number"] = json!(seq);
    }
    events
}

/// A Messages stream of `reply`: Anthropic's events, in order, with the
/// usage split as Anthropic splits it (input and cache on `message_start`,
/// the cumulative output on `message_delta`).
pub fn messages_events(request: &Value, n: u64, reply: &str, p: Prompt) -> Vec<(String, Value)> {
    let model = request["model"].as_str().unwrap_or("unknown");
    let words: Vec<&str> = reply.split(' ').collect();
    let mut events = vec![
        (
            "message_start".to_string(),
            json!({"type": "message_start", "message": {
            "id": format!("msg_mock{n}"), "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": p.uncached(), "cache_creation_input_tokens": p.cache_write,
                      "cache_read_input_tokens": p.cached, "output_tokens": 1,
                      "service_tier": "standard"}}}),
        ),
        (
            "content_block_start".to_string(),
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ),
        ("ping".to_string(), json!({"type": "ping"})),
    ];
    for (i, w) in words.iter().enumerate() {
        let text = if i == 0 {
            w.to_string()
        } else {
            format!(" {w}")
        };
        events.push((
            "content_block_delta".to_string(),
            json!({"type": "content_block_delta",
            "index": 0, "delta": {"type": "text_delta", "text": text}}),
        ));
    }
    events.push((
        "content_block_stop".to_string(),
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push((
        "message_delta".to_string(),
        json!({"type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": null},
        "usage": {"output_tokens": words.len()}}),
    ));
    events.push(("message_stop".to_string(), json!({"type": "message_stop"})));
    events
}

/// `answer` with a call of tool `name` after its text, as the API shapes
/// it: a Messages `tool_use` block (`stop_reason: "tool_use"`), a
/// Responses `function_call` output item.
pub fn add_tool_call(api: Api, answer: &mut Value, n: u64, name: &str) {
    match api {
        Api::Messages => {
            if let Some(blocks) = answer["content"].as_array_mut() {
                blocks.push(messages_tool_use(n, name, json!({"query": "mock"})));
            }
            answer["stop_reason"] = json!("tool_use");
        }
        Api::Responses => {
            if let Some(items) = answer["output"].as_array_mut() {
                items.push(function_call(n, name, "{\"query\":\"mock\"}", "completed"));
            }
        }
        Api::Embeddings => {}
    }
}

fn messages_tool_use(n: u64, name: &str, input: Value) -> Value {
    json!({"type": "tool_use", "id": format!("toolu_mock{n}"), "name": name, "input": input})
}

fn function_call(n: u64, name: &str, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": format!("fc_mock{n}"), "call_id": format!("call_mock{n}"),
           "name": name, "arguments": arguments, "status": status})
}

/// A stream's `events` with a call of tool `name` after the text, in the
/// API's event sequence: Messages a `tool_use` block (`content_block_start`,
/// an `input_json_delta`, `content_block_stop`) and `stop_reason:
/// "tool_use"`; Responses a `function_call` item (`output_item.added`, the
/// `function_call_arguments` delta and done, `output_item.done`) also in
/// `response.completed`, every event renumbered.
pub fn add_tool_call_events(api: Api, events: &mut Vec<(String, Value)>, n: u64, name: &str) {
    let args = "{\"query\":\"mock\"}";
    let at = |kind: &str, mut body: Value| {
        body["type"] = json!(kind);
        (kind.to_string(), body)
    };
    match api {
        Api::Messages => {
            let Some(i) = events.iter().position(|(k, _)| k == "message_delta") else {
                return;
            };
            events[i].1["delta"]["stop_reason"] = json!("tool_use");
            let block = [
                at(
                    "content_block_start",
                    json!({"index": 1, "content_block": messages_tool_use(n, name, json!({}))}),
                ),
                at(
                    "content_block_delta",
                    json!({"index": 1, "delta": {"type": "input_json_delta", "partial_json": args}}),
                ),
                at("content_block_stop", json!({"index": 1})),
            ];
            events.splice(i..i, block);
        }
        Api::Responses => {
            let Some(i) = events.iter().position(|(k, _)| k == "response.completed") else {
                return;
            };
            let done = function_call(n, name, args, "completed");
            if let Some(items) = events[i].1["response"]["output"].as_array_mut() {
                items.push(done.clone());
            }
            let item_id = format!("fc_mock{n}");
            let item = [
                at(
                    "response.output_item.added",
                    json!({"output_index": 1, "item": function_call(n, name, "", "in_progress")}),
                ),
                at(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": 1, "delta": args}),
                ),
                at(
                    "response.function_call_arguments.done",
                    json!({"item_id": item_id, "output_index": 1, "arguments": args}),
                ),
                at(
                    "response.output_item.done",
                    json!({"output_index": 1, "item": done}),
                ),
            ];
            events.splice(i..i, item);
            for (seq, (_, body)) in events.iter_mut().enumerate() {
                body["sequence_number"] = json!(seq);
            }
        }
        Api::Embeddings => {}
    }
}

/// The prompt's tokens: all of them, those read from the prompt cache, and
/// (Anthropic only) those written to it.
#[derive(Debug, Clone, Copy)]
pub struct Prompt {
    /// Every prompt token.
    pub tokens: u64,
    /// Read from the cache (≤ `tokens`).
    pub cached: u64,
    /// Written to the cache (≤ `tokens − cached`; Messages only).
    pub cache_write: u64,
}

impl Prompt {
    /// Anthropic's `input_tokens`: the prompt without the cache's reads and writes.
    fn uncached(&self) -> u64 {
        self.tokens - self.cached - self.cache_write
    }
}

/// The answer body: `reply` as the output, `p` the prompt's tokens.
pub fn answer(api: Api, request: &Value, n: u64, reply: &str, p: Prompt) -> Value {
    let prompt = p.tokens;
    let model = request["model"].as_str().unwrap_or("unknown");
    let out = reply.split(' ').count() as u64;
    match api {
        Api::Responses => json!({
            "id": format!("resp_mock{n}"), "object": "response", "created_at": 1_700_000_000u64,
            "status": "completed", "model": model, "error": null, "incomplete_details": null,
            "output": [{"type": "message", "id": format!("msg_mock{n}"), "status": "completed",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": reply, "annotations": []}]}],
            "parallel_tool_calls": true, "tool_choice": "auto", "tools": [],
            "usage": {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": p.cached},
                      "output_tokens": out, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": prompt + out},
        }),
        Api::Messages => json!({
            "id": format!("msg_mock{n}"), "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": reply}],
            "stop_reason": "end_turn", "stop_sequence": null,
            // Anthropic's input_tokens leaves out what the cache served.
            "usage": {"input_tokens": p.uncached(), "output_tokens": out,
                      "cache_creation_input_tokens": p.cache_write, "cache_read_input_tokens": p.cached,
                      "service_tier": "standard"},
        }),
        Api::Embeddings => {
            let inputs = match &request["input"] {
                Value::Array(items) => items.len().max(1),
                _ => 1,
            };
            let base64 = request["encoding_format"] == "base64";
            let data: Vec<Value> = (0..inputs)
                .map(|i| {
                    let floats: Vec<f32> = (0..8).map(|k| ((i * 8 + k) as f32) / 10.0).collect();
                    let embedding = if base64 {
                        let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
                        json!(base64_encode(&bytes))
                    } else {
                        json!(floats)
                    };
                    json!({"object": "embedding", "index": i, "embedding": embedding})
                })
                .collect();
            json!({"object": "list", "data": data, "model": model,
                   "usage": {"prompt_tokens": prompt, "total_tokens": prompt}})
        }
    }
}

/// Standard base64 with padding.
fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                out.push(T[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_standard() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }
}
