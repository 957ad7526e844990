//! Root context: loads the configuration once per VM and creates one
//! [`HttpFilter`] per HTTP stream.

use super::abi;
use super::http::HttpFilter;
use super::memory;
use super::review;
use super::shadow;
use super::wasm_host::WasmHost;
use crate::config::{self, Plan};
use crate::metrics::{MetricType, Metrics, WeightGauges};
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
        let now_ns = abi::now_nanos();
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
        MetricType::Counter => abi::COUNTER,
        MetricType::Gauge => abi::GAUGE,
        MetricType::Histogram => abi::HISTOGRAM,
    };
    match abi::define_metric(kind, name) {
        Ok(id) => Some(id),
        Err(status) => {
            log::warn!("could not define metric {name}: status {status}");
            None
        }
    }
}

/// A tick period as the ABI takes it.
fn set_tick(period: Duration) {
    abi::set_tick_period_ms(u32::try_from(period.as_millis()).unwrap_or(u32::MAX));
}

impl Root {
    /// A side call of the root context answered (a shadow copy's or a
    /// review copy's), with a body of `body` bytes.
    pub fn on_http_call_response(&mut self, token: u32, body: usize) {
        if let Some((plan, metrics)) = &self.loaded {
            if shadow::answered(plan, metrics, token, body) {
                return;
            }
        }
        let status = shadow::call_status();
        if let Some((_, metrics)) = &self.loaded {
            let ok = status.is_some_and(|s| (200..300).contains(&s));
            metrics.count_review(&WasmHost, if ok { 0 } else { 1 });
        }
    }

    /// The plugin configuration (`size` bytes): `false` refuses it.
    pub fn on_configure(&mut self, size: usize) -> bool {
        let bytes = abi::buffer(abi::PLUGIN_CONFIGURATION, size);
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
                set_tick(tick);
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

    /// The timer: gauges, shadow copies, review copies.
    pub fn on_tick(&mut self) {
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
                    set_tick(period);
                }
            }
        }
        for item in review::drain() {
            let sent = super::dispatch::http_call(
                &item.cluster,
                &[
                    (":method", "POST"),
                    (":path", "/review"),
                    (":authority", "llm-ab-review"),
                    ("content-type", "application/json"),
                ],
                &item.body,
                item.timeout_ms,
            );
            if sent.is_none() {
                if let Some((_, metrics)) = &self.loaded {
                    metrics.count_review(&WasmHost, 1);
                }
            }
        }
    }

    /// A new HTTP stream under this context's configuration.
    pub fn new_stream(&self) -> HttpFilter {
        HttpFilter::new(self.loaded.clone())
    }
}
