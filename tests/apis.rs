//! The Responses, Messages and Embeddings APIs through a real Envoy started
//! from the shipped `envoy/envoy.yaml`, driven by the official `openai` and
//! `anthropic` Python SDKs (`tests/sdk/apis.py`) against the strict mock
//! provider, which refuses what the real APIs refuse (`max_tokens` and
//! `stream_options.include_usage` on Responses, extra fields on Messages,
//! any output cap on Embeddings). Non-streaming; each API's own output cap,
//! usage, record and error shape.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::Value;
use std::collections::HashMap;
use support::{Envoy, MockBackend};

const CONFIG: &str = r#"{
  "default_cluster": "model_a",
  "pricing": {
    "gpt-4.1-mini": {"input_per_mtok": 0.4, "cached_input_per_mtok": 0.1, "output_per_mtok": 1.6},
    "claude-sonnet-4-5": {"input_per_mtok": 3.0, "cached_input_per_mtok": 0.3, "cache_write_per_mtok": 3.75, "output_per_mtok": 15.0},
    "text-embedding-3-small": {"input_per_mtok": 0.02, "output_per_mtok": 0}
  },
  "redaction": {"request": true, "response": true},
  "budgets": {"max_output_tokens": 256, "quotas": [{"key": "x-org-id", "tokens_per_minute": 300}]},
  "guardrails": {"moderation": {"request_patterns": ["(?i)how to make a bomb"]}},
  "experiments": [
    {"id": "resp", "match": {"path_prefix": "/v1/responses"}, "sticky_keys": ["x-user-id"],
     "variants": [{"name": "control", "weight": 100, "cluster": "model_a", "model": "gpt-4.1-mini"}]},
    {"id": "msg", "match": {"path_prefix": "/v1/messages"}, "sticky_keys": ["x-user-id"],
     "variants": [{"name": "control", "weight": 100, "cluster": "model_a", "model": "claude-sonnet-4-5"}]},
    {"id": "emb", "match": {"path_prefix": "/v1/embeddings"}, "sticky_keys": ["x-user-id"],
     "variants": [{"name": "control", "weight": 100, "cluster": "model_a", "model": "text-embedding-3-small"}]}
  ]
}"#;

fn run(port: u16, scenarios: &[&str]) -> HashMap<String, Value> {
    let port = port.to_string();
    support::run_driver(
        "apis.py",
        &["--port", &port, "--user", "api-user-1"],
        scenarios,
    )
}

/// The one record of the requests of scenario `seen`.
fn record(envoy: &Envoy, seen: &Value) -> Value {
    let found = support::records_of_trace(envoy, seen["trace_id"].as_str().expect("trace id"));
    assert_eq!(found.len(), 1, "one record for {seen}: {found:?}");
    found[0].clone()
}

fn upstream_body(mock: &MockBackend, path: &str) -> Value {
    let r = mock.requests();
    let req = r
        .iter()
        .rev()
        .find(|r| r.path == path)
        .expect("request upstream");
    serde_json::from_slice(&req.body).expect("json upstream")
}

/// The record's cost recomputed from its counts: each prompt tier priced once.
fn cost(r: &Value, input: f64, cached: f64, write: f64, output: f64) -> f64 {
    let n = |k: &str| r[k].as_u64().unwrap_or(0) as f64;
    ((n("tokens_in") - n("tokens_in_cached") - n("tokens_in_cache_write")) * input
        + n("tokens_in_cached") * cached
        + n("tokens_in_cache_write") * write
        + n("tokens_out") * output)
        / 1e6
}

