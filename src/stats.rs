//! Names of the filter's Envoy stats.
//!
//! Labels are name segments (`experiment.<id>.variant.<name>.reason.<r>`)
//! that the `stats_tags` in `envoy/envoy.yaml` turn into Prometheus labels,
//! so `/stats/prometheus` shows e.g.
//! `llm_ab_requests{experiment="chat-q4",variant="control",reason="hashed"}`.
//! Ids and names are validated to `[A-Za-z0-9_-]`, so they never contain a dot.

/// Requests that matched no experiment and went to `default_cluster`.
pub const DEFAULT_ROUTE_REQUESTS: &str = "llm_ab.default_route.requests";

/// Gauge: the linear memory of every filter VM of the proxy, in bytes (sum).
pub const VM_MEMORY_BYTES: &str = "llm_ab.vm_memory_bytes";

/// Codes of the local replies the routing layer can send.
pub const REJECT_CODES: [&str; 11] = [
    "invalid_json",
    "request_too_large",
    "redaction_failed",
    "context_budget_exceeded",
    "content_blocked",
    "output_blocked",
    "tool_not_allowed",
    "token_quota_exceeded",
    "upstream_timeout",
    "schema_validation_failed",
    "unsupported_content_encoding",
];

/// Counter of output schema checks by result (`pass`, `fail`).
pub fn schema_checks(experiment: &str, variant: &str, result: &str) -> String {
    format!("llm_ab.experiment.{experiment}.variant.{variant}.schema_result.{result}.schema_checks")
}

/// Counter of requests assigned to a variant, by reason.
pub fn requests(experiment: &str, variant: &str, reason: &str) -> String {
    format!("llm_ab.experiment.{experiment}.variant.{variant}.reason.{reason}.requests")
}

/// Counter of requests the filter answered itself, by error code.
pub fn rejected(experiment: &str, variant: &str, code: &str) -> String {
    format!("llm_ab.experiment.{experiment}.variant.{variant}.code.{code}.rejected")
}

/// Counter of responses by status class (`2xx` …).
pub fn responses(experiment: &str, variant: &str, class: &str) -> String {
    format!("llm_ab.experiment.{experiment}.variant.{variant}.status_class.{class}.responses")
}

/// Counter of finished requests by outcome.
pub fn outcomes(experiment: &str, variant: &str, outcome: &str) -> String {
    outcome_metric(experiment, variant, outcome, "outcomes")
}

/// Counter `metric` of a variant by outcome (e.g. `shadow_calls`).
pub fn outcome_metric(experiment: &str, variant: &str, outcome: &str, metric: &str) -> String {
    format!("llm_ab.experiment.{experiment}.variant.{variant}.outcome.{outcome}.{metric}")
}

/// Counter of copies to a shadow variant not sent or not answered, by reason.
pub fn shadow_skipped(experiment: &str, variant: &str, reason: &str) -> String {
    format!("llm_ab.experiment.{experiment}.variant.{variant}.reason.{reason}.shadow_skipped")
}

/// The paired outcomes (control's first, then the copy's), in the order
/// [`crate::metrics::Metrics::record_shadow`] counts them.
pub const SHADOW_PAIRS: [&str; 4] = [
    "success_success",
    "success_failure",
    "failure_success",
    "failure_failure",
];

/// Counter of shadow pairs by paired outcome (`pair` label).
pub fn shadow_pairs(experiment: &str, variant: &str, pair: &str) -> String {
    format!("llm_ab.experiment.{experiment}.variant.{variant}.pair.{pair}.shadow_pairs")
}

/// Counter of matched requests without a sticky key.
pub fn unassigned(experiment: &str) -> String {
    format!("llm_ab.experiment.{experiment}.unassigned_requests")
}

/// Per-variant counter or histogram named `metric` (`tokens_in`,
/// `tokens_out`, `cost_micro_usd`, `latency_ms`, `ttft_ms`).
pub fn per_variant(experiment: &str, variant: &str, metric: &str) -> String {
    format!("llm_ab.experiment.{experiment}.variant.{variant}.{metric}")
}

/// Counter of values redacted by a detector (built-in or custom name).
pub fn redactions(experiment: &str, variant: &str, detector: &str) -> String {
    format!("llm_ab.experiment.{experiment}.variant.{variant}.detector.{detector}.redactions")
}

/// Gauge: 1 while the experiment is paused by an SLO breach.
pub fn paused(experiment: &str) -> String {
    format!("llm_ab.experiment.{experiment}.paused")
}

/// Gauge: the buckets of 10000 (basis points) whose users the variant
/// serves now, with its role (`control` or `treatment`) as a label.
pub fn variant_weight(experiment: &str, variant: &str, role: &str) -> String {
    format!("llm_ab.experiment.{experiment}.variant.{variant}.role.{role}.variant_weight_bp")
}

/// Status classes counted.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_put_labels_in_segments() {
        assert_eq!(
            requests("chat-q4", "control", "hashed"),
            "llm_ab.experiment.chat-q4.variant.control.reason.hashed.requests"
        );
        assert_eq!(
            rejected("e", "v", "invalid_json"),
            "llm_ab.experiment.e.variant.v.code.invalid_json.rejected"
        );
        assert_eq!(
            variant_weight("e", "v", "control"),
            "llm_ab.experiment.e.variant.v.role.control.variant_weight_bp"
        );
    }
}
