//! What the filter learns from a model's response, JSON or SSE: token usage
//! (reported or estimated), refusals, and which stream events are the
//! usage-only chunk the filter may have asked for on the client's behalf.
//!
//! Nothing here keeps response text: content is counted and scanned for
//! refusal phrases through a bounded tail, then dropped.

use crate::chunk::Event;
use crate::json::Raw;
use crate::tokens::TokenCounter;
use crate::usage::UsageJson;
pub use crate::usage::{Tokens, TokensSource};
#[cfg(test)]
use serde::Deserialize;
use std::borrow::Cow;

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct Chunk<'a> {
    #[cfg_attr(test, serde(default, borrow))]
    choices: Vec<Choice<'a>>,
    #[cfg_attr(test, serde(default))]
    usage: Option<UsageJson>,
    #[cfg_attr(test, serde(default, borrow))]
    model: Option<Raw<'a>>,
}

crate::from_json!(Chunk<'a> { choices, usage, model });

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct Choice<'a> {
    #[cfg_attr(test, serde(default, borrow))]
    delta: Option<Message<'a>>,
    #[cfg_attr(test, serde(default, borrow))]
    message: Option<Message<'a>>,
    #[cfg_attr(test, serde(default, borrow))]
    finish_reason: Option<Cow<'a, str>>,
}

crate::from_json!(Choice<'a> { delta, message, finish_reason });

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct Message<'a> {
    #[cfg_attr(test, serde(default, borrow))]
    content: Option<Cow<'a, str>>,
    #[cfg_attr(test, serde(default, borrow))]
    refusal: Option<Cow<'a, str>>,
}

crate::from_json!(Message<'a> { content, refusal });

/// One event of an Anthropic Messages stream, as far as usage, text and
/// refusals go: `message_start` (`message.usage`: input and cache),
/// `content_block_delta` (`delta.text`), `message_delta`
/// (`delta.stop_reason`, `usage`: cumulative, each count it carries
/// replacing the one before), `message_stop`.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct AnthropicEvent<'a> {
    #[cfg_attr(test, serde(default, rename = "type", borrow))]
    kind: Cow<'a, str>,
    #[cfg_attr(test, serde(default, borrow))]
    message: Option<AnthropicMessage<'a>>,
    #[cfg_attr(test, serde(default))]
    usage: Option<UsageJson>,
    #[cfg_attr(test, serde(default, borrow))]
    delta: Option<AnthropicDelta<'a>>,
}

crate::from_json!(AnthropicEvent<'a> { kind as "type", message, usage, delta });

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct AnthropicMessage<'a> {
    #[cfg_attr(test, serde(default))]
    usage: Option<UsageJson>,
    #[cfg_attr(test, serde(default, borrow))]
    model: Option<Raw<'a>>,
}

crate::from_json!(AnthropicMessage<'a> { usage, model });

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct AnthropicDelta<'a> {
    #[cfg_attr(test, serde(default, borrow))]
    text: Option<Cow<'a, str>>,
    #[cfg_attr(test, serde(default, borrow))]
    stop_reason: Option<Cow<'a, str>>,
}

crate::from_json!(AnthropicDelta<'a> { text, stop_reason });

/// One event of a Responses stream, as far as usage, text and refusals
/// go: `response.output_text.delta` (`delta`), `response.refusal.delta`,
/// `response.completed` / `response.incomplete` (`response.usage`, and the
/// end of the stream).
#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct ResponsesEvent<'a> {
    #[cfg_attr(test, serde(default, rename = "type", borrow))]
    kind: Cow<'a, str>,
    #[cfg_attr(test, serde(default, borrow))]
    response: Option<ResponsesBody<'a>>,
    #[cfg_attr(test, serde(default, borrow))]
    delta: Option<Cow<'a, str>>,
}

crate::from_json!(ResponsesEvent<'a> { kind as "type", response, delta });

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct ResponsesBody<'a> {
    #[cfg_attr(test, serde(default))]
    usage: Option<UsageJson>,
    #[cfg_attr(test, serde(default, borrow))]
    model: Option<Raw<'a>>,
}

