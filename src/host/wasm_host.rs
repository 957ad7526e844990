//! [`WasmHost`]: the [`Host`] of an exchange inside Envoy, each method one
//! proxy-wasm hostcall (header maps through the ABI call itself, see
//! [`crate::exchange::HeaderMap`]).

use super::abi;
use super::review;
use super::store::HostStore;
use crate::exchange::{HeaderMap, Host, ReviewItem};
use crate::metrics::MetricSink;
use crate::shared::{SharedStore, StoreError};

/// Envoy, through proxy-wasm hostcalls.
pub struct WasmHost;

impl MetricSink for WasmHost {
    fn increment(&self, id: u32, by: u64) {
        abi::increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
    }

    fn record(&self, id: u32, value: u64) {
        abi::record_metric(id, value);
    }
}

impl SharedStore for WasmHost {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        HostStore.get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        HostStore.set(key, value, cas)
    }
}

/// Every header of `map`, in one call (empty when the host has none).
fn header_map(map: u32) -> HeaderMap {
    HeaderMap::from_serialized(&abi::header_pairs(map))
}

impl Host for WasmHost {
    fn request_headers(&self) -> HeaderMap {
        header_map(abi::REQUEST_HEADERS)
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) {
        abi::set_header(abi::REQUEST_HEADERS, name, value);
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        abi::buffer(abi::REQUEST_BODY, size)
    }

    fn set_request_body(&self, size: usize, body: &[u8]) {
        abi::set_buffer(abi::REQUEST_BODY, size, body);
    }

    fn response_headers(&self) -> HeaderMap {
        header_map(abi::RESPONSE_HEADERS)
    }

    fn response_header(&self, name: &str) -> Option<String> {
        abi::header(abi::RESPONSE_HEADERS, name)
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) {
        abi::set_header(abi::RESPONSE_HEADERS, name, value);
    }

    fn response_body(&self, size: usize) -> Vec<u8> {
        abi::buffer(abi::RESPONSE_BODY, size)
    }

    fn set_response_body(&self, size: usize, body: &[u8]) {
        abi::set_buffer(abi::RESPONSE_BODY, size, body);
    }

    fn response_flags(&self) -> u64 {
        abi::property(&["response", "flags"])
            .and_then(|b| b.get(..8).and_then(|b| b.try_into().ok()))
            .map_or(0, u64::from_le_bytes)
    }

    fn send_reply(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        abi::send_local_response(status, headers, body);
    }

    fn resume_response(&self) {
        abi::resume_response();
    }

    fn call_response_headers(&self) -> HeaderMap {
        header_map(abi::CALL_RESPONSE_HEADERS)
    }

    fn call_response_body(&self, size: usize) -> Vec<u8> {
        abi::buffer(abi::CALL_RESPONSE_BODY, size)
    }

    fn set_filter_state(&self, name: &str, value: &[u8]) {
        abi::set_property(&[name], value);
    }

    fn now_nanos(&self) -> u64 {
        abi::now_nanos()
    }
    fn queue_review(&self, item: ReviewItem) -> bool {
        review::push(item)
    }

    fn queue_shadow(&self, copy: crate::shadow::Copy, deadline_ms: u64) -> Option<u64> {
        super::shadow::queue(copy, deadline_ms)
    }

    fn shadow_control_done(&self, pair: u64, side: crate::shadow::ControlSide) {
        super::shadow::control_done(pair, side)
    }
}
