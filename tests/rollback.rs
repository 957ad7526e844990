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

/// The weight gauges of chat-q4 (control, candidate) as Envoy exports them,
/// in basis points.
fn weights(envoy: &Envoy) -> (u64, u64) {
    let w = |v: &str, role: &str| {
        envoy.metric(&format!(
            "llm_ab_variant_weight_bp{{experiment=\"chat-q4\",variant=\"{v}\",role=\"{role}\"}}"
        ))
    };
    (w("control", "control"), w("candidate", "treatment"))
}

/// Waits up to `within` for the weight gauges to read `want`.
fn wait_for_weights(envoy: &Envoy, want: (u64, u64), within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = weights(envoy);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "weights {got:?}, want {want:?} (control, candidate)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn flipping_enabled_in_the_ecds_file_rolls_back_within_two_seconds() {
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let envoy = Envoy::start_ecds(CONFIG, &[("model_a", a.port()), ("model_b", b.port())]);
    assert_eq!(weights(&envoy), (5000, 5000));
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
    // Killed: the weight gauges say every user is control's.
    wait_for_weights(&envoy, (10_000, 0), Duration::from_secs(2));

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
    assert_eq!(weights(&envoy), (10_000, 0), "the running weights stay");
}

#[test]
fn shipped_ecds_files_validate() {
    let (ok, out) = support::validate(&support::repo().join("envoy/envoy-ecds.yaml"));
    assert!(ok, "{out}");
}

