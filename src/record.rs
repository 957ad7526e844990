//! The per-request record: one JSON object per request, written to Envoy
//! filter state (`wasm.llm_ab_record`) for the access log.
//!
//! It never holds prompt or response text, nor the raw sticky key: only the
//! bucket the key hashed to.

#[cfg(test)]
use serde::Serialize;

/// How a request ended, from the experiment's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(Serialize), serde(rename_all = "snake_case"))]
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
pub const FIELDS: [&str; 23] = [
    "trace_id",
    "start_unix_ms",
    "experiment_id",
    "assigned_variant",
    "served_variant",
    "reason",
    "bucket",
    "model",
    "response_model",
    "prompt_version",
    "rag_index_version",
    "api",
    "tokens_in",
    "tokens_in_cached",
    "tokens_in_cache_write",
    "tokens_out",
    "tokens_reasoning",
    "tokens_source",
    "cost_usd_est",
    "latency_ms",
    "ttft_ms",
    "status",
    "outcome",
];

/// One request, as written to the access log ([`Record::to_json`]; serde's
/// derive exists in tests only, as the reference the writer is checked with).
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(test, derive(Serialize))]
pub struct Record {
    /// W3C trace id (32 hex) shared with the upstream.
    pub trace_id: String,
    /// Envoy's `x-request-id`.
    pub request_id: Option<String>,
    /// When the request headers reached the filter (Unix milliseconds).
    pub start_unix_ms: u64,
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
    /// The sticky key's pseudonymous id (16 hex digits), only when the
    /// experiment has a `unit_id_key`: the field is left out otherwise.
    #[cfg_attr(test, serde(skip_serializing_if = "Option::is_none"))]
    pub unit_id: Option<String>,
    /// Model sent upstream.
    pub model: Option<String>,
    /// Model that answered, as the response names it.
    pub response_model: Option<String>,
    /// Prompt version of the served variant.
    pub prompt_version: Option<String>,
    /// RAG index version of the served variant.
    pub rag_index_version: Option<String>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The API the request spoke (`openai.chat`, `anthropic.messages`, …:
    /// [`crate::dialect::Api::as_str`]).
    pub api: &'static str,
    /// Prompt tokens (cached included).
    pub tokens_in: u64,
    /// Prompt tokens the provider served from its prompt cache.
    pub tokens_in_cached: u64,
    /// Prompt tokens the provider wrote to its prompt cache.
    pub tokens_in_cache_write: u64,
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
    /// The record as one JSON line (no trailing newline): the bytes
    /// `serde_json` writes for it (tested), written field by field. Each
    /// key goes out with its punctuation in one piece: serde's writer made
    /// six small writes per field, each a `memory.copy` call in the VM.
    pub fn to_json(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(RECORD_CAPACITY));
        w.key("{\"trace_id\":");
        w.string(&self.trace_id);
        w.key(",\"request_id\":");
        w.opt_string(self.request_id.as_deref());
        w.key(",\"start_unix_ms\":");
        w.number(self.start_unix_ms);
        w.key(",\"experiment_id\":");
        w.opt_string(self.experiment_id.as_deref());
        w.key(",\"assigned_variant\":");
        w.opt_string(self.assigned_variant.as_deref());
        w.key(",\"served_variant\":");
        w.opt_string(self.served_variant.as_deref());
        w.key(",\"reason\":");
        w.string(self.reason);
        w.key(",\"bucket\":");
        w.opt_number(self.bucket.map(u64::from));
        if let Some(id) = &self.unit_id {
            w.key(",\"unit_id\":");
            w.string(id);
        }
        w.key(",\"model\":");
        w.opt_string(self.model.as_deref());
        w.key(",\"response_model\":");
        w.opt_string(self.response_model.as_deref());
        w.key(",\"prompt_version\":");
        w.opt_string(self.prompt_version.as_deref());
        w.key(",\"rag_index_version\":");
        w.opt_string(self.rag_index_version.as_deref());
        w.key(",\"stream\":");
        w.key(if self.stream { "true" } else { "false" });
        w.key(",\"api\":");
        w.string(self.api);
        w.key(",\"tokens_in\":");
        w.number(self.tokens_in);
        w.key(",\"tokens_in_cached\":");
        w.number(self.tokens_in_cached);
        w.key(",\"tokens_in_cache_write\":");
        w.number(self.tokens_in_cache_write);
        w.key(",\"tokens_out\":");
        w.number(self.tokens_out);
        w.key(",\"tokens_reasoning\":");
        w.number(self.tokens_reasoning);
        w.key(",\"tokens_source\":");
        w.string(self.tokens_source);
        w.key(",\"cost_usd_est\":");
        w.float(self.cost_usd_est);
        w.key(",\"latency_ms\":");
        w.number(self.latency_ms);
        w.key(",\"ttft_ms\":");
        w.opt_number(self.ttft_ms);
        w.key(",\"status\":");
        w.number(u64::from(self.status));
        w.key(",\"outcome\":");
        w.opt_string(self.outcome.map(Outcome::as_str));
        w.key(",\"error_code\":");
        w.opt_string(self.error_code);
        w.key(",\"schema_pass\":");
        w.opt_bool(self.schema_pass);
        w.key("}");
        w.0
    }
}

