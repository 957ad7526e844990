//! The LLM APIs the filter recognises, from the request path's ending, and
//! what differs between them before the model answers: which parameter
//! caps the output, whether a stream can be asked to report usage, and the
//! shape of the filter's own errors.
//!
//! | path ends with | API | output cap | usage asked of a stream | errors |
//! |---|---|---|---|---|
//! | `/chat/completions` | `openai.chat` | `max_tokens`/`max_completion_tokens`, the variant's `output_cap_param` inserted | `stream_options.include_usage` | OpenAI |
//! | `/completions` | `openai.completions` | `max_tokens` | `stream_options.include_usage` | OpenAI |
//! | `/responses` | `openai.responses` | `max_output_tokens` | never (always reported) | OpenAI |
//! | `/messages` | `anthropic.messages` | `max_tokens` lowered, never inserted (the API requires it) | never (always reported) | Anthropic |
//! | `/embeddings` | `openai.embeddings` | none | no streams | OpenAI |
//! | anything else | `other` | none (its parameter is unknown) | never | OpenAI |
//!
//! An API the filter does not know gets no body edit but the model: adding
//! a member it does not define is what providers refuse (Anthropic's
//! `/v1/messages/count_tokens`, the Responses' `/input_tokens`).

use crate::body::CapParam;

/// An API, by the ending of the request path (query string ignored), so
/// prefixed paths (`/openai/deployments/x/chat/completions`) match too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Api {
    /// OpenAI Chat Completions.
    #[default]
    Chat,
    /// OpenAI legacy Completions.
    Completions,
    /// OpenAI Responses.
    Responses,
    /// Anthropic Messages.
    Messages,
    /// OpenAI Embeddings.
    Embeddings,
    /// A path the filter does not know.
    Other,
}

/// How a dialect caps the output tokens of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputCap {
    /// The members capped when the client sent them.
    pub fields: &'static [&'static str],
    /// The member inserted with the cap when the client sent none of them.
    pub insert: Option<CapParam>,
}

impl Api {
    /// The API of a request path.
    pub fn of_path(path: &str) -> Api {
        let end = crate::bytes::find2(path.as_bytes(), b'?', b'#').unwrap_or(path.len());
        let path = path.get(..end).unwrap_or_default();
        let path = path.trim_end_matches('/');
        if path.ends_with("/chat/completions") {
            Api::Chat
        } else if path.ends_with("/completions") {
            Api::Completions
        } else if path.ends_with("/responses") {
            Api::Responses
        } else if path.ends_with("/messages") {
            Api::Messages
        } else if path.ends_with("/embeddings") {
            Api::Embeddings
        } else {
            Api::Other
        }
    }

