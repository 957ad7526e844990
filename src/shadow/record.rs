//! The shadow record: one JSON object per copy, POSTed to the sink. It
//! names the pair, the copy's variant and how it did; never prompt or
//! answer text.

use super::pairs::Pair;
use super::Scored;
use crate::config::Plan;
use crate::record::Writer;

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

/// The record of a scored pair, as JSON bytes.
pub fn shadow_record(plan: &Plan, pair: &Pair, scored: &Scored) -> Vec<u8> {
    let e = plan.experiments.get(pair.experiment);
    let v = e.and_then(|e| e.variants.get(pair.variant));
    let s = &pair.shadow;
    let mut w = Writer(Vec::with_capacity(512));
    w.key("{\"shadow\":true,\"paired_trace_id\":");
    w.string(&pair.control.trace_id);
    w.key(",\"experiment_id\":");
    w.opt_string(e.map(|e| e.id.as_str()));
    w.key(",\"variant\":");
    w.opt_string(v.map(|v| v.name.as_str()));
    w.key(",\"model\":");
    w.opt_string(v.and_then(|v| v.model.as_deref()));
    w.key(",\"prompt_version\":");
    w.opt_string(v.and_then(|v| v.prompt_version.as_deref()));
    w.key(",\"outcome\":");
    w.string(s.outcome.as_str());
    w.key(",\"status\":");
    w.number(u64::from(s.status));
    w.key(",\"tokens_in\":");
    w.number(s.tokens.input);
    w.key(",\"tokens_out\":");
    w.number(s.tokens.output);
    w.key(",\"cost_usd_est\":");
    w.float(s.cost_usd);
    w.key(",\"latency_ms\":");
    w.number(s.latency_ms);
    w.key(",\"similarity\":");
    match scored.similarity {
        // Four decimals: a score, not a measurement to the last bit.
        Some(x) => w.float((x * 10_000.0).round() / 10_000.0),
        None => w.key("null"),
    }
    w.key(",\"exact_match\":");
    w.opt_bool(scored.exact_match);
    w.key(",\"json_equal\":");
    w.opt_bool(scored.json_equal);
    w.key(",\"schema_pass\":");
    w.opt_bool(s.schema_pass);
    w.key(",\"control_outcome\":");
    w.string(pair.control.outcome.as_str());
    w.key("}");
    w.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Outcome;
    use crate::shadow::{ControlSide, ShadowOutcome, ShadowSide};

    #[test]
    fn the_record_is_json_with_every_field() {
        let plan = crate::config::load(
            br#"{"default_cluster": "a", "experiments": [{"id": "e", "sticky_keys": ["x-u"],
              "variants": [{"name": "c", "weight": 100, "cluster": "a"},
                           {"name": "s", "weight": 0, "cluster": "b", "model": "m"}],
              "shadow": {"variants": ["s"]}}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let pair = Pair {
            experiment: 0,
            variant: 1,
            control: ControlSide {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                outcome: Outcome::Success,
                answer: Vec::new(),
                stream: false,
                kept: true,
            },
            shadow: ShadowSide {
                outcome: ShadowOutcome::Refusal,
                status: 200,
                tokens: crate::usage::Tokens::NONE,
                cost_usd: 1.25e-5,
                latency_ms: 7,
                text: "never written".into(),
                schema_pass: Some(false),
            },
        };
        let scored = Scored {
            similarity: Some(2.0 / 3.0),
            exact_match: Some(false),
            json_equal: None,
        };
        let bytes = shadow_record(&plan, &pair, &scored);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let keys: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut want = FIELDS.to_vec();
        want.sort_unstable();
        let mut got = keys.clone();
        got.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(v["similarity"], 0.6667);
        assert_eq!(v["cost_usd_est"], 1.25e-5);
        assert_eq!(v["schema_pass"], false);
        assert_eq!(v["json_equal"], serde_json::Value::Null);
        assert_eq!(v["outcome"], "refusal");
        assert!(!String::from_utf8_lossy(&bytes).contains("never written"));
    }
}
