//! End-to-end: OpenTelemetry spans with GenAI attributes, through the
//! shipped `envoy/envoy.yaml` (tracing on), into a real OTLP/gRPC receiver
//! (`tests/otlp/receiver.py`: grpcio + opentelemetry-proto from
//! requirements.txt). Every request's span arrives with the trace id of its
//! record and attributes equal to the record's fields.
//!
//! Fails, never skips, when the receiver's Python packages are missing.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{send, Envoy, MockBackend};

const CONFIG: &str = r#"{
  "default_cluster": "model_a",
  "pricing": {"gpt-4o-mini": {"input_per_mtok": 0.15, "cached_input_per_mtok": 0.075, "output_per_mtok": 0.6},
              "gpt-4.1-mini": {"input_per_mtok": 0.4, "output_per_mtok": 1.6},
              "claude-sonnet-4": {"input_per_mtok": 3, "cached_input_per_mtok": 0.3, "cache_write_per_mtok": 3.75, "output_per_mtok": 15},
              "claude-haiku-4": {"input_per_mtok": 1, "output_per_mtok": 5}},
  "experiments": [
    {"id": "chat-q4", "match": {"path_prefix": "/v1/chat/completions"}, "sticky_keys": ["x-user-id"],
     "variants": [
       {"name": "control", "weight": 50, "cluster": "model_a", "model": "gpt-4o-mini", "prompt_version": "p12", "rag_index_version": "r7"},
       {"name": "candidate", "weight": 50, "cluster": "model_b", "model": "gpt-4.1-mini", "prompt_version": "p13"}]},
    {"id": "msg-q4", "match": {"path_prefix": "/v1/messages"}, "sticky_keys": ["x-user-id"],
     "variants": [
       {"name": "sonnet", "weight": 50, "cluster": "model_a", "model": "claude-sonnet-4", "prompt_version": "m1"},
       {"name": "haiku", "weight": 50, "cluster": "model_b", "model": "claude-haiku-4"}]}
  ]
}"#;

/// The OTLP/gRPC receiver, its spans as they arrive.
struct Receiver {
    child: Child,
    port: u16,
    spans: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let py = support::repo().join(".venv/bin/python");
        assert!(
            py.exists(),
            "{} missing: run `make test`, which installs requirements.txt into .venv",
            py.display()
        );
        let mut child = Command::new(py)
            .arg(support::repo().join("tests/otlp/receiver.py"))
            .arg("0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OTLP receiver");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines
            .next()
            .expect("the receiver prints its port (are grpcio and opentelemetry-proto installed?)")
            .unwrap();
        let port = serde_json::from_str::<Value>(&first).unwrap()["port"]
            .as_u64()
            .unwrap_or_else(|| panic!("no port in {first}")) as u16;
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        Receiver { child, port, spans }
    }

    /// The spans received so far, by trace id, once every id in `want`
    /// has one (waiting up to 20 s).
    fn spans_of(&self, want: &[String]) -> HashMap<String, Vec<Value>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut by_trace: HashMap<String, Vec<Value>> = HashMap::new();
            for s in self.spans.lock().unwrap().iter() {
                by_trace
                    .entry(s["trace_id"].as_str().unwrap_or("").to_string())
                    .or_default()
                    .push(s.clone());
            }
            if want.iter().all(|t| by_trace.contains_key(t)) || Instant::now() > deadline {
                return by_trace;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    ChatJson,
    ChatStream,
    ChatCached,
    ChatAborted,
    ChatInvalid,
    MessagesJson,
    MessagesStream,
}

fn request(kind: Kind, i: usize) -> (&'static str, Vec<(&'static str, String)>, String) {
    let prompt = format!("SECRET-PROMPT-{i} tell me about the quarterly report");
    let chat = |stream: bool| {
        json!({"model": "app", "stream": stream, "messages": [{"role": "user", "content": prompt}]})
            .to_string()
    };
    let messages = |stream: bool| {
        json!({"model": "app", "max_tokens": 64, "stream": stream,
               "messages": [{"role": "user", "content": prompt}]})
        .to_string()
    };
    let anthropic = vec![("anthropic-version", "2023-06-01".to_string())];
    match kind {
        Kind::ChatJson => ("/v1/chat/completions", vec![], chat(false)),
        Kind::ChatStream => ("/v1/chat/completions", vec![], chat(true)),
        Kind::ChatCached => (
            "/v1/chat/completions",
            vec![("x-mock-cached-tokens", "8".into())],
            chat(true),
        ),
        Kind::ChatAborted => (
            "/v1/chat/completions",
            vec![("x-mock-abort", "1".into())],
            chat(true),
        ),
        Kind::ChatInvalid => ("/v1/chat/completions", vec![], format!("{{SECRET {i}")),
        Kind::MessagesJson => {
            let mut h = anthropic;
            h.push(("x-mock-cached-tokens", "4".into()));
            h.push(("x-mock-cache-write-tokens", "3".into()));
            ("/v1/messages", h, messages(false))
        }
        Kind::MessagesStream => ("/v1/messages", anthropic, messages(true)),
    }
}

