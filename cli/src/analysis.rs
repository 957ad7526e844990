//! The unit-level analysis of an experiment from its bucket-level sums:
//! per variant and metric, the value, the difference from control with an
//! always-valid confidence sequence (or a fixed-horizon 95 % interval) and
//! its p-value; the sample-ratio check on units against the configured
//! weights; Holm's correction across the guardrail metrics; a verdict per
//! treatment on the primary metric; and the same intervals day by day.
//!
//! The bucket is the unit: it is what the filter randomized (every user of
//! a bucket gets the same variant), so the variance of a metric is the
//! variance of bucket-level sums (the delta method of [`stats::ratio`]),
//! not of requests. Heavy users make request-level intervals several times
//! too narrow; bucket-level ones are not.

use crate::aggregates::{Aggregates, Cell, Key, LATENCY_EDGES};
use crate::stats;
use serde::Serialize;
use std::collections::BTreeMap;

/// The level of every interval and test.
pub const ALPHA: f64 = 0.05;

/// Sample-ratio mismatch below this p-value: no verdicts.
pub const SRM_ALPHA: f64 = 0.001;

/// Default tuning of the confidence sequence: the number of units
/// (buckets, both arms together) where it is tightest.
pub const DEFAULT_CS_TUNING: f64 = 5000.0;

/// How to analyse.
#[derive(Debug, Clone)]
pub struct Options {
    /// The control variant (default: the configuration's, else `control`,
    /// else the first by name).
    pub control: Option<String>,
    /// The metric that decides the verdict.
    pub primary: String,
    /// Classic 95 % intervals instead of confidence sequences.
    pub fixed_horizon: bool,
    /// Units where the confidence sequence is tightest.
    pub cs_tuning: f64,
}

/// What the configuration says of an experiment.
#[derive(Debug, Clone)]
pub struct Design {
    /// Variants in configuration order with the share of buckets they own.
    pub shares: Vec<(String, f64)>,
    /// The control variant.
    pub control: String,
    /// Whether a canary schedule replaces the static weights.
    pub ramps: bool,
}

/// The designs of a filter configuration, by experiment id.
pub fn designs(plan: &llm_ab::config::Plan) -> BTreeMap<String, Design> {
    plan.experiments
        .iter()
        .map(|e| {
            let mut owned = vec![0u32; e.variants.len()];
            for b in 0..llm_ab::assign::BUCKETS as u16 {
                if let Some(o) = owned.get_mut(e.layout.variant_of(b)) {
                    *o += 1;
                }
            }
            let shares = e
                .variants
                .iter()
                .zip(owned)
                .map(|(v, o)| {
                    (
                        v.name.clone(),
                        f64::from(o) / f64::from(llm_ab::assign::BUCKETS),
                    )
                })
                .collect();
            let design = Design {
                shares,
                control: e.control().name.clone(),
                ramps: e.rollout.is_some(),
            };
            (e.id.clone(), design)
        })
        .collect()
}

/// How intervals were computed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Inference {
    /// `confidence_sequence` or `fixed_horizon`.
    pub method: &'static str,
    /// Level.
    pub alpha: f64,
    /// The confidence sequence's tuning (units), when one.
    pub cs_tuning: Option<f64>,
    /// What a unit is: `bucket`.
    pub unit: &'static str,
}

/// One variant's count in the sample-ratio check.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SrmCell {
    /// Variant.
    pub variant: String,
    /// Units seen.
    pub observed: u64,
    /// The share of units the configuration gives it (`None` without one).
    pub expected_share: Option<f64>,
}

/// The sample-ratio check.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Srm {
    /// χ² p-value; `None` without the configuration.
    pub p_value: Option<f64>,
    /// The statistic.
    pub chi2: Option<f64>,
    /// Degrees of freedom.
    pub df: Option<f64>,
    /// What was counted: `bucket` (buckets with traffic) or `unit_id`.
    pub unit: &'static str,
    /// Per variant.
    pub counts: Vec<SrmCell>,
    /// p < 0.001: the assignment or the logging is broken, no verdicts.
    pub mismatch: bool,
    /// Caveats.
    pub notes: Vec<String>,
}

