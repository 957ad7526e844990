//! End-to-end: instant rollback. The filter configuration comes by ECDS
//! from a file (`envoy/envoy-ecds.yaml`); flipping `enabled` to false there
//! sends every new request to control without restarting Envoy.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};
use support::{expected_variant, Envoy, MockBackend};

const CONFIG: &str = r#"{
  "default_cluster": "model_a",
  "experiments": [{
    "id": "chat-q4", "enabled": true,
    "match": {"path_prefix": "/v1/chat/completions"},
    "sticky_keys": ["x-user-id"],
    "variants": [
      {"name": "control",   "weight": 50, "cluster": "model_a", "model": "gpt-4o-mini"},
      {"name": "candidate", "weight": 50, "cluster": "model_b", "model": "gpt-4.1-mini"}
    ]
  }]
}"#;

const BODY: &str = r#"{"model":"x","messages":[{"role":"user","content":"hi"}]}"#;

#[test]
fn flipping_enabled_in_the_ecds_file_rolls_back_within_two_seconds() {
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let envoy = Envoy::start_ecds(CONFIG, &[("model_a", a.port()), ("model_b", b.port())]);
    let candidates: Vec<String> = (0..)
        .map(|i| format!("user-{i}"))
        .filter(|u| expected_variant(CONFIG, &[("x-user-id", u)]) == "candidate")
        .take(20)
        .collect();
    for u in &candidates {
        let r = envoy.chat(&[("x-user-id", u)], BODY);
        assert_eq!(
            r.header("x-mock-backend"),
            Some("model_b"),
            "{u} starts on the candidate"
        );
    }

    // The one-line rollback: the same file with the kill switch thrown.
    let start = Instant::now();
    envoy.set_filter_config(&CONFIG.replace("\"enabled\": true", "\"enabled\": false"));
    let mut streak = 0;
    while streak < candidates.len() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "rollback took over 2 s"
        );
        let u = &candidates[streak % candidates.len()];
        let r = envoy.chat(&[("x-user-id", u)], BODY);
        if r.header("x-mock-backend") == Some("model_a")
            && r.header("x-llm-variant") == Some("control")
        {
            streak += 1;
        } else {
            streak = 0;
        }
    }
    let took = start.elapsed();
    println!(
        "rollback: every candidate user on control {} ms after the file was replaced",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(2));

    // A bad update is refused by the filter and the running one stays.
    envoy.set_filter_config(&CONFIG.replacen("\"weight\": 50,", "\"weight\": 40,", 1));
    std::thread::sleep(Duration::from_millis(500));
    for u in &candidates {
        let r = envoy.chat(&[("x-user-id", u)], BODY);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-llm-variant"),
            Some("control"),
            "still rolled back"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !envoy.log().contains("configuration rejected") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(envoy
        .log()
        .contains("configuration rejected: experiments[0].variants: weights sum to 90"));
}

#[test]
fn shipped_ecds_files_validate() {
    let (ok, out) = support::validate(&support::repo().join("envoy/envoy-ecds.yaml"));
    assert!(ok, "{out}");
}
