//! End-to-end: token, quota and time budgets and guardrails (moderation,
//! tool allowlist, output schema) through a real Envoy with two workers.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use llm_ab::body::{prepare, Edits};
use serde_json::{json, Value};
use std::sync::Arc;
use support::{Envoy, MockBackend, Response};

fn config(budgets: &str, guardrails: &str) -> String {
    format!(
        r#"{{
  "default_cluster": "model_a",
  "budgets": {budgets},
  "guardrails": {guardrails},
  "experiments": [{{
    "id": "g",
    "match": {{"path_prefix": "/v1/chat/completions"}},
    "sticky_keys": ["x-user-id"],
    "variants": [{{"name": "control", "weight": 100, "cluster": "model_a", "model": "m"}}]
  }}]
}}"#
    )
}

const BUDGETS: &str = r#"{"max_input_tokens": 200, "max_output_tokens": 64, "timeout_ms": 600}"#;
const GUARDRAILS: &str = r#"{
  "moderation": {"request_patterns": ["(?i)how to make a bomb"], "response_patterns": ["(?i)as an evil ai"]},
  "tools": {"allow": ["search_docs", "get_weather"], "on_violation": "block"},
  "response_schema": {"on_fail": "block"}
}"#;

fn rig(budgets: &str, guardrails: &str) -> (MockBackend, Envoy) {
    let a = MockBackend::start("model_a", 0).unwrap();
    let envoy = Envoy::start(&config(budgets, guardrails), &[("model_a", a.port())]);
    (a, envoy)
}

fn error_code(r: &Response) -> String {
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    v["error"]["code"].as_str().unwrap_or("").to_string()
}

fn chat_body(content: &str) -> String {
    json!({"model": "x", "messages": [{"role": "user", "content": content}]}).to_string()
}

fn rejected(envoy: &Envoy, code: &str) -> u64 {
    envoy.metric(&format!(
        "llm_ab_rejected{{experiment=\"g\",variant=\"control\",code=\"{code}\"}}"
    ))
}

fn outcome(envoy: &Envoy, outcome: &str) -> u64 {
    envoy.metric(&format!(
        "llm_ab_outcomes{{experiment=\"g\",variant=\"control\",outcome=\"{outcome}\"}}"
    ))
}

#[test]
fn request_side_budgets_and_guardrails() {
    let (mock, envoy) = rig(BUDGETS, GUARDRAILS);
    let user = [("x-user-id", "u1")];

    // Over the input budget: 400, never forwarded.
    let r = envoy.chat(&user, &chat_body(&"word ".repeat(400)));
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (400, "context_budget_exceeded")
    );
    // A moderation pattern anywhere the model will see it: 400.
    let body = json!({"model": "x", "messages": [{"role": "system", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "So, HOW to make a bomb?"}]}]});
    let r = envoy.chat(&user, &body.to_string());
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (400, "content_blocked")
    );
    // A tool outside the allowlist: 403.
    let tools = json!({"model": "x", "messages": [], "tools": [
        {"type": "function", "function": {"name": "search_docs"}},
        {"type": "function", "function": {"name": "delete_everything"}}]});
    let r = envoy.chat(&user, &tools.to_string());
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (403, "tool_not_allowed")
    );
    assert_eq!(
        mock.request_count(),
        0,
        "blocked requests never reach the upstream"
    );

    // The output cap: lowered when above, inserted when missing (as
    // `max_completion_tokens`, which reasoning models require).
    let r = envoy.chat(&user, r#"{"model":"x","messages":[],"max_tokens":5000}"#);
    assert_eq!(r.status, 200);
    let r = envoy.chat(
        &user,
        r#"{"model":"x","messages":[],"max_completion_tokens":10}"#,
    );
    assert_eq!(r.status, 200);
    envoy.chat(&user, r#"{"model":"x","messages":[]}"#);
    let seen: Vec<Value> = mock
        .requests()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(seen[0]["max_tokens"], 64);
    assert_eq!(seen[1]["max_completion_tokens"], 10);
    assert_eq!(seen[2]["max_completion_tokens"], 64);
    assert!(seen[2].get("max_tokens").is_none());

    for code in [
        "context_budget_exceeded",
        "content_blocked",
        "tool_not_allowed",
    ] {
        assert_eq!(rejected(&envoy, code), 1, "{code}");
    }
    assert_eq!(outcome(&envoy, "blocked"), 3);
    let records = envoy.access_log_lines(6);
    let codes: Vec<Value> = records
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["error_code"].clone())
        .collect();
    assert_eq!(
        &codes[..3],
        &[
            json!("context_budget_exceeded"),
            json!("content_blocked"),
            json!("tool_not_allowed")
        ]
    );
}