/// The attributes known only when the response has ended.
const END_TIME: [&str; 8] = [
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "llm_ab.usage.cached_input_tokens",
    "llm_ab.usage.cache_write_input_tokens",
    "llm_ab.usage.reasoning_tokens",
    "llm_ab.cost_usd",
    "llm_ab.outcome",
];

/// The value of a string attribute (Envoy 1.40 sends every custom tag as
/// an OTLP string).
fn attr<'a>(span: &'a Value, name: &str) -> Option<&'a str> {
    let a = &span["attributes"][name];
    if a.is_null() {
        return None;
    }
    Some(
        a["string"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} is not a string attribute: {a}")),
    )
}

#[test]
fn every_request_has_a_span_with_its_records_trace_id_and_fields() {
    let receiver = Receiver::start();
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let envoy = Envoy::start_bootstrap_with(
        CONFIG,
        &[("model_a", a.port()), ("model_b", b.port())],
        |cfg| support::trace_to(cfg, receiver.port),
    );

    let kinds = [
        Kind::ChatJson,
        Kind::ChatStream,
        Kind::ChatCached,
        Kind::ChatAborted,
        Kind::ChatInvalid,
        Kind::MessagesJson,
        Kind::MessagesStream,
    ];
    let mut sent = Vec::new();
    for round in 0..4 {
        for kind in kinds {
            let i = sent.len();
            let user = format!("person{i}@example.com");
            let (path, extra, body) = request(kind, i);
            // Every other request continues a client's trace.
            let traceparent = (round % 2 == 1)
                .then(|| format!("00-{:032x}-{:016x}-01", 0x7ace_0000 + i, 0x51 + i));
            let mut headers: Vec<(&str, &str)> = vec![
                ("content-type", "application/json"),
                ("x-user-id", user.as_str()),
            ];
            if let Some(tp) = &traceparent {
                headers.push(("traceparent", tp.as_str()));
            }
            headers.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
            let status = send(envoy.port, "POST", path, &headers, body.as_bytes())
                .map(|r| r.status)
                .ok();
            sent.push((kind, traceparent, status));
        }
    }

    let lines = envoy.access_log_lines(sent.len());
    assert_eq!(lines.len(), sent.len(), "one record per request");
    let records: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<String> = records
        .iter()
        .map(|r| r["trace_id"].as_str().unwrap().to_string())
        .collect();
    let spans = receiver.spans_of(&ids);

    let upstream: HashMap<String, String> = a
        .requests()
        .into_iter()
        .chain(b.requests())
        .map(|r| {
            let tp = r.header("traceparent").expect("traceparent upstream");
            assert!(r.header("x-llm-trace-id").is_none(), "stays in Envoy");
            (tp.split('-').nth(1).unwrap().to_string(), tp.to_string())
        })
        .collect();

    for (((kind, traceparent, status), record), (line, id)) in
        sent.iter().zip(&records).zip(lines.iter().zip(&ids))
    {
        let here = format!("{kind:?} {record}");
        if let Some(tp) = traceparent {
            assert_eq!(
                Some(id.as_str()),
                tp.split('-').nth(1),
                "client's trace kept: {here}"
            );
        }
        match kind {
            Kind::ChatInvalid => {
                assert_eq!(*status, Some(400));
                assert_eq!(record["outcome"], "invalid", "{here}");
            }
            Kind::ChatAborted => assert_eq!(record["outcome"], "error", "{here}"),
            _ => {
                assert_eq!(record["outcome"], "success", "{here}");
                assert!(
                    upstream.contains_key(id),
                    "the upstream got the record's trace id: {here}"
                );
            }
        }
        let found = spans
            .get(id)
            .unwrap_or_else(|| panic!("no span with trace id {id}: {here}"));
        assert_eq!(found.len(), 1, "{found:?}");
        let span = &found[0];
        assert_eq!(span["service"], "llm-gateway");
        if let Some(tp) = traceparent {
            assert_eq!(
                span["parent_span_id"],
                tp.split('-').nth(2).unwrap(),
                "{here}"
            );
        }

        let messages = record["api"] == "anthropic.messages";
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            v => Some(v.to_string()),
        };
        let expected = [
            ("gen_ai.operation.name", Some("chat".to_string())),
            (
                "gen_ai.provider.name",
                Some(if messages { "anthropic" } else { "openai" }.to_string()),
            ),
            ("gen_ai.request.model", text(&record["model"])),
            ("gen_ai.response.model", text(&record["response_model"])),
            ("gen_ai.usage.input_tokens", text(&record["tokens_in"])),
            ("gen_ai.usage.output_tokens", text(&record["tokens_out"])),
            ("llm_ab.experiment", text(&record["experiment_id"])),
            ("llm_ab.variant.assigned", text(&record["assigned_variant"])),
            ("llm_ab.variant.served", text(&record["served_variant"])),
            ("llm_ab.prompt_version", text(&record["prompt_version"])),
            (
                "llm_ab.rag_index_version",
                text(&record["rag_index_version"]),
            ),
            (
                "llm_ab.usage.cached_input_tokens",
                text(&record["tokens_in_cached"]),
            ),
            (
                "llm_ab.usage.cache_write_input_tokens",
                text(&record["tokens_in_cache_write"]),
            ),
            (
                "llm_ab.usage.reasoning_tokens",
                text(&record["tokens_reasoning"]),
            ),
            ("llm_ab.outcome", text(&record["outcome"])),
        ];
        for (name, want) in expected {
            // Envoy ends the span of a reset stream before the filter's
            // last callback: only what was known when the request went
            // upstream is on it.
            let want = if *kind == Kind::ChatAborted && END_TIME.contains(&name) {
                None
            } else {
                want
            };
            assert_eq!(
                attr(span, name).map(str::to_string),
                want,
                "{name}: {here}\n{span}"
            );
        }
        if *kind == Kind::ChatAborted {
            assert_eq!(attr(span, "llm_ab.cost_usd"), None);
            assert_eq!(attr(span, "response_flags"), Some("UPE"), "{span}");
            continue;
        }
        // The cost as the record's line writes it, character for character.
        let cost = attr(span, "llm_ab.cost_usd").expect("llm_ab.cost_usd");
        assert!(
            line.contains(&format!("\"cost_usd_est\":{cost},")),
            "{cost} vs {line}"
        );
        if *kind != Kind::ChatInvalid {
            assert!(record["cost_usd_est"].as_f64().unwrap() > 0.0, "{here}");
        }
        // What the kinds are for.
        match kind {
            Kind::ChatCached => {
                assert_eq!(attr(span, "llm_ab.usage.cached_input_tokens"), Some("8"))
            }
            Kind::MessagesJson => {
                assert_eq!(attr(span, "llm_ab.usage.cached_input_tokens"), Some("4"));
                assert_eq!(
                    attr(span, "llm_ab.usage.cache_write_input_tokens"),
                    Some("3")
                );
            }
            Kind::ChatInvalid => assert_eq!(attr(span, "gen_ai.response.model"), None),
            _ => {}
        }
        if *kind != Kind::ChatInvalid {
            assert!(attr(span, "gen_ai.response.model").is_some(), "{here}");
        }
    }

    // No prompt text, no raw user key, in any span.
    let all = serde_json::to_string(&*receiver.spans.lock().unwrap()).unwrap();
    assert!(!all.contains("SECRET"), "prompt text in a span");
    assert!(!all.contains("example.com"), "a user key in a span");
}

