//! Per-request HTTP context: applies the routing decision to headers and
//! the body, observes the response, and writes the request record.

use super::metrics::{Finished, Metrics};
use super::review;
use super::store::HostStore;
use crate::body::{self, Edits, RequestInfo};
use crate::budget::{self, Decision, Reservation};
use crate::config::{Plan, Variant};
use crate::error::ApiError;
use crate::output::{self, Policy, StreamAction, StreamGuard};
use crate::record::{outcome_for_code, outcome_of, status_class, Outcome, Record};
use crate::redact::sse::SseRedactor;
use crate::redact::Counts;
use crate::response::{EventKind, ResponseObserver};
use crate::route::{Reason, RequestHeaders};
use crate::slo;
use crate::sse::SseParser;
use crate::trace;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::cell::Cell;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

/// Upstream request headers the filter owns: client values are dropped.
const OWNED_REQUEST_HEADERS: [&str; 4] = [
    "x-llm-experiment",
    "x-llm-variant",
    "x-llm-prompt-version",
    "x-llm-rag-index-version",
];

/// Filter state key of the record (`%FILTER_STATE(wasm.llm_ab_record:PLAIN)%`).
const RECORD_PROPERTY: &str = "llm_ab_record";

/// Most bytes of a request or response kept for a review copy (64 KiB).
const MAX_REVIEW_COPY: usize = 64 * 1024;

/// Largest non-streaming response body copied for usage parsing (8 MiB).
const MAX_JSON_RESPONSE: usize = 8 * 1024 * 1024;

thread_local! {
    /// Per-VM request counter, mixed into generated trace ids.
    static SEQUENCE: Cell<u64> = const { Cell::new(0) };
}

/// Request or response headers, fetched from the host in one call: a
/// handful of lookups per request is cheaper locally than one hostcall each.
struct HeaderSnapshot(Vec<(String, String)>);

impl HeaderSnapshot {
    fn fetch(map: MapType) -> HeaderSnapshot {
        HeaderSnapshot(hostcalls::get_map(map).unwrap_or_default())
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl RequestHeaders for HeaderSnapshot {
    fn header(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }
}

fn set_request_header(name: &str, value: Option<&str>) {
    let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value);
}

/// Envoy's response flags of this stream (0 when unknown).
fn response_flags() -> u64 {
    hostcalls::get_property(vec!["response", "flags"])
        .ok()
        .flatten()
        .and_then(|b| b.get(..8).and_then(|b| b.try_into().ok()))
        .map_or(0, u64::from_le_bytes)
}

/// Envoy's `UT` response flag: the upstream request timed out.
const UPSTREAM_REQUEST_TIMEOUT: u64 = 0x4;

/// Whether the response is Envoy's own reply to an upstream timeout.
fn is_timeout_reply() -> bool {
    response_flags() & UPSTREAM_REQUEST_TIMEOUT != 0
}

fn now_ms() -> u64 {
    now_nanos() / 1_000_000
}

fn now_nanos() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Where the request stands once an experiment matched it.
#[derive(Clone, Copy)]
struct Matched {
    experiment: usize,
    /// The variant the assignment chose.
    assigned: usize,
    /// The variant serving the request (control when paused or the
    /// assigned variant's breaker is open).
    variant: usize,
    /// The request is a half-open breaker probe.
    probe: bool,
    reason: Reason,
    bucket: Option<u16>,
}

/// How the response body is observed.
enum ResponseMode {
    /// Not observed (unmatched request, or nothing to learn).
    Ignore,
    /// Non-streaming JSON, copied up to a cap and parsed at the end.
    Json(Vec<u8>),
    /// Non-streaming JSON held whole (headers too) for the output checks.
    JsonHeld,
    /// Envoy's plain-text timeout reply, replaced by an OpenAI-shape error.
    TimeoutReply,
    /// SSE, parsed as it flows; `strip_usage` drops the usage-only chunk
    /// the filter asked for on the client's behalf; `redact` rewrites the
    /// streamed content.
    Sse {
        parser: SseParser,
        strip_usage: bool,
        redact: Option<SseRedactor>,
        guard: Option<StreamGuard>,
    },
}

/// One HTTP exchange through the filter.
pub struct Exchange {
    loaded: Option<(Rc<Plan>, Rc<Metrics>)>,
    matched: Option<Matched>,
    /// The request body still has to be validated / rewritten.
    body_pending: bool,
    /// Buffered request body size last reported by the host.
    body_size: usize,
    start_ms: u64,
    trace_id: String,
    request_id: Option<String>,
    info: RequestInfo,
    status: u32,
    mode: ResponseMode,
    observer: Option<ResponseObserver>,
    ttft_ms: Option<u64>,
    error_code: Option<&'static str>,
    finalized: bool,
    /// Values redacted in this exchange, per detector.
    redactions: Counts,
    /// Quota key values (header values), per configured quota.
    quota_keys: Vec<Option<String>>,
    /// Tokens reserved against quotas, settled when the exchange ends.
    reservations: Vec<Reservation>,
    /// `Retry-After` of a quota refusal.
    retry_after: Option<u64>,
    /// The schema the output must match, when any.
    schema: Option<serde_json::Value>,
    /// Result of the output schema check, when one ran.
    schema_pass: Option<bool>,
    /// A guardrail replaced or cut the output (`output_blocked`, `tool_not_allowed`).
    output_block: Option<&'static str>,
    /// The request went upstream (tokens were spent).
    forwarded: bool,
    /// Copies kept for human review (request, response), when it is on.
    review_copy: Option<(Vec<u8>, Vec<u8>)>,
    /// The request as control would get it, for a fallback.
    fallback_body: Option<Vec<u8>>,
    /// Request path, for a fallback.
    path: String,
    /// Fallback calls made.
    fallback_attempts: u32,
    /// A fallback call is under way (the treatment's response is held).
    fallback_pending: bool,
    /// Control answered instead of the failed treatment.
    fell_back: bool,
}

impl Exchange {
    /// A context for one stream; `loaded` is `None` only if no configuration loaded.
    pub fn new(loaded: Option<(Rc<Plan>, Rc<Metrics>)>) -> Exchange {
        Exchange {
            loaded,
            matched: None,
            body_pending: false,
            body_size: 0,
            start_ms: 0,
            trace_id: String::new(),
            request_id: None,
            info: RequestInfo::default(),
            status: 0,
            mode: ResponseMode::Ignore,
            observer: None,
            ttft_ms: None,
            error_code: None,
            finalized: false,
            redactions: Counts::default(),
            quota_keys: Vec::new(),
            reservations: Vec::new(),
            retry_after: None,
            schema: None,
            schema_pass: None,
            output_block: None,
            forwarded: false,
            review_copy: None,
            fallback_body: None,
            path: String::new(),
            fallback_attempts: 0,
            fallback_pending: false,
            fell_back: false,
        }
    }

