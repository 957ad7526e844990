//! The memory of the filter's live VMs, summed through shared data.
//!
//! Envoy runs one VM per worker (and a few on the main thread) and may
//! destroy a VM without telling it, so a VM cannot take its own share out
//! of a total. Instead each VM holds a slot and writes
//! `"<second>:<bytes>:<token>"` there on every refresh; the total counts the
//! slots written recently, so a VM that is gone simply stops counting, and
//! its slot is reused by the next VM that needs one.

use crate::shared::{update, SharedStore};

/// Shared-data key of the number of slots ever opened.
const SLOTS_KEY: &str = "llm_ab.vm_memory.slots";

/// Most slots read (slots are reused, so this is a bound on live VMs).
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

/// A slot's entry: when it was written, the bytes, and the writer's token.
fn entry(value: &[u8]) -> Option<(u64, u64, u64)> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.split(':');
    let at = parts.next()?.parse().ok()?;
    let bytes = parts.next()?.parse().ok()?;
    let token = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
    Some((at, bytes, token))
}

fn is_fresh(at: u64, now_s: u64, fresh_s: u64) -> bool {
    at.abs_diff(now_s) <= fresh_s
}

fn slot_count(store: &dyn SharedStore) -> u32 {
    u32::try_from(parse_u64(store.get(SLOTS_KEY).0.as_deref()))
        .unwrap_or(MAX_SLOTS)
        .min(MAX_SLOTS)
}

/// One VM's place in the shared total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Slot number.
    pub index: u32,
    /// The VM's token (unique per VM, e.g. its creation time in ns).
    pub token: u64,
}

/// Takes a slot for the VM with `token`: a stale one when there is one
/// (compare-and-swap on the existing entry), else a new one.
pub fn claim_slot(store: &dyn SharedStore, token: u64, now_s: u64, fresh_s: u64) -> Option<Slot> {
    let mine = format!("{now_s}:0:{token}");
    for index in 0..slot_count(store) {
        let (value, cas) = store.get(&slot_key(index));
        let stale = value
            .as_deref()
            .and_then(entry)
            .is_none_or(|(at, _, _)| !is_fresh(at, now_s, 2 * fresh_s));
        if stale && cas.is_some() && store.set(&slot_key(index), mine.as_bytes(), cas).is_ok() {
            return Some(Slot { index, token });
        }
    }
    let index = update(store, SLOTS_KEY, |value| {
        let slot = u32::try_from(parse_u64(value)).ok()?;
        let next = slot.checked_add(1).filter(|n| *n <= MAX_SLOTS)?;
        Some((next.to_string().into_bytes(), slot))
    })?;
    let _ = store.set(&slot_key(index), mine.as_bytes(), None);
    Some(Slot { index, token })
}

/// Writes this VM's memory at `now_s`. Returns `false` when another VM
/// wrote the slot recently (two VMs took it at once): claim a new one.
pub fn publish(store: &dyn SharedStore, slot: Slot, now_s: u64, fresh_s: u64, bytes: u64) -> bool {
    let key = slot_key(slot.index);
    let (value, cas) = store.get(&key);
    let taken = value
        .as_deref()
        .and_then(entry)
        .is_some_and(|(at, _, token)| token != slot.token && is_fresh(at, now_s, fresh_s));
    if taken {
        return false;
    }
    let value = format!("{now_s}:{bytes}:{}", slot.token);
    store.set(&key, value.as_bytes(), cas).is_ok()
}

/// Memory of the VMs that published within `fresh_s` seconds of `now_s`.
pub fn total(store: &dyn SharedStore, now_s: u64, fresh_s: u64) -> u64 {
    (0..slot_count(store))
        .filter_map(|slot| {
            let (at, bytes, _) = entry(&store.get(&slot_key(slot)).0?)?;
            is_fresh(at, now_s, fresh_s).then_some(bytes)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::tests::MemStore;

    const FRESH: u64 = 11;

    #[test]
    fn live_vms_are_summed_and_silent_ones_drop_out() {
        let store = MemStore::default();
        let a = claim_slot(&store, 1, 100, FRESH).unwrap();
        let b = claim_slot(&store, 2, 100, FRESH).unwrap();
        assert_eq!((a.index, b.index), (0, 1));
        assert!(publish(&store, a, 100, FRESH, 1_114_112));
        assert!(publish(&store, b, 100, FRESH, 1_179_648));
        assert_eq!(total(&store, 100, FRESH), 2_293_760);
        // b is destroyed without a word; a keeps publishing.
        assert!(publish(&store, a, 110, FRESH, 1_179_648));
        assert_eq!(total(&store, 110, FRESH), 2_359_296);
        assert_eq!(total(&store, 112, FRESH), 1_179_648);
        // Once b's slot is stale, the next VM reuses it.
        let c = claim_slot(&store, 3, 130, FRESH).unwrap();
        assert_eq!(c.index, 1);
        assert!(publish(&store, a, 130, FRESH, 1_179_648));
        assert!(publish(&store, c, 130, FRESH, 1_114_112));
        assert_eq!(total(&store, 130, FRESH), 2_293_760);
    }

    #[test]
    fn two_vms_on_one_slot_part_ways() {
        // Both read "no slots yet" and both took slot 0 (Envoy's first
        // write of a key cannot be compare-and-swapped).
        let store = MemStore::default();
        let a = Slot { index: 0, token: 1 };
        let b = Slot { index: 0, token: 2 };
        store.set(SLOTS_KEY, b"1", None).unwrap();
        assert!(publish(&store, a, 100, FRESH, 10));
        assert!(
            !publish(&store, b, 101, FRESH, 20),
            "b sees a's fresh entry"
        );
        let b = claim_slot(&store, 2, 101, FRESH).unwrap();
        assert_eq!(b.index, 1);
        assert!(publish(&store, b, 101, FRESH, 20));
        assert_eq!(total(&store, 101, FRESH), 30);
    }

    #[test]
    fn a_clock_step_back_keeps_entries() {
        let store = MemStore::default();
        let a = claim_slot(&store, 1, 100, FRESH).unwrap();
        assert!(publish(&store, a, 100, FRESH, 10));
        assert_eq!(total(&store, 95, FRESH), 10);
    }

    #[test]
    fn garbage_in_the_store_counts_as_nothing() {
        let store = MemStore::default();
        assert_eq!(total(&store, 5, FRESH), 0);
        store.set(SLOTS_KEY, b"3", None).unwrap();
        store.set(&slot_key(0), b"nonsense", None).unwrap();
        store.set(&slot_key(1), b"4:x", None).unwrap();
        store.set(&slot_key(2), b"99:10", None).unwrap(); // far in the future
        assert_eq!(total(&store, 5, FRESH), 0);
        // A garbage slot is free to take.
        assert_eq!(claim_slot(&store, 7, 5, FRESH).map(|s| s.index), Some(0));
        store.set(SLOTS_KEY, b"-1", None).unwrap();
        assert_eq!(total(&store, 5, FRESH), 0);
    }
}
