//! One streamed `chat.completion.chunk` event, parsed once for every
//! reader of the stream: the usage observer (tokens, refusals), the stream
//! guardrails (tool calls, content) and the stream redactor (where each
//! delta's content sits in the event). Each event's JSON is read by one
//! parser; only the content strings are then decoded, once each.
//!
//! An event whose JSON does not have the shape of a chunk (a field of an
//! unexpected type) is handed to each reader as text, to read as it
//! always did: the fast path never decides what the slow one would not.

use crate::json::Present;
use crate::json::Raw;
use crate::usage::UsageJson;
#[cfg(test)]
use serde::Deserialize;
use std::borrow::Cow;

/// A chunk's `choices[]` entry.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
pub struct Choice<'a> {
    /// `index` (0 when absent).
    #[cfg_attr(test, serde(default))]
    pub index: usize,
    /// `delta` (streams).
    #[cfg_attr(test, serde(default, borrow))]
    pub delta: Option<Part<'a>>,
    /// `message` (some servers stream whole messages).
    #[cfg_attr(test, serde(default, borrow))]
    pub message: Option<Part<'a>>,
    /// `finish_reason`, raw (`null` while the choice goes on).
    #[cfg_attr(test, serde(default, borrow))]
    pub finish_reason: Option<Raw<'a>>,
}

crate::from_json!(Choice<'a> { index, delta, message, finish_reason });

impl Choice<'_> {
    /// Whether `finish_reason` is set (not absent, not `null`).
    pub fn finished(&self) -> bool {
        self.finish_reason.is_some_and(|f| f.get() != "null")
    }

    /// Whether the provider's content filter ended the choice.
    pub fn content_filtered(&self) -> bool {
        self.finish_reason
            .is_some_and(|f| f.get() == "\"content_filter\"")
    }
}

/// A `delta` or `message` object.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
pub struct Part<'a> {
    /// `content`, raw (a string, or `null` on a final delta).
    #[cfg_attr(test, serde(default, borrow))]
    pub content: Present<'a>,
    /// `refusal`.
    #[cfg_attr(test, serde(default, borrow))]
    pub refusal: Option<Cow<'a, str>>,
    /// `tool_calls`.
    #[cfg_attr(test, serde(default, borrow))]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
}

crate::from_json!(Part<'a> { content, refusal, tool_calls });

/// A `tool_calls[]` entry.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
pub struct ToolCall<'a> {
    /// `function`.
    #[cfg_attr(test, serde(default, borrow))]
    pub function: Option<Function<'a>>,
}

crate::from_json!(ToolCall<'a> { function });

/// A tool call's `function`.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
pub struct Function<'a> {
    /// The tool's name (streams send it in the call's first delta).
    #[cfg_attr(test, serde(default, borrow))]
    pub name: Option<Cow<'a, str>>,
}

crate::from_json!(Function<'a> { name });

impl Part<'_> {
    /// The names of the tools this part calls.
    pub fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.tool_calls
            .iter()
            .flatten()
            .filter_map(|c| c.function.as_ref()?.name.as_deref())
    }
}

/// A Messages content block, or a part of a Responses output item.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
pub struct Block<'a> {
    /// `type`.
    #[cfg_attr(test, serde(default, rename = "type", borrow))]
    pub kind: Cow<'a, str>,
    /// `text` (a Messages `text` block, a Responses `output_text` part).
    #[cfg_attr(test, serde(default, borrow))]
    pub text: Option<Cow<'a, str>>,
    /// `name` (a tool-use block).
    #[cfg_attr(test, serde(default, borrow))]
    pub name: Option<Cow<'a, str>>,
}

crate::from_json!(Block<'a> { kind as "type", text, name });

/// A Responses `output` item.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
pub struct Item<'a> {
    /// `type`.
    #[cfg_attr(test, serde(default, rename = "type", borrow))]
    pub kind: Cow<'a, str>,
    /// `name` (a tool-call item).
    #[cfg_attr(test, serde(default, borrow))]
    pub name: Option<Cow<'a, str>>,
    /// `content` (a `message` item's parts).
    #[cfg_attr(test, serde(default, borrow))]
    pub content: Option<Vec<Block<'a>>>,
}

crate::from_json!(Item<'a> { kind as "type", name, content });

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct Shape<'a> {
    #[cfg_attr(test, serde(default, borrow))]
    choices: Vec<Choice<'a>>,
    /// Messages: the answer's content blocks.
    #[cfg_attr(test, serde(default, borrow))]
    content: Option<Vec<Block<'a>>>,
    /// Responses: the answer's output items.
    #[cfg_attr(test, serde(default, borrow))]
    output: Option<Vec<Item<'a>>>,
    /// Messages: why the answer stopped.
    #[cfg_attr(test, serde(default, borrow))]
    stop_reason: Option<Cow<'a, str>>,
    // Boxed: a usage is in one event of a stream, and inline it would make
    // every parsed event ~200 bytes larger.
    #[cfg_attr(test, serde(default))]
    usage: Option<Box<UsageJson>>,
    #[cfg_attr(test, serde(default, borrow))]
    model: Option<Raw<'a>>,
}

