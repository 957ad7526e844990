//! The proxy-wasm ABI (v0.2.1) calls the filter makes, each wrapped once:
//! no status panics, no UTF-8 panics, memory the host returns taken back
//! as the `Vec` the module's allocator gave it.
//!
//! The filter used the `proxy-wasm` SDK for this. The SDK panics on any
//! status it does not expect (a non-UTF-8 header value read by name
//! traps the VM), exports every callback of the ABI and keeps contexts,
//! callouts and gRPC streams in hash maps: ~30 KB of the module for the
//! eighteen calls and fourteen callbacks the filter uses ([`super::abi`]
//! and [`super::dispatch`]).

use std::ptr::{null, null_mut};

/// A hostcall's result (`Status` in the ABI).
pub type Status = u32;
/// The call succeeded.
pub const OK: Status = 0;
/// A compare-and-swap lost (`CasMismatch`).
pub const CAS_MISMATCH: Status = 8;

/// `LogLevel`.
#[derive(Clone, Copy)]
pub enum Level {
    /// Debug.
    Debug = 1,
    /// Info.
    Info = 2,
    /// Warn.
    Warn = 3,
    /// Error.
    Error = 4,
    /// Critical.
    Critical = 5,
}

/// `MapType`: the request's headers.
pub const REQUEST_HEADERS: u32 = 0;
/// `MapType`: the response's headers.
pub const RESPONSE_HEADERS: u32 = 2;
/// `MapType`: the headers of a side call's answer.
pub const CALL_RESPONSE_HEADERS: u32 = 6;

/// `BufferType`: the request body.
pub const REQUEST_BODY: u32 = 0;
/// `BufferType`: the response body.
pub const RESPONSE_BODY: u32 = 1;
/// `BufferType`: a side call's answer body.
pub const CALL_RESPONSE_BODY: u32 = 4;
/// `BufferType`: the plugin configuration.
pub const PLUGIN_CONFIGURATION: u32 = 7;

/// `MetricType`: counter, gauge, histogram.
pub const COUNTER: u32 = 0;
/// See [`COUNTER`].
pub const GAUGE: u32 = 1;
/// See [`COUNTER`].
pub const HISTOGRAM: u32 = 2;

/// `StreamType::HttpResponse`.
const HTTP_RESPONSE: u32 = 1;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message: *const u8, size: usize) -> Status;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> Status;
    fn proxy_set_tick_period_milliseconds(period: u32) -> Status;
    fn proxy_get_buffer_bytes(
        kind: u32,
        start: usize,
        max: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> Status;
    fn proxy_set_buffer_bytes(
        kind: u32,
        start: usize,
        size: usize,
        data: *const u8,
        data_size: usize,
    ) -> Status;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> Status;
    fn proxy_get_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> Status;
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> Status;
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> Status;
    fn proxy_set_property(
        path: *const u8,
        path_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
        cas: *mut u32,
    ) -> Status;
    fn proxy_set_shared_data(
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
        cas: u32,
    ) -> Status;
    fn proxy_continue_stream(stream: u32) -> Status;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> Status;
    #[allow(clippy::too_many_arguments)]
    fn proxy_http_call(
        upstream: *const u8,
        upstream_size: usize,
        headers: *const u8,
        headers_size: usize,
        body: *const u8,
        body_size: usize,
        trailers: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        token: *mut u32,
    ) -> Status;
    fn proxy_set_effective_context(context: u32) -> Status;
    fn proxy_define_metric(kind: u32, name: *const u8, name_size: usize, id: *mut u32) -> Status;
    fn proxy_increment_metric(id: u32, offset: i64) -> Status;
    fn proxy_record_metric(id: u32, value: u64) -> Status;
}

/// The bytes the host wrote to `data` (allocated through
/// `proxy_on_memory_allocate`), taken back and owned; `None` when the
/// call failed or returned nothing.
fn owned(status: Status, data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if status != OK || data.is_null() {
        return None;
    }
    // SAFETY: the host allocated `size` bytes at `data` with the module's
    // `proxy_on_memory_allocate`, a boxed slice of exactly that length
    // (the layout of a `Vec<u8>` of capacity `size`), and gave them to us.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// A block of `size` bytes for the host to write into (the ABI's
/// `proxy_on_memory_allocate`); see [`owned`].
pub fn allocate(size: usize) -> *mut u8 {
    Box::into_raw(vec![0u8; size].into_boxed_slice()).cast::<u8>()
}

/// Writes `message` to Envoy's log.
pub fn log(level: Level, message: &str) {
    // SAFETY: a pointer and length of a live `str`.
    unsafe {
        proxy_log(level as u32, message.as_ptr(), message.len());
    }
}

/// The host's clock, in nanoseconds since the epoch (0 if it failed).
pub fn now_nanos() -> u64 {
    let mut t = 0u64;
    // SAFETY: writes one `u64` into `t`.
    match unsafe { proxy_get_current_time_nanoseconds(&mut t) } {
        OK => t,
        _ => 0,
    }
}

/// Sets the root context's tick period.
pub fn set_tick_period_ms(period: u32) {
    // SAFETY: no pointers.
    unsafe {
        proxy_set_tick_period_milliseconds(period);
    }
}

/// Up to `max` bytes of buffer `kind` (empty when there are none).
pub fn buffer(kind: u32, max: usize) -> Vec<u8> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: the host writes a pointer and a size into the two locals.
    let status = unsafe { proxy_get_buffer_bytes(kind, 0, max, &mut data, &mut size) };
    owned(status, data, size).unwrap_or_default()
}

