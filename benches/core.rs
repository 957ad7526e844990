//! Criterion microbenchmarks of the decision core, natively:
//! `cargo bench --bench core` (or `make bench`, which also prints the
//! `.wasm` size).

// Benchmark harness: failing loudly on a broken setup is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use llm_ab::body::{prepare, Edits};
use llm_ab::config::load;
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

    let schema: serde_json::Value = serde_json::from_str(
        r#"{"type":"object","required":["answer","sources"],"properties":{"answer":{"type":"string","maxLength":2000},
            "sources":{"type":"array","items":{"type":"object","required":["url"],"properties":{"url":{"type":"string"}}}}},
            "additionalProperties":false}"#,
    )
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(
        r#"{"answer":"Paris is the capital of France.","sources":[{"url":"https://example.org/a"},{"url":"https://example.org/b"}]}"#,
    )
    .unwrap();
    c.bench_function("schema: validate a small answer", |b| {
        b.iter(|| black_box(llm_ab::guard::schema::validate(&schema, black_box(&doc)).is_ok()))
    });
}

criterion_group!(core, benches);
criterion_main!(core);
