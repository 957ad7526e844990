//! The shadow section of the report: per experiment and shadow variant,
//! the copies' outcomes and skips, the paired success comparison with
//! McNemar's test on the 2×2 counts, the similarity quartiles, and cost and
//! latency per request against control's.

use crate::prom::Sample;
use crate::report::label;
use crate::stats::{chi2_sf, histogram_quantile, ln_gamma};
use serde::Serialize;
use std::collections::BTreeMap;

/// McNemar's test on the discordant pairs.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct McNemar {
    /// Pairs where control succeeded and the copy did not.
    pub control_only: u64,
    /// Pairs where the copy succeeded and control did not.
    pub shadow_only: u64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// `exact` (binomial, fewer than 1,000 discordant pairs) or
    /// `chi_square` (with continuity correction).
    pub method: &'static str,
}

/// McNemar's test: with `b` and `c` the discordant counts, the exact
/// two-sided binomial p-value `min(1, 2 · P(X ≤ min(b, c)))`, X ~ Bin(b + c,
/// ½), below 1,000 discordant pairs; above, χ² = (|b − c| − 1)² / (b + c)
/// with one degree of freedom.
pub fn mcnemar(b: u64, c: u64) -> McNemar {
    let n = b + c;
    let (p_value, method) = if n == 0 {
        (1.0, "exact")
    } else if n < 1_000 {
        // Σ_{k ≤ min} C(n, k) / 2^n, in logs (no overflow; ln k! = ln Γ(k + 1)).
        let ln_factorial = |k: u64| ln_gamma(k as f64 + 1.0);
        let ln_choose = |k: u64| ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k);
        let tail: f64 = (0..=b.min(c))
            .map(|k| (ln_choose(k) - n as f64 * std::f64::consts::LN_2).exp())
            .sum();
        ((2.0 * tail).min(1.0), "exact")
    } else {
        let d = (b.abs_diff(c) as f64 - 1.0).max(0.0);
        let chi2 = d * d / n as f64;
        (chi2_sf(chi2, 1.0), "chi_square")
    };
    McNemar {
        control_only: b,
        shadow_only: c,
        p_value,
        method,
    }
}

/// One shadow variant of an experiment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ShadowReport {
    /// The shadow variant.
    pub variant: String,
    /// Copies answered (every outcome).
    pub copies: u64,
    /// Copies by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Copies not sent or not answered, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Paired outcomes: `success_success`, `success_failure` (control
    /// succeeded, the copy did not), `failure_success`, `failure_failure`.
    pub pairs: BTreeMap<String, u64>,
    /// Paired success comparison.
    pub mcnemar: McNemar,
    /// Similarity quartiles (0..1) of the pairs where both succeeded.
    pub similarity: [Option<f64>; 3],
    /// Estimated cost per copy, USD.
    pub cost_usd_per_request: f64,
    /// Control's estimated cost per finished request, USD.
    pub control_cost_usd_per_request: f64,
    /// Copy latency p50 and p95, ms.
    pub latency_ms: [Option<f64>; 2],
    /// Control's latency p50 and p95, ms.
    pub control_latency_ms: [Option<f64>; 2],
}

fn sum_by(samples: &[Sample], name: &str, e: &str, v: &str, key: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| s.name == name && label(s, "experiment") == e && label(s, "variant") == v)
    {
        *out.entry(label(s, key).to_string()).or_default() += s.value.max(0.0) as u64;
    }
    out
}

fn total(samples: &[Sample], name: &str, e: &str, v: &str) -> u64 {
    sum_by(samples, name, e, v, "experiment").values().sum()
}

fn quantiles(samples: &[Sample], name: &str, e: &str, v: &str, qs: &[f64]) -> Vec<Option<f64>> {
    let b = crate::report::buckets(samples, name, e, v);
    qs.iter().map(|q| histogram_quantile(&b, *q)).collect()
}

