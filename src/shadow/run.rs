//! The root context's part of shadow traffic, over a [`SideCall`] host: send
//! the queued copies (budget first), read each copy's answer, score the
//! complete pairs, count them and POST their records to the sink. Runs in
//! the root context's tick and call callbacks, never in a client's exchange.

use super::pairs::{Pair, Station};
use super::{Built, Copy, ShadowOutcome, Skip};
use crate::budget::{self, Decision, Reservation};
use crate::config::Plan;
use crate::exchange::SideCall;
use crate::metrics::Metrics;
use crate::record::Outcome;

/// Path of a shadow record POSTed to the sink.
pub const RECORD_PATH: &str = "/llm-ab/shadow";

/// Most shadow records in flight to the sink per VM; more are dropped
/// (and counted): a slow sink never grows the VM's memory.
pub const MAX_RECORDS_IN_FLIGHT: usize = 512;

/// Header marking a copy (backends and logs can tell copies apart).
pub const SHADOW_HEADER: &str = "x-llm-shadow";

/// A copy on its way.
#[derive(Debug)]
pub struct InFlight {
    pair: u64,
    experiment: usize,
    variant: usize,
    built: Built,
    sent_ms: u64,
    timeout_ms: u64,
    reservation: Option<Reservation>,
}

/// The calls the root context has under way: copies and sink posts, each
/// list sorted by token (Envoy numbers a VM's calls in order, so an insert
/// is almost always at the end, and a lookup is a binary search).
#[derive(Debug, Default)]
pub struct Calls {
    copies: Vec<(u32, InFlight)>,
    records: Vec<u32>,
}

/// What a call's answer was, when it was one of ours.
pub enum Answered {
    /// A copy's answer: read it with [`copy_answered`].
    Copy(InFlight),
    /// The sink's answer to a record.
    Record,
    /// Not a shadow call (a review copy's answer).
    Other,
}

impl Calls {
    /// Whose call `token` was (and forgets it).
    pub fn take(&mut self, token: u32) -> Answered {
        if let Ok(at) = self.copies.binary_search_by_key(&token, |(t, _)| *t) {
            return Answered::Copy(self.copies.remove(at).1);
        }
        if let Ok(at) = self.records.binary_search(&token) {
            self.records.remove(at);
            return Answered::Record;
        }
        Answered::Other
    }

    fn add_copy(&mut self, token: u32, flight: InFlight) {
        let at = self.copies.partition_point(|(t, _)| *t < token);
        self.copies.insert(at, (token, flight));
    }

    fn add_record(&mut self, token: u32) {
        let at = self.records.partition_point(|t| *t < token);
        self.records.insert(at, token);
    }

    /// Calls under way.
    pub fn len(&self) -> usize {
        self.copies.len() + self.records.len()
    }

