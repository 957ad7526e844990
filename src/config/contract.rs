//! The JSON configuration contract exactly as users write it.
//!
//! These structs only describe shape and defaults (read by
//! `read.rs`; serde's derive of them exists in tests only, as the
//! reference the reader is compared with); semantic rules live in
//! [`super::validate`] and the request path reads the compiled
//! [`super::Plan`], never these types.

#[cfg(test)]
use serde::Deserialize;

/// Header the filter always overwrites with the chosen upstream cluster.
pub const DEFAULT_ROUTE_HEADER: &str = "x-llm-cluster";

/// Default cap on a buffered request body (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;

/// Top-level filter configuration.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct FilterConfig {
    /// Request header carrying the chosen cluster (route uses `cluster_header`).
    #[cfg_attr(test, serde(default = "default_route_header"))]
    pub route_header: String,
    /// Cluster for requests no experiment matches.
    pub default_cluster: String,
    /// Whether the response to the client carries `x-llm-experiment`/`x-llm-variant`.
    #[cfg_attr(test, serde(default = "default_true"))]
    pub expose_headers: bool,
    /// Optional forced-variant override for testing, guarded by a token.
    #[cfg_attr(test, serde(default, rename = "override"))]
    pub override_: Option<OverrideConfig>,
    /// Largest request body the filter buffers; larger bodies get 413.
    #[cfg_attr(test, serde(default = "default_max_body_bytes"))]
    pub max_body_bytes: u64,
    /// Experiments, tried in order; the first match wins.
    #[cfg_attr(test, serde(default))]
    pub experiments: Vec<ExperimentConfig>,
    /// Price per million tokens by model, for `cost_usd_est`.
    #[cfg_attr(test, serde(default))]
    pub pricing: crate::json::Map<PriceConfig>,
    /// Output phrases that mark a response as a refusal (case-insensitive).
    #[cfg_attr(test, serde(default))]
    pub refusal_phrases: Vec<String>,
    /// PII and secret redaction; off when absent.
    #[cfg_attr(test, serde(default))]
    pub redaction: Option<RedactionConfig>,
    /// `false`: routing only, no trace ids, records or response metrics
    /// (features that need them are refused with it).
    #[cfg_attr(test, serde(default = "default_true"))]
    pub telemetry: bool,
    /// `true` when Envoy traces these requests (the connection manager's
    /// `tracing` with the llm-ab custom tags, as the shipped `envoy.yaml`
    /// has it): the record takes the trace id of Envoy's span, and the
    /// span attributes are written to filter state for the custom tags.
    #[cfg_attr(test, serde(default))]
    pub tracing: bool,
    /// Token, quota and time budgets; none when absent.
    #[cfg_attr(test, serde(default))]
    pub budgets: Option<BudgetsConfig>,
    /// Moderation, tool allowlist, output schema, human review.
    #[cfg_attr(test, serde(default))]
    pub guardrails: Option<GuardrailsConfig>,
}

/// Token, quota and time budgets.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct BudgetsConfig {
    /// Largest estimated prompt; larger gets 400 `context_budget_exceeded`.
    #[cfg_attr(test, serde(default))]
    pub max_input_tokens: Option<u64>,
    /// Cap on `max_tokens` / `max_completion_tokens` (inserted when missing).
    #[cfg_attr(test, serde(default))]
    pub max_output_tokens: Option<u64>,
    /// Token quotas per value of a header, per Envoy instance.
    #[cfg_attr(test, serde(default))]
    pub quotas: Vec<QuotaConfig>,
    /// Upstream timeout for matched requests.
    #[cfg_attr(test, serde(default))]
    pub timeout_ms: Option<u64>,
}

/// A token quota keyed by a request header.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct QuotaConfig {
    /// Header whose value is the quota key (e.g. `x-org-id`).
    pub key: String,
    /// Tokens (prompt estimate + output cap, settled with real usage) per minute.
    pub tokens_per_minute: u64,
}