/// The shadow reports of experiment `e` (control `control`): one per
/// variant with shadow series.
pub fn build(samples: &[Sample], e: &str, control: &str) -> Vec<ShadowReport> {
    let mut variants: Vec<String> = samples
        .iter()
        .filter(|s| s.name == "llm_ab_shadow_calls" && label(s, "experiment") == e)
        .map(|s| label(s, "variant").to_string())
        .collect();
    variants.sort();
    variants.dedup();
    let control_finished = total(samples, "llm_ab_outcomes", e, control);
    let per = |x: u64, n: u64| if n == 0 { 0.0 } else { x as f64 / n as f64 };
    variants
        .into_iter()
        .map(|v| {
            let outcomes = sum_by(samples, "llm_ab_shadow_calls", e, &v, "outcome");
            let copies = outcomes.values().sum();
            let pairs = sum_by(samples, "llm_ab_shadow_pairs", e, &v, "pair");
            let cell = |k: &str| pairs.get(k).copied().unwrap_or(0);
            let sim = quantiles(
                samples,
                "llm_ab_shadow_similarity_bucket",
                e,
                &v,
                &[0.25, 0.5, 0.75],
            );
            let lat = quantiles(
                samples,
                "llm_ab_shadow_latency_ms_bucket",
                e,
                &v,
                &[0.5, 0.95],
            );
            let clat = quantiles(
                samples,
                "llm_ab_latency_ms_bucket",
                e,
                control,
                &[0.5, 0.95],
            );
            ShadowReport {
                mcnemar: mcnemar(cell("success_failure"), cell("failure_success")),
                skipped: sum_by(samples, "llm_ab_shadow_skipped", e, &v, "reason"),
                similarity: [
                    sim[0].map(|x| x / 100.0),
                    sim[1].map(|x| x / 100.0),
                    sim[2].map(|x| x / 100.0),
                ],
                cost_usd_per_request: per(
                    total(samples, "llm_ab_shadow_cost_micro_usd", e, &v),
                    copies,
                ) / 1e6,
                control_cost_usd_per_request: per(
                    total(samples, "llm_ab_cost_micro_usd", e, control),
                    control_finished,
                ) / 1e6,
                latency_ms: [lat[0], lat[1]],
                control_latency_ms: [clat[0], clat[1]],
                variant: v,
                copies,
                outcomes,
                pairs,
            }
        })
        .collect()
}

/// The sums of shadow records (`"shadow": true` lines of `--records`) of
/// one experiment × shadow variant.
#[derive(Debug, Clone)]
pub struct Tally {
    copies: u64,
    outcomes: BTreeMap<String, u64>,
    /// `[success_success, success_failure, failure_success, failure_failure]`.
    pairs: [u64; 4],
    /// Similarity in 0.1 % steps (0..=1000).
    similarity: Vec<u64>,
    cost_nano_usd: i64,
    latency_bins: Vec<u64>,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            copies: 0,
            // Every outcome, as the stats name them (0 until seen).
            outcomes: llm_ab::shadow::ShadowOutcome::ALL
                .iter()
                .map(|o| (o.as_str().to_string(), 0))
                .collect(),
            pairs: [0; 4],
            similarity: vec![0; 1001],
            cost_nano_usd: 0,
            latency_bins: vec![0; crate::aggregates::LATENCY_BINS],
        }
    }
}

/// One shadow record, as `--records` reads it.
pub struct RecordFields<'a> {
    /// `experiment_id`.
    pub experiment: &'a str,
    /// `variant`.
    pub variant: &'a str,
    /// `outcome`.
    pub outcome: &'a str,
    /// `control_outcome`.
    pub control_outcome: &'a str,
    /// `similarity`.
    pub similarity: Option<f64>,
    /// `cost_usd_est`.
    pub cost_usd: f64,
    /// `latency_ms`.
    pub latency_ms: u64,
}

/// The shadow records of every experiment, summed as they stream by
/// (memory: one [`Tally`] per experiment × shadow variant).
#[derive(Debug, Default)]
pub struct Tallies(BTreeMap<(String, String), Tally>);

impl Tallies {
    /// Adds one shadow record.
    pub fn add(&mut self, r: &RecordFields<'_>) {
        let t = self
            .0
            .entry((r.experiment.to_string(), r.variant.to_string()))
            .or_default();
        t.copies += 1;
        *t.outcomes.entry(r.outcome.to_string()).or_default() += 1;
        let cell =
            usize::from(r.control_outcome != "success") * 2 + usize::from(r.outcome != "success");
        t.pairs[cell] += 1;
        if let Some(x) = r.similarity.filter(|x| x.is_finite()) {
            t.similarity[(x.clamp(0.0, 1.0) * 1000.0).round() as usize] += 1;
        }
        t.cost_nano_usd = t
            .cost_nano_usd
            .saturating_add((r.cost_usd * 1e9).round() as i64);
        t.latency_bins[crate::aggregates::latency_bin(r.latency_ms)] += 1;
    }

