//! Redaction of OpenAI-style completion streams, event by event.
//!
//! Each event's `choices[].delta.content` is replaced by what the choice's
//! [`StreamRedactor`] says is safe to emit; the held tail is emitted, redacted,
//! in the event that carries the choice's `finish_reason` (or in an event of
//! its own before `[DONE]`). Only those string values change: every other
//! byte of an event stays as the provider sent it.

use super::stream::StreamRedactor;
use super::{Counts, Redactor};
use crate::json::Raw;
use crate::json::{json_string, Present};
#[cfg(test)]
use serde::Deserialize;

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct Chunk<'a> {
    #[cfg_attr(test, serde(default, borrow))]
    choices: Vec<Choice<'a>>,
}

crate::from_json!(Chunk<'a> { choices });

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct Choice<'a> {
    #[cfg_attr(test, serde(default))]
    index: usize,
    #[cfg_attr(test, serde(default, borrow))]
    delta: Option<Raw<'a>>,
    #[cfg_attr(test, serde(default, borrow))]
    finish_reason: Option<Raw<'a>>,
}

crate::from_json!(Choice<'a> { index, delta, finish_reason });

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize))]
struct Delta<'a> {
    #[cfg_attr(test, serde(default, borrow))]
    content: Present<'a>,
}

