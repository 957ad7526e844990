//! The memory of the filter's live VMs, summed through shared data.
//!
//! Envoy runs one VM per worker (and a few on the main thread) and may
//! destroy a VM without telling it, so a VM cannot take its own share out
//! of a total. Instead each VM claims a slot once and writes
//! `"<second>:<bytes>"` there on every tick; the total counts the slots
//! written recently, and a VM that is gone simply stops counting.

use crate::shared::{update, SharedStore};

/// Shared-data key of the number of slots claimed so far.
const SLOTS_KEY: &str = "llm_ab.vm_memory.slots";

/// Most slots read when summing (one per VM ever created).
const MAX_SLOTS: u32 = 4096;

fn slot_key(slot: u32) -> String {
    format!("llm_ab.vm_memory.{slot}")
}

fn parse_u64(bytes: Option<&[u8]>) -> u64 {
    bytes
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

/// Claims the next free slot for a new VM; `None` when the store refused.
pub fn claim_slot(store: &dyn SharedStore) -> Option<u32> {
    update(store, SLOTS_KEY, |value| {
        let slot = u32::try_from(parse_u64(value)).unwrap_or(u32::MAX);
        let next = slot.checked_add(1)?;
        Some((next.to_string().into_bytes(), slot))
    })
}

/// Writes this VM's memory at `now_s`.
pub fn publish(store: &dyn SharedStore, slot: u32, now_s: u64, bytes: u64) {
    let _ = store.set(&slot_key(slot), format!("{now_s}:{bytes}").as_bytes(), None);
}

/// Memory of the VMs that published within the last `fresh_s` seconds.
pub fn total(store: &dyn SharedStore, now_s: u64, fresh_s: u64) -> u64 {
    let slots = u32::try_from(parse_u64(store.get(SLOTS_KEY).0.as_deref()))
        .unwrap_or(MAX_SLOTS)
        .min(MAX_SLOTS);
    (0..slots)
        .filter_map(|slot| {
            let value = store.get(&slot_key(slot)).0?;
            let text = std::str::from_utf8(&value).ok()?;
            let (at, bytes) = text.split_once(':')?;
            let at: u64 = at.parse().ok()?;
            let fresh = at <= now_s && now_s - at <= fresh_s;
            fresh.then(|| bytes.parse::<u64>().ok()).flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::tests::MemStore;

    #[test]
    fn live_vms_are_summed_and_silent_ones_drop_out() {
        let store = MemStore::default();
        let a = claim_slot(&store).unwrap();
        let b = claim_slot(&store).unwrap();
        assert_eq!((a, b), (0, 1));
        publish(&store, a, 100, 1_114_112);
        publish(&store, b, 100, 1_179_648);
        assert_eq!(total(&store, 100, 11), 2_293_760);
        // b is destroyed without a word; a keeps publishing.
        publish(&store, a, 110, 1_179_648);
        assert_eq!(total(&store, 110, 11), 2_359_296);
        assert_eq!(total(&store, 112, 11), 1_179_648);
        // A VM created later gets its own slot.
        let c = claim_slot(&store).unwrap();
        publish(&store, c, 112, 1_114_112);
        assert_eq!(c, 2);
        assert_eq!(total(&store, 112, 11), 2_293_760);
    }

    #[test]
    fn garbage_in_the_store_counts_as_nothing() {
        let store = MemStore::default();
        assert_eq!(total(&store, 5, 11), 0);
        store.set(SLOTS_KEY, b"3", None).unwrap();
        store.set(&slot_key(0), b"nonsense", None).unwrap();
        store.set(&slot_key(1), b"4:x", None).unwrap();
        store.set(&slot_key(2), b"99:10", None).unwrap(); // from the future
        assert_eq!(total(&store, 5, 11), 0);
        store.set(SLOTS_KEY, b"-1", None).unwrap();
        assert_eq!(claim_slot(&store), Some(0));
    }
}
