//! Token usage as providers report it, and as the filter records it.
//!
//! OpenAI (and vLLM, which copies its shape) report
//! `usage.prompt_tokens`, `usage.completion_tokens`, and in
//! `prompt_tokens_details.cached_tokens` the part of the prompt served from
//! the prompt cache, in `completion_tokens_details.reasoning_tokens` the
//! part of the completion spent on hidden reasoning. Cached tokens are part
//! of `prompt_tokens`; reasoning tokens are part of `completion_tokens`.
//!
//! The Responses API names the same counts `input_tokens`, `output_tokens`,
//! `input_tokens_details.cached_tokens` and
//! `output_tokens_details.reasoning_tokens`. Anthropic's Messages API
//! reports `input_tokens` *without* the cache: `cache_read_input_tokens`
//! (read from the cache) and `cache_creation_input_tokens` (written to it)
//! come on top, so the whole prompt is their sum.

use serde::Deserialize;

/// `usage` of a response or of a stream's final chunk.
#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageJson {
    /// Prompt tokens, cached ones included (Anthropic: not included).
    #[serde(default, alias = "input_tokens", deserialize_with = "null_as_default")]
    pub prompt_tokens: u64,
    /// Completion tokens, reasoning ones included.
    #[serde(default, alias = "output_tokens", deserialize_with = "null_as_default")]
    pub completion_tokens: u64,
    /// Breakdown of the prompt tokens.
    #[serde(
        default,
        alias = "input_tokens_details",
        deserialize_with = "null_as_default"
    )]
    pub prompt_tokens_details: PromptDetails,
    /// Breakdown of the completion tokens.
    #[serde(
        default,
        alias = "output_tokens_details",
        deserialize_with = "null_as_default"
    )]
    pub completion_tokens_details: CompletionDetails,
    /// Anthropic: prompt tokens read from the cache (on top of `input_tokens`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub cache_read_input_tokens: u64,
    /// Anthropic: prompt tokens written to the cache (on top of `input_tokens`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub cache_creation_input_tokens: u64,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromptDetails {
    /// Prompt tokens read from the provider's prompt cache.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cached_tokens: u64,
}

/// `usage.completion_tokens_details`.
#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompletionDetails {
    /// Completion tokens spent on reasoning.
    #[serde(default, deserialize_with = "null_as_default")]
    pub reasoning_tokens: u64,
}

/// Providers send `null` for details they do not report.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Where token counts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokensSource {
    /// The provider's `usage`.
    Usage,
    /// The filter's estimate.
    Estimated,
    /// The response could not be read (a `content-encoding` the filter
    /// cannot decode): the output is unknown, the input is the estimate.
    Unreadable,
}

impl TokensSource {
    /// Name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            TokensSource::Usage => "usage",
            TokensSource::Estimated => "estimated",
            TokensSource::Unreadable => "unreadable",
        }
    }
}

/// Token counts of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tokens {
    /// Prompt tokens (cached included).
    pub input: u64,
    /// Prompt tokens read from the prompt cache (≤ `input`).
    pub cached: u64,
    /// Completion tokens (reasoning included).
    pub output: u64,
    /// Completion tokens spent on reasoning (≤ `output`).
    pub reasoning: u64,
    /// Where they came from.
    pub source: TokensSource,
}

impl Tokens {
    /// No tokens (a request refused before it reached the model).
    pub const NONE: Tokens = Tokens {
        input: 0,
        cached: 0,
        output: 0,
        reasoning: 0,
        source: TokensSource::Estimated,
    };

    /// The counts a provider reported; details are clamped to their totals.
    pub fn from_usage(u: &UsageJson) -> Tokens {
        let input = u
            .prompt_tokens
            .saturating_add(u.cache_read_input_tokens)
            .saturating_add(u.cache_creation_input_tokens);
        let cached = u
            .prompt_tokens_details
            .cached_tokens
            .saturating_add(u.cache_read_input_tokens);
        Tokens {
            input,
            cached: cached.min(input),
            output: u.completion_tokens,
            reasoning: u
                .completion_tokens_details
                .reasoning_tokens
                .min(u.completion_tokens),
            source: TokensSource::Usage,
        }
    }

    /// Estimated counts (no cache or reasoning known).
    pub fn estimated(input: u64, output: u64, source: TokensSource) -> Tokens {
        Tokens {
            input,
            cached: 0,
            output,
            reasoning: 0,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Tokens {
        let u: UsageJson = serde_json::from_str(json).unwrap_or_default();
        Tokens::from_usage(&u)
    }

    #[test]
    fn details_are_read_when_present() {
        let t = parse(
            r#"{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,
                "prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},
                "completion_tokens_details":{"reasoning_tokens":192,"audio_tokens":0,
                  "accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}"#,
        );
        assert_eq!(
            (t.input, t.cached, t.output, t.reasoning),
            (2006, 1920, 300, 192)
        );
        assert_eq!(t.source, TokensSource::Usage);
    }

    #[test]
    fn responses_usage_is_read_by_its_own_names() {
        let t = parse(
            r#"{"input_tokens":2006,"input_tokens_details":{"cached_tokens":1920},
                "output_tokens":300,"output_tokens_details":{"reasoning_tokens":192},
                "total_tokens":2306}"#,
        );
        assert_eq!(
            (t.input, t.cached, t.output, t.reasoning),
            (2006, 1920, 300, 192)
        );
    }

    #[test]
    fn anthropic_usage_adds_the_cache_to_the_prompt() {
        // Messages: input_tokens excludes the cache reads and writes.
        let t = parse(
            r#"{"input_tokens":50,"cache_creation_input_tokens":1000,
                "cache_read_input_tokens":2000,"output_tokens":30,
                "service_tier":"standard"}"#,
        );
        assert_eq!(
            (t.input, t.cached, t.output, t.reasoning),
            (3050, 2000, 30, 0)
        );
        let t = parse(r#"{"input_tokens":12,"output_tokens":3,"cache_read_input_tokens":null}"#);
        assert_eq!((t.input, t.cached, t.output), (12, 0, 3));
    }

    #[test]
    fn missing_or_null_details_are_zero() {
        let t = parse(r#"{"prompt_tokens":5,"completion_tokens":2}"#);
        assert_eq!((t.cached, t.reasoning), (0, 0));
        // vLLM sends `"prompt_tokens_details": null`.
        let t = parse(
            r#"{"prompt_tokens":5,"completion_tokens":2,"prompt_tokens_details":null,
                "completion_tokens_details":{"reasoning_tokens":null}}"#,
        );
        assert_eq!((t.input, t.cached, t.output, t.reasoning), (5, 0, 2, 0));
    }

    #[test]
    fn details_never_exceed_their_totals() {
        let t = parse(
            r#"{"prompt_tokens":5,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":99},
                "completion_tokens_details":{"reasoning_tokens":7}}"#,
        );
        assert_eq!((t.cached, t.reasoning), (5, 2));
    }
}
