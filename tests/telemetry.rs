//! End-to-end: trace ids, one access-log record per request, and
//! per-variant Envoy stats with tokens, cost and latency.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use llm_ab::body::{prepare, Edits};
use serde_json::Value;
use std::collections::HashMap;
use support::{send, Envoy, MockBackend, Response};

const CONFIG: &str = r#"{
  "default_cluster": "model_a",
  "override": {"variant_header": "x-llm-variant-override", "token_header": "x-llm-override-token", "token": "change-me"},
  "pricing": {"gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.6},
              "gpt-4.1-mini": {"input_per_mtok": 0.4, "output_per_mtok": 1.6}},
  "refusal_phrases": ["I cannot assist with"],
  "experiments": [{
    "id": "chat-q4",
    "match": {"path_prefix": "/v1/chat/completions"},
    "sticky_keys": ["x-user-id"],
    "variants": [
      {"name": "control",   "weight": 50, "cluster": "model_a", "model": "gpt-4o-mini",  "prompt_version": "p12", "rag_index_version": "r7"},
      {"name": "candidate", "weight": 50, "cluster": "model_b", "model": "gpt-4.1-mini", "prompt_version": "p13"}
    ]
  }]
}"#;

fn variant_of(user: &str) -> String {
    support::expected_variant(CONFIG, &[("x-user-id", user)])
}

/// One kind of request in the mix.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Json,
    JsonNoUsage,
    Stream,
    StreamClientUsage,
    StreamSplit,
    StreamNoUsage,
    Refusal,
    PhraseRefusal,
    Aborted,
}

struct Sent {
    kind: Kind,
    variant: String,
    body: String,
    traceparent: Option<String>,
    response: Option<Response>,
}

fn body_for(kind: Kind, i: usize) -> String {
    let prompt = format!("SECRET-PROMPT-{i} tell me about 模型实验 and more");
    let messages = serde_json::json!([{"role": "user", "content": prompt}]);
    match kind {
        Kind::Json | Kind::JsonNoUsage | Kind::Refusal | Kind::PhraseRefusal => {
            serde_json::json!({"model": "app", "messages": messages}).to_string()
        }
        Kind::StreamClientUsage => serde_json::json!({"model": "app", "messages": messages,
            "stream": true, "stream_options": {"include_usage": true}})
        .to_string(),
        _ => serde_json::json!({"model": "app", "messages": messages, "stream": true}).to_string(),
    }
}

fn mock_headers(kind: Kind) -> Vec<(&'static str, &'static str)> {
    match kind {
        Kind::JsonNoUsage | Kind::StreamNoUsage => vec![("x-mock-no-usage", "1")],
        Kind::StreamSplit => vec![("x-mock-split", "1")],
        Kind::Refusal => vec![("x-mock-refuse", "1")],
        Kind::PhraseRefusal => vec![("x-mock-reply", "Sorry, I cannot assist with that.")],
        Kind::Aborted => vec![("x-mock-abort", "1")],
        _ => vec![],
    }
}

