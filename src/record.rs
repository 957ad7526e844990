//! The per-request record: one JSON object per request, written to Envoy
//! filter state (`wasm.llm_ab_record`) for the access log.
//!
//! It never holds prompt or response text, nor the raw sticky key: only the
//! bucket the key hashed to.

use serde::Serialize;

/// How a request ended, from the experiment's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 2xx and no refusal.
    Success,
    /// Upstream error status, reset, or broken stream.
    Error,
    /// The model refused.
    Refusal,
    /// Stopped by a guardrail.
    Blocked,
    /// The filter refused the request as invalid (bad JSON, too large).
    Invalid,
    /// The treatment failed and control answered instead.
    Fallback,
}

impl Outcome {
    /// Every outcome, for pre-defining metrics.
    pub const ALL: [Outcome; 6] = [
        Outcome::Success,
        Outcome::Error,
        Outcome::Refusal,
        Outcome::Blocked,
        Outcome::Invalid,
        Outcome::Fallback,
    ];

    /// Stable name used in stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Refusal => "refusal",
            Outcome::Blocked => "blocked",
            Outcome::Invalid => "invalid",
            Outcome::Fallback => "fallback",
        }
    }
}

/// The fields every record carries (a value may be `null`): the access-log
/// contract that log pipelines and dashboards read.
pub const FIELDS: [&str; 19] = [
    "trace_id",
    "experiment_id",
    "assigned_variant",
    "served_variant",
    "reason",
    "bucket",
    "model",
    "prompt_version",
    "rag_index_version",
    "tokens_in",
    "tokens_in_cached",
    "tokens_out",
    "tokens_reasoning",
    "tokens_source",
    "cost_usd_est",
    "latency_ms",
    "ttft_ms",
    "status",
    "outcome",
];

/// One request, as written to the access log.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Record {
    /// W3C trace id (32 hex) shared with the upstream.
    pub trace_id: String,
    /// Envoy's `x-request-id`.
    pub request_id: Option<String>,
    /// Matched experiment.
    pub experiment_id: Option<String>,
    /// Variant assigned by the experiment.
    pub assigned_variant: Option<String>,
    /// Variant that actually served the request.
    pub served_variant: Option<String>,
    /// `hashed`, `forced`, `no_key`, `killed`, `paused`, `circuit_open`,
    /// `fallback` or `default`.
    pub reason: &'static str,
    /// The sticky key's bucket (0..9999), when it had one.
    pub bucket: Option<u16>,
    /// Model sent upstream.
    pub model: Option<String>,
    /// Prompt version of the served variant.
    pub prompt_version: Option<String>,
    /// RAG index version of the served variant.
    pub rag_index_version: Option<String>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Prompt tokens (cached included).
    pub tokens_in: u64,
    /// Prompt tokens the provider served from its prompt cache.
    pub tokens_in_cached: u64,
    /// Completion tokens (reasoning included).
    pub tokens_out: u64,
    /// Completion tokens spent on reasoning.
    pub tokens_reasoning: u64,
    /// `usage`, `estimated` or `unreadable`.
    pub tokens_source: &'static str,
    /// Estimated cost in USD from the configured pricing.
    pub cost_usd_est: f64,
    /// From request headers to the end of the response.
    pub latency_ms: u64,
    /// Time to first response byte of a stream.
    pub ttft_ms: Option<u64>,
    /// HTTP status returned to the client.
    pub status: u32,
    /// Experiment outcome.
    pub outcome: Option<Outcome>,
    /// The filter's error code when it answered itself or cut the output.
    pub error_code: Option<&'static str>,
    /// Output schema check, when one ran.
    pub schema_pass: Option<bool>,
}

/// Bytes reserved for a record's JSON (a typical one has 500 to 700).
const RECORD_CAPACITY: usize = 768;

impl Record {
    /// The record as one JSON line (no trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        // Sized for a whole record: growing the buffer step by step copied
        // it five times.
        let mut out = Vec::with_capacity(RECORD_CAPACITY);
        match serde_json::to_writer(&mut out, self) {
            Ok(()) => out,
            Err(_) => b"{}".to_vec(),
        }
    }
}

/// The outcome of a finished exchange.
pub fn outcome_of(status: u32, refused: bool, complete: bool) -> Outcome {
    match status {
        200..=299 if !complete => Outcome::Error,
        200..=299 if refused => Outcome::Refusal,
        200..=299 => Outcome::Success,
        _ => Outcome::Error,
    }
}

/// The outcome of an exchange the filter ended with `code` and `status`.
pub fn outcome_for_code(code: &str, status: u32) -> Outcome {
    match code {
        "context_budget_exceeded"
        | "content_blocked"
        | "tool_not_allowed"
        | "token_quota_exceeded"
        | "schema_validation_failed"
        | "output_blocked" => Outcome::Blocked,
        _ if status >= 500 => Outcome::Error,
        _ => Outcome::Invalid,
    }
}

/// `1xx` … `5xx` for a status code.
pub fn status_class(status: u32) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_serializes_every_field() {
        let r = Record {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            reason: "hashed",
            outcome: Some(Outcome::Success),
            tokens_source: "usage",
            ..Record::default()
        };
        let v: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap_or_default();
        for field in FIELDS {
            assert!(v.get(field).is_some(), "missing {field}");
        }
        assert_eq!(v["outcome"], "success");
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome_of(200, false, true), Outcome::Success);
        assert_eq!(outcome_of(200, true, true), Outcome::Refusal);
        assert_eq!(outcome_of(200, false, false), Outcome::Error);
        assert_eq!(outcome_of(503, false, true), Outcome::Error);
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(504), "5xx");
        assert_eq!(status_class(0), "5xx");
        assert_eq!(
            outcome_for_code("token_quota_exceeded", 429),
            Outcome::Blocked
        );
        assert_eq!(outcome_for_code("upstream_timeout", 504), Outcome::Error);
        assert_eq!(outcome_for_code("invalid_json", 400), Outcome::Invalid);
    }
}
