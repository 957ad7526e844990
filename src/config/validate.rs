//! Semantic validation of a parsed configuration and compilation into a [`Plan`].

use super::contract::{
    BudgetsConfig, ExperimentConfig, FilterConfig, GuardrailsConfig, OverrideConfig,
    RedactionConfig, VariantConfig,
};
use super::{ConfigError, ConfigErrors, Experiment, Override, Plan, Variant};
use crate::assign::{lane_width, Layout, BUCKETS};
use crate::body::CapParam;
use crate::budget::{Budgets, Quota};
use crate::guard::{Guardrails, OnSchemaFail, Review, SchemaCheck};
use crate::pattern::Pattern;
use crate::redact::{detect::Kind, Custom, Redactor, Replacement};

/// Upper bound accepted for `max_body_bytes` (64 MiB).
const MAX_BODY_LIMIT: u64 = 64 * 1024 * 1024;

/// Collects problems while walking the configuration.
struct Problems(Vec<ConfigError>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Adds a problem at `path` unless `lo <= v <= hi`.
    fn range(&mut self, path: impl Into<String>, v: u64, lo: u64, hi: u64) {
        if !(lo..=hi).contains(&v) {
            self.add(path, format!("must be between {lo} and {hi}"));
        }
    }
}

/// Validates `cfg` and compiles it, or returns every problem found.
pub fn compile(cfg: &FilterConfig) -> Result<Plan, ConfigErrors> {
    let mut p = Problems(Vec::new());

    let route_header = header_name(&mut p, "route_header", &cfg.route_header);
    non_empty_value(&mut p, "default_cluster", &cfg.default_cluster);
    p.range("max_body_bytes", cfg.max_body_bytes, 1, MAX_BODY_LIMIT);
    let override_ = cfg
        .override_
        .as_ref()
        .map(|o| compile_override(&mut p, o, &route_header));

    let repeated = repeats(cfg.experiments.iter().map(|e| e.id.as_str()));
    let mut experiments = Vec::with_capacity(cfg.experiments.len());
    for (i, e) in cfg.experiments.iter().enumerate() {
        let path = format!("experiments[{i}]");
        if repeated.get(i) == Some(&true) {
            p.add(
                format!("{path}.id"),
                format!("duplicate experiment id {:?}", e.id),
            );
        }
        if let Some(exp) = compile_experiment(&mut p, &path, e) {
            experiments.push(exp);
        }
    }

    // The contract's map is sorted by model: so is this.
    let mut pricing = Vec::with_capacity(cfg.pricing.len());
    for (model, price) in &cfg.pricing {
        let cached = price.cached_input_per_mtok.unwrap_or(price.input_per_mtok);
        let cache_write = price.cache_write_per_mtok.unwrap_or(price.input_per_mtok);
        for (field, v) in [
            ("input_per_mtok", price.input_per_mtok),
            ("output_per_mtok", price.output_per_mtok),
            ("cached_input_per_mtok", cached),
            ("cache_write_per_mtok", cache_write),
        ] {
            if !v.is_finite() || v < 0.0 {
                p.add(
                    format!("pricing.{model}.{field}"),
                    "must be a non-negative number",
                );
            }
        }
        pricing.push((
            model.clone(),
            crate::config::Price {
                input: price.input_per_mtok,
                cached_input: cached,
                cache_write,
                output: price.output_per_mtok,
            },
        ));
    }
    for (i, phrase) in cfg.refusal_phrases.iter().enumerate() {
        if phrase.trim().is_empty() || phrase.chars().count() > 200 {
            p.add(
                format!("refusal_phrases[{i}]"),
                "must be 1 to 200 characters",
            );
        }
    }
    let mut unpriced: Vec<&str> = experiments
        .iter()
        .flat_map(|e| e.variants.iter())
        .filter_map(|v| v.model.as_deref())
        .filter(|m| {
            pricing
                .binary_search_by(|(k, _)| k.as_str().cmp(m))
                .is_err()
        })
        .collect();
    crate::sort::sort(&mut unpriced);
    unpriced.dedup();
    let mut warnings = Vec::new();
    if !unpriced.is_empty() {
        warnings.push(format!(
            "pricing: no price for model(s) {}; their cost is counted as 0",
            unpriced.join(", ")
        ));
    }

    let redaction = cfg.redaction.as_ref().map(|r| compile_redaction(&mut p, r));
    let budgets = cfg
        .budgets
        .as_ref()
        .map(|b| compile_budgets(&mut p, "budgets", b))
        .unwrap_or_default();
    let guardrails = cfg
        .guardrails
        .as_ref()
        .map(|g| compile_guardrails(&mut p, g))
        .unwrap_or_default();

    if !p.0.is_empty() {
        return Err(ConfigErrors(p.0));
    }
    if !cfg.telemetry {
        // These read the response or the record.
        let needs = [
            ("budgets", cfg.budgets.is_some()),
            ("guardrails", cfg.guardrails.is_some()),
            ("redaction", cfg.redaction.is_some()),
            ("pricing", !cfg.pricing.is_empty()),
            ("tracing", cfg.tracing),
            (
                "experiments[].slo/circuit_breaker/fallback/shadow",
                cfg.experiments.iter().any(|e| {
                    e.slo.is_some()
                        || e.circuit_breaker.is_some()
                        || e.fallback.is_some()
                        || e.shadow.is_some()
                }),
            ),
        ];
        for (what, set) in needs {
            if set {
                p.add(
                    "telemetry",
                    format!("must be true when {what} is configured"),
                );
            }
        }
    }
    if !p.0.is_empty() {
        return Err(ConfigErrors(p.0));
    }
    Ok(Plan {
        telemetry: cfg.telemetry,
        tracing: cfg.tracing,
        config_hash: 0,
        redaction,
        budgets,
        guardrails,
        pricing,
        refusal_phrases: cfg.refusal_phrases.clone(),
        warnings,
        route_header,
        default_cluster: cfg.default_cluster.clone(),
        expose_headers: cfg.expose_headers,
        override_,
        max_body_bytes: usize::try_from(cfg.max_body_bytes).unwrap_or(usize::MAX),
        experiments,
    })
}

fn compile_budgets(p: &mut Problems, path: &str, b: &BudgetsConfig) -> Budgets {
    for (field, v, max) in [
        ("max_input_tokens", b.max_input_tokens, 10_000_000),
        ("max_output_tokens", b.max_output_tokens, 10_000_000),
        ("timeout_ms", b.timeout_ms, 3_600_000),
    ] {
        if let Some(v) = v {
            p.range(format!("{path}.{field}"), v, 1, max);
        }
    }
    let quotas = b
        .quotas
        .iter()
        .enumerate()
        .map(|(i, q)| {
            if q.tokens_per_minute == 0 {
                p.add(
                    format!("{path}.quotas[{i}].tokens_per_minute"),
                    "must be at least 1",
                );
            }
            Quota {
                key_header: header_name(p, &format!("{path}.quotas[{i}].key"), &q.key),
                tokens_per_minute: q.tokens_per_minute,
            }
        })
        .collect();
    Budgets {
        max_input_tokens: b.max_input_tokens,
        max_output_tokens: b.max_output_tokens,
        quotas,
        timeout_ms: b.timeout_ms,
    }
}

