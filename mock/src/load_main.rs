//! `llm-ab-load --port P --rate R --seconds S [--connections C] [--body FILE]
//! [--path PATH] [--header NAME:VALUE]...`
//!
//! Sends POST requests to 127.0.0.1:P on a fixed schedule (open loop) and
//! prints one JSON line of latency percentiles, measured from each
//! request's due time.

use llm_ab_mock::load::{run, Plan};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut plan = Plan {
        port: 0,
        rate: 1000,
        duration: Duration::from_secs(5),
        connections: 8,
        path: "/v1/chat/completions".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"model":"app","messages":[{"role":"user","content":"hi"}]}"#.to_vec(),
    };
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        let ok = match args[i].as_str() {
            "--port" => value.parse().map(|v| plan.port = v).is_ok(),
            "--rate" => value.parse().map(|v| plan.rate = v).is_ok(),
            "--seconds" => value
                .parse()
                .map(|v| plan.duration = Duration::from_secs_f64(v))
                .is_ok(),
            "--connections" => value.parse().map(|v| plan.connections = v).is_ok(),
            "--path" => {
                plan.path = value.clone();
                true
            }
            "--body" => std::fs::read(&value).map(|b| plan.body = b).is_ok(),
            "--header" => match value.split_once(':') {
                Some((k, v)) => {
                    plan.headers.push((k.trim().into(), v.trim().into()));
                    true
                }
                None => false,
            },
            "-h" | "--help" => {
                println!("usage: llm-ab-load --port P --rate R --seconds S [--connections C] [--body FILE] [--path PATH] [--header NAME:VALUE]...");
                return ExitCode::SUCCESS;
            }
            _ => false,
        };
        if !ok || plan.port == 0 && args[i] == "--port" {
            eprintln!(
                "llm-ab-load: bad argument {:?} (value {value:?}); see --help",
                args[i]
            );
            return ExitCode::from(2);
        }
        i += 2;
    }
    if plan.port == 0 {
        eprintln!("llm-ab-load: --port is required; see --help");
        return ExitCode::from(2);
    }
    let report = run(&plan);
    println!("{}", report.to_json());
    ExitCode::SUCCESS
}
