//! The Prometheus rules shipped in `envoy/prometheus/`: promtool accepts
//! them and their unit tests pass, every series and label they read is one
//! a real Envoy with the filter exports, the experiment declaration agrees
//! with `envoy/envoy.yaml`, and every runbook link lands on the README.
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
use support::{repo, Envoy, MockBackend};

const RULES: &str = "envoy/prometheus/llm-ab-alerts.yml";
const DECLARATIONS: &str = "envoy/prometheus/llm-ab-experiments.yml";
const RULE_TESTS: &str = "envoy/prometheus/llm-ab-alerts.test.yml";
/// The series the operator declares (the filter exports no weights).
const WEIGHT: &str = "llm_ab:configured_weight:percent";

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
    let check = run_promtool(&["check", "rules", RULES, DECLARATIONS]);
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

/// Labels Prometheus adds to every scraped series, and the declaration's own.
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
        .chain(rules(DECLARATIONS).iter())
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
            if ["reason", "outcome", "code", "status_class", "result", "le"]
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
            if &c[1] == WEIGHT {
                let names: BTreeSet<&str> = labels.iter().map(|(l, _)| l.as_str()).collect();
                assert_eq!(
                    names,
                    BTreeSet::from(["experiment", "variant", "role"]),
                    "{text}"
                );
                continue;
            }
            check(&c[1], &labels, &format!("test series {text}"));
        }
    }
    // Labels grouped or joined on exist on the filter's series (or are the
    // scrape's own, or the declaration's role).
    let all_labels: BTreeSet<&str> = exported
        .labels
        .values()
        .flat_map(|l| l.keys().map(String::as_str))
        .chain(SCRAPE_LABELS)
        .chain(["role"])
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

#[test]
fn declared_weights_and_control_match_the_shipped_envoy_yaml() {
    let config: Value = serde_json::from_str(&support::shipped_filter_config()).unwrap();
    let mut shipped = BTreeMap::new();
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
            shipped.insert(
                (e["id"].as_str().unwrap().to_string(), name.to_string()),
                (v["weight"].as_f64().unwrap(), role.to_string()),
            );
        }
    }
    let number = Regex::new(r"^vector\(([0-9.]+)\)$").unwrap();
    let mut declared = BTreeMap::new();
    for r in rules(DECLARATIONS) {
        assert_eq!(r["record"], WEIGHT);
        let weight: f64 = number
            .captures(r["expr"].as_str().unwrap())
            .expect("vector(<weight>)")[1]
            .parse()
            .unwrap();
        let l = &r["labels"];
        declared.insert(
            (
                l["experiment"].as_str().unwrap().to_string(),
                l["variant"].as_str().unwrap().to_string(),
            ),
            (weight, l["role"].as_str().unwrap().to_string()),
        );
    }
    assert_eq!(declared, shipped);
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