crate::from_json!(ResponsesBody<'a> { usage, model });

/// What says an answer without `choices` (Anthropic Messages, Responses)
/// is a refusal: `stop_reason: "refusal"`, or a `refusal` part in an
/// `output` item.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct OtherAnswer<'a> {
    #[cfg_attr(test, serde(default, borrow))]
    stop_reason: Option<Cow<'a, str>>,
    #[cfg_attr(test, serde(default, borrow))]
    output: Vec<OutputItem<'a>>,
}

crate::from_json!(OtherAnswer<'a> { stop_reason, output });

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct OutputItem<'a> {
    #[cfg_attr(test, serde(default, borrow))]
    content: Vec<PartKind<'a>>,
}

crate::from_json!(OutputItem<'a> { content });

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct PartKind<'a> {
    #[cfg_attr(test, serde(default, rename = "type", borrow))]
    kind: Cow<'a, str>,
}

crate::from_json!(PartKind<'a> { kind as "type" });

/// Whether `data`, an answer without `choices`, is a refusal.
fn other_answer_refused(data: &str) -> bool {
    crate::json::read::from_str::<OtherAnswer<'_>>(data).is_ok_and(|a| {
        a.stop_reason.as_deref() == Some("refusal")
            || a.output
                .iter()
                .flat_map(|i| &i.content)
                .any(|p| p.kind == "refusal")
    })
}

/// How a stream event was classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A chunk with choices (content, tool calls, finish reason).
    Choices,
    /// A chunk carrying only `usage` (`choices: []`).
    UsageOnly,
    /// `[DONE]`.
    Done,
    /// Anything else (comments, unparseable data).
    Other,
}

/// Finds configured phrases (ASCII case-insensitive) in text that arrives
/// in pieces, keeping only a bounded tail between pieces.
#[derive(Debug, Default)]
struct PhraseScanner {
    tail: String,
    found: bool,
}

impl PhraseScanner {
    fn add(&mut self, piece: &str, phrases: &[String]) {
        if self.found || phrases.is_empty() {
            return;
        }
        let longest = phrases.iter().map(String::len).max().unwrap_or(0);
        self.tail.push_str(piece);
        if phrases
            .iter()
            .any(|p| crate::pattern::contains_ignore_ascii_case(&self.tail, p))
        {
            self.found = true;
            return;
        }
        // Keep only what a phrase could still straddle.
        let keep = longest.saturating_sub(1);
        if self.tail.len() > keep {
            let mut cut = self.tail.len() - keep;
            while !self.tail.is_char_boundary(cut) {
                cut += 1;
            }
            self.tail.drain(..cut);
        }
    }
}

/// Accumulates what a response says about tokens and refusals.
///
/// `refusal_phrases` are matched ignoring ASCII case; the observer borrows
/// them for each call, so one list serves every request.
#[derive(Debug, Default)]
pub struct ResponseObserver {
    usage: Option<UsageJson>,
    output: TokenCounter,
    refusal: bool,
    phrases: PhraseScanner,
    saw_done: bool,
    unreadable: bool,
    /// The first `model` the response named.
    model: Option<String>,
}

impl ResponseObserver {
    /// A fresh observer.
    pub fn new() -> ResponseObserver {
        ResponseObserver::default()
    }

    /// Keeps the first model the response names (one copy per response);
    /// a `model` that is not a string is ignored, never an error.
    fn saw_model(&mut self, model: Option<Raw<'_>>) {
        if self.model.is_some() {
            return;
        }
        self.model = model
            .filter(|raw| raw.get().starts_with('"'))
            .and_then(|raw| crate::json::read::from_str::<String>(raw.get()).ok())
            .filter(|m| !m.is_empty());
    }

    fn observe_chunk(&mut self, chunk: &Chunk<'_>, refusal_phrases: &[String]) {
        self.saw_model(chunk.model);
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        for choice in &chunk.choices {
            if choice.finish_reason.as_deref() == Some("content_filter") {
                self.refusal = true;
            }
            for m in [&choice.delta, &choice.message].into_iter().flatten() {
                if let Some(text) = &m.content {
                    self.output.add(text);
                    self.phrases.add(text, refusal_phrases);
                }
                if m.refusal.as_deref().is_some_and(|r| !r.is_empty()) {
                    self.refusal = true;
                }
            }
        }
    }

