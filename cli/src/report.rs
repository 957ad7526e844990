//! The experiment report: per experiment and variant, rates with 95 %
//! intervals, the difference from control with a two-proportion test,
//! latency and TTFT percentiles, tokens and cost per 1,000 requests, and a
//! verdict per treatment.

use crate::prom::Sample;
use crate::stats::{histogram_quantile, sample_size, two_proportion_p, wilson};
use serde::Serialize;
use std::collections::BTreeMap;

/// What the live report's intervals are, said wherever it is shown.
pub const REQUEST_LEVEL_NOTE: &str = "note: these intervals are request-level: they treat every request as an independent trial, but a user's requests are not (heavy users make them several times too narrow). Decide with `llm-ab report --records` (users' buckets as units, always-valid intervals).";

/// Outcomes whose rates are reported.
pub const OUTCOMES: [&str; 6] = [
    "success", "error", "fallback", "refusal", "blocked", "invalid",
];

/// A rate with its 95 % Wilson interval.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Rate {
    /// Events.
    pub count: u64,
    /// Events / finished requests.
    pub value: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl Rate {
    fn of(count: u64, n: u64) -> Rate {
        let (low, high) = wilson(count, n);
        Rate {
            count,
            value: if n == 0 { 0.0 } else { count as f64 / n as f64 },
            low,
            high,
        }
    }
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<f64>,
    /// 95th.
    pub p95: Option<f64>,
    /// 99th.
    pub p99: Option<f64>,
}

/// One variant.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VariantReport {
    /// Name.
    pub variant: String,
    /// Requests routed to it.
    pub requests: u64,
    /// Requests that finished (the denominator of the rates).
    pub finished: u64,
    /// Outcome rates.
    pub rates: BTreeMap<String, Rate>,
    /// Output schema pass rate, when checks ran.
    pub schema_pass: Option<Rate>,
    /// Success rate minus control's, with the two-proportion p-value.
    pub vs_control: Option<Comparison>,
    /// End-to-end latency.
    pub latency_ms: Percentiles,
    /// Time to first token of streams.
    pub ttft_ms: Percentiles,
    /// Prompt tokens per 1,000 finished requests.
    pub tokens_in_per_1k: f64,
    /// Share of prompt tokens the provider served from its prompt cache.
    pub cached_share: f64,
    /// Completion tokens per 1,000 finished requests.
    pub tokens_out_per_1k: f64,
    /// Reasoning tokens (part of the completion tokens) per 1,000 finished requests.
    pub tokens_reasoning_per_1k: f64,
    /// Estimated cost per 1,000 finished requests, USD.
    pub cost_usd_per_1k: f64,
    /// `better`, `worse`, `not yet significant`, or `control`.
    pub verdict: String,
    /// Finished requests per arm still needed to detect `min_effect`.
    pub needed_per_arm: Option<u64>,
}

/// A treatment against control on the success rate.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Comparison {
    /// Difference in success rate (treatment − control).
    pub success_diff: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// One experiment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExperimentReport {
    /// Experiment id.
    pub experiment: String,
    /// The control variant's name.
    pub control: String,
    /// Variants, control first.
    pub variants: Vec<VariantReport>,
    /// Shadow variants scored against control's answers, when any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadow: Vec<crate::shadow::ShadowReport>,
}

/// A sample's label value (empty when absent).
pub fn label<'a>(s: &'a Sample, key: &str) -> &'a str {
    s.labels.get(key).map_or("", String::as_str)
}

/// The cumulative buckets `(le, count)` of histogram `name` for a variant, sorted.
pub fn buckets(samples: &[Sample], name: &str, e: &str, v: &str) -> Vec<(f64, f64)> {
    let mut b: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.name == name && label(s, "experiment") == e && label(s, "variant") == v)
        .filter_map(|s| {
            let le = match label(s, "le") {
                "+Inf" => f64::INFINITY,
                x => x.parse().ok()?,
            };
            Some((le, s.value))
        })
        .collect();
    b.sort_by(|a, b| a.0.total_cmp(&b.0));
    b
}

