//! The filter's metrics: every id defined once per VM when the
//! configuration loads, and what each event of an exchange adds to them.
//!
//! Names carry their labels as segments (`experiment.<id>.variant.<name>…`,
//! see [`crate::stats`]); the shipped `envoy.yaml` lifts them out as
//! Prometheus labels with `stats_tags`. The host defines and bumps them
//! ([`MetricSink`]); nothing here calls it directly.

use crate::config::Plan;
use crate::record::Outcome;
use crate::route::Reason;
use crate::shadow::{ShadowOutcome, ShadowSide, Skip};
use crate::shared::SharedStore;
use crate::stats as names;

/// Kinds of metric the host defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// Only goes up.
    Counter,
    /// Set to a value.
    Gauge,
    /// Samples in buckets.
    Histogram,
}

/// Where metric values go (Envoy's stats in the filter, a recorder in tests).
pub trait MetricSink {
    /// Adds `by` to counter `id`.
    fn increment(&self, id: u32, by: u64);
    /// Sets gauge `id` or records a histogram sample.
    fn record(&self, id: u32, value: u64);
}

/// Metric ids of one experiment × variant; `None` where the host refused.
pub struct VariantMetrics {
    requests: Vec<Option<u32>>,
    rejected: Vec<Option<u32>>,
    responses: Vec<Option<u32>>,
    outcomes: Vec<Option<u32>>,
    tokens_in: Option<u32>,
    tokens_in_cached: Option<u32>,
    tokens_in_cache_write: Option<u32>,
    tokens_out: Option<u32>,
    tokens_reasoning: Option<u32>,
    unreadable: Option<u32>,
    cost_micro_usd: Option<u32>,
    latency_ms: Option<u32>,
    ttft_ms: Option<u32>,
    /// Per detector, in [`crate::redact::Redactor::detector_names`] order.
    redactions: Vec<Option<u32>>,
    redaction_skipped: Option<u32>,
    /// `[pass, fail]` output schema checks.
    schema: [Option<u32>; 2],
}

/// Defines a metric; `None` where the host refused.
pub type Define<'d> = dyn FnMut(MetricType, &str) -> Option<u32> + 'd;

fn counter(d: &mut Define<'_>, name: &str) -> Option<u32> {
    d(MetricType::Counter, name)
}

impl VariantMetrics {
    fn define(d: &mut Define<'_>, e: &str, v: &str, detectors: &[&str]) -> VariantMetrics {
        let per = |m: &str| names::per_variant(e, v, m);
        VariantMetrics {
            requests: Reason::ALL
                .iter()
                .map(|r| counter(d, &names::requests(e, v, r.as_str())))
                .collect(),
            rejected: names::REJECT_CODES
                .iter()
                .map(|c| counter(d, &names::rejected(e, v, c)))
                .collect(),
            responses: names::STATUS_CLASSES
                .iter()
                .map(|c| counter(d, &names::responses(e, v, c)))
                .collect(),
            outcomes: Outcome::ALL
                .iter()
                .map(|o| counter(d, &names::outcomes(e, v, o.as_str())))
                .collect(),
            tokens_in: counter(d, &per("tokens_in")),
            tokens_in_cached: counter(d, &per("tokens_in_cached")),
            tokens_in_cache_write: counter(d, &per("tokens_in_cache_write")),
            tokens_out: counter(d, &per("tokens_out")),
            tokens_reasoning: counter(d, &per("tokens_reasoning")),
            unreadable: counter(d, &per("unreadable_responses")),
            cost_micro_usd: counter(d, &per("cost_micro_usd")),
            latency_ms: d(MetricType::Histogram, &per("latency_ms")),
            ttft_ms: d(MetricType::Histogram, &per("ttft_ms")),
            redactions: detectors
                .iter()
                .map(|name| counter(d, &names::redactions(e, v, name)))
                .collect(),
            schema: [
                counter(d, &names::schema_checks(e, v, "pass")),
                counter(d, &names::schema_checks(e, v, "fail")),
            ],
            redaction_skipped: if detectors.is_empty() {
                None
            } else {
                counter(d, &per("redaction_skipped"))
            },
        }
    }
}

