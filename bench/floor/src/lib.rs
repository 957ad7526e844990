//! Benchmark only (`make bench BENCH_ARGS=--floor`): a proxy-wasm filter
//! that performs the hostcalls a 2 KB request costs llm-ab in each
//! configuration (the sequence `hostcall_budget_per_configuration` counts)
//! and decides nothing, so what it adds to bare Envoy is the floor of what
//! any filter making those calls pays: Envoy's wasm context, the callbacks
//! into the VM, the hostcalls and the SDK around them.
//!
//! The plugin configuration names the level: `empty` (every callback
//! continues), `routing`, `telemetry`, `everything`, or `shadow`:
//! everything's hostcalls plus one side call per request to `model_b`
//! with the request's body, its answer's status and body read (the work
//! a shadow copy costs the worker, without the filter's decisions). The
//! request waits for that answer, so no call is cancelled with its stream.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};
use std::time::Duration;

extern "C" {
    // The ABI call the filter reads header maps with (src/host/wasm_host.rs).
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> proxy_wasm::types::Status;
}

/// Reads header map `map` in one call, as the filter does, and frees it.
fn read_map(map: MapType) {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer to `size` bytes it allocated with
    // `proxy_on_memory_allocate` (a `Vec<u8>` of that capacity), or nothing.
    unsafe {
        if proxy_get_header_map_pairs(map, &mut data, &mut size) == proxy_wasm::types::Status::Ok
            && !data.is_null()
        {
            drop(Vec::from_raw_parts(data, size, size));
        }
    }
}

#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Level {
    Empty,
    Routing,
    Telemetry,
    Everything,
    Shadow,
}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { level: Level::Empty, metrics: [0; 6] })
    });
}}

struct Root {
    level: Level,
    metrics: [u32; 6],
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let cfg = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.level = match cfg.as_slice() {
            b"routing" => Level::Routing,
            b"telemetry" => Level::Telemetry,
            b"everything" => Level::Everything,
            b"shadow" => Level::Shadow,
            _ => Level::Empty,
        };
        let names = [
            ("floor_requests", MetricType::Counter),
            ("floor_a", MetricType::Counter),
            ("floor_b", MetricType::Counter),
            ("floor_c", MetricType::Counter),
            ("floor_d", MetricType::Counter),
            ("floor_latency", MetricType::Histogram),
        ];
        for (slot, (name, kind)) in self.metrics.iter_mut().zip(names) {
            *slot = hostcalls::define_metric(kind, name).unwrap_or(0);
        }
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            level: self.level,
            metrics: self.metrics,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    level: Level,
    metrics: [u32; 6],
}

impl Context for Stream {
    fn on_http_call_response(&mut self, _: u32, _: usize, body_size: usize, _: usize) {
        let _ = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status");
        let _ = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, "content-encoding");
        let _ = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size);
        for i in [1, 2] {
            let _ = hostcalls::increment_metric(self.metrics[i], 1);
        }
        let _ = hostcalls::record_metric(self.metrics[5], 1);
        self.resume_http_request();
    }
}

fn now() {
    let _ = hostcalls::get_current_time();
}

/// Everything's hostcalls (the side call comes on top).
fn everything(level: Level) -> bool {
    level >= Level::Everything
}

fn set_req(name: &str, value: &str) {
    let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
}

fn set_resp(name: &str, value: &str) {
    let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value));
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if self.level == Level::Empty {
            return Action::Continue;
        }
        now();
        read_map(MapType::HttpRequestHeaders);
        let _ = hostcalls::increment_metric(self.metrics[0], 1);
        if end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if self.level == Level::Empty {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        if everything(self.level) {
            let key = "floor.quota";
            let (_, cas) = hostcalls::get_shared_data(key).unwrap_or((None, None));
            let _ = hostcalls::set_shared_data(key, Some(b"0123456789abcdef"), cas);
        }
        // The same bytes back: the model rewrite replaces the body.
        let _ = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, size, &body);
        set_req("x-llm-cluster", "model_a");
        if self.level >= Level::Telemetry {
            set_req(
                "traceparent",
                "00-5b1e2e076c1c4a4e9a1c2c8b9f0d3e11-3efa58b9ef644c17-01",
            );
        }
        set_req("x-llm-experiment", "e");
        set_req("x-llm-variant", "cand");
        if everything(self.level) {
            set_req("x-envoy-upstream-rq-timeout-ms", "30000");
        }
        set_req("content-length", &body.len().to_string());
        if self.level == Level::Shadow {
            let headers = vec![
                (":method", "POST"),
                (":path", "/v1/chat/completions"),
                (":authority", "model_b"),
                ("content-type", "application/json"),
                ("x-llm-shadow", "1"),
            ];
            if self
                .dispatch_http_call(
                    "model_b",
                    headers,
                    Some(&body),
                    vec![],
                    Duration::from_secs(30),
                )
                .is_ok()
            {
                return Action::Pause;
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        match self.level {
            Level::Empty => Action::Continue,
            Level::Routing => {
                set_resp("x-llm-experiment", "e");
                set_resp("x-llm-variant", "cand");
                Action::Continue
            }
            _ => {
                read_map(MapType::HttpResponseHeaders);
                if self.level == Level::Telemetry {
                    set_resp("x-llm-experiment", "e");
                    set_resp("x-llm-variant", "cand");
                }
                if end_of_stream {
                    Action::Continue
                } else {
                    Action::Pause
                }
            }
        }
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if self.level < Level::Telemetry {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let _ = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size);
        if everything(self.level) {
            set_resp("x-llm-experiment", "e");
            set_resp("x-llm-variant", "cand");
        }
        // The finish: clock, quota settlement, counters, latency, record.
        now();
        if everything(self.level) {
            let key = "floor.quota";
            let (_, cas) = hostcalls::get_shared_data(key).unwrap_or((None, None));
            let _ = hostcalls::set_shared_data(key, Some(b"0123456789abcdef"), cas);
        }
        for (i, by) in [(1, 1), (2, 1), (3, 12), (4, 3)] {
            let _ = hostcalls::increment_metric(self.metrics[i], by);
        }
        let _ = hostcalls::record_metric(self.metrics[5], 1);
        // A record of the size llm-ab writes.
        let record = [b'x'; 620];
        let _ = hostcalls::set_property(vec!["llm_ab_record"], Some(&record));
        Action::Continue
    }
}