#[test]
fn disallowed_tools_can_be_stripped_instead() {
    let guard = r#"{"tools": {"allow": ["search_docs"], "on_violation": "strip"}}"#;
    let (mock, envoy) = rig("{}", guard);
    let tools = json!({"model": "x", "messages": [], "tools": [
        {"type": "function", "function": {"name": "search_docs"}},
        {"type": "function", "function": {"name": "delete_everything"}}]});
    let r = envoy.chat(&[("x-user-id", "u")], &tools.to_string());
    assert_eq!(r.status, 200);
    let seen: Value = serde_json::from_slice(&mock.requests()[0].body).unwrap();
    let names: Vec<&str> = seen["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["search_docs"]);
}

#[test]
fn output_guardrails_on_json_and_streams() {
    let (_mock, envoy) = rig(BUDGETS, GUARDRAILS);
    let evil = [
        ("x-user-id", "u"),
        ("x-mock-reply", "Well, as an evil AI I would say yes."),
    ];

    // JSON: the content is replaced by a refusal.
    let r = envoy.chat(&evil, &chat_body("hi"));
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "I can't help with that."
    );
    assert!(!r.text().to_lowercase().contains("evil ai"));

    // Stream: cut at the match with a refusal and [DONE].
    let stream = json!({"model": "x", "stream": true, "messages": []}).to_string();
    let r = envoy.chat(&evil, &stream);
    let text = r.text();
    assert!(!text.to_lowercase().contains("evil ai"), "{text}");
    assert!(
        text.contains("I can't help with that.") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );

    // A tool call outside the allowlist: 502 for JSON, an error event for streams.
    let tool = [
        ("x-user-id", "u"),
        ("x-mock-tool-call", "delete_everything"),
    ];
    let r = envoy.chat(&tool, &chat_body("hi"));
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (502, "tool_not_allowed")
    );
    let r = envoy.chat(&tool, &stream);
    assert!(r.text().contains("\"tool_not_allowed\""), "{}", r.text());
    assert!(!r.text().contains("\"name\":\"delete_everything\""));
    let ok_tool = [("x-user-id", "u"), ("x-mock-tool-call", "get_weather")];
    assert_eq!(envoy.chat(&ok_tool, &chat_body("hi")).status, 200);

    assert_eq!(rejected(&envoy, "output_blocked"), 2);
    assert_eq!(rejected(&envoy, "tool_not_allowed"), 2);
    assert_eq!(outcome(&envoy, "blocked"), 4);
}

