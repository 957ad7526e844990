//! End-to-end: the report's shadow section from a real Envoy's stats,
//! against the shadow records the sink received and McNemar's exact test
//! computed independently (Python's `math.comb` in the repository's
//! `.venv`). The candidate is a reasoning model: the strict mock refuses
//! the app's `temperature` for it, as the real API does.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tests/support/mod.rs"]
mod support;

mod common;
use common::{llm_ab, text};

use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Envoy, MockBackend};

const CONFIG: &str = r#"{
  "default_cluster": "model_a",
  "pricing": {"gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}, "o4-mini": {"input_per_mtok": 1.1, "output_per_mtok": 4.4}},
  "experiments": [{
    "id": "dark",
    "sticky_keys": ["x-user-id"],
    "variants": [
      {"name": "control", "weight": 100, "cluster": "model_a", "model": "gpt-4o-mini"},
      {"name": "reasoner", "weight": 0, "cluster": "model_b", "model": "o4-mini"}
    ],
    "shadow": {"variants": ["reasoner"], "sink_cluster": "shadow_sink"}
  }]
}"#;

#[test]
fn the_shadow_section_pairs_outcomes_as_the_records_do_and_mcnemar_matches_an_independent_computation(
) {
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let sink = MockBackend::start("shadow_sink", 0).unwrap();
    let envoy = Envoy::start(
        CONFIG,
        &[
            ("model_a", a.port()),
            ("model_b", b.port()),
            ("shadow_sink", sink.port()),
        ],
    );
    // Control fails every 4th request (500); the reasoning candidate
    // refuses every 3rd (its temperature): 6 pairs where only control
    // succeeds, 4 where only the candidate does, 2 where neither does.
    for i in 0..24u32 {
        let mut body =
            json!({"model": "app", "messages": [{"role": "user", "content": format!("q{i}")}]});
        if i % 3 == 0 {
            body["temperature"] = json!(0.5);
        }
        let status = if i % 4 == 0 { "500" } else { "200" };
        let user = format!("u{i}");
        envoy.chat(
            &[("x-user-id", &user), ("x-mock-status", status)],
            &body.to_string(),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while sink.request_count() < 24 {
        assert!(
            Instant::now() < deadline,
            "records: {}",
            sink.request_count()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The 2×2 table from the records (not from the stats).
    let mut cells = [0u64; 4];
    for r in sink.requests() {
        let rec: Value = serde_json::from_slice(&r.body).unwrap();
        let control = rec["control_outcome"] == "success";
        let shadow = rec["outcome"] == "success";
        cells[usize::from(!control) * 2 + usize::from(!shadow)] += 1;
    }
    assert_eq!(
        cells,
        [12, 6, 4, 2],
        "both, control only, shadow only, neither"
    );

    // Histograms reach the admin page at the stats flush: wait for them.
    let admin = format!("http://127.0.0.1:{}", envoy.admin);
    let deadline = Instant::now() + Duration::from_secs(15);
    let report = loop {
        let out = llm_ab(&["report", "--admin", &admin, "--format", "json"]);
        assert!(out.status.success(), "{}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let shadow = v[0]["shadow"][0].clone();
        if shadow["latency_ms"][0].is_number() || Instant::now() > deadline {
            break shadow;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(report["variant"], "reasoner");
    assert_eq!(report["copies"], 24);
    assert_eq!(report["outcomes"]["success"], 16);
    assert_eq!(report["outcomes"]["error"], 8);
    assert_eq!(report["pairs"]["success_success"], 12);
    assert_eq!(report["pairs"]["success_failure"], 6);
    assert_eq!(report["pairs"]["failure_success"], 4);
    assert_eq!(report["pairs"]["failure_failure"], 2);
    assert_eq!(report["mcnemar"]["control_only"], 6);
    assert_eq!(report["mcnemar"]["shadow_only"], 4);
    assert_eq!(report["mcnemar"]["method"], "exact");

    // McNemar's exact test, computed by Python from the records' counts.
    let py = support::repo().join(".venv/bin/python");
    let script = format!(
        "from math import comb\nb, c = {}, {}\nn = b + c\nprint(min(1.0, 2 * sum(comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n))",
        cells[1], cells[2]
    );
    let out = Command::new(py)
        .args(["-c", &script])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let got = report["mcnemar"]["p_value"].as_f64().unwrap();
    assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");

    // The similarity of the pairs where both succeeded, from its histogram.
    let p50 = report["similarity"][1].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p50), "{report}");
    // Cost per copy: o4-mini is the pricier model.
    assert!(
        report["cost_usd_per_request"].as_f64().unwrap()
            > report["control_cost_usd_per_request"].as_f64().unwrap(),
        "{report}"
    );

    // `--records` over the access log and the shadow records, in one
    // file (as a log store holds them): the same paired analysis.
    let lines = envoy.access_log_lines(24);
    assert_eq!(lines.len(), 24);
    let mut file = lines.join("\n");
    for r in sink.requests() {
        file.push('\n');
        file.push_str(&String::from_utf8_lossy(&r.body));
    }
    let path = std::env::temp_dir().join(format!(
        "llm-ab-shadow-records-{}.jsonl",
        std::process::id()
    ));
    std::fs::write(&path, file + "\n").unwrap();
    let out = llm_ab(&[
        "report",
        "--records",
        path.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("24 shadow records"), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let from_records = &v[0]["shadow"][0];
    for key in ["variant", "copies", "outcomes", "pairs", "mcnemar"] {
        assert_eq!(from_records[key], report[key], "{key}: {from_records}");
    }
    // Quartiles from the records' values: within the stats' 5-point buckets.
    let (r50, s50) = (from_records["similarity"][1].as_f64().unwrap(), p50);
    assert!((r50 - s50).abs() <= 0.05, "{r50} vs {s50}");
    assert!(
        from_records["control_cost_usd_per_request"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    // The table shows the same.
    let out = llm_ab(&["report", "--admin", &admin]);
    let table = text(&out);
    assert!(
        table.contains("shadow reasoner vs control: 24 copies (error 8, success 16)"),
        "{table}"
    );
    assert!(
        table.contains("control only 6, shadow only 4, neither 2; McNemar exact p = 0.7539"),
        "{table}"
    );
}