crate::from_json!(Shape<'a> { choices, content, output, stop_reason, usage, model });

/// A choice's decoded `delta.content` and `message.content`.
pub type Texts<'a> = (Option<Cow<'a, str>>, Option<Cow<'a, str>>);

/// A parsed chunk, with each choice's decoded delta and message content.
#[derive(Debug)]
pub struct Chunk<'a> {
    /// The event's `data`, as parsed.
    pub data: &'a str,
    /// `choices`.
    pub choices: Vec<Choice<'a>>,
    /// `usage` (boxed: one event of a stream has it).
    pub usage: Option<Box<UsageJson>>,
    /// `model`, as sent: the model that answered, as the provider names it.
    pub model: Option<Raw<'a>>,
    /// Per choice: the decoded `delta.content` and `message.content`, when
    /// they are strings.
    pub texts: Vec<Texts<'a>>,
    /// A Messages answer's `content` blocks.
    pub content: Option<Vec<Block<'a>>>,
    /// A Responses answer's `output` items.
    pub output: Option<Vec<Item<'a>>>,
    /// A Messages answer's `stop_reason`.
    pub stop_reason: Option<Cow<'a, str>>,
}

impl Chunk<'_> {
    /// Whether this is a Messages or Responses answer (`content` blocks or
    /// `output` items, no `choices`).
    pub fn is_dialect_answer(&self) -> bool {
        self.choices.is_empty() && (self.content.is_some() || self.output.is_some())
    }

    /// The tools a Messages or Responses answer calls (tool-use blocks,
    /// tool-call items), in order.
    pub fn answer_tool_names(&self) -> impl Iterator<Item = &str> {
        let blocks = self.content.iter().flatten().filter_map(|b| {
            crate::guard::MESSAGES_TOOL_CALLS
                .contains(&b.kind.as_ref())
                .then_some(b.name.as_deref())
                .flatten()
        });
        let items = self.output.iter().flatten().filter_map(|i| {
            crate::guard::RESPONSES_TOOL_CALLS
                .contains(&i.kind.as_ref())
                .then_some(i.name.as_deref())
                .flatten()
        });
        blocks.chain(items)
    }

    /// The texts of a Messages or Responses answer: `text` blocks, then the
    /// `output_text` parts of `message` items.
    pub fn answer_texts(&self) -> impl Iterator<Item = &str> + Clone {
        let blocks = self
            .content
            .iter()
            .flatten()
            .filter(|b| b.kind == "text")
            .filter_map(|b| b.text.as_deref());
        let parts = self
            .output
            .iter()
            .flatten()
            .filter(|i| i.kind == "message")
            .flat_map(|i| i.content.iter().flatten())
            .filter(|p| p.kind == "output_text")
            .filter_map(|p| p.text.as_deref());
        blocks.chain(parts)
    }

    /// Whether a Messages or Responses answer is a refusal
    /// (`stop_reason: "refusal"`, a `refusal` part in an output item).
    pub fn answer_refused(&self) -> bool {
        self.stop_reason.as_deref() == Some("refusal")
            || self
                .output
                .iter()
                .flatten()
                .flat_map(|i| i.content.iter().flatten())
                .any(|p| p.kind == "refusal")
    }

    /// The names of every tool the chunk's choices call (messages and deltas).
    pub fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.choices.iter().flat_map(|c| {
            [&c.message, &c.delta]
                .into_iter()
                .flatten()
                .flat_map(|part| part.tool_names())
        })
    }

    /// Whether every `content` and `finish_reason` is a string or `null`
    /// (what the usage observer reads; anything else it reads as text).
    pub fn strings_where_expected(&self) -> bool {
        let string_or_null = |raw: Raw<'_>| raw.get() == "null" || raw.get().starts_with('"');
        self.choices.iter().all(|c| {
            c.finish_reason.is_none_or(string_or_null)
                && [&c.delta, &c.message]
                    .into_iter()
                    .flatten()
                    .all(|p| p.content.0.is_none_or(string_or_null))
        })
    }
}

fn text<'a>(part: Option<&Part<'a>>) -> Option<Cow<'a, str>> {
    let raw = part?.content.0?;
    crate::json::read::from_str::<Cow<'a, str>>(raw.get()).ok()
}

