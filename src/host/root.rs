//! Root context: loads the configuration once per VM and creates one
//! [`HttpFilter`] per HTTP stream.

use super::http::HttpFilter;
use super::memory;
use super::review;
use super::shadow;
use super::wasm_host::WasmHost;
use crate::config::{self, Plan};
use crate::metrics::{MetricType, Metrics, WeightGauges};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};
use std::rc::Rc;
use std::time::Duration;

/// How often queued review copies are sent.
const REVIEW_TICK: Duration = Duration::from_millis(100);

/// How often queued shadow copies are sent while copies are flowing:
/// every millisecond, so each tick sends a copy or two (a longer tick sends
/// them in bursts that a client's request waits behind: measured in the
/// README); a copy waits at most this long, off the client's path.
const SHADOW_TICK_BUSY: Duration = Duration::from_millis(1);

/// The shadow tick while no pair is open (the first copy after a quiet
/// spell waits at most this long).
const SHADOW_TICK_IDLE: Duration = Duration::from_millis(20);

/// The tick when nothing but the VM memory gauge needs one.
const MEMORY_TICK: Duration = Duration::from_secs(memory::REFRESH_S);

/// The tick while a `rollout` can move the weight gauges (each second).
const ROLLOUT_TICK: Duration = Duration::from_secs(1);

/// Per-VM root context holding the compiled plan.
#[derive(Default)]
pub struct Root {
    loaded: Option<(Rc<Plan>, Rc<Metrics>)>,
    /// Second of the last VM memory refresh.
    memory_at: u64,
    /// The shadow tick is the short one (pairs are open).
    shadow_busy: bool,
    /// The weight gauges as this VM set them.
    weights: WeightGauges,
    /// Second of the last weight gauge refresh (they move by the second).
    weights_at: u64,
}

impl Root {
    /// Refreshes the VM memory gauge every `memory::REFRESH_S` (or now),
    /// and the weight gauges that changed.
    fn refresh_gauges(&mut self, now: bool) {
        let now_ns = hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        let now_s = now_ns / 1_000_000_000;
        // A clock stepped back refreshes at once.
        if now || now_s >= self.memory_at + memory::REFRESH_S || now_s < self.memory_at {
            self.memory_at = now_s;
            memory::refresh(now_s, now_ns);
        }
        if let (Some((plan, metrics)), true) = (&self.loaded, now || now_s != self.weights_at) {
            self.weights_at = now_s;
            self.weights.refresh(plan, metrics, &WasmHost, now_s);
        }
    }
}

/// Defines one Envoy metric; `None` (and one warning) when Envoy refuses.
fn define_metric(kind: MetricType, name: &str) -> Option<u32> {
    let kind = match kind {
        MetricType::Counter => proxy_wasm::types::MetricType::Counter,
        MetricType::Gauge => proxy_wasm::types::MetricType::Gauge,
        MetricType::Histogram => proxy_wasm::types::MetricType::Histogram,
    };
    match hostcalls::define_metric(kind, name) {
        Ok(id) => Some(id),
        Err(status) => {
            log::warn!("could not define metric {name}: {status:?}");
            None
        }
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body: usize,
        _trailers: usize,
    ) {
        if let Some((plan, metrics)) = &self.loaded {
            if shadow::answered(plan, metrics, token, body) {
                return;
            }
        }
        let status = hostcalls::get_map_value(
            proxy_wasm::types::MapType::HttpCallResponseHeaders,
            ":status",
        )
        .ok()
        .flatten()
        .and_then(|s| s.parse::<u32>().ok());
        if let Some((_, metrics)) = &self.loaded {
            let ok = status.is_some_and(|s| (200..300).contains(&s));
            metrics.count_review(&WasmHost, if ok { 0 } else { 1 });
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(Some(b)) => b,
            _ => Vec::new(),
        };
        match config::load(&bytes) {
            Ok(plan) => {
                let metrics = Metrics::define(&plan, &mut define_metric);
                for warning in &plan.warnings {
                    log::warn!("{warning}");
                }
                log::info!(
                    "configuration loaded: {} experiment(s)",
                    plan.experiments.len()
                );
                let tick = if plan.experiments.iter().any(|e| e.shadow.is_some()) {
                    SHADOW_TICK_IDLE
                } else if plan.guardrails.review.is_some() {
                    REVIEW_TICK
                } else if plan.experiments.iter().any(|e| e.rollout.is_some()) {
                    ROLLOUT_TICK
                } else {
                    MEMORY_TICK
                };
                let _ = hostcalls::set_tick_period(tick);
                self.shadow_busy = false;
                shadow::reset();
                self.loaded = Some((Rc::new(plan), Rc::new(metrics)));
                // This configuration's gauges, all set now.
                self.weights = WeightGauges::default();
                self.refresh_gauges(true);
                true
            }
            Err(errors) => {
                log::error!("configuration rejected: {errors}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.refresh_gauges(false);
        if let Some((plan, metrics)) = &self.loaded {
            if plan.experiments.iter().any(|e| e.shadow.is_some()) {
                let busy = shadow::tick(plan, metrics);
                if busy != self.shadow_busy {
                    self.shadow_busy = busy;
                    let period = if busy {
                        SHADOW_TICK_BUSY
                    } else {
                        SHADOW_TICK_IDLE
                    };
                    let _ = hostcalls::set_tick_period(period);
                }
            }
        }
        for item in review::drain() {
            let sent = hostcalls::dispatch_http_call(
                &item.cluster,
                vec![
                    (":method", "POST"),
                    (":path", "/review"),
                    (":authority", "llm-ab-review"),
                    ("content-type", "application/json"),
                ],
                Some(&item.body),
                vec![],
                Duration::from_millis(item.timeout_ms),
            );
            if sent.is_err() {
                if let Some((_, metrics)) = &self.loaded {
                    metrics.count_review(&WasmHost, 1);
                }
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(HttpFilter::new(self.loaded.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