/// Metric ids of one experiment × shadow variant.
pub struct ShadowMetrics {
    /// Copies answered, per [`ShadowOutcome::ALL`].
    calls: Vec<Option<u32>>,
    /// Copies not sent or not answered, per [`Skip::ALL`].
    skipped: Vec<Option<u32>>,
    tokens_in: Option<u32>,
    tokens_out: Option<u32>,
    cost_micro_usd: Option<u32>,
    latency_ms: Option<u32>,
    /// Similarity in percent (0..=100).
    similarity: Option<u32>,
    /// Paired outcomes, per [`names::SHADOW_PAIRS`] (control, shadow).
    pairs: Vec<Option<u32>>,
}

impl ShadowMetrics {
    fn define(d: &mut Define<'_>, e: &str, v: &str) -> ShadowMetrics {
        let per = |m: &str| names::per_variant(e, v, m);
        ShadowMetrics {
            calls: ShadowOutcome::ALL
                .iter()
                .map(|o| counter(d, &names::outcome_metric(e, v, o.as_str(), "shadow_calls")))
                .collect(),
            skipped: Skip::ALL
                .iter()
                .map(|r| counter(d, &names::shadow_skipped(e, v, r.as_str())))
                .collect(),
            tokens_in: counter(d, &per("shadow_tokens_in")),
            tokens_out: counter(d, &per("shadow_tokens_out")),
            cost_micro_usd: counter(d, &per("shadow_cost_micro_usd")),
            latency_ms: d(MetricType::Histogram, &per("shadow_latency_ms")),
            similarity: d(MetricType::Histogram, &per("shadow_similarity")),
            pairs: names::SHADOW_PAIRS
                .iter()
                .map(|p| counter(d, &names::shadow_pairs(e, v, p)))
                .collect(),
        }
    }
}

/// Every metric of a plan, for one VM.
pub struct Metrics {
    /// `[experiment]`: `(variant index, its shadow metrics)`.
    shadow: Vec<Vec<(usize, ShadowMetrics)>>,
    /// `[sent, failed, dropped]` shadow records.
    shadow_records: [Option<u32>; 3],
    /// `[experiment][variant]`.
    variants: Vec<Vec<VariantMetrics>>,
    /// `[experiment]` requests without a sticky key.
    unassigned: Vec<Option<u32>>,
    /// Requests that matched no experiment.
    default_route: Option<u32>,
    /// `[sent, failed, dropped]` review copies.
    review: [Option<u32>; 3],
    /// `[experiment]` paused gauges.
    paused: Vec<Option<u32>>,
    /// `[experiment][variant]` circuit-open gauges.
    circuit_open: Vec<Vec<Option<u32>>>,
    /// `[experiment][variant]` weight gauges (basis points served).
    weights: Vec<Vec<Option<u32>>>,
}

/// What one finished exchange adds to a variant's metrics.
pub struct Finished<'a> {
    /// HTTP status class (`2xx` …).
    pub status_class: &'a str,
    /// Outcome.
    pub outcome: Outcome,
    /// Tokens, as reported or estimated.
    pub tokens: crate::usage::Tokens,
    /// Estimated cost, micro-USD.
    pub cost_micro_usd: u64,
    /// End-to-end latency.
    pub latency_ms: u64,
    /// Time to first byte of a stream.
    pub ttft_ms: Option<u64>,
}

