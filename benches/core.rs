//! Criterion microbenchmarks of the decision core, natively:
//! `cargo bench --bench core` (or `make bench`, which also prints the
//! `.wasm` size).

// Benchmark harness: failing loudly on a broken setup is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use llm_ab::body::{prepare, Edits};
use llm_ab::config::load;
// The workload of `make bench`'s "everything on" run and its 2 KB request.
use llm_ab::exchange::workload::{request_2kb, ANSWER, EVERYTHING};
use llm_ab::redact::Counts;
use llm_ab::response::ResponseObserver;
use llm_ab::route::RequestHeaders;
use llm_ab::sse::SseParser;

struct Headers(Vec<(&'static str, String)>);

impl RequestHeaders for Headers {
    fn header(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

const CONFIG: &str = r#"{"default_cluster": "a", "redaction": {"custom": [{"name": "employee_id", "pattern": "EMP-[0-9]{6}"}]},
  "experiments": [{"id": "chat-q4", "sticky_keys": ["x-user-id"], "variants": [
    {"name": "control", "weight": 90, "cluster": "a", "model": "gpt-4o-mini"},
    {"name": "candidate", "weight": 10, "cluster": "b", "model": "gpt-4.1-mini"}]}]}"#;

fn chat_body(size: usize) -> Vec<u8> {
    let prose = "The quarterly review covered revenue, churn and the roadmap. Contact jane.doe@example.com. ";
    let text: String = prose.chars().cycle().take(size).collect();
    serde_json::json!({"model": "app", "messages": [{"role": "user", "content": text}]})
        .to_string()
        .into_bytes()
}

fn benches(c: &mut Criterion) {
    let plan = load(CONFIG.as_bytes()).unwrap();
    let mut i = 0u64;
    c.bench_function("assign: route a request (hash, lanes)", |b| {
        b.iter(|| {
            i += 1;
            let h = Headers(vec![
                ("content-type", "application/json".into()),
                ("x-user-id", format!("user-{i}")),
            ]);
            black_box(plan.decide("/v1/chat/completions", &h).cluster.len())
        })
    });

    let body = chat_body(2048);
    let mut g = c.benchmark_group("body");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function(
        "prepare 2 KB (validate, model rewrite, usage, estimate)",
        |b| {
            b.iter(|| {
                black_box(
                    prepare(
                        black_box(&body),
                        Edits {
                            model: Some("gpt-4.1-mini"),
                            ensure_stream_usage: true,
                            no_stream: false,
                            ..Edits::default()
                        },
                    )
                    .ok(),
                )
            })
        },
    );
    g.finish();

    let redactor = plan.redaction.as_ref().unwrap();
    let mut g = c.benchmark_group("redaction");
    for kib in [1usize, 16] {
        let body = chat_body(kib * 1024);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("redact_json {kib} KiB"), |b| {
            b.iter(|| {
                black_box(
                    redactor
                        .redact_json(black_box(&body), &mut Counts::default())
                        .ok(),
                )
            })
        });
    }
    g.finish();

    let mut stream = Vec::new();
    for w in 0..200 {
        stream.extend_from_slice(
            format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" word{w}\"}}}}]}}\n\n").as_bytes(),
        );
    }
    stream.extend_from_slice(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":200}}\n\ndata: [DONE]\n\n");
    let mut g = c.benchmark_group("sse");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function(
        "parse and observe a 200-event stream in 512 B chunks",
        |b| {
            b.iter(|| {
                let mut parser = SseParser::new();
                let mut observer = ResponseObserver::new();
                for chunk in stream.chunks(512) {
                    for e in parser.feed(chunk) {
                        observer.observe_event(&e.data, &[]);
                    }
                }
                black_box(observer.tokens(0))
            })
        },
    );
    g.finish();

    pipeline(c);
    exchange(c);
    shadow(c);

    let schema = llm_ab::json::parse(
        r#"{"type":"object","required":["answer","sources"],"properties":{"answer":{"type":"string","maxLength":2000},
            "sources":{"type":"array","items":{"type":"object","required":["url"],"properties":{"url":{"type":"string"}}}}},
            "additionalProperties":false}"#,
    )
    .unwrap();
    let doc = llm_ab::json::parse(
        r#"{"answer":"Paris is the capital of France.","sources":[{"url":"https://example.org/a"},{"url":"https://example.org/b"}]}"#,
    )
    .unwrap();
    c.bench_function("schema: validate a small answer", |b| {
        b.iter(|| black_box(llm_ab::guard::schema::validate(&schema, black_box(&doc)).is_ok()))
    });
}