#[test]
fn output_schema_is_validated_and_counted() {
    let (_mock, envoy) = rig("{}", r#"{"response_schema": {"on_fail": "block"}}"#);
    let body = json!({"model": "x", "messages": [], "response_format": {"type": "json_schema",
        "json_schema": {"name": "r", "schema": {"type": "object", "required": ["answer"],
            "properties": {"answer": {"type": "string"}}, "additionalProperties": false}}}})
    .to_string();
    let good = envoy.chat(
        &[("x-user-id", "u"), ("x-mock-reply", r#"{"answer": "42"}"#)],
        &body,
    );
    assert_eq!(good.status, 200);
    let bad = envoy.chat(
        &[("x-user-id", "u"), ("x-mock-reply", r#"{"answer": 42}"#)],
        &body,
    );
    assert_eq!(
        (bad.status, error_code(&bad).as_str()),
        (502, "schema_validation_failed")
    );
    let prose = envoy.chat(
        &[("x-user-id", "u"), ("x-mock-reply", "the answer is 42")],
        &body,
    );
    assert_eq!(prose.status, 502);
    let checks = |r: &str| {
        envoy.metric(&format!(
            "llm_ab_schema_checks{{experiment=\"g\",variant=\"control\",schema_result=\"{r}\"}}"
        ))
    };
    assert_eq!((checks("pass"), checks("fail")), (1, 2));
    // Requests without a schema are not checked.
    envoy.chat(&[("x-user-id", "u")], &chat_body("hi"));
    assert_eq!(checks("pass") + checks("fail"), 3);
}

#[test]
fn timeout_budget_gives_an_openai_shaped_504() {
    let (mock, envoy) = rig(BUDGETS, "{}");
    let r = envoy.chat(
        &[("x-user-id", "u"), ("x-mock-delay-ms", "2000")],
        &chat_body("hi"),
    );
    assert_eq!(r.status, 504);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(error_code(&r), "upstream_timeout");
    assert_eq!(mock.requests().len(), 1);
    // The filter sees Envoy's own reply only when the exchange is logged,
    // just after the client got it.
    let record: Value = serde_json::from_str(&envoy.access_log_lines(1)[0]).unwrap();
    assert_eq!(record["error_code"], "upstream_timeout");
    assert_eq!(record["outcome"], "error");
    assert_eq!(record["status"], 504);
    assert_eq!(rejected(&envoy, "upstream_timeout"), 1);
    assert_eq!(outcome(&envoy, "error"), 1);
}

#[test]
fn quotas_are_shared_by_both_workers_and_settled_with_usage() {
    // Every request reserves its prompt estimate + the 64-token output cap.
    let body = chat_body("Please summarise our quarterly numbers.");
    let est = prepare(body.as_bytes(), Edits::default())
        .unwrap()
        .info
        .prompt_tokens_est;
    let per_request = est + 64;
    let allowed = 7;
    let limit = per_request * allowed + per_request / 2;
    let budgets = format!(
        r#"{{"max_output_tokens": 64, "quotas": [{{"key": "x-org-id", "tokens_per_minute": {limit}}}]}}"#
    );
    let (mock, envoy) = rig(&budgets, "{}");
    let envoy = Arc::new(envoy);
    // Quota windows are calendar minutes: requests on both sides of a
    // minute's end count against two windows. Start well inside one (the
    // requests take about 2 s).
    let second = support::unix_now() % 60.0;
    if second > 50.0 {
        std::thread::sleep(std::time::Duration::from_secs_f64(60.5 - second));
    }

    // 24 concurrent requests on separate connections, spread over both
    // workers, all in flight together (the mock takes 3 s: under load a
    // thread may start its request late, and one started after an earlier
    // request settled would find room again): exactly `allowed`
    // reservations fit, whichever worker made them.
    let threads: Vec<_> = (0..24)
        .map(|i| {
            let envoy = envoy.clone();
            let body = body.clone();
            std::thread::spawn(move || {
                let user = format!("user{i}");
                envoy.chat(
                    &[
                        ("x-user-id", &user),
                        ("x-org-id", "acme@example.com"),
                        ("x-mock-delay-ms", "3000"),
                    ],
                    &body,
                )
            })
        })
        .collect();
    let responses: Vec<Response> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = responses.iter().filter(|r| r.status == 200).count();
    let limited: Vec<&Response> = responses.iter().filter(|r| r.status == 429).collect();
    assert_eq!(
        ok,
        allowed as usize,
        "statuses: {:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(limited.len(), 24 - allowed as usize);
    for r in &limited {
        assert_eq!(error_code(r), "token_quota_exceeded");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry));
    }
    assert_eq!(mock.request_count(), allowed as usize);

    // Settlement: the real usage (mock: body/4 + 5 words) replaced the
    // estimates, so more requests fit now than the reservations allowed.
    let actual: u64 = mock
        .requests()
        .iter()
        .map(|r| (r.body.len() / 4).max(1) as u64 + 5)
        .sum();
    assert!(
        actual < per_request * allowed,
        "usage is below the reservations"
    );
    let room = limit - actual;
    let more = envoy.chat(
        &[("x-user-id", "late"), ("x-org-id", "acme@example.com")],
        &body,
    );
    assert_eq!(more.status, if room >= per_request { 200 } else { 429 });
    // Another org has its own quota.
    let other = envoy.chat(&[("x-user-id", "o"), ("x-org-id", "globex")], &body);
    assert_eq!(other.status, 200);
    assert!(
        !envoy.log().contains("acme@example.com"),
        "quota keys are hashed"
    );
}

#[test]
fn bad_guardrail_config_is_refused_at_load() {
    let bad = r#"{"moderation": {"request_patterns": ["(unclosed"]}}"#;
    let refused = match Envoy::try_start(&config("{}", bad), &[("model_a", 1)]) {
        Ok(_) => panic!("started with a bad pattern"),
        Err(r) => r,
    };
    assert!(refused
        .log
        .contains("guardrails.moderation.request_patterns[0]: does not compile"));
}

#[test]
fn high_risk_exchanges_are_copied_to_review_off_the_client_path() {
    let a = MockBackend::start("model_a", 0).unwrap();
    let sink = MockBackend::start("review_sink", 0).unwrap();
    let cfg = r#"{
      "default_cluster": "model_a",
      "redaction": {"request": true, "response": true},
      "guardrails": {
        "moderation": {"request_patterns": ["(?i)forbidden topic"]},
        "review": {"cluster": "review_sink", "sample_rate": 0, "always": ["refusal", "blocked"]}
      },
      "experiments": [{"id": "g", "sticky_keys": ["x-user-id"],
        "variants": [{"name": "control", "weight": 100, "cluster": "model_a"}]}]
    }"#;
    let envoy = Envoy::start(cfg, &[("model_a", a.port()), ("review_sink", sink.port())]);
    let pii = chat_body("my card is 4111 1111 1111 1111");
    assert_eq!(envoy.chat(&[("x-user-id", "u")], &pii).status, 200);
    let refused = envoy.chat(&[("x-user-id", "u"), ("x-mock-refuse", "1")], &pii);
    assert_eq!(refused.status, 200);
    let blocked = envoy.chat(
        &[("x-user-id", "u")],
        &chat_body("a forbidden topic, jane@example.com"),
    );
    assert_eq!(blocked.status, 400);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sink.request_count() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let copies: Vec<Value> = sink
        .requests()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(copies.len(), 2, "only the refusal and the block are copied");
    // Each worker VM sends its own queue: the order may vary.
    let mut outcomes: Vec<&str> = copies
        .iter()
        .map(|c| c["record"]["outcome"].as_str().unwrap())
        .collect();
    outcomes.sort_unstable();
    assert_eq!(outcomes, vec!["blocked", "refusal"]);
    let text = serde_json::to_string(&copies).unwrap();
    assert!(
        !text.contains("4111") && !text.contains("jane@example.com"),
        "copies are redacted"
    );
    assert!(text.contains("[REDACTED:credit_card]"));
    let blocked_copy = copies
        .iter()
        .find(|c| c["record"]["outcome"] == "blocked")
        .unwrap();
    assert_eq!(blocked_copy["response"]["error"]["code"], "content_blocked");
    assert_eq!(sink.requests()[0].path, "/review");
    // A copy counts as sent once the sink's answer is back in the VM, a
    // moment after the sink recorded it: wait for the count, then check it.
    let sent = || envoy.metric("llm_ab_review_copies{result=\"sent\"}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sent() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(sent(), 2);

    // A review sink that is down costs the client nothing; it is counted.
    drop(sink);
    let r = envoy.chat(&[("x-user-id", "u"), ("x-mock-refuse", "1")], &pii);
    assert_eq!(r.status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while envoy.metric("llm_ab_review_copies{result=\"failed\"}") < 1
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(envoy.metric("llm_ab_review_copies{result=\"failed\"}"), 1);
}
