//! One HTTP exchange through the filter, as a state machine over a
//! [`Host`]: the proxy-wasm callbacks feed it events (headers, body
//! chunks, the side call's answer, the end of the stream) and it decides
//! and asks the host to act. Nothing here calls proxy-wasm, so every path
//! runs in native tests against [`fake::FakeHost`].
//!
//! - [`request`]: the request headers (assignment, routing headers, trace
//!   id) and the checks of the complete body (edits, redaction, budgets,
//!   guardrails, quotas), or a refusal;
//! - [`safety`]: paused experiments, circuit breakers, the health window
//!   and SLO checks;
//! - [`fallback`]: re-issuing a failed treatment's request to control;
//! - [`response`]: the response headers (which mode reads the body) and
//!   held JSON answers;
//! - [`stream`]: SSE events as they flow (usage, guardrails, redaction);
//! - [`finish`]: the record, the metrics, quota settlement, review copies;
//! - [`fake`] and [`workload`]: the recording host of native tests and the
//!   benchmark exchange over it (not in the filter's `.wasm`).

#[cfg(any(not(target_arch = "wasm32"), feature = "workload"))]
pub mod fake;
mod fallback;
mod finish;
pub mod headers;
pub mod host;
mod request;
mod response;
mod safety;
mod shadow;
mod stream;
#[cfg(test)]
mod tests;
#[cfg(any(not(target_arch = "wasm32"), feature = "workload"))]
pub mod workload;

pub(crate) use fallback::{side_call_body, side_call_headers};
pub use host::{Flow, HeaderMap, Headers, Host, ReviewItem, SideCall};
pub use request::is_client_credential;
pub(crate) use safety::shadow_health;

use crate::body::RequestInfo;
use crate::budget::Reservation;
use crate::config::{Plan, Variant};
use crate::metrics::Metrics;
use crate::output::{Policy, StreamGuard};
use crate::redact::sse::SseRedactor;
use crate::redact::Counts;
use crate::response::ResponseObserver;
use crate::route::Reason;
use crate::sse::SseParser;
use std::rc::Rc;

/// Filter state key of the record (`%FILTER_STATE(wasm.llm_ab_record:PLAIN)%`).
pub const RECORD_PROPERTY: &str = "llm_ab_record";

/// Prefix of the span attributes' filter state keys.
pub const SPAN_PROPERTY_PREFIX: &str = "llm_ab.span.";

/// The span attributes written to filter state with `"tracing": true`, one
/// property each, named `llm_ab.span.<attribute>` (read by a tracing custom
/// tag's `value: "%FILTER_STATE(wasm.llm_ab.span.<attribute>:PLAIN)%"`):
/// Envoy 1.40 reads no field of a wasm property, so one record cannot serve
/// several tags.
pub const SPAN_PROPERTIES: [&str; 16] = [
    "llm_ab.span.gen_ai.operation.name",
    "llm_ab.span.gen_ai.provider.name",
    "llm_ab.span.gen_ai.request.model",
    "llm_ab.span.gen_ai.response.model",
    "llm_ab.span.gen_ai.usage.input_tokens",
    "llm_ab.span.gen_ai.usage.output_tokens",
    "llm_ab.span.llm_ab.experiment",
    "llm_ab.span.llm_ab.variant.assigned",
    "llm_ab.span.llm_ab.variant.served",
    "llm_ab.span.llm_ab.prompt_version",
    "llm_ab.span.llm_ab.rag_index_version",
    "llm_ab.span.llm_ab.usage.cached_input_tokens",
    "llm_ab.span.llm_ab.usage.cache_write_input_tokens",
    "llm_ab.span.llm_ab.usage.reasoning_tokens",
    "llm_ab.span.llm_ab.cost_usd",
    "llm_ab.span.llm_ab.outcome",
];

/// Most bytes of a request or response kept for a review copy (64 KiB).
const MAX_REVIEW_COPY: usize = 64 * 1024;

/// Largest non-streaming response body copied for usage parsing (8 MiB).
const MAX_JSON_RESPONSE: usize = 8 * 1024 * 1024;

/// Where the exchange is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the request headers.
    Start,
    /// A matched request's headers are held until its body is complete.
    RequestBody,
    /// The request went on (or needs nothing more); the response is awaited.
    Upstream,
    /// A fallback call to control is under way; the treatment's answer is held.
    Fallback,
    /// The record is written; nothing more is observed.
    Done,
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
    unit_id: Option<crate::unit_id::UnitId>,
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
        /// The redactor of a Messages or Responses stream.
        dialect: Option<DialectStream>,
    },
}

/// The reader of a stream whose events are not chat chunks (Messages,
/// Responses): its redaction state (used when redaction is on).
#[derive(Debug)]
pub(crate) enum DialectStream {
    /// Anthropic Messages.
    Messages(crate::redact::messages::MessagesRedactor),
    /// OpenAI Responses.
    Responses(crate::redact::responses::ResponsesRedactor),
}

impl DialectStream {
    /// The redactor for `api`'s streams, if it has one.
    fn of(api: crate::dialect::Api) -> Option<DialectStream> {
        match api {
            crate::dialect::Api::Messages => Some(DialectStream::Messages(Default::default())),
            crate::dialect::Api::Responses => Some(DialectStream::Responses(Default::default())),
            _ => None,
        }
    }

    fn rewrite(
        &mut self,
        r: &crate::redact::Redactor,
        data: &str,
        counts: &mut Counts,
    ) -> crate::redact::stream::Rewrite {
        match self {
            DialectStream::Messages(m) => m.rewrite(r, data, counts),
            DialectStream::Responses(m) => m.rewrite(r, data, counts),
        }
    }

