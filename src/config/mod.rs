//! Configuration: the JSON contract, its validation, and the compiled plan
//! the request path reads.
//!
//! `load(bytes)` is the single entry point used by the filter at
//! `on_configure` and by tooling: it parses with unknown keys refused, runs
//! every semantic check, and returns either an immutable [`Plan`] or every
//! problem found, each with its JSON path.

pub mod contract;
mod locate;
mod read;
mod validate;

use crate::assign::Layout;
use std::fmt;

pub use validate::compile;

/// One configuration problem, located by JSON path (`experiments[0].variants[1].weight`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the offending field (`.` for the whole document).
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Parses, validates and compiles a configuration document.
pub fn load(bytes: &[u8]) -> Result<Plan, ConfigErrors> {
    // Text after the document is not looked at.
    let parsed = read::filter_config(bytes).map_err(|fail| {
        ConfigErrors(vec![match fail {
            read::Fail::Data(bad) | read::Fail::Duplicate(bad) => ConfigError {
                path: bad.path(),
                message: bad.message(bytes),
            },
            read::Fail::Syntax => syntax_error(bytes),
        }])
    })?;
    let mut plan = compile(&parsed)?;
    plan.config_hash = crate::assign::hash32(bytes);
    Ok(plan)
}

/// serde_json's own error for a document that is not JSON where the reader
/// stopped, with the path it is under; its message ends with " at line L
/// column C", which points into the operator's own file.
fn syntax_error(bytes: &[u8]) -> ConfigError {
    match crate::json::read::prefix_or_failure::<crate::json::Value>(bytes) {
        Err(f) => syntax_error_of(bytes, f),
        Ok(_) => ConfigError {
            path: ".".into(),
            message: "the configuration could not be read".into(),
        },
    }
}

/// The error serde_json's parse of `bytes` into a `Value` gives, refused
/// as `f` says (the hand reader reads it as serde_json does).
pub(crate) fn syntax_error_of(bytes: &[u8], f: crate::json::read::Failure) -> ConfigError {
    let (line, column) = f.line_column(bytes);
    let path = locate::error_path(bytes, line, column, f.code);
    ConfigError {
        path: if path.is_empty() || path == "?" {
            ".".into()
        } else {
            path
        },
        message: format!("{} at line {line} column {column}", f.code.message()),
    }
}

/// The compiled, immutable configuration.
#[derive(Debug)]
pub struct Plan {
    /// Header overwritten with the chosen cluster.
    pub route_header: String,
    /// Cluster for requests no experiment matches.
    pub default_cluster: String,
    /// Whether responses carry experiment and variant headers.
    pub expose_headers: bool,
    /// Forced-variant override, when configured.
    pub override_: Option<Override>,
    /// Largest request body the filter buffers.
    pub max_body_bytes: usize,
    /// Experiments in match order.
    pub experiments: Vec<Experiment>,
    /// USD per million tokens by model, sorted by model (a binary search
    /// per priced request; no hash map instantiation in the module).
    pub pricing: Vec<(String, Price)>,
    /// Lowercase refusal phrases.
    pub refusal_phrases: Vec<String>,
    /// Non-fatal remarks to log once at load (e.g. unpriced models).
    pub warnings: Vec<String>,
    /// Redaction, when configured.
    pub redaction: Option<crate::redact::Redactor>,
    /// Budgets for experiments that set none of their own.
    pub budgets: crate::budget::Budgets,
    /// Guardrails.
    pub guardrails: crate::guard::Guardrails,
    /// Trace ids, records and response metrics are on.
    pub telemetry: bool,
    /// Envoy traces the requests: adopt its trace id, write span attributes.
    pub tracing: bool,
    /// Hash of the configuration text: shared state (SLO windows, breakers,
    /// pauses) is keyed by it, so a new configuration starts afresh.
    pub config_hash: u32,
}

impl Plan {
    /// The budgets that apply to experiment `index`.
    pub fn budgets_for(&self, index: usize) -> &crate::budget::Budgets {
        self.experiments
            .get(index)
            .and_then(|e| e.budgets.as_ref())
            .unwrap_or(&self.budgets)
    }