    /// Observes a complete non-streaming JSON response body.
    pub fn observe_json(&mut self, body: &[u8], refusal_phrases: &[String]) {
        if let Ok(chunk) = crate::json::read::from_slice::<Chunk<'_>>(body) {
            self.observe_chunk(&chunk, refusal_phrases);
            if chunk.choices.is_empty() {
                let text = std::str::from_utf8(body).unwrap_or("");
                self.refusal |= other_answer_refused(text);
            }
        }
    }

    /// Observes one SSE event, parsed once for every reader of the stream.
    pub fn observe_parsed(&mut self, event: &Event<'_>, refusal_phrases: &[String]) -> EventKind {
        let chunk = match event {
            Event::Done => {
                self.saw_done = true;
                return EventKind::Done;
            }
            Event::Other => return EventKind::Other,
            Event::Unusual(data) => return self.observe_event(data, refusal_phrases),
            Event::Chunk(chunk) if !chunk.strings_where_expected() => {
                return self.observe_event(chunk.data, refusal_phrases)
            }
            Event::Chunk(chunk) => chunk,
        };
        self.saw_model(chunk.model);
        if let Some(u) = &chunk.usage {
            self.usage = Some(**u);
        }
        if chunk.choices.is_empty() {
            self.refusal |= chunk.answer_refused();
        }
        for (choice, (delta, message)) in chunk.choices.iter().zip(&chunk.texts) {
            if choice.content_filtered() {
                self.refusal = true;
            }
            for text in [delta, message].into_iter().flatten() {
                self.output.add(text);
                self.phrases.add(text, refusal_phrases);
            }
            for part in [&choice.delta, &choice.message].into_iter().flatten() {
                if part.refusal.as_deref().is_some_and(|r| !r.is_empty()) {
                    self.refusal = true;
                }
            }
        }
        if chunk.choices.is_empty() && chunk.usage.is_some() {
            EventKind::UsageOnly
        } else {
            EventKind::Choices
        }
    }

    /// Observes the `data` of one SSE event, read on its own (when the
    /// observer is its only reader, or the event is not shaped like a
    /// chunk), and classifies it.
    pub fn observe_event(&mut self, data: &str, refusal_phrases: &[String]) -> EventKind {
        let data = data.trim();
        if data == "[DONE]" {
            self.saw_done = true;
            return EventKind::Done;
        }
        if !data.starts_with('{') {
            return EventKind::Other;
        }
        match crate::json::read::from_str::<Chunk<'_>>(data) {
            Ok(chunk) => {
                self.observe_chunk(&chunk, refusal_phrases);
                if chunk.choices.is_empty() && chunk.usage.is_some() {
                    EventKind::UsageOnly
                } else {
                    EventKind::Choices
                }
            }
            Err(_) => EventKind::Other,
        }
    }

    /// Observes the `data` of one stream event of `api`.
    pub fn observe_dialect_event(
        &mut self,
        api: crate::dialect::Api,
        data: &str,
        refusal_phrases: &[String],
    ) {
        match api {
            crate::dialect::Api::Messages => self.observe_anthropic_event(data, refusal_phrases),
            crate::dialect::Api::Responses => self.observe_responses_event(data, refusal_phrases),
            _ => {
                self.observe_event(data, refusal_phrases);
            }
        }
    }

    /// Observes the `data` of one event of a Responses stream: the text of
    /// its output deltas, a refusal, and the usage of `response.completed`
    /// (or `response.incomplete`), which ends the stream.
    pub fn observe_responses_event(&mut self, data: &str, refusal_phrases: &[String]) {
        let Ok(event) = crate::json::read::from_str::<ResponsesEvent<'_>>(data.trim()) else {
            return;
        };
        match event.kind.as_ref() {
            "response.output_text.delta" => {
                if let Some(text) = &event.delta {
                    self.output.add(text);
                    self.phrases.add(text, refusal_phrases);
                }
            }
            "response.refusal.delta" | "response.refusal.done" => self.refusal = true,
            "response.completed" | "response.incomplete" => {
                self.saw_done = true;
                if let Some(r) = &event.response {
                    self.saw_model(r.model);
                    if let Some(u) = r.usage {
                        self.usage = Some(u);
                    }
                }
            }
            _ => {
                if let Some(r) = &event.response {
                    self.saw_model(r.model);
                }
            }
        }
    }

    /// Observes the `data` of one event of an Anthropic Messages stream:
    /// usage from `message_start` and every `message_delta`, the text of
    /// `content_block_delta`, a `refusal` stop reason; `message_stop` ends
    /// the stream as `[DONE]` ends a chat stream.
    pub fn observe_anthropic_event(&mut self, data: &str, refusal_phrases: &[String]) {
        let Ok(event) = crate::json::read::from_str::<AnthropicEvent<'_>>(data.trim()) else {
            return;
        };
        let counts = match event.kind.as_ref() {
            "message_start" => event.message.and_then(|m| {
                self.saw_model(m.model);
                m.usage
            }),
            "message_delta" => event.usage,
            "message_stop" => {
                self.saw_done = true;
                None
            }
            _ => None,
        };
        if let Some(c) = counts {
            let u = self.usage.get_or_insert_with(UsageJson::default);
            let set = |field: &mut Option<u64>, value: Option<u64>| {
                if value.is_some() {
                    *field = value;
                }
            };
            // Anthropic's own members: `input_tokens` leaves the cache out.
            set(&mut u.input_tokens, c.input_tokens);
            set(&mut u.output_tokens, c.output_tokens);
            set(&mut u.cache_read_input_tokens, c.cache_read_input_tokens);
            set(
                &mut u.cache_creation_input_tokens,
                c.cache_creation_input_tokens,
            );
        }
        if let Some(delta) = &event.delta {
            if let Some(text) = &delta.text {
                self.output.add(text);
                self.phrases.add(text, refusal_phrases);
            }
            if delta.stop_reason.as_deref() == Some("refusal") {
                self.refusal = true;
            }
        }
    }

    /// The response body could not be read (an unknown `content-encoding`):
    /// its tokens are reported as [`TokensSource::Unreadable`].
    pub fn mark_unreadable(&mut self) {
        self.unreadable = true;
    }

    /// The model that answered, as the response names it (its `model`;
    /// a Messages stream's `message_start`, a Responses stream's
    /// `response.*` events), when it named one.
    pub fn response_model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// Whether the stream ended with `[DONE]`.
    pub fn saw_done(&self) -> bool {
        self.saw_done
    }

    /// Whether the model refused (content filter, `refusal`, or a phrase).
    pub fn refused(&self) -> bool {
        self.refusal || self.phrases.found
    }

    /// Token counts: the provider's usage when reported, else estimates.
    pub fn tokens(&self, prompt_estimate: u64) -> Tokens {
        match self.usage {
            _ if self.unreadable => Tokens::estimated(prompt_estimate, 0, TokensSource::Unreadable),
            Some(u) => Tokens::from_usage(&u),
            None => Tokens::estimated(
                prompt_estimate,
                self.output.tokens(),
                TokensSource::Estimated,
            ),
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
        assert!(agree::<Chunk<'_>>(&docs) > 100, "Chunk<'_>");
        assert!(
            agree::<AnthropicEvent<'_>>(&docs) > 100,
            "AnthropicEvent<'_>"
        );
        assert!(
            agree::<ResponsesEvent<'_>>(&docs) > 100,
            "ResponsesEvent<'_>"
        );
        assert!(agree::<OtherAnswer<'_>>(&docs) > 100, "OtherAnswer<'_>");
    }

    #[test]
    fn refusals_of_messages_and_responses_answers_are_seen_both_ways() {
        for (body, refused) in [
            (
                r#"{"type":"message","content":[{"type":"text","text":"no"}],"stop_reason":"refusal","usage":{"input_tokens":3,"output_tokens":1}}"#,
                true,
            ),
            (
                r#"{"type":"message","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#,
                false,
            ),
            (
                r#"{"object":"response","output":[{"type":"message","content":[{"type":"refusal","refusal":"I can't"}]}],"usage":{"input_tokens":3,"output_tokens":1}}"#,
                true,
            ),
            (
                r#"{"object":"response","output":[{"type":"message","content":[{"type":"output_text","text":"ok"}]}]}"#,
                false,
            ),
        ] {
            let mut a = ResponseObserver::new();
            a.observe_json(body.as_bytes(), &[]);
            let mut b = ResponseObserver::new();
            b.observe_parsed(&Event::parse(body), &[]);
            assert_eq!((a.refused(), b.refused()), (refused, refused), "{body}");
        }
    }

    #[test]
    fn responses_streams_are_counted_from_response_completed() {
        let mut o = ResponseObserver::new();
        let phrases = vec!["cannot help".to_string()];
        for e in [
            r#"{"type":"response.created","response":{"status":"in_progress","usage":null},"sequence_number":0}"#,
            r#"{"type":"response.output_text.delta","delta":"I cannot","output_index":0,"content_index":0}"#,
            r#"{"type":"response.output_text.delta","delta":" help.","output_index":0,"content_index":0}"#,
        ] {
            o.observe_responses_event(e, &phrases);
        }
        assert!(
            !o.saw_done() && o.refused(),
            "the phrase straddles two deltas"
        );
        o.observe_responses_event(
            r#"{"type":"response.completed","response":{"usage":{"input_tokens":40,"input_tokens_details":{"cached_tokens":8},"output_tokens":3,"output_tokens_details":{"reasoning_tokens":1}}}}"#,
            &phrases,
        );
        assert!(o.saw_done());
        let t = o.tokens(1);
        assert_eq!(
            (t.input, t.cached, t.output, t.reasoning, t.source),
            (40, 8, 3, 1, TokensSource::Usage)
        );
        let mut o = ResponseObserver::new();
        o.observe_responses_event(r#"{"type":"response.refusal.delta","delta":"no"}"#, &[]);
        assert!(o.refused());
    }

    #[test]
    fn anthropic_streams_are_counted_from_message_start_and_the_last_message_delta() {
        let events = [
            r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":50,"cache_creation_input_tokens":1000,"cache_read_input_tokens":2000,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type": "ping"}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I can't help"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" with that."}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":7}}"#,
            r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":9,"input_tokens":60}}"#,
        ];
        let mut o = ResponseObserver::new();
        let phrases = vec!["i can't help with".to_string()];
        for e in events {
            o.observe_anthropic_event(e, &phrases);
        }
        assert!(!o.saw_done(), "no message_stop yet");
        o.observe_anthropic_event(r#"{"type":"message_stop"}"#, &phrases);
        assert!(
            o.saw_done() && o.refused(),
            "the phrase straddles two deltas"
        );
        let t = o.tokens(1);
        assert_eq!(
            (t.input, t.cached, t.output, t.source),
            (3060, 2000, 9, TokensSource::Usage)
        );
        let mut o = ResponseObserver::new();
        o.observe_anthropic_event(r#"{"type":"message_delta","delta":{"stop_reason":"refusal"},"usage":{"output_tokens":2}}"#, &[]);
        o.observe_anthropic_event("not json", &[]);
        assert!(o.refused());
    }

    #[test]
    fn json_usage_is_read() {
        let mut o = ResponseObserver::new();
        o.observe_json(br#"{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#, &[]);
        assert_eq!(
            o.tokens(99),
            Tokens {
                input: 12,
                cached: 0,
                cache_write: 0,
                output: 3,
                reasoning: 0,
                source: TokensSource::Usage
            }
        );
        assert!(!o.refused());
    }

    #[test]
    fn cached_and_reasoning_tokens_are_read_from_json_and_streams() {
        let usage = r#""usage":{"prompt_tokens":1200,"completion_tokens":40,"prompt_tokens_details":{"cached_tokens":1152},"completion_tokens_details":{"reasoning_tokens":32}}"#;
        let mut o = ResponseObserver::new();
        o.observe_json(
            format!(r#"{{"choices":[{{"message":{{"content":"hi"}}}}],{usage}}}"#).as_bytes(),
            &[],
        );
        let t = o.tokens(0);
        assert_eq!(
            (t.input, t.cached, t.output, t.reasoning),
            (1200, 1152, 40, 32)
        );
        let mut o = ResponseObserver::new();
        o.observe_event(r#"{"choices":[{"delta":{"content":"hi"}}]}"#, &[]);
        let kind = o.observe_event(&format!(r#"{{"choices":[],{usage}}}"#), &[]);
        assert_eq!(kind, EventKind::UsageOnly);
        let t = o.tokens(0);
        assert_eq!(
            (t.cached, t.reasoning, t.source),
            (1152, 32, TokensSource::Usage)
        );
    }

    #[test]
    fn an_unreadable_response_reports_no_output_and_says_so() {
        let mut o = ResponseObserver::new();
        o.mark_unreadable();
        assert_eq!(
            o.tokens(17),
            Tokens::estimated(17, 0, TokensSource::Unreadable)
        );
        assert_eq!(o.tokens(17).source.as_str(), "unreadable");
    }

    #[test]
    fn stream_events_are_classified_and_counted() {
        let mut o = ResponseObserver::new();
        let k = o.observe_event(r#"{"choices":[{"delta":{"content":"Hello"}}]}"#, &[]);
        assert_eq!(k, EventKind::Choices);
        o.observe_event(r#"{"choices":[{"delta":{"content":" world!!"}}]}"#, &[]);
        assert_eq!(o.tokens(7).output, 4); // 13 ASCII chars
        assert_eq!(o.tokens(7).source, TokensSource::Estimated);
        assert_eq!(o.tokens(7).input, 7);
        let k = o.observe_event(
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#,
            &[],
        );
        assert_eq!(k, EventKind::UsageOnly);
        assert_eq!(o.observe_event("[DONE]", &[]), EventKind::Done);
        assert!(o.saw_done());
        assert_eq!(o.tokens(7).source, TokensSource::Usage);
        assert_eq!(o.observe_event("not json", &[]), EventKind::Other);
        assert_eq!(o.observe_event("{broken", &[]), EventKind::Other);
    }

    #[test]
    fn refusals_are_detected() {
        let mut o = ResponseObserver::new();
        o.observe_json(
            br#"{"choices":[{"message":{"content":null},"finish_reason":"content_filter"}]}"#,
            &[],
        );
        assert!(o.refused());
        let mut o = ResponseObserver::new();
        o.observe_event(r#"{"choices":[{"delta":{"refusal":"I can't help"}}]}"#, &[]);
        assert!(o.refused());
        let mut o = ResponseObserver::new();
        o.observe_event(
            r#"{"choices":[{"delta":{"refusal":null,"content":"ok"}}]}"#,
            &[],
        );
        assert!(!o.refused());
    }

    #[test]
    fn refusal_phrases_are_found_across_deltas() {
        let phrases = vec!["I cannot assist".to_string()];
        let mut o = ResponseObserver::new();
        for piece in ["Sorry, i ca", "nnot as", "sist with that."] {
            o.observe_event(
                &format!(r#"{{"choices":[{{"delta":{{"content":"{piece}"}}}}]}}"#),
                &phrases,
            );
        }
        assert!(o.refused());
        let mut o = ResponseObserver::new();
        o.observe_event(
            r#"{"choices":[{"delta":{"content":"I can assist"}}]}"#,
            &phrases,
        );
        assert!(!o.refused());
    }

    #[test]
    fn phrase_tail_stays_bounded_and_utf8_safe() {
        let phrases = vec!["never said".to_string()];
        let mut o = ResponseObserver::new();
        for _ in 0..1000 {
            o.observe_event(
                r#"{"choices":[{"delta":{"content":"模型 ok "}}]}"#,
                &phrases,
            );
        }
        assert!(o.phrases.tail.len() <= "never said".len() + 3);
        assert!(!o.refused());
    }
}