fn pipeline(c: &mut Criterion) {
    let plan = load(EVERYTHING.as_bytes()).unwrap();
    let body = request_2kb();
    let response = ANSWER;
    let redactor = plan.redaction.as_ref().unwrap();
    let edits = || Edits {
        model: Some("gpt-4.1-mini"),
        ensure_stream_usage: true,
        no_stream: false,
        max_output_tokens: Some(1024),
        cap_param: llm_ab::body::CapParam::MaxCompletionTokens,
        api: llm_ab::dialect::Api::Chat,
        allowed_tools: plan.guardrails.allowed_tools.as_deref(),
        strip_tools: plan.guardrails.strip_tools,
    };
    let mut g = c.benchmark_group("everything on, 2 KB request");
    g.bench_function("prepare (validate, model, usage, cap, tools)", |b| {
        b.iter(|| black_box(prepare(black_box(&body), edits()).ok()))
    });
    let prepared = prepare(&body, edits()).unwrap().body.unwrap();
    let text = std::str::from_utf8(&prepared).unwrap();
    g.bench_function("redact request", |b| {
        b.iter(|| black_box(redactor.redact_valid_json(black_box(text), &mut Counts::default())))
    });
    g.bench_function("request moderation", |b| {
        b.iter(|| {
            let values = llm_ab::json::string_values(black_box(text)).unwrap();
            black_box(
                plan.guardrails
                    .blocked_request(values.iter().map(|v| v.text.as_ref())),
            )
        })
    });
    let policy = llm_ab::output::Policy {
        redactor: Some(redactor),
        guard: &plan.guardrails,
        schema: None,
    };
    g.bench_function("check response (tools, moderation, redaction)", |b| {
        b.iter(|| {
            black_box(llm_ab::output::check_json(
                policy,
                black_box(response),
                &mut Counts::default(),
            ))
        })
    });
    g.bench_function("observe response usage", |b| {
        b.iter(|| {
            let mut o = ResponseObserver::new();
            o.observe_json(black_box(response), &[]);
            black_box(o.tokens(0))
        })
    });
    let record = llm_ab::record::Record {
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        experiment_id: Some("chat-q4".into()),
        served_variant: Some("control".into()),
        assigned_variant: Some("control".into()),
        model: Some("gpt-4o-mini".into()),
        tokens_in: 500,
        tokens_out: 1,
        latency_ms: 3,
        status: 200,
        ..Default::default()
    };
    g.bench_function("record to JSON", |b| b.iter(|| black_box(record.to_json())));
    g.finish();
}

/// A whole exchange (request headers, 2 KB body, JSON answer, record)
/// over the recording fake host, per configuration: the decisions' own
/// cost, to hold against the in-Envoy figure of `make bench` (and, run in
/// V8 by `bench/inwasm`, against the same work as wasm).
fn exchange(c: &mut Criterion) {
    use llm_ab::exchange::workload::{Workload, CONFIGURATIONS};
    let mut g = c.benchmark_group("exchange over the fake host, 2 KB request");
    for (name, config) in CONFIGURATIONS {
        let mut w = Workload::new(config).unwrap();
        g.bench_function(name, |b| b.iter(|| black_box(w.run())));
    }
    let stream = llm_ab::exchange::workload::stream_200();
    for (name, config) in CONFIGURATIONS {
        let mut w = Workload::new(config).unwrap();
        g.bench_function(format!("{name}, 200-event stream in 512 B pieces"), |b| {
            b.iter(|| black_box(w.run_stream(&stream, 512)))
        });
    }
    g.finish();
}

/// The root context's work per shadow copy: reading its answer (outcome,
/// usage, cost, text) and scoring it against control's (ROUGE-L, exact
/// and JSON match), for a short answer and for a 200-word one.
fn shadow(c: &mut Criterion) {
    use llm_ab::shadow::{self, Answer, Built, ControlSide};
    let plan = llm_ab::config::load(
        br#"{"default_cluster": "a", "pricing": {"m": {"input_per_mtok": 1, "output_per_mtok": 2}},
          "experiments": [{"id": "e", "sticky_keys": ["x-u"],
          "variants": [{"name": "c", "weight": 100, "cluster": "a"}, {"name": "s", "weight": 0, "cluster": "b", "model": "m"}],
          "shadow": {"variants": ["s"]}}]}"#,
    )
    .unwrap();
    let mut g = c.benchmark_group("shadow: read a copy's answer and score it");
    let words = |n: usize, salt: &str| {
        (0..n)
            .map(|i| format!("word{}{salt}", i % 37))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (name, a, b) in [
        (
            "2-word answers",
            "ok then".to_string(),
            "ok now".to_string(),
        ),
        (
            "200-word answers",
            words(200, ""),
            words(190, "") + " and ten more words to tell them apart ok",
        ),
    ] {
        let answer = |text: &str| {
            serde_json::json!({"id": "c", "object": "chat.completion", "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 500, "completion_tokens": 200}})
            .to_string()
        };
        let (control_body, shadow_body) = (answer(&a), answer(&b));
        let built = Built {
            body: Vec::new(),
            prompt_tokens_est: 500,
            output_cap: None,
            schema: None,
        };
        let control = ControlSide {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            outcome: llm_ab::record::Outcome::Success,
            answer: control_body.into_bytes(),
            stream: false,
            kept: true,
        };
        g.bench_function(name, |bench| {
            bench.iter(|| {
                let side = shadow::read_answer(
                    &plan,
                    0,
                    1,
                    &built,
                    &Answer {
                        status: 200,
                        content_encoding: None,
                        body: shadow_body.as_bytes(),
                        latency_ms: 3,
                    },
                    30_000,
                );
                black_box(shadow::score_pair(&control, &side))
            })
        });
    }
    g.finish();
}

criterion_group!(core, benches);
criterion_main!(core);