#[test]
fn responses_messages_and_embeddings_through_the_shipped_gateway() {
    let a = MockBackend::start("model_a", 0).expect("mock");
    let envoy = Envoy::start(CONFIG, &[("model_a", a.port()), ("model_b", a.port())]);
    let seen = run(
        envoy.port,
        &[
            "responses_json",
            "messages_json",
            "messages_blocked",
            "messages_quota",
            "messages_stream_redacted",
            "responses_stream_redacted",
            "responses_blocked",
            "embeddings",
        ],
    );

    // Responses: the cap went up as max_output_tokens (the mock refuses
    // max_tokens), the prompt redacted, usage by the Responses names.
    let j = &seen["responses_json"];
    assert_eq!(j["text"], "Hello from model_a running gpt-4.1-mini.", "{j}");
    let sent = upstream_body(&a, "/v1/responses");
    assert_eq!(sent["max_output_tokens"], 256, "{sent}");
    assert_eq!(sent["model"], "gpt-4.1-mini");
    assert!(sent.get("max_tokens").is_none() && sent.get("max_completion_tokens").is_none());
    assert!(
        !sent["input"].as_str().unwrap().contains("jane.doe"),
        "{sent}"
    );
    let r = record(&envoy, j);
    assert_eq!(
        (r["api"].as_str(), r["tokens_source"].as_str()),
        (Some("openai.responses"), Some("usage")),
        "{r}"
    );
    assert_eq!(r["tokens_in"], j["usage"]["input_tokens"]);
    assert_eq!(r["tokens_out"], j["usage"]["output_tokens"]);
    assert_eq!(r["outcome"], "success");
    assert!(
        (r["cost_usd_est"].as_f64().unwrap() - cost(&r, 0.4, 0.1, 0.4, 1.6)).abs() < 1e-12,
        "{r}"
    );

    // Messages: max_tokens lowered, no stream_options, the prompt is
    // input + cache reads + cache writes.
    let j = &seen["messages_json"];
    assert_eq!(
        (j["text"].as_str(), j["stop_reason"].as_str()),
        (
            Some("Hello from model_a running claude-sonnet-4-5."),
            Some("end_turn")
        ),
        "{j}"
    );
    let sent = upstream_body(&a, "/v1/messages");
    assert_eq!(sent["max_tokens"], 256, "{sent}");
    assert!(sent.get("stream_options").is_none() && sent.get("max_completion_tokens").is_none());
    assert!(!sent["messages"][0]["content"]
        .as_str()
        .unwrap()
        .contains("jane.doe"));
    let r = record(&envoy, j);
    assert_eq!(r["api"], "anthropic.messages");
    let u = &j["usage"];
    let whole = u["input_tokens"].as_u64().unwrap()
        + u["cache_read_input_tokens"].as_u64().unwrap()
        + u["cache_creation_input_tokens"].as_u64().unwrap();
    assert_eq!(
        (
            u["cache_read_input_tokens"].as_u64(),
            u["cache_creation_input_tokens"].as_u64()
        ),
        (Some(5), Some(7))
    );
    assert_eq!(
        (
            r["tokens_in"].as_u64(),
            r["tokens_in_cached"].as_u64(),
            r["tokens_in_cache_write"].as_u64()
        ),
        (Some(whole), Some(5), Some(7)),
        "{r}"
    );
    assert_eq!(r["tokens_out"], u["output_tokens"]);
    assert!(
        (r["cost_usd_est"].as_f64().unwrap() - cost(&r, 3.0, 0.3, 3.75, 15.0)).abs() < 1e-12,
        "{r}"
    );

    // The filter's own refusals in Anthropic's shape: the SDK raises its
    // class for the status with the filter's message.
    let b = &seen["messages_blocked"];
    assert_eq!(
        (
            b["exception"].as_str(),
            b["status"].as_u64(),
            b["error_type"].as_str()
        ),
        (
            Some("BadRequestError"),
            Some(400),
            Some("invalid_request_error")
        ),
        "{b}"
    );
    assert_eq!(b["message"], "the request was blocked by a content policy");
    assert!(
        b["sdk_message"]
            .as_str()
            .unwrap()
            .contains("blocked by a content policy"),
        "{b}"
    );
    let q = &seen["messages_quota"];
    assert_eq!(
        (q["exception"].as_str(), q["status"].as_u64()),
        (Some("RateLimitError"), Some(429)),
        "{q}"
    );
    assert_eq!(q["error_type"], "rate_limit_error");
    // Messages and Responses streams are redacted as they flow: the SDKs
    // assemble the redacted text, and a Responses stream's final response
    // says the same; both are counted from their usage events.
    let redacted = "Sure, I will write to [REDACTED:email] today.";
    let st = &seen["messages_stream_redacted"];
    assert_eq!(st["text"], redacted, "{st}");
    assert_eq!(record(&envoy, st)["tokens_source"], "usage");
    let st = &seen["responses_stream_redacted"];
    assert_eq!(
        (st["text"].as_str(), st["final_text"].as_str()),
        (Some(redacted), Some(redacted)),
        "{st}"
    );
    let r = record(&envoy, st);
    assert_eq!(
        (r["tokens_source"].as_str(), r["outcome"].as_str()),
        (Some("usage"), Some("success")),
        "{r}"
    );
    assert_eq!(r["tokens_in"], st["usage"]["input_tokens"]);
    // And in OpenAI's on the OpenAI paths.
    let o = &seen["responses_blocked"];
    assert_eq!(
        (o["exception"].as_str(), o["code"].as_str()),
        (Some("BadRequestError"), Some("content_blocked")),
        "{o}"
    );

    // Embeddings: nothing capped (the mock refuses max_tokens), the SDK's
    // base64 vectors decode.
    let e = &seen["embeddings"];
    assert_eq!(
        (e["count"].as_u64(), e["dims"].as_u64()),
        (Some(2), Some(8)),
        "{e}"
    );
    let sent = upstream_body(&a, "/v1/embeddings");
    assert!(
        sent.get("max_tokens").is_none() && sent.get("max_completion_tokens").is_none(),
        "{sent}"
    );
    assert_eq!(sent["model"], "text-embedding-3-small");
    let r = record(&envoy, e);
    assert_eq!(
        (r["api"].as_str(), r["tokens_out"].as_u64()),
        (Some("openai.embeddings"), Some(0)),
        "{r}"
    );
    assert_eq!(r["tokens_in"], e["prompt_tokens"]);
}

