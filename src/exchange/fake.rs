//! A host for native tests and benchmarks: it serves the headers and
//! bodies a test gives it, keeps shared data in memory, and records every
//! call, so a test can say what an exchange did and how many hostcalls it
//! made.

use super::{HeaderMap, Headers, Host, ReviewItem};
use crate::metrics::MetricSink;
use crate::shared::{SharedStore, StoreError};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// One call the exchange made (the `Host` method and what it carried).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `request_headers`.
    RequestHeaders,
    /// `set_request_header`.
    SetRequestHeader(String, Option<String>),
    /// `request_body`.
    RequestBody,
    /// `set_request_body`.
    SetRequestBody(Vec<u8>),
    /// `response_headers`.
    ResponseHeaders,
    /// `response_header`.
    ResponseHeader(String),
    /// `set_response_header`.
    SetResponseHeader(String, Option<String>),
    /// `response_body`.
    ResponseBody,
    /// `set_response_body`.
    SetResponseBody(Vec<u8>),
    /// `response_flags`.
    ResponseFlags,
    /// `send_reply` (status, headers, body).
    SendReply(u32, Vec<(String, String)>, Vec<u8>),
    /// `resume_response`.
    ResumeResponse,
    /// `dispatch` (cluster, headers, body).
    Dispatch(String, Vec<(String, String)>, Vec<u8>),
    /// `call_response_headers`.
    CallResponseHeaders,
    /// `call_response_body`.
    CallResponseBody,
    /// `set_filter_state` (name, value).
    SetFilterState(String, Vec<u8>),
    /// `now_nanos`.
    Now,
    /// Shared data read.
    SharedGet(String),
    /// Shared data write.
    SharedSet(String),
    /// Counter increment (id, by).
    Increment(u32, u64),
    /// Gauge or histogram record (id, value).
    Record(u32, u64),
}

/// The state a fake host serves; tests set it between callbacks.
#[derive(Debug, Default, Clone)]
pub struct Wire {
    /// Request headers the client sent (and, after edits, what goes upstream).
    pub request_headers: Headers,
    /// The buffered request body.
    pub request_body: Vec<u8>,
    /// Response headers from the upstream.
    pub response_headers: Headers,
    /// The buffered response body (as the host sees it in this callback).
    pub response_body: Vec<u8>,
    /// Envoy's response flags.
    pub response_flags: u64,
    /// The side call's answer.
    pub call_headers: Headers,
    /// The side call's body.
    pub call_body: Vec<u8>,
}

/// A recording host; clones share their state (one proxy's shared data
/// and metrics across exchanges).
#[derive(Clone, Default)]
pub struct FakeHost {
    /// What the host serves.
    pub wire: Rc<RefCell<Wire>>,
    calls: Rc<RefCell<Vec<Call>>>,
    shared: Rc<RefCell<Shared>>,
    clock_ns: Rc<Cell<u64>>,
    reviews: Rc<RefCell<Vec<ReviewItem>>>,
    /// The VM's shadow pairs and queued copies.
    pub shadow: Rc<RefCell<crate::shadow::pairs::Station>>,
}

/// Shared data: value and version by key.
type Shared = HashMap<String, (Vec<u8>, u32)>;

/// A side call as dispatched: cluster, headers, body.
pub type Dispatched = (String, Vec<(String, String)>, Vec<u8>);

/// A local reply: status, headers, body.
pub type Reply = (u32, Vec<(String, String)>, Vec<u8>);

/// Sets (or with `None` removes) header `name`, as Envoy's replace does.
fn set_header(headers: &mut Headers, name: &str, value: Option<&str>) {
    headers.retain(|(k, _)| k != name);
    if let Some(v) = value {
        headers.push((name.to_string(), v.to_string()));
    }
}

