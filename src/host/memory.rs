//! The `llm_ab.vm_memory_bytes` gauge: the linear memory of the filter's
//! live VMs, summed over the proxy (see [`crate::vm_memory`]).

use super::abi;
use super::store::HostStore;
use crate::stats::VM_MEMORY_BYTES;
use crate::vm_memory::{claim_slot, publish, total, Slot};
use std::cell::Cell;

/// Period of the refresh.
pub const REFRESH_S: u64 = 5;

/// A VM silent this long no longer counts (two refreshes and a second).
const FRESH_S: u64 = 2 * REFRESH_S + 1;

thread_local! {
    /// This VM's slot, claimed on its first refresh.
    static SLOT: Cell<Option<Slot>> = const { Cell::new(None) };
}

/// This VM's linear memory in bytes (`host` is compiled for wasm32 only).
fn linear_memory() -> u64 {
    core::arch::wasm32::memory_size(0) as u64 * 65_536
}

/// Publishes this VM's memory and sets the gauge to the live total;
/// `token_ns` tells this VM apart (its first refresh time, in ns).
pub fn refresh(now_s: u64, token_ns: u64) {
    let bytes = linear_memory();
    let mut published = false;
    for _ in 0..2 {
        let slot = match SLOT.with(Cell::get) {
            Some(slot) => slot,
            None => match claim_slot(&HostStore, token_ns, now_s, FRESH_S) {
                Some(slot) => slot,
                None => return,
            },
        };
        SLOT.with(|s| s.set(Some(slot)));
        if publish(&HostStore, slot, now_s, FRESH_S, bytes) {
            published = true;
            break;
        }
        // Another VM holds this slot: take another one.
        SLOT.with(|s| s.set(None));
    }
    if !published {
        return;
    }
    if let Ok(id) = abi::define_metric(abi::GAUGE, VM_MEMORY_BYTES) {
        abi::record_metric(id, total(&HostStore, now_s, FRESH_S));
    }
}