/// One SSE event's `data`, read once.
#[derive(Debug)]
pub enum Event<'a> {
    /// `[DONE]`.
    Done,
    /// A chunk.
    Chunk(Chunk<'a>),
    /// An object that is not shaped like a chunk: each reader reads the
    /// text itself.
    Unusual(&'a str),
    /// Anything else (comments, data that is not an object).
    Other,
}

impl<'a> Event<'a> {
    /// Parses the `data` of one event.
    pub fn parse(data: &'a str) -> Event<'a> {
        let trimmed = data.trim();
        if trimmed == "[DONE]" {
            return Event::Done;
        }
        if !trimmed.starts_with('{') {
            return Event::Other;
        }
        match crate::json::read::from_str::<Shape<'a>>(data) {
            Ok(shape) => {
                let texts = shape
                    .choices
                    .iter()
                    .map(|c| (text(c.delta.as_ref()), text(c.message.as_ref())))
                    .collect();
                Event::Chunk(Chunk {
                    data,
                    choices: shape.choices,
                    usage: shape.usage,
                    model: shape.model,
                    texts,
                    content: shape.content,
                    output: shape.output,
                    stop_reason: shape.stop_reason,
                })
            }
            Err(_) => Event::Unusual(data),
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
        assert!(agree::<Shape<'_>>(&docs) > 100, "Shape<'_>");
        assert!(agree::<Choice<'_>>(&docs) > 100, "Choice<'_>");
        assert!(agree::<Part<'_>>(&docs) > 100, "Part<'_>");
        assert!(agree::<Block<'_>>(&docs) > 100, "Block<'_>");
        assert!(agree::<Item<'_>>(&docs) > 100, "Item<'_>");
    }

    #[test]
    fn a_chunk_is_read_with_its_contents_tools_and_finish() {
        let data = r#"{"id":"c","choices":[{"index":1,"delta":{"content":"caf\u00e9","tool_calls":[{"index":0,"function":{"name":"rm","arguments":""}}]},"finish_reason":"content_filter"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        let Event::Chunk(c) = Event::parse(data) else {
            panic!("a chunk")
        };
        assert_eq!(c.choices[0].index, 1);
        assert!(c.choices[0].finished() && c.choices[0].content_filtered());
        assert_eq!(c.texts[0].0.as_deref(), Some("café"));
        let tools: Vec<_> = c.choices[0].delta.as_ref().unwrap().tool_names().collect();
        assert_eq!(tools, ["rm"]);
        assert_eq!(c.usage.as_ref().and_then(|u| u.completion_tokens), Some(4));
    }

    #[test]
    fn done_other_and_unusual_events() {
        assert!(matches!(Event::parse(" [DONE]\n"), Event::Done));
        assert!(matches!(Event::parse("keep-alive"), Event::Other));
        assert!(matches!(Event::parse(""), Event::Other));
        assert!(matches!(Event::parse("{broken"), Event::Unusual(_)));
        // Valid JSON of another shape: each reader reads it itself.
        assert!(matches!(
            Event::parse(r#"{"choices":"none"}"#),
            Event::Unusual(_)
        ));
        let Event::Chunk(c) = Event::parse(r#"{"choices":[{"delta":{"content":null}}]}"#) else {
            panic!("a chunk")
        };
        assert!(c.texts[0].0.is_none() && c.choices[0].delta.as_ref().unwrap().content.0.is_some());
    }

    /// Events of the kinds streams carry, and odd ones.
    fn events(seed: &mut u64, n: usize) -> Vec<String> {
        const PIECES: [&str; 16] = [
            "Contact ",
            "jane.doe@",
            "example.com",
            " now. ",
            "Card 4111 1111",
            " 1111 1111",
            " EMP-123",
            "456 ok",
            "Well, as an ev",
            "il ai I say",
            "caf\\u00e9 ",
            "\\\"quoted\\\"\\n",
            "",
            "+1 415 555 ",
            "0134 ",
            "I can't",
        ];
        let mut next = || crate::testing::xorshift(seed);
        (0..n)
            .map(|_| {
                let r = next();
                let piece = PIECES[(r >> 8) as usize % PIECES.len()];
                let index = (r >> 16) % 2;
                let finish = ["null", "\"stop\"", "\"length\"", "\"content_filter\"", "7"]
                    [if r % 5 == 0 { (r >> 20) as usize % 5 } else { 0 }];
                match (r >> 32) % 16 {
                    0..=5 => format!(r#"{{"id":"c","object":"chat.completion.chunk","choices":[{{"index":{index},"delta":{{"content":"{piece}"}},"finish_reason":{finish}}}]}}"#),
                    6 => format!(r#"{{"choices":[{{"index":{index},"delta":{{"role":"assistant"}},"finish_reason":{finish}}}]}}"#),
                    7 => format!(r#"{{"choices":[{{"index":{index},"delta":{{}},"finish_reason":"stop"}}]}}"#),
                    8 => r#"{"choices":[{"index":0,"delta":{"content":null},"finish_reason":"length"}]}"#.to_string(),
                    9 => format!(r#"{{"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"name":"{}","arguments":""}}}}]}}}}]}}"#, if r % 3 == 0 { "rm" } else { "search_docs" }),
                    10 => format!(r#"{{"choices":[{{"index":0,"delta":{{"content":"{piece}"}}}},{{"index":1,"delta":{{"content":"{piece}"}},"finish_reason":{finish}}}]}}"#),
                    11 => r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9,"prompt_tokens_details":{"cached_tokens":2}}}"#.to_string(),
                    12 => format!(r#"{{"choices":[{{"index":0,"message":{{"content":"{piece}","refusal":"{}"{}}}}}]}}"#,
                                  if r % 2 == 0 { "" } else { "no" },
                                  if r % 3 == 0 { r#","tool_calls":[{"function":{"name":"rm"}}]"# } else { "" }),
                    13 => ["[DONE]", "", "keep-alive", "[1,2]", "{broken", r#"{"choices":"none"}"#][(r >> 40) as usize % 6].to_string(),
                    14 => [r#"{"choices":[{"index":"x","delta":{"content":"a EMP-123456"}}]}"#,
                           r#"{"choices":[{"delta":{"content":5},"finish_reason":"stop"}]}"#,
                           r#"{"choices":[{"delta":"text"}]}"#,
                           r#"{"choices":[{"delta":{"content":"x","tool_calls":5}}]}"#][(r >> 40) as usize % 4].to_string(),
                    _ => format!(r#"{{"choices":[{{"index":0,"delta":{{"content":"{piece}","refusal":"x"}},"finish_reason":{finish}}}],"usage":null}}"#),
                }
            })
            .collect()
    }

    /// The parsed path decides what each reader decided reading the text
    /// itself: the same rewritten events, guard actions, usage, refusals
    /// and redaction counts, over 3 000 generated streams.
    #[test]
    fn one_parse_feeds_every_reader_as_their_own_parses_did() {
        use crate::guard::Guardrails;
        use crate::output::{Policy, StreamGuard};
        use crate::redact::sse::SseRedactor;
        use crate::redact::{Counts, Replacement};
        use crate::response::ResponseObserver;
        let r = crate::redact::tests::redactor(Replacement::Template("[R:{type}]".into()));
        let g = Guardrails {
            response_patterns: vec![crate::pattern::Pattern::new("(?i)as an evil ai").unwrap()],
            allowed_tools: Some(vec!["search_docs".into()]),
            ..Guardrails::default()
        };
        let policy = Policy {
            redactor: Some(&r),
            guard: &g,
            schema: None,
        };
        let phrases = ["i can't".to_string()];
        let mut seed = 0x0123_4567_89ab_cdefu64;
        for stream in 0..3_000 {
            let events = events(&mut seed, 1 + stream % 24);
            let (mut o1, mut o2) = (ResponseObserver::new(), ResponseObserver::new());
            let (mut g1, mut g2) = (StreamGuard::new(), StreamGuard::new());
            let (mut s1, mut s2) = (SseRedactor::new(), SseRedactor::new());
            let (mut c1, mut c2) = (Counts::default(), Counts::default());
            for data in &events {
                let parsed = Event::parse(data);
                let why = format!("stream {stream}, event {data}");
                assert_eq!(
                    o1.observe_parsed(&parsed, &phrases),
                    o2.observe_event(data, &phrases),
                    "{why}"
                );
                let reference = if g2.stopped() {
                    crate::output::StreamAction::Stop(Vec::new())
                } else {
                    g2.on_text(policy, data)
                };
                assert_eq!(g1.on_parsed(policy, &parsed), reference, "{why}");
                let rewritten = match &parsed {
                    Event::Chunk(c) => s1.rewrite_chunk(&r, data, c, &mut c1),
                    Event::Unusual(_) => s1.rewrite(&r, data, &mut c1),
                    _ => None,
                };
                let reference = if data.trim_start().starts_with('{') {
                    s2.rewrite_text(&r, data, &mut c2)
                } else {
                    None
                };
                assert_eq!(rewritten, reference, "{why}");
            }
            assert_eq!(s1.finish(&r, &mut c1), s2.finish(&r, &mut c2));
            assert_eq!(c1, c2);
            assert_eq!(o1.tokens(3), o2.tokens(3), "stream {stream}");
            assert_eq!(o1.refused(), o2.refused());
            assert_eq!(o1.saw_done(), o2.saw_done());
            assert_eq!(
                (g1.stopped(), g1.tool_blocked, g1.output_blocked),
                (g2.stopped(), g2.tool_blocked, g2.output_blocked)
            );
        }
    }
}