/// The first `size` bytes of a buffer (all of it when shorter).
fn prefix(buffer: &[u8], size: usize) -> Vec<u8> {
    buffer[..size.min(buffer.len())].to_vec()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl FakeHost {
    /// A host whose clock reads `unix_s`.
    pub fn at(unix_s: u64) -> FakeHost {
        let h = FakeHost::default();
        h.clock_ns.set(unix_s * 1_000_000_000);
        h
    }

    /// Moves the clock on.
    pub fn advance_ms(&self, ms: u64) {
        self.clock_ns.set(self.clock_ns.get() + ms * 1_000_000);
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    /// Forgets the calls so far.
    pub fn clear_calls(&self) {
        self.calls.borrow_mut().clear();
    }

    /// The number of hostcalls so far (every call but review queueing).
    pub fn hostcalls(&self) -> usize {
        self.calls.borrow().len()
    }

    /// Review copies queued so far.
    pub fn reviews(&self) -> usize {
        self.reviews.borrow().len()
    }

    /// The bodies of the review copies queued, as JSON.
    #[cfg(test)]
    pub fn review_bodies(&self) -> Vec<serde_json::Value> {
        self.reviews
            .borrow()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap_or_default())
            .collect()
    }

    /// The record written to filter state, as JSON.
    #[cfg(test)]
    pub fn record(&self) -> Option<serde_json::Value> {
        self.calls.borrow().iter().rev().find_map(|c| match c {
            Call::SetFilterState(k, v) if k == super::RECORD_PROPERTY => {
                serde_json::from_slice(v).ok()
            }
            _ => None,
        })
    }

    /// The span attributes written to filter state (attribute, value), in
    /// the order written.
    pub fn span_attributes(&self) -> Vec<(String, String)> {
        self.calls
            .borrow()
            .iter()
            .filter_map(|c| match c {
                Call::SetFilterState(k, v) => Some((
                    k.strip_prefix(super::SPAN_PROPERTY_PREFIX)?.to_string(),
                    String::from_utf8_lossy(v).into_owned(),
                )),
                _ => None,
            })
            .collect()
    }

    /// The local reply sent (status, headers, body), when one was.
    pub fn reply(&self) -> Option<Reply> {
        self.calls.borrow().iter().find_map(|c| match c {
            Call::SendReply(s, h, b) => Some((*s, h.clone(), b.clone())),
            _ => None,
        })
    }

    /// The value of a shared-data key.
    pub fn shared(&self, key: &str) -> Option<Vec<u8>> {
        self.shared.borrow().get(key).map(|(v, _)| v.clone())
    }

    /// Every shared-data key.
    pub fn shared_keys(&self) -> Vec<String> {
        self.shared.borrow().keys().cloned().collect()
    }

    /// Sum of the increments of counter `id`.
    pub fn counter(&self, id: u32) -> u64 {
        self.calls
            .borrow()
            .iter()
            .map(|c| match c {
                Call::Increment(i, by) if *i == id => *by,
                _ => 0,
            })
            .sum()
    }

    /// Every value recorded to histogram (or gauge) `id`.
    pub fn recorded(&self, id: u32) -> Vec<u64> {
        self.calls
            .borrow()
            .iter()
            .filter_map(|c| match c {
                Call::Record(i, v) if *i == id => Some(*v),
                _ => None,
            })
            .collect()
    }

    /// The calls dispatched (cluster, headers, body), in order.
    pub fn dispatched(&self) -> Vec<Dispatched> {
        self.calls
            .borrow()
            .iter()
            .filter_map(|c| match c {
                Call::Dispatch(cl, h, b) => Some((cl.clone(), h.clone(), b.clone())),
                _ => None,
            })
            .collect()
    }

    fn log(&self, call: Call) {
        self.calls.borrow_mut().push(call);
    }
}

impl MetricSink for FakeHost {
    fn increment(&self, id: u32, by: u64) {
        self.log(Call::Increment(id, by));
    }

    fn record(&self, id: u32, value: u64) {
        self.log(Call::Record(id, value));
    }
}

impl SharedStore for FakeHost {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        self.log(Call::SharedGet(key.to_string()));
        match self.shared.borrow().get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.log(Call::SharedSet(key.to_string()));
        let mut map = self.shared.borrow_mut();
        let current = map.get(key).map(|(_, c)| *c);
        if cas.is_some() && cas != current {
            return Err(StoreError::CasMismatch);
        }
        let next = current.unwrap_or(0) + 1;
        map.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }
}