/// With no response check configured, a Messages stream goes through as
/// the provider sent it (the SDK's stream helper reads every event) and is
/// counted from its own usage events.
#[test]
fn messages_streams_pass_and_are_counted_from_their_usage_events() {
    let plain: Value = {
        let mut c: Value = serde_json::from_str(CONFIG).unwrap();
        let c_obj = c.as_object_mut().unwrap();
        c_obj.remove("redaction");
        c_obj.remove("guardrails");
        c
    };
    let a = MockBackend::start("model_a", 0).expect("mock");
    let envoy = Envoy::start(
        &plain.to_string(),
        &[("model_a", a.port()), ("model_b", a.port())],
    );
    let seen = run(envoy.port, &["messages_stream"]);
    let j = &seen["messages_stream"];
    assert_eq!(
        j["text"], "Hello from model_a running claude-sonnet-4-5.",
        "{j}"
    );
    assert_eq!(j["stop_reason"], "end_turn");
    let sent = upstream_body(&a, "/v1/messages");
    assert_eq!(
        (sent["max_tokens"].as_u64(), sent["stream"].as_bool()),
        (Some(256), Some(true)),
        "{sent}"
    );
    assert!(sent.get("stream_options").is_none(), "{sent}");
    let r = record(&envoy, j);
    let u = &j["usage"];
    let whole = u["input_tokens"].as_u64().unwrap()
        + u["cache_read_input_tokens"].as_u64().unwrap()
        + u["cache_creation_input_tokens"].as_u64().unwrap();
    assert_eq!(
        (
            r["api"].as_str(),
            r["stream"].as_bool(),
            r["tokens_source"].as_str(),
            r["outcome"].as_str()
        ),
        (
            Some("anthropic.messages"),
            Some(true),
            Some("usage"),
            Some("success")
        ),
        "{r}"
    );
    assert_eq!(
        (
            r["tokens_in"].as_u64(),
            r["tokens_in_cached"].as_u64(),
            r["tokens_in_cache_write"].as_u64()
        ),
        (Some(whole), Some(3), Some(2)),
        "{r}"
    );
    assert_eq!(r["tokens_out"], u["output_tokens"]);
    assert!(
        (r["cost_usd_est"].as_f64().unwrap() - cost(&r, 3.0, 0.3, 3.75, 15.0)).abs() < 1e-12,
        "{r}"
    );
}