    fn finish(&mut self, r: &crate::redact::Redactor, counts: &mut Counts) -> Vec<String> {
        match self {
            DialectStream::Messages(m) => m.finish(r, counts),
            DialectStream::Responses(m) => m.finish(r, counts),
        }
    }
}

/// The configuration an exchange runs under.
pub type Loaded = Option<(Rc<Plan>, Rc<Metrics>)>;

/// One HTTP exchange through the filter.
pub struct Exchange<H: Host> {
    host: H,
    loaded: Loaded,
    phase: Phase,
    matched: Option<Matched>,
    /// Buffered request body size last reported by the host.
    body_size: usize,
    /// A held request's headers and the changes they go upstream with.
    pending_headers: Option<request::HeaderEdits>,
    /// The changes the response's headers go out with.
    pending_response: Option<request::HeaderEdits>,
    start_ms: u64,
    /// Per-VM request sequence number, mixed into generated trace ids.
    sequence: u64,
    trace_id: String,
    request_id: Option<String>,
    info: RequestInfo,
    status: u32,
    mode: ResponseMode,
    observer: Option<ResponseObserver>,
    ttft_ms: Option<u64>,
    error_code: Option<&'static str>,
    /// Values redacted in this exchange, per detector.
    redactions: Counts,
    /// Quota key values (header values), per configured quota.
    quota_keys: Vec<Option<String>>,
    /// Tokens reserved against quotas, settled when the exchange ends.
    reservations: Vec<Reservation>,
    /// `Retry-After` of a quota refusal.
    retry_after: Option<u64>,
    /// The schema the output must match, when any.
    schema: Option<crate::json::Value>,
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
    /// The client's credential and API-version headers, for a fallback
    /// call (kept in memory for the request only, never logged).
    passed_headers: Vec<(String, String)>,
    /// The API the request speaks (from its path).
    api: crate::dialect::Api,
    /// Fallback calls made.
    fallback_attempts: u32,
    /// Control answered instead of the failed treatment.
    fell_back: bool,
    /// The shadow pairs of this request (one per shadow variant copied).
    shadow_pairs: Vec<u64>,
    /// The answer as the client got it, kept to score the copies against.
    shadow_answer: Vec<u8>,
    /// The client's credential and API-version headers, for the copies.
    shadow_headers: Vec<(String, String)>,
}

impl<H: Host> Exchange<H> {
    /// An exchange on `host`; `loaded` is `None` only if no configuration
    /// loaded; `sequence` numbers the VM's exchanges (for trace ids).
    pub fn new(host: H, loaded: Loaded, sequence: u64) -> Exchange<H> {
        Exchange {
            host,
            loaded,
            phase: Phase::Start,
            matched: None,
            body_size: 0,
            pending_headers: None,
            pending_response: None,
            start_ms: 0,
            sequence,
            trace_id: String::new(),
            request_id: None,
            info: RequestInfo::default(),
            status: 0,
            mode: ResponseMode::Ignore,
            observer: None,
            ttft_ms: None,
            error_code: None,
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
            passed_headers: Vec::new(),
            api: crate::dialect::Api::default(),
            fallback_attempts: 0,
            fell_back: false,
            shadow_pairs: Vec::new(),
            shadow_answer: Vec::new(),
            shadow_headers: Vec::new(),
        }
    }

    /// The host (tests read what it recorded).
    pub fn host(&self) -> &H {
        &self.host
    }

    fn variant(plan: &Plan, m: Matched) -> Option<(&str, &Variant)> {
        let e = plan.experiments.get(m.experiment)?;
        Some((e.id.as_str(), e.variants.get(m.variant)?))
    }

    /// The output policy of this exchange.
    fn policy<'p>(plan: &'p Plan, schema: Option<&'p crate::json::Value>) -> Policy<'p> {
        Policy {
            redactor: plan.redaction.as_ref().filter(|r| r.response),
            guard: &plan.guardrails,
            schema,
        }
    }

    fn now_ms(&self) -> u64 {
        self.host.now_nanos() / 1_000_000
    }

    /// The request headers arrived (`end_of_stream`: no body follows).
    pub fn on_request_headers(&mut self, end_of_stream: bool) -> Flow {
        self.request_headers(end_of_stream)
    }

    /// Request body bytes arrived; `body_size` is the buffered total.
    pub fn on_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        if self.phase != Phase::RequestBody {
            return Flow::Continue;
        }
        self.body_size = body_size;
        let limit = self
            .loaded
            .as_ref()
            .map_or(usize::MAX, |(p, _)| p.max_body_bytes);
        if body_size > limit {
            return self.reject(&crate::error::ApiError::too_large(limit));
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        self.finish_request_body()
    }

    /// Request trailers arrived: the body is complete.
    pub fn on_request_trailers(&mut self) -> Flow {
        if self.phase == Phase::RequestBody {
            return self.finish_request_body();
        }
        Flow::Continue
    }

    /// The response headers arrived.
    pub fn on_response_headers(&mut self, end_of_stream: bool) -> Flow {
        self.response_headers(end_of_stream)
    }

    /// Response body bytes arrived; `body_size` is the buffered total.
    pub fn on_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        self.response_body(body_size, end_of_stream)
    }

    /// The side call (a fallback to control) answered.
    pub fn on_call_response(&mut self, body_size: usize) {
        self.fallback_answered(body_size)
    }

    /// The stream ended (reset or aborted exchanges never saw the end of
    /// the response).
    pub fn on_log(&mut self) {
        self.finalize(false);
    }
}
