//! The official `openai` Python SDK (pinned in requirements.txt, installed
//! in .venv) drives chat completions through a real Envoy started from the
//! shipped `envoy/envoy.yaml` (compression filters included) to the strict
//! mock provider, which gzips per `Accept-Encoding`, reports cached and
//! reasoning tokens and refuses `max_tokens` for reasoning models.
//!
//! `tests/sdk/openai_chat.py` runs the SDK calls and prints what the SDK
//! saw; this test checks that and the filter's records and metrics.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::Value;
use std::collections::HashMap;
use support::{Envoy, MockBackend};

const CONFIG: &str = r#"{
  "route_header": "x-llm-cluster",
  "default_cluster": "model_a",
  "max_body_bytes": 65536,
  "pricing": {
    "gpt-4o-mini": {"input_per_mtok": 0.15, "cached_input_per_mtok": 0.075, "output_per_mtok": 0.6},
    "gpt-5-mini": {"input_per_mtok": 0.25, "cached_input_per_mtok": 0.025, "output_per_mtok": 2.0}
  },
  "redaction": {"request": true, "response": true, "on_error": "block"},
  "budgets": {"max_output_tokens": 256, "quotas": [{"key": "x-org-id", "tokens_per_minute": 300}]},
  "guardrails": {"moderation": {"request_patterns": ["(?i)how to make a bomb"]}},
  "experiments": [{
    "id": "sdk", "match": {"path_prefix": "/v1/chat/completions"},
    "sticky_keys": ["x-user-id"], "control": "control",
    "variants": [
      {"name": "control", "weight": 50, "cluster": "model_a", "model": "gpt-4o-mini"},
      {"name": "reasoning", "weight": 50, "cluster": "model_b", "model": "gpt-5-mini"}
    ]
  }]
}"#;

const REDACTED_REPLY: &str = "Sure, I will write to [REDACTED:email] today.";

/// A user the filter assigns to `variant`.
fn user_of(variant: &str) -> String {
    (0..1000)
        .map(|i| format!("sdk-user-{i}"))
        .find(|u| support::expected_variant(CONFIG, &[("x-user-id", u)]) == variant)
        .expect("a user for the variant")
}

/// Runs the SDK scenarios against `port`; returns what each one saw, with
/// the trace id its requests carried.
fn run_sdk(port: u16, scenarios: &[&str]) -> HashMap<String, Value> {
    let (port, control, treatment) = (port.to_string(), user_of("control"), user_of("reasoning"));
    let args = [
        "--port",
        &port,
        "--control-user",
        &control,
        "--treatment-user",
        &treatment,
    ];
    support::run_driver("openai_chat.py", &args, scenarios)
}

/// The access-log records of the requests that carried `trace_id`.
fn records(envoy: &Envoy, trace_id: &str) -> Vec<Value> {
    support::records_of_trace(envoy, trace_id)
}

fn one_record(envoy: &Envoy, seen: &Value) -> Value {
    let trace = seen["trace_id"].as_str().expect("trace id");
    let mut r = records(envoy, trace);
    assert_eq!(r.len(), 1, "one record for {}: {r:?}", seen["scenario"]);
    r.remove(0)
}

fn cost(price: (f64, f64, f64), r: &Value) -> f64 {
    let n = |k: &str| r[k].as_u64().unwrap_or(0) as f64;
    ((n("tokens_in") - n("tokens_in_cached")) * price.0
        + n("tokens_in_cached") * price.1
        + n("tokens_out") * price.2)
        / 1e6
}

fn assert_cost(r: &Value, price: (f64, f64, f64)) {
    let got = r["cost_usd_est"].as_f64().unwrap_or(-1.0);
    let want = cost(price, r);
    assert!((got - want).abs() < 1e-12, "cost {got} != {want}: {r}");
}

