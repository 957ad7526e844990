//! Helpers the CLI's end-to-end tests share: running the built `llm-ab`.

use std::process::{Command, Output};

/// Runs the built `llm-ab` with `args`.
pub fn llm_ab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llm-ab"))
        .args(args)
        .output()
        .expect("run llm-ab")
}

/// Its standard output and error, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
