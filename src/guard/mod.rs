//! Guardrails: moderation patterns, the tool allowlist, output schema
//! validation, and the choice of exchanges copied to human review.

pub mod schema;

use crate::json::Value;
use crate::pattern::Pattern;

/// What to do when output fails its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSchemaFail {
    /// Count only.
    Count,
    /// Answer 502 `schema_validation_failed`.
    Block,
    /// Count as `schema_fail` and let the rollout layer fall back.
    Fallback,
}

/// Compiled guardrails.
#[derive(Debug, Default)]
pub struct Guardrails {
    /// Patterns that block a request.
    pub request_patterns: Vec<Pattern>,
    /// Patterns that replace model output by a refusal.
    pub response_patterns: Vec<Pattern>,
    /// Allowed tool names, when a tool allowlist is set.
    pub allowed_tools: Option<Vec<String>>,
    /// Remove disallowed tools instead of refusing the request.
    pub strip_tools: bool,
    /// Output schema checks, when configured.
    pub schema: Option<SchemaCheck>,
    /// Human review sampling, when configured.
    pub review: Option<Review>,
}

/// Output schema settings.
#[derive(Debug)]
pub struct SchemaCheck {
    /// What a failure does.
    pub on_fail: OnSchemaFail,
    /// Schema for requests that carry none.
    pub default_schema: Option<Value>,
}

/// Human review sampling settings.
#[derive(Debug)]
pub struct Review {
    /// Cluster receiving the copies.
    pub cluster: String,
    /// Share of all exchanges, in 1/10000.
    pub sample_per_10000: u32,
    /// Outcomes always sent (`refusal`, `blocked`, `schema_fail`, `fallback`, `error`).
    pub always: Vec<String>,
    /// Call timeout.
    pub timeout_ms: u64,
}

/// The refusal that replaces output matching a response pattern.
pub const REFUSAL_MESSAGE: &str = "I can't help with that.";

impl Guardrails {
    /// The schema an answer is checked against: the request's own
    /// (`requested`), else the configured default.
    pub fn schema_for(&self, requested: Option<Value>) -> Option<Value> {
        requested.or_else(|| self.schema.as_ref()?.default_schema.clone())
    }

    /// The first request pattern matching any of `texts` (its index).
    pub fn blocked_request<'t>(&self, mut texts: impl Iterator<Item = &'t str>) -> Option<usize> {
        if self.request_patterns.is_empty() {
            return None;
        }
        texts.find_map(|t| self.request_patterns.iter().position(|re| re.is_match(t)))
    }

    /// Whether model output matches a response pattern.
    pub fn blocked_response(&self, text: &str) -> bool {
        self.response_patterns.iter().any(|re| re.is_match(text))
    }

    /// Names in `names` that the allowlist refuses.
    pub fn disallowed_tools<'n>(&self, names: impl Iterator<Item = &'n str>) -> Vec<String> {
        match &self.allowed_tools {
            None => Vec::new(),
            Some(allow) => names
                .filter(|n| !allow.iter().any(|a| a == n))
                .map(str::to_string)
                .collect(),
        }
    }
}

impl Review {
    /// Whether an exchange goes to review: always for the listed outcomes,
    /// else when its trace id falls in the sample (deterministic, so every
    /// proxy of a fleet samples the same traces).
    pub fn wants(&self, trace_id: &str, outcomes: &[&str]) -> bool {
        if outcomes.iter().any(|o| self.always.iter().any(|a| a == o)) {
            return true;
        }
        let bucket = u32::from(crate::assign::bucket("review", trace_id));
        bucket < self.sample_per_10000
    }
}

/// The Messages content blocks that call a tool by `name`: client tools,
/// Anthropic's server tools, MCP tools.
pub const MESSAGES_TOOL_CALLS: [&str; 3] = ["tool_use", "server_tool_use", "mcp_tool_use"];

/// The Responses output items that call a tool by `name`: functions,
/// custom tools, MCP tools.
pub const RESPONSES_TOOL_CALLS: [&str; 3] = ["function_call", "custom_tool_call", "mcp_call"];

/// Tool names called in an answer: a chat completion (message or stream
/// delta), a Messages message, a Responses response.
pub fn called_tools(chunk: &Value) -> Vec<String> {
    let mut names = Vec::new();
    for choice in chunk["choices"].as_array().into_iter().flatten() {
        for part in ["message", "delta"] {
            for call in choice[part]["tool_calls"].as_array().into_iter().flatten() {
                if let Some(name) = call["function"]["name"].as_str() {
                    names.push(name.to_string());
                }
            }
        }
    }
    // Anthropic Messages: tool-use blocks; Responses: tool-call items.
    for (list, kinds) in [
        ("content", &MESSAGES_TOOL_CALLS),
        ("output", &RESPONSES_TOOL_CALLS),
    ] {
        for item in chunk[list].as_array().into_iter().flatten() {
            if item["type"].as_str().is_some_and(|t| kinds.contains(&t)) {
                if let Some(name) = item["name"].as_str() {
                    names.push(name.to_string());
                }
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guardrails {
        Guardrails {
            request_patterns: vec![
                Pattern::new("(?i)how to make a bomb").unwrap_or_else(|_| unreachable!())
            ],
            response_patterns: vec![
                Pattern::new("(?i)as an evil ai").unwrap_or_else(|_| unreachable!())
            ],
            allowed_tools: Some(vec!["search_docs".into()]),
            ..Guardrails::default()
        }
    }

    #[test]
    fn moderation() {
        let g = guard();
        assert_eq!(
            g.blocked_request(["hello", "How To Make A Bomb?"].into_iter()),
            Some(0)
        );
        assert_eq!(g.blocked_request(["hello"].into_iter()), None);
        assert!(g.blocked_response("Well, as an EVIL AI I would"));
        assert!(!g.blocked_response("fine"));
    }

    #[test]
    fn tools() {
        let g = guard();
        assert_eq!(
            g.disallowed_tools(["search_docs", "rm"].into_iter()),
            vec!["rm"]
        );
        let chunk = crate::json_value!({"choices": [{"delta": {"tool_calls": [{"function": {"name": "rm"}}]}}]});
        assert_eq!(called_tools(&chunk), vec!["rm"]);
    }

    #[test]
    fn review_sampling() {
        let r = Review {
            cluster: "c".into(),
            sample_per_10000: 100,
            always: vec!["refusal".into()],
            timeout_ms: 100,
        };
        assert!(r.wants("any", &["refusal"]));
        let sampled = (0..10_000)
            .filter(|i| r.wants(&format!("{i:032x}"), &["success"]))
            .count();
        assert!((50..=150).contains(&sampled), "{sampled}");
    }
}
