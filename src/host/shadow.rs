//! The VM's shadow state ([`Station`], [`Calls`]) and the root context's
//! shadow work over Envoy: exchanges queue copies and hand control's side
//! over; the root context's tick sends the copies and scores the pairs
//! control's side completed, and its call callback reads the copies'
//! answers (see [`crate::shadow::run`], where all of it is decided).

use super::abi;
use super::wasm_host::WasmHost;
use crate::config::Plan;
use crate::exchange::Host;
use crate::exchange::SideCall;
use crate::metrics::Metrics;
use crate::shadow::pairs::Station;
use crate::shadow::run::{self, Answered, Calls};
use crate::shadow::{Answer, ControlSide, Copy, MAX_SHADOW_ANSWER};
use std::cell::RefCell;

thread_local! {
    /// This VM's pairs and queued copies (one VM per worker thread).
    static STATION: RefCell<Station> = RefCell::new(Station::default());
    /// The root context's calls under way.
    static CALLS: RefCell<Calls> = RefCell::new(Calls::default());
}

/// Queues a copy (an exchange's call); `None` when the pairs are full.
pub fn queue(copy: Copy, deadline_ms: u64) -> Option<u64> {
    STATION.with(|s| s.try_borrow_mut().ok()?.queue(copy, deadline_ms))
}

/// Hands control's side of a pair over (an exchange's call).
pub fn control_done(pair: u64, side: ControlSide) {
    STATION.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            s.pairs.control_done(pair, side);
        }
    });
}

/// Forgets every pair, queued copy and call: a new configuration numbers
/// its experiments and variants afresh (the answers of calls still out
/// are then ignored).
pub fn reset() {
    let _ = with_state(|station, calls| {
        *station = Station::default();
        *calls = Calls::default();
    });
}

impl SideCall for WasmHost {
    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Option<u32> {
        super::dispatch::http_call(cluster, headers, body, timeout_ms)
    }
}

/// Runs `f` on the VM's station and calls (`None` if either is borrowed
/// already: a re-entrant callback is skipped, never a panic).
fn with_state<T>(f: impl FnOnce(&mut Station, &mut Calls) -> T) -> Option<T> {
    STATION.with(|s| {
        CALLS.with(|c| {
            let (Ok(mut station), Ok(mut calls)) = (s.try_borrow_mut(), c.try_borrow_mut()) else {
                return None;
            };
            Some(f(&mut station, &mut calls))
        })
    })
}

/// The root context's tick: sends the queued copies, scores the pairs
/// control's side completed, drops expired ones; `true` while pairs are
/// open (copies are flowing: the tick should stay short).
pub fn tick(plan: &Plan, metrics: &Metrics) -> bool {
    let now_ms = WasmHost.now_nanos() / 1_000_000;
    with_state(|station, calls| {
        let copies = std::mem::take(&mut station.queue);
        run::send_queued(&WasmHost, plan, metrics, copies, station, calls, now_ms);
        run::finish_ready(&WasmHost, plan, metrics, station, calls, now_ms);
        !station.pairs.is_empty()
    })
    .unwrap_or(false)
}

/// The `:status` of the side call whose answer is being delivered.
pub fn call_status() -> Option<u32> {
    abi::header(abi::CALL_RESPONSE_HEADERS, ":status").and_then(|s| s.parse::<u32>().ok())
}

/// A call of the root context answered: `false` when it was not a shadow
/// call (a review copy's).
pub fn answered(plan: &Plan, metrics: &Metrics, token: u32, body_size: usize) -> bool {
    let now_ms = WasmHost.now_nanos() / 1_000_000;
    with_state(|station, calls| {
        let status = call_status;
        match calls.take(token) {
            Answered::Other => false,
            Answered::Record => {
                let ok = status().is_some_and(|s| (200..300).contains(&s));
                metrics.count_shadow_record(&WasmHost, if ok { 0 } else { 1 });
                true
            }
            Answered::Copy(flight) => {
                let encoding = abi::header(abi::CALL_RESPONSE_HEADERS, "content-encoding");
                let body = abi::buffer(abi::CALL_RESPONSE_BODY, body_size.min(MAX_SHADOW_ANSWER));
                let answer = Answer {
                    status: status().unwrap_or(0),
                    content_encoding: encoding.as_deref(),
                    body: &body,
                    latency_ms: run::elapsed_ms(&flight, now_ms),
                };
                run::copy_answered(
                    &WasmHost, plan, metrics, station, calls, flight, &answer, now_ms,
                );
                true
            }
        }
    })
    .unwrap_or(false)
}
