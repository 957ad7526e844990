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

/// A streamed answer of 200 content events (some with PII), the finish
/// event, the usage chunk and `[DONE]`.
pub fn stream_200() -> Vec<u8> {
    let mut out = String::new();
    for i in 0..200 {
        let piece = match i % 10 {
            3 => "write to jane.doe@example.com ",
            7 => "or call +1 415 555 0134. ",
            _ => "The quarterly numbers improved. ",
        };
        out.push_str(&format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{piece}\"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    out.push_str("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    out.push_str("data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":500,\"completion_tokens\":1200}}\n\n");
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
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
        self.start(false);
        self.host.wire.borrow_mut().response_body = ANSWER.to_vec();
        let mut ex = Exchange::new(self.host.clone(), self.loaded.clone(), self.n);
        ex.on_request_headers(false);
        ex.on_request_body(self.body.len(), true);
        ex.on_response_headers(false);
        ex.on_response_body(ANSWER.len(), true);
        ex.on_log();
        self.host.hostcalls()
    }

    /// Runs one streaming exchange whose answer is `stream`, arriving in
    /// pieces of `piece` bytes; returns its hostcalls.
    pub fn run_stream(&mut self, stream: &[u8], piece: usize) -> usize {
        self.start(true);
        let body = self.host.wire.borrow().request_body.clone();
        let mut ex = Exchange::new(self.host.clone(), self.loaded.clone(), self.n);
        ex.on_request_headers(false);
        ex.on_request_body(body.len(), true);
        ex.on_response_headers(false);
        let pieces: Vec<&[u8]> = stream.chunks(piece.max(1)).collect();
        for (i, p) in pieces.iter().enumerate() {
            self.host.wire.borrow_mut().response_body = p.to_vec();
            ex.on_response_body(p.len(), i + 1 == pieces.len());
        }
        ex.on_log();
        self.host.hostcalls()
    }

    /// A new user's request on the wire (streaming or not).
    fn start(&mut self, stream: bool) {
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
            let content_type = if stream {
                // The same request, asking for a stream.
                wire.request_body.pop();
                wire.request_body.extend_from_slice(b",\"stream\":true}");
                "text/event-stream"
            } else {
                "application/json"
            };
            wire.response_headers = vec![
                (":status".into(), "200".into()),
                ("content-type".into(), content_type.into()),
            ];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_exchange_succeeds() {
        let stream = stream_200();
        for (name, config) in CONFIGURATIONS {
            let mut w = Workload::new(config).unwrap();
            let calls = w.run();
            assert!(calls > 5, "{name}");
            let streamed = w.run_stream(&stream, 512);
            assert!(streamed > 5, "{name}");
            if config != ROUTING {
                let record = w.host.record().unwrap();
                assert_eq!(record["outcome"], "success", "{name}");
                assert_eq!(record["stream"], true, "{name}");
                assert_eq!(record["tokens_out"], 1200, "{name}: usage of the stream");
            }
        }
    }
}
