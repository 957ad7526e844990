//! What the exchange asks of its host. Each method is one hostcall of the
//! proxy-wasm adapter (`src/host/`), so counting calls on a fake host counts
//! what a request costs in Envoy.

use crate::metrics::MetricSink;
use crate::shared::SharedStore;

/// What a callback tells the host to do with the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Hold the stream here (buffering, or the filter answered itself).
    Pause,
}

pub use super::headers::HeaderMap;

/// Header pairs as tests and the fake host hold them.
pub type Headers = Vec<(String, String)>;

/// A copy of an exchange for human review.
pub struct ReviewItem {
    /// Review cluster.
    pub cluster: String,
    /// Call timeout.
    pub timeout_ms: u64,
    /// JSON body: `{"record": …, "request": …, "response": …}`.
    pub body: Vec<u8>,
}

/// Side calls (`dispatch_http_call`), for an exchange (a fallback) and for
/// the root context (shadow copies, their records) alike.
pub trait SideCall: MetricSink + SharedStore {
    /// Starts a call; its token, or `None` when it could not start.
    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Option<u32>;
}

/// The host of one HTTP exchange: Envoy through proxy-wasm in the filter,
/// a recorder in tests and benchmarks.
pub trait Host: SideCall {
    /// Every request header (one call).
    fn request_headers(&self) -> HeaderMap;
    /// Sets (or with `None` removes) one request header.
    fn set_request_header(&self, name: &str, value: Option<&str>);
    /// The buffered request body.
    fn request_body(&self, size: usize) -> Vec<u8>;
    /// Replaces the buffered request body (`size` bytes of it).
    fn set_request_body(&self, size: usize, body: &[u8]);

    /// Every response header (one call).
    fn response_headers(&self) -> HeaderMap;
    /// One response header.
    fn response_header(&self, name: &str) -> Option<String>;
    /// Sets (or with `None` removes) one response header.
    fn set_response_header(&self, name: &str, value: Option<&str>);
    /// The buffered response body.
    fn response_body(&self, size: usize) -> Vec<u8>;
    /// Replaces the buffered response body (`size` bytes of it).
    fn set_response_body(&self, size: usize, body: &[u8]);
    /// Envoy's response flags of the stream (0 when unknown).
    fn response_flags(&self) -> u64;

    /// Answers the client with `status`, `headers` and `body`.
    fn send_reply(&self, status: u32, headers: &[(&str, &str)], body: &[u8]);
    /// Lets a held response go on.
    fn resume_response(&self);
    /// Headers of the side call's response.
    fn call_response_headers(&self) -> HeaderMap;
    /// Body of the side call's response.
    fn call_response_body(&self, size: usize) -> Vec<u8>;

    /// Writes filter state `name` (read by the access log).
    fn set_filter_state(&self, name: &str, value: &[u8]);
    /// Wall-clock time, nanoseconds since the Unix epoch.
    fn now_nanos(&self) -> u64;
    /// Queues a review copy for the root context to send; `false` when the
    /// queue is full (no hostcall: the queue is the VM's own memory).
    fn queue_review(&self, item: ReviewItem) -> bool;
    /// Opens a shadow pair and queues `copy` (its `pair` set here) for the
    /// root context to send; `None` when the VM's pairs are full (no
    /// hostcall: the VM's own memory).
    fn queue_shadow(&self, copy: crate::shadow::Copy, deadline_ms: u64) -> Option<u64>;
    /// Hands control's side of `pair` over (no hostcall).
    fn shadow_control_done(&self, pair: u64, side: crate::shadow::ControlSide);
}