#[test]
fn canary_schedule_moves_weights_at_the_planned_times() {
    let unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let now = unix() as u64;
    // Starts in 5 whole seconds (Envoy takes about one to start, more on a
    // busy machine): 10 % for 3 s, then 50 % for good.
    let start = now + 5;
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
    let candidate_at = |u: &str, t: u64| -> bool {
        let h = [("content-type", "application/json"), ("x-user-id", u)];
        plan.decide_at("/v1/chat/completions", &support::HeaderList(&h), t)
            .assignment
            .unwrap()
            .variant
            .name
            == "candidate"
    };
    let expect = |t: u64| -> Vec<bool> { users.iter().map(|u| candidate_at(u, t)).collect() };
    let wait_until = |t: u64| {
        while unix() < t as f64 + 0.3 {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // Each request is checked against the schedule at the second it was
    // sent or answered (one that crosses a step may see either side).
    let mut within = Vec::new();
    for (phase_start, phase_end, label, weight) in [
        (now, start, "before", 0),
        (start, start + 3, "10 %", 1000),
        (start + 3, u64::MAX, "50 %", 5000),
    ] {
        wait_until(phase_start.max(now));
        // The weight gauges follow the schedule (the root context ticks
        // every second while a rollout runs).
        wait_for_weights(
            &envoy,
            (10_000 - weight, weight),
            Duration::from_millis(1500),
        );
        let mut inside = 0;
        for u in &users {
            let sent = unix() as u64;
            let seen = envoy
                .chat(&[("x-user-id", u)], BODY)
                .header("x-llm-variant")
                == Some("candidate");
            let answered = unix() as u64;
            assert!(
                seen == candidate_at(u, sent) || seen == candidate_at(u, answered),
                "{label}: {u} is {} at {sent}..{answered}: the filter follows the schedule",
                if seen { "candidate" } else { "control" }
            );
            inside += usize::from(sent >= phase_start && answered < phase_end);
        }
        within.push(inside);
    }
    println!("requests within their phase (of 200): {within:?}");
    assert!(
        within.iter().all(|n| *n > 0),
        "every phase was observed: {within:?}"
    );
    let counts: Vec<usize> = [now, start, start + 3]
        .iter()
        .map(|t| expect(*t).iter().filter(|c| **c).count())
        .collect();
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

fn candidates(config: &str, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("cand-{i}"))
        .filter(|u| expected_variant(config, &[("x-user-id", u)]) == "candidate")
        .take(n)
        .collect()
}

#[test]
fn circuit_breaker_opens_sends_control_then_probes_and_closes() {
    let config = CONFIG.replace(
        "\"enabled\": true,",
        "\"enabled\": true, \"circuit_breaker\": {\"consecutive_failures\": 3, \"failure_rate\": 0.9, \"window_s\": 30, \"min_requests\": 100, \"open_s\": 2},",
    );
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    b.set_behavior(llm_ab_mock::Behavior {
        fail_rate: 1.0,
        fail_status: 500,
        ..Default::default()
    });
    let envoy = Envoy::start(&config, &[("model_a", a.port()), ("model_b", b.port())]);
    let users = candidates(&config, 12);
    let statuses: Vec<u16> = users
        .iter()
        .map(|u| envoy.chat(&[("x-user-id", u)], BODY).status)
        .collect();
    assert_eq!(
        &statuses[..3],
        &[500, 500, 500],
        "three failures open the breaker"
    );
    assert!(statuses[3..].iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        b.request_count(),
        3,
        "no more traffic to the failing variant"
    );
    let gauge = "llm_ab_circuit_open{experiment=\"chat-q4\",variant=\"candidate\"}";
    assert_eq!(envoy.metric(gauge), 1);
    assert_eq!(
        envoy.metric(
            "llm_ab_requests{experiment=\"chat-q4\",variant=\"control\",reason=\"circuit_open\"}"
        ),
        9
    );

    // The variant recovers; after open_s, probes close the breaker.
    b.set_behavior(llm_ab_mock::Behavior::default());
    std::thread::sleep(Duration::from_millis(2100));
    for u in &users[..3] {
        assert_eq!(
            envoy
                .chat(&[("x-user-id", u)], BODY)
                .header("x-mock-backend"),
            Some("model_b")
        );
    }
    let back: Vec<Option<String>> = users
        .iter()
        .map(|u| {
            envoy
                .chat(&[("x-user-id", u)], BODY)
                .header("x-mock-backend")
                .map(str::to_string)
        })
        .collect();
    assert!(
        back.iter().all(|b| b.as_deref() == Some("model_b")),
        "closed again: {back:?}"
    );
    assert_eq!(envoy.metric(gauge), 0);
}

#[test]
fn slo_breach_pauses_the_experiment_until_the_configuration_changes() {
    let config = CONFIG.replace(
        "\"enabled\": true,",
        "\"enabled\": true, \"slo\": {\"window_s\": 60, \"min_requests\": 10, \"max_error_rate\": 0.2},",
    );
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    b.set_behavior(llm_ab_mock::Behavior {
        fail_rate: 0.5,
        fail_status: 503,
        ..Default::default()
    });
    let envoy = Envoy::start_ecds(&config, &[("model_a", a.port()), ("model_b", b.port())]);
    let users = candidates(&config, 40);
    for u in &users {
        envoy.chat(&[("x-user-id", u)], BODY);
    }
    let sent_to_b = b.request_count();
    assert!(
        (10..40).contains(&sent_to_b),
        "paused after the window had enough evidence: {sent_to_b}"
    );
    assert_eq!(envoy.metric("llm_ab_paused{experiment=\"chat-q4\"}"), 1);
    // Paused: the treatment's weight gauge is 0 from the breach on.
    assert_eq!(weights(&envoy), (10_000, 0));
    for u in &users {
        let r = envoy.chat(&[("x-user-id", u)], BODY);
        assert_eq!(
            (r.status, r.header("x-llm-variant")),
            (200, Some("control"))
        );
    }
    assert_eq!(
        b.request_count(),
        sent_to_b,
        "nobody reaches the candidate while paused"
    );
    assert!(
        envoy.metric(
            "llm_ab_requests{experiment=\"chat-q4\",variant=\"control\",reason=\"paused\"}"
        ) >= 40
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !envoy.log().contains("experiment chat-q4 paused") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines: Vec<String> = envoy
        .log()
        .lines()
        .filter(|l| l.contains("experiment chat-q4 paused"))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "one warning: {lines:?}");
    assert!(lines[0].contains("breached max_error_rate"), "{}", lines[0]);

    // A new configuration (the operator's answer) starts afresh.
    b.set_behavior(llm_ab_mock::Behavior::default());
    envoy.set_filter_config(&config.replace("\"max_error_rate\": 0.2", "\"max_error_rate\": 0.25"));
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let r = envoy.chat(&[("x-user-id", &users[0])], BODY);
        if r.header("x-llm-variant") == Some("candidate") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still paused after a configuration change"
        );
    }
    assert_eq!(weights(&envoy), (5000, 5000));
}

fn fallback_config(on: &str) -> String {
    CONFIG
        .replace(
            "\"enabled\": true,",
            &format!("\"enabled\": true, \"fallback\": {{\"on\": {on}, \"max_attempts\": 1}},"),
        )
        .replace(
            "\"cluster\": \"model_b\", \"model\": \"gpt-4.1-mini\"}",
            "\"cluster\": \"model_b\", \"model\": \"gpt-4.1-mini\", \"timeout_ms\": 300}",
        )
}

