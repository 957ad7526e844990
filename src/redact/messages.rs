//! Redaction of Anthropic Messages streams, event by event.
//!
//! Each `content_block_delta` of a text block (`delta.type: text_delta`)
//! has its `delta.text` replaced by what the block's [`StreamRedactor`]
//! says is safe to emit; the held tail goes out, redacted, in a
//! `content_block_delta` event of its own just before the block's
//! `content_block_stop` (or before `message_stop`, or at the end of a cut
//! stream). Only those strings change: every other byte of an event stays
//! as the provider sent it. Thinking deltas are left as they are: their
//! signature must match them when the client sends them back.

use super::stream::{sse_event, Keyed, Rewrite};
use super::{Counts, Redactor};
use crate::json::Raw;
use crate::json::{json_string, Present};
#[cfg(test)]
use serde::Deserialize;
use std::borrow::Cow;

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct Event<'a> {
    #[cfg_attr(test, serde(default, rename = "type", borrow))]
    kind: Cow<'a, str>,
    #[cfg_attr(test, serde(default))]
    index: Option<u64>,
    #[cfg_attr(test, serde(default, borrow))]
    delta: Option<Raw<'a>>,
}

crate::from_json!(Event<'a> { kind as "type", index, delta });

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct Delta<'a> {
    #[cfg_attr(test, serde(default, rename = "type", borrow))]
    kind: Cow<'a, str>,
    #[cfg_attr(test, serde(default, borrow))]
    text: Present<'a>,
}

crate::from_json!(Delta<'a> { kind as "type", text });

/// Most content blocks tracked (a stream with more is left as is past it).
const MAX_BLOCKS: usize = 64;

/// Per-stream state: a redactor per text block, by index.
#[derive(Debug)]
pub struct MessagesRedactor {
    blocks: Keyed<u64>,
}

impl Default for MessagesRedactor {
    fn default() -> MessagesRedactor {
        MessagesRedactor {
            blocks: Keyed::new(MAX_BLOCKS),
        }
    }
}

/// A `content_block_delta` event carrying `text` for block `index`.
fn text_event(index: u64, text: &str) -> String {
    sse_event(
        "content_block_delta",
        &format!(
            "{{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"text_delta\",\"text\":{}}}}}",
            json_string(text)
        ),
    )
}

impl MessagesRedactor {
    /// A fresh stream.
    pub fn new() -> MessagesRedactor {
        MessagesRedactor::default()
    }

    /// Flushes block `index` (all blocks when `None`): the events that
    /// carry what was held.
    fn flush(&mut self, r: &Redactor, index: Option<u64>, counts: &mut Counts) -> Vec<String> {
        self.blocks
            .finish(r, index, counts)
            .into_iter()
            .map(|(i, rest)| text_event(i, &rest))
            .collect()
    }

    /// Rewrites the `data` of one event.
    pub fn rewrite(&mut self, r: &Redactor, data: &str, counts: &mut Counts) -> Rewrite {
        let Ok(event) = crate::json::read::from_str::<Event<'_>>(data) else {
            return Rewrite::default();
        };
        match (event.kind.as_ref(), event.index, event.delta) {
            ("content_block_delta", Some(index), Some(delta_raw)) => {
                let Ok(delta) = crate::json::read::from_str::<Delta<'_>>(delta_raw.get()) else {
                    return Rewrite::default();
                };
                let (true, Some(raw)) = (delta.kind == "text_delta", delta.text.0) else {
                    return Rewrite::default();
                };
                self.blocks
                    .rewrite_delta(index, "content_block_delta", r, data, raw, counts)
            }
            ("content_block_stop", Some(index), _) => Rewrite {
                before: self.flush(r, Some(index), counts),
                event: None,
            },
            ("message_stop", _, _) => Rewrite {
                before: self.flush(r, None, counts),
                event: None,
            },
            _ => Rewrite::default(),
        }
    }

    /// Ends the stream: events carrying what is still held (a stream cut
    /// before its blocks stopped).
    pub fn finish(&mut self, r: &Redactor, counts: &mut Counts) -> Vec<String> {
        self.flush(r, None, counts)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::tests::redactor;
    use super::super::{Counts, Replacement};
    use super::*;

    /// The `data` of one whole SSE event.
    pub(crate) fn data_of(event: &str) -> String {
        event
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap()
            .to_string()
    }

    fn delta(text: &str) -> String {
        format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{}}}}}"#,
            json_string(text)
        )
    }

    /// The text a client assembles from a rewritten stream of `pieces`.
    fn through(pieces: &[&str]) -> String {
        let r = redactor(Replacement::Template("[R:{type}]".into()));
        let mut m = MessagesRedactor::new();
        let mut counts = Counts::default();
        let mut events: Vec<String> = Vec::new();
        let mut push = |data: String, w: Rewrite| {
            events.extend(w.before.iter().map(|e| data_of(e)));
            events.push(w.event.map_or(data, |e| data_of(&e)));
        };
        let start =
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
        push(start.into(), m.rewrite(&r, start, &mut counts));
        for p in pieces {
            let d = delta(p);
            let w = m.rewrite(&r, &d, &mut counts);
            push(d, w);
        }
        for end in [
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"message_stop"}"#,
        ] {
            let w = m.rewrite(&r, end, &mut counts);
            push(end.into(), w);
        }
        events
            .iter()
            .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
            .filter(|v| v["type"] == "content_block_delta")
            .map(|v| v["delta"]["text"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_value_split_across_deltas_is_redacted_and_the_tail_flushed_before_the_stop() {
        // Longer than what a block holds back, so deltas go out mid-stream.
        let whole = "Write to john.doe@example.com or call +1 415 555 0100 today. \
                     The report for the board is attached, with the figures of every region. \
                     Card 4111 1111 1111 1111 and key sk-proj-abcdefghijklmnopqrstuvwxyz0123 \
                     must not leak; EMP-123456 either. Thanks.";
        let r = redactor(Replacement::Template("[R:{type}]".into()));
        let expected = r.redact_text(whole, &mut Counts::default()).unwrap();
        for cut in 1..whole.len() {
            if !whole.is_char_boundary(cut) {
                continue;
            }
            assert_eq!(
                through(&[&whole[..cut], &whole[cut..]]),
                expected,
                "cut at {cut}"
            );
        }
        let words: Vec<String> = whole.split_inclusive(' ').map(str::to_string).collect();
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        assert_eq!(through(&refs), expected);
        assert!(!expected.contains("john.doe") && !expected.contains("4111"));
    }

    #[test]
    fn other_events_and_thinking_pass_as_they_are() {
        let r = redactor(Replacement::Template("[R:{type}]".into()));
        let mut m = MessagesRedactor::new();
        let mut counts = Counts::default();
        for e in [
            r#"{"type":"message_start","message":{"id":"m","content":[],"usage":{"input_tokens":5}}}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"mail john.doe@example.com"}}"#,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}"#,
            "not json",
        ] {
            assert_eq!(m.rewrite(&r, e, &mut counts), Rewrite::default(), "{e}");
        }
    }
}

#[cfg(test)]
mod reads {
    use super::*;

    /// The hand reader reads what serde's derive read, on every broken
    /// variant of the events and answers providers send.
    #[test]
    fn reads_as_serde_does() {
        use crate::json::read::differential::{agree, corpus, EVENTS};
        let docs = corpus(EVENTS);
        assert!(agree::<Event<'_>>(&docs) > 100, "Event<'_>");
        assert!(agree::<Delta<'_>>(&docs) > 100, "Delta<'_>");
    }
}
