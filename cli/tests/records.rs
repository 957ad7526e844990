//! The unit-level report (`llm-ab report --records / --outcomes /
//! --aggregates`) against computations it does not make itself: a Monte
//! Carlo of the randomization (the true sampling spread), χ² statistics
//! counted here from the generated data, hand-summed outcomes, DuckDB
//! running the shipped `analysis/aggregate.sql` unchanged, and a real Envoy
//! writing the records.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tests/support/mod.rs"]
mod support;

mod common;
use common::{llm_ab, text};

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A 50/50 experiment: one treatment, which owns buckets 0–4999.
const CONFIG: &str = r#"{"default_cluster": "a", "experiments": [{"id": "e", "sticky_keys": ["x-user-id"],
  "variants": [{"name": "control", "weight": 50, "cluster": "a"}, {"name": "treatment", "weight": 50, "cluster": "b"}]}]}"#;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-ab-records-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write(name: &str, content: &str) -> PathBuf {
    let path = scratch(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `llm-ab report … --format json`: the experiments, and stderr.
fn report_json(args: &[&str]) -> (Vec<Value>, String) {
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let o = llm_ab(&all);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    (
        v.as_array().unwrap().clone(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// The metric row of `variant`.
fn row<'a>(e: &'a Value, metric: &str, variant: &str) -> &'a Value {
    e["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == metric && r["variant"] == variant)
        .unwrap_or_else(|| panic!("no {metric} row for {variant}"))
}

/// xorshift64, with the draws the synthetic experiments need.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n - 1)
    }
    /// Pareto with minimum 1 and shape `alpha`.
    fn pareto(&mut self, alpha: f64) -> f64 {
        self.unit().powf(-1.0 / alpha)
    }
    fn normal(&mut self) -> f64 {
        (-2.0 * self.unit().ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }
}

/// A user: a bucket, how many requests, and their propensities.
struct User {
    bucket: u16,
    requests: usize,
    success: f64,
    cost: f64,
}

/// Users with Pareto(`alpha`) requests (1 to `cap` each): a few heavy
/// users send most of the traffic, as LLM apps see; each user has their
/// own success rate and typical cost.
fn population(rng: &mut Rng, users: usize, alpha: f64, cap: usize) -> Vec<User> {
    (0..users)
        .map(|_| User {
            bucket: rng.below(10_000) as u16,
            requests: (rng.pareto(alpha) as usize).clamp(1, cap),
            // Most users are served well, some badly: a user's requests
            // succeed or fail together far more than at random.
            success: if rng.unit() < 0.7 { 0.98 } else { 0.3 },
            cost: 1e-4 * (0.8 * rng.normal()).exp(),
        })
        .collect()
}

fn variant_of(bucket: u16) -> &'static str {
    if bucket < 5000 {
        "treatment"
    } else {
        "control"
    }
}

/// One request's outcome: success, cost.
fn draw(rng: &mut Rng, u: &User) -> (bool, f64) {
    (rng.unit() < u.success, u.cost * (0.9 + 0.2 * rng.unit()))
}

fn record_line(out: &mut String, experiment: &str, trace: u64, u: &User, ok: bool, cost: f64) {
    let _ = writeln!(
        out,
        r#"{{"trace_id":"{trace:032x}","start_unix_ms":1767225600000,"experiment_id":"{experiment}","assigned_variant":"{v}","served_variant":"{v}","reason":"hashed","bucket":{b},"tokens_in":100,"tokens_out":20,"cost_usd_est":{cost:e},"latency_ms":300,"status":200,"outcome":"{o}","error_code":null,"schema_pass":null}}"#,
        v = variant_of(u.bucket),
        b = u.bucket,
        o = if ok { "success" } else { "error" }
    );
}

/// Treatment − control of the success rate and the cost per request,
/// counted over requests.
#[derive(Default)]
struct Sums {
    n: [f64; 2],
    ok: [f64; 2],
    cost: [f64; 2],
    cost2: [f64; 2],
}

impl Sums {
    fn add(&mut self, u: &User, ok: bool, cost: f64) {
        let arm = usize::from(u.bucket < 5000);
        self.n[arm] += 1.0;
        self.ok[arm] += f64::from(u8::from(ok));
        self.cost[arm] += cost;
        self.cost2[arm] += cost * cost;
    }
    fn success_diff(&self) -> f64 {
        self.ok[1] / self.n[1] - self.ok[0] / self.n[0]
    }
    fn cost_diff(&self) -> f64 {
        self.cost[1] / self.n[1] - self.cost[0] / self.n[0]
    }
    /// The standard errors that treat every request as independent.
    fn request_level_se(&self) -> (f64, f64) {
        let var_p = |a: usize| {
            let p = self.ok[a] / self.n[a];
            p * (1.0 - p) / self.n[a]
        };
        let var_c = |a: usize| {
            let m = self.cost[a] / self.n[a];
            (self.cost2[a] / self.n[a] - m * m) / (self.n[a] - 1.0)
        };
        ((var_p(0) + var_p(1)).sqrt(), (var_c(0) + var_c(1)).sqrt())
    }
}

fn sd(xs: &[f64]) -> f64 {
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

#[test]
fn request_level_intervals_are_several_times_too_narrow_bucket_level_ones_are_right() {
    // A/A experiments of 2,000 users with Pareto(1.8) requests. The truth
    // is how much the differences really vary from one run to the next
    // (new users, new draws), over 300 runs; 30 of them go through the
    // report, one experiment id each, for the standard errors it gives.
    let mut rng = Rng(0x5eed_0016);
    let (mut success, mut cost) = (Vec::new(), Vec::new());
    let mut request_level = (0.0, 0.0);
    let mut lines = String::new();
    let mut trace = 1;
    const REPORTED: usize = 30;
    for run in 0..300 {
        let mut sums = Sums::default();
        for u in population(&mut rng, 2000, 1.8, 500) {
            for _ in 0..u.requests {
                let (ok, c) = draw(&mut rng, &u);
                sums.add(&u, ok, c);
                if run < REPORTED {
                    record_line(&mut lines, &format!("aa{run:02}"), trace, &u, ok, c);
                    trace += 1;
                }
            }
        }
        success.push(sums.success_diff());
        cost.push(sums.cost_diff());
        if run < REPORTED {
            let (s, c) = sums.request_level_se();
            request_level.0 += s / REPORTED as f64;
            request_level.1 += c / REPORTED as f64;
        }
    }
    let (true_success, true_cost) = (sd(&success), sd(&cost));

    let file = write("design-effect.jsonl", &lines);
    let (reports, _) = report_json(&["--records", s(&file), "--fixed-horizon"]);
    assert_eq!(reports.len(), REPORTED);
    let mean_se = |metric: &str| {
        reports
            .iter()
            .map(|e| {
                let r = row(e, metric, "treatment");
                (r["ci_high"].as_f64().unwrap() - r["ci_low"].as_f64().unwrap()) / 2.0 / 1.959_964
            })
            .sum::<f64>()
            / REPORTED as f64
    };
    let (unit_success, unit_cost) = (mean_se("success_rate"), mean_se("cost_per_request"));
    let (req_success, req_cost) = request_level;
    eprintln!(
        "success: truth {true_success:.5}, bucket-level {unit_success:.5}, request-level {req_success:.5}; \
         cost: truth {true_cost:.3e}, bucket-level {unit_cost:.3e}, request-level {req_cost:.3e}"
    );
    for (name, unit, truth) in [
        ("success", unit_success, true_success),
        ("cost", unit_cost, true_cost),
    ] {
        assert!(
            (0.8..1.25).contains(&(unit / truth)),
            "{name}: the bucket-level standard error {unit} is not the true spread {truth}"
        );
    }
    assert!(
        true_success / req_success > 2.0,
        "success: request-level {req_success} vs truth {true_success}"
    );
    assert!(
        true_cost / req_cost > 2.5,
        "cost: request-level {req_cost} vs truth {true_cost}"
    );
}

/// χ² of two counts against 50/50.
fn chi2_half(o: [f64; 2]) -> f64 {
    let e = (o[0] + o[1]) / 2.0;
    (o[0] - e).powi(2) / e + (o[1] - e).powi(2) / e
}

/// An experiment of `users` heavy-tailed users where each treatment user
/// reaches the log with probability `kept`: its records, the buckets with
/// traffic and the requests of each arm.
fn srm_experiment(seed: u64, users: usize, kept: f64) -> (String, [f64; 2], [f64; 2]) {
    let mut rng = Rng(seed);
    let mut lines = String::new();
    let mut buckets: [BTreeSet<u16>; 2] = [BTreeSet::new(), BTreeSet::new()];
    let mut requests = [0.0f64; 2];
    let mut trace = 1;
    for u in population(&mut rng, users, 1.2, 2000) {
        let arm = usize::from(u.bucket < 5000);
        if arm == 1 && rng.unit() >= kept {
            continue;
        }
        buckets[arm].insert(u.bucket);
        for _ in 0..u.requests {
            let (ok, c) = draw(&mut rng, &u);
            record_line(&mut lines, "e", trace, &u, ok, c);
            requests[arm] += 1.0;
            trace += 1;
        }
    }
    (
        lines,
        [buckets[0].len() as f64, buckets[1].len() as f64],
        requests,
    )
}

#[test]
fn a_sample_ratio_mismatch_shows_on_units_and_stops_the_verdicts() {
    let config = write("srm-config.json", CONFIG);
    // A fifth of the treatment's users never reach the log (8,000 users
    // over 10,000 buckets, Pareto(1.2) requests): the expected χ² on
    // buckets with traffic is about 30.
    let (lines, buckets, requests) = srm_experiment(0xdead_beef_0016, 8000, 0.8);
    let on_buckets = chi2_half(buckets);
    eprintln!(
        "mismatch: χ² on buckets {on_buckets:.1}, on requests {:.1}",
        chi2_half(requests)
    );
    // χ²(1) upper critical value for p = 0.001: 10.828.
    assert!(on_buckets > 10.828, "{on_buckets}");
    let file = write("srm.jsonl", &lines);
    let (reports, stderr) = report_json(&["--records", s(&file), "--config", s(&config)]);
    let srm = &reports[0]["srm"];
    assert_eq!(srm["unit"], "bucket");
    assert!(
        (srm["chi2"].as_f64().unwrap() / on_buckets - 1.0).abs() < 1e-9,
        "{srm}"
    );
    assert!(srm["p_value"].as_f64().unwrap() < 0.001, "{srm}");
    assert_eq!(srm["mismatch"], true);
    assert_eq!(
        reports[0]["verdicts"][0]["verdict"],
        "no verdict: sample ratio mismatch"
    );
    assert!(
        stderr.contains("SAMPLE RATIO MISMATCH in experiment e"),
        "{stderr}"
    );
    let o = llm_ab(&["report", "--records", s(&file), "--config", s(&config)]);
    let table = text(&o);
    assert!(
        table
            .lines()
            .nth(2)
            .is_some_and(|l| l.starts_with("!!! SAMPLE RATIO MISMATCH")),
        "first, loudly: {table}"
    );

    // Nothing lost: the units pass, while a request count, which treats
    // every request as independent, cries wolf on the same traffic
    // (χ²(1) ≥ 10.83 is p ≤ 0.001).
    let (lines, buckets, requests) = srm_experiment(0x0a0a_0016, 8000, 1.0);
    eprintln!(
        "A/A: χ² on buckets {:.2}, on requests {:.1}",
        chi2_half(buckets),
        chi2_half(requests)
    );
    assert!(chi2_half(requests) > 10.83);
    let file = write("srm-aa.jsonl", &lines);
    let (reports, _) = report_json(&["--records", s(&file), "--config", s(&config)]);
    assert_eq!(
        reports[0]["srm"]["mismatch"], false,
        "{}",
        reports[0]["srm"]
    );
    assert_ne!(
        reports[0]["verdicts"][0]["verdict"],
        "no verdict: sample ratio mismatch"
    );
}

/// A record of the hand-made outcomes experiment.
fn rec(trace: &str, variant: &str, bucket: u16, start: u64) -> String {
    json!({"trace_id": trace, "start_unix_ms": start, "experiment_id": "e", "assigned_variant": variant,
        "served_variant": variant, "reason": "hashed", "bucket": bucket, "outcome": "success",
        "latency_ms": 100, "cost_usd_est": 0.0, "tokens_in": 1, "tokens_out": 1})
    .to_string()
}

#[test]
fn outcomes_are_joined_by_trace_id_once_per_trace() {
    let t = |i: u32| format!("{i:032x}");
    let records = [
        rec(&t(1), "control", 6000, 1000),
        rec(&t(2), "control", 6000, 2000),
        rec(&t(3), "control", 6001, 3000),
        rec(&t(4), "treatment", 1, 1000),
        // One trace, two requests (an agent's loop): its outcomes count once.
        rec(&t(5), "treatment", 2, 5000),
        rec(&t(5), "treatment", 2, 3000),
        rec(&t(6), "treatment", 3, 3000),
    ]
    .join("\n");
    let outcomes = [
        json!({"trace_id": t(1), "metric": "purchase", "value": 10}).to_string(),
        json!({"trace_id": t(1), "metric": "purchase", "value": 5}).to_string(),
        json!({"trace_id": t(3), "metric": "purchase", "value": 2.5}).to_string(),
        json!({"trace_id": t(4), "metric": "purchase", "value": 4}).to_string(),
        json!({"trace_id": t(5), "metric": "purchase", "value": 1}).to_string(),
        json!({"trace_id": t(5), "metric": "signup", "value": 1}).to_string(),
        json!({"trace_id": t(99), "metric": "purchase", "value": 100}).to_string(),
        json!({"trace_id": t(2), "metric": "", "value": 1}).to_string(),
        "{\"trace_id\": \"truncated".to_string(),
    ]
    .join("\n");
    let (reports, stderr) = report_json(&[
        "--records",
        s(&write("outcomes-records.jsonl", &records)),
        "--outcomes",
        s(&write("outcomes.jsonl", &outcomes)),
    ]);
    let e = &reports[0];
    let value = |metric: &str, variant: &str| row(e, metric, variant)["value"].as_f64().unwrap();
    // Σ value ÷ requests of the variant; a request without an outcome is 0.
    assert!((value("purchase", "control") - 17.5 / 3.0).abs() < 1e-12);
    assert!((value("purchase", "treatment") - 5.0 / 4.0).abs() < 1e-12);
    assert_eq!(value("signup", "control"), 0.0);
    assert!((value("signup", "treatment") - 0.25).abs() < 1e-12);
    assert!(
        (row(e, "purchase", "treatment")["diff"].as_f64().unwrap() - (1.25 - 17.5 / 3.0)).abs()
            < 1e-12
    );
    assert_eq!(row(e, "purchase", "treatment")["role"], "guardrail");
    assert!(
        stderr.contains(
            "9 outcome lines, 2 unreadable; 1 outcome rows for trace ids no counted record has"
        ),
        "{stderr}"
    );
    // An outcome metric can be the primary one.
    let (reports, _) = report_json(&[
        "--records",
        s(&scratch("outcomes-records.jsonl")),
        "--outcomes",
        s(&scratch("outcomes.jsonl")),
        "--primary",
        "purchase",
    ]);
    assert_eq!(row(&reports[0], "purchase", "treatment")["role"], "primary");
}

#[test]
fn bad_input_is_counted_never_fatal() {
    let lines = [
        rec(&format!("{:032x}", 1), "control", 6000, 0),
        rec(&format!("{:032x}", 2), "treatment", 10, 0),
        "-".to_string(),
        "{\"trace_id\":\"00000000000000000000000000000003\",\"experiment_id\":\"e\",\"assign".to_string(),
        json!({"trace_id": "4", "experiment_id": "e", "assigned_variant": "control", "reason": "killed", "bucket": null}).to_string(),
        json!({"trace_id": "5", "experiment_id": "e", "assigned_variant": "control", "reason": "no_key", "bucket": null}).to_string(),
        json!({"trace_id": "6", "experiment_id": "e", "assigned_variant": "treatment", "reason": "forced", "bucket": null}).to_string(),
        json!({"trace_id": "7", "experiment_id": null, "reason": "default"}).to_string(),
        "{\"bucket\": \"not a number\"}".to_string(),
    ]
    .join("\n");
    // Read from standard input.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_llm-ab"))
        .args(["report", "--records", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("9 lines, 2 records counted; left out: 1 no_key, 1 forced, 1 without a bucket, 1 not in an experiment, 3 not records"),
        "{}",
        text(&o)
    );
    // Unusable arguments: one line, exit 2.
    let records = write("bad-input-records.jsonl", &lines);
    for args in [
        vec!["report", "--records", "/nonexistent.jsonl"],
        vec!["report", "--records", s(&records), "--primary", "nope"],
        vec![
            "report",
            "--aggregates",
            s(&write("bad-aggregates.csv", "a,b\n1,2\n")),
        ],
        vec!["report", "--records", s(&write("nothing.jsonl", "-\n"))],
    ] {
        let o = llm_ab(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .filter(|l| !l.contains(" lines, "))
                .count(),
            1,
            "{args:?}: {}",
            text(&o)
        );
    }
}

/// The project's Python with DuckDB; fails (not skips) without it.
fn python_with_duckdb() -> PathBuf {
    let python = std::env::var_os("LLM_AB_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::repo().join(".venv/bin/python"));
    let ok = std::process::Command::new(&python)
        .args(["-c", "import duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "DuckDB not found with {} (run `make setup`, which installs requirements.txt into .venv)",
        python.display()
    );
    python
}

/// Loads the records and outcomes into DuckDB tables of the record's
/// fields and writes the shipped query's result as CSV and as JSON lines.
const DUCKDB_DRIVER: &str = r#"
import json, sys, duckdb
records, outcomes, sql_path, csv_out, json_out = sys.argv[1:]
clean = records + ".objects"
with open(records) as src, open(clean, "w") as dst:
    for line in src:
        try:
            if isinstance(json.loads(line), dict):
                dst.write(line)
        except ValueError:
            pass  # what a log pipeline drops: not a JSON object
con = duckdb.connect()
columns = {"trace_id": "VARCHAR", "start_unix_ms": "BIGINT", "experiment_id": "VARCHAR",
           "assigned_variant": "VARCHAR", "reason": "VARCHAR", "bucket": "BIGINT", "unit_id": "VARCHAR",
           "outcome": "VARCHAR", "schema_pass": "BOOLEAN", "cost_usd_est": "DOUBLE", "tokens_in": "BIGINT",
           "tokens_out": "BIGINT", "latency_ms": "BIGINT"}
con.execute("CREATE TABLE llm_ab_records AS SELECT * FROM read_json(?, format='newline_delimited', columns=?)",
            [clean, columns])
con.execute("CREATE TABLE llm_ab_outcomes AS SELECT * FROM read_json(?, format='newline_delimited', columns=?)",
            [outcomes, {"trace_id": "VARCHAR", "metric": "VARCHAR", "value": "DOUBLE"}])
sql = open(sql_path).read()
con.execute(f"COPY ({sql}) TO '{csv_out}' (HEADER)")
con.execute(f"COPY ({sql}) TO '{json_out}' (FORMAT JSON)")
"#;

#[test]
fn aggregates_from_duckdb_running_the_shipped_sql_give_the_records_report() {
    let python = python_with_duckdb();
    // Three variants (two treatment lanes), three days, unit ids, schema
    // checks, two outcome metrics, left-out and broken lines.
    let config = r#"{"default_cluster": "a", "experiments": [{"id": "chat", "sticky_keys": ["x-user-id"],
      "variants": [{"name": "control", "weight": 50, "cluster": "a"}, {"name": "b", "weight": 25, "cluster": "b"},
                   {"name": "c", "weight": 25, "cluster": "c"}]}]}"#;
    let plan = llm_ab::config::load(config.as_bytes()).unwrap();
    let layout = &plan.experiments[0].layout;
    let names = ["control", "b", "c"];
    let mut rng = Rng(0xd0c_0016);
    let (mut records, mut outcomes) = (String::new(), String::new());
    let outcomes_list = ["purchase", "thumbs_up"];
    let outcome_kinds = [
        "success", "success", "success", "error", "refusal", "blocked", "fallback", "invalid",
    ];
    let mut trace = 1u64;
    for user in 0..1500u64 {
        let bucket = rng.below(10_000) as u16;
        let variant = names[layout.variant_of(bucket)];
        let unit = format!("{:016x}", user.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let n = (rng.pareto(1.3) as usize).clamp(1, 300);
        for _ in 0..n {
            let start = 1_767_225_600_000 + (rng.unit() * 3.0 * 86_400_000.0) as u64;
            let schema = match rng.below(3) {
                0 => Value::Null,
                1 => json!(true),
                _ => json!(false),
            };
            let r = json!({"trace_id": format!("{trace:032x}"), "request_id": "x", "start_unix_ms": start,
                "experiment_id": "chat", "assigned_variant": variant, "served_variant": variant,
                "reason": "hashed", "bucket": bucket, "unit_id": unit, "model": "m",
                "tokens_in": rng.below(2000), "tokens_out": rng.below(500),
                "cost_usd_est": rng.unit() * 1e-3, "latency_ms": (200.0 * rng.pareto(2.0)) as u64,
                "status": 200, "outcome": outcome_kinds[rng.below(outcome_kinds.len())],
                "schema_pass": schema});
            let _ = writeln!(records, "{r}");
            if rng.unit() < 0.15 {
                let metric = outcomes_list[rng.below(2)];
                let value = (rng.unit() * 100.0 * 1000.0).round() / 1000.0;
                let _ = writeln!(
                    outcomes,
                    "{}",
                    json!({"trace_id": format!("{trace:032x}"), "metric": metric, "value": value})
                );
            }
            if rng.unit() < 0.01 {
                // A second request of the same trace, later.
                let mut again = r.clone();
                again["start_unix_ms"] = json!(start + 500);
                let _ = writeln!(records, "{again}");
            }
            trace += 1;
        }
    }
    records.push_str("-\n{\"trace_id\":\"truncated\n");
    let _ = writeln!(
        records,
        "{}",
        json!({"trace_id": "nk", "experiment_id": "chat", "assigned_variant": "control", "reason": "no_key", "bucket": null})
    );
    let _ = writeln!(
        records,
        "{}",
        json!({"trace_id": format!("{:032x}", 3), "experiment_id": "chat", "assigned_variant": "b", "reason": "forced", "bucket": null})
    );
    let _ = writeln!(
        outcomes,
        "{}",
        json!({"trace_id": "unknown", "metric": "purchase", "value": 1})
    );

    let records_file = write("warehouse-records.jsonl", &records);
    let outcomes_file = write("warehouse-outcomes.jsonl", &outcomes);
    let config_file = write("warehouse-config.json", config);
    let (csv, jsonl) = (scratch("aggregates.csv"), scratch("aggregates.jsonl"));
    let o = std::process::Command::new(&python)
        .arg("-c")
        .arg(DUCKDB_DRIVER)
        .args([
            s(&records_file),
            s(&outcomes_file),
            s(&support::repo().join("analysis/aggregate.sql")),
            s(&csv),
            s(&jsonl),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "DuckDB: {}", text(&o));

    for format in ["json", "table", "markdown"] {
        let run = |source: &[&str]| {
            let mut args = vec!["report"];
            args.extend_from_slice(source);
            args.extend_from_slice(&["--config", s(&config_file), "--format", format]);
            let o = llm_ab(&args);
            assert!(o.status.success(), "{}", text(&o));
            String::from_utf8(o.stdout).unwrap()
        };
        let from_records = run(&[
            "--records",
            s(&records_file),
            "--outcomes",
            s(&outcomes_file),
        ]);
        assert_eq!(
            from_records,
            run(&["--aggregates", s(&csv)]),
            "{format}: CSV"
        );
        assert_eq!(
            from_records,
            run(&["--aggregates", s(&jsonl)]),
            "{format}: JSON lines"
        );
        if format == "json" {
            let v: Value = serde_json::from_str(&from_records).unwrap();
            let e = &v[0];
            assert_eq!(e["srm"]["unit"], "unit_id");
            assert_eq!(e["variants"].as_array().unwrap().len(), 3);
            let days: BTreeSet<&str> = e["over_time"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p["day"].as_str())
                .collect();
            assert_eq!(days.len(), 3, "{days:?}");
            assert!(row(e, "schema_pass_rate", "b")["value"].as_f64().is_some());
            assert!(row(e, "thumbs_up", "c")["p_value"].as_f64().is_some());
        }
    }
}

#[test]
fn records_of_a_real_gateway_with_unit_ids_and_the_apps_outcomes() {
    let config = r#"{
      "default_cluster": "model_a",
      "override": {"variant_header": "x-llm-variant-override", "token_header": "x-llm-override-token", "token": "s3cret-token"},
      "experiments": [{
        "id": "chat-q4", "match": {"path_prefix": "/v1/chat/completions"}, "sticky_keys": ["x-user-id"],
        "unit_id_key": "a-unit-id-key-for-the-tests",
        "variants": [
          {"name": "control",   "weight": 50, "cluster": "model_a"},
          {"name": "candidate", "weight": 50, "cluster": "model_b"}
        ]
      }]
    }"#;
    let a = support::MockBackend::start("model_a", 0).unwrap();
    let b = support::MockBackend::start("model_b", 0).unwrap();
    let envoy = support::Envoy::start(config, &[("model_a", a.port()), ("model_b", b.port())]);
    let body = r#"{"model":"x","messages":[{"role":"user","content":"hi"}]}"#;
    let mut sent: BTreeMap<String, (u64, u64)> = BTreeMap::new(); // variant → requests, failures
    let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut outcomes = String::new();
    let mut purchases: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..80u32 {
        let user = format!("user-{}@example.com", i % 20);
        let trace = format!("{:032x}", 0xabc0_0000 + i);
        let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
        let status = if i % 9 == 0 { "500" } else { "200" };
        let headers = [
            ("x-user-id", user.as_str()),
            ("traceparent", traceparent.as_str()),
            ("x-mock-status", status),
        ];
        envoy.chat(&headers, body);
        let variant = support::expected_variant(config, &headers);
        let entry = sent.entry(variant.clone()).or_default();
        entry.0 += 1;
        entry.1 += u64::from(status == "500");
        users
            .entry(variant.clone())
            .or_default()
            .insert(user.clone());
        if i % 3 == 0 {
            // The app logs a business outcome under the trace id it sent.
            let _ = writeln!(
                outcomes,
                "{}",
                json!({"trace_id": trace, "metric": "purchase", "value": 1})
            );
            *purchases.entry(variant).or_default() += 1;
        }
    }
    // Left out: no sticky key, and a forced variant.
    envoy.chat(&[], body);
    envoy.chat(
        &[
            ("x-user-id", "user-1@example.com"),
            ("x-llm-variant-override", "candidate"),
            ("x-llm-override-token", "s3cret-token"),
        ],
        body,
    );
    let lines = envoy.access_log_lines(82);
    assert_eq!(lines.len(), 82, "{lines:?}");
    let log = lines.join("\n");
    assert!(
        !log.contains("example.com"),
        "no raw user id in the records"
    );

    // Every hashed record has its user's unit id: HMAC-SHA256 of the
    // sticky key under the configured key, as Python's hmac computes it.
    let python = python_with_duckdb();
    let want = std::process::Command::new(&python)
        .args([
            "-c",
            "import hmac; print(hmac.new(b'a-unit-id-key-for-the-tests', b'user-3@example.com', 'sha256').hexdigest()[:16])",
        ])
        .output()
        .unwrap();
    let want = String::from_utf8_lossy(&want.stdout).trim().to_string();
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in &lines {
        let r: Value = serde_json::from_str(l).unwrap();
        assert!(
            r["start_unix_ms"].as_u64().unwrap() > 1_700_000_000_000,
            "{r}"
        );
        if r["reason"] == "hashed" {
            let id = r["unit_id"].as_str().unwrap().to_string();
            assert!(
                id.len() == 16 && id.bytes().all(|c| c.is_ascii_hexdigit()),
                "{r}"
            );
            ids.entry(r["trace_id"].as_str().unwrap()[28..].to_string())
                .or_default()
                .insert(id);
        } else {
            assert!(
                r.get("unit_id").is_none(),
                "no unit id without a sticky key's hash: {r}"
            );
        }
    }
    // user-3's requests are i = 3, 23, 43, 63.
    for i in [3u32, 23, 43, 63] {
        let tail = format!("{:04x}", (0xabc0_0000u32 + i) & 0xffff);
        assert_eq!(ids[&tail], BTreeSet::from([want.clone()]), "request {i}");
    }

    let records = write("gateway-records.jsonl", &(log + "\n"));
    let outcomes_file = write("gateway-outcomes.jsonl", &outcomes);
    let config_file = write("gateway-config.json", config);
    let (reports, stderr) = report_json(&[
        "--records",
        s(&records),
        "--outcomes",
        s(&outcomes_file),
        "--config",
        s(&config_file),
    ]);
    assert!(
        stderr.contains("82 lines, 80 records counted; left out: 1 no_key, 1 forced"),
        "{stderr}"
    );
    let e = &reports[0];
    assert_eq!(e["experiment"], "chat-q4");
    assert_eq!(e["srm"]["unit"], "unit_id");
    for v in e["variants"].as_array().unwrap() {
        let name = v["variant"].as_str().unwrap();
        let (n, failed) = sent[name];
        assert_eq!(v["requests"], n, "{v}");
        assert_eq!(v["units"], users[name].len() as u64, "{v}");
        let error_rate = row(e, "error_rate", name)["value"].as_f64().unwrap();
        assert!(
            (error_rate - failed as f64 / n as f64).abs() < 1e-12,
            "{name}"
        );
        let purchase = row(e, "purchase", name)["value"].as_f64().unwrap();
        assert!(
            (purchase - purchases[name] as f64 / n as f64).abs() < 1e-12,
            "{name}"
        );
    }
}
