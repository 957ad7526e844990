//! The response side: which mode reads the body (JSON copied or held,
//! SSE, Envoy's timeout reply, nothing), the checks of a held JSON answer,
//! and answers the filter cannot read.

use super::request::HeaderEdits;
use super::{Exchange, Flow, Host, Matched, Phase, ResponseMode, MAX_JSON_RESPONSE};
use crate::config::Plan;
use crate::error::ApiError;
use crate::output::{self, StreamGuard};
use crate::redact::sse::SseRedactor;
use crate::sse::SseParser;

/// Envoy's `UT` response flag: the upstream request timed out.
const UPSTREAM_REQUEST_TIMEOUT: u64 = 0x4;

impl<H: Host> Exchange<H> {
    /// How a stream of this exchange's API is read under `policy` (the
    /// upstream's, or control's in a fallback), and whether it may be
    /// rewritten. Chat-shaped chunks are rewritten as `data:` lines;
    /// Messages and Responses events keep their `event:` lines (a dialect
    /// stream); a stream of an API the filter does not read passes as it is
    /// (the request was refused when a check had to read it).
    pub(super) fn stream_mode(&self, policy: &crate::output::Policy<'_>) -> (ResponseMode, bool) {
        let chunks = self.api.streams_are_chunks();
        let strip_usage = self.info.usage_injected;
        let redact = chunks && policy.redactor.is_some();
        let dialect = (policy.redactor.is_some() || policy.watches_stream())
            .then(|| super::DialectStream::of(self.api))
            .flatten();
        let watch = (chunks || dialect.is_some()) && policy.watches_stream();
        let rewrites = strip_usage || redact || watch || dialect.is_some();
        let mode = ResponseMode::Sse {
            parser: SseParser::new(),
            strip_usage,
            redact: redact.then(SseRedactor::new),
            guard: watch.then(StreamGuard::new),
            dialect,
        };
        (mode, rewrites)
    }

    /// Adds a change to the response headers waiting to be written.
    fn edit_response(&mut self, name: &str, value: Option<&str>) {
        if let Some(edits) = self.pending_response.as_mut() {
            match value {
                Some(v) => edits.set(name, v),
                None => edits.remove(name),
            }
        }
    }

    /// Writes the waiting response header changes, one call per header.
    pub(super) fn apply_response_edits(&mut self) {
        if let Some(edits) = self.pending_response.take() {
            for (name, value) in edits.changes() {
                self.host.set_response_header(name, value);
            }
        }
    }

    /// Answers with `err` in place of the held response.
    pub(super) fn replace_response(&mut self, err: &ApiError) -> Flow {
        self.pending_response = None; // the reply has headers of its own
        if let (Some((_, metrics)), Some(m)) = (&self.loaded, self.matched) {
            metrics.count_rejected(&self.host, m.experiment, m.variant, err.code);
        }
        self.status = err.status;
        self.error_code = Some(err.code);
        self.finalize(true);
        self.host.send_reply(
            err.status,
            &[("content-type", "application/json")],
            &self.api.error_body(err),
        );
        Flow::Pause
    }

    /// A response whose `content-encoding` the filter cannot decode: refused
    /// when a check must read it (redaction with `on_error: block`, output
    /// guardrails), else passed on as it is and recorded as unreadable.
    pub(super) fn unreadable_response(
        &mut self,
        plan: &Plan,
        m: Matched,
        encoding: &str,
        end_of_stream: bool,
    ) -> Flow {
        if let Some(o) = self.observer.as_mut() {
            o.mark_unreadable();
        }
        self.mode = ResponseMode::Ignore;
        // Upstream errors go on as they are: nothing in them is checked.
        if (200..300).contains(&self.status) {
            let policy = Self::policy(plan, self.schema.as_ref());
            if !policy.passes_unreadable() {
                return self.replace_response(&ApiError::response_encoded(encoding));
            }
            if let (Some(_), Some((_, metrics))) = (policy.redactor, &self.loaded) {
                metrics.count_redaction_skipped(&self.host, m.experiment, m.variant);
            }
        }
        if end_of_stream {
            self.finalize(true);
        }
        Flow::Continue
    }

    /// A JSON response too large to hold for the output checks.
    pub(super) fn finish_json_response_too_large(&mut self) -> Flow {
        let pass = self
            .loaded
            .as_ref()
            .and_then(|(p, _)| p.redaction.as_ref())
            .is_none_or(|r| r.pass_on_error);
        if pass {
            if let (Some((_, metrics)), Some(m)) = (&self.loaded, self.matched) {
                metrics.count_redaction_skipped(&self.host, m.experiment, m.variant);
            }
            self.mode = ResponseMode::Ignore;
            return Flow::Continue;
        }
        self.replace_response(&ApiError::response_unscannable(
            "response body too large to scan",
        ))
    }

