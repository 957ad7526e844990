//! Shadow traffic: a sampled copy of a request control serves goes to each
//! shadow variant, off the client's path; the copy's answer is read like
//! any answer (outcome, guardrails, usage, cost) and scored against the
//! answer the client got (similarity, exact match, JSON equality). Nobody
//! sees a copy's answer.
//!
//! The exchange decides what is copied ([`sampled`], [`Copy`]) and hands
//! control's side over when it ends ([`ControlSide`]); the root context of
//! the same VM sends the copies ([`build_copy`]), reads their answers
//! ([`read_answer`]), pairs both sides ([`pairs::Pairs`]), scores them
//! ([`score`]) and writes the shadow record ([`record`]). Everything here is
//! pure: the proxy-wasm glue is `src/host/shadow.rs`.

pub mod pairs;
pub mod record;
pub mod run;
pub mod score;

use crate::config::{Experiment, Plan};
use crate::dialect::Api;
use crate::record::Outcome;
use crate::usage::Tokens;

/// Parts per million: the unit of sampling rates.
pub const PPM: u32 = 1_000_000;

/// Most bytes of the client's answer kept to score a copy against (64 KiB;
/// the open pairs of a VM hold at most [`pairs::MAX_HELD_BYTES`]).
pub const MAX_ANSWER_COPY: usize = 64 * 1024;

/// Most bytes of a copy's answer read (1 MiB): a longer answer cannot be
/// parsed whole and counts as an error.
pub const MAX_SHADOW_ANSWER: usize = 1024 * 1024;

/// Default timeout of a copy.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// A compiled `shadow` block of an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Shadow {
    /// Indices of the variants that get copies.
    pub variants: Vec<usize>,
    /// Share of control's requests copied, parts per million.
    pub sample_ppm: u32,
    /// Cluster of the shadow records, when any.
    pub sink_cluster: Option<String>,
    /// Most tokens the copies spend per minute on one proxy.
    pub max_tokens_per_minute: Option<u64>,
    /// Timeout of one copy.
    pub timeout_ms: u64,
}

impl Experiment {
    /// Share of control's requests copied at `now_s` (parts per million):
    /// a shadow step's rate while the rollout is in one, else the shadow
    /// block's `sample_rate`; 0 without a shadow block.
    pub fn shadow_ppm_at(&self, now_s: u64) -> u32 {
        let Some(s) = &self.shadow else {
            return 0;
        };
        self.rollout
            .as_ref()
            .and_then(|r| r.shadow_ppm_at(now_s))
            .unwrap_or(s.sample_ppm)
    }
}

/// Whether the request with `trace_id` is copied at rate `ppm`: a pure
/// function of the trace id, so every proxy of a fleet samples the same
/// requests (and a retried request with the same trace id again).
pub fn sampled(trace_id: &str, ppm: u32) -> bool {
    if ppm >= PPM {
        return true;
    }
    ppm > 0 && crate::assign::murmur3_32(trace_id.as_bytes(), 0x5bd1_e995) % PPM < ppm
}

/// A copy of a request waiting for the root context to send it.
#[derive(Debug, Clone)]
pub struct Copy {
    /// The pair it belongs to.
    pub pair: u64,
    /// Experiment index.
    pub experiment: usize,
    /// Shadow variant index.
    pub variant: usize,
    /// The API of the request.
    pub api: Api,
    /// Request path.
    pub path: String,
    /// The client's credential and API-version headers (in memory only).
    pub headers: Vec<(String, String)>,
    /// The request body as the client sent it (the variant's edits and
    /// redaction are applied when the copy is built).
    pub body: Vec<u8>,
}

/// The copy as sent: its body and what the request asks of the answer.
#[derive(Debug)]
pub struct Built {
    /// The body sent to the shadow variant.
    pub body: Vec<u8>,
    /// Prompt token estimate.
    pub prompt_tokens_est: u64,
    /// Output cap of the copy, when any.
    pub output_cap: Option<u64>,
    /// The output schema the request asks for, when any.
    pub schema: Option<crate::json::Value>,
}

