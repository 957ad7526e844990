//! The exchange's part of shadow traffic: when control serves a sampled
//! request, a copy per shadow variant is queued for the root context (the
//! client's request goes on at once, whatever becomes of the copies); the
//! answer the client gets is kept (up to a cap), and handed over with the
//! outcome when the exchange ends. Nothing here waits for a copy.

use super::{Exchange, Host, Matched};
use crate::config::Plan;
use crate::metrics::Metrics;
use crate::shadow::{self, Copy, Skip};

/// How long a pair may wait for its two sides beyond the copy's timeout
/// (control may answer later than the copy: a long stream).
const PAIR_GRACE_MS: u64 = 10 * 60 * 1000;

impl<H: Host> Exchange<H> {
    /// Whether the request is one the experiment shadows: served by
    /// control (not a breaker probe) in an experiment with a shadow block.
    pub(super) fn shadows(plan: &Plan, m: Matched) -> bool {
        plan.experiments
            .get(m.experiment)
            .is_some_and(|e| e.shadow.is_some() && m.variant == e.layout.control() && !m.probe)
    }

    /// Queues a copy of the forwarded request per shadow variant when the
    /// trace id is sampled (`bytes`: the body as the client sent it).
    pub(super) fn queue_shadow_copies(
        &mut self,
        plan: &Plan,
        metrics: &Metrics,
        m: Matched,
        bytes: &[u8],
    ) {
        let Some(e) = plan.experiments.get(m.experiment) else {
            return;
        };
        let Some(s) = e.shadow.as_ref().filter(|_| Self::shadows(plan, m)) else {
            return;
        };
        let sampled = shadow::sampled(&self.trace_id, e.shadow_ppm_at(self.start_ms / 1000));
        let deadline_ms = self.start_ms + s.timeout_ms + PAIR_GRACE_MS;
        for &variant in &s.variants {
            if !sampled {
                metrics.count_shadow_skipped(&self.host, m.experiment, variant, Skip::NotSampled);
                continue;
            }
            let copy = Copy {
                pair: 0,
                experiment: m.experiment,
                variant,
                api: self.api,
                path: self.path.clone(),
                headers: self.shadow_headers.clone(),
                body: bytes.to_vec(),
            };
            match self.host.queue_shadow(copy, deadline_ms) {
                Some(pair) => self.shadow_pairs.push(pair),
                None => {
                    metrics.count_shadow_skipped(&self.host, m.experiment, variant, Skip::Capacity)
                }
            }
        }
    }

    /// Keeps what the client got for the copies to be scored against.
    pub(super) fn keep_shadow_answer(&mut self, bytes: &[u8]) {
        if self.shadow_pairs.is_empty() {
            return;
        }
        let room = shadow::MAX_ANSWER_COPY.saturating_sub(self.shadow_answer.len());
        self.shadow_answer
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Hands control's side of each pair over, once the outcome is known.
    pub(super) fn hand_over_shadow(&mut self, trace_id: &str, outcome: crate::record::Outcome) {
        let pairs = std::mem::take(&mut self.shadow_pairs);
        let answer = std::mem::take(&mut self.shadow_answer);
        let last = pairs.len().saturating_sub(1);
        let mut answer = Some(answer);
        for (i, pair) in pairs.into_iter().enumerate() {
            // The last pair takes the answer; the others get a copy.
            let bytes = if i == last {
                answer.take().unwrap_or_default()
            } else {
                answer.clone().unwrap_or_default()
            };
            self.host.shadow_control_done(
                pair,
                shadow::ControlSide {
                    trace_id: trace_id.to_string(),
                    outcome,
                    answer: bytes,
                    stream: self.info.stream,
                    kept: true,
                },
            );
        }
    }
}
