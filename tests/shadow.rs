//! End-to-end: shadow traffic through a real Envoy (two workers) from the
//! shipped `envoy/envoy.yaml`. Control's requests are copied to the
//! candidate off the client's path; each copy's answer is scored against
//! the client's and its record POSTed to the sink.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::{Envoy, MockBackend};

fn config(shadow: &str) -> String {
    format!(
        r#"{{
  "default_cluster": "model_a",
  "redaction": {{"request": true, "response": true}},
  "pricing": {{"gpt-cand": {{"input_per_mtok": 1.0, "output_per_mtok": 4.0}}}},
  "experiments": [{{
    "id": "sh",
    "sticky_keys": ["x-user-id"],
    "variants": [
      {{"name": "control", "weight": 100, "cluster": "model_a", "model": "gpt-control"}},
      {{"name": "cand", "weight": 0, "cluster": "model_b", "model": "gpt-cand", "prompt_version": "p2"}}
    ],
    "shadow": {shadow}
  }}]
}}"#
    )
}

struct Rig {
    a: MockBackend,
    b: Option<MockBackend>,
    sink: Option<MockBackend>,
    envoy: Envoy,
}

fn rig(shadow: &str) -> Rig {
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let sink = MockBackend::start("shadow_sink", 0).unwrap();
    let envoy = Envoy::start(
        &config(shadow),
        &[
            ("model_a", a.port()),
            ("model_b", b.port()),
            ("shadow_sink", sink.port()),
        ],
    );
    Rig {
        a,
        b: Some(b),
        sink: Some(sink),
        envoy,
    }
}

fn traceparent(i: usize) -> (String, String) {
    let trace = format!("{:032x}", 0x5ade_0000_0000u64 + i as u64);
    (format!("00-{trace}-00f067aa0ba902b7-01"), trace)
}