/// Guardrails.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct GuardrailsConfig {
    /// Blocked patterns in requests and responses.
    #[cfg_attr(test, serde(default))]
    pub moderation: Option<ModerationConfig>,
    /// Tool allowlist.
    #[cfg_attr(test, serde(default))]
    pub tools: Option<ToolsConfig>,
    /// Output JSON schema validation.
    #[cfg_attr(test, serde(default))]
    pub response_schema: Option<ResponseSchemaConfig>,
    /// Copies of high-risk exchanges to a review endpoint.
    #[cfg_attr(test, serde(default))]
    pub review: Option<ReviewConfig>,
}

/// Moderation patterns (regex-lite).
#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct ModerationConfig {
    /// Patterns refused in anything the model will see.
    #[cfg_attr(test, serde(default))]
    pub request_patterns: Vec<String>,
    /// Patterns replaced by a refusal in model output.
    #[cfg_attr(test, serde(default))]
    pub response_patterns: Vec<String>,
}

/// Tool allowlist.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct ToolsConfig {
    /// Tool (function) names allowed.
    pub allow: Vec<String>,
    /// `"block"` (403) or `"strip"` (remove the tool from the request).
    #[cfg_attr(test, serde(default = "default_block"))]
    pub on_violation: String,
}

/// Output schema validation.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct ResponseSchemaConfig {
    /// `"count"`, `"block"` or `"fallback"`.
    #[cfg_attr(test, serde(default = "default_count"))]
    pub on_fail: String,
    /// Schema applied when the request carries none.
    #[cfg_attr(test, serde(default))]
    pub schema: Option<crate::json::Value>,
}

/// Human review sampling.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct ReviewConfig {
    /// Envoy cluster receiving `POST /review` copies.
    pub cluster: String,
    /// Share of all exchanges sent (0..=1).
    #[cfg_attr(test, serde(default))]
    pub sample_rate: f64,
    /// Outcomes always sent: `refusal`, `blocked`, `schema_fail`, `fallback`, `error`.
    #[cfg_attr(test, serde(default))]
    pub always: Vec<String>,
    /// Call timeout.
    #[cfg_attr(test, serde(default = "default_review_timeout"))]
    pub timeout_ms: u64,
}

pub(super) fn default_block() -> String {
    "block".to_string()
}

pub(super) fn default_count() -> String {
    "count".to_string()
}

pub(super) fn default_review_timeout() -> u64 {
    2000
}

/// PII and secret redaction settings.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct RedactionConfig {
    /// Scan request bodies before they go upstream.
    #[cfg_attr(test, serde(default = "default_true"))]
    pub request: bool,
    /// Scan response bodies before they reach the client.
    #[cfg_attr(test, serde(default = "default_true"))]
    pub response: bool,
    /// Built-in detectors; all of them when absent.
    #[cfg_attr(test, serde(default))]
    pub detectors: Option<Vec<String>>,
    /// Extra named patterns (regex-lite syntax).
    #[cfg_attr(test, serde(default))]
    pub custom: Vec<CustomPatternConfig>,
    /// `"[REDACTED:{type}]"`-style template, or `"hash"`.
    #[cfg_attr(test, serde(default = "default_replacement"))]
    pub replacement: String,
    /// Key of the keyed hash; required with `"replacement": "hash"`.
    #[cfg_attr(test, serde(default))]
    pub hash_key: Option<String>,
    /// `"block"` (default) or `"pass"` for bodies that cannot be scanned.
    #[cfg_attr(test, serde(default = "default_on_error"))]
    pub on_error: String,
}

/// A named custom pattern.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct CustomPatternConfig {
    /// Name (`[a-z0-9_]`), used in stats and in the replacement.
    pub name: String,
    /// regex-lite pattern.
    pub pattern: String,
}

pub(super) fn default_replacement() -> String {
    "[REDACTED:{type}]".to_string()
}

pub(super) fn default_on_error() -> String {
    "block".to_string()
}