    /// Checks a complete held JSON response: tools, moderation, schema, redaction.
    pub(super) fn finish_json_response(&mut self, body_size: usize) -> Flow {
        let Some((plan, metrics)) = self.loaded.clone() else {
            return Flow::Continue;
        };
        let body = self.host.response_body(body_size);
        // Upstream errors go on as they are: observed, not checked.
        let checked = (200..300).contains(&self.status);
        let schema = if checked { self.schema.take() } else { None };
        let verdict = output::read_answer(
            self.observer.as_mut(),
            &plan.refusal_phrases,
            &body,
            checked.then(|| Self::policy(&plan, schema.as_ref())),
            &mut self.redactions,
        );
        let Some(verdict) = verdict else {
            return Flow::Continue;
        };
        self.schema_pass = verdict.schema_pass;
        if verdict.schema_pass == Some(false) {
            let by_policy = plan
                .guardrails
                .schema
                .as_ref()
                .is_some_and(|s| s.on_fail == crate::guard::OnSchemaFail::Fallback);
            let m = self.matched;
            let configured = m
                .and_then(|m| plan.experiments.get(m.experiment))
                .and_then(|e| e.fallback)
                .is_some_and(|f| f.on_schema_fail);
            if let (true, true, Some(m)) = (by_policy, configured, m) {
                if self.start_fallback(&plan, m) {
                    return Flow::Pause;
                }
            }
        }
        if let Some(err) = verdict.error {
            return self.replace_response(&err);
        }
        if verdict.output_blocked {
            self.output_block = Some("output_blocked");
        }
        if let Some(why) = verdict.unscannable {
            let pass = plan.redaction.as_ref().is_none_or(|r| r.pass_on_error);
            if !pass && !body.is_empty() {
                return self.replace_response(&ApiError::response_unscannable(why));
            }
            if let Some(m) = self.matched {
                metrics.count_redaction_skipped(&self.host, m.experiment, m.variant);
            }
        }
        self.keep_response_copy(verdict.body.as_deref().unwrap_or(&body));
        if let Some(new) = verdict.body {
            self.host.set_response_body(body_size, &new);
            self.edit_response("content-length", Some(&new.len().to_string()));
        }
        Flow::Continue
    }

    /// Picks how the response body is read, holds what must be checked
    /// whole, and lets control answer for a failed treatment.
    pub(super) fn response_headers(&mut self, end_of_stream: bool) -> Flow {
        if self.phase == Phase::Done {
            return Flow::Continue;
        }
        // A response the filter reads needs three headers: one call for all.
        // Routing only (no telemetry) reads none: nothing uses the status.
        let telemetry = self.loaded.as_ref().is_some_and(|(p, _)| p.telemetry);
        let reads = self.matched.is_some() && telemetry;
        let snapshot = if reads {
            self.host.response_headers()
        } else {
            super::HeaderMap::default()
        };
        let get = |name: &str| snapshot.get(name);
        let status = if reads {
            get(":status").map(str::to_string)
        } else if telemetry {
            self.host.response_header(":status")
        } else {
            None
        };
        self.status = status.and_then(|s| s.parse().ok()).unwrap_or(0);
        let (Some((plan, _)), Some(m)) = (self.loaded.clone(), self.matched) else {
            if end_of_stream {
                self.finalize(true);
            }
            return Flow::Continue;
        };
        if !plan.telemetry {
            // Routing only: the variant headers, nothing read from the response.
            if plan.expose_headers {
                if let Some((id, v)) = Self::variant(&plan, m) {
                    self.host.set_response_header("x-llm-experiment", Some(id));
                    self.host
                        .set_response_header("x-llm-variant", Some(&v.name));
                }
            }
            self.phase = Phase::Done;
            return Flow::Continue;
        }
        let wants_fallback = plan
            .experiments
            .get(m.experiment)
            .and_then(|e| e.fallback)
            .is_some_and(|f| f.wants(self.status, self.host.response_flags()));
        if wants_fallback && self.start_fallback(&plan, m) {
            // Hold the treatment's failure; control's answer replaces it.
            return Flow::Pause;
        }
        // Header changes are written in one call (with the body's, when
        // the body is held).
        let mut edits = HeaderEdits::default();
        if plan.expose_headers {
            if let Some((id, v)) = Self::variant(&plan, m) {
                edits.set("x-llm-experiment", id);
                edits.set("x-llm-variant", &v.name);
            }
        }
        let content_type = get("content-type").unwrap_or_default().to_string();
        let encoding = crate::encoding::unreadable(get("content-encoding"));
        self.pending_response = Some(edits);
        if self.status == 504 && self.host.response_flags() & UPSTREAM_REQUEST_TIMEOUT != 0 {
            // Envoy's own "upstream request timeout": answer in the OpenAI shape.
            self.edit_response("content-type", Some("application/json"));
            self.edit_response("content-length", None);
            self.apply_response_edits();
            self.mode = ResponseMode::TimeoutReply;
            self.error_code = Some("upstream_timeout");
            if let Some((_, metrics)) = &self.loaded {
                metrics.count_rejected(&self.host, m.experiment, m.variant, "upstream_timeout");
            }
            if end_of_stream {
                self.finalize(true);
            }
            return Flow::Continue;
        }
        if let Some(encoding) = encoding {
            self.apply_response_edits();
            return self.unreadable_response(&plan, m, encoding, end_of_stream);
        }
        let policy = Self::policy(&plan, self.schema.as_ref());
        let sse = content_type.starts_with("text/event-stream");
        if sse && !self.api.streams_are_read() && (200..300).contains(&self.status) {
            // Not read: never let it out unchecked. (A request that asked
            // for a stream was refused already then.)
            if !self.api.stream_passes(&policy) {
                let err = ApiError::stream_unreadable_answer(self.api.as_str());
                return self.replace_response(&err);
            }
            if let (true, Some((_, metrics))) = (policy.redactor.is_some(), &self.loaded) {
                metrics.count_redaction_skipped(&self.host, m.experiment, m.variant);
            }
        }
        self.mode = if sse {
            let (mode, rewrites) = self.stream_mode(&policy);
            if rewrites {
                // The body changes size when it is rewritten.
                self.edit_response("content-length", None);
            }
            mode
        } else if crate::route::is_json_content_type(&content_type)
            || (200..300).contains(&self.status)
        {
            // A successful answer is checked as JSON whatever its declared
            // type: one that is not JSON cannot be scanned (`on_error`).
            if policy.holds_json() && !end_of_stream {
                // Hold the headers too: a response refused by a guardrail is
                // replaced by an error, which needs its own status.
                self.mode = ResponseMode::JsonHeld;
                return Flow::Pause;
            }
            ResponseMode::Json(Vec::new())
        } else {
            ResponseMode::Ignore
        };
        self.apply_response_edits();
        if end_of_stream {
            self.finalize(true);
        }
        Flow::Continue
    }

