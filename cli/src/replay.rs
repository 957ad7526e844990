//! `llm-ab replay`: an offline eval set sent through the real gateway once
//! per variant (forced with the token-guarded override header), scored by
//! each case's checks.

use llm_ab::usage::{Tokens, TokensSource, UsageJson};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Arguments of `llm-ab replay`.
#[derive(clap::Args)]
pub struct Args {
    /// JSONL eval set: one case per line.
    #[arg(long)]
    dataset: std::path::PathBuf,
    /// Gateway base URL (cases are POSTed to /v1/chat/completions under it).
    #[arg(long)]
    gateway: String,
    /// Variants to force, comma-separated; the first is the baseline.
    #[arg(long, value_delimiter = ',', required = true)]
    variants: Vec<String>,
    /// The override token of the filter configuration.
    #[arg(long)]
    token: String,
    /// Write the JSON result here.
    #[arg(long)]
    output: Option<std::path::PathBuf>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Exit 1 when a variant's pass rate is more than PCT points below the baseline's.
    #[arg(long, value_name = "PCT")]
    fail_if_worse: Option<f64>,
    /// Override header naming the variant.
    #[arg(long, default_value = "x-llm-variant-override")]
    variant_header: String,
    /// Override header carrying the token.
    #[arg(long, default_value = "x-llm-override-token")]
    token_header: String,
    /// The filter configuration, to price tokens with its `pricing` table
    /// and each variant's `model`.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

/// One eval case.
struct Case {
    id: String,
    body: Value,
    checks: Value,
}

/// How one case went for one variant.
#[derive(Debug, Clone, Serialize)]
struct Outcome {
    id: String,
    variant: String,
    status: u16,
    passed: bool,
    failures: Vec<String>,
    latency_ms: u64,
    tokens_in: u64,
    tokens_in_cached: u64,
    tokens_in_cache_write: u64,
    tokens_out: u64,
    tokens_reasoning: u64,
}

/// One variant's summary.
#[derive(Debug, Clone, Serialize)]
struct Summary {
    cases: usize,
    passed: usize,
    pass_rate: f64,
    p50_ms: u64,
    p95_ms: u64,
    tokens_in: u64,
    tokens_in_cached: u64,
    tokens_in_cache_write: u64,
    tokens_out: u64,
    tokens_reasoning: u64,
    /// Estimated cost in USD, when `--config` gives the pricing.
    cost_usd: Option<f64>,
}

/// The estimated cost of `variant`'s tokens under the configuration's pricing.
fn cost(plan: &llm_ab::config::Plan, variant: &str, tokens: &Tokens) -> Option<f64> {
    let model = plan
        .experiments
        .iter()
        .flat_map(|e| e.variants.iter())
        .find(|v| v.name == variant)?
        .model
        .clone()?;
    Some(plan.cost_usd(Some(&model), tokens))
}

fn load(path: &std::path::Path) -> Result<Vec<Case>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: not JSON ({e})", path.display(), i + 1))?;
        let body = match (&v["request"], &v["messages"]) {
            (Value::Object(_), _) => v["request"].clone(),
            (_, Value::Array(m)) => json!({"model": "replay", "messages": m}),
            _ => {
                return Err(format!(
                    "{} line {}: needs \"messages\" or \"request\"",
                    path.display(),
                    i + 1
                ))
            }
        };
        cases.push(Case {
            id: v["id"]
                .as_str()
                .map_or_else(|| format!("case-{}", i + 1), str::to_string),
            body,
            checks: v["checks"].clone(),
        });
    }
    if cases.is_empty() {
        return Err(format!("{}: no cases", path.display()));
    }
    Ok(cases)
}

/// Scores an answer against a case's checks; returns the failures.
fn score(checks: &Value, content: &str, latency_ms: u64) -> Vec<String> {
    let mut failures = Vec::new();
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    for needle in list(&checks["contains"]) {
        if !content.to_lowercase().contains(&needle.to_lowercase()) {
            failures.push(format!("does not contain {needle:?}"));
        }
    }
    for pattern in list(&checks["regex"]) {
        match regex_lite::Regex::new(&pattern) {
            Ok(re) if re.is_match(content) => {}
            Ok(_) => failures.push(format!("does not match /{pattern}/")),
            Err(e) => failures.push(format!("bad regex /{pattern}/: {e}")),
        }
    }
    if let Some(want) = checks["equals"].as_str() {
        if content.trim() != want.trim() {
            failures.push("not equal to the expected answer".into());
        }
    }
    if checks["json_schema"].is_object() {
        // The filter's own schema checker, on the filter's own values.
        let schema = llm_ab::json::parse(&checks["json_schema"].to_string());
        match (schema, llm_ab::json::parse(content)) {
            (Ok(schema), Ok(doc)) => {
                if let Err(why) = llm_ab::guard::schema::validate(&schema, &doc) {
                    failures.push(format!("schema: {why}"));
                }
            }
            _ => failures.push("answer is not JSON".into()),
        }
    }
    if let Some(max) = checks["max_latency_ms"].as_u64() {
        if latency_ms > max {
            failures.push(format!("took {latency_ms} ms (max {max})"));
        }
    }
    failures
}

