//! The `llm_ab.vm_memory_bytes` gauge: the linear memory of the filter's
//! live VMs, summed over the proxy (see [`crate::vm_memory`]).

use super::store::HostStore;
use crate::stats::VM_MEMORY_BYTES;
use crate::vm_memory::{claim_slot, publish, total};
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use std::cell::Cell;

/// Period of the refresh; a VM silent for two periods no longer counts.
pub const REFRESH_S: u64 = 5;

thread_local! {
    /// This VM's slot, claimed on its first refresh.
    static SLOT: Cell<Option<u32>> = const { Cell::new(None) };
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

/// Publishes this VM's memory and sets the gauge to the live total.
pub fn refresh(now_s: u64) {
    let slot = SLOT.with(Cell::get).or_else(|| {
        let slot = claim_slot(&HostStore)?;
        SLOT.with(|s| s.set(Some(slot)));
        Some(slot)
    });
    let Some(slot) = slot else {
        return;
    };
    publish(&HostStore, slot, now_s, linear_memory());
    if let Ok(id) = hostcalls::define_metric(MetricType::Gauge, VM_MEMORY_BYTES) {
        let _ = hostcalls::record_metric(id, total(&HostStore, now_s, 2 * REFRESH_S + 1));
    }
}