    /// Reads, checks or rewrites the response body as its mode says.
    pub(super) fn response_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        if self.phase == Phase::Fallback {
            return Flow::Pause; // hold the failed treatment's body
        }
        if self.phase == Phase::Done || self.matched.is_none() {
            if end_of_stream {
                self.finalize(true);
            }
            return Flow::Continue;
        }
        if matches!(self.mode, ResponseMode::TimeoutReply) {
            if end_of_stream {
                let body = self.api.error_body(&ApiError::upstream_timeout());
                self.host.set_response_body(body_size, &body);
                self.finalize(true);
                return Flow::Continue;
            }
            return Flow::Pause; // the whole plain-text reply is replaced
        }
        if matches!(self.mode, ResponseMode::JsonHeld) {
            if !end_of_stream {
                if body_size > MAX_JSON_RESPONSE {
                    let flow = self.finish_json_response_too_large();
                    self.apply_response_edits();
                    return flow;
                }
                return Flow::Pause;
            }
            let action = self.finish_json_response(body_size);
            if action == Flow::Continue {
                self.apply_response_edits();
            }
            if self.phase != Phase::Fallback {
                self.finalize(true);
            }
            return action;
        }
        if self.ttft_ms.is_none() && matches!(self.mode, ResponseMode::Sse { .. }) {
            self.ttft_ms = Some(self.now_ms().saturating_sub(self.start_ms));
        }
        if !matches!(self.mode, ResponseMode::Ignore) && (body_size > 0 || end_of_stream) {
            let chunk = self.host.response_body(body_size);
            if let ResponseMode::Json(buf) = &mut self.mode {
                if buf.len() + chunk.len() <= MAX_JSON_RESPONSE {
                    buf.extend_from_slice(&chunk);
                }
                self.keep_response_copy(&chunk);
            } else if let Some(out) = self.on_sse_chunk(&chunk, end_of_stream) {
                self.host.set_response_body(body_size, &out);
                self.keep_response_copy(&out);
            } else {
                self.keep_response_copy(&chunk);
            }
        }
        if end_of_stream {
            if let (ResponseMode::Json(buf), Some(o), Some((plan, _))) =
                (&self.mode, self.observer.as_mut(), self.loaded.as_ref())
            {
                o.observe_json(buf, &plan.refusal_phrases);
            }
            self.finalize(true);
        }
        Flow::Continue
    }
}
