//! The callbacks of one HTTP stream, forwarded to [`crate::exchange`]
//! over [`WasmHost`]. No decision is taken here.

use super::wasm_host::WasmHost;
use crate::exchange::{Exchange, Flow, Loaded};
use std::cell::Cell;

thread_local! {
    /// Per-VM exchange counter, mixed into generated trace ids.
    static SEQUENCE: Cell<u64> = const { Cell::new(0) };
}

/// One HTTP stream: the ABI's callbacks, forwarded to the exchange.
pub struct HttpFilter(Exchange<WasmHost>);

/// The ABI's `Action`: continue (0) or pause (1) the stream.
fn action(flow: Flow) -> u32 {
    match flow {
        Flow::Continue => 0,
        Flow::Pause => 1,
    }
}

impl HttpFilter {
    /// A stream under the loaded configuration (`None`: none loaded).
    pub fn new(loaded: Loaded) -> HttpFilter {
        let sequence = SEQUENCE.with(|s| {
            s.set(s.get().wrapping_add(1));
            s.get()
        });
        HttpFilter(Exchange::new(WasmHost, loaded, sequence))
    }

    /// A side call of this stream answered, with a body of `body` bytes.
    pub fn on_call_response(&mut self, body: usize) {
        self.0.on_call_response(body);
    }

    /// The request headers.
    pub fn on_request_headers(&mut self, end_of_stream: bool) -> u32 {
        action(self.0.on_request_headers(end_of_stream))
    }

    /// A request body chunk (`size`: the body buffered so far).
    pub fn on_request_body(&mut self, size: usize, end_of_stream: bool) -> u32 {
        action(self.0.on_request_body(size, end_of_stream))
    }

    /// The request trailers.
    pub fn on_request_trailers(&mut self) -> u32 {
        action(self.0.on_request_trailers())
    }

    /// The response headers.
    pub fn on_response_headers(&mut self, end_of_stream: bool) -> u32 {
        action(self.0.on_response_headers(end_of_stream))
    }

    /// A response body chunk.
    pub fn on_response_body(&mut self, size: usize, end_of_stream: bool) -> u32 {
        action(self.0.on_response_body(size, end_of_stream))
    }

    /// The stream is logged: its record.
    pub fn on_log(&mut self) {
        self.0.on_log();
    }
}