/// Builds the body of `copy` for its shadow variant: the variant's model
/// and output cap, never streaming (so the answer comes whole and can be
/// compared), and redacted as the forwarded request was. `None` when the
/// body cannot be prepared or redaction cannot scan it (nothing is ever
/// sent unredacted).
pub fn build_copy(plan: &Plan, copy: &Copy) -> Option<Built> {
    let e = plan.experiments.get(copy.experiment)?;
    let v = e.variants.get(copy.variant)?;
    let (body, info) =
        crate::exchange::side_call_body(plan, copy.experiment, v, copy.api, &copy.body, true)?;
    // Never sent unredacted.
    let out = body.ok()?;
    let schema = plan.guardrails.schema_for(info.response_schema);
    Some(Built {
        body: out,
        prompt_tokens_est: info.prompt_tokens_est,
        output_cap: info.output_cap,
        schema,
    })
}

/// What the client got, handed over when its exchange ends.
#[derive(Debug, Clone)]
pub struct ControlSide {
    /// The record's trace id.
    pub trace_id: String,
    /// The record's outcome.
    pub outcome: Outcome,
    /// The answer as the client got it (up to [`MAX_ANSWER_COPY`]).
    pub answer: Vec<u8>,
    /// The answer was a stream.
    pub stream: bool,
    /// The answer was kept (`false` past the VM's bound on answers held:
    /// the pair is scored on outcomes only).
    pub kept: bool,
}

/// How a copy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowOutcome {
    /// 2xx, no refusal, no guardrail stop.
    Success,
    /// An error status or an unreadable answer.
    Error,
    /// The model refused.
    Refusal,
    /// A guardrail that applies to the variant would have stopped it.
    Blocked,
    /// No answer within the copy's timeout (or the backend unreachable).
    Timeout,
}

impl ShadowOutcome {
    /// Every outcome, for pre-defining metrics.
    pub const ALL: [ShadowOutcome; 5] = [
        ShadowOutcome::Success,
        ShadowOutcome::Error,
        ShadowOutcome::Refusal,
        ShadowOutcome::Blocked,
        ShadowOutcome::Timeout,
    ];

    /// Stable name (stats, records).
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowOutcome::Success => "success",
            ShadowOutcome::Error => "error",
            ShadowOutcome::Refusal => "refusal",
            ShadowOutcome::Blocked => "blocked",
            ShadowOutcome::Timeout => "timeout",
        }
    }
}

/// Why a copy was not sent (or not answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The request was not sampled.
    NotSampled,
    /// `max_tokens_per_minute` would be exceeded.
    Budget,
    /// Too many copies in flight on this worker.
    Capacity,
    /// The copy could not be built or started.
    Dispatch,
    /// The copy timed out.
    Timeout,
}

impl Skip {
    /// Every reason, for pre-defining metrics.
    pub const ALL: [Skip; 5] = [
        Skip::NotSampled,
        Skip::Budget,
        Skip::Capacity,
        Skip::Dispatch,
        Skip::Timeout,
    ];

    /// Stable name (stats).
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NotSampled => "not_sampled",
            Skip::Budget => "budget",
            Skip::Capacity => "capacity",
            Skip::Dispatch => "dispatch",
            Skip::Timeout => "timeout",
        }
    }
}

/// The copy's answer, read.
#[derive(Debug, Clone)]
pub struct ShadowSide {
    /// How it ended.
    pub outcome: ShadowOutcome,
    /// HTTP status (0: no answer).
    pub status: u32,
    /// Tokens, as reported or estimated.
    pub tokens: Tokens,
    /// Estimated cost.
    pub cost_usd: f64,
    /// From sending the copy to its answer.
    pub latency_ms: u64,
    /// The answer's text (empty without one).
    pub text: String,
    /// The output schema check, when the request asks for one.
    pub schema_pass: Option<bool>,
}

/// What a copy's answer arrived as.
pub struct Answer<'a> {
    /// HTTP status (0 when the call failed or timed out).
    pub status: u32,
    /// `content-encoding` of the answer.
    pub content_encoding: Option<&'a str>,
    /// The body (up to [`MAX_SHADOW_ANSWER`]).
    pub body: &'a [u8],
    /// Milliseconds since the copy was sent.
    pub latency_ms: u64,
}