fn compile_patterns(p: &mut Problems, path: &str, patterns: &[String]) -> Vec<Pattern> {
    patterns
        .iter()
        .enumerate()
        .filter_map(|(i, pattern)| match Pattern::new(pattern) {
            Ok(compiled) if !compiled.regex.is_match("") => Some(compiled),
            Ok(_) => {
                p.add(format!("{path}[{i}]"), "matches the empty string");
                None
            }
            Err(e) => {
                p.add(format!("{path}[{i}]"), format!("does not compile: {e}"));
                None
            }
        })
        .collect()
}

fn compile_guardrails(p: &mut Problems, g: &GuardrailsConfig) -> Guardrails {
    let mut out = Guardrails::default();
    if let Some(m) = &g.moderation {
        out.request_patterns = compile_patterns(
            p,
            "guardrails.moderation.request_patterns",
            &m.request_patterns,
        );
        out.response_patterns = compile_patterns(
            p,
            "guardrails.moderation.response_patterns",
            &m.response_patterns,
        );
    }
    if let Some(t) = &g.tools {
        if t.allow.iter().any(|n| n.trim().is_empty()) {
            p.add("guardrails.tools.allow", "tool names must not be empty");
        }
        out.allowed_tools = Some(t.allow.clone());
        out.strip_tools = match t.on_violation.as_str() {
            "block" => false,
            "strip" => true,
            other => {
                p.add(
                    "guardrails.tools.on_violation",
                    format!("{other:?} must be \"block\" or \"strip\""),
                );
                false
            }
        };
    }
    if let Some(rs) = &g.response_schema {
        let on_fail = match rs.on_fail.as_str() {
            "count" => OnSchemaFail::Count,
            "block" => OnSchemaFail::Block,
            "fallback" => OnSchemaFail::Fallback,
            other => {
                p.add(
                    "guardrails.response_schema.on_fail",
                    format!("{other:?} must be \"count\", \"block\" or \"fallback\""),
                );
                OnSchemaFail::Count
            }
        };
        if rs.schema.as_ref().is_some_and(|s| !s.is_object()) {
            p.add(
                "guardrails.response_schema.schema",
                "must be a JSON Schema object",
            );
        }
        out.schema = Some(SchemaCheck {
            on_fail,
            default_schema: rs.schema.clone(),
        });
    }
    if let Some(r) = &g.review {
        non_empty_value(p, "guardrails.review.cluster", &r.cluster);
        if !(0.0..=1.0).contains(&r.sample_rate) {
            p.add("guardrails.review.sample_rate", "must be between 0 and 1");
        }
        const OUTCOMES: [&str; 5] = ["refusal", "blocked", "schema_fail", "fallback", "error"];
        for (i, a) in r.always.iter().enumerate() {
            if !OUTCOMES.contains(&a.as_str()) {
                p.add(
                    format!("guardrails.review.always[{i}]"),
                    format!("{a:?} must be one of {}", OUTCOMES.join(", ")),
                );
            }
        }
        p.range("guardrails.review.timeout_ms", r.timeout_ms, 1, 60_000);
        out.review = Some(Review {
            cluster: r.cluster.clone(),
            sample_per_10000: (r.sample_rate.clamp(0.0, 1.0) * 10_000.0).round() as u32,
            always: r.always.clone(),
            timeout_ms: r.timeout_ms,
        });
    }
    out
}

fn compile_redaction(p: &mut Problems, r: &RedactionConfig) -> Redactor {
    let kinds = match &r.detectors {
        None => Kind::ALL.to_vec(),
        Some(names) => names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let kind = Kind::parse(n);
                if kind.is_none() {
                    let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                    p.add(
                        format!("redaction.detectors[{i}]"),
                        format!("unknown detector {n:?} (known: {})", known.join(", ")),
                    );
                }
                kind
            })
            .collect(),
    };
    let mut custom = Vec::new();
    for (i, c) in r.custom.iter().enumerate() {
        let path = format!("redaction.custom[{i}]");
        let ok_name = (1..=40).contains(&c.name.len())
            && c.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok_name || Kind::parse(&c.name).is_some() {
            p.add(
                format!("{path}.name"),
                format!(
                    "{:?} must be 1 to 40 characters of a-z 0-9 _ and not a built-in detector",
                    c.name
                ),
            );
        }
        match Custom::new(&c.name, &c.pattern) {
            Ok(compiled) if !compiled.regex.is_match("") => custom.push(compiled),
            Ok(_) => p.add(
                format!("{path}.pattern"),
                format!("pattern of {:?} matches the empty string", c.name),
            ),
            Err(e) => p.add(
                format!("{path}.pattern"),
                format!("pattern of {:?} does not compile: {e}", c.name),
            ),
        }
    }
    let replacement = if r.replacement == "hash" {
        match &r.hash_key {
            Some(k) if k.len() >= 16 => Replacement::Hash(k.as_bytes().to_vec()),
            _ => {
                p.add(
                    "redaction.hash_key",
                    "a key of at least 16 characters is required with \"replacement\": \"hash\"",
                );
                Replacement::Hash(Vec::new())
            }
        }
    } else if r.replacement.is_empty() || r.replacement.len() > 100 {
        p.add(
            "redaction.replacement",
            "must be 1 to 100 characters, or \"hash\"",
        );
        Replacement::Template(String::new())
    } else {
        Replacement::Template(r.replacement.clone())
    };
    let pass_on_error = match r.on_error.as_str() {
        "block" => false,
        "pass" => true,
        other => {
            p.add(
                "redaction.on_error",
                format!("{other:?} must be \"block\" or \"pass\""),
            );
            false
        }
    };
    Redactor {
        request: r.request,
        response: r.response,
        kinds,
        custom,
        replacement,
        pass_on_error,
    }
}

fn compile_override(p: &mut Problems, o: &OverrideConfig, route_header: &str) -> Override {
    let variant_header = header_name(p, "override.variant_header", &o.variant_header);
    let token_header = header_name(p, "override.token_header", &o.token_header);
    if !variant_header.is_empty() && variant_header == token_header {
        p.add(
            "override.token_header",
            "must differ from override.variant_header",
        );
    }
    if variant_header == route_header || token_header == route_header {
        p.add("override", "override headers must differ from route_header");
    }
    if o.token.is_empty() {
        p.add("override.token", "must not be empty");
    }
    Override {
        variant_header,
        token_header,
        token: o.token.clone(),
    }
}