impl Metrics {
    /// Defines every metric the plan can emit with `d`.
    pub fn define(plan: &Plan, d: &mut Define<'_>) -> Metrics {
        let detectors = plan
            .redaction
            .as_ref()
            .map(|r| r.detector_names())
            .unwrap_or_default();
        let mut variants = Vec::new();
        for e in &plan.experiments {
            let defined = e
                .variants
                .iter()
                .map(|v| VariantMetrics::define(d, &e.id, &v.name, &detectors))
                .collect();
            variants.push(defined);
        }
        let unassigned = plan
            .experiments
            .iter()
            .map(|e| counter(d, &names::unassigned(&e.id)))
            .collect();
        let default_route = counter(d, names::DEFAULT_ROUTE_REQUESTS);
        let paused = plan
            .experiments
            .iter()
            .map(|e| {
                e.slo
                    .as_ref()
                    .and_then(|_| d(MetricType::Gauge, &names::paused(&e.id)))
            })
            .collect();
        let mut circuit_open = Vec::new();
        for e in &plan.experiments {
            let gauges = e
                .variants
                .iter()
                .map(|v| {
                    e.breaker.as_ref().and_then(|_| {
                        d(
                            MetricType::Gauge,
                            &names::per_variant(&e.id, &v.name, "circuit_open"),
                        )
                    })
                })
                .collect();
            circuit_open.push(gauges);
        }
        let weights = plan
            .experiments
            .iter()
            .map(|e| {
                let control = e.layout.control();
                e.variants
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let role = if i == control { "control" } else { "treatment" };
                        d(
                            MetricType::Gauge,
                            &names::variant_weight(&e.id, &v.name, role),
                        )
                    })
                    .collect()
            })
            .collect();
        let review = if plan.guardrails.review.is_some() {
            [
                counter(d, "llm_ab.review.result.sent.copies"),
                counter(d, "llm_ab.review.result.failed.copies"),
                counter(d, "llm_ab.review.result.dropped.copies"),
            ]
        } else {
            [None; 3]
        };
        let shadow = plan
            .experiments
            .iter()
            .map(|e| {
                let listed = e.shadow.as_ref().map(|s| s.variants.as_slice());
                listed
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|&i| {
                        let v = e.variants.get(i)?;
                        Some((i, ShadowMetrics::define(d, &e.id, &v.name)))
                    })
                    .collect()
            })
            .collect();
        let sinks = plan
            .experiments
            .iter()
            .any(|e| e.shadow.as_ref().is_some_and(|s| s.sink_cluster.is_some()));
        let shadow_records = if sinks {
            [
                counter(d, "llm_ab.shadow.result.sent.records"),
                counter(d, "llm_ab.shadow.result.failed.records"),
                counter(d, "llm_ab.shadow.result.dropped.records"),
            ]
        } else {
            [None; 3]
        };
        Metrics {
            shadow,
            shadow_records,
            variants,
            unassigned,
            default_route,
            review,
            paused,
            circuit_open,
            weights,
        }
    }

    fn variant(&self, experiment: usize, variant: usize) -> Option<&VariantMetrics> {
        self.variants.get(experiment)?.get(variant)
    }

    /// Counts a request assigned to `variant` of `experiment` for `reason`.
    pub fn count_request(
        &self,
        sink: &dyn MetricSink,
        experiment: usize,
        variant: usize,
        reason: Reason,
    ) {
        let r = Reason::ALL.iter().position(|x| *x == reason);
        if let (Some(m), Some(r)) = (self.variant(experiment, variant), r) {
            bump(sink, m.requests.get(r).copied().flatten(), 1);
        }
        if reason == Reason::NoKey {
            bump(sink, self.unassigned.get(experiment).copied().flatten(), 1);
        }
    }

    /// Counts a request the filter answered itself with `code`.
    pub fn count_rejected(
        &self,
        sink: &dyn MetricSink,
        experiment: usize,
        variant: usize,
        code: &str,
    ) {
        let c = names::REJECT_CODES.iter().position(|x| *x == code);
        if let (Some(m), Some(c)) = (self.variant(experiment, variant), c) {
            bump(sink, m.rejected.get(c).copied().flatten(), 1);
        }
    }

    /// Adds the values redacted in one exchange, per detector.
    pub fn count_redactions(
        &self,
        sink: &dyn MetricSink,
        experiment: usize,
        variant: usize,
        counts: &[u64],
    ) {
        if let Some(m) = self.variant(experiment, variant) {
            for (id, n) in m.redactions.iter().zip(counts) {
                bump(sink, *id, *n);
            }
        }
    }

    /// Counts a body forwarded unscanned (`on_error: pass`).
    pub fn count_redaction_skipped(
        &self,
        sink: &dyn MetricSink,
        experiment: usize,
        variant: usize,
    ) {
        if let Some(m) = self.variant(experiment, variant) {
            bump(sink, m.redaction_skipped, 1);
        }
    }

    /// Counts one output schema check.
    pub fn count_schema(
        &self,
        sink: &dyn MetricSink,
        experiment: usize,
        variant: usize,
        pass: bool,
    ) {
        if let Some(m) = self.variant(experiment, variant) {
            bump(sink, m.schema[usize::from(!pass)], 1);
        }
    }

    /// Counts a review copy by result: 0 sent, 1 failed, 2 dropped.
    pub fn count_review(&self, sink: &dyn MetricSink, result: usize) {
        bump(sink, self.review.get(result).copied().flatten(), 1);
    }

    /// Sets the experiment's paused gauge.
    pub fn set_paused(&self, sink: &dyn MetricSink, experiment: usize, paused: bool) {
        record(
            sink,
            self.paused.get(experiment).copied().flatten(),
            u64::from(paused),
        );
    }

    /// Sets a variant's circuit-open gauge.
    pub fn set_circuit_open(
        &self,
        sink: &dyn MetricSink,
        experiment: usize,
        variant: usize,
        open: bool,
    ) {
        let id = self
            .circuit_open
            .get(experiment)
            .and_then(|v| v.get(variant))
            .copied()
            .flatten();
        record(sink, id, u64::from(open));
    }

    fn shadow(&self, experiment: usize, variant: usize) -> Option<&ShadowMetrics> {
        let listed = self.shadow.get(experiment)?;
        listed.iter().find(|(i, _)| *i == variant).map(|(_, m)| m)
    }

    /// Counts a copy to a shadow variant not sent (or not answered).
    pub fn count_shadow_skipped(
        &self,
        sink: &dyn MetricSink,
        experiment: usize,
        variant: usize,
        why: Skip,
    ) {
        let r = Skip::ALL.iter().position(|x| *x == why);
        if let (Some(m), Some(r)) = (self.shadow(experiment, variant), r) {
            bump(sink, m.skipped.get(r).copied().flatten(), 1);
        }
    }

    /// Records a copy's answer.
    pub fn record_shadow_call(
        &self,
        sink: &dyn MetricSink,
        experiment: usize,
        variant: usize,
        side: &ShadowSide,
    ) {
        let Some(m) = self.shadow(experiment, variant) else {
            return;
        };
        let o = ShadowOutcome::ALL.iter().position(|x| *x == side.outcome);
        bump(sink, o.and_then(|o| m.calls.get(o).copied().flatten()), 1);
        bump(sink, m.tokens_in, side.tokens.input);
        bump(sink, m.tokens_out, side.tokens.output);
        bump(
            sink,
            m.cost_micro_usd,
            (side.cost_usd * 1_000_000.0).round() as u64,
        );
        record(sink, m.latency_ms, side.latency_ms);
    }

    /// Records a scored pair: control's and the copy's success, and the
    /// similarity when it has one.
    pub fn record_shadow_pair(
        &self,
        sink: &dyn MetricSink,
        experiment: usize,
        variant: usize,
        control_success: bool,
        shadow_success: bool,
        similarity: Option<f64>,
    ) {
        let Some(m) = self.shadow(experiment, variant) else {
            return;
        };
        if let Some(s) = similarity {
            record(sink, m.similarity, (s * 100.0).round() as u64);
        }
        let cell = usize::from(!control_success) * 2 + usize::from(!shadow_success);
        bump(sink, m.pairs.get(cell).copied().flatten(), 1);
    }

    /// Counts a shadow record by result: 0 sent, 1 failed, 2 dropped.
    pub fn count_shadow_record(&self, sink: &dyn MetricSink, result: usize) {
        bump(sink, self.shadow_records.get(result).copied().flatten(), 1);
    }

    /// Sets the weight gauges of an experiment's variants to `shares`
    /// (basis points, by variant index).
    pub fn set_weights(&self, sink: &dyn MetricSink, experiment: usize, shares: &[u32]) {
        let Some(ids) = self.weights.get(experiment) else {
            return;
        };
        for (id, share) in ids.iter().zip(shares) {
            record(sink, *id, u64::from(*share));
        }
    }

    /// Counts a request that matched no experiment.
    pub fn count_default_route(&self, sink: &dyn MetricSink) {
        bump(sink, self.default_route, 1);
    }

    /// Records a finished exchange of a variant.
    pub fn record_finished(
        &self,
        sink: &dyn MetricSink,
        experiment: usize,
        variant: usize,
        f: &Finished<'_>,
    ) {
        let Some(m) = self.variant(experiment, variant) else {
            return;
        };
        let class = names::STATUS_CLASSES
            .iter()
            .position(|c| *c == f.status_class);
        bump(
            sink,
            class.and_then(|c| m.responses.get(c).copied().flatten()),
            1,
        );
        let outcome = Outcome::ALL.iter().position(|o| *o == f.outcome);
        bump(
            sink,
            outcome.and_then(|o| m.outcomes.get(o).copied().flatten()),
            1,
        );
        bump(sink, m.tokens_in, f.tokens.input);
        bump(sink, m.tokens_in_cached, f.tokens.cached);
        bump(sink, m.tokens_in_cache_write, f.tokens.cache_write);
        bump(sink, m.tokens_out, f.tokens.output);
        bump(sink, m.tokens_reasoning, f.tokens.reasoning);
        if f.tokens.source == crate::usage::TokensSource::Unreadable {
            bump(sink, m.unreadable, 1);
        }
        bump(sink, m.cost_micro_usd, f.cost_micro_usd);
        record(sink, m.latency_ms, f.latency_ms);
        if let Some(ttft) = f.ttft_ms {
            record(sink, m.ttft_ms, ttft);
        }
    }
}