crate::from_json!(Delta<'a> { content });

/// Largest choice index tracked (a stream with more choices is left as is).
const MAX_CHOICES: usize = 16;

/// Per-stream state.
#[derive(Debug, Default)]
pub struct SseRedactor {
    choices: Vec<StreamRedactor>,
}

fn offset_in(outer: &str, inner: &str) -> usize {
    crate::json::offset_in(outer.as_bytes(), inner.as_bytes())
}

/// The splice that puts `"content": out` first in the delta `delta_raw`.
fn flush_into(data: &str, delta_raw: Raw<'_>, out: &str) -> (usize, usize, String) {
    let brace = offset_in(data, delta_raw.get()) + 1;
    let empty = delta_raw.get()[1..].trim_start().starts_with('}');
    let sep = if empty { "" } else { "," };
    (
        brace,
        brace,
        format!("\"content\":{}{sep}", json_string(out)),
    )
}

/// `data` with each `(start, end, text)` splice applied; `None` when
/// there is none.
fn splice(data: &str, mut splices: Vec<(usize, usize, String)>) -> Option<String> {
    if splices.is_empty() {
        return None;
    }
    crate::json::sort_spans(&mut splices, |s| (s.0, 0));
    let mut out = String::with_capacity(data.len() + 32);
    let mut at = 0;
    for (start, end, text) in splices {
        out.push_str(data.get(at..start)?);
        out.push_str(&text);
        at = end;
    }
    out.push_str(data.get(at..)?);
    Some(out)
}

impl SseRedactor {
    /// A fresh stream.
    pub fn new() -> SseRedactor {
        SseRedactor::default()
    }

    fn choice(&mut self, index: usize) -> Option<&mut StreamRedactor> {
        if index >= MAX_CHOICES {
            return None;
        }
        if self.choices.len() <= index {
            self.choices.resize_with(index + 1, StreamRedactor::new);
        }
        self.choices.get_mut(index)
    }

    /// Rewrites the `data` of one event; `None` when it is unchanged.
    pub fn rewrite(&mut self, r: &Redactor, data: &str, counts: &mut Counts) -> Option<String> {
        match crate::chunk::Event::parse(data) {
            crate::chunk::Event::Chunk(chunk) => self.rewrite_chunk(r, data, &chunk, counts),
            crate::chunk::Event::Unusual(_) => self.rewrite_text(r, data, counts),
            _ => None,
        }
    }

    /// Rewrites one event from its parsed chunk (`data` is the text it was
    /// parsed from); `None` when it is unchanged.
    pub fn rewrite_chunk(
        &mut self,
        r: &Redactor,
        data: &str,
        chunk: &crate::chunk::Chunk<'_>,
        counts: &mut Counts,
    ) -> Option<String> {
        // A choice that ends in a delta without content may need its held
        // text flushed into that delta: where the deltas start is read
        // again then (once per choice, at its end), before anything changes.
        let ends_without_content = chunk
            .choices
            .iter()
            .any(|c| c.finished() && c.delta.as_ref().is_some_and(|d| d.content.0.is_none()));
        let deltas = if ends_without_content {
            match crate::json::read::from_str::<Chunk<'_>>(data) {
                Ok(c) => c.choices.iter().map(|c| c.delta).collect(),
                Err(_) => return self.rewrite_text(r, data, counts),
            }
        } else {
            Vec::new()
        };
        let mut splices: Vec<(usize, usize, String)> = Vec::new();
        for (position, (c, (text, _))) in chunk.choices.iter().zip(&chunk.texts).enumerate() {
            let Some(delta) = &c.delta else { continue };
            let finished = c.finished();
            let Some(stream) = self.choice(c.index) else {
                continue;
            };
            let mut out = match text {
                Some(t) => stream.push(r, t, counts),
                None => String::new(),
            };
            if finished {
                out.push_str(&stream.finish(r, counts));
            }
            if let Some(raw) = delta.content.0 {
                let unchanged = match text {
                    Some(original) => out == *original,
                    None => out.is_empty(),
                };
                if !unchanged {
                    let start = offset_in(data, raw.get());
                    splices.push((start, start + raw.get().len(), json_string(&out)));
                }
            } else if !out.is_empty() {
                if let Some(Some(delta_raw)) = deltas.get(position) {
                    splices.push(flush_into(data, *delta_raw, &out));
                }
            }
        }
        splice(data, splices)
    }

    /// Rewrites an event that is not shaped like a chunk, read on its own
    /// (and the reference the parsed path is tested against).
    pub(crate) fn rewrite_text(
        &mut self,
        r: &Redactor,
        data: &str,
        counts: &mut Counts,
    ) -> Option<String> {
        let chunk: Chunk<'_> = crate::json::read::from_str(data).ok()?;
        // (start, end, replacement) splices, in order.
        let mut splices: Vec<(usize, usize, String)> = Vec::new();
        for c in &chunk.choices {
            let Some(delta_raw) = c.delta else { continue };
            let delta: Delta<'_> = match crate::json::read::from_str(delta_raw.get()) {
                Ok(d) => d,
                Err(_) => continue,
            };
            let finished = c.finish_reason.is_some_and(|f| f.get() != "null");
            let text = delta
                .content
                .0
                .and_then(|raw| crate::json::read::from_str::<String>(raw.get()).ok());
            let Some(stream) = self.choice(c.index) else {
                continue;
            };
            let mut out = match &text {
                Some(t) => stream.push(r, t, counts),
                None => String::new(),
            };
            if finished {
                out.push_str(&stream.finish(r, counts));
            }
            if let Some(raw) = delta.content.0 {
                // Replace the content (a string, or a null on a final delta).
                let unchanged = match &text {
                    Some(original) => &out == original,
                    None => out.is_empty(),
                };
                if !unchanged {
                    let start = offset_in(data, raw.get());
                    splices.push((start, start + raw.get().len(), json_string(&out)));
                }
            } else if !out.is_empty() {
                // Flush into a delta that had no (string) content.
                splices.push(flush_into(data, delta_raw, &out));
            }
        }
        splice(data, splices)
    }

    /// Ends the stream: `data` payloads of events that carry what is still
    /// held (streams cut before their `finish_reason`).
    pub fn finish(&mut self, r: &Redactor, counts: &mut Counts) -> Vec<String> {
        let mut events = Vec::new();
        for (index, stream) in self.choices.iter_mut().enumerate() {
            let rest = stream.finish(r, counts);
            if !rest.is_empty() {
                events.push(format!(
                    "{{\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":{index},\"delta\":{{\"content\":{}}}}}]}}",
                    json_string(&rest)
                ));
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::redactor;
    use super::super::{Counts, Replacement};
    use super::*;

    fn delta(text: &str) -> String {
        format!(
            r#"{{"id":"c1","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":{}}},"finish_reason":null}}]}}"#,
            json_string(text)
        )
    }

    fn content(data: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
        v["choices"][0]["delta"]["content"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    #[test]
    fn split_values_are_redacted_across_events() {
        let r = redactor(Replacement::Template("[R:{type}]".into()));
        let mut c = Counts::default();
        let mut s = SseRedactor::new();
        let pieces = [
            "Sure, mail ",
            "john.doe@exa",
            "mple.com or call ",
            "+1 415 555",
            " 0100 today.",
        ];
        let mut text = String::new();
        for p in pieces {
            let data = delta(p);
            let out = s.rewrite(&r, &data, &mut c).unwrap_or(data);
            text.push_str(&content(&out));
        }
        let last = r#"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        let out = s.rewrite(&r, last, &mut c).unwrap();
        assert!(out.starts_with(r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"#));
        assert!(out.ends_with(r#"},"finish_reason":"stop"}]}"#));
        text.push_str(&content(&out));
        assert_eq!(text, "Sure, mail [R:email] or call [R:phone] today.");
        assert_eq!(c.total(), 2);
    }

    #[test]
    fn a_null_final_content_is_replaced_not_duplicated() {
        let r = redactor(Replacement::Template("[R:{type}]".into()));
        let mut c = Counts::default();
        let mut s = SseRedactor::new();
        let first = s.rewrite(&r, &delta("short"), &mut c).unwrap();
        assert_eq!(content(&first), "");
        let last = r#"{"choices":[{"index":0,"delta":{"content":null},"finish_reason":"stop"}]}"#;
        let out = s.rewrite(&r, last, &mut c).unwrap();
        assert_eq!(
            out,
            r#"{"choices":[{"index":0,"delta":{"content":"short"},"finish_reason":"stop"}]}"#
        );
    }

    #[test]
    fn untouched_events_are_not_rewritten() {
        let r = redactor(Replacement::Template("[R:{type}]".into()));
        let mut c = Counts::default();
        let mut s = SseRedactor::new();
        assert_eq!(
            s.rewrite(&r, r#"{"choices":[],"usage":{"prompt_tokens":1}}"#, &mut c),
            None
        );
        assert_eq!(s.rewrite(&r, "not json", &mut c), None);
        // Short content is held (it could start an e-mail) ...
        let held = s.rewrite(&r, &delta("hello"), &mut c).unwrap();
        assert_eq!(content(&held), "");
        // ... and released by finish() when the stream is cut.
        let tail = s.finish(&r, &mut c);
        assert_eq!(tail.len(), 1);
        assert_eq!(content(&tail[0]), "hello");
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
        assert!(agree::<Chunk<'_>>(&docs) > 100, "Chunk<'_>");
        assert!(agree::<Delta<'_>>(&docs) > 100, "Delta<'_>");
    }
}