#[test]
fn the_official_sdk_through_the_shipped_gateway() {
    let a = MockBackend::start("model_a", 0).expect("mock a");
    let b = MockBackend::start("model_b", 0).expect("mock b");
    let envoy = Envoy::start(CONFIG, &[("model_a", a.port()), ("model_b", b.port())]);
    let seen = run_sdk(
        envoy.port,
        &[
            "json_control",
            "json_reasoning",
            "stream_control",
            "stream_with_usage",
            "stream_close_after_done",
            "stream_client_leaves",
            "stream_no_done",
            "gzip_request",
            "error_400",
            "error_413",
            "error_429",
        ],
    );

    // Non-streaming: the answer parses and is redacted; the client got it
    // gzipped (it asked), the provider was asked for identity.
    let j = &seen["json_control"];
    let content = j["content"].as_str().unwrap_or("");
    assert!(content.starts_with(REDACTED_REPLY), "{j}");
    assert!(content.len() > 1024 && !content.contains("john.roe"), "{j}");
    assert_eq!(j["variant"], "control");
    assert_eq!(
        j["content_encoding"], "gzip",
        "compressed toward the client"
    );
    assert_eq!(j["usage"]["cached_tokens"], 16);
    let upstream = a.requests();
    assert!(!upstream.is_empty());
    for r in &upstream {
        assert_eq!(r.header("accept-encoding"), Some("identity"));
        assert!(r.header("content-encoding").is_none());
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains("jane.doe@example.com"), "redacted upstream");
    }
    let r = one_record(&envoy, j);
    assert_eq!(r["tokens_source"], "usage");
    assert_eq!(r["tokens_in"], j["usage"]["prompt_tokens"]);
    assert_eq!(r["tokens_out"], j["usage"]["completion_tokens"]);
    assert_eq!(r["tokens_in_cached"], 16);
    assert_eq!(r["tokens_reasoning"], 0);
    assert_eq!(r["outcome"], "success");
    assert_cost(&r, (0.15, 0.075, 0.6));

    // A reasoning model: the cap went up as max_completion_tokens (the
    // strict provider refuses max_tokens), reasoning tokens are recorded.
    let j = &seen["json_reasoning"];
    assert_eq!(j["content"], REDACTED_REPLY, "{j}");
    assert_eq!(j["model"], "gpt-5-mini");
    assert_eq!(
        j["content_encoding"],
        Value::Null,
        "under 1 KiB: not worth gzip"
    );
    let reasoning = j["usage"]["reasoning_tokens"].as_u64().unwrap_or(0);
    assert!(reasoning > 0, "{j}");
    let sent: Value = serde_json::from_slice(&b.requests()[0].body).expect("json upstream");
    assert_eq!(sent["max_completion_tokens"], 256);
    assert!(sent.get("max_tokens").is_none());
    let r = one_record(&envoy, j);
    assert_eq!(r["tokens_reasoning"], reasoning);
    assert_eq!(r["tokens_out"], j["usage"]["completion_tokens"]);
    assert_eq!(r["model"], "gpt-5-mini");
    assert_cost(&r, (0.25, 0.025, 2.0));

    // Streams: redacted content, the usage chunk the filter asked for is
    // not shown to a client that did not ask; one that asked sees the
    // provider's usage with its details.
    let s = &seen["stream_control"];
    assert_eq!(s["content"], REDACTED_REPLY, "{s}");
    assert_eq!(s["usage"], Value::Null);
    assert_eq!(s["finish_reason"], "stop");
    let r = one_record(&envoy, s);
    assert_eq!(
        (r["outcome"].as_str(), r["tokens_source"].as_str()),
        (Some("success"), Some("usage"))
    );
    let s = &seen["stream_with_usage"];
    assert_eq!(s["content"], REDACTED_REPLY, "{s}");
    assert_eq!(s["usage"]["cached_tokens"], 8);
    assert!(s["usage"]["reasoning_tokens"].as_u64().unwrap_or(0) > 0);
    let r = one_record(&envoy, s);
    assert_eq!(r["tokens_in_cached"], 8);
    assert_eq!(r["tokens_reasoning"], s["usage"]["reasoning_tokens"]);

    // Stream endings: the SDK closes at [DONE] long before the upstream's
    // end of body: a success. An app that stops reading early: an error.
    let s = &seen["stream_close_after_done"];
    assert_eq!(s["content"], REDACTED_REPLY);
    let r = one_record(&envoy, s);
    assert_eq!(r["outcome"], "success", "{r}");
    assert_eq!(r["status"], 200);
    let r = one_record(&envoy, &seen["stream_client_leaves"]);
    assert_eq!(r["outcome"], "error", "{r}");
    // A body that ends cleanly without [DONE] is a cut stream too (the
    // upstream reset mid-stream is tests/telemetry.rs's aborted stream).
    assert_eq!(seen["stream_no_done"]["content"], REDACTED_REPLY);
    let r = one_record(&envoy, &seen["stream_no_done"]);
    assert_eq!(r["outcome"], "error", "{r}");

    // A gzip request body: Envoy's decompressor hands the filter plaintext,
    // which it redacts; the provider gets it uncompressed.
    assert_eq!(seen["gzip_request"]["content"], REDACTED_REPLY);
    let trace = seen["gzip_request"]["trace_id"]
        .as_str()
        .unwrap_or("-")
        .to_string();
    let last = a
        .requests()
        .into_iter()
        .find(|r| r.header("traceparent").is_some_and(|t| t.contains(&trace)))
        .expect("the gzip request upstream");
    assert!(last.header("content-encoding").is_none());
    let body: Value = serde_json::from_slice(&last.body).expect("plaintext JSON upstream");
    assert_eq!(
        body["messages"][0]["content"],
        "My e-mail is [REDACTED:email], please confirm."
    );

    // The filter's own errors raise the SDK's matching exceptions.
    for (scenario, class, status, code, words) in [
        (
            "error_400",
            "BadRequestError",
            400,
            "content_blocked",
            "blocked by a content policy",
        ),
        (
            "error_413",
            "APIStatusError",
            413,
            "request_too_large",
            "exceeds the limit of 65536 bytes",
        ),
        (
            "error_429",
            "RateLimitError",
            429,
            "token_quota_exceeded",
            "token quota exceeded",
        ),
    ] {
        let e = &seen[scenario];
        assert_eq!(e["error_class"], class, "{e}");
        assert_eq!(e["status"], status, "{e}");
        assert_eq!(e["code"], code, "{e}");
        let message = e["message"].as_str().unwrap_or("");
        assert!(message.contains(words), "{scenario}: {message}");
    }

    // Prometheus: cached and reasoning tokens per variant.
    let metric =
        |m: &str, v: &str| envoy.metric(&format!("{m}{{experiment=\"sdk\",variant=\"{v}\"}}"));
    assert!(metric("llm_ab_tokens_in_cached", "control") >= 16);
    assert!(metric("llm_ab_tokens_reasoning", "reasoning") >= reasoning);
    assert_eq!(metric("llm_ab_unreadable_responses", "control"), 0);
}