/// The weight gauges as this VM last set them, so that a refresh sets only
/// those that changed. Every VM of a proxy sets the same (shared) gauges
/// and computes the same values from the same clock and the proxy's pause
/// flags.
#[derive(Debug, Default)]
pub struct WeightGauges {
    /// `[experiment]` the shares last set (empty: never set).
    set: Vec<Vec<u32>>,
}

impl WeightGauges {
    /// Sets the weight gauge of every variant of `plan` to the share of
    /// users it serves at `now_s` ([`crate::route::served_shares`]), where
    /// that changed since this VM last set it (the first call sets all).
    /// Only a `rollout` (the clock) or an `slo` (a pause) changes a share
    /// after the configuration loads; only an experiment with an `slo`
    /// reads its pause flag.
    pub fn refresh<S: MetricSink + SharedStore>(
        &mut self,
        plan: &Plan,
        metrics: &Metrics,
        host: &S,
        now_s: u64,
    ) {
        self.set.resize(plan.experiments.len(), Vec::new());
        for (i, (e, set)) in plan.experiments.iter().zip(&mut self.set).enumerate() {
            if !set.is_empty() && e.rollout.is_none() && e.slo.is_none() {
                continue;
            }
            let paused = crate::slo::experiment_paused(host, plan.config_hash, e);
            let shares = crate::route::served_shares(e, now_s, paused);
            if *set != shares {
                metrics.set_weights(host, i, &shares);
                *set = shares;
            }
        }
    }
}