    /// Estimated cost in USD of `tokens` of `model` (0 for a model missing
    /// from `pricing`).
    pub fn cost_usd(&self, model: Option<&str>, tokens: &crate::usage::Tokens) -> f64 {
        model
            .and_then(|m| self.price(m))
            .map_or(0.0, |p| p.cost_usd(tokens))
    }

    /// The prices of `model`, when configured.
    pub fn price(&self, model: &str) -> Option<&Price> {
        let i = self
            .pricing
            .binary_search_by(|(m, _)| m.as_str().cmp(model))
            .ok()?;
        self.pricing.get(i).map(|(_, p)| p)
    }
}

/// Prices of one model, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Prompt tokens.
    pub input: f64,
    /// Prompt tokens read from the provider's prompt cache.
    pub cached_input: f64,
    /// Prompt tokens written to the provider's prompt cache.
    pub cache_write: f64,
    /// Completion tokens (reasoning tokens are part of them).
    pub output: f64,
}

impl Price {
    /// `(in − cached − written) × input + cached × cached_input + written ×
    /// cache_write + out × output`, in USD: each prompt tier priced once.
    pub fn cost_usd(&self, t: &crate::usage::Tokens) -> f64 {
        let cached = t.cached.min(t.input);
        let written = t.cache_write.min(t.input - cached);
        ((t.input - cached - written) as f64 * self.input
            + cached as f64 * self.cached_input
            + written as f64 * self.cache_write
            + t.output as f64 * self.output)
            / 1_000_000.0
    }
}

/// Compiled override settings.
#[derive(Debug)]
pub struct Override {
    /// Header naming the forced variant (lowercase).
    pub variant_header: String,
    /// Header carrying the token (lowercase).
    pub token_header: String,
    /// Expected token.
    pub token: String,
}

/// A compiled experiment.
#[derive(Debug)]
pub struct Experiment {
    /// Experiment id.
    pub id: String,
    /// `false` = killed: everyone gets control.
    pub enabled: bool,
    /// Hash salt.
    pub salt: String,
    /// Path prefix to match, if any.
    pub path_prefix: Option<String>,
    /// `(lowercase name, value)` header equalities to match.
    pub match_headers: Vec<(String, String)>,
    /// Lowercase sticky key headers in priority order.
    pub sticky_keys: Vec<String>,
    /// Variants in configuration order.
    pub variants: Vec<Variant>,
    /// Bucket layout.
    pub layout: Layout,
    /// Budgets replacing the top-level ones, when set.
    pub budgets: Option<crate::budget::Budgets>,
    /// Canary schedule, when set.
    pub rollout: Option<crate::rollout::Rollout>,
    /// Circuit breaker of the treatments, when set.
    pub breaker: Option<crate::slo::Breaker>,
    /// SLO bounds of the treatments, when set.
    pub slo: Option<crate::slo::Slo>,
    /// Fallback to control, when set.
    pub fallback: Option<crate::slo::Fallback>,
    /// The key of the record's `unit_id`, when set.
    pub unit_key: Option<crate::unit_id::UnitKey>,
    /// Shadow traffic, when set.
    pub shadow: Option<crate::shadow::Shadow>,
}

impl Experiment {
    /// Length of the health window kept per variant (0: none).
    pub fn window_s(&self) -> u64 {
        let b = self.breaker.as_ref().map_or(0, |b| b.window_s);
        let s = self.slo.as_ref().map_or(0, |s| s.window_s);
        b.max(s)
    }
}

impl Experiment {
    /// The control variant.
    pub fn control(&self) -> &Variant {
        // `compile` guarantees the control index is in range and that there
        // is at least one variant.
        &self.variants[self.layout.control()]
    }
}

/// A compiled variant.
#[derive(Debug)]
pub struct Variant {
    /// Variant name.
    pub name: String,
    /// Upstream cluster.
    pub cluster: String,
    /// Model written into the request body, if any.
    pub model: Option<String>,
    /// Prompt version label.
    pub prompt_version: Option<String>,
    /// RAG index version label.
    pub rag_index_version: Option<String>,
    /// Upstream timeout of this variant, when set.
    pub timeout_ms: Option<u64>,
    /// Output limit the budget inserts when the client sent none.
    pub cap_param: crate::body::CapParam,
    /// The cluster injects its own credentials: the client's are removed.
    pub injects_credentials: bool,
}