fn compile_experiment(p: &mut Problems, path: &str, e: &ExperimentConfig) -> Option<Experiment> {
    let before = p.0.len();
    label(p, &format!("{path}.id"), &e.id);
    let salt = e.salt.clone().unwrap_or_else(|| e.id.clone());
    if salt.is_empty() {
        p.add(format!("{path}.salt"), "must not be empty");
    }
    let path_prefix = e.match_.path_prefix.clone();
    if let Some(prefix) = &path_prefix {
        if !prefix.starts_with('/') {
            p.add(format!("{path}.match.path_prefix"), "must start with '/'");
        }
    }
    let match_headers = e
        .match_
        .headers
        .iter()
        .map(|(k, v)| {
            let name = header_name(p, &format!("{path}.match.headers.{k}"), k);
            (name, v.clone())
        })
        .collect();
    if e.sticky_keys.is_empty() {
        p.add(
            format!("{path}.sticky_keys"),
            "must list at least one header",
        );
    }
    let sticky_keys = e
        .sticky_keys
        .iter()
        .enumerate()
        .map(|(i, k)| header_name(p, &format!("{path}.sticky_keys[{i}]"), k))
        .collect();

    let (variants, buckets) = compile_variants(p, path, &e.variants);
    let control = match &e.control {
        None => 0,
        Some(name) => match variants.iter().position(|v: &Variant| &v.name == name) {
            Some(i) => i,
            None => {
                p.add(
                    format!("{path}.control"),
                    format!("{name:?} is not the name of a variant"),
                );
                0
            }
        },
    };
    if !variants.is_empty() {
        check_lanes(p, path, &e.variants, &buckets, control);
    }
    let budgets = e
        .budgets
        .as_ref()
        .map(|b| compile_budgets(p, &format!("{path}.budgets"), b));
    let rollout = e.rollout.as_ref().map(|r| compile_rollout(p, path, e, r));
    let shadow = e
        .shadow
        .as_ref()
        .map(|s| compile_shadow(p, &format!("{path}.shadow"), s, &variants, control));
    let breaker = e
        .circuit_breaker
        .as_ref()
        .map(|b| compile_breaker(p, &format!("{path}.circuit_breaker"), b));
    let slo = e
        .slo
        .as_ref()
        .map(|s| compile_slo(p, &format!("{path}.slo"), s));
    let fallback = e
        .fallback
        .as_ref()
        .map(|f| compile_fallback(p, &format!("{path}.fallback"), f));
    let unit_key = match &e.unit_id_key {
        Some(k) if k.len() >= 16 => Some(crate::unit_id::UnitKey::new(k.as_bytes())),
        Some(_) => {
            p.add(
                format!("{path}.unit_id_key"),
                "must be at least 16 characters (it keys the HMAC of the sticky key)",
            );
            None
        }
        None => None,
    };
    if p.0.len() != before {
        return None;
    }
    Some(Experiment {
        unit_key,
        shadow,
        fallback,
        breaker,
        slo,
        budgets,
        rollout,
        id: e.id.clone(),
        enabled: e.enabled,
        salt,
        path_prefix,
        match_headers,
        sticky_keys,
        layout: Layout::new(&buckets, control),
        variants,
    })
}

fn compile_rollout(
    p: &mut Problems,
    path: &str,
    e: &ExperimentConfig,
    r: &super::contract::RolloutConfig,
) -> crate::rollout::Rollout {
    if r.steps.is_empty() {
        p.add(
            format!("{path}.rollout.steps"),
            "must list at least one step",
        );
    }
    let lane = lane_width(e.variants.len().saturating_sub(1));
    let mut exposed = false;
    let steps = r
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let sp = format!("{path}.rollout.steps[{i}].weight");
            let weight = match (s.weight, s.shadow_rate) {
                (Some(w), None) => w,
                (None, Some(rate)) => {
                    let rp = format!("{path}.rollout.steps[{i}].shadow_rate");
                    if e.shadow.is_none() {
                        p.add(&rp, "a shadow step needs the experiment's shadow block");
                    }
                    if exposed {
                        p.add(
                            &rp,
                            "shadow steps must come before every step with a weight",
                        );
                    }
                    return crate::rollout::Step {
                        buckets: 0,
                        hold_s: s.hold_s,
                        shadow_ppm: Some(rate_ppm(p, &rp, rate)),
                    };
                }
                (Some(_), Some(_)) => {
                    p.add(&sp, "a step has a weight or a shadow_rate, not both");
                    0.0
                }
                (None, None) => {
                    p.add(&sp, "a step needs a weight (or a shadow_rate)");
                    0.0
                }
            };
            exposed = true;
            let b = weight_buckets(p, &sp, weight);
            if b > lane {
                p.add(
                    sp,
                    format!(
                        "{} exceeds {}, the most each treatment can have",
                        percent(u64::from(b)),
                        percent(u64::from(lane))
                    ),
                );
            }
            crate::rollout::Step {
                buckets: b,
                hold_s: s.hold_s,
                shadow_ppm: None,
            }
        })
        .collect();
    crate::rollout::Rollout {
        start_unix_s: r.start_unix_s,
        steps,
    }
}

/// A share in [0, 1] as parts per million.
fn rate_ppm(p: &mut Problems, path: &str, rate: f64) -> u32 {
    if !rate.is_finite() || !(0.0..=1.0).contains(&rate) {
        p.add(path, "must be a number between 0 and 1");
        return 0;
    }
    (rate * f64::from(crate::shadow::PPM)).round() as u32
}

fn compile_shadow(
    p: &mut Problems,
    sp: &str,
    s: &super::contract::ShadowConfig,
    variants: &[Variant],
    control: usize,
) -> crate::shadow::Shadow {
    if s.variants.is_empty() {
        p.add(format!("{sp}.variants"), "must list at least one variant");
    }
    let mut indices = Vec::with_capacity(s.variants.len());
    for (i, name) in s.variants.iter().enumerate() {
        let vp = format!("{sp}.variants[{i}]");
        match variants.iter().position(|v| &v.name == name) {
            None => p.add(vp, format!("{name:?} is not the name of a variant")),
            Some(j) if j == control => p.add(
                vp,
                "control's own answer is what a copy is scored against: name another variant",
            ),
            Some(j) if indices.contains(&j) => p.add(vp, format!("{name:?} is listed twice")),
            Some(j) => indices.push(j),
        }
    }
    let sample_ppm = s.sample_rate.map_or(crate::shadow::PPM, |r| {
        rate_ppm(p, &format!("{sp}.sample_rate"), r)
    });
    if let Some(c) = &s.sink_cluster {
        non_empty_value(p, &format!("{sp}.sink_cluster"), c);
    }
    if let Some(n) = s.max_tokens_per_minute {
        p.range(format!("{sp}.max_tokens_per_minute"), n, 1, u64::MAX);
    }
    let timeout_ms = s.timeout_ms.unwrap_or(crate::shadow::DEFAULT_TIMEOUT_MS);
    p.range(format!("{sp}.timeout_ms"), timeout_ms, 1, 600_000);
    crate::shadow::Shadow {
        variants: indices,
        sample_ppm,
        sink_cluster: s.sink_cluster.clone(),
        max_tokens_per_minute: s.max_tokens_per_minute,
        timeout_ms,
    }
}

