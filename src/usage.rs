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

use crate::json::read::{FromJson, Reader, R};
#[cfg(test)]
use serde::Deserialize;

/// `usage` of a response or of a stream's final chunk, in any of the
/// three spellings (a member that is absent or `null` is `None`). Each
/// spelling has members of its own, never serde aliases: some servers send
/// two spellings side by side, and an alias would make that a duplicate
/// field and lose the whole response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(test, derive(Deserialize))]
pub struct UsageJson {
    /// Chat: prompt tokens, cached ones included.
    #[cfg_attr(test, serde(default))]
    pub prompt_tokens: Option<u64>,
    /// Chat: completion tokens, reasoning ones included.
    #[cfg_attr(test, serde(default))]
    pub completion_tokens: Option<u64>,
    /// Chat: breakdown of the prompt tokens.
    #[cfg_attr(test, serde(default))]
    pub prompt_tokens_details: Option<PromptDetails>,
    /// Chat: breakdown of the completion tokens.
    #[cfg_attr(test, serde(default))]
    pub completion_tokens_details: Option<CompletionDetails>,
    /// Responses: prompt tokens, cached included; Anthropic: without the cache.
    #[cfg_attr(test, serde(default))]
    pub input_tokens: Option<u64>,
    /// Responses and Anthropic: output tokens.
    #[cfg_attr(test, serde(default))]
    pub output_tokens: Option<u64>,
    /// Responses: breakdown of the input tokens.
    #[cfg_attr(test, serde(default))]
    pub input_tokens_details: Option<PromptDetails>,
    /// Responses: breakdown of the output tokens.
    #[cfg_attr(test, serde(default))]
    pub output_tokens_details: Option<CompletionDetails>,
    /// Anthropic: prompt tokens read from the cache (on top of `input_tokens`).
    #[cfg_attr(test, serde(default))]
    pub cache_read_input_tokens: Option<u64>,
    /// Anthropic: prompt tokens written to the cache (on top of `input_tokens`).
    #[cfg_attr(test, serde(default))]
    pub cache_creation_input_tokens: Option<u64>,
}

crate::from_json!(UsageJson {
    prompt_tokens,
    completion_tokens,
    prompt_tokens_details,
    completion_tokens_details,
    input_tokens,
    output_tokens,
    input_tokens_details,
    output_tokens_details,
    cache_read_input_tokens,
    cache_creation_input_tokens
});

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(test, derive(Deserialize))]
pub struct PromptDetails {
    /// Prompt tokens read from the provider's prompt cache.
    #[cfg_attr(test, serde(default, deserialize_with = "null_as_default"))]
    pub cached_tokens: u64,
}

/// `usage.completion_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(test, derive(Deserialize))]
pub struct CompletionDetails {
    /// Completion tokens spent on reasoning.
    #[cfg_attr(test, serde(default, deserialize_with = "null_as_default"))]
    pub reasoning_tokens: u64,
}

/// Reads a struct of one `u64` field that may be `null` (providers send
/// `null` for details they do not report).
fn read_count<'a>(r: &mut Reader<'a>, name: &str) -> R<u64> {
    let mut count = 0;
    r.fields(&[name], &mut |r, _| {
        count = Option::<u64>::read(r)?.unwrap_or_default();
        Ok(())
    })?;
    Ok(count)
}

impl<'a> FromJson<'a> for PromptDetails {
    fn read(r: &mut Reader<'a>) -> R<Self> {
        read_count(r, "cached_tokens").map(|cached_tokens| PromptDetails { cached_tokens })
    }
}

impl<'a> FromJson<'a> for CompletionDetails {
    fn read(r: &mut Reader<'a>) -> R<Self> {
        read_count(r, "reasoning_tokens")
            .map(|reasoning_tokens| CompletionDetails { reasoning_tokens })
    }
}