/// Price of one model in USD per million tokens.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct PriceConfig {
    /// USD per million prompt tokens.
    pub input_per_mtok: f64,
    /// USD per million completion tokens (reasoning tokens included).
    pub output_per_mtok: f64,
    /// USD per million prompt tokens served from the provider's prompt
    /// cache (defaults to `input_per_mtok`).
    #[cfg_attr(test, serde(default))]
    pub cached_input_per_mtok: Option<f64>,
    /// USD per million prompt tokens written to the provider's prompt
    /// cache (Anthropic's cache creation; defaults to `input_per_mtok`).
    #[cfg_attr(test, serde(default))]
    pub cache_write_per_mtok: Option<f64>,
}

/// Forced-variant override guarded by a shared token.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct OverrideConfig {
    /// Header naming the variant to force.
    pub variant_header: String,
    /// Header carrying the token.
    pub token_header: String,
    /// The token; compared in constant time.
    pub token: String,
}

/// One experiment.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct ExperimentConfig {
    /// Stable id; appears in headers, stats and records.
    pub id: String,
    /// Kill switch: `false` sends everyone to control.
    #[cfg_attr(test, serde(default = "default_true"))]
    pub enabled: bool,
    /// Hash salt; defaults to the id.
    #[cfg_attr(test, serde(default))]
    pub salt: Option<String>,
    /// Which requests the experiment applies to; defaults to all.
    #[cfg_attr(test, serde(default, rename = "match"))]
    pub match_: MatchConfig,
    /// Headers tried in order for the sticky assignment key.
    pub sticky_keys: Vec<String>,
    /// Name of the control variant; defaults to the first variant.
    #[cfg_attr(test, serde(default))]
    pub control: Option<String>,
    /// Budgets for this experiment, replacing the top-level ones.
    #[cfg_attr(test, serde(default))]
    pub budgets: Option<BudgetsConfig>,
    /// Canary steps replacing the treatments' static weights.
    #[cfg_attr(test, serde(default))]
    pub rollout: Option<RolloutConfig>,
    /// Per-variant circuit breaker for the treatments.
    #[cfg_attr(test, serde(default))]
    pub circuit_breaker: Option<BreakerConfig>,
    /// SLO bounds of the treatments; a breach pauses the experiment.
    #[cfg_attr(test, serde(default))]
    pub slo: Option<SloConfig>,
    /// Re-issue a failed treatment request to control.
    #[cfg_attr(test, serde(default))]
    pub fallback: Option<FallbackConfig>,
    /// Key of the HMAC that gives the record a pseudonymous `unit_id` of
    /// the sticky key; no unit id without it.
    #[cfg_attr(test, serde(default))]
    pub unit_id_key: Option<String>,
    /// Copies of control's requests sent to candidate variants and scored
    /// against control's answer; nobody sees the copies' answers.
    #[cfg_attr(test, serde(default))]
    pub shadow: Option<ShadowConfig>,
    /// The variants and their weights (percent, summing to 100).
    pub variants: Vec<VariantConfig>,
}

/// Shadow traffic of an experiment.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct ShadowConfig {
    /// The variants that get the copies (not control).
    pub variants: Vec<String>,
    /// Share of control's requests copied (0..=1, by trace id; default 1).
    #[cfg_attr(test, serde(default))]
    pub sample_rate: Option<f64>,
    /// Cluster the shadow records are POSTed to; none: metrics only.
    #[cfg_attr(test, serde(default))]
    pub sink_cluster: Option<String>,
    /// Most tokens the copies may spend per minute on this proxy.
    #[cfg_attr(test, serde(default))]
    pub max_tokens_per_minute: Option<u64>,
    /// Timeout of one copy (default 30 000 ms).
    #[cfg_attr(test, serde(default))]
    pub timeout_ms: Option<u64>,
}

/// Fallback to control.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct FallbackConfig {
    /// Failures that trigger it: `5xx`, `connect_failure`, `timeout`, `schema_fail`.
    pub on: Vec<String>,
    /// Most re-issues per request.
    #[cfg_attr(test, serde(default = "default_attempts"))]
    pub max_attempts: u32,
}

