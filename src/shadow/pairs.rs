//! The pairs of one worker VM: each sampled request opens a pair per
//! shadow variant; the client's exchange brings control's side when it
//! ends and the copy's answer brings the shadow's, in either order. A pair
//! is complete with both. Bounded: at most [`MAX_PAIRS`] open at once
//! holding at most [`MAX_HELD_BYTES`] of answers, and a pair that waits
//! longer than its deadline is dropped.

use super::{ControlSide, ShadowSide};

/// Most open pairs per worker VM.
pub const MAX_PAIRS: usize = 4096;

/// Most bytes of control answers the open pairs of a VM hold (32 MiB):
/// with typical answers of a few KiB, [`MAX_PAIRS`] binds first.
pub const MAX_HELD_BYTES: usize = 32 * 1024 * 1024;

/// Both sides of a pair.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Experiment index.
    pub experiment: usize,
    /// Shadow variant index.
    pub variant: usize,
    /// What the client got.
    pub control: ControlSide,
    /// The copy's answer.
    pub shadow: ShadowSide,
}

#[derive(Debug)]
struct Open {
    id: u64,
    experiment: usize,
    variant: usize,
    deadline_ms: u64,
    control: Option<ControlSide>,
    shadow: Option<ShadowSide>,
}

/// The open pairs of one VM, in slots: a pair's id names its slot, so
/// every operation is O(1) whatever the traffic.
#[derive(Debug, Default)]
pub struct Pairs {
    slots: Vec<Option<Open>>,
    free: Vec<usize>,
    next: u64,
    open: usize,
    /// Bytes of the control answers held.
    held: usize,
    /// Complete pairs waiting to be scored by the root context.
    ready: Vec<u64>,
    /// When [`Pairs::expire`] last scanned.
    expired_at: u64,
}

impl Pairs {
    /// Opens a pair for a copy to `variant`, to be complete by
    /// `deadline_ms`; `None` when [`MAX_PAIRS`] are open or the answers
    /// held reach [`MAX_HELD_BYTES`].
    pub fn open(&mut self, experiment: usize, variant: usize, deadline_ms: u64) -> Option<u64> {
        if self.held >= MAX_HELD_BYTES {
            return None;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None if self.slots.len() < MAX_PAIRS => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return None,
        };
        self.next += 1;
        let id = self.next * MAX_PAIRS as u64 + slot as u64;
        self.slots[slot] = Some(Open {
            id,
            experiment,
            variant,
            deadline_ms,
            control: None,
            shadow: None,
        });
        self.open += 1;
        Some(id)
    }

    /// Open pairs.
    pub fn len(&self) -> usize {
        self.open
    }

    /// Whether no pair is open.
    pub fn is_empty(&self) -> bool {
        self.open == 0
    }

    /// Bytes of control answers held.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Control's side arrived; a pair it completes waits in
    /// [`Pairs::take_ready`] (scored off the client's path).
    pub fn control_done(&mut self, pair: u64, mut side: ControlSide) {
        if self.held + side.answer.len() > MAX_HELD_BYTES {
            // Over the bound: the pair keeps the outcome, not the answer
            // (its texts are not compared).
            side.answer = Vec::new();
            side.kept = false;
        }
        let bytes = side.answer.len();
        if let Some(open) = self.get_mut(pair) {
            open.control = Some(side);
            let complete = open.shadow.is_some();
            self.held += bytes;
            if complete {
                self.ready.push(pair);
            }
        }
    }

    /// The copy's side arrived; returns the pair when it is complete.
    pub fn shadow_done(&mut self, pair: u64, side: ShadowSide) -> Option<Pair> {
        let open = self.get_mut(pair)?;
        open.shadow = Some(side);
        if open.control.is_some() {
            return self.take(pair);
        }
        None
    }

    /// Drops a pair whose copy was never sent.
    pub fn abandon(&mut self, pair: u64) {
        let _ = self.remove(pair);
    }

    /// The pairs completed by control's side since the last call.
    pub fn take_ready(&mut self) -> Vec<Pair> {
        let ready = std::mem::take(&mut self.ready);
        ready.into_iter().filter_map(|id| self.take(id)).collect()
    }

    /// Drops every pair past its deadline at `now_ms`, at most once a
    /// second (it scans every slot); returns how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        if now_ms < self.expired_at + 1000 {
            return 0;
        }
        self.expired_at = now_ms;
        let expired: Vec<u64> = self
            .slots
            .iter()
            .flatten()
            .filter(|o| o.deadline_ms <= now_ms)
            .map(|o| o.id)
            .collect();
        for id in &expired {
            let _ = self.remove(*id);
        }
        expired.len()
    }

    fn get_mut(&mut self, pair: u64) -> Option<&mut Open> {
        let slot = (pair % MAX_PAIRS as u64) as usize;
        self.slots.get_mut(slot)?.as_mut().filter(|o| o.id == pair)
    }

    fn remove(&mut self, pair: u64) -> Option<Open> {
        let slot = (pair % MAX_PAIRS as u64) as usize;
        let entry = self.slots.get_mut(slot)?;
        if entry.as_ref().is_none_or(|o| o.id != pair) {
            return None;
        }
        let open = entry.take()?;
        self.free.push(slot);
        self.open -= 1;
        if let Some(c) = &open.control {
            self.held = self.held.saturating_sub(c.answer.len());
        }
        Some(open)
    }

    fn take(&mut self, pair: u64) -> Option<Pair> {
        let open = self.remove(pair)?;
        Some(Pair {
            experiment: open.experiment,
            variant: open.variant,
            control: open.control?,
            shadow: open.shadow?,
        })
    }
}