    fn variant(plan: &Plan, m: Matched) -> Option<(&str, &Variant)> {
        let e = plan.experiments.get(m.experiment)?;
        Some((e.id.as_str(), e.variants.get(m.variant)?))
    }

    /// Applies the experiment's safety state to an assignment: a paused
    /// experiment or an open breaker sends the request to control.
    /// Returns (served variant, reason, is a breaker probe).
    fn safety(
        plan: &Plan,
        metrics: &Metrics,
        a: crate::route::Assignment<'_>,
        now_s: u64,
    ) -> (usize, Reason, bool) {
        let e = a.experiment;
        let control = e.layout.control();
        if a.variant_index == control {
            return (control, a.reason, false);
        }
        if e.slo.is_some() && slo::is_paused(&HostStore, &slo::pause_key(plan.config_hash, &e.id)) {
            metrics.set_paused(a.experiment_index, true);
            return (control, Reason::Paused, false);
        }
        if let Some(b) = &e.breaker {
            let key = slo::breaker_key(plan.config_hash, &e.id, &a.variant.name);
            match b.admit(&HostStore, &key, now_s) {
                slo::Admit::No => return (control, Reason::CircuitOpen, false),
                slo::Admit::Yes { probe } => return (a.variant_index, a.reason, probe),
            }
        }
        (a.variant_index, a.reason, false)
    }

    /// Feeds a finished exchange to the health window, the breaker and the
    /// SLO check of its experiment.
    fn update_health(
        &self,
        plan: &Plan,
        metrics: &Metrics,
        m: Matched,
        outcome: Outcome,
        latency_ms: u64,
    ) {
        let Some(e) = plan.experiments.get(m.experiment) else {
            return;
        };
        let window_s = e.window_s();
        if window_s == 0 || m.variant == e.layout.control() {
            return;
        }
        let Some(v) = e.variants.get(m.variant) else {
            return;
        };
        let now_s = now_ms() / 1000;
        // A fallback means the treatment itself failed.
        let failed = outcome == Outcome::Error || self.fell_back;
        let wkey = slo::window_key(plan.config_hash, &e.id, &v.name);
        let sample = slo::Sample {
            error: failed,
            fallback: self.fell_back,
            schema: self.schema_pass,
            latency_ms,
        };
        slo::record(&HostStore, &wkey, window_s, now_s, sample);
        if let Some(b) = &e.breaker {
            let window = slo::summary(&HostStore, &wkey, b.window_s, now_s);
            let key = slo::breaker_key(plan.config_hash, &e.id, &v.name);
            if b.report(&HostStore, &key, now_s, failed, m.probe, &window) {
                log::warn!(
                    "circuit breaker of {}/{} opened for {} s",
                    e.id,
                    v.name,
                    b.open_s
                );
            }
            metrics.set_circuit_open(
                m.experiment,
                m.variant,
                slo::is_open(&HostStore, &key, now_s),
            );
        }
        if let Some(s) = &e.slo {
            let window = slo::summary(&HostStore, &wkey, s.window_s, now_s);
            if let Some((bound, measured, limit)) = s.breach(&window) {
                if slo::pause(&HostStore, &slo::pause_key(plan.config_hash, &e.id)) {
                    log::warn!(
                        "experiment {} paused: variant {} breached {bound} (measured {measured:.3}, bound {limit}) over {} requests",
                        e.id,
                        v.name,
                        window.requests
                    );
                }
                metrics.set_paused(m.experiment, true);
            }
        }
    }

