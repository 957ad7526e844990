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

#[test]
fn canary_schedule_moves_weights_at_the_planned_times() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Starts in 2 s: 10 % for 3 s, then 50 % for good.
    let start = now + 2;
    let config = CONFIG.replace(
        "\"enabled\": true,",
        &format!(
            "\"enabled\": true, \"rollout\": {{\"start_unix_s\": {start}, \"steps\": [{{\"weight\": 10, \"hold_s\": 3}}, {{\"weight\": 50, \"hold_s\": 0}}]}},"
        ),
    );
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let envoy = Envoy::start(&config, &[("model_a", a.port()), ("model_b", b.port())]);
    let users: Vec<String> = (0..200).map(|i| format!("canary-{i}")).collect();
    let plan = llm_ab::config::load(config.as_bytes()).unwrap();
    let expect = |t: u64| -> Vec<bool> {
        users
            .iter()
            .map(|u| {
                let h = [
                    ("content-type", "application/json"),
                    ("x-user-id", u.as_str()),
                ];
                plan.decide_at("/v1/chat/completions", &support::HeaderList(&h), t)
                    .assignment
                    .unwrap()
                    .variant
                    .name
                    == "candidate"
            })
            .collect()
    };
    let observe = || -> Vec<bool> {
        users
            .iter()
            .map(|u| {
                envoy
                    .chat(&[("x-user-id", u)], BODY)
                    .header("x-llm-variant")
                    == Some("candidate")
            })
            .collect()
    };
    let wait_until = |t: u64| {
        while std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            < t as f64 + 0.3
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut counts = Vec::new();
    for (phase_start, label) in [(now, "before"), (start, "10 %"), (start + 3, "50 %")] {
        if phase_start > now {
            wait_until(phase_start);
        }
        let seen = observe();
        assert_eq!(
            seen,
            expect(phase_start),
            "{label}: the filter follows the schedule"
        );
        counts.push(seen.iter().filter(|c| **c).count());
    }
    println!(
        "candidate users of 200: before {}, step 1 {}, step 2 {}",
        counts[0], counts[1], counts[2]
    );
    assert_eq!(counts[0], 0);
    assert!(counts[1] > 5 && counts[1] < 40, "{counts:?}");
    assert!(counts[2] > 70 && counts[2] < 130, "{counts:?}");
    // Sticky through the ramp: step-1 candidates are still candidates.
    let step1 = expect(start);
    let step2 = expect(start + 3);
    assert!(step1.iter().zip(&step2).all(|(a, b)| !a || *b));
}
