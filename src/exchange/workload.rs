//! The benchmark workload of a whole exchange over the [`FakeHost`]: one
//! 2 KB chat request (headers, body, JSON answer with usage, record) per
//! run, under the routing-only, default or everything-on configuration.
//! `cargo bench --bench core` times it natively and `bench/inwasm` inside
//! the V8 that Envoy embeds, so the same work is measured both ways.

use super::fake::FakeHost;
use super::Exchange;
use crate::config::ConfigErrors;
use crate::metrics::Metrics;
use std::rc::Rc;

/// Routing only: two variants, no telemetry.
pub const ROUTING: &str = r#"{"default_cluster": "a", "telemetry": false,
  "experiments": [{"id": "chat-q4", "sticky_keys": ["x-user-id"], "variants": [
    {"name": "control", "weight": 90, "cluster": "a", "model": "gpt-4o-mini"},
    {"name": "candidate", "weight": 10, "cluster": "b", "model": "gpt-4.1-mini"}]}]}"#;

/// The default: routing and telemetry.
pub const DEFAULT: &str = r#"{"default_cluster": "a",
  "experiments": [{"id": "chat-q4", "sticky_keys": ["x-user-id"], "variants": [
    {"name": "control", "weight": 90, "cluster": "a", "model": "gpt-4o-mini"},
    {"name": "candidate", "weight": 10, "cluster": "b", "model": "gpt-4.1-mini"}]}]}"#;

/// Everything on: redaction, budgets with a quota, every guardrail.
pub const EVERYTHING: &str = r#"{"default_cluster": "a",
  "redaction": {"request": true, "response": true, "custom": [{"name": "employee_id", "pattern": "EMP-[0-9]{6}"}]},
  "budgets": {"max_input_tokens": 8000, "max_output_tokens": 1024, "timeout_ms": 30000,
              "quotas": [{"key": "x-org-id", "tokens_per_minute": 1000000000000}]},
  "guardrails": {"moderation": {"request_patterns": ["(?i)how to make a bomb"], "response_patterns": ["(?i)as an evil ai"]},
                 "tools": {"allow": ["search_docs", "get_weather"], "on_violation": "block"},
                 "response_schema": {"on_fail": "count"},
                 "review": {"cluster": "a", "sample_rate": 0, "always": ["blocked"]}},
  "experiments": [{"id": "chat-q4", "sticky_keys": ["x-user-id"], "variants": [
    {"name": "control", "weight": 90, "cluster": "a", "model": "gpt-4o-mini"},
    {"name": "candidate", "weight": 10, "cluster": "b", "model": "gpt-4.1-mini"}]}]}"#;

/// The three configurations, by name.
pub const CONFIGURATIONS: [(&str, &str); 3] = [
    ("routing only", ROUTING),
    ("default", DEFAULT),
    ("everything on", EVERYTHING),
];

/// A small chat completion with usage.
pub const ANSWER: &[u8] = br#"{"id":"chatcmpl-bench","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":500,"completion_tokens":1,"total_tokens":501}}"#;

/// A chat request of about 2 KB (prose, one system and one user message).
pub fn request_2kb() -> Vec<u8> {
    let filler = "Summarise the quarterly report for the board, keep it short. ".repeat(40);
    let content = filler.get(..1900).unwrap_or_default();
    format!(
        r#"{{"messages":[{{"content":"You are a careful assistant.","role":"system"}},{{"content":"{content}","role":"user"}}],"model":"app-default","temperature":0.2}}"#
    )
    .into_bytes()
}

/// One configuration's exchanges, each with a new user.
pub struct Workload {
    host: FakeHost,
    loaded: super::Loaded,
    body: Vec<u8>,
    n: u64,
}

impl Workload {
    /// The workload under `config` (JSON).
    pub fn new(config: &str) -> Result<Workload, ConfigErrors> {
        let plan = crate::config::load(config.as_bytes())?;
        let mut id = 0;
        let metrics = Metrics::define(&plan, &mut |_, _| {
            id += 1;
            Some(id)
        });
        Ok(Workload {
            host: FakeHost::at(1_767_225_600),
            loaded: Some((Rc::new(plan), Rc::new(metrics))),
            body: request_2kb(),
            n: 0,
        })
    }

    /// Runs one exchange; returns its hostcalls.
    pub fn run(&mut self) -> usize {
        self.n += 1;
        let n = self.n;
        self.host.clear_calls();
        {
            let mut wire = self.host.wire.borrow_mut();
            wire.request_headers = vec![
                (":method".into(), "POST".into()),
                (":path".into(), "/v1/chat/completions".into()),
                (":authority".into(), "gateway".into()),
                ("content-type".into(), "application/json".into()),
                ("x-user-id".into(), format!("user-{n}")),
                ("x-org-id".into(), format!("org-{}", n % 50)),
                (
                    "x-request-id".into(),
                    "5b1e2e07-6c1c-4a4e-9a1c-2c8b9f0d3e11".into(),
                ),
            ];
            wire.request_body.clone_from(&self.body);
            wire.response_headers = vec![
                (":status".into(), "200".into()),
                ("content-type".into(), "application/json".into()),
            ];
            wire.response_body = ANSWER.to_vec();
        }
        let mut ex = Exchange::new(self.host.clone(), self.loaded.clone(), n);
        ex.on_request_headers(false);
        ex.on_request_body(self.body.len(), true);
        ex.on_response_headers(false);
        ex.on_response_body(ANSWER.len(), true);
        ex.on_log();
        self.host.hostcalls()
    }
}
