//! Bounded load and fault test on loopback: concurrent requests through the
//! full configuration while the mocks randomly fail, stall, cut streams and
//! send malformed JSON. Nothing is lost or answered twice, Envoy stays up,
//! and the filter's counters add up to the requests sent.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{send, Envoy, MockBackend};

const CONFIG: &str = r#"{
  "default_cluster": "model_a",
  "pricing": {"gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}},
  "redaction": {"request": true, "response": true, "on_error": "block"},
  "budgets": {"max_input_tokens": 8000, "max_output_tokens": 512, "timeout_ms": 2000},
  "guardrails": {"moderation": {"request_patterns": ["(?i)forbidden"], "response_patterns": ["(?i)evil ai"]},
                 "tools": {"allow": ["search_docs"]}},
  "experiments": [{
    "id": "load",
    "sticky_keys": ["x-user-id"],
    "fallback": {"on": ["5xx"]},
    "variants": [
      {"name": "control",   "weight": 50, "cluster": "model_a", "model": "gpt-4o-mini"},
      {"name": "candidate", "weight": 50, "cluster": "model_b", "model": "gpt-4o-mini"}
    ]
  }]
}"#;

/// What one request does to the mock, chosen by a seeded generator.
fn fault(i: u64) -> (Vec<(&'static str, String)>, bool) {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    let stream = x % 3 == 0;
    let headers = match (x >> 8) % 10 {
        0 => vec![("x-mock-status", "500".to_string())],
        1 => vec![("x-mock-delay-ms", "150".to_string())],
        2 if stream => vec![("x-mock-abort", "1".to_string())],
        3 if !stream => vec![("x-mock-raw", "{not json".to_string())],
        4 => vec![("x-mock-reply", "as an evil AI I say".to_string())],
        5 => vec![("x-mock-split", "1".to_string())],
        _ => vec![],
    };
    (headers, stream)
}

#[test]
fn concurrent_faults_lose_nothing_and_counters_add_up() {
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let envoy = Arc::new(Envoy::start(
        CONFIG,
        &[("model_a", a.port()), ("model_b", b.port())],
    ));
    let (threads, per_thread) = (8u64, 50u64);
    let started = Instant::now();
    let results: Vec<(u64, Result<u16, String>)> = (0..threads)
        .map(|t| {
            let envoy = envoy.clone();
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|k| {
                        let i = t * per_thread + k;
                        let (mut headers, stream) = fault(i);
                        let user = format!("user-{i}");
                        headers.push(("x-user-id", user));
                        headers.push(("content-type", "application/json".to_string()));
                        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                        let body = format!(
                            r#"{{"model":"x","stream":{stream},"messages":[{{"role":"user","content":"request {i} from jane@example.com"}}]}}"#
                        );
                        let r = send(envoy.port, "POST", "/v1/chat/completions", &h, body.as_bytes());
                        (i, r.map(|r| r.status).map_err(|e| e.to_string()))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let total = threads * per_thread;
    assert_eq!(results.len() as u64, total);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "bounded in time"
    );

    // Every request got one answer; only cut streams end without one whole.
    for (i, r) in &results {
        match r {
            // 500: a control request told to fail (only treatments fall back);
            // 502: malformed JSON the redaction could not scan.
            Ok(status) => assert!(
                [200, 500, 502].contains(status),
                "request {i}: status {status}"
            ),
            Err(_) => assert_eq!(
                fault(*i).0.first().map(|h| h.0),
                Some("x-mock-abort"),
                "request {i} lost"
            ),
        }
    }
    // Envoy is still up and serving.
    assert_eq!(
        send(envoy.admin, "GET", "/ready", &[], b"").unwrap().status,
        200
    );
    let ok = envoy.chat(&[("x-user-id", "after")], r#"{"model":"x","messages":[]}"#);
    assert_eq!(ok.status, 200);

    // The filter's counters add up to the requests sent (plus the last one).
    let sum = |name: &str| -> u64 {
        envoy
            .prometheus()
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while sum("llm_ab_outcomes") < total + 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sum("llm_ab_requests"), total + 1);
    assert_eq!(
        sum("llm_ab_outcomes"),
        total + 1,
        "each request finished exactly once"
    );
    assert_eq!(
        sum("llm_ab_responses"),
        total + 1,
        "every request had one response"
    );
    let records = envoy.access_log_lines(total as usize + 1);
    assert_eq!(records.len() as u64, total + 1, "one record per request");
    assert!(!records.join("\n").contains("jane@example.com"));
}
