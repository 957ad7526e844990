//! End-to-end: the `llm-ab` binary against a real Envoy running the filter.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tests/support/mod.rs"]
mod support;

mod common;
use common::{llm_ab, text};

use serde_json::Value;

use support::{Envoy, MockBackend};

const CONFIG: &str = r#"{
  "default_cluster": "model_a",
  "override": {"variant_header": "x-llm-variant-override", "token_header": "x-llm-override-token", "token": "s3cret-token"},
  "pricing": {"gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}, "gpt-4.1-mini": {"input_per_mtok": 0.4, "output_per_mtok": 1.6}},
  "experiments": [{
    "id": "chat-q4",
    "match": {"path_prefix": "/v1/chat/completions"},
    "sticky_keys": ["x-user-id"],
    "variants": [
      {"name": "control",   "weight": 50, "cluster": "model_a", "model": "gpt-4o-mini"},
      {"name": "candidate", "weight": 50, "cluster": "model_b", "model": "gpt-4.1-mini"}
    ]
  }]
}"#;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-ab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn check_uses_the_filter_validation() {
    let good = scratch("good.json");
    std::fs::write(&good, CONFIG).unwrap();
    let o = llm_ab(&["check", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("OK (1 experiment(s))"));

    let bad = scratch("bad.json");
    std::fs::write(
        &bad,
        CONFIG
            .replace("\"weight\": 50,", "\"weight\": 5,")
            .replace("\"model_b\"", "\"\""),
    )
    .unwrap();
    let o = llm_ab(&["check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o);
    assert!(
        out.contains("experiments[0].variants[1].cluster: must not be empty"),
        "{out}"
    );
    assert!(
        out.contains("experiments[0].variants: weights sum to"),
        "{out}"
    );

    let o = llm_ab(&["check", "/nonexistent.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(text(&o).lines().count(), 1, "one line: {}", text(&o));
}

#[test]
fn report_and_replay_through_a_real_gateway() {
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let envoy = Envoy::start(CONFIG, &[("model_a", a.port()), ("model_b", b.port())]);
    for i in 0..200 {
        let user = format!("u{i}");
        let fail = if i % 7 == 0 { "500" } else { "200" };
        envoy.chat(
            &[("x-user-id", &user), ("x-mock-status", fail)],
            r#"{"model":"x","messages":[{"role":"user","content":"hi"}]}"#,
        );
    }
    // Histograms appear at Envoy's stats flush.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let histogram_total = |prom: &str| -> u64 {
        prom.lines()
            .filter(|l| l.starts_with("llm_ab_latency_ms_count{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    while histogram_total(&envoy.prometheus()) < 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let admin = format!("http://127.0.0.1:{}", envoy.admin);

    let o = llm_ab(&["report", "--admin", &admin, "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let reports: Value = serde_json::from_slice(&o.stdout).unwrap();
    let variants = reports[0]["variants"].as_array().unwrap();
    assert_eq!(variants[0]["variant"], "control");
    let total: u64 = variants
        .iter()
        .map(|v| v["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 200);
    let errors: u64 = variants
        .iter()
        .map(|v| v["rates"]["error"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(errors, 29, "every 7th request failed");
    assert!(variants[0]["latency_ms"]["p50"].as_f64().is_some());
    assert!(variants[1]["verdict"].as_str().is_some());

    let saved = scratch("stats.txt");
    std::fs::write(&saved, envoy.prometheus()).unwrap();
    let html = scratch("report.html");
    let o = llm_ab(&[
        "report",
        "--stats",
        saved.to_str().unwrap(),
        "--format",
        "markdown",
        "--html",
        html.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("| variant | requests | success (95% CI)"));
    assert!(text(&o).contains("candidate vs control:"));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<svg")
            && page.contains("Success rate (95% interval)")
            && page.contains("Latency (ms)")
    );
    let table = llm_ab(&["report", "--stats", saved.to_str().unwrap()]);
    assert!(
        !text(&table).contains("\x1b["),
        "no colors when not on a terminal"
    );

    // Replay the shipped sample eval set, forcing each variant.
    let dataset = support::repo().join("evals/sample.jsonl");
    let output = scratch("replay.json");
    let config = scratch("replay-config.json");
    std::fs::write(&config, CONFIG).unwrap();
    let gateway = format!("http://127.0.0.1:{}", envoy.port);
    let replay = |extra: &[&str]| {
        let mut args = vec![
            "replay",
            "--dataset",
            dataset.to_str().unwrap(),
            "--gateway",
            &gateway,
            "--variants",
            "control,candidate",
            "--token",
            "s3cret-token",
        ];
        args.extend_from_slice(extra);
        llm_ab(&args)
    };
    let o = replay(&[
        "--output",
        output.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    assert_eq!(result["variants"]["control"]["cases"], 32);
    assert_eq!(result["variants"]["control"]["pass_rate"], 1.0);
    // The 8 model-pinned cases pass on control only.
    assert_eq!(result["variants"]["candidate"]["passed"], 24);
    // Priced with the configuration: the candidate's model costs more.
    let cost = |v: &str| result["variants"][v]["cost_usd"].as_f64().unwrap();
    assert!(cost("candidate") > cost("control") && cost("control") > 0.0);
    let cases = result["cases"].as_array().unwrap();
    assert!(cases
        .iter()
        .any(|c| c["variant"] == "candidate"
            && c["failures"][0] == "does not contain \"gpt-4o-mini\""));
    let o = replay(&["--fail-if-worse", "10"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("candidate passes 25.0 points fewer cases than control"));
}

#[test]
fn bad_input_gets_one_line_and_a_non_zero_exit() {
    let o = llm_ab(&["report", "--admin", "http://127.0.0.1:1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).starts_with("llm-ab: cannot read http://127.0.0.1:1/stats/prometheus"),
        "{}",
        text(&o)
    );
    let bad = scratch("bad-stats.txt");
    std::fs::write(&bad, "llm_ab_requests{experiment=\"e\" 3\n").unwrap();
    let o = llm_ab(&["report", "--stats", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("line 1: not a Prometheus sample"));
    let dataset = scratch("bad.jsonl");
    std::fs::write(&dataset, "{\"id\": \"a\", \"messages\": []}\nnot json\n").unwrap();
    let o = llm_ab(&[
        "replay",
        "--dataset",
        dataset.to_str().unwrap(),
        "--gateway",
        "http://127.0.0.1:1",
        "--variants",
        "control",
        "--token",
        "t",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("line 2: not JSON"), "{}", text(&o));
    let o = llm_ab(&["--version"]);
    assert!(o.status.success() && text(&o).starts_with("llm-ab "));
    let o = llm_ab(&["report", "--help"]);
    assert!(text(&o).contains("--min-effect"));
}