/// Providers send `null` for details they do not report.
#[cfg(test)]
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
    /// Prompt tokens written to the prompt cache (Anthropic's
    /// `cache_creation_input_tokens`; ≤ `input − cached`).
    pub cache_write: u64,
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
        cache_write: 0,
        output: 0,
        reasoning: 0,
        source: TokensSource::Estimated,
    };

    /// The counts a provider reported, whichever spelling it used (Chat's
    /// first when it sent several); details are clamped to their totals.
    /// Only Anthropic's shape (input tokens with neither a Chat total nor
    /// Responses details) adds its cache reads and writes to the prompt:
    /// gateways that copy Anthropic's cache members into a Chat usage
    /// already count them in `prompt_tokens`.
    pub fn from_usage(u: &UsageJson) -> Tokens {
        let anthropic = u.prompt_tokens.is_none() && u.input_tokens_details.is_none();
        let (read, write) = if anthropic {
            (
                u.cache_read_input_tokens.unwrap_or(0),
                u.cache_creation_input_tokens.unwrap_or(0),
            )
        } else {
            (0, 0)
        };
        let input = u
            .prompt_tokens
            .or(u.input_tokens)
            .unwrap_or(0)
            .saturating_add(read)
            .saturating_add(write);
        let cached = if anthropic {
            read
        } else {
            u.prompt_tokens_details
                .or(u.input_tokens_details)
                .map_or(0, |d| d.cached_tokens)
        };
        let output = u.completion_tokens.or(u.output_tokens).unwrap_or(0);
        let reasoning = u
            .completion_tokens_details
            .or(u.output_tokens_details)
            .map_or(0, |d| d.reasoning_tokens);
        let cached = cached.min(input);
        Tokens {
            input,
            cached,
            cache_write: write.min(input - cached),
            output,
            reasoning: reasoning.min(output),
            source: TokensSource::Usage,
        }
    }

    /// Estimated counts (no cache or reasoning known).
    pub fn estimated(input: u64, output: u64, source: TokensSource) -> Tokens {
        Tokens {
            input,
            cached: 0,
            cache_write: 0,
            output,
            reasoning: 0,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand reader reads what serde's derive read, on every broken
    /// variant of the events and answers providers send.
    #[test]
    fn reads_as_serde_does() {
        use crate::json::read::differential::{agree, corpus, EVENTS};
        let docs = corpus(EVENTS);
        assert!(agree::<UsageJson>(&docs) > 100, "UsageJson");
        assert!(
            agree::<Option<Box<UsageJson>>>(&docs) > 100,
            "Option<Box<UsageJson>>"
        );
        assert!(agree::<PromptDetails>(&docs) > 100, "PromptDetails");
        assert!(agree::<CompletionDetails>(&docs) > 100, "CompletionDetails");
    }

    fn parse(json: &str) -> Tokens {
        let u: UsageJson = crate::json::read::from_str(json).unwrap_or_default();
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
            (t.input, t.cached, t.cache_write, t.output, t.reasoning),
            (3050, 2000, 1000, 30, 0)
        );
        let t = parse(r#"{"input_tokens":12,"output_tokens":3,"cache_read_input_tokens":null}"#);
        assert_eq!((t.input, t.cached, t.output), (12, 0, 3));
    }

    #[test]
    fn two_spellings_side_by_side_are_read_not_refused() {
        // Some servers send Chat's and the Responses' names together, or
        // copy Anthropic's cache members into a Chat usage.
        let t = parse(
            r#"{"prompt_tokens":2006,"completion_tokens":300,"input_tokens":2006,"output_tokens":300,
                "prompt_tokens_details":{"cached_tokens":1920},
                "cache_creation_input_tokens":50,"cache_read_input_tokens":1920}"#,
        );
        assert_eq!((t.input, t.cached, t.output), (2006, 1920, 300));
        let body = r#"{"choices":[{"message":{"content":"hello"},"finish_reason":"content_filter"}],
                       "usage":{"prompt_tokens":10,"completion_tokens":3,"input_tokens":10,"output_tokens":3}}"#;
        let mut o = crate::response::ResponseObserver::new();
        o.observe_json(body.as_bytes(), &[]);
        assert!(o.refused(), "the response is still read");
        assert_eq!(o.tokens(0).source, TokensSource::Usage);
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