    /// The reports of experiment `e`, against control's cost per request
    /// and latency histogram (from its records).
    pub fn reports(
        &self,
        e: &str,
        control_cost_usd_per_request: f64,
        control_latency_bins: &[u64],
    ) -> Vec<ShadowReport> {
        let edges = &crate::aggregates::LATENCY_EDGES;
        let cumulative = |bins: &[u64], bound: &dyn Fn(usize) -> f64| {
            let mut total = 0.0;
            bins.iter()
                .enumerate()
                .map(|(i, c)| {
                    total += *c as f64;
                    (bound(i), total)
                })
                .collect::<Vec<_>>()
        };
        let latency_bound = |i: usize| edges.get(i).map_or(f64::INFINITY, |e| *e as f64);
        let latency = |bins: &[u64]| {
            let c = cumulative(bins, &latency_bound);
            [histogram_quantile(&c, 0.5), histogram_quantile(&c, 0.95)]
        };
        let control_latency = latency(control_latency_bins);
        self.0
            .iter()
            .filter(|((exp, _), _)| exp == e)
            .map(|((_, v), t)| {
                let names = crate::stats::SHADOW_PAIR_NAMES;
                let pairs = names
                    .iter()
                    .zip(t.pairs)
                    .map(|(k, n)| (k.to_string(), n))
                    .collect();
                // Exact values on a 0.1 % grid: the quantile of the values,
                // not an interpolation inside a bucket.
                let sim = |q: f64| {
                    let n: u64 = t.similarity.iter().sum();
                    if n == 0 {
                        return None;
                    }
                    let rank = (q * n as f64).ceil().max(1.0) as u64;
                    let mut seen = 0;
                    t.similarity.iter().enumerate().find_map(|(i, c)| {
                        seen += c;
                        (seen >= rank).then_some(i as f64 / 1000.0)
                    })
                };
                ShadowReport {
                    variant: v.clone(),
                    copies: t.copies,
                    outcomes: t.outcomes.clone(),
                    skipped: BTreeMap::new(),
                    pairs,
                    mcnemar: mcnemar(t.pairs[1], t.pairs[2]),
                    similarity: [sim(0.25), sim(0.5), sim(0.75)],
                    cost_usd_per_request: if t.copies == 0 {
                        0.0
                    } else {
                        t.cost_nano_usd as f64 / 1e9 / t.copies as f64
                    },
                    control_cost_usd_per_request,
                    latency_ms: latency(&t.latency_bins),
                    control_latency_ms: control_latency,
                }
            })
            .collect()
    }
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".into(), |x| format!("{x:.digits$}"))
}

/// The shadow section as text lines (Markdown list items when `markdown`).
pub fn render(reports: &[ShadowReport], control: &str, markdown: bool) -> String {
    let mut out = String::new();
    let bullet = if markdown { "- " } else { "  " };
    for r in reports {
        let list = |m: &BTreeMap<String, u64>| {
            let parts: Vec<String> = m
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(", ")
            }
        };
        let m = &r.mcnemar;
        let cell = |k: &str| r.pairs.get(k).copied().unwrap_or(0);
        let reading = if m.control_only + m.shadow_only == 0 {
            "no discordant pair yet"
        } else if m.p_value < 0.05 && m.shadow_only > m.control_only {
            "the shadow succeeds more often"
        } else if m.p_value < 0.05 {
            "the shadow fails more often"
        } else {
            "no significant difference"
        };
        let head = format!("shadow {} vs {control}:", r.variant);
        let head = if markdown {
            format!("**{head}**")
        } else {
            head
        };
        // Records carry no skips (a skipped copy has no record): only the
        // stats report them.
        let skipped = if r.skipped.is_empty() {
            String::new()
        } else {
            format!("; skipped: {}", list(&r.skipped))
        };
        out.push_str(&format!(
            "{head} {} copies ({}){skipped}\n",
            r.copies,
            list(&r.outcomes),
        ));
        out.push_str(&format!(
            "{bullet}paired success: both {}, {control} only {}, shadow only {}, neither {}; McNemar {} p = {:.4} ({reading})\n",
            cell("success_success"),
            m.control_only,
            m.shadow_only,
            cell("failure_failure"),
            m.method.replace('_', "-"),
            m.p_value,
        ));
        out.push_str(&format!(
            "{bullet}similarity (ROUGE-L F1) p25 / p50 / p75: {} / {} / {}\n",
            opt(r.similarity[0], 2),
            opt(r.similarity[1], 2),
            opt(r.similarity[2], 2),
        ));
        out.push_str(&format!(
            "{bullet}cost per request ${:.6} ({control} ${:.6}); latency p50 / p95 {} / {} ms ({control} {} / {} ms)\n\n",
            r.cost_usd_per_request,
            r.control_cost_usd_per_request,
            opt(r.latency_ms[0], 0),
            opt(r.latency_ms[1], 0),
            opt(r.control_latency_ms[0], 0),
            opt(r.control_latency_ms[1], 0),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_matches_hand_worked_values() {
        // b = 10, c = 2: exact p = 2 · (C(12,0) + C(12,1) + C(12,2)) / 2^12
        // = 2 · 79 / 4096 = 0.0385742…
        let m = mcnemar(10, 2);
        assert_eq!(m.method, "exact");
        assert!((m.p_value - 158.0 / 4096.0).abs() < 1e-12, "{}", m.p_value);
        assert_eq!(mcnemar(2, 10).p_value, m.p_value, "two-sided");
        // b = c: p = 1.
        assert!((mcnemar(5, 5).p_value - 1.0).abs() < 1e-12);
        assert_eq!(mcnemar(0, 0).p_value, 1.0);
        // b = 0, c = 6: 2 / 64.
        assert!((mcnemar(0, 6).p_value - 2.0 / 64.0).abs() < 1e-12);
        // Large: b = 600, c = 500: χ² = 99² / 1100 = 8.91, p = 0.002836
        // (the χ²(1) tail of 8.91, as tabulated: P(χ²₁ > 8.91) ≈ 0.00284).
        let m = mcnemar(600, 500);
        assert_eq!(m.method, "chi_square");
        assert!((m.p_value - 0.002836).abs() < 2e-5, "{}", m.p_value);
    }
}