/// One variant's size.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VariantSize {
    /// Name.
    pub variant: String,
    /// Units: distinct unit ids when the records carry them, else buckets
    /// with traffic.
    pub units: u64,
    /// Buckets with traffic (the unit of the intervals).
    pub buckets: u64,
    /// Requests.
    pub requests: u64,
}

/// One metric of one variant.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricRow {
    /// Metric name.
    pub metric: String,
    /// Variant.
    pub variant: String,
    /// `primary` or `guardrail`.
    pub role: &'static str,
    /// The variant's value.
    pub value: Option<f64>,
    /// Control's value.
    pub control_value: Option<f64>,
    /// Value − control's (`None` on control's own rows).
    pub diff: Option<f64>,
    /// Interval of the difference.
    pub ci_low: Option<f64>,
    /// Interval of the difference.
    pub ci_high: Option<f64>,
    /// p-value of the difference (always-valid with confidence sequences).
    pub p_value: Option<f64>,
    /// Holm-adjusted across the treatment's guardrail metrics.
    pub p_holm: Option<f64>,
}

/// The verdict on a treatment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    /// Treatment.
    pub variant: String,
    /// `better`, `worse`, `not yet significant`, `no data`, or
    /// `no verdict: sample ratio mismatch`.
    pub verdict: String,
    /// Guardrail metrics significantly worse (after Holm).
    pub guardrails_worse: Vec<String>,
}

/// A treatment's difference on one metric as of the end of a day.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimePoint {
    /// UTC date (`YYYY-MM-DD`), through which the data is counted.
    pub day: String,
    /// Metric.
    pub metric: String,
    /// Treatment.
    pub variant: String,
    /// Difference from control.
    pub diff: Option<f64>,
    /// Interval.
    pub ci_low: Option<f64>,
    /// Interval.
    pub ci_high: Option<f64>,
}

/// One experiment's analysis (the `--format json` contract).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExperimentAnalysis {
    /// Experiment id.
    pub experiment: String,
    /// Control variant.
    pub control: String,
    /// The metric the verdict is on.
    pub primary: String,
    /// How intervals were computed.
    pub inference: Inference,
    /// The sample-ratio check: read it first.
    pub srm: Srm,
    /// Variants, control first.
    pub variants: Vec<VariantSize>,
    /// Every metric of every variant.
    pub metrics: Vec<MetricRow>,
    /// One per treatment.
    pub verdicts: Vec<Verdict>,
    /// The treatments' intervals day by day.
    pub over_time: Vec<TimePoint>,
    /// Shadow variants scored against control's answers (from shadow
    /// records), when any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadow: Vec<crate::shadow::ShadowReport>,
}

/// How a metric is computed from a bucket's sums.
#[derive(Clone, Copy)]
enum Kind {
    /// `Σ num / Σ den` over buckets.
    Ratio(fn(&Cell) -> f64, fn(&Cell) -> f64),
    /// The 95th percentile of latency.
    P95,
    /// An outcome metric (index) per request.
    Outcome(u32),
}

/// A metric.
#[derive(Clone)]
struct Metric {
    name: String,
    higher_is_better: bool,
    kind: Kind,
}

fn requests(c: &Cell) -> f64 {
    c.requests as f64
}

