//! Envoy custom metrics, defined once per VM when the configuration loads.
//!
//! Names carry their labels as segments (`experiment.<id>.variant.<name>…`,
//! see [`crate::stats`]); the shipped `envoy.yaml` lifts them out as
//! Prometheus labels with `stats_tags`.

use crate::config::Plan;
use crate::record::Outcome;
use crate::route::Reason;
use crate::stats as names;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

fn define(kind: MetricType, name: &str) -> Option<u32> {
    match hostcalls::define_metric(kind, name) {
        Ok(id) => Some(id),
        Err(status) => {
            log::warn!("could not define metric {name}: {status:?}");
            None
        }
    }
}

fn counter(name: &str) -> Option<u32> {
    define(MetricType::Counter, name)
}

/// Metric ids of one experiment × variant; `None` where the host refused.
pub struct VariantMetrics {
    requests: Vec<Option<u32>>,
    rejected: Vec<Option<u32>>,
    responses: Vec<Option<u32>>,
    outcomes: Vec<Option<u32>>,
    tokens_in: Option<u32>,
    tokens_in_cached: Option<u32>,
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

impl VariantMetrics {
    fn define(e: &str, v: &str, detectors: &[&str]) -> VariantMetrics {
        let hist = |m: &str| define(MetricType::Histogram, &names::per_variant(e, v, m));
        VariantMetrics {
            requests: Reason::ALL
                .iter()
                .map(|r| counter(&names::requests(e, v, r.as_str())))
                .collect(),
            rejected: names::REJECT_CODES
                .iter()
                .map(|c| counter(&names::rejected(e, v, c)))
                .collect(),
            responses: names::STATUS_CLASSES
                .iter()
                .map(|c| counter(&names::responses(e, v, c)))
                .collect(),
            outcomes: Outcome::ALL
                .iter()
                .map(|o| counter(&names::outcomes(e, v, o.as_str())))
                .collect(),
            tokens_in: counter(&names::per_variant(e, v, "tokens_in")),
            tokens_in_cached: counter(&names::per_variant(e, v, "tokens_in_cached")),
            tokens_out: counter(&names::per_variant(e, v, "tokens_out")),
            tokens_reasoning: counter(&names::per_variant(e, v, "tokens_reasoning")),
            unreadable: counter(&names::per_variant(e, v, "unreadable_responses")),
            cost_micro_usd: counter(&names::per_variant(e, v, "cost_micro_usd")),
            latency_ms: hist("latency_ms"),
            ttft_ms: hist("ttft_ms"),
            redactions: detectors
                .iter()
                .map(|d| counter(&names::redactions(e, v, d)))
                .collect(),
            schema: [
                counter(&names::schema_checks(e, v, "pass")),
                counter(&names::schema_checks(e, v, "fail")),
            ],
            redaction_skipped: (!detectors.is_empty())
                .then(|| counter(&names::per_variant(e, v, "redaction_skipped")))
                .flatten(),
        }
    }
}

/// Every metric of a plan, for one VM.
pub struct Metrics {
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
    /// Defines every metric the plan can emit.
    pub fn define(plan: &Plan) -> Metrics {
        let detectors = plan
            .redaction
            .as_ref()
            .map(|r| r.detector_names())
            .unwrap_or_default();
        Metrics {
            variants: plan
                .experiments
                .iter()
                .map(|e| {
                    e.variants
                        .iter()
                        .map(|v| VariantMetrics::define(&e.id, &v.name, &detectors))
                        .collect()
                })
                .collect(),
            unassigned: plan
                .experiments
                .iter()
                .map(|e| counter(&names::unassigned(&e.id)))
                .collect(),
            default_route: counter(names::DEFAULT_ROUTE_REQUESTS),
            paused: plan
                .experiments
                .iter()
                .map(|e| {
                    e.slo
                        .as_ref()
                        .and_then(|_| define(MetricType::Gauge, &names::paused(&e.id)))
                })
                .collect(),
            circuit_open: plan
                .experiments
                .iter()
                .map(|e| {
                    e.variants
                        .iter()
                        .map(|v| {
                            e.breaker.as_ref().and_then(|_| {
                                define(
                                    MetricType::Gauge,
                                    &names::per_variant(&e.id, &v.name, "circuit_open"),
                                )
                            })
                        })
                        .collect()
                })
                .collect(),
            review: if plan.guardrails.review.is_some() {
                [
                    counter("llm_ab.review.result.sent.copies"),
                    counter("llm_ab.review.result.failed.copies"),
                    counter("llm_ab.review.result.dropped.copies"),
                ]
            } else {
                [None; 3]
            },
        }
    }

