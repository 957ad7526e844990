//! [`WasmHost`]: the [`Host`] of an exchange inside Envoy, each method one
//! proxy-wasm hostcall (header maps through the ABI call itself, see
//! [`crate::exchange::HeaderMap`]).

use super::review;
use super::store::HostStore;
use crate::exchange::{HeaderMap, Host, ReviewItem};
use crate::metrics::MetricSink;
use crate::shared::{SharedStore, StoreError};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};
use std::time::UNIX_EPOCH;

/// Envoy, through proxy-wasm hostcalls.
pub struct WasmHost;

impl MetricSink for WasmHost {
    fn increment(&self, id: u32, by: u64) {
        let _ = hostcalls::increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
    }

    fn record(&self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
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

#[link(wasm_import_module = "env")]
extern "C" {
    /// The proxy-wasm ABI call behind the SDK's `get_map` (which panics on
    /// a header value that is not UTF-8, and allocates two strings per
    /// header): the serialized map, in memory the host allocated through
    /// the module's allocator.
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> proxy_wasm::types::Status;
}

/// Every header of `map`, in one call (empty when the host has none).
fn header_map(map: MapType) -> HeaderMap {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer to `size` bytes it allocated with
    // `proxy_on_memory_allocate` (the SDK's, a `Vec<u8>` of that capacity),
    // or nothing; the bytes are taken back as that `Vec` and freed here.
    let bytes = unsafe {
        match proxy_get_header_map_pairs(map, &mut data, &mut size) {
            proxy_wasm::types::Status::Ok if !data.is_null() => {
                Vec::from_raw_parts(data, size, size)
            }
            _ => Vec::new(),
        }
    };
    HeaderMap::from_serialized(&bytes)
}

fn buffer(kind: BufferType, size: usize) -> Vec<u8> {
    hostcalls::get_buffer(kind, 0, size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

impl Host for WasmHost {
    fn request_headers(&self) -> HeaderMap {
        header_map(MapType::HttpRequestHeaders)
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value);
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        buffer(BufferType::HttpRequestBody, size)
    }

    fn set_request_body(&self, size: usize, body: &[u8]) {
        let _ = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, size, body);
    }

    fn response_headers(&self) -> HeaderMap {
        header_map(MapType::HttpResponseHeaders)
    }

    fn response_header(&self, name: &str) -> Option<String> {
        hostcalls::get_map_value(MapType::HttpResponseHeaders, name)
            .ok()
            .flatten()
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) {
        let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, value);
    }

    fn response_body(&self, size: usize) -> Vec<u8> {
        buffer(BufferType::HttpResponseBody, size)
    }

    fn set_response_body(&self, size: usize, body: &[u8]) {
        let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, body);
    }

    fn response_flags(&self) -> u64 {
        hostcalls::get_property(vec!["response", "flags"])
            .ok()
            .flatten()
            .and_then(|b| b.get(..8).and_then(|b| b.try_into().ok()))
            .map_or(0, u64::from_le_bytes)
    }

    fn send_reply(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        let _ = hostcalls::send_http_response(status, headers.to_vec(), Some(body));
    }

    fn resume_response(&self) {
        let _ = hostcalls::resume_http_response();
    }

    fn call_response_headers(&self) -> HeaderMap {
        header_map(MapType::HttpCallResponseHeaders)
    }

    fn call_response_body(&self, size: usize) -> Vec<u8> {
        buffer(BufferType::HttpCallResponseBody, size)
    }

    fn set_filter_state(&self, name: &str, value: &[u8]) {
        let _ = hostcalls::set_property(vec![name], Some(value));
    }

    fn now_nanos(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64)
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