/// Sends request `i` (a prompt with an e-mail address) and checks that the
/// client got control's answer; returns its trace id.
fn send(envoy: &Envoy, i: usize, stream: bool) -> String {
    let (tp, trace) = traceparent(i);
    let user = format!("user-{i}");
    let body = json!({"model": "app", "stream": stream,
        "messages": [{"role": "user", "content": format!("question {i}, mail me at jane{i}@example.com")}]})
    .to_string();
    let r = envoy.chat(&[("x-user-id", &user), ("traceparent", &tp)], &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-mock-backend"), Some("model_a"));
    assert!(
        r.text().contains("Hello from model_a running "),
        "{}",
        r.text()
    );
    trace
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn shadow_metric(envoy: &Envoy, name: &str, label: &str) -> u64 {
    let comma = if label.is_empty() { "" } else { "," };
    envoy.metric(&format!(
        "llm_ab_{name}{{experiment=\"sh\",variant=\"cand\"{comma}{label}}}"
    ))
}

fn records(sink: &MockBackend) -> Vec<Value> {
    sink.requests()
        .iter()
        .map(|r| {
            assert_eq!(r.path, "/llm-ab/shadow");
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect()
}

#[test]
fn every_sampled_request_is_copied_once_scored_and_recorded_whatever_the_candidate_does() {
    let mut rig =
        rig(r#"{"variants": ["cand"], "sink_cluster": "shadow_sink", "timeout_ms": 1500}"#);
    let envoy = &rig.envoy;

    // Healthy candidate: one copy and one record per request, streams included.
    let mut traces = BTreeSet::new();
    for i in 0..8 {
        traces.insert(send(envoy, i, i % 2 == 1));
    }
    let b = rig.b.as_ref().unwrap();
    let sink = rig.sink.as_ref().unwrap();
    wait_until("8 shadow records", || sink.request_count() >= 8);
    std::thread::sleep(Duration::from_millis(300)); // nothing more arrives
    assert_eq!(b.request_count(), 8, "exactly one copy per request");
    assert_eq!(rig.a.request_count(), 8);
    for copy in b.requests() {
        let body: Value = serde_json::from_slice(&copy.body).unwrap();
        assert_eq!(body["model"], "gpt-cand");
        assert_eq!(body["stream"], false, "a stream is copied as one JSON call");
        assert!(body.get("stream_options").is_none());
        let text = String::from_utf8_lossy(&copy.body);
        assert!(
            !text.contains("@example.com"),
            "the copy is redacted: {text}"
        );
        assert!(text.contains("[REDACTED:email]"), "{text}");
        assert_eq!(copy.header("x-llm-shadow"), Some("1"));
        assert_eq!(copy.header("x-llm-variant"), Some("cand"));
        assert_eq!(copy.header("x-llm-prompt-version"), Some("p2"));
    }
    let recs = records(sink);
    let paired: BTreeSet<String> = recs
        .iter()
        .map(|r| r["paired_trace_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paired, traces, "one record per request, paired by trace id");
    let logged: BTreeSet<String> = envoy
        .access_log_lines(8)
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["trace_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(logged, traces, "the record's trace id is the client's");
    for r in &recs {
        for field in llm_ab::shadow::record::FIELDS {
            assert!(r.get(field).is_some(), "{field}: {r}");
        }
        assert_eq!(r["shadow"], true);
        assert_eq!(r["experiment_id"], "sh");
        assert_eq!(r["variant"], "cand");
        assert_eq!(r["model"], "gpt-cand");
        assert_eq!(r["outcome"], "success");
        assert_eq!(r["control_outcome"], "success");
        assert_eq!(r["status"], 200);
        // "Hello from model_a running gpt-control." against "Hello from
        // model_b running gpt-cand.": 5 of 7 words each in common, in
        // order (hello from model running gpt): ROUGE-L F1 = 5/7.
        assert_eq!(r["similarity"], 0.7143, "{r}");
        assert_eq!(r["exact_match"], false);
        assert!(r["tokens_in"].as_u64().unwrap() > 0);
        let text = r.to_string();
        assert!(
            !text.contains("question") && !text.contains("Hello"),
            "no text: {text}"
        );
    }
    assert_eq!(
        shadow_metric(envoy, "shadow_calls", "outcome=\"success\""),
        8
    );
    assert_eq!(
        shadow_metric(envoy, "shadow_pairs", "pair=\"success_success\""),
        8
    );
    // A record counts as sent once the sink's answer is back in the VM.
    wait_until("8 records sent", || {
        envoy.metric("llm_ab_shadow_records{result=\"sent\"}") == 8
    });
    // Histograms reach the admin page at Envoy's stats flush (5 s).
    wait_until("the similarity histogram", || {
        shadow_metric(envoy, "shadow_similarity_count", "") == 8
    });
    let sim = envoy.prometheus();
    assert!(
        sim.contains(
            "llm_ab_shadow_similarity_bucket{experiment=\"sh\",variant=\"cand\",le=\"70\"} 0"
        ) && sim.contains(
            "llm_ab_shadow_similarity_bucket{experiment=\"sh\",variant=\"cand\",le=\"75\"} 8"
        ),
        "similarity 71 % in the 70..75 bucket:\n{}",
        sim.lines()
            .filter(|l| l.contains("similarity"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // A slow candidate: the client's answer is complete while its copy is
    // still out (it never waits for it); the copy then times out.
    b.set_behavior(llm_ab_mock::Behavior {
        delay_ms: 4_000,
        ..Default::default()
    });
    for i in 10..12 {
        send(envoy, i, false);
        assert_eq!(
            shadow_metric(envoy, "shadow_calls", "outcome=\"timeout\""),
            0,
            "the client's answer came before its copy's"
        );
    }
    wait_until("2 timed-out copies", || {
        shadow_metric(envoy, "shadow_calls", "outcome=\"timeout\"") == 2
    });
    assert_eq!(
        shadow_metric(envoy, "shadow_skipped", "reason=\"timeout\""),
        2
    );

    // A failing candidate: an error outcome; the client never sees it.
    b.set_behavior(llm_ab_mock::Behavior {
        fail_rate: 1.0,
        fail_status: 500,
        ..Default::default()
    });
    send(envoy, 20, false);
    wait_until("an error outcome", || {
        shadow_metric(envoy, "shadow_calls", "outcome=\"error\"") == 1
    });
    // A pair is counted when its second side is in: the copy's answer, or
    // control's side at the next tick.
    wait_until("its pair", || {
        shadow_metric(envoy, "shadow_pairs", "pair=\"success_failure\"") == 3
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        shadow_metric(envoy, "shadow_pairs", "pair=\"success_failure\""),
        3
    );

    // A candidate that is down, and a sink that is down: counted only.
    drop(rig.b.take());
    drop(rig.sink.take());
    let before = shadow_metric(envoy, "shadow_calls", "outcome=\"error\"")
        + shadow_metric(envoy, "shadow_calls", "outcome=\"timeout\"");
    send(envoy, 30, false);
    wait_until("the down candidate's outcome", || {
        shadow_metric(envoy, "shadow_calls", "outcome=\"error\"")
            + shadow_metric(envoy, "shadow_calls", "outcome=\"timeout\"")
            == before + 1
    });
    wait_until("a failed record", || {
        envoy.metric("llm_ab_shadow_records{result=\"failed\"}") >= 1
    });
    assert_eq!(
        rig.a.request_count(),
        8 + 2 + 1 + 1,
        "every client got control"
    );
}

#[test]
fn sampling_is_by_trace_id_and_the_budget_caps_what_copies_spend() {
    // Half the trace ids, the same ones on every proxy: the set is the one
    // the filter's own sampling function picks (the test reads the trace
    // ids' hashes the same way any proxy would).
    let half = rig(r#"{"variants": ["cand"], "sample_rate": 0.5, "sink_cluster": "shadow_sink"}"#);
    let mut sampled = BTreeSet::new();
    for i in 0..16 {
        let trace = send(&half.envoy, i, false);
        if llm_ab::shadow::sampled(&trace, 500_000) {
            sampled.insert(trace);
        }
    }
    assert!(
        !sampled.is_empty() && sampled.len() < 16,
        "{}",
        sampled.len()
    );
    let sink = half.sink.as_ref().unwrap();
    wait_until("the sampled records", || {
        sink.request_count() >= sampled.len()
    });
    std::thread::sleep(Duration::from_millis(300));
    let paired: BTreeSet<String> = records(sink)
        .iter()
        .map(|r| r["paired_trace_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paired, sampled);
    assert_eq!(
        shadow_metric(&half.envoy, "shadow_skipped", "reason=\"not_sampled\""),
        16 - sampled.len() as u64
    );
    drop(half);

    // A budget of 150 tokens a minute: each copy reserves its prompt
    // estimate plus its output cap of 64, so a few go and the rest are
    // skipped and counted; none of it reaches the client.
    let rig = rig(r#"{"variants": ["cand"], "max_tokens_per_minute": 150}"#);
    let envoy = &rig.envoy;
    for i in 0..6 {
        let (tp, _) = traceparent(100 + i);
        let body = json!({"model": "app", "max_completion_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
        let r = envoy.chat(&[("x-user-id", "u"), ("traceparent", &tp)], &body);
        assert_eq!(r.status, 200);
    }
    wait_until("every copy sent or skipped", || {
        shadow_metric(envoy, "shadow_calls", "outcome=\"success\"")
            + shadow_metric(envoy, "shadow_skipped", "reason=\"budget\"")
            == 6
    });
    let sent = shadow_metric(envoy, "shadow_calls", "outcome=\"success\"");
    assert!((1..6).contains(&sent), "{sent} copies within 150 tokens");
    assert_eq!(rig.b.as_ref().unwrap().request_count() as u64, sent);
}

#[test]
fn the_official_sdk_streams_and_gets_json_while_each_request_is_shadowed() {
    let rig = rig(r#"{"variants": ["cand"], "sink_cluster": "shadow_sink"}"#);
    let port = rig.envoy.port.to_string();
    let seen = support::run_driver(
        "openai_chat.py",
        &[
            "--port",
            &port,
            "--control-user",
            "u1",
            "--treatment-user",
            "u2",
        ],
        &["json_control", "stream_control"],
    );
    for (name, v) in &seen {
        assert!(!v["content"].as_str().unwrap().is_empty(), "{name}: {v}");
    }
    assert_eq!(rig.a.request_count(), 2, "control answered both");
    let sink = rig.sink.as_ref().unwrap();
    wait_until("two records", || sink.request_count() >= 2);
    let paired: BTreeSet<String> = records(sink)
        .iter()
        .map(|r| r["paired_trace_id"].as_str().unwrap().to_string())
        .collect();
    let traces: BTreeSet<String> = seen
        .values()
        .map(|v| v["trace_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paired, traces, "each SDK request paired by its traceparent");
    let copies = rig.b.as_ref().unwrap().requests();
    assert_eq!(copies.len(), 2);
    for c in copies {
        let body: Value = serde_json::from_slice(&c.body).unwrap();
        assert_ne!(body["stream"], true, "{body}");
        assert!(body.get("stream_options").is_none(), "{body}");
        assert_eq!(
            c.header("authorization"),
            Some("Bearer sk-test-not-a-real-key")
        );
        assert!(!String::from_utf8_lossy(&c.body).contains("@example.com"));
    }
    for r in records(sink) {
        assert_eq!(r["outcome"], "success", "{r}");
        assert!(r["similarity"].as_f64().is_some(), "{r}");
    }
}

#[test]
fn a_shadow_step_exposes_nobody_and_a_failing_candidate_pauses_the_experiment_before_exposure() {
    let now = support::unix_now() as u64;
    let cfg = format!(
        r#"{{
  "default_cluster": "model_a",
  "experiments": [{{
    "id": "sh",
    "sticky_keys": ["x-user-id"],
    "variants": [
      {{"name": "control", "weight": 50, "cluster": "model_a"}},
      {{"name": "cand", "weight": 50, "cluster": "model_b", "model": "gpt-cand"}}
    ],
    "rollout": {{"start_unix_s": {start}, "steps": [{{"shadow_rate": 1.0, "hold_s": 3600}}, {{"weight": 50, "hold_s": 0}}]}},
    "slo": {{"window_s": 60, "min_requests": 5, "max_error_rate": 0.5}},
    "shadow": {{"variants": ["cand"]}}
  }}]
}}"#,
        start = now - 10
    );
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    b.set_behavior(llm_ab_mock::Behavior {
        fail_rate: 1.0,
        fail_status: 503,
        ..Default::default()
    });
    let envoy = Envoy::start(&cfg, &[("model_a", a.port()), ("model_b", b.port())]);
    for i in 0..10 {
        send(&envoy, 200 + i, false); // each asserts control's answer
    }
    wait_until("10 failed copies", || {
        shadow_metric(&envoy, "shadow_calls", "outcome=\"error\"") == 10
    });
    assert_eq!(a.request_count(), 10, "nobody was exposed to the candidate");
    wait_until("the pause", || {
        envoy.metric("llm_ab_paused{experiment=\"sh\"}") == 1
    });
    assert!(
        envoy
            .log()
            .contains("experiment sh paused: variant cand breached max_error_rate"),
        "{}",
        envoy.log()
    );
}