#[test]
fn failed_treatment_requests_fall_back_to_control() {
    let config = fallback_config(r#"["5xx", "connect_failure", "timeout"]"#);
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let envoy = Envoy::start(&config, &[("model_a", a.port()), ("model_b", b.port())]);
    let users = candidates(&config, 3);

    // 5xx, JSON and streaming: the client sees control's good answer.
    let r = envoy.chat(&[("x-user-id", &users[0]), ("x-mock-status", "500")], BODY);
    assert_eq!(
        (r.status, r.header("x-mock-backend")),
        (200, Some("model_a"))
    );
    assert_eq!(r.header("x-llm-variant"), Some("control"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["model"], "gpt-4o-mini", "control's model went to control");
    let stream = r#"{"model":"x","stream":true,"messages":[]}"#;
    let r = envoy.chat(
        &[("x-user-id", &users[0]), ("x-mock-status", "503")],
        stream,
    );
    assert_eq!(r.status, 200);
    assert!(
        r.text().ends_with("data: [DONE]\n\n") && r.text().contains("gpt-4o-mini"),
        "{}",
        r.text()
    );

    // Timeout of the treatment's budget (300 ms) against a slow backend.
    let start = Instant::now();
    let r = envoy.chat(
        &[("x-user-id", &users[1]), ("x-mock-delay-ms", "3000")],
        BODY,
    );
    assert_eq!(
        (r.status, r.header("x-mock-backend")),
        (200, Some("model_a"))
    );
    assert!(start.elapsed() < Duration::from_millis(2500));

    let records: Vec<serde_json::Value> = envoy
        .access_log_lines(3)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for rec in &records {
        assert_eq!(rec["assigned_variant"], "candidate");
        assert_eq!(rec["served_variant"], "control");
        assert_eq!(rec["reason"], "fallback");
        assert_eq!(rec["outcome"], "fallback");
    }
    assert_eq!(
        envoy.metric(
            "llm_ab_outcomes{experiment=\"chat-q4\",variant=\"candidate\",outcome=\"fallback\"}"
        ),
        3
    );
    // The mocks saw one treatment try and one control answer each time.
    assert_eq!(b.request_count(), 3);
    assert_eq!(a.request_count(), 3);
}

#[test]
fn unreachable_treatment_falls_back_on_connect_failure() {
    let config = fallback_config(r#"["connect_failure"]"#);
    let a = MockBackend::start("model_a", 0).unwrap();
    let closed = support::free_port();
    let envoy = Envoy::start(&config, &[("model_a", a.port()), ("model_b", closed)]);
    let users = candidates(&config, 1);
    let r = envoy.chat(&[("x-user-id", &users[0])], BODY);
    assert_eq!(
        (r.status, r.header("x-mock-backend")),
        (200, Some("model_a"))
    );
    // Not configured for 5xx: a 500 from control-reachable treatments passes.
}

#[test]
fn fallback_is_not_used_when_not_configured_for_the_failure() {
    let config = fallback_config(r#"["timeout"]"#);
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let envoy = Envoy::start(&config, &[("model_a", a.port()), ("model_b", b.port())]);
    let users = candidates(&config, 1);
    let r = envoy.chat(&[("x-user-id", &users[0]), ("x-mock-status", "500")], BODY);
    assert_eq!(
        (r.status, r.header("x-mock-backend")),
        (500, Some("model_b"))
    );
    assert_eq!(a.request_count(), 0);
}

#[test]
fn a_flaky_treatment_never_shows_through_fallback() {
    let config = fallback_config(r#"["5xx"]"#);
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    b.set_behavior(llm_ab_mock::Behavior {
        fail_rate: 0.3,
        fail_status: 502,
        ..Default::default()
    });
    let envoy = Envoy::start(&config, &[("model_a", a.port()), ("model_b", b.port())]);
    let users = candidates(&config, 40);
    let served: Vec<(u16, Option<String>)> = users
        .iter()
        .map(|u| {
            let r = envoy.chat(&[("x-user-id", u)], BODY);
            (r.status, r.header("x-mock-backend").map(str::to_string))
        })
        .collect();
    assert!(served.iter().all(|(s, _)| *s == 200), "{served:?}");
    let by_control = served
        .iter()
        .filter(|(_, b)| b.as_deref() == Some("model_a"))
        .count();
    assert_eq!(
        by_control,
        a.request_count(),
        "every failure was answered by control"
    );
    assert!(
        (4..=24).contains(&by_control),
        "about 30 % fell back: {by_control}"
    );
}