fn compile_breaker(
    p: &mut Problems,
    bp: &str,
    b: &super::contract::BreakerConfig,
) -> crate::slo::Breaker {
    if b.consecutive_failures == 0 {
        p.add(format!("{bp}.consecutive_failures"), "must be at least 1");
    }
    if !(b.failure_rate > 0.0 && b.failure_rate <= 1.0) {
        p.add(format!("{bp}.failure_rate"), "must be in (0, 1]");
    }
    p.range(format!("{bp}.window_s"), b.window_s, 1, 3600);
    p.range(format!("{bp}.open_s"), b.open_s, 1, 86_400);
    crate::slo::Breaker {
        consecutive_failures: b.consecutive_failures,
        failure_rate: b.failure_rate,
        window_s: b.window_s,
        min_requests: b.min_requests,
        open_s: b.open_s,
    }
}

fn compile_slo(p: &mut Problems, sp: &str, s: &super::contract::SloConfig) -> crate::slo::Slo {
    p.range(format!("{sp}.window_s"), s.window_s, 1, 3600);
    for (field, v) in [
        ("max_error_rate", s.max_error_rate),
        ("max_fallback_rate", s.max_fallback_rate),
        ("min_schema_pass_rate", s.min_schema_pass_rate),
    ] {
        if v.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
            p.add(format!("{sp}.{field}"), "must be between 0 and 1");
        }
    }
    crate::slo::Slo {
        window_s: s.window_s,
        min_requests: s.min_requests,
        max_error_rate: s.max_error_rate,
        max_p95_latency_ms: s.max_p95_latency_ms,
        max_fallback_rate: s.max_fallback_rate,
        min_schema_pass_rate: s.min_schema_pass_rate,
    }
}

fn compile_fallback(
    p: &mut Problems,
    fp: &str,
    f: &super::contract::FallbackConfig,
) -> crate::slo::Fallback {
    let mut out = crate::slo::Fallback {
        max_attempts: f.max_attempts,
        ..Default::default()
    };
    for (i, on) in f.on.iter().enumerate() {
        match on.as_str() {
            "5xx" => out.on_5xx = true,
            "connect_failure" => out.on_connect_failure = true,
            "timeout" => out.on_timeout = true,
            "schema_fail" => out.on_schema_fail = true,
            other => p.add(
                format!("{fp}.on[{i}]"),
                format!("{other:?} must be one of 5xx, connect_failure, timeout, schema_fail"),
            ),
        }
    }
    p.range(
        format!("{fp}.max_attempts"),
        u64::from(f.max_attempts),
        1,
        3,
    );
    out
}

fn compile_variants(
    p: &mut Problems,
    path: &str,
    vs: &[VariantConfig],
) -> (Vec<Variant>, Vec<u32>) {
    if vs.is_empty() {
        p.add(format!("{path}.variants"), "must list at least one variant");
        return (Vec::new(), Vec::new());
    }
    let repeated = repeats(vs.iter().map(|v| v.name.as_str()));
    let mut variants = Vec::with_capacity(vs.len());
    let mut buckets = Vec::with_capacity(vs.len());
    let mut total: u64 = 0;
    for (j, v) in vs.iter().enumerate() {
        let vp = format!("{path}.variants[{j}]");
        label(p, &format!("{vp}.name"), &v.name);
        if repeated.get(j) == Some(&true) {
            p.add(
                format!("{vp}.name"),
                format!("duplicate variant name {:?}", v.name),
            );
        }
        let b = weight_buckets(p, &format!("{vp}.weight"), v.weight);
        total += u64::from(b);
        buckets.push(b);
        non_empty_value(p, &format!("{vp}.cluster"), &v.cluster);
        for (field, value) in [
            ("model", &v.model),
            ("prompt_version", &v.prompt_version),
            ("rag_index_version", &v.rag_index_version),
        ] {
            if let Some(value) = value {
                non_empty_value(p, &format!("{vp}.{field}"), value);
            }
        }
        variants.push(Variant {
            name: v.name.clone(),
            cluster: v.cluster.clone(),
            model: v.model.clone(),
            prompt_version: v.prompt_version.clone(),
            rag_index_version: v.rag_index_version.clone(),
            timeout_ms: v.timeout_ms,
            cap_param: match v.output_cap_param.as_deref() {
                None | Some("max_completion_tokens") => CapParam::MaxCompletionTokens,
                Some("max_tokens") => CapParam::MaxTokens,
                Some(_) => {
                    p.add(
                        format!("{vp}.output_cap_param"),
                        "must be \"max_completion_tokens\" or \"max_tokens\"",
                    );
                    CapParam::MaxCompletionTokens
                }
            },
            injects_credentials: match v.credentials.as_deref() {
                None | Some("client") => false,
                Some("injected") => true,
                Some(_) => {
                    p.add(
                        format!("{vp}.credentials"),
                        "must be \"client\" or \"injected\"",
                    );
                    false
                }
            },
        });
        if let Some(t) = v.timeout_ms {
            p.range(format!("{vp}.timeout_ms"), t, 1, 3_600_000);
        }
    }
    if total != u64::from(BUCKETS) {
        p.add(
            format!("{path}.variants"),
            format!("weights sum to {}, they must sum to 100", percent(total)),
        );
    }
    (variants, buckets)
}

/// Each treatment must fit its lane (see [`crate::assign`]).
fn check_lanes(
    p: &mut Problems,
    path: &str,
    vs: &[VariantConfig],
    buckets: &[u32],
    control: usize,
) {
    let treatments = vs.len().saturating_sub(1);
    let lane = lane_width(treatments);
    for (j, b) in buckets.iter().enumerate() {
        if j != control && *b > lane {
            p.add(
                format!("{path}.variants[{j}].weight"),
                format!(
                    "{} exceeds {}, the most each of {treatments} treatments can have \
                     (each treatment ramps inside its own lane of the bucket space)",
                    percent(u64::from(*b)),
                    percent(u64::from(lane))
                ),
            );
        }
    }
}