/// The built-in metrics, in report order.
fn builtins(with_schema: bool) -> Vec<Metric> {
    let m = |name: &str, higher_is_better, kind| Metric {
        name: name.to_string(),
        higher_is_better,
        kind,
    };
    let mut out = vec![
        m(
            "success_rate",
            true,
            Kind::Ratio(|c| c.successes as f64, requests),
        ),
        m(
            "error_rate",
            false,
            Kind::Ratio(|c| c.errors as f64, requests),
        ),
        m(
            "refusal_rate",
            false,
            Kind::Ratio(|c| c.refusals as f64, requests),
        ),
        m(
            "fallback_rate",
            false,
            Kind::Ratio(|c| c.fallbacks as f64, requests),
        ),
        m(
            "blocked_rate",
            false,
            Kind::Ratio(|c| c.blocked as f64, requests),
        ),
    ];
    if with_schema {
        out.push(m(
            "schema_pass_rate",
            true,
            Kind::Ratio(|c| c.schema_passed as f64, |c| c.schema_checked as f64),
        ));
    }
    out.extend([
        m(
            "cost_per_request",
            false,
            Kind::Ratio(|c| c.cost_nano_usd as f64 / 1e9, requests),
        ),
        m(
            "tokens_in_per_request",
            false,
            Kind::Ratio(|c| c.tokens_in as f64, requests),
        ),
        m(
            "tokens_out_per_request",
            false,
            Kind::Ratio(|c| c.tokens_out as f64, requests),
        ),
        m(
            "latency_ms_mean",
            false,
            Kind::Ratio(|c| c.latency_ms as f64, requests),
        ),
        m("latency_ms_p95", false, Kind::P95),
    ]);
    out
}

/// Names of every metric the analysis of these sums reports, for
/// `--primary` to be checked against.
pub fn metric_names(agg: &Aggregates) -> Vec<String> {
    let mut names: Vec<String> = builtins(true).into_iter().map(|m| m.name).collect();
    names.extend(agg.metrics.iter().map(outcome_name));
    names
}

/// An outcome metric's name in the report: its own, unless a built-in
/// metric has it.
fn outcome_name(name: &str) -> String {
    if builtins(true).iter().any(|m| m.name == name) {
        format!("outcome_{name}")
    } else {
        name.to_string()
    }
}

/// A value with its variance over `units` units.
#[derive(Clone, Copy)]
struct Estimate {
    value: f64,
    variance: Option<f64>,
    units: usize,
}

fn estimate(metric: &Metric, cells: &[&Cell]) -> Option<Estimate> {
    let r = match metric.kind {
        Kind::Ratio(num, den) => {
            let pairs: Vec<(f64, f64)> = cells.iter().map(|c| (num(c), den(c))).collect();
            stats::ratio(&pairs)
        }
        Kind::Outcome(m) => {
            let pairs: Vec<(f64, f64)> = cells
                .iter()
                .map(|c| (c.outcome(m) as f64 / 1e6, c.requests as f64))
                .collect();
            stats::ratio(&pairs)
        }
        Kind::P95 => {
            let hists: Vec<&[u32]> = cells.iter().map(|c| c.latency_bins.as_slice()).collect();
            stats::quantile(&hists, &LATENCY_EDGES, 0.95)
        }
    }?;
    Some(Estimate {
        value: r.value,
        variance: r.variance,
        units: r.units,
    })
}

/// A difference with its interval and p-value.
#[derive(Clone, Copy, Default)]
struct Comparison {
    diff: Option<f64>,
    low: Option<f64>,
    high: Option<f64>,
    p: Option<f64>,
}