    fn variant(&self, experiment: usize, variant: usize) -> Option<&VariantMetrics> {
        self.variants.get(experiment)?.get(variant)
    }

    /// Counts a request assigned to `variant` of `experiment` for `reason`.
    pub fn count_request(&self, experiment: usize, variant: usize, reason: Reason) {
        let r = Reason::ALL.iter().position(|x| *x == reason);
        if let (Some(m), Some(r)) = (self.variant(experiment, variant), r) {
            bump(m.requests.get(r).copied().flatten(), 1);
        }
        if reason == Reason::NoKey {
            bump(self.unassigned.get(experiment).copied().flatten(), 1);
        }
    }

    /// Counts a request the filter answered itself with `code`.
    pub fn count_rejected(&self, experiment: usize, variant: usize, code: &str) {
        let c = names::REJECT_CODES.iter().position(|x| *x == code);
        if let (Some(m), Some(c)) = (self.variant(experiment, variant), c) {
            bump(m.rejected.get(c).copied().flatten(), 1);
        }
    }

    /// Adds the values redacted in one exchange, per detector.
    pub fn count_redactions(&self, experiment: usize, variant: usize, counts: &[u64]) {
        if let Some(m) = self.variant(experiment, variant) {
            for (id, n) in m.redactions.iter().zip(counts) {
                bump(*id, *n);
            }
        }
    }

    /// Counts a body forwarded unscanned (`on_error: pass`).
    pub fn count_redaction_skipped(&self, experiment: usize, variant: usize) {
        if let Some(m) = self.variant(experiment, variant) {
            bump(m.redaction_skipped, 1);
        }
    }

    /// Counts one output schema check.
    pub fn count_schema(&self, experiment: usize, variant: usize, pass: bool) {
        if let Some(m) = self.variant(experiment, variant) {
            bump(m.schema[usize::from(!pass)], 1);
        }
    }

    /// Counts a review copy by result: 0 sent, 1 failed, 2 dropped.
    pub fn count_review(&self, result: usize) {
        bump(self.review.get(result).copied().flatten(), 1);
    }

    /// Sets the experiment's paused gauge.
    pub fn set_paused(&self, experiment: usize, paused: bool) {
        record(
            self.paused.get(experiment).copied().flatten(),
            u64::from(paused),
        );
    }

    /// Sets a variant's circuit-open gauge.
    pub fn set_circuit_open(&self, experiment: usize, variant: usize, open: bool) {
        let id = self
            .circuit_open
            .get(experiment)
            .and_then(|v| v.get(variant))
            .copied()
            .flatten();
        record(id, u64::from(open));
    }

    /// Counts a request that matched no experiment.
    pub fn count_default_route(&self) {
        bump(self.default_route, 1);
    }

    /// Records a finished exchange of a variant.
    pub fn record_finished(&self, experiment: usize, variant: usize, f: &Finished<'_>) {
        let Some(m) = self.variant(experiment, variant) else {
            return;
        };
        let class = names::STATUS_CLASSES
            .iter()
            .position(|c| *c == f.status_class);
        bump(class.and_then(|c| m.responses.get(c).copied().flatten()), 1);
        let outcome = Outcome::ALL.iter().position(|o| *o == f.outcome);
        bump(
            outcome.and_then(|o| m.outcomes.get(o).copied().flatten()),
            1,
        );
        bump(m.tokens_in, f.tokens.input);
        bump(m.tokens_in_cached, f.tokens.cached);
        bump(m.tokens_out, f.tokens.output);
        bump(m.tokens_reasoning, f.tokens.reasoning);
        if f.tokens.source == crate::usage::TokensSource::Unreadable {
            bump(m.unreadable, 1);
        }
        bump(m.cost_micro_usd, f.cost_micro_usd);
        record(m.latency_ms, f.latency_ms);
        if let Some(ttft) = f.ttft_ms {
            record(m.ttft_ms, ttft);
        }
    }
}

fn bump(id: Option<u32>, by: u64) {
    if let (Some(id), true) = (id, by > 0) {
        let _ = hostcalls::increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
    }
}

fn record(id: Option<u32>, value: u64) {
    if let Some(id) = id {
        let _ = hostcalls::record_metric(id, value);
    }
}