fn send(args: &Args, agent: &ureq::Agent, case: &Case, variant: &str) -> Outcome {
    let url = format!("{}/v1/chat/completions", args.gateway.trim_end_matches('/'));
    let start = Instant::now();
    let result = agent
        .post(&url)
        .header("content-type", "application/json")
        .header(&args.variant_header, variant)
        .header(&args.token_header, &args.token)
        .header("x-user-id", &format!("replay-{}", case.id))
        .send(case.body.to_string());
    let latency_ms = start.elapsed().as_millis() as u64;
    let (status, body) = match result {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            (status, resp.body_mut().read_to_string().unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    };
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let content = v["choices"][0]["message"]["content"].as_str().unwrap_or("");
    let mut failures = if status == 200 {
        score(&case.checks, content, latency_ms)
    } else if status == 0 {
        vec![format!("gateway unreachable: {body}")]
    } else {
        vec![format!("status {status}")]
    };
    if status == 200 && v["choices"].is_null() {
        failures.push("no choices in the answer".into());
    }
    // The provider's usage, read by the filter's own parser.
    let usage = Tokens::from_usage(
        &llm_ab::json::read::from_str::<UsageJson>(&v["usage"].to_string()).unwrap_or_default(),
    );
    Outcome {
        id: case.id.clone(),
        variant: variant.to_string(),
        status,
        passed: failures.is_empty(),
        failures,
        latency_ms,
        tokens_in: usage.input,
        tokens_in_cached: usage.cached,
        tokens_in_cache_write: usage.cache_write,
        tokens_out: usage.output,
        tokens_reasoning: usage.reasoning,
    }
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Runs the replay.
pub fn run(args: &Args) -> Result<ExitCode, String> {
    let cases = load(&args.dataset)?;
    let plan = match &args.config {
        Some(path) => {
            let bytes =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Some(llm_ab::config::load(&bytes).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let tty = std::io::stderr().is_terminal();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for variant in &args.variants {
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let results = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..args.concurrency.max(1) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let outcome = send(args, &agent, case, variant);
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(outcome);
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    if tty {
                        eprint!("\r{variant}: {n}/{} ", cases.len());
                    }
                });
            }
        });
        if tty {
            eprintln!();
        }
        outcomes.extend(results.into_inner().unwrap_or_else(|p| p.into_inner()));
    }
    if outcomes.iter().all(|o| o.status == 0) {
        let why = outcomes
            .first()
            .map_or("no answer", |o| o.failures[0].as_str());
        return Err(format!("gateway {} unreachable: {why}", args.gateway));
    }
    let mut summaries: BTreeMap<String, Summary> = BTreeMap::new();
    for variant in &args.variants {
        let mine: Vec<&Outcome> = outcomes.iter().filter(|o| &o.variant == variant).collect();
        let mut lat: Vec<u64> = mine.iter().map(|o| o.latency_ms).collect();
        lat.sort_unstable();
        let passed = mine.iter().filter(|o| o.passed).count();
        let tokens = Tokens {
            input: mine.iter().map(|o| o.tokens_in).sum(),
            cached: mine.iter().map(|o| o.tokens_in_cached).sum(),
            cache_write: mine.iter().map(|o| o.tokens_in_cache_write).sum(),
            output: mine.iter().map(|o| o.tokens_out).sum(),
            reasoning: mine.iter().map(|o| o.tokens_reasoning).sum(),
            source: TokensSource::Usage,
        };
        summaries.insert(
            variant.clone(),
            Summary {
                cases: mine.len(),
                passed,
                pass_rate: passed as f64 / mine.len().max(1) as f64,
                p50_ms: percentile(&lat, 0.5),
                p95_ms: percentile(&lat, 0.95),
                tokens_in: tokens.input,
                tokens_in_cached: tokens.cached,
                tokens_in_cache_write: tokens.cache_write,
                tokens_out: tokens.output,
                tokens_reasoning: tokens.reasoning,
                cost_usd: plan.as_ref().and_then(|p| cost(p, variant, &tokens)),
            },
        );
    }
    println!(
        "{:<14} {:>6} {:>7} {:>9} {:>8} {:>8} {:>10} {:>10} {:>10}",
        "variant",
        "cases",
        "passed",
        "pass rate",
        "p50 ms",
        "p95 ms",
        "tokens in",
        "tokens out",
        "cost $"
    );
    for variant in &args.variants {
        if let Some(s) = summaries.get(variant) {
            let cost = s.cost_usd.map_or("-".to_string(), |c| format!("{c:.6}"));
            println!(
                "{:<14} {:>6} {:>7} {:>8.1}% {:>8} {:>8} {:>10} {:>10} {:>10}",
                variant,
                s.cases,
                s.passed,
                s.pass_rate * 100.0,
                s.p50_ms,
                s.p95_ms,
                s.tokens_in,
                s.tokens_out,
                cost
            );
        }
    }
    if let Some(path) = &args.output {
        let result = json!({"variants": summaries, "cases": outcomes});
        let text = serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let (Some(pct), Some(base)) = (
        args.fail_if_worse,
        args.variants.first().and_then(|v| summaries.get(v)),
    ) {
        for variant in args.variants.iter().skip(1) {
            if let Some(s) = summaries.get(variant) {
                let drop = (base.pass_rate - s.pass_rate) * 100.0;
                if drop > pct {
                    println!("{variant} passes {drop:.1} points fewer cases than {}: failing (limit {pct})", args.variants[0]);
                    return Ok(ExitCode::from(1));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_score_answers() {
        let checks = json!({"contains": ["paris"], "regex": "^The", "max_latency_ms": 100});
        assert!(score(&checks, "The capital is Paris.", 10).is_empty());
        assert_eq!(score(&checks, "It is Lyon", 500).len(), 3);
        let schema = json!({"json_schema": {"type": "object", "required": ["a"]}});
        assert!(score(&schema, r#"{"a": 1}"#, 1).is_empty());
        assert_eq!(score(&schema, "nope", 1), vec!["answer is not JSON"]);
        assert_eq!(
            score(&json!({"equals": " 42 "}), "42", 1),
            Vec::<String>::new()
        );
    }

    #[test]
    fn percentiles() {
        assert_eq!(percentile(&[1, 2, 3, 4], 0.5), 2);
        assert_eq!(percentile(&[1, 2, 3, 4], 0.95), 4);
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
