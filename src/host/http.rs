//! The proxy-wasm callbacks of one HTTP stream, forwarded to
//! [`crate::exchange`] over [`WasmHost`]. No decision is taken here.

use super::wasm_host::WasmHost;
use crate::exchange::{Exchange, Flow, Loaded};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::cell::Cell;

thread_local! {
    /// Per-VM exchange counter, mixed into generated trace ids.
    static SEQUENCE: Cell<u64> = const { Cell::new(0) };
}

/// One HTTP stream: the SDK's callbacks, forwarded to the exchange.
pub struct HttpFilter(Exchange<WasmHost>);

impl HttpFilter {
    /// A stream under the loaded configuration (`None`: none loaded).
    pub fn new(loaded: Loaded) -> HttpFilter {
        let sequence = SEQUENCE.with(|s| {
            s.set(s.get().wrapping_add(1));
            s.get()
        });
        HttpFilter(Exchange::new(WasmHost, loaded, sequence))
    }
}

fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Pause => Action::Pause,
    }
}

impl Context for HttpFilter {
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, body: usize, _: usize) {
        self.0.on_call_response(body);
    }
}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        action(self.0.on_request_headers(end_of_stream))
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        action(self.0.on_request_body(size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        action(self.0.on_request_trailers())
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        action(self.0.on_response_headers(end_of_stream))
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        action(self.0.on_response_body(size, end_of_stream))
    }

    fn on_log(&mut self) {
        self.0.on_log();
    }
}
