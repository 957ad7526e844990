//! The shadow record: one JSON object per copy, POSTed to the sink. It
//! names the pair, the copy's variant and how it did; never prompt or
//! answer text.

use super::pairs::Pair;
use super::Scored;
use crate::config::Plan;
use serde_json::{json, Value};

/// The fields every shadow record carries (a value may be `null`).
pub const FIELDS: [&str; 17] = [
    "shadow",
    "paired_trace_id",
    "experiment_id",
    "variant",
    "model",
    "prompt_version",
    "outcome",
    "status",
    "tokens_in",
    "tokens_out",
    "cost_usd_est",
    "latency_ms",
    "similarity",
    "exact_match",
    "json_equal",
    "schema_pass",
    "control_outcome",
];

/// The record of a scored pair.
pub fn shadow_record(plan: &Plan, pair: &Pair, scored: &Scored) -> Value {
    let e = plan.experiments.get(pair.experiment);
    let v = e.and_then(|e| e.variants.get(pair.variant));
    let s = &pair.shadow;
    json!({
        "shadow": true,
        "paired_trace_id": pair.control.trace_id,
        "experiment_id": e.map(|e| e.id.as_str()),
        "variant": v.map(|v| v.name.as_str()),
        "model": v.and_then(|v| v.model.as_deref()),
        "prompt_version": v.and_then(|v| v.prompt_version.as_deref()),
        "outcome": s.outcome.as_str(),
        "status": s.status,
        "tokens_in": s.tokens.input,
        "tokens_out": s.tokens.output,
        "cost_usd_est": s.cost_usd,
        "latency_ms": s.latency_ms,
        // Four decimals: a score, not a measurement to the last bit.
        "similarity": scored.similarity.map(|x| (x * 10_000.0).round() / 10_000.0),
        "exact_match": scored.exact_match,
        "json_equal": scored.json_equal,
        "schema_pass": s.schema_pass,
        "control_outcome": pair.control.outcome.as_str(),
    })
}
