//! End-to-end: PII and secrets redacted in requests, JSON responses and
//! SSE streams through a real Envoy.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::Value;
use support::{send, Envoy, MockBackend, Response};

fn config(redaction: &str) -> String {
    format!(
        r#"{{
  "default_cluster": "model_a",
  "redaction": {redaction},
  "experiments": [{{
    "id": "chat-q4",
    "match": {{"path_prefix": "/v1/chat/completions"}},
    "sticky_keys": ["x-user-id"],
    "variants": [
      {{"name": "control",   "weight": 50, "cluster": "model_a", "model": "gpt-4o-mini"}},
      {{"name": "candidate", "weight": 50, "cluster": "model_b", "model": "gpt-4.1-mini"}}
    ]
  }}]
}}"#
    )
}

const REDACTION: &str = r#"{"request": true, "response": true,
  "detectors": ["email", "phone", "credit_card", "us_ssn", "ipv4", "ipv6", "iban", "secret"],
  "custom": [{"name": "employee_id", "pattern": "EMP-[0-9]{6}"}],
  "replacement": "[REDACTED:{type}]", "on_error": "block"}"#;

struct Rig {
    a: MockBackend,
    b: MockBackend,
    envoy: Envoy,
}

fn rig(redaction: &str) -> Rig {
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let envoy = Envoy::start(
        &config(redaction),
        &[("model_a", a.port()), ("model_b", b.port())],
    );
    Rig { a, b, envoy }
}

impl Rig {
    fn upstream_bodies(&self) -> Vec<String> {
        self.a
            .requests()
            .into_iter()
            .chain(self.b.requests())
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect()
    }

    fn chat(&self, user: &str, extra: &[(&str, &str)], body: &str) -> Response {
        let mut h = vec![("x-user-id", user)];
        h.extend_from_slice(extra);
        self.envoy.chat(&h, body)
    }

    fn redactions(&self, detector: &str) -> u64 {
        ["control", "candidate"]
            .iter()
            .map(|v| {
                self.envoy.metric(&format!(
                    "llm_ab_redactions{{experiment=\"chat-q4\",variant=\"{v}\",detector=\"{detector}\"}}"
                ))
            })
            .sum()
    }
}

fn stream_text(r: &Response) -> String {
    r.text()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn request_strings_are_redacted_before_they_go_upstream() {
    let rig = rig(REDACTION);
    let body = r#"{"model":"x","user":"u-1","messages":[
        {"role":"system","content":"You help employee EMP-123456."},
        {"role":"user","content":[{"type":"text","text":"I am jane\u0040example.com, card 4111 1111 1111 1111, ssn 123-45-6789"}]},
        {"role":"assistant","tool_calls":[{"id":"t1","type":"function","function":{"name":"lookup","arguments":"{\"key\":\"sk-proj-abcdefghijklmnopqrstuvwxyz012345\"}"}}]}],
        "temperature":0.70}"#;
    let r = rig.chat("u1", &[], body);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = rig.upstream_bodies();
    assert_eq!(seen.len(), 1);
    let up = &seen[0];
    for leaked in ["EMP-123456", "jane", "4111", "123-45-6789", "sk-proj"] {
        assert!(!up.contains(leaked), "{leaked} reached the upstream: {up}");
    }
    let v: Value = serde_json::from_str(up).expect("still JSON");
    assert_eq!(
        v["messages"][0]["content"],
        "You help employee [REDACTED:employee_id]."
    );
    assert_eq!(
        v["messages"][1]["content"][0]["text"],
        "I am [REDACTED:email], card [REDACTED:credit_card], ssn [REDACTED:us_ssn]"
    );
    let args: Value = serde_json::from_str(
        v["messages"][2]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args["key"], "[REDACTED:secret]");
    assert!(
        up.contains("\"temperature\":0.70"),
        "other bytes kept: {up}"
    );
    for (detector, n) in [
        ("email", 1),
        ("credit_card", 1),
        ("us_ssn", 1),
        ("secret", 1),
        ("employee_id", 1),
    ] {
        assert_eq!(rig.redactions(detector), n, "{detector}");
    }
    let log = rig.envoy.log();
    assert!(
        !log.contains("jane") && !log.contains("4111"),
        "no matched value in logs"
    );
}

#[test]
fn json_responses_are_redacted_before_they_reach_the_client() {
    let rig = rig(REDACTION);
    let reply = "Sure: write to john.doe@example.com or call (415) 555-0100, token ghp_abcdefghijklmnopqrstuvwxyz0123456789.";
    let r = rig.chat(
        "u2",
        &[("x-mock-reply", reply)],
        r#"{"model":"x","messages":[]}"#,
    );
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Sure: write to [REDACTED:email] or call [REDACTED:phone], token [REDACTED:secret]."
    );
    assert_eq!(
        r.header("content-length").map(str::parse::<usize>),
        Some(Ok(r.body.len()))
    );
    assert!(
        v["usage"]["completion_tokens"].as_u64().is_some(),
        "usage still read"
    );
}