/// The output guardrails read Messages and Responses streams and answers
/// as the SDKs send and parse them: a blocked text ends a Messages stream
/// as Anthropic's refusal and a Responses stream with its `error` event; a
/// tool call outside the allowlist stops either before the call goes out
/// (Anthropic's SDK raises on the `error` event); an allowed call passes;
/// a Responses `text.format` schema is checked on the answer.
#[test]
fn output_guardrails_read_messages_and_responses_streams() {
    let mut cfg: Value = serde_json::from_str(CONFIG).unwrap();
    cfg["guardrails"] = serde_json::json!({
        "moderation": {"response_patterns": ["(?i)evil plan"]},
        // rm_rf is stripped from what the app offers, and the model calls it
        // anyway (the mock's x-mock-tool-call): the output check catches it.
        "tools": {"allow": ["search_docs"], "on_violation": "strip"},
        "response_schema": {"on_fail": "count"}
    });
    let a = MockBackend::start("model_a", 0).expect("mock");
    let envoy = Envoy::start(
        &cfg.to_string(),
        &[("model_a", a.port()), ("model_b", a.port())],
    );
    let seen = run(
        envoy.port,
        &[
            "messages_stream_evil",
            "messages_stream_tool_allowed",
            "messages_stream_tool_denied",
            "messages_json_tool_denied",
            "responses_stream_evil",
            "responses_stream_tool_allowed",
            "responses_stream_tool_denied",
            "responses_schema_pass",
            "responses_schema_fail",
        ],
    );
    let outcome = |name: &str| {
        let r = record(&envoy, &seen[name]);
        (
            r["outcome"].as_str().map(str::to_string),
            r["error_code"].as_str().map(str::to_string),
        )
    };
    let blocked = |code: &str| (Some("blocked".to_string()), Some(code.to_string()));

    // The offered tools reach the provider stripped, in each API's shape.
    for path in ["/v1/messages", "/v1/responses"] {
        let sent: Value = a
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .find(|b| b.get("tools").is_some())
            .expect("a request with tools");
        let names: Vec<&str> = sent["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(names, ["search_docs"], "{path}: {sent}");
    }

    // Messages: the refusal the SDK assembles (after whatever text went out
    // before the blocked delta: here none, response redaction held it).
    let m = &seen["messages_stream_evil"];
    let text = m["text"].as_str().unwrap();
    assert!(
        "Sure, here is an ".starts_with(text.trim_end_matches("I can't help with that."))
            && !text.contains("evil"),
        "{m}"
    );
    assert!(text.ends_with("I can't help with that."), "{m}");
    assert_eq!(m["stop_reason"], "refusal", "{m}");
    assert_eq!(outcome("messages_stream_evil"), blocked("output_blocked"));
    let m = &seen["messages_stream_tool_allowed"];
    assert_eq!(
        (m["stop_reason"].as_str(), m["tools"][0].as_str()),
        (Some("tool_use"), Some("search_docs")),
        "{m}"
    );
    assert_eq!(
        outcome("messages_stream_tool_allowed").0.as_deref(),
        Some("success")
    );
    let m = &seen["messages_stream_tool_denied"];
    assert_eq!(
        (m["exception"].as_str(), m["error_type"].as_str()),
        (Some("APIStatusError"), Some("api_error")),
        "{m}"
    );
    assert!(
        m["message"]
            .as_str()
            .unwrap()
            .contains("tool that is not allowed"),
        "{m}"
    );
    assert_eq!(
        outcome("messages_stream_tool_denied"),
        blocked("tool_not_allowed")
    );
    let m = &seen["messages_json_tool_denied"];
    assert_eq!(
        (
            m["exception"].as_str(),
            m["status"].as_u64(),
            m["error_type"].as_str()
        ),
        (Some("InternalServerError"), Some(502), Some("api_error")),
        "{m}"
    );

    // Responses: the `error` event, numbered as the event it replaces,
    // ends the stream; no `response.completed` follows.
    let r = &seen["responses_stream_evil"];
    let types: Vec<&str> = r["types"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(types.last(), Some(&"error"), "{r}");
    assert!(!types.contains(&"response.completed"), "{r}");
    assert!(!r["text"].as_str().unwrap().contains("evil"), "{r}");
    assert_eq!(r["error"]["code"], "output_blocked");
    assert_eq!(
        r["error"]["sequence_number"].as_u64(),
        Some(types.len() as u64 - 1),
        "numbered on from the events the client saw: {r}"
    );
    assert_eq!(outcome("responses_stream_evil"), blocked("output_blocked"));
    let r = &seen["responses_stream_tool_denied"];
    assert_eq!(r["error"]["code"], "tool_not_allowed", "{r}");
    // The call's item never went out: the error took its place.
    let types = r["types"].as_array().unwrap();
    let added = types
        .iter()
        .filter(|t| *t == "response.output_item.added")
        .count();
    assert_eq!(added, 1, "only the message's item: {r}");
    assert_eq!(
        outcome("responses_stream_tool_denied"),
        blocked("tool_not_allowed")
    );
    let r = &seen["responses_stream_tool_allowed"];
    assert_eq!(
        r["types"]
            .as_array()
            .unwrap()
            .last()
            .and_then(Value::as_str),
        Some("response.completed"),
        "{r}"
    );
    assert_eq!(
        outcome("responses_stream_tool_allowed").0.as_deref(),
        Some("success")
    );

    // Responses `text.format`: the answer checked against its schema.
    for (name, pass) in [
        ("responses_schema_pass", true),
        ("responses_schema_fail", false),
    ] {
        let r = record(&envoy, &seen[name]);
        assert_eq!(r["schema_pass"].as_bool(), Some(pass), "{name}: {r}");
    }
}

/// A Messages call whose treatment fails (Anthropic's 529 `overloaded`)
/// is answered by control, asked as the client asked (its model, its
/// `anthropic-version`), and the Anthropic SDK gets control's message.
#[test]
fn a_failed_messages_treatment_falls_back_to_control() {
    let mut cfg: Value = serde_json::from_str(CONFIG).unwrap();
    cfg["experiments"][1] = serde_json::json!({
        "id": "msg", "match": {"path_prefix": "/v1/messages"}, "sticky_keys": ["x-user-id"],
        "control": "sonnet",
        "fallback": {"on": ["5xx"], "max_attempts": 1},
        "variants": [
            {"name": "sonnet", "weight": 0, "cluster": "model_a", "model": "claude-sonnet-4-5"},
            {"name": "haiku", "weight": 100, "cluster": "model_b", "model": "claude-haiku-4-5"}
        ]
    });
    let a = MockBackend::start("model_a", 0).expect("mock");
    let b = MockBackend::start("model_b", 0).expect("mock");
    b.set_behavior(llm_ab_mock::Behavior {
        fail_rate: 1.0,
        fail_status: 529,
        ..Default::default()
    });
    let envoy = Envoy::start(
        &cfg.to_string(),
        &[("model_a", a.port()), ("model_b", b.port())],
    );
    let seen = run(envoy.port, &["messages_json"]);
    let j = &seen["messages_json"];
    assert_eq!(
        j["text"], "Hello from model_a running claude-sonnet-4-5.",
        "{j}"
    );
    assert_eq!(b.request_count(), 1, "the treatment was asked once");
    let asked = a.requests();
    let control = asked
        .iter()
        .find(|r| r.path == "/v1/messages")
        .expect("control asked");
    assert!(control.header("anthropic-version").is_some());
    let body: Value = serde_json::from_slice(&control.body).unwrap();
    assert_eq!(body["model"], "claude-sonnet-4-5");
    let r = record(&envoy, j);
    assert_eq!(
        (
            r["outcome"].as_str(),
            r["assigned_variant"].as_str(),
            r["served_variant"].as_str()
        ),
        (Some("fallback"), Some("haiku"), Some("sonnet")),
        "{r}"
    );
}