fn percentiles(b: &[(f64, f64)]) -> Percentiles {
    Percentiles {
        p50: histogram_quantile(b, 0.50),
        p95: histogram_quantile(b, 0.95),
        p99: histogram_quantile(b, 0.99),
    }
}

/// Builds the reports from `/stats/prometheus` samples. `control` names the
/// control variant (default: a variant named `control`, else the first).
pub fn build(samples: &[Sample], control: Option<&str>, min_effect: f64) -> Vec<ExperimentReport> {
    let mut variants: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name.starts_with("llm_ab_")) {
        let (e, v) = (label(s, "experiment"), label(s, "variant"));
        if !e.is_empty() && !v.is_empty() {
            let list = variants.entry(e.to_string()).or_default();
            if !list.iter().any(|x| x == v) {
                list.push(v.to_string());
            }
        }
    }
    let sum = |name: &str, e: &str, v: &str, extra: Option<(&str, &str)>| -> u64 {
        samples
            .iter()
            .filter(|s| s.name == name && label(s, "experiment") == e && label(s, "variant") == v)
            .filter(|s| extra.is_none_or(|(k, x)| label(s, k) == x))
            .map(|s| s.value.max(0.0) as u64)
            .sum()
    };
    let mut out = Vec::new();
    for (e, mut names) in variants {
        names.sort();
        let control_name = control
            .filter(|c| names.iter().any(|n| n == c))
            .map(str::to_string)
            .or_else(|| names.iter().find(|n| *n == "control").cloned())
            .unwrap_or_else(|| names[0].clone());
        names.retain(|n| *n != control_name);
        names.insert(0, control_name.clone());
        let mut reports: Vec<VariantReport> = names
            .iter()
            .map(|v| {
                let finished: u64 = OUTCOMES
                    .iter()
                    .map(|o| sum("llm_ab_outcomes", &e, v, Some(("outcome", o))))
                    .sum();
                let rates = OUTCOMES
                    .iter()
                    .map(|o| {
                        let c = sum("llm_ab_outcomes", &e, v, Some(("outcome", o)));
                        (o.to_string(), Rate::of(c, finished))
                    })
                    .collect();
                let (pass, fail) = (
                    sum(
                        "llm_ab_schema_checks",
                        &e,
                        v,
                        Some(("schema_result", "pass")),
                    ),
                    sum(
                        "llm_ab_schema_checks",
                        &e,
                        v,
                        Some(("schema_result", "fail")),
                    ),
                );
                let per_1k = |x: u64| {
                    if finished == 0 {
                        0.0
                    } else {
                        x as f64 * 1000.0 / finished as f64
                    }
                };
                VariantReport {
                    variant: v.clone(),
                    requests: sum("llm_ab_requests", &e, v, None),
                    finished,
                    rates,
                    schema_pass: (pass + fail > 0).then(|| Rate::of(pass, pass + fail)),
                    vs_control: None,
                    latency_ms: percentiles(&buckets(samples, "llm_ab_latency_ms_bucket", &e, v)),
                    ttft_ms: percentiles(&buckets(samples, "llm_ab_ttft_ms_bucket", &e, v)),
                    tokens_in_per_1k: per_1k(sum("llm_ab_tokens_in", &e, v, None)),
                    cached_share: {
                        let input = sum("llm_ab_tokens_in", &e, v, None);
                        let cached = sum("llm_ab_tokens_in_cached", &e, v, None);
                        if input == 0 {
                            0.0
                        } else {
                            cached as f64 / input as f64
                        }
                    },
                    tokens_out_per_1k: per_1k(sum("llm_ab_tokens_out", &e, v, None)),
                    tokens_reasoning_per_1k: per_1k(sum("llm_ab_tokens_reasoning", &e, v, None)),
                    cost_usd_per_1k: per_1k(sum("llm_ab_cost_micro_usd", &e, v, None)) / 1e6,
                    verdict: "control".into(),
                    needed_per_arm: None,
                }
            })
            .collect();
        let (c_ok, c_n) = {
            let c = &reports[0];
            (c.rates.get("success").map_or(0, |r| r.count), c.finished)
        };
        for r in reports.iter_mut().skip(1) {
            let ok = r.rates.get("success").map_or(0, |r| r.count);
            let p = two_proportion_p(ok, r.finished, c_ok, c_n);
            let diff = r.rates.get("success").map_or(0.0, |r| r.value)
                - if c_n == 0 {
                    0.0
                } else {
                    c_ok as f64 / c_n as f64
                };
            r.vs_control = Some(Comparison {
                success_diff: diff,
                p_value: p,
            });
            let base = if c_n == 0 {
                0.5
            } else {
                c_ok as f64 / c_n as f64
            };
            let needed = sample_size(
                base,
                if base + min_effect > 1.0 {
                    -min_effect
                } else {
                    min_effect
                },
            );
            if p < 0.05 && r.finished > 0 && c_n > 0 {
                r.verdict = if diff > 0.0 {
                    "better".into()
                } else {
                    "worse".into()
                };
            } else {
                r.verdict = "not yet significant".into();
                r.needed_per_arm = Some(needed);
            }
        }
        out.push(ExperimentReport {
            shadow: crate::shadow::build(samples, &e, &control_name),
            experiment: e,
            control: control_name,
            variants: reports,
        });
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn ms(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.0}"))
}