fn bump(sink: &dyn MetricSink, id: Option<u32>, by: u64) {
    if let (Some(id), true) = (id, by > 0) {
        sink.increment(id, by);
    }
}

fn record(sink: &dyn MetricSink, id: Option<u32>, value: u64) {
    if let Some(id) = id {
        sink.record(id, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::fake::{Call, FakeHost};
    use std::collections::HashMap;

    /// A plan, its metrics, and the metric names by id.
    fn loaded(json: &str) -> (Plan, Metrics, HashMap<u32, String>) {
        let plan = crate::config::load(json.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let mut names = HashMap::new();
        let metrics = Metrics::define(&plan, &mut |_, name: &str| {
            let id = names.len() as u32 + 1;
            names.insert(id, name.to_string());
            Some(id)
        });
        (plan, metrics, names)
    }

    /// The gauges set since the last call (name, value), and the calls made.
    fn gauges_set(host: &FakeHost, names: &HashMap<u32, String>) -> (Vec<(String, u64)>, usize) {
        let calls = host.calls();
        host.clear_calls();
        let set = calls
            .iter()
            .filter_map(|c| match c {
                Call::Record(id, v) => Some((names[id].clone(), *v)),
                _ => None,
            })
            .collect();
        (set, calls.len())
    }

    const WEIGHT: &str = "llm_ab.experiment.e.variant";

    #[test]
    fn weight_gauges_follow_the_rollout_and_a_pause_and_are_set_only_when_they_change() {
        let (plan, metrics, names) = loaded(
            r#"{"default_cluster": "a", "experiments": [{"id": "e", "sticky_keys": ["x-user-id"],
              "rollout": {"start_unix_s": 1000, "steps": [{"weight": 10, "hold_s": 60}, {"weight": 50, "hold_s": 0}]},
              "slo": {"window_s": 60, "min_requests": 10, "max_error_rate": 0.5},
              "variants": [{"name": "control", "weight": 50, "cluster": "a"}, {"name": "cand", "weight": 50, "cluster": "b"}]},
             {"id": "still", "sticky_keys": ["x-user-id"],
              "variants": [{"name": "base", "weight": 80, "cluster": "a"}, {"name": "new", "weight": 20, "cluster": "b"}]}]}"#,
        );
        let host = FakeHost::default();
        let mut gauges = WeightGauges::default();
        let control = format!("{WEIGHT}.control.role.control.variant_weight_bp");
        let cand = format!("{WEIGHT}.cand.role.treatment.variant_weight_bp");
        let step = |gauges: &mut WeightGauges, now_s| {
            gauges.refresh(&plan, &metrics, &host, now_s);
            gauges_set(&host, &names)
        };
        // At load, all of them: before the schedule starts, no treatment.
        let (set, _) = step(&mut gauges, 999);
        assert_eq!(
            set,
            vec![
                (control.clone(), 10_000),
                (cand.clone(), 0),
                (
                    "llm_ab.experiment.still.variant.base.role.control.variant_weight_bp".into(),
                    8000
                ),
                (
                    "llm_ab.experiment.still.variant.new.role.treatment.variant_weight_bp".into(),
                    2000
                ),
            ]
        );
        // Nothing changed: nothing set; only the pause flag of `e` is read.
        assert_eq!(step(&mut gauges, 999), (vec![], 1));
        assert_eq!(
            step(&mut gauges, 1000).0,
            vec![(control.clone(), 9000), (cand.clone(), 1000)]
        );
        assert_eq!(step(&mut gauges, 1059).0, vec![]);
        assert_eq!(
            step(&mut gauges, 1060).0,
            vec![(control.clone(), 5000), (cand.clone(), 5000)]
        );
        // Paused on this proxy (by any VM): the treatment serves nobody.
        crate::slo::pause(&host, &crate::slo::pause_key(plan.config_hash, "e"));
        host.clear_calls();
        assert_eq!(
            step(&mut gauges, 1061).0,
            vec![(control, 10_000), (cand, 0)]
        );
    }
}