/// The shipped envoy.yaml without its compression filters and the route's
/// `accept-encoding: identity`: the filter deployed on its own.
fn without_compression(cfg: &mut Value) {
    let hcm = &mut cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    if let Some(filters) = hcm["http_filters"].as_array_mut() {
        filters.retain(|f| {
            let t = f["typed_config"]["@type"].as_str().unwrap_or("");
            !t.contains("decompressor") && !t.contains("compressor")
        });
    }
    for vh in hcm["route_config"]["virtual_hosts"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        for route in vh["routes"].as_array_mut().into_iter().flatten() {
            if let Some(o) = route.as_object_mut() {
                o.remove("request_headers_to_add");
            }
        }
    }
}

#[test]
fn without_envoys_compression_filters_nothing_goes_unchecked() {
    let a = MockBackend::start("model_a", 0).expect("mock a");
    let b = MockBackend::start("model_b", 0).expect("mock b");
    let clusters = [("model_a", a.port()), ("model_b", b.port())];
    let envoy = Envoy::start_bootstrap_with(CONFIG, &clusters, without_compression);
    let seen = run_sdk(envoy.port, &["error_415", "error_502", "stream_502"]);

    // A gzip request: refused by name, never forwarded.
    let e = &seen["error_415"];
    assert_eq!(
        (e["error_class"].as_str(), e["status"].as_u64()),
        (Some("APIStatusError"), Some(415)),
        "{e}"
    );
    assert_eq!(e["code"], "unsupported_content_encoding");
    assert!(
        e["message"].as_str().unwrap_or("").contains("gzip-encoded"),
        "{e}"
    );
    // A gzip answer (the provider honours the SDK's Accept-Encoding):
    // redaction cannot read it, so on_error: block answers 502.
    for s in ["error_502", "stream_502"] {
        let e = &seen[s];
        assert_eq!(e["error_class"], "InternalServerError", "{s}: {e}");
        assert_eq!(e["status"], 502);
        assert_eq!(e["code"], "unsupported_content_encoding");
        assert!(
            e["message"].as_str().unwrap_or("").contains("gzip-encoded"),
            "{e}"
        );
    }
    assert!(
        a.requests()
            .iter()
            .all(|r| r.header("content-encoding").is_none()),
        "the compressed request never went upstream"
    );
    let rejected = |code: &str| {
        envoy.metric(&format!(
            "llm_ab_rejected{{experiment=\"sdk\",variant=\"control\",code=\"{code}\"}}"
        ))
    };
    assert_eq!(rejected("unsupported_content_encoding"), 3);
    drop(envoy);

    // on_error: pass forwards the answer as it came, counted and recorded
    // as unreadable: no dashboard mistakes it for an estimate.
    let pass = CONFIG.replace(r#""on_error": "block""#, r#""on_error": "pass""#);
    let envoy = Envoy::start_bootstrap_with(&pass, &clusters, without_compression);
    let seen = run_sdk(envoy.port, &["json_unreadable"]);
    let j = &seen["json_unreadable"];
    assert!(j["content"].as_str().is_some(), "{j}");
    let r = one_record(&envoy, j);
    assert_eq!(r["tokens_source"], "unreadable", "{r}");
    assert_eq!(r["tokens_out"], 0);
    assert_eq!(r["outcome"], "success");
    let metric = |m: &str| envoy.metric(&format!("{m}{{experiment=\"sdk\",variant=\"control\"}}"));
    assert_eq!(metric("llm_ab_unreadable_responses"), 1);
    assert_eq!(metric("llm_ab_redaction_skipped"), 1);
}