/// Formats a bucket count as a percentage (`9550` -> `95.5`) without the
/// float formatting machinery, which would add kilobytes to the `.wasm`.
fn percent(buckets: u64) -> String {
    let (whole, frac) = (buckets / 100, buckets % 100);
    match frac {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

/// Converts a percent weight into buckets, reporting bad values.
fn weight_buckets(p: &mut Problems, path: &str, weight: f64) -> u32 {
    if !weight.is_finite() || !(0.0..=100.0).contains(&weight) {
        p.add(path, "must be a number between 0 and 100");
        return 0;
    }
    let scaled = weight * 100.0;
    let rounded = scaled.round();
    if (scaled - rounded).abs() > 1e-6 {
        p.add(path, "must have at most two decimals (0.01 % granularity)");
    }
    rounded as u32
}

/// Validates an HTTP header name and returns it lowercased.
fn header_name(p: &mut Problems, path: &str, name: &str) -> String {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c));
    if !ok {
        p.add(path, format!("{name:?} is not a valid HTTP header name"));
    }
    name.to_ascii_lowercase()
}

/// A value that goes into headers: non-empty, visible ASCII and spaces only.
fn non_empty_value(p: &mut Problems, path: &str, value: &str) {
    if value.trim().is_empty() {
        p.add(path, "must not be empty");
    } else if !value.bytes().all(|c| (0x20..0x7f).contains(&c)) {
        p.add(path, "must be printable ASCII (it is sent in a header)");
    }
}

/// Ids and names appear in stats names: `[A-Za-z0-9_-]`, 1 to 64 characters.
fn label(p: &mut Problems, path: &str, value: &str) {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    if !ok {
        p.add(
            path,
            format!("{value:?} must be 1 to 64 characters of A-Z a-z 0-9 _ -"),
        );
    }
}

/// For each key, whether an earlier one is equal (one sort, not a hash set).
fn repeats<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<bool> {
    let mut order: Vec<(&str, usize)> = keys.enumerate().map(|(i, k)| (k, i)).collect();
    let mut repeated = vec![false; order.len()];
    crate::sort::sort(&mut order);
    for pair in order.windows(2) {
        if pair[0].0 == pair[1].0 {
            if let Some(r) = repeated.get_mut(pair[1].1) {
                *r = true;
            }
        }
    }
    repeated
}

#[cfg(test)]
mod tests {
    use crate::body::CapParam;
    use crate::config::{load, ConfigError};

