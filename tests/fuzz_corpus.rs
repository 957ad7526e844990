//! Replays the fuzzers' corpus (`fuzz/corpus/<target>/`) through the same
//! entry points, so a crash found once stays fixed.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use llm_ab::fuzzing;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| f(&data));
        assert!(outcome.is_ok(), "{target} panics on {}", path.display());
        n += 1;
    }
    assert!(n > 0, "empty corpus for {target}");
}

#[test]
fn config_load_corpus() {
    replay("config_load", fuzzing::config_load);
}

#[test]
fn request_body_corpus() {
    replay("request_body", fuzzing::request_body);
}

#[test]
fn sse_stream_corpus() {
    replay("sse_stream", fuzzing::sse_stream);
}

#[test]
fn redaction_corpus() {
    replay("redaction", fuzzing::redaction);
}

#[test]
fn schema_corpus() {
    replay("schema", fuzzing::schema);
}