    /// Answers the client with `err` and stops the request here.
    fn reject(&mut self, err: &ApiError) -> Action {
        self.body_pending = false;
        let Some((plan, metrics)) = self.loaded.clone() else {
            return Action::Pause;
        };
        let body = err.body();
        let retry_after = self.retry_after.map(|s| s.to_string());
        let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        if let Some(r) = &retry_after {
            headers.push(("retry-after", r));
        }
        if let Some(m) = self.matched {
            metrics.count_rejected(m.experiment, m.variant, err.code);
            if plan.expose_headers {
                if let Some((id, v)) = Self::variant(&plan, m) {
                    headers.push(("x-llm-experiment", id));
                    headers.push(("x-llm-variant", &v.name));
                }
            }
        }
        self.status = err.status;
        self.error_code = Some(err.code);
        self.keep_response_copy(&body);
        self.finalize(true);
        let _ = hostcalls::send_http_response(err.status, headers, Some(&body));
        Action::Pause
    }

    /// Validates and rewrites the complete buffered request body.
    fn finish_request_body(&mut self) -> Action {
        self.body_pending = false;
        let (Some((plan, metrics)), Some(m)) = (self.loaded.clone(), self.matched) else {
            return Action::Continue;
        };
        let Some((_, variant)) = Self::variant(&plan, m) else {
            return Action::Continue;
        };
        let budgets = plan.budgets_for(m.experiment);
        let bytes = match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, self.body_size) {
            Ok(Some(b)) => b,
            _ => Vec::new(),
        };
        let edits = Edits {
            model: variant.model.as_deref(),
            ensure_stream_usage: true,
            max_output_tokens: budgets.max_output_tokens,
            cap_param: variant.cap_param,
            allowed_tools: plan.guardrails.allowed_tools.as_deref(),
            strip_tools: plan.guardrails.strip_tools,
        };
        let prepared = match body::prepare(&bytes, edits) {
            Ok(p) => p,
            Err(err) => return self.reject(&err),
        };
        self.info = prepared.info;
        let mut new_body = prepared.body;

        // Redaction and request moderation share one walk over the string
        // values of the body as it will be forwarded (moderation sees them
        // before redaction).
        let redactor = plan.redaction.as_ref().filter(|r| r.request);
        let moderate = !plan.guardrails.request_patterns.is_empty();
        let (scanned, blocked) = if redactor.is_some() || moderate {
            // `prepare` validated the body, and its edits keep it valid.
            let current = new_body.as_deref().unwrap_or(&bytes);
            let values = std::str::from_utf8(current)
                .map_err(|_| "body is not UTF-8")
                .and_then(|text| Ok((text, crate::json::string_values(text)?)));
            match values {
                Ok((text, values)) => (
                    Ok(redactor.and_then(|r| r.redact_values(text, &values, &mut self.redactions))),
                    moderate
                        && plan
                            .guardrails
                            .blocked_request(values.iter().map(|v| v.text.as_ref()))
                            .is_some(),
                ),
                Err(why) => (Err(crate::redact::Unscannable(why)), false),
            }
        } else {
            (Ok(None), false)
        };
        if let Some(r) = redactor {
            match scanned {
                Ok(Some(redacted)) => new_body = Some(redacted),
                Ok(None) => {}
                Err(why) if r.pass_on_error => {
                    log::debug!("request body forwarded unscanned: {}", why.0);
                    metrics.count_redaction_skipped(m.experiment, m.variant);
                }
                Err(why) => return self.reject(&ApiError::request_unscannable(why.0)),
            }
        }

        if plan.guardrails.review.is_some() {
            let sent = new_body.as_deref().unwrap_or(&bytes);
            self.review_copy = Some((sent[..sent.len().min(MAX_REVIEW_COPY)].to_vec(), Vec::new()));
        }
        // Budgets and guardrails, cheapest first; nothing refused here is forwarded.
        if let Some(limit) = budgets.max_input_tokens {
            if self.info.prompt_tokens_est > limit {
                let err = ApiError::context_budget_exceeded(self.info.prompt_tokens_est, limit);
                return self.reject(&err);
            }
        }
        if !self.info.disallowed_tools.is_empty() {
            let err = ApiError::tool_not_allowed(&self.info.disallowed_tools);
            return self.reject(&err);
        }
        if blocked {
            return self.reject(&ApiError::content_blocked());
        }
        self.schema = self.info.response_schema.take().or_else(|| {
            plan.guardrails
                .schema
                .as_ref()
                .and_then(|s| s.default_schema.clone())
        });

        // Quotas last: a request refused above holds no tokens.
        let tokens = self.info.prompt_tokens_est + self.info.output_cap.unwrap_or(0);
        let now_s = now_ms() / 1000;
        for (i, q) in budgets.quotas.iter().enumerate() {
            let Some(key) = self.quota_keys.get(i).cloned().flatten() else {
                continue;
            };
            let store_key = budget::store_key(i, &key);
            match budget::reserve(&HostStore, &store_key, q.tokens_per_minute, tokens, now_s) {
                Decision::Granted(r) => self.reservations.push(r),
                Decision::Contended => log::warn!("quota store contended; request let through"),
                Decision::Exceeded { retry_after_s } => {
                    self.release_reservations();
                    self.retry_after = Some(retry_after_s);
                    return self.reject(&ApiError::token_quota_exceeded(retry_after_s));
                }
            }
        }