    /// The name in records and labels (`openai.chat`, `anthropic.messages`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Chat => "openai.chat",
            Api::Completions => "openai.completions",
            Api::Responses => "openai.responses",
            Api::Messages => "anthropic.messages",
            Api::Embeddings => "openai.embeddings",
            Api::Other => "other",
        }
    }

    /// `gen_ai.operation.name` of the OpenTelemetry GenAI semantic
    /// conventions: `chat` (Chat Completions, Responses, Messages),
    /// `text_completion` (legacy Completions), `embeddings`; `None` for a
    /// path the filter does not know.
    pub fn genai_operation(self) -> Option<&'static str> {
        match self {
            Api::Chat | Api::Responses | Api::Messages => Some("chat"),
            Api::Completions => Some("text_completion"),
            Api::Embeddings => Some("embeddings"),
            Api::Other => None,
        }
    }

    /// `gen_ai.provider.name` of the GenAI semantic conventions, from the
    /// API the request speaks: `anthropic` for Messages, `openai` for the
    /// OpenAI APIs (whoever serves them); `None` for an unknown path.
    pub fn genai_provider(self) -> Option<&'static str> {
        match self {
            Api::Messages => Some("anthropic"),
            Api::Other => None,
            _ => Some("openai"),
        }
    }

    /// How the output is capped; `chat_param` is the variant's choice for
    /// Chat Completions.
    pub fn output_cap(self, chat_param: CapParam) -> OutputCap {
        match self {
            Api::Chat => OutputCap {
                fields: &["max_tokens", "max_completion_tokens"],
                insert: Some(chat_param),
            },
            Api::Completions => OutputCap {
                fields: &["max_tokens"],
                insert: Some(CapParam::MaxTokens),
            },
            Api::Responses => OutputCap {
                fields: &["max_output_tokens"],
                insert: Some(CapParam::MaxOutputTokens),
            },
            Api::Messages => OutputCap {
                fields: &["max_tokens"],
                insert: None,
            },
            Api::Embeddings | Api::Other => OutputCap {
                fields: &[],
                insert: None,
            },
        }
    }

    /// Whether a stream reports usage only when asked
    /// (`stream_options.include_usage`), which the filter then asks for.
    /// Responses and Messages streams always report it, and their APIs
    /// refuse `stream_options`.
    pub fn asks_stream_usage(self) -> bool {
        matches!(self, Api::Chat | Api::Completions)
    }

    /// Whether this API streams chat-shaped chunks (`data:` lines ending
    /// with `[DONE]`).
    pub fn streams_are_chunks(self) -> bool {
        matches!(self, Api::Chat | Api::Completions | Api::Embeddings)
    }

    /// Whether the filter reads this API's streams event by event for
    /// every check (usage, redaction, output guardrails): chat chunks, and
    /// the Messages and Responses events. It then also sees such a stream
    /// end (`[DONE]`, `message_stop`, `response.completed`), so one cut
    /// before its end is recorded as cut.
    pub fn streams_are_read(self) -> bool {
        !matches!(self, Api::Other)
    }

    /// Whether a stream of this API may go out under `policy`: every check
    /// that must read it can (a stream no check can read is treated like an
    /// answer the filter cannot decode).
    pub fn stream_passes(self, policy: &crate::output::Policy<'_>) -> bool {
        self.streams_are_read() || policy.passes_unreadable()
    }

    /// The filter's own error as this API's clients parse it.
    pub fn error_body(self, err: &crate::error::ApiError) -> Vec<u8> {
        match self {
            Api::Messages => err.anthropic_body(),
            _ => err.body(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_api_by_their_ending() {
        for (path, api) in [
            ("/v1/chat/completions", Api::Chat),
            (
                "/openai/deployments/gpt4/chat/completions?api-version=2024-10-21",
                Api::Chat,
            ),
            ("/v1/completions", Api::Completions),
            ("/v1/responses", Api::Responses),
            ("/v1/responses/", Api::Responses),
            ("/v1/messages", Api::Messages),
            ("/anthropic/v1/messages?beta=true", Api::Messages),
            ("/v1/embeddings", Api::Embeddings),
            ("/v1/models", Api::Other),
            ("", Api::Other),
            ("/v1/messages/count_tokens", Api::Other),
            ("/v1/responses/input_tokens", Api::Other),
            ("/api/chat", Api::Other),
        ] {
            assert_eq!(Api::of_path(path), api, "{path}");
        }
        assert_eq!(Api::Messages.as_str(), "anthropic.messages");
    }

    #[test]
    fn each_api_caps_its_own_parameter() {
        let chat = Api::Chat.output_cap(CapParam::MaxTokens);
        assert_eq!(chat.insert, Some(CapParam::MaxTokens));
        assert_eq!(
            Api::Responses.output_cap(CapParam::MaxTokens),
            OutputCap {
                fields: &["max_output_tokens"],
                insert: Some(CapParam::MaxOutputTokens)
            }
        );
        assert_eq!(
            Api::Messages
                .output_cap(CapParam::MaxCompletionTokens)
                .insert,
            None
        );
        assert!(Api::Embeddings
            .output_cap(CapParam::MaxCompletionTokens)
            .fields
            .is_empty());
        assert!(Api::Chat.asks_stream_usage() && !Api::Messages.asks_stream_usage());
        assert!(!Api::Responses.asks_stream_usage());
        let other = Api::Other.output_cap(CapParam::MaxCompletionTokens);
        assert!(other.fields.is_empty() && other.insert.is_none());
        assert!(!Api::Other.asks_stream_usage() && !Api::Other.streams_are_read());
    }
}
