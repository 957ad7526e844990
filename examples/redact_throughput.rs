//! Native throughput of the full detector set (`make bench` runs it).
//!
//! `cargo run --release --example redact_throughput`
//!
//! Prompts of 1, 16 and 64 KiB of prose with a few PII values sprinkled in,
//! as a chat request body, through `Redactor::redact_json`.

// A benchmark harness: failing loudly on a broken setup is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use llm_ab::config::load;
use llm_ab::redact::Counts;
use std::time::Instant;

const PROSE: &str = "The quarterly review covered revenue, churn and the roadmap for the next two releases. \
Customers asked for faster exports, better audit logs and single sign-on; the team estimated 3 sprints. \
Version 2.14.3 ships on 2024-06-01 at 10:30 UTC, priced at $1,299.99 per seat, order #88231904. ";

/// A chat request whose user content is about `size` bytes.
pub fn prompt(size: usize) -> Vec<u8> {
    let mut text = String::new();
    let mut i = 0;
    while text.len() < size {
        text.push_str(PROSE);
        if i % 8 == 3 {
            text.push_str("Contact jane.doe@example.com or (415) 555-0100. ");
        }
        if i % 16 == 7 {
            text.push_str(
                "Card 4111 1111 1111 1111, key sk-proj-abcdefghijklmnopqrstuvwxyz012345. ",
            );
        }
        i += 1;
    }
    text.truncate(size);
    while !text.is_char_boundary(text.len()) {
        text.pop();
    }
    serde_json::json!({"model": "m", "messages": [{"role": "user", "content": text}]})
        .to_string()
        .into_bytes()
}

fn main() {
    if std::env::args().any(|a| a == "--per-detector") {
        let body = prompt(16 * 1024);
        let text = std::str::from_utf8(&body).unwrap_or("");
        for kind in llm_ab::redact::detect::Kind::ALL {
            let start = Instant::now();
            for _ in 0..200 {
                std::hint::black_box(llm_ab::redact::detect::scan(text, &[kind]));
            }
            let mbps = (text.len() * 200) as f64 / start.elapsed().as_secs_f64() / 1e6;
            println!("{:<12} {mbps:8.0} MB/s", kind.as_str());
        }
        let custom = llm_ab::redact::Custom::new("employee_id", "EMP-[0-9]{6}").unwrap();
        let start = Instant::now();
        for _ in 0..200 {
            std::hint::black_box(custom.matches(text));
        }
        let mbps = (text.len() * 200) as f64 / start.elapsed().as_secs_f64() / 1e6;
        println!("{:<12} {mbps:8.0} MB/s", "custom EMP-");
        return;
    }
    let plan = load(br#"{"default_cluster": "a", "redaction": {"custom": [{"name": "employee_id", "pattern": "EMP-[0-9]{6}"}]}}"#)
        .expect("config");
    let redactor = plan.redaction.expect("redaction");
    println!("| prompt | MB/s (native) | µs per request |");
    println!("|---|---|---|");
    for kib in [1usize, 16, 64] {
        let body = prompt(kib * 1024);
        let iterations = (64 * 1024 * 1024 / body.len()).max(20);
        let mut counts = Counts::default();
        let start = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(
                redactor
                    .redact_json(std::hint::black_box(&body), &mut counts)
                    .ok(),
            );
        }
        let secs = start.elapsed().as_secs_f64();
        let mbps = (body.len() * iterations) as f64 / secs / 1e6;
        println!(
            "| {kib} KiB | {mbps:.0} | {:.1} |",
            secs * 1e6 / iterations as f64
        );
    }
}
