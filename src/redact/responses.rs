//! Redaction of OpenAI Responses streams, event by event.
//!
//! Each `response.output_text.delta` has its `delta` replaced by what the
//! text part's [`StreamRedactor`] (by `output_index` and `content_index`)
//! says is safe to emit; the held tail goes out, redacted, in a delta event
//! of its own just before the part's `response.output_text.done`. The
//! events that repeat the whole text (`response.output_text.done`,
//! `response.content_part.done`, `response.output_item.done`,
//! `response.completed`, `response.incomplete`) are redacted whole, which
//! gives the text the deltas add up to. Every other event passes as the
//! provider sent it.

use super::stream::{sse_event, Keyed, Rewrite};
use super::{Counts, Redactor};
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
    output_index: u64,
    #[cfg_attr(test, serde(default))]
    content_index: u64,
    #[cfg_attr(test, serde(default, borrow))]
    delta: Present<'a>,
    #[cfg_attr(test, serde(default, borrow))]
    item_id: Option<Cow<'a, str>>,
    #[cfg_attr(test, serde(default))]
    sequence_number: Option<u64>,
}

crate::from_json!(Event<'a> { kind as "type", output_index, content_index, delta, item_id, sequence_number });

/// Most text parts tracked (a stream with more is left as is past it).
const MAX_PARTS: usize = 64;

/// Per-stream state: a redactor per text part.
#[derive(Debug)]
pub struct ResponsesRedactor {
    parts: Keyed<(u64, u64)>,
}

impl Default for ResponsesRedactor {
    fn default() -> ResponsesRedactor {
        ResponsesRedactor {
            parts: Keyed::new(MAX_PARTS),
        }
    }
}

impl ResponsesRedactor {
    /// A fresh stream.
    pub fn new() -> ResponsesRedactor {
        ResponsesRedactor::default()
    }

    /// Rewrites the `data` of one event.
    pub fn rewrite(&mut self, r: &Redactor, data: &str, counts: &mut Counts) -> Rewrite {
        let Ok(event) = crate::json::read::from_str::<Event<'_>>(data) else {
            return Rewrite::default();
        };
        let key = (event.output_index, event.content_index);
        match event.kind.as_ref() {
            "response.output_text.delta" => {
                let Some(raw) = event.delta.0 else {
                    return Rewrite::default();
                };
                self.parts
                    .rewrite_delta(key, "response.output_text.delta", r, data, raw, counts)
            }
            "response.output_text.done" => {
                let item = event.item_id.as_deref().map_or("null".into(), json_string);
                let origin = (item.as_str(), event.sequence_number.unwrap_or(0));
                let before = self
                    .parts
                    .finish(r, Some(key), counts)
                    .into_iter()
                    .map(|(_, rest)| delta_event(key, &rest, Some(origin)))
                    .collect();
                Rewrite {
                    before,
                    event: whole(r, &event.kind, data),
                }
            }
            "response.content_part.done"
            | "response.output_item.done"
            | "response.completed"
            | "response.incomplete" => Rewrite {
                before: Vec::new(),
                event: whole(r, &event.kind, data),
            },
            _ => Rewrite::default(),
        }
    }

    /// Ends the stream (cut before its parts were done): events carrying
    /// what is still held, redacted.
    pub fn finish(&mut self, r: &Redactor, counts: &mut Counts) -> Vec<String> {
        self.parts
            .finish(r, None, counts)
            .into_iter()
            .map(|(key, rest)| delta_event(key, &rest, None))
            .collect()
    }
}

/// A `response.output_text.delta` event carrying `text` for part `key`,
/// with the `item_id` and `sequence_number` of the event it goes before
/// (`origin`), when there is one.
fn delta_event(key: (u64, u64), text: &str, origin: Option<(&str, u64)>) -> String {
    let (item, seq) = match origin {
        Some((item, seq)) => (
            format!("\"item_id\":{item},"),
            format!(",\"sequence_number\":{seq}"),
        ),
        None => (String::new(), String::new()),
    };
    let data = format!(
        "{{\"type\":\"response.output_text.delta\",{item}\"output_index\":{},\"content_index\":{},\"delta\":{}{seq}}}",
        key.0,
        key.1,
        json_string(text)
    );
    sse_event("response.output_text.delta", &data)
}

/// The event `name` with every string value of its `data` redacted; `None`
/// when nothing changed. Counted in a scratch: these events repeat what the
/// deltas counted.
fn whole(r: &Redactor, name: &str, data: &str) -> Option<String> {
    let mut scratch = Counts::default();
    r.redact_valid_json(data, &mut scratch)
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
        .map(|data| sse_event(name, &data))
}

#[cfg(test)]
mod tests {
    use super::super::messages::tests::data_of;
    use super::super::tests::redactor;
    use super::super::{Counts, Replacement};
    use super::*;

    fn event(kind: &str, extra: &str) -> String {
        format!(
            r#"{{"type":"{kind}","item_id":"msg_1","output_index":0,"content_index":0,{extra}"sequence_number":3}}"#
        )
    }

    #[test]
    fn deltas_add_up_to_the_redacted_text_the_done_events_carry() {
        let whole_text = "Write to john.doe@example.com or call +1 415 555 0100 today. \
                          The report for the board is attached, with the figures of every region. \
                          Card 4111 1111 1111 1111 and key sk-proj-abcdefghijklmnopqrstuvwxyz0123 \
                          must not leak. Thanks.";
        let r = redactor(Replacement::Template("[R:{type}]".into()));
        let expected = r.redact_text(whole_text, &mut Counts::default()).unwrap();
        for cut in (1..whole_text.len()).step_by(3) {
            let mut m = ResponsesRedactor::new();
            let mut counts = Counts::default();
            let mut out: Vec<String> = Vec::new();
            let mut push = |data: String, w: Rewrite| {
                out.extend(w.before.iter().map(|e| data_of(e)));
                out.push(w.event.map_or(data, |e| data_of(&e)));
            };
            for piece in [&whole_text[..cut], &whole_text[cut..]] {
                let d = event(
                    "response.output_text.delta",
                    &format!(r#""delta":{},"#, json_string(piece)),
                );
                let w = m.rewrite(&r, &d, &mut counts);
                push(d, w);
            }
            let done = event(
                "response.output_text.done",
                &format!(r#""text":{},"#, json_string(whole_text)),
            );
            let w = m.rewrite(&r, &done, &mut counts);
            push(done, w);
            let completed = format!(
                r#"{{"type":"response.completed","response":{{"output":[{{"content":[{{"type":"output_text","text":{}}}]}}],"usage":{{"input_tokens":1}}}}}}"#,
                json_string(whole_text)
            );
            let w = m.rewrite(&r, &completed, &mut counts);
            push(completed, w);
            let parsed: Vec<serde_json::Value> = out
                .iter()
                .map(|e| serde_json::from_str(e).unwrap())
                .collect();
            let said: String = parsed
                .iter()
                .filter(|v| v["type"] == "response.output_text.delta")
                .map(|v| v["delta"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(said, expected, "cut at {cut}");
            let done = parsed
                .iter()
                .find(|v| v["type"] == "response.output_text.done")
                .unwrap();
            assert_eq!(done["text"], expected.as_str());
            let last = parsed.last().unwrap();
            assert_eq!(
                last["response"]["output"][0]["content"][0]["text"],
                expected.as_str()
            );
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
    }
}