/// One text line per verdict, e.g. `candidate vs control: worse (success -12.0 pts, p=0.0012)`.
pub fn verdict_line(r: &VariantReport, control: &str, min_effect: f64) -> String {
    match (&r.vs_control, r.verdict.as_str()) {
        (Some(c), "not yet significant") => format!(
            "{} vs {control}: not yet significant (success {:+.1} pts, p={:.3}; about {} finished requests per arm needed to detect ±{:.1} pts)",
            r.variant,
            c.success_diff * 100.0,
            c.p_value,
            r.needed_per_arm.unwrap_or(0),
            min_effect * 100.0
        ),
        (Some(c), v) => format!(
            "{} vs {control}: {v} (success {:+.1} pts, p={:.4})",
            r.variant,
            c.success_diff * 100.0,
            c.p_value
        ),
        (None, _) => format!("{}: control", r.variant),
    }
}

/// Plain-text or Markdown tables.
pub fn render_table(reports: &[ExperimentReport], markdown: bool, min_effect: f64) -> String {
    let mut out = String::new();
    let header = [
        "variant",
        "requests",
        "success (95% CI)",
        "error",
        "fallback",
        "refusal",
        "blocked",
        "schema pass",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "TTFT p50",
        "tok in/1k",
        "cached",
        "tok out/1k",
        "reasoning/1k",
        "$/1k",
    ];
    for e in reports {
        out.push_str(&format!(
            "{}experiment {} (control: {})\n\n",
            if markdown { "### " } else { "" },
            e.experiment,
            e.control
        ));
        let rows: Vec<Vec<String>> = e
            .variants
            .iter()
            .map(|v| {
                let rate = |k: &str| v.rates.get(k).map_or("-".into(), |r| pct(r.value));
                let success = v.rates.get("success").map_or("-".into(), |r| {
                    format!("{} [{}, {}]", pct(r.value), pct(r.low), pct(r.high))
                });
                vec![
                    v.variant.clone(),
                    v.requests.to_string(),
                    success,
                    rate("error"),
                    rate("fallback"),
                    rate("refusal"),
                    rate("blocked"),
                    v.schema_pass.map_or("-".into(), |r| pct(r.value)),
                    ms(v.latency_ms.p50),
                    ms(v.latency_ms.p95),
                    ms(v.latency_ms.p99),
                    ms(v.ttft_ms.p50),
                    format!("{:.0}", v.tokens_in_per_1k),
                    pct(v.cached_share),
                    format!("{:.0}", v.tokens_out_per_1k),
                    format!("{:.0}", v.tokens_reasoning_per_1k),
                    format!("{:.4}", v.cost_usd_per_1k),
                ]
            })
            .collect();
        crate::unit_report::table(&header, &rows, markdown, &mut out);
        out.push('\n');
        for v in e.variants.iter().skip(1) {
            out.push_str(&format!(
                "{}{}\n",
                if markdown { "- " } else { "" },
                verdict_line(v, &e.control, min_effect)
            ));
        }
        out.push('\n');
        out.push_str(&crate::shadow::render(&e.shadow, &e.control, markdown));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prom::parse;

    const STATS: &str = r#"
llm_ab_requests{experiment="e",variant="control",reason="hashed"} 1000
llm_ab_requests{experiment="e",variant="candidate",reason="hashed"} 1000
llm_ab_outcomes{experiment="e",variant="control",outcome="success"} 950
llm_ab_outcomes{experiment="e",variant="control",outcome="error"} 50
llm_ab_outcomes{experiment="e",variant="candidate",outcome="success"} 900
llm_ab_outcomes{experiment="e",variant="candidate",outcome="error"} 100
llm_ab_tokens_in{experiment="e",variant="control"} 50000
llm_ab_tokens_in_cached{experiment="e",variant="control"} 20000
llm_ab_tokens_out{experiment="e",variant="control"} 8000
llm_ab_tokens_reasoning{experiment="e",variant="control"} 3000
llm_ab_cost_micro_usd{experiment="e",variant="control"} 2000000
llm_ab_latency_ms_bucket{experiment="e",variant="control",le="100"} 500
llm_ab_latency_ms_bucket{experiment="e",variant="control",le="200"} 1000
llm_ab_latency_ms_bucket{experiment="e",variant="control",le="+Inf"} 1000
"#;

    #[test]
    fn report_numbers() {
        let reports = build(&parse(STATS).unwrap_or_default(), None, 0.02);
        assert_eq!(reports.len(), 1);
        let e = &reports[0];
        assert_eq!(e.control, "control");
        let (c, t) = (&e.variants[0], &e.variants[1]);
        assert_eq!(
            (c.variant.as_str(), t.variant.as_str()),
            ("control", "candidate")
        );
        assert_eq!(c.rates["success"].value, 0.95);
        assert_eq!(c.tokens_in_per_1k, 50_000.0);
        assert_eq!(c.cached_share, 0.4);
        assert_eq!(c.tokens_reasoning_per_1k, 3_000.0);
        assert_eq!(t.cached_share, 0.0);
        assert!((c.cost_usd_per_1k - 2.0).abs() < 1e-9);
        assert_eq!(c.latency_ms.p50, Some(100.0));
        let cmp = t.vs_control.unwrap_or(Comparison {
            success_diff: 0.0,
            p_value: 1.0,
        });
        assert!((cmp.success_diff + 0.05).abs() < 1e-9);
        // 900/1000 vs 950/1000: z = 4.26, p ≈ 2.0e-5.
        assert!(cmp.p_value < 1e-4, "{}", cmp.p_value);
        assert_eq!(t.verdict, "worse");
        let text = render_table(&reports, false, 0.02);
        assert!(text.contains("candidate vs control: worse (success -5.0 pts"));
    }

    #[test]
    fn small_samples_are_not_yet_significant() {
        let stats = STATS.replace("} 900", "} 9").replace("} 100\n", "} 1\n");
        let reports = build(&parse(&stats).unwrap_or_default(), None, 0.02);
        let t = &reports[0].variants[1];
        assert_eq!(t.verdict, "not yet significant");
        assert!(t.needed_per_arm.is_some_and(|n| n > 1000));
    }
}