        self.prepare_fallback(&plan, m, &bytes);
        if let Some(new) = new_body {
            let _ = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, self.body_size, &new);
            set_request_header("content-length", Some(&new.len().to_string()));
        }
        self.forwarded = true;
        Action::Continue
    }

    /// Keeps the request as control would get it, when a treatment request
    /// may fall back.
    fn prepare_fallback(&mut self, plan: &Plan, m: Matched, bytes: &[u8]) {
        let Some(e) = plan.experiments.get(m.experiment) else {
            return;
        };
        if e.fallback.is_none() || m.variant == e.layout.control() {
            return;
        }
        let budgets = plan.budgets_for(m.experiment);
        let edits = Edits {
            model: e.control().model.as_deref(),
            // A fallback answer is sent whole: no usage chunk to strip.
            ensure_stream_usage: false,
            max_output_tokens: budgets.max_output_tokens,
            cap_param: e.control().cap_param,
            allowed_tools: plan.guardrails.allowed_tools.as_deref(),
            strip_tools: plan.guardrails.strip_tools,
        };
        let Ok(prepared) = body::prepare(bytes, edits) else {
            return;
        };
        let mut out = prepared.body.unwrap_or_else(|| bytes.to_vec());
        if let Some(r) = plan.redaction.as_ref().filter(|r| r.request) {
            let mut scratch = crate::redact::Counts::default();
            if let Ok(Some(redacted)) = std::str::from_utf8(&out)
                .map_err(|_| crate::redact::Unscannable("utf-8"))
                .and_then(|t| r.redact_valid_json(t, &mut scratch))
            {
                out = redacted;
            }
        }
        self.fallback_body = Some(out);
    }

    /// Re-issues the request to control; `true` when the call is under way.
    fn start_fallback(&mut self, plan: &Plan, m: Matched) -> bool {
        let Some(e) = plan.experiments.get(m.experiment) else {
            return false;
        };
        let (Some(fb), Some(body)) = (e.fallback, self.fallback_body.as_ref()) else {
            return false;
        };
        if self.fallback_attempts >= fb.max_attempts {
            return false;
        }
        let control = e.control();
        let budget_ms = control
            .timeout_ms
            .or(plan.budgets_for(m.experiment).timeout_ms)
            .unwrap_or(60_000);
        let left = budget_ms.saturating_sub(now_ms().saturating_sub(self.start_ms));
        if left == 0 {
            return false;
        }
        let mut headers: Vec<(&str, &str)> = vec![
            (":method", "POST"),
            (":path", &self.path),
            (":authority", "llm-ab-fallback"),
            ("content-type", "application/json"),
            // The answer is checked before it goes out: ask for plaintext.
            ("accept-encoding", "identity"),
            ("x-llm-experiment", &e.id),
            ("x-llm-variant", &control.name),
        ];
        if let Some(v) = &control.prompt_version {
            headers.push(("x-llm-prompt-version", v));
        }
        if let Some(v) = &control.rag_index_version {
            headers.push(("x-llm-rag-index-version", v));
        }
        let call = hostcalls::dispatch_http_call(
            &control.cluster,
            headers,
            Some(body),
            vec![],
            std::time::Duration::from_millis(left),
        );
        self.fallback_attempts += 1;
        self.fallback_pending = call.is_ok();
        self.fallback_pending
    }

    /// Gives back every token reserved by this request.
    fn release_reservations(&mut self) {
        for r in self.reservations.drain(..) {
            budget::settle(&HostStore, &r, 0);
        }
    }

    /// The output policy of this exchange.
    fn policy<'p>(plan: &'p Plan, schema: Option<&'p serde_json::Value>) -> Policy<'p> {
        Policy {
            redactor: plan.redaction.as_ref().filter(|r| r.response),
            guard: &plan.guardrails,
            schema,
        }
    }

    /// Passes one SSE chunk on, observing every completed event; returns
    /// the bytes to send instead when the stream is rewritten.
    fn on_sse_chunk(&mut self, chunk: &[u8], end_of_stream: bool) -> Option<Vec<u8>> {
        let plan = self.loaded.as_ref().map(|(p, _)| p.clone())?;
        let schema = self.schema.take();
        let policy = Self::policy(&plan, schema.as_ref());
        let out = self.rewrite_sse(policy, chunk, end_of_stream);
        self.schema = schema;
        out
    }

    fn rewrite_sse(
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
        } = &mut self.mode
        else {
            return None;
        };
        let observer = self.observer.as_mut()?;
        let refusal_phrases = self
            .loaded
            .as_ref()
            .map_or(&[][..], |(p, _)| &p.refusal_phrases[..]);
        let events = parser.feed(chunk);
        if !*strip_usage && redact.is_none() && guard.is_none() {
            for e in &events {
                observer.observe_event(&e.data, refusal_phrases);
            }
            return None;
        }
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
            let kind = observer.observe_event(&e.data, refusal_phrases);
            if *strip_usage && kind == EventKind::UsageOnly {
                continue;
            }
            if let Some(g) = guard.as_mut() {
                if let StreamAction::Stop(replacements) = g.on_event(policy, &e.data) {
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
                    match sse.rewrite(r, &e.data, &mut self.redactions) {
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

    /// Adds what the client got to the review copy, up to its cap.
    fn keep_response_copy(&mut self, bytes: &[u8]) {
        if let Some((_, response)) = self.review_copy.as_mut() {
            let room = MAX_REVIEW_COPY.saturating_sub(response.len());
            response.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    /// Queues a copy of this exchange for human review when it qualifies.
    fn queue_review(&mut self, plan: &Plan, metrics: &Metrics, record: &Record) {
        let (Some(review), Some((request, response))) =
            (plan.guardrails.review.as_ref(), self.review_copy.take())
        else {
            return;
        };
        let mut outcomes = Vec::new();
        if let Some(o) = record.outcome {
            outcomes.push(o.as_str());
        }
        if record.schema_pass == Some(false) {
            outcomes.push("schema_fail");
        }
        if !review.wants(&record.trace_id, &outcomes) {
            return;
        }
        let as_json = |bytes: &[u8]| {
            serde_json::from_slice::<serde_json::Value>(bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned())
            })
        };
        let body = serde_json::json!({
            "record": record,
            "request": as_json(&request),
            "response": as_json(&response),
        });
        let queued = review::push(review::Item {
            cluster: review.cluster.clone(),
            timeout_ms: review.timeout_ms,
            body: serde_json::to_vec(&body).unwrap_or_default(),
        });
        if !queued {
            metrics.count_review(2);
        }
    }

    /// Answers with `err` in place of the held response.
    fn replace_response(&mut self, err: &ApiError) -> Action {
        if let (Some((_, metrics)), Some(m)) = (&self.loaded, self.matched) {
            metrics.count_rejected(m.experiment, m.variant, err.code);
        }
        self.status = err.status;
        self.error_code = Some(err.code);
        self.finalize(true);
        let _ = hostcalls::send_http_response(
            err.status,
            vec![("content-type", "application/json")],
            Some(&err.body()),
        );
        Action::Pause
    }

    /// A response whose `content-encoding` the filter cannot decode: refused
    /// when a check must read it (redaction with `on_error: block`, output
    /// guardrails), else passed on as it is and recorded as unreadable.
    fn unreadable_response(
        &mut self,
        plan: &Plan,
        m: Matched,
        encoding: &str,
        end_of_stream: bool,
    ) -> Action {
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
                metrics.count_redaction_skipped(m.experiment, m.variant);
            }
        }
        if end_of_stream {
            self.finalize(true);
        }
        Action::Continue
    }

    /// A JSON response too large to hold for the output checks.
    fn finish_json_response_too_large(&mut self) -> Action {
        let pass = self
            .loaded
            .as_ref()
            .and_then(|(p, _)| p.redaction.as_ref())
            .is_none_or(|r| r.pass_on_error);
        if pass {
            if let (Some((_, metrics)), Some(m)) = (&self.loaded, self.matched) {
                metrics.count_redaction_skipped(m.experiment, m.variant);
            }
            self.mode = ResponseMode::Ignore;
            return Action::Continue;
        }
        self.replace_response(&ApiError::response_unscannable(
            "response body too large to scan",
        ))
    }

    /// Checks a complete held JSON response: tools, moderation, schema, redaction.
    fn finish_json_response(&mut self, body_size: usize) -> Action {
        let Some((plan, metrics)) = self.loaded.clone() else {
            return Action::Continue;
        };
        let body = match hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size) {
            Ok(Some(b)) => b,
            _ => Vec::new(),
        };
        if let Some(o) = self.observer.as_mut() {
            o.observe_json(&body, &plan.refusal_phrases);
        }
        if !(200..300).contains(&self.status) {
            return Action::Continue; // upstream errors go on as they are
        }
        let schema = self.schema.take();
        let verdict = output::check_json(
            Self::policy(&plan, schema.as_ref()),
            &body,
            &mut self.redactions,
        );
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
                    return Action::Pause;
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
                metrics.count_redaction_skipped(m.experiment, m.variant);
            }
        }
        self.keep_response_copy(verdict.body.as_deref().unwrap_or(&body));
        if let Some(new) = verdict.body {
            let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, body_size, &new);
            let _ = hostcalls::set_map_value(
                MapType::HttpResponseHeaders,
                "content-length",
                Some(&new.len().to_string()),
            );
        }
        Action::Continue
    }

    /// Writes the record and the metrics of the finished exchange, once.
    fn finalize(&mut self, complete: bool) {
        if self.finalized {
            return;
        }
        self.finalized = true;
        let Some((plan, metrics)) = self.loaded.clone() else {
            return;
        };
        if !plan.telemetry {
            return;
        }
        let latency_ms = now_ms().saturating_sub(self.start_ms);
        let mut record = Record {
            trace_id: std::mem::take(&mut self.trace_id),
            request_id: self.request_id.take(),
            reason: "default",
            tokens_source: "estimated",
            latency_ms,
            ttft_ms: self.ttft_ms,
            status: self.status,
            stream: self.info.stream,
            error_code: self.error_code,
            ..Record::default()
        };
        if let Some((m, (id, v))) = self
            .matched
            .and_then(|m| Some((m, Self::variant(&plan, m)?)))
        {
            let observer = self.observer.take().unwrap_or_default();
            let code = self.error_code.or(self.output_block);
            // A stream is complete once `[DONE]` went through, whatever the
            // client does with the connection afterwards; before it, it is
            // cut (by the upstream or the client) however it ended.
            let complete = match self.mode {
                ResponseMode::Sse { .. } => observer.saw_done(),
                _ => complete,
            };
            let outcome = match code {
                Some(code) => outcome_for_code(code, self.status),
                None if self.fell_back && (200..300).contains(&self.status) => Outcome::Fallback,
                None => outcome_of(self.status, observer.refused(), complete),
            };
            let tokens = if self.forwarded {
                observer.tokens(self.info.prompt_tokens_est)
            } else {
                // Refused before it reached the model: nothing was spent.
                crate::usage::Tokens::NONE
            };
            for r in self.reservations.drain(..) {
                budget::settle(&HostStore, &r, tokens.input + tokens.output);
            }
            if let Some(code) = self.output_block {
                metrics.count_rejected(m.experiment, m.variant, code);
            }
            if let Some(pass) = self.schema_pass {
                metrics.count_schema(m.experiment, m.variant, pass);
            }
            record.error_code = code;
            record.schema_pass = self.schema_pass;
            let model = v.model.clone().or_else(|| self.info.client_model.take());
            let cost = plan.cost_usd(model.as_deref(), &tokens);
            metrics.record_finished(
                m.experiment,
                m.variant,
                &Finished {
                    status_class: status_class(self.status),
                    outcome,
                    tokens,
                    cost_micro_usd: (cost * 1_000_000.0).round() as u64,
                    latency_ms,
                    ttft_ms: self.ttft_ms,
                },
            );
            metrics.count_redactions(m.experiment, m.variant, &self.redactions.0);
            self.update_health(&plan, &metrics, m, outcome, latency_ms);
            record.experiment_id = Some(id.to_string());
            record.assigned_variant = plan
                .experiments
                .get(m.experiment)
                .and_then(|e| e.variants.get(m.assigned))
                .map(|a| a.name.clone());
            record.served_variant = Some(v.name.clone());
            record.reason = m.reason.as_str();
            if self.fell_back {
                record.served_variant = plan
                    .experiments
                    .get(m.experiment)
                    .map(|e| e.control().name.clone());
                record.reason = "fallback";
            }
            record.bucket = m.bucket;
            record.model = model;
            record.prompt_version = v.prompt_version.clone();
            record.rag_index_version = v.rag_index_version.clone();
            record.tokens_in = tokens.input;
            record.tokens_in_cached = tokens.cached;
            record.tokens_out = tokens.output;
            record.tokens_reasoning = tokens.reasoning;
            record.tokens_source = tokens.source.as_str();
            record.cost_usd_est = cost;
            record.outcome = Some(outcome);
        }
        let _ = hostcalls::set_property(vec![RECORD_PROPERTY], Some(&record.to_json()));
        self.queue_review(&plan, &metrics, &record);
    }
}