/// Replaces the first `size` bytes of buffer `kind` with `bytes`.
pub fn set_buffer(kind: u32, size: usize, bytes: &[u8]) {
    // SAFETY: a pointer and length of a live slice.
    unsafe {
        proxy_set_buffer_bytes(kind, 0, size, bytes.as_ptr(), bytes.len());
    }
}

/// Every pair of header map `map`, serialized as the ABI serializes it
/// (empty when there are none).
pub fn header_pairs(map: u32) -> Vec<u8> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: the host writes a pointer and a size into the two locals.
    let status = unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) };
    owned(status, data, size).unwrap_or_default()
}

/// The value of header `name` in `map`, when present and UTF-8.
pub fn header(map: u32, name: &str) -> Option<String> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: `name` is live; the host writes a pointer and a size.
    let status =
        unsafe { proxy_get_header_map_value(map, name.as_ptr(), name.len(), &mut data, &mut size) };
    String::from_utf8(owned(status, data, size)?).ok()
}

/// Sets header `name` of `map` to `value`, or removes it (`None`).
pub fn set_header(map: u32, name: &str, value: Option<&str>) {
    // SAFETY: pointers and lengths of live strings.
    unsafe {
        match value {
            Some(v) => {
                proxy_replace_header_map_value(map, name.as_ptr(), name.len(), v.as_ptr(), v.len())
            }
            None => proxy_remove_header_map_value(map, name.as_ptr(), name.len()),
        };
    }
}

/// A property path as the ABI spells it: its parts joined by NULs.
fn path(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

/// The value of property `parts` (`None` when absent).
pub fn property(parts: &[&str]) -> Option<Vec<u8>> {
    let path = path(parts);
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: `path` is live; the host writes a pointer and a size.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    owned(status, data, size)
}

/// Sets property `parts` (filter state, for one name) to `value`.
pub fn set_property(parts: &[&str], value: &[u8]) {
    let path = path(parts);
    // SAFETY: pointers and lengths of live buffers.
    unsafe {
        proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len());
    }
}

/// Shared data `key`: its value and CAS (`None`s when absent).
pub fn shared_data(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    let (mut data, mut size, mut cas) = (null_mut(), 0, 0u32);
    // SAFETY: `key` is live; the host writes a pointer, a size and a CAS.
    let status =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    if status != OK {
        return (None, None);
    }
    (owned(status, data, size), (cas != 0).then_some(cas))
}

/// Writes shared data `key` if its CAS is still `cas` (`None`: always).
pub fn set_shared_data(key: &str, value: &[u8], cas: Option<u32>) -> Status {
    // SAFETY: pointers and lengths of live buffers.
    unsafe {
        proxy_set_shared_data(
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
            cas.unwrap_or(0),
        )
    }
}

/// Resumes the paused response of the effective context.
pub fn resume_response() {
    // SAFETY: no pointers.
    unsafe {
        proxy_continue_stream(HTTP_RESPONSE);
    }
}

/// Header pairs serialized as the ABI reads them: the count, each pair's
/// two lengths, then each name and value NUL-terminated (all lengths
/// little-endian `u32`).
pub fn serialize_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(k, v)| k.len() + v.len() + 10)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&len(k.len()));
        out.extend_from_slice(&len(v.len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Answers the stream itself with `status`, `headers` and `body`.
pub fn send_local_response(status: u32, headers: &[(&str, &str)], body: &[u8]) {
    let headers = serialize_pairs(headers);
    // SAFETY: pointers and lengths of live buffers (no details string).
    unsafe {
        proxy_send_local_response(
            status,
            null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        );
    }
}

/// Sends a side call to `cluster`; its token (`None` when refused).
pub fn http_call(
    cluster: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout_ms: u64,
) -> Option<u32> {
    let headers = serialize_pairs(headers);
    let trailers = serialize_pairs(&[]);
    let mut token = 0u32;
    // SAFETY: pointers and lengths of live buffers; the host writes the token.
    let status = unsafe {
        proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            headers.as_ptr(),
            headers.len(),
            body.as_ptr(),
            body.len(),
            trailers.as_ptr(),
            trailers.len(),
            u32::try_from(timeout_ms).unwrap_or(u32::MAX),
            &mut token,
        )
    };
    (status == OK).then_some(token)
}

/// Makes `context` the one later hostcalls act on (a side call's answer
/// arrives outside the stream's own callbacks).
pub fn set_effective_context(context: u32) {
    // SAFETY: no pointers.
    unsafe {
        proxy_set_effective_context(context);
    }
}

/// Defines a metric; its id.
pub fn define_metric(kind: u32, name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    // SAFETY: `name` is live; the host writes the id.
    match unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) } {
        OK => Ok(id),
        status => Err(status),
    }
}

/// Adds `by` to counter `id`.
pub fn increment_metric(id: u32, by: i64) {
    // SAFETY: no pointers.
    unsafe {
        proxy_increment_metric(id, by);
    }
}

/// Sets gauge `id`, or records a histogram sample.
pub fn record_metric(id: u32, value: u64) {
    // SAFETY: no pointers.
    unsafe {
        proxy_record_metric(id, value);
    }
}