#[test]
fn without_a_collector_envoy_serves_and_drops_the_spans() {
    // The shipped collector address, with nothing listening (a free port).
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let nobody = support::free_port();
    let envoy = Envoy::start_bootstrap_with(
        CONFIG,
        &[("model_a", a.port()), ("model_b", b.port())],
        |cfg| support::trace_to(cfg, nobody),
    );
    let started = Instant::now();
    for i in 0..40 {
        let user = format!("u{i}");
        let r = envoy.chat(
            &[("x-user-id", user.as_str())],
            r#"{"model":"app","messages":[{"role":"user","content":"hi"}]}"#,
        );
        assert_eq!(r.status, 200);
    }
    // Exports fail at connect; requests do not wait for them.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let stat = |name: &str| -> u64 {
        send(envoy.admin, "GET", "/stats", &[], b"")
            .unwrap()
            .text()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: "))?.trim().parse().ok())
            .unwrap_or(0)
    };
    while stat("tracing.opentelemetry.spans_sent") < 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(stat("tracing.opentelemetry.spans_sent") >= 40);
    assert!(stat("cluster.otel_collector.upstream_cx_connect_fail") >= 1);
}

/// The request-time attributes follow the record where the `x-llm-*`
/// request headers would not: a fallback's served control, a refused
/// request whose client sent its own values under those names, and a
/// variant whose upstream filter scrubs those headers (Envoy's upstream
/// filters edit the downstream request's header map, which a
/// `request_header` tag would read: the README's reason for filter state).
#[test]
fn span_attributes_survive_fallbacks_spoofed_headers_and_upstream_scrubs() {
    let config = CONFIG.replacen(
        r#""sticky_keys": ["x-user-id"],"#,
        r#""sticky_keys": ["x-user-id"], "fallback": {"on": ["5xx"], "max_attempts": 1},"#,
        1,
    );
    let candidate = (0..)
        .map(|i| format!("user-{i}"))
        .find(|u| support::expected_variant(&config, &[("x-user-id", u)]) == "candidate")
        .unwrap();
    let receiver = Receiver::start();
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let clusters = [("model_a", a.port()), ("model_b", b.port())];
    let scrub = |cfg: &mut Value| {
        for c in cfg["static_resources"]["clusters"].as_array_mut().unwrap() {
            if c["name"] == "model_b" {
                c["typed_extension_protocol_options"] = json!({
                  "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http_protocol_options": {}},
                    "http_filters": [
                      {"name": "scrub", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                        "mutations": {"request_mutations": [{"remove": "x-llm-experiment"}, {"remove": "x-llm-prompt-version"}]}}},
                      {"name": "envoy.filters.http.upstream_codec", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"}}]}});
            }
        }
    };
    let envoy = Envoy::start_bootstrap_with(&config, &clusters, |cfg| {
        support::trace_to(cfg, receiver.port);
    });
    let scrubbing = Envoy::start_bootstrap_with(&config, &clusters, |cfg| {
        support::trace_to(cfg, receiver.port);
        scrub(cfg);
    });
    let chat = r#"{"model":"app","messages":[{"role":"user","content":"hi"}]}"#;
    let send_as = |envoy: &Envoy, i: usize, extra: &[(&str, &str)], body: &str| {
        let tp = format!("00-{:032x}-{:016x}-01", 0xfa11_0000 + i, 0x51 + i);
        let mut headers = vec![
            ("content-type", "application/json"),
            ("x-user-id", candidate.as_str()),
            ("traceparent", tp.as_str()),
        ];
        headers.extend_from_slice(extra);
        let status = send(
            envoy.port,
            "POST",
            "/v1/chat/completions",
            &headers,
            body.as_bytes(),
        )
        .unwrap()
        .status;
        (format!("{:032x}", 0xfa11_0000 + i), status)
    };
    // 0: the candidate fails, control answers; 1: refused, with the
    // client's own values under the filter's header names; 2: served by
    // the candidate, whose upstream filter scrubs two of the headers.
    let (fell_back, s0) = send_as(&envoy, 0, &[("x-mock-status", "503")], chat);
    let spoofed = [
        ("x-llm-experiment", "spoofed"),
        ("x-llm-variant", "spoofed"),
        ("x-llm-rag-index-version", "spoofed"),
    ];
    let (refused, s1) = send_as(&envoy, 1, &spoofed, "{broken");
    let (scrubbed, s2) = send_as(&scrubbing, 2, &[], chat);
    assert_eq!((s0, s1, s2), (200, 400, 200));
    let ids = [fell_back.clone(), refused.clone(), scrubbed.clone()];
    let spans = receiver.spans_of(&ids);
    let records: HashMap<String, Value> = envoy
        .access_log_lines(2)
        .iter()
        .chain(&scrubbing.access_log_lines(1))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| (r["trace_id"].as_str().unwrap().to_string(), r))
        .collect();
    let span = |id: &str| {
        spans
            .get(id)
            .and_then(|s| s.first())
            .unwrap_or_else(|| panic!("no span {id}"))
    };
    let text = |v: &Value| v.as_str().map(str::to_string);
    for id in [&fell_back, &refused] {
        let (s, r) = (span(id), &records[id]);
        for (attribute, field) in [
            ("llm_ab.experiment", "experiment_id"),
            ("llm_ab.variant.assigned", "assigned_variant"),
            ("llm_ab.variant.served", "served_variant"),
            ("llm_ab.prompt_version", "prompt_version"),
            ("llm_ab.rag_index_version", "rag_index_version"),
            ("llm_ab.outcome", "outcome"),
        ] {
            assert_eq!(
                attr(s, attribute).map(str::to_string),
                text(&r[field]),
                "{attribute}: {r}\n{s}"
            );
        }
    }
    assert_eq!(records[&fell_back]["served_variant"], "control");
    assert_eq!(
        attr(span(&fell_back), "llm_ab.variant.served"),
        Some("control")
    );
    assert_eq!(attr(span(&refused), "llm_ab.experiment"), Some("chat-q4"));
    assert_eq!(attr(span(&refused), "llm_ab.rag_index_version"), None);
    // Scrubbed upstream, and still on the span.
    let s = span(&scrubbed);
    assert_eq!(attr(s, "llm_ab.experiment"), Some("chat-q4"), "{s}");
    assert_eq!(attr(s, "llm_ab.prompt_version"), Some("p13"), "{s}");
    assert_eq!(attr(s, "llm_ab.variant.served"), Some("candidate"));
    assert_eq!(attr(s, "llm_ab.outcome"), Some("success"));
    let last = b.requests().pop().unwrap();
    assert_eq!(last.header("x-llm-experiment"), None, "scrubbed upstream");
}