/// Reads a copy's answer for `copy`'s variant: its outcome under the
/// guardrails that apply to the variant (moderation, tool allowlist, the
/// output schema), usage, cost and text.
pub fn read_answer(
    plan: &Plan,
    experiment: usize,
    variant: usize,
    built: &Built,
    answer: &Answer<'_>,
    timeout_ms: u64,
) -> ShadowSide {
    let model = plan
        .experiments
        .get(experiment)
        .and_then(|e| e.variants.get(variant))
        .and_then(|v| v.model.as_deref());
    let mut side = ShadowSide {
        outcome: ShadowOutcome::Error,
        status: answer.status,
        tokens: Tokens::NONE,
        cost_usd: 0.0,
        latency_ms: answer.latency_ms,
        text: String::new(),
        schema_pass: None,
    };
    // Envoy ends a call that timed out with its own 504 (and one that
    // failed with no headers): a 504 or nothing at the timeout is one.
    let at_timeout = answer.latency_ms + 50 >= timeout_ms;
    if matches!(answer.status, 0 | 504) && at_timeout {
        side.outcome = ShadowOutcome::Timeout;
        return side;
    }
    if answer.status == 0 {
        return side;
    }
    let ok = (200..300).contains(&answer.status);
    let mut observer = crate::response::ResponseObserver::new();
    let readable = crate::encoding::unreadable(answer.content_encoding).is_none();
    // One parse for the usage, the refusal and, on a success, the
    // guardrails that apply to the variant (redaction does not apply:
    // nobody sees the answer).
    let policy = crate::output::Policy {
        redactor: None,
        guard: &plan.guardrails,
        schema: built.schema.as_ref(),
    };
    let checked = (ok && policy.holds_json()).then_some(policy);
    let mut counts = crate::redact::Counts::default();
    let verdict = if readable {
        crate::output::read_answer(
            Some(&mut observer),
            &plan.refusal_phrases,
            answer.body,
            checked,
            &mut counts,
        )
    } else {
        observer.mark_unreadable();
        None
    };
    side.tokens = observer.tokens(built.prompt_tokens_est);
    side.cost_usd = plan.cost_usd(model, &side.tokens);
    if !ok || !readable {
        return side;
    }
    let Some(doc) = std::str::from_utf8(answer.body)
        .ok()
        .and_then(|t| crate::json::parse(t).ok())
    else {
        return side;
    };
    side.text = score::answer_text(&doc);
    let verdict = verdict.unwrap_or_default();
    side.schema_pass = verdict.schema_pass;
    side.outcome = if verdict.output_blocked || verdict.error.is_some() {
        ShadowOutcome::Blocked
    } else if observer.refused() {
        ShadowOutcome::Refusal
    } else {
        ShadowOutcome::Success
    };
    side
}

/// A pair of answers, scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Text similarity in [0, 1] (token-level ROUGE-L F1), when both
    /// answered with success.
    pub similarity: Option<f64>,
    /// Equal after normalisation (case, whitespace), when both succeeded.
    pub exact_match: Option<bool>,
    /// Both parse as JSON and are equal; `None` when neither is JSON.
    pub json_equal: Option<bool>,
}

/// Scores a copy's answer against control's.
pub fn score_pair(control: &ControlSide, shadow: &ShadowSide) -> Scored {
    let both = control.outcome == Outcome::Success
        && shadow.outcome == ShadowOutcome::Success
        && control.kept;
    if !both {
        return Scored {
            similarity: None,
            exact_match: None,
            json_equal: None,
        };
    }
    let control_text = score::client_answer_text(&control.answer, control.stream);
    Scored {
        similarity: Some(score::rouge_l_f1(&control_text, &shadow.text)),
        exact_match: Some(score::normalized(&control_text) == score::normalized(&shadow.text)),
        json_equal: score::json_equal(&control_text, &shadow.text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_a_function_of_the_trace_id() {
        let ids: Vec<String> = (0..20_000).map(|i| format!("{i:032x}")).collect();
        let share = |ppm| ids.iter().filter(|id| sampled(id, ppm)).count();
        assert_eq!(share(0), 0);
        assert_eq!(share(PPM), ids.len());
        let tenth = share(100_000);
        assert!((1_800..2_200).contains(&tenth), "{tenth}");
        // The same ids at a higher rate: a superset (sampling is a threshold).
        assert!(ids
            .iter()
            .filter(|id| sampled(id, 100_000))
            .all(|id| sampled(id, 200_000)));
    }
}