impl Context for Exchange {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        if !self.fallback_pending {
            return;
        }
        self.fallback_pending = false;
        let headers = hostcalls::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default();
        let status = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| v.parse::<u32>().ok())
            .unwrap_or(0);
        let encoded = headers
            .iter()
            .find(|(k, _)| k == "content-encoding")
            .and_then(|(_, v)| crate::encoding::unreadable(Some(v)));
        if status == 0 || encoded.is_some() {
            // Control could not be reached either (or answered in a coding
            // the filter cannot check): let the treatment's failure go on
            // as it was.
            let _ = hostcalls::resume_http_response();
            return;
        }
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let (Some((plan, _)), Some(m)) = (self.loaded.clone(), self.matched) else {
            return;
        };
        let content_type = headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "application/json".into());
        if let Some(o) = self.observer.as_mut() {
            if content_type.starts_with("text/event-stream") {
                for e in SseParser::new().feed(&body) {
                    o.observe_event(&e.data, &plan.refusal_phrases);
                }
            } else {
                o.observe_json(&body, &plan.refusal_phrases);
            }
        }
        let mut out_body = body;
        if content_type.contains("json") {
            let verdict =
                output::check_json(Self::policy(&plan, None), &out_body, &mut self.redactions);
            let blocks = plan
                .redaction
                .as_ref()
                .is_some_and(|r| r.response && !r.pass_on_error);
            if verdict.unscannable.is_some() && blocks {
                // Control's answer cannot be redacted: never sent unscanned.
                let _ = hostcalls::resume_http_response();
                return;
            }
            if let Some(new) = verdict.body {
                out_body = new;
            }
        }
        let control = plan
            .experiments
            .get(m.experiment)
            .map(|e| (e.id.clone(), e.control().name.clone()));
        // Control's response headers, minus framing (the body is sent whole).
        let mut reply: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(k, _)| {
                !k.starts_with(':')
                    && !matches!(
                        k.as_str(),
                        "content-length"
                            | "transfer-encoding"
                            | "connection"
                            | "keep-alive"
                            | "x-llm-experiment"
                            | "x-llm-variant"
                    )
            })
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if !reply.iter().any(|(k, _)| *k == "content-type") {
            reply.push(("content-type", &content_type));
        }
        if let (true, Some((id, name))) = (plan.expose_headers, &control) {
            reply.push(("x-llm-experiment", id));
            reply.push(("x-llm-variant", name));
        }
        self.fell_back = true;
        self.status = status;
        self.keep_response_copy(&out_body);
        self.finalize(true);
        let _ = hostcalls::send_http_response(status, reply, Some(&out_body));
    }
}

