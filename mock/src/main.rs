//! `llm-ab-mock --name NAME --port PORT [--delay-ms MS] [--fail-rate R] [--fail-status S]`
//!
//! Runs one mock OpenAI-compatible backend until killed.

use llm_ab_mock::{Behavior, MockBackend};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut name = String::from("mock");
    let mut port = 0u16;
    let mut behavior = Behavior::default();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        let ok = match args[i].as_str() {
            "--name" => {
                name = value.clone();
                true
            }
            "--port" => value.parse().map(|v| port = v).is_ok(),
            "--delay-ms" => value.parse().map(|v| behavior.delay_ms = v).is_ok(),
            "--fail-rate" => value.parse().map(|v| behavior.fail_rate = v).is_ok(),
            "--fail-status" => value.parse().map(|v| behavior.fail_status = v).is_ok(),
            "-h" | "--help" => {
                println!("usage: llm-ab-mock --name NAME --port PORT [--delay-ms MS] [--fail-rate R] [--fail-status S]");
                return ExitCode::SUCCESS;
            }
            _ => false,
        };
        if !ok {
            eprintln!(
                "llm-ab-mock: bad argument {:?} (value {value:?}); see --help",
                args[i]
            );
            return ExitCode::from(2);
        }
        i += 2;
    }
    let backend = match MockBackend::start(&name, port) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("llm-ab-mock: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::from(1);
        }
    };
    backend.set_behavior(behavior);
    println!(
        "llm-ab-mock {name} listening on 127.0.0.1:{}",
        backend.port()
    );
    loop {
        std::thread::park();
    }
}
