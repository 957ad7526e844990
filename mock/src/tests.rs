//! Tests of the mock backend through its own client.

use crate::http::send;
use crate::{Behavior, MockBackend};
use serde_json::Value;

fn chat(port: u16, body: &str, headers: &[(&str, &str)]) -> crate::http::Response {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    send(port, "POST", "/v1/chat/completions", &all, body.as_bytes()).unwrap()
}

#[test]
fn answers_json_with_usage_and_names_itself() {
    let m = MockBackend::start("alpha", 0).unwrap();
    let r = chat(m.port(), r#"{"model":"m1","messages":[]}"#, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-mock-backend"), Some("alpha"));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["model"], "m1");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(m.request_count(), 1);
    assert_eq!(m.requests()[0].body, br#"{"model":"m1","messages":[]}"#);
}

#[test]
fn streams_sse_ending_with_a_usage_chunk_and_done() {
    let m = MockBackend::start("beta", 0).unwrap();
    let without = chat(m.port(), r#"{"model":"m2","stream":true}"#, &[]);
    assert!(
        !without.text().contains("\"usage\""),
        "usage only on request"
    );
    let r = chat(
        m.port(),
        r#"{"model":"m2","stream":true,"stream_options":{"include_usage":true}}"#,
        &[],
    );
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let text = r.text();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let usage: Value = serde_json::from_str(events[events.len() - 2]).unwrap();
    let content: String = events[..events.len() - 2]
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, "Hello from beta running m2.");
    assert_eq!(usage["usage"]["completion_tokens"], 5);
}

#[test]
fn reads_chunked_request_bodies() {
    let m = MockBackend::start("gamma", 0).unwrap();
    let body = b"5\r\n{\"mod\r\nf\r\nel\":\"m3\",\"x\":1}\r\n0\r\n\r\n";
    let r = send(
        m.port(),
        "POST",
        "/v1/chat/completions",
        &[("transfer-encoding", "chunked")],
        body,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(m.requests()[0].body, br#"{"model":"m3","x":1}"#);
}

#[test]
fn fails_and_delays_on_demand() {
    let m = MockBackend::start("delta", 0).unwrap();
    let r = chat(m.port(), "{}", &[("x-mock-status", "503")]);
    assert_eq!(r.status, 503);
    m.set_behavior(Behavior {
        fail_rate: 1.0,
        fail_status: 502,
        ..Behavior::default()
    });
    assert_eq!(chat(m.port(), "{}", &[]).status, 502);
    m.set_behavior(Behavior {
        fail_rate: 0.3,
        ..Behavior::default()
    });
    let failed = (0..200)
        .filter(|_| chat(m.port(), "{}", &[]).status == 500)
        .count();
    assert!(
        (30..=90).contains(&failed),
        "{failed} of 200 failed at 30 %"
    );
    let start = std::time::Instant::now();
    chat(m.port(), "{}", &[("x-mock-delay-ms", "150")]);
    assert!(start.elapsed().as_millis() >= 150);
}

#[test]
fn bad_json_gets_a_400() {
    let m = MockBackend::start("eps", 0).unwrap();
    assert_eq!(chat(m.port(), "{nope", &[]).status, 400);
}

#[test]
fn per_request_modes() {
    let m = MockBackend::start("zeta", 0).unwrap();
    let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#;
    let split = chat(m.port(), body, &[("x-mock-split", "1")]);
    let whole = chat(m.port(), body, &[]);
    assert_eq!(
        split.text().replace("zeta-0", "zeta-1"),
        whole.text(),
        "splitting changes only the TCP writes"
    );
    let no_usage = chat(m.port(), body, &[("x-mock-no-usage", "1")]);
    assert!(!no_usage.text().contains("usage"));
    let refused = chat(m.port(), r#"{"model":"m"}"#, &[("x-mock-refuse", "1")]);
    assert!(refused.text().contains("content_filter"));
    let reply = chat(
        m.port(),
        r#"{"model":"m"}"#,
        &[("x-mock-reply", "custom words")],
    );
    assert!(reply.text().contains("\"custom words\""));
    assert!(send(
        m.port(),
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json"), ("x-mock-abort", "1")],
        body.as_bytes()
    )
    .is_err());
}

#[test]
fn load_sends_its_schedule_with_distinct_users() {
    let m = MockBackend::start("load", 0).unwrap();
    let plan = crate::load::Plan {
        port: m.port(),
        rate: 200,
        duration: std::time::Duration::from_millis(500),
        connections: 4,
        path: "/v1/chat/completions".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"model":"m","messages":[]}"#.to_vec(),
    };
    let report = crate::load::run(&plan);
    assert_eq!((report.sent, report.ok, report.errors), (100, 100, 0));
    assert_eq!(m.request_count(), 100);
    let mut users: Vec<String> = m
        .requests()
        .iter()
        .map(|r| r.header("x-user-id").unwrap().to_string())
        .collect();
    users.sort();
    users.dedup();
    assert_eq!(users.len(), 100);
    assert!(report.p50_us <= report.p99_us && report.p99_us <= report.max_us);
}

#[test]
fn load_latency_counts_the_queue_behind_a_slow_answer() {
    // One connection, a request due every 10 ms, each answered in 50 ms: a
    // closed loop would report ~50 ms; measured from the due time the
    // backlog shows.
    let m = MockBackend::start("slow", 0).unwrap();
    m.set_behavior(Behavior {
        delay_ms: 50,
        ..Behavior::default()
    });
    let plan = crate::load::Plan {
        port: m.port(),
        rate: 100,
        duration: std::time::Duration::from_millis(200),
        connections: 1,
        path: "/v1/chat/completions".into(),
        headers: vec![],
        body: br#"{"model":"m","messages":[]}"#.to_vec(),
    };
    let report = crate::load::run(&plan);
    assert_eq!(report.ok, 20);
    // The last request is due at 190 ms and answered at about 20 × 50 ms.
    assert!(report.max_us >= 700_000, "{report:?}");
}
