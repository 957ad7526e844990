//! The pairs of one worker VM: each sampled request opens a pair per
//! shadow variant; the client's exchange brings control's side when it
//! ends and the copy's answer brings the shadow's, in either order. A pair
//! is complete with both. Bounded: at most [`MAX_PAIRS`] open at once, and
//! a pair that waits longer than its deadline is dropped.

use super::{ControlSide, ShadowSide};

/// Most open pairs per worker VM (each holds at most one answer copy of
/// [`super::MAX_ANSWER_COPY`] and one shadow text).
pub const MAX_PAIRS: usize = 256;

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
    experiment: usize,
    variant: usize,
    deadline_ms: u64,
    control: Option<ControlSide>,
    shadow: Option<ShadowSide>,
}

/// The open pairs of one VM.
#[derive(Debug, Default)]
pub struct Pairs {
    /// Open pairs by id (at most [`MAX_PAIRS`]: a scan is cheap, and a
    /// map's code is not).
    open: Vec<(u64, Open)>,
    next: u64,
    /// Complete pairs waiting to be scored by the root context.
    ready: Vec<u64>,
}

impl Pairs {
    /// Opens a pair for a copy to `variant`, to be complete by
    /// `deadline_ms`; `None` when [`MAX_PAIRS`] are open.
    pub fn open(&mut self, experiment: usize, variant: usize, deadline_ms: u64) -> Option<u64> {
        if self.open.len() >= MAX_PAIRS {
            return None;
        }
        self.next += 1;
        self.open.push((
            self.next,
            Open {
                experiment,
                variant,
                deadline_ms,
                control: None,
                shadow: None,
            },
        ));
        Some(self.next)
    }

    /// Open pairs.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no pair is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Control's side arrived; a pair it completes waits in
    /// [`Pairs::take_ready`] (scored off the client's path).
    pub fn control_done(&mut self, pair: u64, side: ControlSide) {
        if let Some(open) = self.get_mut(pair) {
            open.control = Some(side);
            if open.shadow.is_some() {
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
        self.open.retain(|(id, _)| *id != pair);
    }

    /// The pairs completed by control's side since the last call.
    pub fn take_ready(&mut self) -> Vec<Pair> {
        let ready = std::mem::take(&mut self.ready);
        ready.into_iter().filter_map(|id| self.take(id)).collect()
    }

    /// Drops every pair past its deadline at `now_ms`; returns how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let before = self.open.len();
        self.open.retain(|(_, o)| o.deadline_ms > now_ms);
        before - self.open.len()
    }

    fn get_mut(&mut self, pair: u64) -> Option<&mut Open> {
        self.open
            .iter_mut()
            .find(|(id, _)| *id == pair)
            .map(|(_, o)| o)
    }

    fn take(&mut self, pair: u64) -> Option<Pair> {
        let at = self.open.iter().position(|(id, _)| *id == pair)?;
        let (_, open) = self.open.swap_remove(at);
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
        assert_eq!(p.expire(49), 0);
        assert_eq!(p.expire(50), MAX_PAIRS);
        let id = p.open(0, 1, 10).unwrap();
        p.abandon(id);
        assert_eq!(p.len(), 0);
    }
}