    const VALID: &str = r#"{
      "route_header": "x-llm-cluster",
      "default_cluster": "model_a",
      "expose_headers": true,
      "override": {"variant_header": "x-llm-variant-override", "token_header": "x-llm-override-token", "token": "change-me"},
      "experiments": [{
        "id": "chat-q4", "enabled": true, "salt": "chat-q4",
        "match": {"path_prefix": "/v1/chat/completions", "headers": {"x-tenant": "acme"}},
        "sticky_keys": ["x-user-id", "x-org-id", "x-session-id"],
        "control": "control",
        "variants": [
          {"name": "control",   "weight": 90, "cluster": "model_a", "model": "gpt-4o-mini",  "prompt_version": "p12", "rag_index_version": "r7"},
          {"name": "candidate", "weight": 10, "cluster": "model_b", "model": "gpt-4.1-mini", "prompt_version": "p13"}
        ]
      }]
    }"#;

    fn errors(json: &str) -> Vec<ConfigError> {
        match load(json.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(e) => e.0,
        }
    }

    fn first_error(json: &str) -> String {
        errors(json)
            .first()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no error".into())
    }

    #[test]
    fn the_documented_example_loads() {
        let plan = load(VALID.as_bytes()).map_err(|e| e.to_string());
        let plan = match plan {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(plan.route_header, "x-llm-cluster");
        assert_eq!(plan.experiments.len(), 1);
        assert_eq!(plan.experiments[0].control().name, "control");
        assert_eq!(plan.experiments[0].sticky_keys[0], "x-user-id");
    }

    #[test]
    fn defaults_apply() {
        let json = r#"{"default_cluster": "a", "experiments": [{"id": "e", "sticky_keys": ["X-User"],
            "variants": [{"name": "c", "weight": 50, "cluster": "a"}, {"name": "t", "weight": 50, "cluster": "b"}]}]}"#;
        let plan = match load(json.as_bytes()) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(plan.route_header, "x-llm-cluster");
        assert!(plan.expose_headers);
        assert!(plan.override_.is_none());
        assert_eq!(plan.max_body_bytes, 1024 * 1024);
        let e = &plan.experiments[0];
        assert_eq!(e.salt, "e");
        assert!(e.enabled);
        assert_eq!(e.control().name, "c");
        assert_eq!(e.sticky_keys, vec!["x-user".to_string()]);
        assert!(e.path_prefix.is_none());
    }

    #[test]
    fn weights_must_sum_to_100() {
        let json = VALID.replace(r#""weight": 10"#, r#""weight": 5"#);
        assert_eq!(
            first_error(&json),
            "experiments[0].variants: weights sum to 95, they must sum to 100"
        );
    }

    #[test]
    fn unknown_control_is_named() {
        let json = VALID.replace(r#""control": "control""#, r#""control": "ctrl""#);
        assert_eq!(
            first_error(&json),
            "experiments[0].control: \"ctrl\" is not the name of a variant"
        );
    }

    #[test]
    fn duplicate_variant_names_are_refused() {
        let json = VALID.replace(r#""name": "candidate""#, r#""name": "control""#);
        assert!(first_error(&json)
            .starts_with("experiments[0].variants[1].name: duplicate variant name"));
    }

    #[test]
    fn empty_cluster_is_refused() {
        let json = VALID.replace(r#""cluster": "model_b""#, r#""cluster": """#);
        assert_eq!(
            first_error(&json),
            "experiments[0].variants[1].cluster: must not be empty"
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let json = VALID.replace(r#""prompt_version": "p13""#, r#""prompt_versoin": "p13""#);
        let e = first_error(&json);
        assert!(
            e.starts_with(
                "experiments[0].variants[1].prompt_versoin: unknown field `prompt_versoin`"
            ),
            "{e}"
        );
        let json = VALID.replace(r#""expose_headers""#, r#""expose_header""#);
        assert!(first_error(&json).starts_with("expose_header: unknown field"));
    }

    #[test]
    fn bad_types_are_refused_with_their_path() {
        let json = VALID.replace(r#""weight": 10"#, r#""weight": "10""#);
        let e = first_error(&json);
        assert!(
            e.starts_with("experiments[0].variants[1].weight: invalid type: string"),
            "{e}"
        );
        let json = VALID.replace(r#""enabled": true"#, r#""enabled": "yes""#);
        assert!(first_error(&json).starts_with("experiments[0].enabled: invalid type"));
    }

    #[test]
    fn missing_required_fields_are_named() {
        let e = first_error(r#"{"experiments": []}"#);
        assert!(e.contains("missing field `default_cluster`"), "{e}");
    }

    #[test]
    fn not_json_is_refused() {
        let e = first_error("{not json");
        assert!(e.starts_with(".: key must be a string"), "{e}");
    }

    #[test]
    fn weights_must_fit_lanes() {
        let json = r#"{"default_cluster": "a", "experiments": [{"id": "e", "sticky_keys": ["x-user"],
            "variants": [{"name": "c", "weight": 0, "cluster": "a"}, {"name": "t1", "weight": 60, "cluster": "b"},
                         {"name": "t2", "weight": 40, "cluster": "b"}]}]}"#;
        assert_eq!(
            first_error(json),
            "experiments[0].variants[1].weight: 60 exceeds 50, the most each of 2 treatments can have \
             (each treatment ramps inside its own lane of the bucket space)"
        );
    }

    #[test]
    fn percentages_print_like_the_config() {
        assert_eq!(super::percent(9500), "95");
        assert_eq!(super::percent(9550), "95.5");
        assert_eq!(super::percent(1), "0.01");
        assert_eq!(super::percent(10_000), "100");
    }

    #[test]
    fn weight_granularity_and_range() {
        let one =
            |w: &str| first_error(&VALID.replace(r#""weight": 10"#, &format!(r#""weight": {w}"#)));
        assert!(one("10.001").contains("at most two decimals"));
        assert!(one("-1").contains("between 0 and 100"));
        assert!(one("101").contains("between 0 and 100"));
        // 89.5 + 10.5 = 100 is fine.
        let json = VALID
            .replace(r#""weight": 10"#, r#""weight": 10.5"#)
            .replace(r#""weight": 90"#, r#""weight": 89.5"#);
        assert_eq!(first_error(&json), "no error");
    }

    #[test]
    fn labels_must_be_stat_safe() {
        let json = VALID.replace(r#""id": "chat-q4""#, r#""id": "chat.q4""#);
        assert!(first_error(&json).starts_with("experiments[0].id: \"chat.q4\" must be"));
    }

    #[test]
    fn header_names_are_checked() {
        let json = VALID.replace(
            r#""route_header": "x-llm-cluster""#,
            r#""route_header": "x llm""#,
        );
        assert_eq!(
            first_error(&json),
            "route_header: \"x llm\" is not a valid HTTP header name"
        );
        let json = VALID.replace(r#""x-org-id""#, r#""""#);
        assert!(first_error(&json).starts_with("experiments[0].sticky_keys[1]:"));
    }

    #[test]
    fn override_token_must_not_be_empty() {
        let json = VALID.replace(r#""token": "change-me""#, r#""token": """#);
        assert_eq!(first_error(&json), "override.token: must not be empty");
    }

    #[test]
    fn every_problem_is_reported() {
        let json = VALID
            .replace(r#""cluster": "model_b""#, r#""cluster": """#)
            .replace(r#""control": "control""#, r#""control": "nope""#);
        assert_eq!(errors(&json).len(), 2);
    }

    #[test]
    fn output_cap_param_is_per_variant() {
        let old = VALID.replace(
            r#""prompt_version": "p13"}"#,
            r#""prompt_version": "p13", "output_cap_param": "max_tokens"}"#,
        );
        let plan = load(old.as_bytes()).unwrap();
        let variants = &plan.experiments[0].variants;
        assert_eq!(variants[0].cap_param, CapParam::MaxCompletionTokens);
        assert_eq!(variants[1].cap_param, CapParam::MaxTokens);
        let bad = VALID.replace(
            r#""prompt_version": "p13"}"#,
            r#""prompt_version": "p13", "output_cap_param": "max_output_tokens"}"#,
        );
        assert_eq!(
            first_error(&bad),
            "experiments[0].variants[1].output_cap_param: must be \"max_completion_tokens\" or \"max_tokens\""
        );
    }

    #[test]
    fn credentials_are_the_clients_or_injected() {
        let injected = VALID.replace(
            r#""prompt_version": "p13"}"#,
            r#""prompt_version": "p13", "credentials": "injected"}"#,
        );
        let plan = load(injected.as_bytes()).unwrap();
        let variants = &plan.experiments[0].variants;
        assert!(!variants[0].injects_credentials);
        assert!(variants[1].injects_credentials);
        let bad = VALID.replace(
            r#""prompt_version": "p13"}"#,
            r#""prompt_version": "p13", "credentials": "cluster"}"#,
        );
        assert_eq!(
            first_error(&bad),
            "experiments[0].variants[1].credentials: must be \"client\" or \"injected\""
        );
    }

    #[test]
    fn pricing_is_checked_and_unpriced_models_warned_once() {
        let json = VALID.replacen(
            "{",
            r#"{"pricing": {"gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}},"#,
            1,
        );
        let plan = load(json.as_bytes()).unwrap();
        assert_eq!(
            plan.warnings,
            vec!["pricing: no price for model(s) gpt-4.1-mini; their cost is counted as 0"]
        );
        let tokens = |input, cached, output| crate::usage::Tokens {
            input,
            cached,
            cache_write: 0,
            output,
            reasoning: 0,
            source: crate::usage::TokensSource::Usage,
        };
        let cost = plan.cost_usd(Some("gpt-4o-mini"), &tokens(1_000_000, 0, 2_000_000));
        assert!((cost - 1.35).abs() < 1e-9);
        // Without a cached price, cached tokens cost the input price.
        let cost = plan.cost_usd(Some("gpt-4o-mini"), &tokens(1_000_000, 400_000, 0));
        assert!((cost - 0.15).abs() < 1e-9);
        assert_eq!(plan.cost_usd(Some("gpt-4.1-mini"), &tokens(10, 0, 10)), 0.0);
        // (in − cached) × input + cached × cached_input + out × output:
        // gpt-4o-mini's published prices, 0.15 / 0.075 / 0.60 USD per Mtok.
        let cached = VALID.replacen(
            "{",
            r#"{"pricing": {"gpt-4o-mini": {"input_per_mtok": 0.15, "cached_input_per_mtok": 0.075, "output_per_mtok": 0.6}},"#,
            1,
        );
        let plan = load(cached.as_bytes()).unwrap();
        let cost = plan.cost_usd(Some("gpt-4o-mini"), &tokens(2_000, 1_536, 100));
        let expected = (464.0 * 0.15 + 1_536.0 * 0.075 + 100.0 * 0.6) / 1e6;
        assert!((cost - expected).abs() < 1e-15, "{cost} vs {expected}");
        // Anthropic's tiers, each priced once: claude-sonnet-4's published
        // 3 / 0.30 (read) / 3.75 (5-minute write) / 15 USD per Mtok.
        let claude = VALID.replacen(
            "{",
            r#"{"pricing": {"claude-sonnet-4": {"input_per_mtok": 3, "cached_input_per_mtok": 0.3, "cache_write_per_mtok": 3.75, "output_per_mtok": 15}},"#,
            1,
        );
        let plan = load(claude.as_bytes()).unwrap();
        let t = crate::usage::Tokens::from_usage(
            &serde_json::from_str(
                r#"{"input_tokens":50,"cache_creation_input_tokens":1000,"cache_read_input_tokens":2000,"output_tokens":30}"#,
            )
            .unwrap(),
        );
        let cost = plan.cost_usd(Some("claude-sonnet-4"), &t);
        let expected = (50.0 * 3.0 + 2_000.0 * 0.3 + 1_000.0 * 3.75 + 30.0 * 15.0) / 1e6;
        assert!((cost - expected).abs() < 1e-15, "{cost} vs {expected}");
        // Without a write price, writes cost the input price.
        let plain = VALID.replacen(
            "{",
            r#"{"pricing": {"claude-sonnet-4": {"input_per_mtok": 3, "output_per_mtok": 15}},"#,
            1,
        );
        let plan = load(plain.as_bytes()).unwrap();
        let cost = plan.cost_usd(Some("claude-sonnet-4"), &t);
        assert!((cost - (3_050.0 * 3.0 + 30.0 * 15.0) / 1e6).abs() < 1e-15);
        let negative = VALID.replacen(
            "{",
            r#"{"pricing": {"m": {"input_per_mtok": 1, "cache_write_per_mtok": -1, "output_per_mtok": 0.6}},"#,
            1,
        );
        assert_eq!(
            first_error(&negative),
            "pricing.m.cache_write_per_mtok: must be a non-negative number"
        );
        let negative = VALID.replacen(
            "{",
            r#"{"pricing": {"m": {"input_per_mtok": 1, "cached_input_per_mtok": -0.5, "output_per_mtok": 0.6}},"#,
            1,
        );
        assert_eq!(
            first_error(&negative),
            "pricing.m.cached_input_per_mtok: must be a non-negative number"
        );
        let bad = VALID.replacen(
            "{",
            r#"{"pricing": {"m": {"input_per_mtok": -1, "output_per_mtok": 0.6}},"#,
            1,
        );
        assert_eq!(
            first_error(&bad),
            "pricing.m.input_per_mtok: must be a non-negative number"
        );
        let unknown = VALID.replacen(
            "{",
            r#"{"pricing": {"m": {"input_per_mtok": 1, "output_per_mtok": 0.6, "x": 1}},"#,
            1,
        );
        assert!(first_error(&unknown).starts_with("pricing.m.x: unknown field"));
    }

    #[test]
    fn redaction_config_is_checked() {
        let with = |r: &str| VALID.replacen('{', &format!(r#"{{"redaction": {r},"#), 1);
        let plan = load(
            with(r#"{"custom": [{"name": "employee_id", "pattern": "EMP-[0-9]{6}"}]}"#).as_bytes(),
        )
        .unwrap();
        let r = plan.redaction.unwrap();
        assert_eq!(r.kinds.len(), 8);
        assert!(r.request && r.response && !r.pass_on_error);
        assert_eq!(r.detector_names().last(), Some(&"employee_id"));
        assert_eq!(
            first_error(&with(
                r#"{"custom": [{"name": "bad_one", "pattern": "EMP-[0-9"}]}"#
            )),
            "redaction.custom[0].pattern: pattern of \"bad_one\" does not compile: \
             found unclosed character class"
        );
        assert!(
            first_error(&with(r#"{"detectors": ["email", "passport"]}"#))
                .starts_with("redaction.detectors[1]: unknown detector \"passport\"")
        );
        assert!(first_error(&with(r#"{"replacement": "hash"}"#)).starts_with("redaction.hash_key:"));
        assert!(first_error(&with(r#"{"on_error": "drop"}"#)).starts_with("redaction.on_error:"));
        assert!(
            first_error(&with(r#"{"custom": [{"name": "e", "pattern": "x*"}]}"#))
                .contains("matches the empty string")
        );
    }

    #[test]
    fn budgets_and_guardrails_are_checked() {
        let with = |extra: &str| VALID.replacen('{', &format!("{{{extra},"), 1);
        let full = r#""budgets": {"max_input_tokens": 8000, "max_output_tokens": 1024,
            "quotas": [{"key": "X-Org-Id", "tokens_per_minute": 100000}], "timeout_ms": 30000},
            "guardrails": {"moderation": {"request_patterns": ["(?i)how to make a bomb"], "response_patterns": ["(?i)as an evil ai"]},
            "tools": {"allow": ["search_docs", "get_weather"], "on_violation": "block"},
            "response_schema": {"on_fail": "count"},
            "review": {"cluster": "review_sink", "sample_rate": 0.01, "always": ["refusal", "blocked", "schema_fail"]}}"#;
        let plan = load(with(full).as_bytes()).unwrap();
        assert_eq!(plan.budgets.quotas[0].key_header, "x-org-id");
        assert_eq!(plan.budgets_for(0).max_output_tokens, Some(1024));
        assert_eq!(
            plan.guardrails.review.as_ref().map(|r| r.sample_per_10000),
            Some(100)
        );
        let bad = [
            (
                r#""budgets": {"max_input_tokens": 0}"#,
                "budgets.max_input_tokens: must be between 1",
            ),
            (
                r#""budgets": {"quotas": [{"key": "x org", "tokens_per_minute": 5}]}"#,
                "budgets.quotas[0].key:",
            ),
            (
                r#""guardrails": {"moderation": {"request_patterns": ["(unclosed"]}}"#,
                "guardrails.moderation.request_patterns[0]: does not compile",
            ),
            (
                r#""guardrails": {"tools": {"allow": ["a"], "on_violation": "drop"}}"#,
                "guardrails.tools.on_violation:",
            ),
            (
                r#""guardrails": {"response_schema": {"on_fail": "explode"}}"#,
                "guardrails.response_schema.on_fail:",
            ),
            (
                r#""guardrails": {"review": {"cluster": "c", "sample_rate": 2}}"#,
                "guardrails.review.sample_rate:",
            ),
            (
                r#""guardrails": {"review": {"cluster": "c", "always": ["success"]}}"#,
                "guardrails.review.always[0]:",
            ),
        ];
        for (extra, want) in bad {
            let e = first_error(&with(extra));
            assert!(e.starts_with(want), "{e} (wanted {want})");
        }
    }

    #[test]
    fn rollout_is_checked() {
        let with = |r: &str| {
            VALID.replace(
                r#""control": "control","#,
                &format!(r#""control": "control", "rollout": {r},"#),
            )
        };
        let plan = load(with(r#"{"start_unix_s": 100, "steps": [{"weight": 1, "hold_s": 60}, {"weight": 50, "hold_s": 0}]}"#).as_bytes()).unwrap();
        assert_eq!(
            plan.experiments[0]
                .rollout
                .as_ref()
                .map(|r| r.buckets_at(200)),
            Some(5000)
        );
        assert!(first_error(&with(r#"{"start_unix_s": 1, "steps": []}"#))
            .starts_with("experiments[0].rollout.steps: must list"));
        assert!(first_error(&with(
            r#"{"start_unix_s": 1, "steps": [{"weight": 101, "hold_s": 1}]}"#
        ))
        .starts_with("experiments[0].rollout.steps[0].weight"));
    }

    #[test]
    fn shadow_is_checked() {
        let with = |shadow: &str, rollout: &str| {
            VALID.replace(
                r#""control": "control","#,
                &format!(r#""control": "control", "shadow": {shadow}, {rollout}"#),
            )
        };
        let plan = load(with(r#"{"variants": ["candidate"], "sample_rate": 0.05, "sink_cluster": "shadow_sink", "max_tokens_per_minute": 200000, "timeout_ms": 30000}"#, "").as_bytes()).unwrap();
        let s = plan.experiments[0].shadow.as_ref().unwrap();
        assert_eq!(
            (s.variants.clone(), s.sample_ppm, s.timeout_ms),
            (vec![1], 50_000, 30_000)
        );
        let plan = load(with(r#"{"variants": ["candidate"]}"#, "").as_bytes()).unwrap();
        let s = plan.experiments[0].shadow.as_ref().unwrap();
        assert_eq!(
            (s.sample_ppm, s.timeout_ms, s.max_tokens_per_minute),
            (1_000_000, 30_000, None)
        );
        let cases = [
            (
                r#"{"variants": []}"#,
                "experiments[0].shadow.variants: must list",
            ),
            (
                r#"{"variants": ["nope"]}"#,
                "experiments[0].shadow.variants[0]: \"nope\" is not",
            ),
            (
                r#"{"variants": ["control"]}"#,
                "experiments[0].shadow.variants[0]: control's own",
            ),
            (
                r#"{"variants": ["candidate", "candidate"]}"#,
                "experiments[0].shadow.variants[1]: \"candidate\" is listed twice",
            ),
            (
                r#"{"variants": ["candidate"], "sample_rate": 1.5}"#,
                "experiments[0].shadow.sample_rate: must be a number between 0 and 1",
            ),
            (
                r#"{"variants": ["candidate"], "sink_cluster": ""}"#,
                "experiments[0].shadow.sink_cluster",
            ),
            (
                r#"{"variants": ["candidate"], "max_tokens_per_minute": 0}"#,
                "experiments[0].shadow.max_tokens_per_minute",
            ),
            (
                r#"{"variants": ["candidate"], "timeout_ms": 0}"#,
                "experiments[0].shadow.timeout_ms",
            ),
            (
                r#"{"variants": ["candidate"], "rate": 1}"#,
                "experiments[0].shadow.rate: unknown field `rate`",
            ),
        ];
        for (shadow, want) in cases {
            let got = first_error(&with(shadow, ""));
            assert!(got.starts_with(want), "{shadow}: {got}");
        }
        // Shadow steps: before any exposed step, with a shadow block.
        let steps = |s: &str| format!(r#""rollout": {{"start_unix_s": 100, "steps": {s}}},"#);
        let ok = with(
            r#"{"variants": ["candidate"]}"#,
            &steps(r#"[{"shadow_rate": 0.1, "hold_s": 60}, {"weight": 5, "hold_s": 0}]"#),
        );
        let plan = load(ok.as_bytes()).unwrap();
        let e = &plan.experiments[0];
        assert_eq!(
            (e.shadow_ppm_at(120), e.shadow_ppm_at(200)),
            (100_000, 1_000_000)
        );
        let bad = [
            (
                r#"[{"weight": 5, "hold_s": 60}, {"shadow_rate": 0.1, "hold_s": 0}]"#,
                "experiments[0].rollout.steps[1].shadow_rate: shadow steps must come before",
            ),
            (
                r#"[{"shadow_rate": 2, "hold_s": 60}]"#,
                "experiments[0].rollout.steps[0].shadow_rate: must be a number between 0 and 1",
            ),
            (
                r#"[{"weight": 5, "shadow_rate": 0.1, "hold_s": 60}]"#,
                "experiments[0].rollout.steps[0].weight: a step has a weight or a shadow_rate",
            ),
            (
                r#"[{"hold_s": 60}]"#,
                "experiments[0].rollout.steps[0].weight: a step needs a weight",
            ),
        ];
        for (s, want) in bad {
            let got = first_error(&with(r#"{"variants": ["candidate"]}"#, &steps(s)));
            assert!(got.starts_with(want), "{s}: {got}");
        }
        let no_block = VALID.replace(
            r#""control": "control","#,
            &format!(
                r#""control": "control", {}"#,
                steps(r#"[{"shadow_rate": 0.1, "hold_s": 60}]"#)
            ),
        );
        assert!(first_error(&no_block)
            .starts_with("experiments[0].rollout.steps[0].shadow_rate: a shadow step needs"));
    }

    #[test]
    fn routing_only_mode_refuses_features_that_need_telemetry() {
        let off = VALID.replacen('{', r#"{"telemetry": false,"#, 1);
        assert!(!load(off.as_bytes()).unwrap().telemetry);
        let with_budgets = off.replacen('{', r#"{"budgets": {"max_input_tokens": 5},"#, 1);
        assert_eq!(
            first_error(&with_budgets),
            "telemetry: must be true when budgets is configured"
        );
    }

    #[test]
    fn tracing_is_off_by_default_a_bool_and_needs_telemetry() {
        assert!(!load(VALID.as_bytes()).unwrap().tracing);
        let on = VALID.replacen('{', r#"{"tracing": true,"#, 1);
        assert!(load(on.as_bytes()).unwrap().tracing);
        let mistyped = VALID.replacen('{', r#"{"tracing": "on","#, 1);
        assert!(
            first_error(&mistyped).starts_with("tracing: "),
            "{}",
            first_error(&mistyped)
        );
        let misspelt = VALID.replacen('{', r#"{"tracng": true,"#, 1);
        assert!(
            first_error(&misspelt).contains("tracng"),
            "{}",
            first_error(&misspelt)
        );
        let routing_only = VALID.replacen('{', r#"{"tracing": true, "telemetry": false,"#, 1);
        assert_eq!(
            first_error(&routing_only),
            "telemetry: must be true when tracing is configured"
        );
    }

    #[test]
    fn duplicate_experiment_ids_are_refused() {
        let json = r#"{"default_cluster": "a", "experiments": [
            {"id": "e", "sticky_keys": ["x-user"], "variants": [{"name": "c", "weight": 100, "cluster": "a"}]},
            {"id": "e", "sticky_keys": ["x-user"], "variants": [{"name": "c", "weight": 100, "cluster": "a"}]}]}"#;
        assert_eq!(
            first_error(json),
            "experiments[1].id: duplicate experiment id \"e\""
        );
    }
}
