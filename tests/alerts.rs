//! The Prometheus rules shipped in `envoy/prometheus/`: promtool accepts
//! them and their unit tests pass, every series and label they read is one
//! a real Envoy with the filter exports, the weight gauge they stand on is
//! the shipped configuration's and a real Prometheus evaluates them over
//! it, and every runbook link lands on the README.
//!
//! promtool comes from Debian's `prometheus` package (`make setup` installs
//! it); these tests fail, never skip, without it.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use regex_lite::Regex;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
use support::{repo, Envoy, MockBackend, Prometheus};

const RULES: &str = "envoy/prometheus/llm-ab-alerts.yml";
const RULE_TESTS: &str = "envoy/prometheus/llm-ab-alerts.test.yml";
/// The filter's gauge of each variant's weight (basis points) and role.
const WEIGHT: &str = "llm_ab_variant_weight_bp";

/// promtool from `PROMTOOL` or the `PATH`; fails the test when missing.
fn promtool() -> PathBuf {
    let bin = std::env::var_os("PROMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("promtool"));
    let ok = Command::new(&bin)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "promtool not found ({}): `make setup` installs it (apt-get install prometheus)",
        bin.display()
    );
    bin
}

/// Runs promtool with `args` in the repository; panics with its output on failure.
fn run_promtool(args: &[&str]) -> std::time::Duration {
    let start = Instant::now();
    let out = Command::new(promtool())
        .args(args)
        .current_dir(repo())
        .output()
        .expect("promtool runs");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let check = run_promtool(&["check", "rules", RULES]);
    let test = run_promtool(&["test", "rules", RULE_TESTS]);
    eprintln!("promtool check rules: {check:?}, promtool test rules: {test:?}");
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// Every rule of a rule file.
fn rules(path: &str) -> Vec<Value> {
    yaml(path)["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

/// What `/stats/prometheus` shows of the filter: label names and values
/// seen per `llm_ab_*` series name.
#[derive(Default)]
struct Exported {
    labels: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

impl Exported {
    fn parse(text: &str) -> Exported {
        let line = Regex::new(r"^(llm_ab_[a-z_]+)(?:\{([^}]*)\})? ").unwrap();
        let pair = Regex::new(r#"([a-z_]+)="([^"]*)""#).unwrap();
        let mut e = Exported::default();
        for l in text.lines() {
            let Some(c) = line.captures(l) else { continue };
            let labels = e.labels.entry(c[1].to_string()).or_default();
            for p in pair.captures_iter(c.get(2).map_or("", |m| m.as_str())) {
                labels
                    .entry(p[1].to_string())
                    .or_default()
                    .insert(p[2].to_string());
            }
        }
        e
    }

    /// Label names of `metric`; panics when the filter does not export it.
    fn of(&self, metric: &str, what: &str) -> &BTreeMap<String, BTreeSet<String>> {
        self.labels.get(metric).unwrap_or_else(|| {
            panic!(
                "{what} uses {metric}, which the filter does not export (it exports {:?})",
                self.labels.keys().collect::<Vec<_>>()
            )
        })
    }
}

/// Labels Prometheus adds to every scraped series.
const SCRAPE_LABELS: [&str; 2] = ["instance", "job"];

/// A filter configuration that defines every series the rules read: an
/// experiment with an SLO (the paused gauge), a circuit breaker (the
/// circuit-open gauge), quotas, and human review (the review counters).
const EVERYTHING: &str = r#"{
  "default_cluster": "model_a",
  "budgets": {"quotas": [{"key": "x-org-id", "tokens_per_minute": 100000}]},
  "guardrails": {"review": {"cluster": "review_sink", "sample_rate": 0, "always": ["refusal"]}},
  "experiments": [{
    "id": "chat-q4", "sticky_keys": ["x-user-id"], "control": "control",
    "circuit_breaker": {"consecutive_failures": 5, "failure_rate": 0.5, "window_s": 30, "min_requests": 20, "open_s": 30},
    "slo": {"window_s": 60, "min_requests": 50, "max_error_rate": 0.02},
    "variants": [
      {"name": "control",   "weight": 90, "cluster": "model_a"},
      {"name": "candidate", "weight": 10, "cluster": "model_b"}
    ]
  }]
}"#;

/// Series selectors `name{matchers}` and bare names in a PromQL expression.
fn selectors(expr: &str) -> Vec<(String, Vec<(String, String)>)> {
    let sel = Regex::new(r"(llm_ab_[a-z_]+|llm_ab:[a-z0-9_:]+)(\{([^}]*)\})?").unwrap();
    let matcher = Regex::new(r#"([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)""#).unwrap();
    sel.captures_iter(expr)
        .map(|c| {
            let matchers = matcher
                .captures_iter(c.get(3).map_or("", |m| m.as_str()))
                .map(|m| (m[1].to_string(), m[3].to_string()))
                .collect();
            (c[1].to_string(), matchers)
        })
        .collect()
}

#[test]
fn rules_read_only_series_labels_and_values_the_filter_exports() {
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let sink = MockBackend::start("review_sink", 0).unwrap();
    let envoy = Envoy::start(
        EVERYTHING,
        &[
            ("model_a", a.port()),
            ("model_b", b.port()),
            ("review_sink", sink.port()),
        ],
    );
    // One request, so that the latency histogram has been flushed once.
    let body = r#"{"model":"x","messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(envoy.chat(&[("x-user-id", "u1")], body).status, 200);
    let deadline = Instant::now() + std::time::Duration::from_secs(15);
    let exported = loop {
        let e = Exported::parse(&envoy.prometheus());
        if e.labels.contains_key("llm_ab_latency_ms_bucket") || Instant::now() > deadline {
            break e;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };

    // Every name a rule or a unit test reads, with its labels and values.
    let recorded: BTreeSet<String> = rules(RULES)
        .iter()
        .filter_map(|r| r["record"].as_str().map(str::to_string))
        .collect();
    let mut read = BTreeSet::new();
    let mut check = |name: &str, labels: &[(String, String)], what: &str| {
        read.insert(name.to_string());
        if name.starts_with("llm_ab:") {
            assert!(
                recorded.contains(name),
                "{what} reads {name}, which no rule records"
            );
            return;
        }
        let known = exported.of(name, what);
        for (label, value) in labels {
            if SCRAPE_LABELS.contains(&label.as_str()) {
                continue;
            }
            let values = known
                .get(label)
                .unwrap_or_else(|| panic!("{what}: {name} has no label {label:?}"));
            // Enumerated labels: every value matched is one the filter emits.
            if [
                "reason",
                "outcome",
                "code",
                "status_class",
                "result",
                "le",
                "role",
            ]
            .contains(&label.as_str())
            {
                for v in value.split('|') {
                    assert!(
                        values.contains(v),
                        "{what}: {name}{{{label}=\"{v}\"}} never exported (values {values:?})"
                    );
                }
            }
        }
    };
    let mut labels_in_clauses = BTreeSet::new();
    let clause =
        Regex::new(r"\b(?:by|on|without|ignoring|group_left|group_right)\s*\(([^)]*)\)").unwrap();
    for rule in rules(RULES) {
        let name = rule["alert"]
            .as_str()
            .or(rule["record"].as_str())
            .unwrap()
            .to_string();
        let expr = rule["expr"].as_str().unwrap();
        for (metric, matchers) in selectors(expr) {
            check(&metric, &matchers, &name);
        }
        for c in clause.captures_iter(expr) {
            for l in c[1].split(',').map(str::trim).filter(|l| !l.is_empty()) {
                labels_in_clauses.insert(l.to_string());
            }
        }
    }
    // Unit-test input series: real names, labels and values.
    let series = Regex::new(r#"^([a-z_:]+)\{(.*)\}$"#).unwrap();
    let pair = Regex::new(r#"([a-z_]+)="([^"]*)""#).unwrap();
    for t in yaml(RULE_TESTS)["tests"].as_array().unwrap() {
        for s in t["input_series"].as_array().unwrap() {
            let text = s["series"].as_str().unwrap();
            let c = series
                .captures(text)
                .unwrap_or_else(|| panic!("{text}: not name{{labels}}"));
            let labels: Vec<(String, String)> = pair
                .captures_iter(&c[2])
                .map(|p| (p[1].to_string(), p[2].to_string()))
                .collect();
            check(&c[1], &labels, &format!("test series {text}"));
        }
    }
    // Labels grouped or joined on exist on the filter's series (or are the
    // scrape's own).
    let all_labels: BTreeSet<&str> = exported
        .labels
        .values()
        .flat_map(|l| l.keys().map(String::as_str))
        .chain(SCRAPE_LABELS)
        .collect();
    for l in &labels_in_clauses {
        assert!(
            all_labels.contains(l.as_str()),
            "rules group by unknown label {l}"
        );
    }
    // The series each alert of the brief stands on.
    for needed in [
        "llm_ab_paused",
        "llm_ab_circuit_open",
        "llm_ab_outcomes",
        "llm_ab_latency_ms_bucket",
        "llm_ab_requests",
        "llm_ab_rejected",
        "llm_ab_review_copies",
        WEIGHT,
    ] {
        assert!(read.contains(needed), "the rules never read {needed}");
    }
    drop((a, b, sink));
}

/// The same list style as the dashboard's check in tests/packaging.rs: the
/// names the rules read are in the README's metrics table.
#[test]
fn rules_read_only_metrics_of_the_readme_table() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let row = Regex::new(r"(?m)^\| `(llm_ab_[a-z_]+)` \|").unwrap();
    let documented: BTreeSet<String> = row
        .captures_iter(&readme)
        .map(|c| c[1].to_string())
        .collect();
    assert!(documented.contains("llm_ab_paused"));
    let name = Regex::new(r"llm_ab_[a-z_]+").unwrap();
    for rule in rules(RULES) {
        for m in name.find_iter(rule["expr"].as_str().unwrap()) {
            let base = m
                .as_str()
                .strip_suffix("_bucket")
                .unwrap_or(m.as_str())
                .to_string();
            assert!(
                documented.contains(&base),
                "{} reads {}, not in the README's metrics table",
                rule["alert"].as_str().or(rule["record"].as_str()).unwrap(),
                m.as_str()
            );
        }
    }
}

/// The weight gauges of `/stats/prometheus` text: (experiment, variant) to
/// (basis points, role).
fn weights(prom: &str) -> BTreeMap<(String, String), (u64, String)> {
    let line = Regex::new(
        r#"^llm_ab_variant_weight_bp\{experiment="([^"]*)",variant="([^"]*)",role="([^"]*)"\} ([0-9]+)$"#,
    )
    .unwrap();
    prom.lines()
        .filter_map(|l| line.captures(l))
        .map(|c| {
            (
                (c[1].to_string(), c[2].to_string()),
                (c[4].parse().unwrap(), c[3].to_string()),
            )
        })
        .collect()
}

/// Each variant's configured weight (basis points) and role, from a filter
/// configuration.
fn configured(config: &str) -> BTreeMap<(String, String), (u64, String)> {
    let config: Value = serde_json::from_str(config).unwrap();
    let mut out = BTreeMap::new();
    for e in config["experiments"].as_array().unwrap() {
        let variants = e["variants"].as_array().unwrap();
        let control = e["control"]
            .as_str()
            .or(variants[0]["name"].as_str())
            .unwrap();
        for v in variants {
            let name = v["name"].as_str().unwrap();
            let role = if name == control {
                "control"
            } else {
                "treatment"
            };
            out.insert(
                (e["id"].as_str().unwrap().to_string(), name.to_string()),
                (
                    (v["weight"].as_f64().unwrap() * 100.0).round() as u64,
                    role.to_string(),
                ),
            );
        }
    }
    out
}

#[test]
fn a_real_envoy_exports_the_shipped_weights_and_control() {
    let shipped = support::shipped_filter_config();
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let envoy = Envoy::start(&shipped, &[("model_a", a.port()), ("model_b", b.port())]);
    let expected = configured(&shipped);
    assert!(!expected.is_empty());
    // Set when the configuration loads: before any request.
    assert_eq!(weights(&envoy.prometheus()), expected);
}

/// Polls `f` every 200 ms for up to 20 s until it returns `Some`.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A real Prometheus loads the rules and evaluates them over two real
/// Envoys' weight gauges: the fleet's weights, the sample-ratio check's
/// expected counts, and (once one proxy gets another configuration) the
/// disagreement alert pending and the weight change the check waits out.
#[test]
fn a_real_prometheus_evaluates_the_rules_over_the_weight_gauges() {
    const CONFIG: &str = r#"{
      "default_cluster": "model_a",
      "experiments": [{
        "id": "chat-q4", "sticky_keys": ["x-user-id"], "control": "control",
        "variants": [
          {"name": "control",   "weight": 90, "cluster": "model_a"},
          {"name": "candidate", "weight": 10, "cluster": "model_b"}
        ]
      }]
    }"#;
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let clusters = [("model_a", a.port()), ("model_b", b.port())];
    let one = Envoy::start(CONFIG, &clusters);
    let two = Envoy::start_ecds(CONFIG, &clusters);
    let prom = Prometheus::start_with_rules(&[one.admin, two.admin], &[RULES]);
    let fleet = |promql: &str| {
        let v = prom.values(promql, "variant");
        (v.len() == 2).then_some(v)
    };
    let avg = eventually("the fleet's weights", || {
        fleet(r#"llm_ab:variant_weight_bp:avg{experiment="chat-q4"}"#)
    });
    assert_eq!(
        avg,
        BTreeMap::from([("candidate".into(), 1000.0), ("control".into(), 9000.0)])
    );
    let role = prom.values(r#"llm_ab:variant_weight_bp:avg{role="control"}"#, "variant");
    assert_eq!(role.keys().collect::<Vec<_>>(), ["control"]);
    // Traffic after the first scrapes, so that its increase is seen.
    for envoy in [&one, &two] {
        prom.wait_for_scrape_after(&format!("127.0.0.1:{}", envoy.admin), 0.0);
    }
    let body = r#"{"model":"x","messages":[{"role":"user","content":"hi"}]}"#;
    for i in 0..20 {
        let user = format!("u{i}");
        assert_eq!(one.chat(&[("x-user-id", &user)], body).status, 200);
        assert_eq!(two.chat(&[("x-user-id", &user)], body).status, 200);
    }
    // The sample-ratio check's expected counts stand on them.
    let expected = eventually("the expected hashed counts", || {
        let v = fleet("llm_ab:hashed_requests_expected:1h")?;
        (v.values().sum::<f64>() > 0.0).then_some(v)
    });
    let total: f64 = expected.values().sum();
    assert!(
        (expected["candidate"] / total - 0.1).abs() < 1e-9,
        "{expected:?}"
    );

    // The second proxy gets 80/20 (an ECDS update); the first keeps 90/10.
    two.set_filter_config(
        &CONFIG
            .replace(
                r#""weight": 90, "cluster": "model_a""#,
                r#""weight": 80, "cluster": "model_a""#,
            )
            .replace(r#""weight": 10,"#, r#""weight": 20,"#),
    );
    let updated = eventually("the second proxy's new weights", || {
        let w = weights(&two.prometheus());
        (w[&("chat-q4".to_string(), "candidate".to_string())].0 == 2000).then_some(w)
    });
    assert_eq!(
        updated[&("chat-q4".to_string(), "control".to_string())],
        (8000, "control".to_string())
    );
    assert_eq!(weights(&one.prometheus()), configured(CONFIG));
    let avg = eventually("the mean of both proxies' weights", || {
        fleet(r#"llm_ab:variant_weight_bp:avg{experiment="chat-q4"}"#)
            .filter(|v| v["candidate"] == 1500.0)
    });
    assert_eq!(avg["control"], 8500.0);
    let pending = eventually("LlmAbWeightsDisagree pending", || {
        fleet(r#"ALERTS{alertname="LlmAbWeightsDisagree", alertstate="pending"}"#)
    });
    assert_eq!(pending.len(), 2);
    // The weight changed within the hour: the sample-ratio check waits.
    let changed = prom.values(
        r#"max by (experiment) (changes(llm_ab_variant_weight_bp[1h])) > 0"#,
        "experiment",
    );
    assert!(changed.contains_key("chat-q4"), "{changed:?}");
    drop((a, b));
}

/// GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_alert_has_labels_annotations_and_a_readme_runbook() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let anchors: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect();
    let mut alerts = BTreeSet::new();
    for r in rules(RULES) {
        let Some(name) = r["alert"].as_str() else {
            continue;
        };
        alerts.insert(name.to_string());
        assert!(r["for"].is_string(), "{name}: no `for`");
        assert!(
            ["critical", "warning", "info"].contains(&r["labels"]["severity"].as_str().unwrap()),
            "{name}: severity"
        );
        for a in ["summary", "description", "runbook"] {
            assert!(r["annotations"][a].is_string(), "{name}: no {a}");
        }
        let runbook = r["annotations"]["runbook"].as_str().unwrap();
        let target = runbook
            .strip_prefix("README.md#")
            .unwrap_or_else(|| panic!("{name}: runbook {runbook} is not a README anchor"));
        assert_eq!(target, anchor(&format!("Alert: {name}")), "{name}");
        assert!(
            anchors.contains(target),
            "{name}: README has no heading for #{target}"
        );
    }
    for needed in [
        "LlmAbExperimentPaused",
        "LlmAbCircuitOpen",
        "LlmAbTreatmentErrorRateHigh",
        "LlmAbTreatmentLatencyHigh",
        "LlmAbSampleRatioMismatch",
        "LlmAbQuotaRejectionsSpike",
        "LlmAbReviewSinkDown",
    ] {
        assert!(alerts.contains(needed), "no alert {needed}");
    }
    // Every alert is exercised by the unit tests.
    let tested: BTreeSet<String> = yaml(RULE_TESTS)["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().cloned().unwrap_or_default())
        .map(|a| a["alertname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tested, alerts, "alerts without a unit test");
}