/// A VM's shadow state: the open pairs and the copies waiting for the
/// root context (a queued copy always has an open pair, so [`MAX_PAIRS`]
/// bounds the queue too).
#[derive(Debug, Default)]
pub struct Station {
    /// The open pairs.
    pub pairs: Pairs,
    /// Copies waiting to be sent.
    pub queue: Vec<super::Copy>,
}

impl Station {
    /// Opens a pair for `copy` and queues it; `None` when the pairs are full.
    pub fn queue(&mut self, mut copy: super::Copy, deadline_ms: u64) -> Option<u64> {
        let id = self
            .pairs
            .open(copy.experiment, copy.variant, deadline_ms)?;
        copy.pair = id;
        self.queue.push(copy);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Outcome;
    use crate::shadow::ShadowOutcome;

    fn control() -> ControlSide {
        ControlSide {
            trace_id: "t".into(),
            outcome: Outcome::Success,
            answer: Vec::new(),
            stream: false,
            kept: true,
        }
    }

    fn shadow() -> ShadowSide {
        ShadowSide {
            outcome: ShadowOutcome::Success,
            status: 200,
            tokens: crate::usage::Tokens::NONE,
            cost_usd: 0.0,
            latency_ms: 1,
            text: String::new(),
            schema_pass: None,
        }
    }

    #[test]
    fn a_pair_completes_in_either_order_once() {
        let mut p = Pairs::default();
        let a = p.open(0, 1, 100).unwrap();
        let b = p.open(0, 1, 100).unwrap();
        assert_ne!(a, b);
        // Shadow first: complete when control arrives, scored from the queue.
        assert!(p.shadow_done(a, shadow()).is_none());
        p.control_done(a, control());
        assert_eq!(p.take_ready().len(), 1);
        assert!(p.take_ready().is_empty());
        // Control first: complete with the shadow's answer.
        p.control_done(b, control());
        assert!(p.take_ready().is_empty());
        assert!(p.shadow_done(b, shadow()).is_some());
        assert!(p.is_empty());
        // A side for a pair that is gone is ignored.
        assert!(p.shadow_done(b, shadow()).is_none());
        p.control_done(a, control());
        assert!(p.take_ready().is_empty());
    }

    #[test]
    fn pairs_are_bounded_and_expire() {
        let mut p = Pairs::default();
        for _ in 0..MAX_PAIRS {
            assert!(p.open(0, 1, 50).is_some());
        }
        assert!(p.open(0, 1, 50).is_none(), "full");
        assert_eq!(p.expire(999), 0, "scanned once a second");
        assert_eq!(p.expire(1_000), MAX_PAIRS);
        let soon = p.open(0, 1, 1_500).unwrap();
        assert_eq!(p.expire(1_999), 0, "a second has not passed since");
        assert_eq!(p.expire(2_000), 1);
        assert!(p.shadow_done(soon, shadow()).is_none());
        let id = p.open(0, 1, 10).unwrap();
        p.abandon(id);
        assert_eq!(p.len(), 0);
        // A stale id (its slot reused) finds nothing.
        let reused = p.open(0, 1, 10).unwrap();
        assert_ne!(reused, id);
        p.control_done(id, control());
        assert!(p.shadow_done(id, shadow()).is_none());
        // Answers held are counted, and given back with their pair.
        let mut big = control();
        big.answer = vec![b'x'; MAX_HELD_BYTES];
        p.control_done(reused, big);
        assert_eq!(p.held_bytes(), MAX_HELD_BYTES);
        assert!(p.open(0, 1, 10).is_none(), "the answers held are the bound");
        assert!(p.shadow_done(reused, shadow()).is_some());
        assert_eq!(p.held_bytes(), 0);
        // An answer that would pass the bound is not kept; the pair is.
        let a = p.open(0, 1, 10).unwrap();
        let b = p.open(0, 1, 10).unwrap();
        let mut big = control();
        big.answer = vec![b'x'; MAX_HELD_BYTES - 10];
        p.control_done(a, big);
        let mut more = control();
        more.answer = vec![b'y'; 11];
        p.control_done(b, more);
        let pair = p.shadow_done(b, shadow()).unwrap();
        assert!(!pair.control.kept && pair.control.answer.is_empty());
    }
}