    /// Whether no call is under way.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The shadow-budget store key of an experiment (tokens per minute, shared
/// by every worker of the proxy).
fn budget_key(plan: &Plan, experiment: &str) -> String {
    let mut key = String::from("llm_ab.shadow_budget.");
    key.push_str(&plan.config_hash.to_string());
    key.push('.');
    key.push_str(experiment);
    key
}

/// Sends the copies queued since the last tick.
pub fn send_queued(
    host: &impl SideCall,
    plan: &Plan,
    metrics: &Metrics,
    copies: Vec<Copy>,
    station: &mut Station,
    calls: &mut Calls,
    now_ms: u64,
) {
    for copy in copies {
        let (pair, e, v) = (copy.pair, copy.experiment, copy.variant);
        match send(host, plan, &copy, now_ms) {
            Ok(flight) => {
                calls.add_copy(flight.0, flight.1);
            }
            Err(why) => {
                metrics.count_shadow_skipped(host, e, v, why);
                station.pairs.abandon(pair);
            }
        }
    }
}

fn send(
    host: &impl SideCall,
    plan: &Plan,
    copy: &Copy,
    now_ms: u64,
) -> Result<(u32, InFlight), Skip> {
    let e = plan
        .experiments
        .get(copy.experiment)
        .ok_or(Skip::Dispatch)?;
    let shadow = e.shadow.as_ref().ok_or(Skip::Dispatch)?;
    let v = e.variants.get(copy.variant).ok_or(Skip::Dispatch)?;
    let built = super::build_copy(plan, copy).ok_or(Skip::Dispatch)?;
    let reservation = match shadow.max_tokens_per_minute {
        None => None,
        Some(limit) => {
            let tokens = built.prompt_tokens_est + built.output_cap.unwrap_or(0);
            let key = budget_key(plan, &e.id);
            match budget::reserve(host, &key, limit, tokens, now_ms / 1000) {
                Decision::Granted(r) => Some(r),
                Decision::Exceeded { .. } => return Err(Skip::Budget),
                Decision::Contended => None,
            }
        }
    };
    let mut headers =
        crate::exchange::side_call_headers(&copy.path, "llm-ab-shadow", &e.id, v, &copy.headers);
    headers.push((SHADOW_HEADER, "1"));
    let timeout_ms = shadow.timeout_ms;
    match host.dispatch(&v.cluster, &headers, &built.body, timeout_ms) {
        Some(token) => Ok((
            token,
            InFlight {
                pair: copy.pair,
                experiment: copy.experiment,
                variant: copy.variant,
                built,
                sent_ms: now_ms,
                timeout_ms,
                reservation,
            },
        )),
        None => {
            if let Some(r) = reservation {
                budget::settle(host, &r, 0);
            }
            Err(Skip::Dispatch)
        }
    }
}

/// A copy answered (or failed: `status` 0): reads the answer, settles its
/// budget, feeds the SLO during a shadow step, and scores the pair when
/// control's side is in.
#[allow(clippy::too_many_arguments)]
pub fn copy_answered(
    host: &impl SideCall,
    plan: &Plan,
    metrics: &Metrics,
    station: &mut Station,
    calls: &mut Calls,
    flight: InFlight,
    answer: &super::Answer<'_>,
    now_ms: u64,
) {
    let side = super::read_answer(
        plan,
        flight.experiment,
        flight.variant,
        &flight.built,
        answer,
        flight.timeout_ms,
    );
    if let Some(r) = &flight.reservation {
        budget::settle(host, r, side.tokens.input + side.tokens.output);
    }
    let (e, v) = (flight.experiment, flight.variant);
    if side.outcome == ShadowOutcome::Timeout {
        metrics.count_shadow_skipped(host, e, v, Skip::Timeout);
    }
    metrics.record_shadow_call(host, e, v, &side);
    let sample = crate::slo::Sample {
        error: matches!(side.outcome, ShadowOutcome::Error | ShadowOutcome::Timeout),
        fallback: false,
        schema: side.schema_pass,
        latency_ms: side.latency_ms,
    };
    crate::exchange::shadow_health(host, plan, metrics, e, v, sample, now_ms / 1000);
    if let Some(pair) = station.pairs.shadow_done(flight.pair, side) {
        finish_pair(host, plan, metrics, calls, &pair);
    }
}

/// Milliseconds since the copy was sent.
pub fn elapsed_ms(flight: &InFlight, now_ms: u64) -> u64 {
    now_ms.saturating_sub(flight.sent_ms)
}

/// Scores the pairs control's side completed, and drops the expired ones.
pub fn finish_ready(
    host: &impl SideCall,
    plan: &Plan,
    metrics: &Metrics,
    station: &mut Station,
    calls: &mut Calls,
    now_ms: u64,
) {
    for pair in station.pairs.take_ready() {
        finish_pair(host, plan, metrics, calls, &pair);
    }
    station.pairs.expire(now_ms);
}

/// Counts a scored pair and POSTs its record to the sink.
fn finish_pair(
    host: &impl SideCall,
    plan: &Plan,
    metrics: &Metrics,
    calls: &mut Calls,
    pair: &Pair,
) {
    let scored = super::score_pair(&pair.control, &pair.shadow);
    metrics.record_shadow_pair(
        host,
        pair.experiment,
        pair.variant,
        pair.control.outcome == Outcome::Success,
        pair.shadow.outcome == ShadowOutcome::Success,
        scored.similarity,
    );
    let Some(sink) = plan
        .experiments
        .get(pair.experiment)
        .and_then(|e| e.shadow.as_ref())
        .and_then(|s| s.sink_cluster.as_deref())
    else {
        return;
    };
    if calls.records.len() >= MAX_RECORDS_IN_FLIGHT {
        metrics.count_shadow_record(host, 2);
        return;
    }
    let body = super::record::shadow_record(plan, pair, &scored);
    let headers = [
        (":method", "POST"),
        (":path", RECORD_PATH),
        (":authority", "llm-ab-shadow-sink"),
        ("content-type", "application/json"),
    ];
    match host.dispatch(sink, &headers, &body, 5_000) {
        Some(token) => {
            calls.add_record(token);
        }
        None => metrics.count_shadow_record(host, 1),
    }
}