#[test]
fn streams_are_redacted_even_when_values_split_across_events_and_chunks() {
    let rig = rig(REDACTION);
    let reply = "Reach me at john.doe@example.com, or +44 20 7946 0958; my IBAN is GB82 WEST 1234 5698 7654 32. Cheers!";
    for chunk in ["1", "3", "7", "16"] {
        for split in ["0", "1"] {
            let r = rig.chat(
                "u3",
                &[
                    ("x-mock-reply", reply),
                    ("x-mock-chunk-chars", chunk),
                    ("x-mock-split", split),
                ],
                r#"{"model":"x","stream":true,"messages":[]}"#,
            );
            assert_eq!(r.status, 200);
            let text = stream_text(&r);
            assert_eq!(
                text,
                "Reach me at [REDACTED:email], or [REDACTED:phone]; my IBAN is [REDACTED:iban]. Cheers!",
                "chunks of {chunk}, split {split}"
            );
            assert!(r.text().ends_with("data: [DONE]\n\n"));
            assert!(
                !r.text().contains("\"usage\""),
                "injected usage chunk still stripped"
            );
        }
    }
    assert_eq!(rig.redactions("email"), 8);
    assert_eq!(rig.redactions("iban"), 8);
}

#[test]
fn unscannable_responses_are_blocked_or_passed_as_configured() {
    let rig = rig(REDACTION);
    let r = rig.chat(
        "u4",
        &[("x-mock-raw", "{not json at all")],
        r#"{"model":"x","messages":[]}"#,
    );
    assert_eq!(r.status, 502, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["code"], "redaction_failed");

    let pass = REDACTION.replace("\"block\"", "\"pass\"");
    let rig = self::rig(&pass);
    let r = rig.chat(
        "u4",
        &[("x-mock-raw", "{not json at all")],
        r#"{"model":"x","messages":[]}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "{not json at all");
    let skipped: u64 = ["control", "candidate"]
        .iter()
        .map(|v| {
            rig.envoy.metric(&format!(
                "llm_ab_redaction_skipped{{experiment=\"chat-q4\",variant=\"{v}\"}}"
            ))
        })
        .sum();
    assert_eq!(skipped, 1);
}

#[test]
fn hash_replacement_is_stable_across_requests() {
    let hashed = REDACTION.replace(
        "\"replacement\": \"[REDACTED:{type}]\"",
        "\"replacement\": \"hash\", \"hash_key\": \"0123456789abcdef-test-key\"",
    );
    let rig = rig(&hashed);
    for _ in 0..2 {
        rig.chat(
            "u5",
            &[],
            r#"{"model":"x","messages":[{"role":"user","content":"me: a@example.com"}]}"#,
        );
    }
    rig.chat(
        "u5",
        &[],
        r#"{"model":"x","messages":[{"role":"user","content":"me: b@example.com"}]}"#,
    );
    let seen = rig.upstream_bodies();
    let token = |s: &str| {
        let v: Value = serde_json::from_str(s).unwrap();
        v["messages"][0]["content"].as_str().unwrap().to_string()
    };
    assert_eq!(token(&seen[0]), token(&seen[1]));
    assert_ne!(token(&seen[0]), token(&seen[2]));
    assert!(
        token(&seen[0]).starts_with("me: [EMAIL:"),
        "{}",
        token(&seen[0])
    );
}

#[test]
fn bad_custom_patterns_are_refused_at_load_with_their_name() {
    let bad = REDACTION.replace("EMP-[0-9]{6}", "EMP-[0-9");
    let refused = match Envoy::try_start(&config(&bad), &[("model_a", 1), ("model_b", 1)]) {
        Ok(_) => panic!("started with a bad pattern"),
        Err(r) => r,
    };
    let line = refused
        .log
        .lines()
        .find(|l| l.contains("configuration rejected"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("redaction.custom[0].pattern") && line.contains("employee_id"),
        "{line}"
    );
}

#[test]
fn unmatched_paths_are_untouched() {
    let rig = rig(REDACTION);
    let body = br#"{"input":"x@example.com"}"#;
    send(
        rig.envoy.port,
        "POST",
        "/v1/embeddings",
        &[("content-type", "application/json")],
        body,
    )
    .unwrap();
    assert_eq!(rig.a.requests()[0].body, body.to_vec());
}