/// A JSON writer for records (the access log's and the shadow record),
/// field by field, escaping as `serde_json` does.
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn key(&mut self, raw: &str) {
        self.0.extend_from_slice(raw.as_bytes());
    }

    pub(crate) fn string(&mut self, s: &str) {
        crate::json::push_string(&mut self.0, s);
    }

    pub(crate) fn opt_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.key("null"),
        }
    }

    pub(crate) fn number(&mut self, n: u64) {
        crate::json::push_decimal(&mut self.0, n);
    }

    /// `serde_json`'s float format (shortest round trip; `null` if not finite).
    pub(crate) fn float(&mut self, x: f64) {
        crate::json::push_float(&mut self.0, x);
    }

    pub(crate) fn opt_bool(&mut self, b: Option<bool>) {
        self.key(match b {
            None => "null",
            Some(true) => "true",
            Some(false) => "false",
        });
    }

    pub(crate) fn opt_number(&mut self, n: Option<u64>) {
        match n {
            Some(n) => self.number(n),
            None => self.key("null"),
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
    fn the_record_is_written_as_serde_writes_it() {
        let state = std::cell::Cell::new(0x9e37_79b9_7f4a_7c15u64);
        let next = || {
            let mut seed = state.get();
            crate::testing::xorshift(&mut seed);
            state.set(seed);
            seed
        };
        // Every control character, quotes, backslashes, non-ASCII text.
        let texts: Vec<String> = (0u8..0x20)
            .map(|c| format!("a{}b", c as char))
            .chain(
                [
                    "",
                    "plain",
                    "q\"uote",
                    "back\\slash",
                    "café 日本 🎉",
                    "\u{7f}del",
                    "</script>",
                ]
                .map(String::from),
            )
            .collect();
        let costs = [
            0.0,
            1.0,
            0.5,
            1e-7,
            1.25e-5,
            0.000_123_4,
            123_456.789,
            1e21,
            f64::NAN,
            f64::INFINITY,
        ];
        let reasons = ["hashed", "forced", "default"];
        for _ in 0..20_000 {
            let pick = || texts[next() as usize % texts.len()].clone();
            let maybe = |r: u64, s: String| (r % 3 != 0).then_some(s);
            let r = Record {
                trace_id: pick(),
                request_id: maybe(next(), pick()),
                start_unix_ms: next() >> (next() % 64),
                experiment_id: maybe(next(), pick()),
                assigned_variant: maybe(next(), pick()),
                served_variant: maybe(next(), pick()),
                reason: reasons[next() as usize % 3],
                bucket: (next() % 2 == 0).then(|| (next() % 10_000) as u16),
                unit_id: maybe(next(), pick()),
                model: maybe(next(), pick()),
                response_model: maybe(next(), pick()),
                prompt_version: maybe(next(), pick()),
                rag_index_version: maybe(next(), pick()),
                stream: next() % 2 == 0,
                api: ["openai.chat", "anthropic.messages", ""][next() as usize % 3],
                tokens_in: next() >> (next() % 64),
                tokens_in_cached: next() % 1000,
                tokens_in_cache_write: next() % 1000,
                tokens_out: if next() % 5 == 0 {
                    u64::MAX
                } else {
                    next() % 100_000
                },
                tokens_reasoning: 0,
                tokens_source: ["usage", "estimated", "unreadable"][next() as usize % 3],
                cost_usd_est: costs[next() as usize % costs.len()] * (next() % 7) as f64,
                latency_ms: next() % 100_000,
                ttft_ms: (next() % 2 == 0).then(|| next() % 5000),
                status: (next() % 600) as u32,
                outcome: (next() % 4 != 0).then(|| Outcome::ALL[next() as usize % 6]),
                error_code: (next() % 3 == 0).then_some("upstream_timeout"),
                schema_pass: [None, Some(true), Some(false)][next() as usize % 3],
            };
            assert_eq!(
                String::from_utf8(r.to_json()).unwrap(),
                serde_json::to_string(&r).unwrap(),
                "{r:?}"
            );
        }
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
