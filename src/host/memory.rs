//! The `llm_ab.vm_memory_bytes` gauge: the linear memory of every filter VM
//! of the proxy, summed.
//!
//! Envoy runs one VM per worker and all of them share the gauge, so each VM
//! adds the change of its own memory since it last reported; the gauge is
//! then the sum over live VMs. A VM whose last root context ends takes its
//! share back out, so reloads that replace VMs do not inflate it.

use crate::stats::VM_MEMORY_BYTES;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use std::cell::Cell;

thread_local! {
    /// Bytes this VM has added to the gauge.
    static REPORTED: Cell<u64> = const { Cell::new(0) };
    /// Live root contexts of this VM with a loaded configuration.
    static ROOTS: Cell<u32> = const { Cell::new(0) };
}

fn gauge() -> Option<u32> {
    hostcalls::define_metric(MetricType::Gauge, VM_MEMORY_BYTES).ok()
}

/// This VM's linear memory in bytes.
fn linear_memory() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size(0) as u64 * 65_536
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

/// Moves this VM's share of the gauge to `bytes`.
fn report(bytes: u64) {
    let before = REPORTED.with(Cell::get);
    if bytes == before {
        return;
    }
    if let Some(id) = gauge() {
        let delta =
            i64::try_from(bytes).unwrap_or(i64::MAX) - i64::try_from(before).unwrap_or(i64::MAX);
        if hostcalls::increment_metric(id, delta).is_ok() {
            REPORTED.with(|r| r.set(bytes));
        }
    }
}

/// A root context of this VM loaded its configuration.
pub fn root_started() {
    ROOTS.with(|r| r.set(r.get().saturating_add(1)));
    report(linear_memory());
}

/// Periodic update from a root context's tick.
pub fn refresh() {
    if ROOTS.with(Cell::get) > 0 {
        report(linear_memory());
    }
}

/// A root context that had started ended; the last one of the VM takes the
/// VM's share out of the gauge.
pub fn root_done() {
    let left = ROOTS.with(|r| {
        r.set(r.get().saturating_sub(1));
        r.get()
    });
    if left == 0 {
        report(0);
    }
}