impl HttpContext for Exchange {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some((plan, metrics)) = self.loaded.clone() else {
            return Action::Continue;
        };
        let start_nanos = now_nanos();
        self.start_ms = start_nanos / 1_000_000;
        let headers = HeaderSnapshot::fetch(MapType::HttpRequestHeaders);
        #[cfg(feature = "crash-hook")]
        if headers.has("x-llm-ab-test-crash") {
            std::process::abort();
        }
        let path = headers.get(":path").unwrap_or_default();
        let now_s = start_nanos / 1_000_000_000;
        let decision = plan.decide_at(path, &headers, now_s);
        let served = decision
            .assignment
            .map(|a| Self::safety(&plan, &metrics, a, now_s));
        let cluster = match (decision.assignment, served) {
            (Some(a), Some((v, _, _))) => a
                .experiment
                .variants
                .get(v)
                .map_or(decision.cluster, |v| v.cluster.as_str()),
            _ => decision.cluster,
        };

        // Always overwrite the routing header: a client never picks a cluster.
        set_request_header(&plan.route_header, Some(cluster));
        if let Some(o) = &plan.override_ {
            for name in [&o.variant_header, &o.token_header] {
                if headers.has(name) {
                    set_request_header(name, None);
                }
            }
        }
        for name in OWNED_REQUEST_HEADERS {
            if headers.has(name) {
                set_request_header(name, None);
            }
        }

