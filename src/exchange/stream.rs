//! Server-sent events as they flow: every complete event is parsed once
//! ([`crate::chunk`]), observed (usage, refusals), checked by the stream
//! guardrails and redacted; the usage-only
//! chunk the filter asked for on the client's behalf is dropped. Events are
//! re-emitted at once; only an incomplete tail waits for its end.

use super::{Exchange, Host, ResponseMode};
use crate::chunk::Event;
use crate::output::{Policy, StreamAction, StreamGuard};
use crate::response::EventKind;

impl<H: Host> Exchange<H> {
    /// Passes one SSE chunk on, observing every completed event; returns
    /// the bytes to send instead when the stream is rewritten.
    pub(super) fn on_sse_chunk(&mut self, chunk: &[u8], end_of_stream: bool) -> Option<Vec<u8>> {
        let plan = self.loaded.as_ref().map(|(p, _)| p.clone())?;
        let schema = self.schema.take();
        let policy = Self::policy(&plan, schema.as_ref());
        let out = self.rewrite_sse(policy, chunk, end_of_stream);
        self.schema = schema;
        out
    }

    pub(super) fn rewrite_sse(
        &mut self,
        policy: Policy<'_>,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Option<Vec<u8>> {
        let ResponseMode::Sse {
            parser,
            strip_usage,
            redact,
            guard,
            dialect,
        } = &mut self.mode
        else {
            return None;
        };
        let api = self.api;
        let observer = self.observer.as_mut()?;
        let refusal_phrases = self
            .loaded
            .as_ref()
            .map_or(&[][..], |(p, _)| &p.refusal_phrases[..]);
        let mut events = parser.feed(chunk);
        if end_of_stream
            && parser.pending_len() > 0
            && !observer_only(strip_usage, redact, guard, dialect)
        {
            // An event the upstream left unterminated is read like any other
            // (checked, redacted, and terminated), never passed on as it came.
            events.extend(parser.feed(b"\n\n"));
        }
        if let Some(m) = dialect.as_mut() {
            // Messages and Responses: checked by the guardrails event by
            // event, text deltas redacted, each held tail sent in an event
            // of its own before its part ends.
            let mut out = Vec::with_capacity(chunk.len() + 64);
            for e in &events {
                if guard.as_ref().is_some_and(StreamGuard::stopped) {
                    break;
                }
                observer.observe_dialect_event(api, &e.data, refusal_phrases);
                if let Some(g) = guard.as_mut() {
                    if let StreamAction::Stop(stop) = g.on_dialect_event(policy, api, &e.data) {
                        for event in stop {
                            out.extend_from_slice(event.as_bytes());
                        }
                        self.output_block = Some(if g.tool_blocked {
                            "tool_not_allowed"
                        } else {
                            "output_blocked"
                        });
                        break;
                    }
                }
                let Some(r) = policy.redactor else {
                    out.extend_from_slice(&e.raw);
                    continue;
                };
                let w = m.rewrite(r, &e.data, &mut self.redactions);
                for before in &w.before {
                    out.extend_from_slice(before.as_bytes());
                }
                match w.event {
                    Some(event) => out.extend_from_slice(event.as_bytes()),
                    None => out.extend_from_slice(&e.raw),
                }
            }
            let stopped = guard.as_ref().is_some_and(StreamGuard::stopped);
            if end_of_stream && !stopped {
                if let Some(r) = policy.redactor {
                    for rest in m.finish(r, &mut self.redactions) {
                        out.extend_from_slice(rest.as_bytes());
                    }
                }
                out.extend(parser.take_pending());
            }
            if end_of_stream {
                self.schema_pass = guard.as_ref().and_then(|g| g.schema_pass(policy));
            }
            return (out != chunk).then_some(out);
        }
        if !*strip_usage && redact.is_none() && guard.is_none() {
            // The observer alone reads fewer fields than a shared parse.
            for e in &events {
                observer.observe_dialect_event(api, &e.data, refusal_phrases);
            }
            return None;
        }
        // Each event is parsed once, for the observer, the guardrails and
        // the redactor; the observer alone reads fewer fields on its own.
        let shared = redact.is_some() || guard.is_some();
        // Re-emit complete events only: minus the usage chunk the client did
        // not ask for, checked by the guardrails, with redacted content; an
        // incomplete tail waits for its end.
        let mut out = Vec::with_capacity(chunk.len() + 64);
        let emit = |out: &mut Vec<u8>, data: &str| {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(data.as_bytes());
            out.extend_from_slice(b"\n\n");
        };
        for e in events {
            if guard.as_ref().is_some_and(StreamGuard::stopped) {
                break;
            }
            let parsed = shared.then(|| Event::parse(&e.data));
            let kind = match &parsed {
                Some(p) => observer.observe_parsed(p, refusal_phrases),
                None => observer.observe_event(&e.data, refusal_phrases),
            };
            if *strip_usage && kind == EventKind::UsageOnly {
                continue;
            }
            if let Some(g) = guard.as_mut() {
                let parsed = parsed.as_ref().unwrap_or(&Event::Other);
                if let StreamAction::Stop(replacements) = g.on_parsed(policy, parsed) {
                    for data in replacements {
                        emit(&mut out, &data);
                    }
                    emit(&mut out, "[DONE]");
                    self.output_block = Some(if g.tool_blocked {
                        "tool_not_allowed"
                    } else {
                        "output_blocked"
                    });
                    break;
                }
            }
            match (redact.as_mut(), policy.redactor) {
                (Some(sse), Some(r)) => {
                    if kind == EventKind::Done {
                        for data in sse.finish(r, &mut self.redactions) {
                            emit(&mut out, &data);
                        }
                    }
                    let rewritten = match &parsed {
                        Some(Event::Chunk(c)) => {
                            sse.rewrite_chunk(r, &e.data, c, &mut self.redactions)
                        }
                        Some(Event::Unusual(_)) => sse.rewrite(r, &e.data, &mut self.redactions),
                        _ => None,
                    };
                    match rewritten {
                        Some(data) => emit(&mut out, &data),
                        None => out.extend_from_slice(&e.raw),
                    }
                }
                _ => out.extend_from_slice(&e.raw),
            }
        }
        let stopped = guard.as_ref().is_some_and(StreamGuard::stopped);
        if end_of_stream && !stopped {
            if let (Some(sse), Some(r)) = (redact.as_mut(), policy.redactor) {
                for data in sse.finish(r, &mut self.redactions) {
                    emit(&mut out, &data);
                }
            }
            out.extend(parser.take_pending());
        }
        if end_of_stream {
            self.schema_pass = guard.as_ref().and_then(|g| g.schema_pass(policy));
        }
        (out != chunk).then_some(out)
    }
}

/// Whether a stream is only observed (nothing in it is rewritten, so its
/// bytes pass as they came).
fn observer_only(
    strip_usage: &bool,
    redact: &Option<crate::redact::sse::SseRedactor>,
    guard: &Option<StreamGuard>,
    dialect: &Option<super::DialectStream>,
) -> bool {
    !*strip_usage && redact.is_none() && guard.is_none() && dialect.is_none()
}