fn records(envoy: &Envoy, n: usize) -> Vec<Value> {
    envoy
        .access_log_lines(n)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn records_stats_tokens_and_traces_add_up_per_variant() {
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let envoy = Envoy::start(CONFIG, &[("model_a", a.port()), ("model_b", b.port())]);

    let plan = [
        (Kind::Json, 30),
        (Kind::JsonNoUsage, 8),
        (Kind::Stream, 16),
        (Kind::StreamClientUsage, 8),
        (Kind::StreamSplit, 10),
        (Kind::StreamNoUsage, 6),
        (Kind::Refusal, 4),
        (Kind::PhraseRefusal, 4),
        (Kind::Aborted, 3),
    ];
    let mut sent = Vec::new();
    let mut i = 0;
    for (kind, count) in plan {
        for _ in 0..count {
            i += 1;
            let user = format!("person{i}@example.com");
            let body = body_for(kind, i);
            let traceparent =
                (i % 5 == 0).then(|| format!("00-{:032x}-{:016x}-01", 0xabc0000 + i, 0x77 + i));
            let mut headers = vec![
                ("content-type", "application/json"),
                ("x-user-id", user.as_str()),
            ];
            if let Some(tp) = &traceparent {
                headers.push(("traceparent", tp.as_str()));
            }
            headers.extend(mock_headers(kind));
            let response = send(
                envoy.port,
                "POST",
                "/v1/chat/completions",
                &headers,
                body.as_bytes(),
            )
            .ok();
            sent.push(Sent {
                kind,
                variant: variant_of(&user),
                body,
                traceparent,
                response,
            });
        }
    }
    let total = sent.len();

    // Streams: the usage chunk reaches only clients that asked for it.
    for s in &sent {
        let Some(r) = &s.response else {
            assert_eq!(s.kind, Kind::Aborted, "only aborted streams fail");
            continue;
        };
        assert_eq!(r.header("x-llm-variant"), Some(s.variant.as_str()));
        match s.kind {
            Kind::Stream | Kind::StreamSplit => {
                assert!(
                    !r.text().contains("\"usage\""),
                    "{:?}: {}",
                    s.kind,
                    r.text()
                );
                assert!(r.text().ends_with("data: [DONE]\n\n"));
            }
            Kind::StreamClientUsage => assert!(r.text().contains("\"usage\"")),
            _ => {}
        }
    }

    // One well-formed record per request, in the access log.
    let recs = records(&envoy, total);
    assert_eq!(recs.len(), total, "one access-log line per request");
    let log_text = envoy.access_log().join("\n");
    assert!(
        !log_text.contains("SECRET-PROMPT"),
        "no prompt text in the log"
    );
    assert!(
        !log_text.contains("example.com"),
        "no raw user id in the log"
    );
    assert!(
        !log_text.contains("Hello from"),
        "no response text in the log"
    );

    // Join records to what the backends saw, by trace id.
    let upstream: Vec<_> = a.requests().into_iter().chain(b.requests()).collect();
    let by_trace: HashMap<String, &llm_ab_mock::http::Request> = upstream
        .iter()
        .map(|r| {
            let tp = r.header("traceparent").expect("traceparent upstream");
            (tp.split('-').nth(1).unwrap().to_string(), r)
        })
        .collect();
    let mut per_variant: HashMap<String, (u64, u64, u64, u64)> = HashMap::new(); // in, out, cost µ$, n
    for (s, rec) in sent.iter().zip(&recs) {
        for field in llm_ab::record::FIELDS {
            assert!(rec.get(field).is_some(), "record lacks {field}: {rec}");
        }
        assert_eq!(rec["experiment_id"], "chat-q4");
        assert_eq!(rec["served_variant"], s.variant.as_str());
        assert_eq!(rec["reason"], "hashed");
        let trace_id = rec["trace_id"].as_str().unwrap();
        if let Some(tp) = &s.traceparent {
            assert_eq!(
                trace_id,
                tp.split('-').nth(1).unwrap(),
                "incoming trace id kept"
            );
        }
        let up = by_trace
            .get(trace_id)
            .unwrap_or_else(|| panic!("no upstream request with trace id {trace_id}"));
        if let Some(tp) = &s.traceparent {
            // Envoy's span continues the client's trace: the upstream gets
            // its trace id with Envoy's span as the parent.
            let sent = up.header("traceparent").unwrap();
            assert_eq!(sent.split('-').nth(1), tp.split('-').nth(1));
            assert_ne!(sent, tp.as_str(), "the parent is Envoy's span");
        }
        let model = if s.variant == "control" {
            "gpt-4o-mini"
        } else {
            "gpt-4.1-mini"
        };
        assert_eq!(rec["model"], model);
        let (tin, tout) = (
            rec["tokens_in"].as_u64().unwrap(),
            rec["tokens_out"].as_u64().unwrap(),
        );
        let expected_outcome = match s.kind {
            Kind::Refusal | Kind::PhraseRefusal => "refusal",
            Kind::Aborted => "error",
            _ => "success",
        };
        assert_eq!(rec["outcome"], expected_outcome, "{:?}", s.kind);
        match s.kind {
            Kind::JsonNoUsage | Kind::StreamNoUsage | Kind::Aborted => {
                assert_eq!(rec["tokens_source"], "estimated", "{:?}", s.kind);
                let est = prepare(s.body.as_bytes(), Edits::default())
                    .unwrap()
                    .info
                    .prompt_tokens_est;
                assert_eq!(tin, est);
                assert!(tout > 0 || s.kind == Kind::Aborted);
            }
            _ => {
                assert_eq!(rec["tokens_source"], "usage", "{:?}", s.kind);
                // The mock reports prompt_tokens = forwarded body bytes / 4.
                assert_eq!(tin, (up.body.len() / 4).max(1) as u64);
                assert!(tout >= 5);
            }
        }
        let price = if s.variant == "control" {
            (0.15, 0.6)
        } else {
            (0.4, 1.6)
        };
        let cost = (tin as f64 * price.0 + tout as f64 * price.1) / 1e6;
        assert!((rec["cost_usd_est"].as_f64().unwrap() - cost).abs() < 1e-12);
        let streamed = !matches!(
            s.kind,
            Kind::Json | Kind::JsonNoUsage | Kind::Refusal | Kind::PhraseRefusal
        );
        assert_eq!(rec["ttft_ms"].is_u64(), streamed, "{:?}", s.kind);
        let e = per_variant.entry(s.variant.clone()).or_default();
        e.0 += tin;
        e.1 += tout;
        e.2 += (cost * 1e6).round() as u64;
        e.3 += 1;
    }

    // Envoy stats: the same sums, per variant, as Prometheus labels.
    // Histograms reach the admin output at Envoy's stats flush (5 s).
    let histogram_total = |prom: &str| -> u64 {
        prom.lines()
            .filter(|l| l.starts_with("llm_ab_latency_ms_count{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut prom = envoy.prometheus();
    while histogram_total(&prom) < total as u64 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(250));
        prom = envoy.prometheus();
    }
    let metric = |name: &str, variant: &str, extra: &str| -> u64 {
        let selector = format!("{name}{{experiment=\"chat-q4\",variant=\"{variant}\"{extra}}}");
        prom.lines()
            .find_map(|l| l.strip_prefix(&selector)?.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    for (variant, (tin, tout, cost, n)) in &per_variant {
        assert_eq!(metric("llm_ab_tokens_in", variant, ""), *tin, "{prom}");
        assert_eq!(metric("llm_ab_tokens_out", variant, ""), *tout);
        assert_eq!(metric("llm_ab_cost_micro_usd", variant, ""), *cost);
        assert_eq!(metric("llm_ab_requests", variant, ",reason=\"hashed\""), *n);
        assert_eq!(
            metric("llm_ab_responses", variant, ",status_class=\"2xx\""),
            *n
        );
        assert_eq!(metric("llm_ab_latency_ms_count", variant, ""), *n);
        let outcomes: u64 = ["success", "error", "refusal"]
            .iter()
            .map(|o| metric("llm_ab_outcomes", variant, &format!(",outcome=\"{o}\"")))
            .sum();
        assert_eq!(outcomes, *n);
        let streams = sent
            .iter()
            .filter(|s| &s.variant == variant)
            .filter(|s| {
                !matches!(
                    s.kind,
                    Kind::Json | Kind::JsonNoUsage | Kind::Refusal | Kind::PhraseRefusal
                )
            })
            .count() as u64;
        assert_eq!(metric("llm_ab_ttft_ms_count", variant, ""), streams);
    }
    let refusals: u64 = per_variant
        .keys()
        .map(|v| metric("llm_ab_outcomes", v, ",outcome=\"refusal\""))
        .sum();
    assert_eq!(refusals, 8);
}

#[test]
fn unmatched_and_rejected_requests_get_records_too() {
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let envoy = Envoy::start(CONFIG, &[("model_a", a.port()), ("model_b", b.port())]);
    send(envoy.port, "GET", "/v1/models", &[], b"").unwrap();
    let r = envoy.chat(&[("x-user-id", "someone@example.com")], "{broken SECRET");
    assert_eq!(r.status, 400);
    let recs = records(&envoy, 2);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["reason"], "default");
    assert!(recs[0]["experiment_id"].is_null());
    assert_eq!(recs[0]["status"], 404);
    assert_eq!(recs[1]["outcome"], "invalid");
    assert_eq!(recs[1]["error_code"], "invalid_json");
    assert_eq!(recs[1]["status"], 400);
    let text = envoy.access_log().join("\n");
    assert!(!text.contains("SECRET") && !text.contains("someone"));
    // The trace id of a request without traceparent is the one Envoy's
    // span started (tests/tracing.rs checks the spans), sent upstream.
    let upstream = a.requests();
    let tp = upstream[0].header("traceparent").unwrap();
    assert_eq!(tp.split('-').nth(1), recs[0]["trace_id"].as_str());
    assert!(upstream[0].header("x-llm-trace-id").is_none());
}

#[test]
fn without_envoy_tracing_the_trace_id_is_the_request_id() {
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let envoy = Envoy::start_bootstrap_with(
        CONFIG,
        &[("model_a", a.port()), ("model_b", b.port())],
        |cfg| {
            let hcm = &mut cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
                [0]["typed_config"];
            hcm.as_object_mut().unwrap().remove("tracing");
        },
    );
    send(envoy.port, "GET", "/v1/models", &[], b"").unwrap();
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r = envoy.chat(&[("x-user-id", "u1"), ("traceparent", tp)], "{}");
    assert_eq!(r.status, 200);
    let recs = records(&envoy, 2);
    let upstream = a
        .requests()
        .into_iter()
        .chain(b.requests())
        .collect::<Vec<_>>();
    let first = upstream.iter().find(|r| r.path == "/v1/models").unwrap();
    let sent = first.header("traceparent").unwrap();
    assert_eq!(sent.split('-').nth(1), recs[0]["trace_id"].as_str());
    let rid = first.header("x-request-id").unwrap().replace('-', "");
    assert_eq!(recs[0]["trace_id"], rid.as_str());
    // An incoming traceparent is forwarded unchanged.
    let chat = upstream
        .iter()
        .find(|r| r.path == "/v1/chat/completions")
        .unwrap();
    assert_eq!(chat.header("traceparent"), Some(tp));
    assert_eq!(recs[1]["trace_id"], "0af7651916cd43dd8448eb211c80319c");
}

#[test]
fn shipped_tracing_exports_the_span_attributes_the_filter_writes() {
    let cfg = support::shipped_config();
    let hcm =
        &cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let tracing = &hcm["tracing"];
    assert_eq!(tracing["provider"]["name"], "envoy.tracers.opentelemetry");
    let otel = &tracing["provider"]["typed_config"];
    assert_eq!(
        otel["grpc_service"]["envoy_grpc"]["cluster_name"],
        "otel_collector"
    );
    assert_eq!(otel["grpc_service"]["timeout"], "0.25s");
    // One custom tag per attribute the filter writes, from its property.
    let tags: Vec<(String, String)> = tracing["custom_tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tag"].as_str().unwrap().to_string(),
                t["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = llm_ab::exchange::SPAN_PROPERTIES
        .iter()
        .map(|key| {
            let attribute = key
                .strip_prefix(llm_ab::exchange::SPAN_PROPERTY_PREFIX)
                .unwrap();
            (
                attribute.to_string(),
                format!("%FILTER_STATE(wasm.{key}:PLAIN)%"),
            )
        })
        .collect();
    assert_eq!(tags, expected);
    // Envoy's trace id reaches the filter ahead of it, and never the upstream.
    let filters = hcm["http_filters"].as_array().unwrap();
    let names: Vec<&str> = filters
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let ahead = names.iter().position(|n| *n == "llm-ab.trace-id").unwrap();
    let wasm = names
        .iter()
        .position(|n| *n == support::WASM_FILTER)
        .unwrap();
    assert!(ahead < wasm, "{names:?}");
    let mutation = &filters[ahead]["typed_config"]["mutations"]["request_mutations"][0]["append"];
    assert_eq!(
        mutation["header"]["key"],
        llm_ab::trace::ENVOY_TRACE_ID_HEADER
    );
    assert_eq!(mutation["header"]["value"], "%TRACE_ID%");
    assert_eq!(mutation["append_action"], "OVERWRITE_IF_EXISTS_OR_ADD");
    for route in hcm["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap()
    {
        assert!(route["request_headers_to_remove"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("x-llm-trace-id")));
    }
    let filter: Value = serde_json::from_str(&support::shipped_filter_config()).unwrap();
    assert_eq!(filter["tracing"], true);
    // The collector: HTTP/2 (gRPC) at 127.0.0.1:4317.
    let collector = cfg["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "otel_collector")
        .unwrap();
    let address = &collector["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        ["address"]["socket_address"];
    assert_eq!(
        (address["address"].as_str(), address["port_value"].as_u64()),
        (Some("127.0.0.1"), Some(4317))
    );
    assert!(collector["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]
        .get("http2_protocol_options")
        .is_some());
}