        // One trace id from the client through the upstream to the record.
        if plan.telemetry {
            let sequence = SEQUENCE.with(|s| {
                s.set(s.get().wrapping_add(1));
                s.get()
            });
            self.request_id = headers.get("x-request-id").map(str::to_string);
            let t = trace::trace_for(
                headers.get("traceparent"),
                self.request_id.as_deref(),
                start_nanos ^ sequence.rotate_left(32),
            );
            if let Some(tp) = &t.new_traceparent {
                set_request_header("traceparent", Some(tp));
            }
            self.trace_id = t.trace_id;
        }

        let (Some(a), Some((served, reason, probe))) = (decision.assignment, served) else {
            metrics.count_default_route();
            return Action::Continue;
        };
        let Some(variant) = a.experiment.variants.get(served) else {
            return Action::Continue;
        };
        self.matched = Some(Matched {
            experiment: a.experiment_index,
            assigned: a.variant_index,
            variant: served,
            probe,
            reason,
            bucket: a.bucket,
        });
        self.observer = Some(ResponseObserver::new());
        if a.experiment.fallback.is_some() {
            self.path = path.to_string(); // kept for a fallback call only
        }
        metrics.count_request(a.experiment_index, served, reason);
        set_request_header("x-llm-experiment", Some(&a.experiment.id));
        set_request_header("x-llm-variant", Some(&variant.name));
        if let Some(v) = &variant.prompt_version {
            set_request_header("x-llm-prompt-version", Some(v));
        }
        if let Some(v) = &variant.rag_index_version {
            set_request_header("x-llm-rag-index-version", Some(v));
        }
        let budgets = plan.budgets_for(a.experiment_index);
        if let Some(ms) = variant.timeout_ms.or(budgets.timeout_ms) {
            // The router takes the timeout budget from this header.
            set_request_header("x-envoy-upstream-rq-timeout-ms", Some(&ms.to_string()));
        }
        self.quota_keys = budgets
            .quotas
            .iter()
            .map(|q| headers.get(&q.key_header).map(str::to_string))
            .collect();