fn compare(t: Option<Estimate>, c: Option<Estimate>, o: &Options) -> Comparison {
    let (Some(t), Some(c)) = (t, c) else {
        return Comparison::default();
    };
    let diff = t.value - c.value;
    let (Some(vt), Some(vc)) = (t.variance, c.variance) else {
        return Comparison {
            diff: Some(diff),
            ..Comparison::default()
        };
    };
    let se = (vt + vc).sqrt();
    let n = (t.units + c.units) as f64;
    let rho2 = stats::cs_rho2(ALPHA, o.cs_tuning);
    // The sequence for a difference of two means: GrowthBook's
    // per-observation analogue of the variance, SE² · (n_T + n_C).
    let half = if o.fixed_horizon {
        stats::Z95 * se
    } else {
        stats::cs_half_width(se * se * n, n, rho2, ALPHA)
    };
    let p = if se > 0.0 {
        let z = diff.abs() / se;
        if o.fixed_horizon {
            2.0 * (1.0 - stats::normal_cdf(z))
        } else {
            stats::cs_p_value(z, n, rho2)
        }
    } else if diff == 0.0 {
        1.0
    } else {
        0.0
    };
    Comparison {
        diff: Some(diff),
        low: Some(diff - half),
        high: Some(diff + half),
        p: Some(p.clamp(0.0, 1.0)),
    }
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01; Hinnant's
/// `civil_from_days`).
pub fn date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Variants of one experiment, control first, then in configuration order
/// (unknown ones by name).
fn order_variants(seen: &[String], control: &str, design: Option<&Design>) -> Vec<String> {
    let mut out = vec![control.to_string()];
    if let Some(d) = design {
        for (name, _) in &d.shares {
            if name != control && seen.contains(name) {
                out.push(name.clone());
            }
        }
    }
    for name in seen {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// Every bucket's totals per variant, as of some day.
type Running = Vec<BTreeMap<u16, Cell>>;

/// Analyses every experiment of `agg`, sorted by id.
pub fn analyze(
    agg: &Aggregates,
    designs: Option<&BTreeMap<String, Design>>,
    o: &Options,
) -> Vec<ExperimentAnalysis> {
    let mut by_experiment: BTreeMap<&str, Vec<(&Key, &Cell)>> = BTreeMap::new();
    for (k, c) in &agg.cells {
        by_experiment
            .entry(agg.experiments.name(k.experiment))
            .or_default()
            .push((k, c));
    }
    by_experiment
        .into_iter()
        .map(|(name, cells)| {
            let design = designs.and_then(|d| d.get(name));
            analyze_one(agg, name, cells, design, o)
        })
        .collect()
}

fn analyze_one(
    agg: &Aggregates,
    experiment: &str,
    mut cells: Vec<(&Key, &Cell)>,
    design: Option<&Design>,
    o: &Options,
) -> ExperimentAnalysis {
    let variant_name = |k: &Key| agg.variants.name(k.variant).to_string();
    let mut seen: Vec<String> = cells.iter().map(|(k, _)| variant_name(k)).collect();
    seen.sort();
    seen.dedup();
    let control = o
        .control
        .clone()
        .filter(|c| seen.contains(c))
        .or_else(|| {
            design
                .map(|d| d.control.clone())
                .filter(|c| seen.contains(c))
        })
        .or_else(|| seen.iter().find(|v| *v == "control").cloned())
        .unwrap_or_else(|| seen.first().cloned().unwrap_or_default());
    let variants = order_variants(&seen, &control, design);
    let index_of = |k: &Key| {
        let name = agg.variants.name(k.variant);
        variants.iter().position(|v| v == name).unwrap_or(0)
    };
    cells.sort_by_key(|(k, _)| (k.day, index_of(k), k.bucket));

    let with_schema = cells.iter().any(|(_, c)| c.schema_checked > 0);
    let mut metrics = builtins(with_schema);
    let mut outcome_metrics: Vec<(String, u32)> = Vec::new();
    for (_, c) in &cells {
        for (m, _) in &c.outcomes {
            let name = outcome_name(agg.metrics.name(*m));
            if !outcome_metrics.iter().any(|(n, _)| *n == name) {
                outcome_metrics.push((name, *m));
            }
        }
    }
    outcome_metrics.sort();
    metrics.extend(outcome_metrics.into_iter().map(|(name, m)| Metric {
        name,
        higher_is_better: true,
        kind: Kind::Outcome(m),
    }));

    // Day by day, every bucket's totals so far.
    let mut running: Running = vec![BTreeMap::new(); variants.len()];
    let mut over_time = Vec::new();
    let mut i = 0;
    while i < cells.len() {
        let day = cells[i].0.day;
        while i < cells.len() && cells[i].0.day == day {
            let (k, c) = cells[i];
            running[index_of(k)].entry(k.bucket).or_default().merge(c);
            i += 1;
        }
        let snapshot = per_variant(&running);
        for (name, t) in variants.iter().zip(&snapshot).skip(1) {
            for m in &metrics {
                let cmp = compare(estimate(m, t), estimate(m, &snapshot[0]), o);
                over_time.push(TimePoint {
                    day: date(day),
                    metric: m.name.clone(),
                    variant: name.clone(),
                    diff: cmp.diff,
                    ci_low: cmp.low,
                    ci_high: cmp.high,
                });
            }
        }
    }
    let snapshot = per_variant(&running);

    let srm = sample_ratio(&variants, &snapshot, design);
    let sizes: Vec<VariantSize> = variants
        .iter()
        .zip(&snapshot)
        .map(|(name, cells)| {
            let unit_ids: u64 = cells.iter().map(|c| c.new_units).sum();
            VariantSize {
                variant: name.clone(),
                units: if srm.unit == "unit_id" {
                    unit_ids
                } else {
                    cells.len() as u64
                },
                buckets: cells.len() as u64,
                requests: cells.iter().map(|c| c.requests).sum(),
            }
        })
        .collect();

    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    let control_estimates: Vec<Option<Estimate>> =
        metrics.iter().map(|m| estimate(m, &snapshot[0])).collect();
    for (m, c) in metrics.iter().zip(&control_estimates) {
        rows.push(MetricRow {
            metric: m.name.clone(),
            variant: control.clone(),
            role: role(m, o),
            value: c.map(|e| e.value),
            control_value: c.map(|e| e.value),
            diff: None,
            ci_low: None,
            ci_high: None,
            p_value: None,
            p_holm: None,
        });
    }
    for (name, t) in variants.iter().zip(&snapshot).skip(1) {
        let start = rows.len();
        for (m, c) in metrics.iter().zip(&control_estimates) {
            let te = estimate(m, t);
            let cmp = compare(te, *c, o);
            rows.push(MetricRow {
                metric: m.name.clone(),
                variant: name.clone(),
                role: role(m, o),
                value: te.map(|e| e.value),
                control_value: c.map(|e| e.value),
                diff: cmp.diff,
                ci_low: cmp.low,
                ci_high: cmp.high,
                p_value: cmp.p,
                p_holm: None,
            });
        }
        // Holm across this treatment's guardrails that have a p-value.
        let guard: Vec<usize> = (start..rows.len())
            .filter(|&r| rows[r].role == "guardrail" && rows[r].p_value.is_some())
            .collect();
        let adjusted = stats::holm(
            &guard
                .iter()
                .map(|&r| rows[r].p_value.unwrap_or(1.0))
                .collect::<Vec<_>>(),
        );
        for (&r, p) in guard.iter().zip(adjusted) {
            rows[r].p_holm = Some(p);
        }
        let worse = |row: &MetricRow, m: &Metric, p: Option<f64>| {
            p.is_some_and(|p| p < ALPHA)
                && row
                    .diff
                    .is_some_and(|d| if m.higher_is_better { d < 0.0 } else { d > 0.0 })
        };
        let guardrails_worse = rows[start..]
            .iter()
            .zip(&metrics)
            .filter(|(row, m)| row.role == "guardrail" && worse(row, m, row.p_holm))
            .map(|(row, _)| row.metric.clone())
            .collect();
        let primary = rows[start..]
            .iter()
            .zip(&metrics)
            .find(|(row, _)| row.role == "primary");
        let verdict = match primary {
            _ if srm.mismatch => "no verdict: sample ratio mismatch".to_string(),
            None => "no data".to_string(),
            Some((row, _)) if row.p_value.is_none() => "no data".to_string(),
            Some((row, m)) if row.p_value.is_some_and(|p| p < ALPHA) => {
                if worse(row, m, row.p_value) {
                    "worse".to_string()
                } else {
                    "better".to_string()
                }
            }
            Some(_) => "not yet significant".to_string(),
        };
        verdicts.push(Verdict {
            variant: name.clone(),
            verdict,
            guardrails_worse,
        });
    }

    ExperimentAnalysis {
        experiment: experiment.to_string(),
        control,
        primary: o.primary.clone(),
        inference: Inference {
            method: if o.fixed_horizon {
                "fixed_horizon"
            } else {
                "confidence_sequence"
            },
            alpha: ALPHA,
            cs_tuning: (!o.fixed_horizon).then_some(o.cs_tuning),
            unit: "bucket",
        },
        srm,
        variants: sizes,
        metrics: rows,
        verdicts,
        over_time,
        shadow: Vec::new(),
    }
}

/// Control's cost per request (USD) and latency histogram in experiment
/// `e`, summed over its cells: what the shadow section compares against.
pub fn control_baseline(agg: &Aggregates, e: &str, control: &str) -> (f64, Vec<u64>) {
    let mut requests = 0u64;
    let mut cost = 0i64;
    let mut bins = vec![0u64; crate::aggregates::LATENCY_BINS];
    for (k, c) in &agg.cells {
        if agg.experiments.name(k.experiment) != e || agg.variants.name(k.variant) != control {
            continue;
        }
        requests += c.requests;
        cost = cost.saturating_add(c.cost_nano_usd);
        for (b, n) in bins.iter_mut().zip(&c.latency_bins) {
            *b += u64::from(*n);
        }
    }
    let per = if requests == 0 {
        0.0
    } else {
        cost as f64 / 1e9 / requests as f64
    };
    (per, bins)
}

fn role(m: &Metric, o: &Options) -> &'static str {
    if m.name == o.primary {
        "primary"
    } else {
        "guardrail"
    }
}

/// Each variant's buckets with traffic, in bucket order.
fn per_variant(running: &Running) -> Vec<Vec<&Cell>> {
    running
        .iter()
        .map(|m| m.values().filter(|c| c.requests > 0).collect())
        .collect()
}

/// The χ² test of units per variant against the configured shares.
fn sample_ratio(variants: &[String], snapshot: &[Vec<&Cell>], design: Option<&Design>) -> Srm {
    let unit_ids = snapshot.iter().flatten().any(|c| c.new_units > 0);
    let unit = if unit_ids { "unit_id" } else { "bucket" };
    let observed = |name: &str| -> u64 {
        variants
            .iter()
            .position(|v| v == name)
            .and_then(|i| snapshot.get(i))
            .map_or(0, |cells| {
                if unit_ids {
                    cells.iter().map(|c| c.new_units).sum()
                } else {
                    cells.len() as u64
                }
            })
    };
    let mut notes = Vec::new();
    let Some(design) = design else {
        notes.push(
            "no --config (or the experiment is not in it): the sample-ratio check needs the configured weights"
                .to_string(),
        );
        return Srm {
            p_value: None,
            chi2: None,
            df: None,
            unit,
            counts: variants
                .iter()
                .map(|v| SrmCell {
                    variant: v.clone(),
                    observed: observed(v),
                    expected_share: None,
                })
                .collect(),
            mismatch: false,
            notes,
        };
    };
    let counts: Vec<SrmCell> = design
        .shares
        .iter()
        .map(|(name, share)| SrmCell {
            variant: name.clone(),
            observed: observed(name),
            expected_share: Some(*share),
        })
        .collect();
    for v in variants {
        if !design.shares.iter().any(|(n, _)| n == v) {
            notes.push(format!(
                "variant {v:?} is not in the configuration: left out of the check"
            ));
        }
    }
    if design.ramps {
        notes.push(
            "the experiment has a rollout schedule: the check compares with the configured weights, not the ramp's".to_string(),
        );
    }
    if !unit_ids
        && counts.iter().all(|c| {
            let share = c.expected_share.unwrap_or(0.0);
            share == 0.0 || c.observed as f64 >= 0.99 * share * f64::from(llm_ab::assign::BUCKETS)
        })
    {
        notes.push(
            "every bucket has traffic: a bucket count cannot show a mismatch; set the experiment's unit_id_key to count users".to_string(),
        );
    }
    let obs: Vec<f64> = counts.iter().map(|c| c.observed as f64).collect();
    let shares: Vec<f64> = counts
        .iter()
        .map(|c| c.expected_share.unwrap_or(0.0))
        .collect();
    let test = stats::chi2_goodness_of_fit(&obs, &shares);
    let p_value = test.map(|t| t.2);
    Srm {
        p_value,
        chi2: test.map(|t| t.0),
        df: test.map(|t| t.1),
        unit,
        counts,
        mismatch: p_value.is_some_and(|p| p < SRM_ALPHA),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(19_723), "2024-01-01");
        assert_eq!(date(20_513), "2026-03-01");
        assert_eq!(date(-1), "1969-12-31");
    }
}