impl Host for FakeHost {
    fn request_headers(&self) -> HeaderMap {
        self.log(Call::RequestHeaders);
        HeaderMap::from_pairs(&self.wire.borrow().request_headers)
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) {
        self.log(Call::SetRequestHeader(
            name.to_string(),
            value.map(str::to_string),
        ));
        set_header(&mut self.wire.borrow_mut().request_headers, name, value);
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        self.log(Call::RequestBody);
        prefix(&self.wire.borrow().request_body, size)
    }

    fn set_request_body(&self, _size: usize, body: &[u8]) {
        self.log(Call::SetRequestBody(body.to_vec()));
        self.wire.borrow_mut().request_body = body.to_vec();
    }

    fn response_headers(&self) -> HeaderMap {
        self.log(Call::ResponseHeaders);
        HeaderMap::from_pairs(&self.wire.borrow().response_headers)
    }

    fn response_header(&self, name: &str) -> Option<String> {
        self.log(Call::ResponseHeader(name.to_string()));
        self.wire
            .borrow()
            .response_headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) {
        self.log(Call::SetResponseHeader(
            name.to_string(),
            value.map(str::to_string),
        ));
        set_header(&mut self.wire.borrow_mut().response_headers, name, value);
    }

    fn response_body(&self, size: usize) -> Vec<u8> {
        self.log(Call::ResponseBody);
        prefix(&self.wire.borrow().response_body, size)
    }

    fn set_response_body(&self, _size: usize, body: &[u8]) {
        self.log(Call::SetResponseBody(body.to_vec()));
        self.wire.borrow_mut().response_body = body.to_vec();
    }

    fn response_flags(&self) -> u64 {
        self.log(Call::ResponseFlags);
        self.wire.borrow().response_flags
    }

    fn send_reply(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        self.log(Call::SendReply(status, owned(headers), body.to_vec()));
    }

    fn resume_response(&self) {
        self.log(Call::ResumeResponse);
    }

    fn call_response_headers(&self) -> HeaderMap {
        self.log(Call::CallResponseHeaders);
        HeaderMap::from_pairs(&self.wire.borrow().call_headers)
    }

    fn call_response_body(&self, size: usize) -> Vec<u8> {
        self.log(Call::CallResponseBody);
        prefix(&self.wire.borrow().call_body, size)
    }

    fn set_filter_state(&self, name: &str, value: &[u8]) {
        self.log(Call::SetFilterState(name.to_string(), value.to_vec()));
    }

    fn now_nanos(&self) -> u64 {
        self.log(Call::Now);
        self.clock_ns.get()
    }

    fn queue_review(&self, item: ReviewItem) -> bool {
        self.reviews.borrow_mut().push(item);
        true
    }

    fn queue_shadow(&self, copy: crate::shadow::Copy, deadline_ms: u64) -> Option<u64> {
        self.shadow.borrow_mut().queue(copy, deadline_ms)
    }

    fn shadow_control_done(&self, pair: u64, side: crate::shadow::ControlSide) {
        self.shadow.borrow_mut().pairs.control_done(pair, side);
    }
}

impl super::SideCall for FakeHost {
    /// Records the call as [`Call::Dispatch`]; the token is its index
    /// among the calls (a cluster named `down` refuses to start: no test
    /// of the exchange names one).
    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        _timeout_ms: u64,
    ) -> Option<u32> {
        if cluster == "down" {
            return None;
        }
        self.log(Call::Dispatch(
            cluster.to_string(),
            owned(headers),
            body.to_vec(),
        ));
        u32::try_from(self.calls.borrow().len()).ok()
    }
}