        if end_of_stream {
            return self.reject(&ApiError::invalid_json("request body is empty"));
        }
        // A compressed body is never parsed as text (the shipped envoy.yaml
        // decompresses it before the filter).
        if let Some(encoding) = crate::encoding::unreadable(headers.get("content-encoding")) {
            return self.reject(&ApiError::request_encoded(encoding));
        }
        let declared = headers
            .get("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > plan.max_body_bytes as u64) {
            return self.reject(&ApiError::too_large(plan.max_body_bytes));
        }
        // Hold the headers until the whole body is validated: nothing is
        // forwarded for a request that will be refused.
        self.body_pending = true;
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.body_pending {
            return Action::Continue;
        }
        self.body_size = body_size;
        let limit = self
            .loaded
            .as_ref()
            .map_or(usize::MAX, |(p, _)| p.max_body_bytes);
        if body_size > limit {
            return self.reject(&ApiError::too_large(limit));
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.finish_request_body()
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.body_pending {
            return self.finish_request_body();
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.finalized {
            return Action::Continue;
        }
        // A response the filter reads needs three headers: one call for all.
        let reads =
            self.matched.is_some() && self.loaded.as_ref().is_some_and(|(p, _)| p.telemetry);
        let snapshot = reads.then(|| HeaderSnapshot::fetch(MapType::HttpResponseHeaders));
        let get = |name| match &snapshot {
            Some(s) => s.get(name).map(str::to_string),
            None => hostcalls::get_map_value(MapType::HttpResponseHeaders, name)
                .ok()
                .flatten(),
        };
        self.status = get(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        let (Some((plan, _)), Some(m)) = (self.loaded.clone(), self.matched) else {
            if end_of_stream {
                self.finalize(true);
            }
            return Action::Continue;
        };
        if !plan.telemetry {
            // Routing only: the variant headers, nothing read from the response.
            if plan.expose_headers {
                if let Some((id, v)) = Self::variant(&plan, m) {
                    let set =
                        |k, v| hostcalls::set_map_value(MapType::HttpResponseHeaders, k, Some(v));
                    let _ = set("x-llm-experiment", id);
                    let _ = set("x-llm-variant", &v.name);
                }
            }
            self.finalized = true;
            return Action::Continue;
        }
        let wants_fallback = plan
            .experiments
            .get(m.experiment)
            .and_then(|e| e.fallback)
            .is_some_and(|f| f.wants(self.status, response_flags()));
        if wants_fallback && self.start_fallback(&plan, m) {
            // Hold the treatment's failure; control's answer replaces it.
            return Action::Pause;
        }
        if plan.expose_headers {
            if let Some((id, v)) = Self::variant(&plan, m) {
                let set = |k, v| hostcalls::set_map_value(MapType::HttpResponseHeaders, k, Some(v));
                let _ = set("x-llm-experiment", id);
                let _ = set("x-llm-variant", &v.name);
            }
        }
        let content_type = get("content-type").unwrap_or_default();
        let drop_length = || {
            // The body changes size when it is rewritten.
            let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, "content-length", None);
        };
        if self.status == 504 && is_timeout_reply() {
            // Envoy's own "upstream request timeout": answer in the OpenAI shape.
            let _ = hostcalls::set_map_value(
                MapType::HttpResponseHeaders,
                "content-type",
                Some("application/json"),
            );
            drop_length();
            self.mode = ResponseMode::TimeoutReply;
            self.error_code = Some("upstream_timeout");
            if let Some((_, metrics)) = &self.loaded {
                metrics.count_rejected(m.experiment, m.variant, "upstream_timeout");
            }
            if end_of_stream {
                self.finalize(true);
            }
            return Action::Continue;
        }
        if let Some(encoding) = crate::encoding::unreadable(get("content-encoding").as_deref()) {
            return self.unreadable_response(&plan, m, encoding, end_of_stream);
        }
        let policy = Self::policy(&plan, self.schema.as_ref());
        self.mode = if content_type.starts_with("text/event-stream") {
            let strip_usage = self.info.usage_injected;
            let redact = policy.redactor.is_some();
            let watch = policy.watches_stream();
            if strip_usage || redact || watch {
                drop_length();
            }
            ResponseMode::Sse {
                parser: SseParser::new(),
                strip_usage,
                redact: redact.then(SseRedactor::new),
                guard: watch.then(StreamGuard::new),
            }
        } else if crate::route::is_json_content_type(&content_type)
            || (200..300).contains(&self.status)
        {
            // A successful answer is checked as JSON whatever its declared
            // type: one that is not JSON cannot be scanned (`on_error`).
            if policy.holds_json() && !end_of_stream {
                // Hold the headers too: a response refused by a guardrail is
                // replaced by an error, which needs its own status.
                self.mode = ResponseMode::JsonHeld;
                return Action::Pause;
            }
            ResponseMode::Json(Vec::new())
        } else {
            ResponseMode::Ignore
        };
        if end_of_stream {
            self.finalize(true);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.fallback_pending {
            return Action::Pause; // hold the failed treatment's body
        }
        if self.finalized || self.matched.is_none() {
            if end_of_stream {
                self.finalize(true);
            }
            return Action::Continue;
        }
        if matches!(self.mode, ResponseMode::TimeoutReply) {
            if end_of_stream {
                let body = ApiError::upstream_timeout().body();
                let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, body_size, &body);
                self.finalize(true);
                return Action::Continue;
            }
            return Action::Pause; // the whole plain-text reply is replaced
        }
        if matches!(self.mode, ResponseMode::JsonHeld) {
            if !end_of_stream {
                if body_size > MAX_JSON_RESPONSE {
                    return self.finish_json_response_too_large();
                }
                return Action::Pause;
            }
            let action = self.finish_json_response(body_size);
            if !self.fallback_pending {
                self.finalize(true);
            }
            return action;
        }
        if self.ttft_ms.is_none() && matches!(self.mode, ResponseMode::Sse { .. }) {
            self.ttft_ms = Some(now_ms().saturating_sub(self.start_ms));
        }
        if !matches!(self.mode, ResponseMode::Ignore) && (body_size > 0 || end_of_stream) {
            let chunk = match hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size) {
                Ok(Some(b)) => b,
                _ => Vec::new(),
            };
            if let ResponseMode::Json(buf) = &mut self.mode {
                if buf.len() + chunk.len() <= MAX_JSON_RESPONSE {
                    buf.extend_from_slice(&chunk);
                }
                self.keep_response_copy(&chunk);
            } else if let Some(out) = self.on_sse_chunk(&chunk, end_of_stream) {
                let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, body_size, &out);
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
        Action::Continue
    }

    fn on_log(&mut self) {
        // Reset or aborted exchanges never saw the end of the response.
        self.finalize(false);
    }
}