pub(super) fn default_attempts() -> u32 {
    1
}

/// Circuit breaker settings.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct BreakerConfig {
    /// Consecutive failures that open it.
    pub consecutive_failures: u64,
    /// Failure rate in the window that opens it.
    pub failure_rate: f64,
    /// Window length, seconds.
    pub window_s: u64,
    /// Fewest requests before the rate applies.
    pub min_requests: u64,
    /// Seconds it stays open before probing.
    pub open_s: u64,
}

/// SLO bounds.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct SloConfig {
    /// Window length, seconds.
    pub window_s: u64,
    /// Fewest requests before the bounds apply.
    pub min_requests: u64,
    /// Highest error rate.
    #[cfg_attr(test, serde(default))]
    pub max_error_rate: Option<f64>,
    /// Highest p95 latency.
    #[cfg_attr(test, serde(default))]
    pub max_p95_latency_ms: Option<u64>,
    /// Highest fallback rate.
    #[cfg_attr(test, serde(default))]
    pub max_fallback_rate: Option<f64>,
    /// Lowest schema pass rate.
    #[cfg_attr(test, serde(default))]
    pub min_schema_pass_rate: Option<f64>,
}

/// A canary schedule.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct RolloutConfig {
    /// When the first step starts (Unix seconds).
    pub start_unix_s: u64,
    /// Steps in order.
    pub steps: Vec<RolloutStepConfig>,
}

/// One canary step.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct RolloutStepConfig {
    /// Each treatment's weight (percent) during the step.
    #[cfg_attr(test, serde(default))]
    pub weight: Option<f64>,
    /// A shadow step: no user is exposed, this share of control's requests
    /// is copied to the shadow variants (0..=1).
    #[cfg_attr(test, serde(default))]
    pub shadow_rate: Option<f64>,
    /// How long the step lasts (the last step lasts forever).
    pub hold_s: u64,
}

/// Request matching rules of an experiment.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct MatchConfig {
    /// Path prefix (query string ignored).
    #[cfg_attr(test, serde(default))]
    pub path_prefix: Option<String>,
    /// Exact header values that must all be present.
    #[cfg_attr(test, serde(default))]
    pub headers: crate::json::Map<String>,
}

/// One variant of an experiment.
#[derive(Debug)]
#[cfg_attr(test, derive(Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct VariantConfig {
    /// Variant name, unique within the experiment.
    pub name: String,
    /// Share of traffic in percent (0.01 granularity).
    pub weight: f64,
    /// Upstream cluster serving this variant.
    pub cluster: String,
    /// When set, the request body's `model` is rewritten to this value.
    #[cfg_attr(test, serde(default))]
    pub model: Option<String>,
    /// Prompt version label, sent upstream as `x-llm-prompt-version`.
    #[cfg_attr(test, serde(default))]
    pub prompt_version: Option<String>,
    /// RAG index version label, sent upstream as `x-llm-rag-index-version`.
    #[cfg_attr(test, serde(default))]
    pub rag_index_version: Option<String>,
    /// Upstream timeout for this variant, overriding the budgets' one.
    #[cfg_attr(test, serde(default))]
    pub timeout_ms: Option<u64>,
    /// Output limit inserted by `budgets.max_output_tokens` when the client
    /// sent none: `"max_completion_tokens"` (default) or `"max_tokens"`.
    #[cfg_attr(test, serde(default))]
    pub output_cap_param: Option<String>,
    /// Whose credentials reach this variant's upstream: `"client"` (the
    /// default: the client's own headers pass) or `"injected"` (the
    /// cluster adds its own, e.g. Envoy's credential injector; the filter
    /// removes the client's `authorization`, `x-api-key` and `api-key`).
    #[cfg_attr(test, serde(default))]
    pub credentials: Option<String>,
}

pub(super) fn default_route_header() -> String {
    DEFAULT_ROUTE_HEADER.to_string()
}

pub(super) fn default_true() -> bool {
    true
}

pub(super) fn default_max_body_bytes() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}
