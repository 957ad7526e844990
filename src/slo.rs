//! Rolling windows of a variant's health, the SLO check that pauses an
//! experiment, and the per-variant circuit breaker.
//!
//! The windows and breaker states live in shared data (one map for every
//! worker VM of a proxy), updated with compare-and-swap through
//! [`crate::shared::update`]. Each proxy decides on its own evidence.

use crate::shared::{update, SharedStore};

/// Shared-data key of a variant's health window. `w2`: the binary slots
/// of `encode_window` (a VM of an earlier build, still running beside
/// a new one during a reload, kept JSON under `window.`).
pub fn window_key(config_hash: u32, experiment: &str, variant: &str) -> String {
    format!("llm_ab.w2.{config_hash:08x}.{experiment}.{variant}")
}

/// Shared-data key of a variant's circuit breaker.
pub fn breaker_key(config_hash: u32, experiment: &str, variant: &str) -> String {
    format!("llm_ab.breaker.{config_hash:08x}.{experiment}.{variant}")
}

/// Shared-data key of an experiment's pause flag.
pub fn pause_key(config_hash: u32, experiment: &str) -> String {
    format!("llm_ab.pause.{config_hash:08x}.{experiment}")
}

/// Sets the pause flag; `true` for the one caller that set it first.
pub fn pause(store: &dyn SharedStore, key: &str) -> bool {
    update(store, key, |value| match value {
        Some(v) if v == b"1" => None,
        _ => Some((b"1".to_vec(), true)),
    })
    .unwrap_or(false)
}

/// Whether the pause flag is set.
pub fn is_paused(store: &dyn SharedStore, key: &str) -> bool {
    store.get(key).0.is_some_and(|v| v == b"1")
}

/// Whether experiment `e` of the configuration `config_hash` is paused on
/// this proxy (only an experiment with an `slo` can be; no read otherwise).
pub fn experiment_paused(
    store: &dyn SharedStore,
    config_hash: u32,
    e: &crate::config::Experiment,
) -> bool {
    e.slo.is_some() && is_paused(store, &pause_key(config_hash, &e.id))
}

/// Slots per window.
const SLOTS: u64 = 10;
/// Latency histogram buckets: bucket i counts latencies in [2^i, 2^(i+1)) ms.
const LATENCY_BUCKETS: usize = 24;

/// One finished exchange, as the windows see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Upstream error, timeout or cut stream.
    pub error: bool,
    /// Served by a fallback to control.
    pub fallback: bool,
    /// Output schema check, when one ran.
    pub schema: Option<bool>,
    /// End-to-end latency.
    pub latency_ms: u64,
}

/// One slot of a health window: its number (`t`), exchanges, errors,
/// fallbacks, schema checks and passes, and the latency histogram.
#[derive(Debug, Clone, Default, PartialEq)]
struct Slot {
    t: u64,
    n: u64,
    e: u64,
    f: u64,
    c: u64,
    p: u64,
    h: Vec<u64>,
}

/// Bytes of one slot in shared data: its six counts and the histogram,
/// each a little-endian `u64`.
const SLOT_BYTES: usize = 8 * (6 + LATENCY_BUCKETS);

/// The slots stored in shared data; none when `bytes` is not a whole
/// number of slots (a value no build of this filter wrote).
fn decode_window(bytes: &[u8]) -> Vec<Slot> {
    if bytes.len() % SLOT_BYTES != 0 {
        return Vec::new();
    }
    bytes
        .chunks_exact(SLOT_BYTES)
        .map(|raw| {
            let mut words = raw
                .chunks_exact(8)
                .map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()));
            let mut next = || words.next().unwrap_or_default();
            let (t, n, e, f, c, p) = (next(), next(), next(), next(), next(), next());
            Slot {
                t,
                n,
                e,
                f,
                c,
                p,
                h: (0..LATENCY_BUCKETS).map(|_| next()).collect(),
            }
        })
        .collect()
}

/// `slots` as shared data stores them (see [`decode_window`]).
fn encode_window(slots: &[Slot]) -> Vec<u8> {
    let mut out = Vec::with_capacity(slots.len() * SLOT_BYTES);
    for s in slots {
        for w in [s.t, s.n, s.e, s.f, s.c, s.p] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        for i in 0..LATENCY_BUCKETS {
            out.extend_from_slice(&s.h.get(i).copied().unwrap_or(0).to_le_bytes());
        }
    }
    out
}

/// What a window says about a variant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Exchanges in the window.
    pub requests: u64,
    /// Share of errors.
    pub error_rate: f64,
    /// 95th percentile latency (upper bound of its histogram bucket).
    pub p95_latency_ms: u64,
    /// Share of fallbacks.
    pub fallback_rate: f64,
    /// Share of passed schema checks (1 when none ran).
    pub schema_pass_rate: f64,
}

fn bucket_of(ms: u64) -> usize {
    ((64 - ms.max(1).leading_zeros()) as usize)
        .saturating_sub(1)
        .min(LATENCY_BUCKETS - 1)
}

fn slot_len(window_s: u64) -> u64 {
    (window_s / SLOTS).max(1)
}

/// A health window as read or written once.
#[derive(Debug, Clone, Default)]
pub struct Window(Vec<Slot>);

impl Window {
    /// What the window says over `window_s` as of `now_s`.
    pub fn summary(&self, window_s: u64, now_s: u64) -> Summary {
        summarize(&self.0, window_s, now_s)
    }
}

/// Adds `sample` to the window stored at `key` (slots of `window_s / 10`)
/// and returns the window as written, so its summaries need no second
/// read (an empty window when the store gave up).
pub fn record(
    store: &dyn SharedStore,
    key: &str,
    window_s: u64,
    now_s: u64,
    sample: Sample,
) -> Window {
    let len = slot_len(window_s);
    let now_slot = now_s / len;
    update(store, key, |value| {
        let mut slots = value.map(decode_window).unwrap_or_default();
        slots.retain(|s| s.t + SLOTS > now_slot);
        if slots.last().is_none_or(|s| s.t != now_slot) {
            slots.push(Slot {
                t: now_slot,
                h: vec![0; LATENCY_BUCKETS],
                ..Slot::default()
            });
        }
        let slot = slots.last_mut()?;
        slot.n += 1;
        slot.e += u64::from(sample.error);
        slot.f += u64::from(sample.fallback);
        if let Some(pass) = sample.schema {
            slot.c += 1;
            slot.p += u64::from(pass);
        }
        if let Some(h) = slot.h.get_mut(bucket_of(sample.latency_ms)) {
            *h += 1;
        }
        Some((encode_window(&slots), Window(slots)))
    })
    .unwrap_or_default()
}

/// The window at `key` as of `now_s`.
pub fn summary(store: &dyn SharedStore, key: &str, window_s: u64, now_s: u64) -> Summary {
    let slots = store
        .get(key)
        .0
        .map(|v| decode_window(&v))
        .unwrap_or_default();
    summarize(&slots, window_s, now_s)
}

fn summarize(slots: &[Slot], window_s: u64, now_s: u64) -> Summary {
    let now_slot = now_s / slot_len(window_s);
    let live: Vec<&Slot> = slots.iter().filter(|s| s.t + SLOTS > now_slot).collect();
    let sum = |f: fn(&Slot) -> u64| live.iter().map(|s| f(s)).sum::<u64>();
    let (n, e, f, c, p) = (
        sum(|s| s.n),
        sum(|s| s.e),
        sum(|s| s.f),
        sum(|s| s.c),
        sum(|s| s.p),
    );
    let mut hist = [0u64; LATENCY_BUCKETS];
    for s in &live {
        for (i, h) in s.h.iter().enumerate().take(LATENCY_BUCKETS) {
            hist[i] += h;
        }
    }
    let rank = (n * 95).div_ceil(100);
    let mut seen = 0;
    let mut p95 = 0;
    for (i, h) in hist.iter().enumerate() {
        seen += h;
        if seen >= rank && n > 0 {
            p95 = (1u64 << (i + 1)) - 1;
            break;
        }
    }
    let rate = |x: u64, of: u64| if of == 0 { 0.0 } else { x as f64 / of as f64 };
    Summary {
        requests: n,
        error_rate: rate(e, n),
        p95_latency_ms: p95,
        fallback_rate: rate(f, n),
        schema_pass_rate: if c == 0 { 1.0 } else { rate(p, c) },
    }
}

/// SLO bounds of a treatment.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// Window length.
    pub window_s: u64,
    /// Fewest exchanges before the bounds apply.
    pub min_requests: u64,
    /// Highest error rate.
    pub max_error_rate: Option<f64>,
    /// Highest p95 latency.
    pub max_p95_latency_ms: Option<u64>,
    /// Highest fallback rate.
    pub max_fallback_rate: Option<f64>,
    /// Lowest schema pass rate.
    pub min_schema_pass_rate: Option<f64>,
}

impl Slo {
    /// The first bound `s` breaches: `(name, measured, bound)`.
    pub fn breach(&self, s: &Summary) -> Option<(&'static str, f64, f64)> {
        if s.requests < self.min_requests {
            return None;
        }
        if let Some(max) = self.max_error_rate.filter(|m| s.error_rate > *m) {
            return Some(("max_error_rate", s.error_rate, max));
        }
        if let Some(max) = self.max_p95_latency_ms.filter(|m| s.p95_latency_ms > *m) {
            return Some(("max_p95_latency_ms", s.p95_latency_ms as f64, max as f64));
        }
        if let Some(max) = self.max_fallback_rate.filter(|m| s.fallback_rate > *m) {
            return Some(("max_fallback_rate", s.fallback_rate, max));
        }
        if let Some(min) = self
            .min_schema_pass_rate
            .filter(|m| s.schema_pass_rate < *m)
        {
            return Some(("min_schema_pass_rate", s.schema_pass_rate, min));
        }
        None
    }
}

/// When a failed treatment request is re-issued to control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fallback {
    /// On an upstream 5xx.
    pub on_5xx: bool,
    /// When the treatment's backend cannot be reached.
    pub on_connect_failure: bool,
    /// When the timeout budget runs out.
    pub on_timeout: bool,
    /// When the output fails its schema (`response_schema.on_fail: "fallback"`).
    pub on_schema_fail: bool,
    /// Most re-issues per request.
    pub max_attempts: u32,
}

/// Envoy response flags that mean the upstream could not be used:
/// no healthy upstream, connection failure, termination, reset, overflow.
pub const CONNECT_FAILURE_FLAGS: u64 = 0x2 | 0x10 | 0x20 | 0x40 | 0x80;
/// Envoy's upstream request timeout flag.
pub const TIMEOUT_FLAG: u64 = 0x4;

impl Fallback {
    /// Whether a response with `status` and Envoy response `flags` qualifies.
    pub fn wants(&self, status: u32, flags: u64) -> bool {
        (self.on_timeout && flags & TIMEOUT_FLAG != 0)
            || (self.on_connect_failure && flags & CONNECT_FAILURE_FLAGS != 0)
            || (self.on_5xx
                && (500..600).contains(&status)
                && flags & (TIMEOUT_FLAG | CONNECT_FAILURE_FLAGS) == 0)
    }
}

/// Circuit breaker settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Breaker {
    /// Consecutive failures that open it.
    pub consecutive_failures: u64,
    /// Failure rate over the window that opens it.
    pub failure_rate: f64,
    /// Window length for the rate.
    pub window_s: u64,
    /// Fewest exchanges before the rate applies.
    pub min_requests: u64,
    /// How long it stays open before probing.
    pub open_s: u64,
}

/// Probe requests let through while half-open.
pub const PROBES: u64 = 3;

/// Whether a request may use the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Yes; `probe` when the breaker is half-open.
    Yes {
        /// The request is one of the half-open probes.
        probe: bool,
    },
    /// No: the breaker is open.
    No,
}

/// Breaker state, stored as text: `c:<consecutive failures>`,
/// `o:<open until>`, `h:<probes in flight>:<probe successes>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed(u64),
    Open(u64),
    HalfOpen(u64, u64),
}

fn parse_state(value: Option<&[u8]>) -> State {
    let text = value
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or("c:0");
    let mut parts = text.split(':');
    let tag = parts.next().unwrap_or("c");
    let mut num = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    match tag {
        "o" => State::Open(num()),
        "h" => {
            let a = num();
            State::HalfOpen(a, num())
        }
        _ => State::Closed(num()),
    }
}

fn encode(state: State) -> Vec<u8> {
    match state {
        State::Closed(n) => format!("c:{n}"),
        State::Open(until) => format!("o:{until}"),
        State::HalfOpen(a, b) => format!("h:{a}:{b}"),
    }
    .into_bytes()
}

/// Whether the breaker state at `key` is open (for the gauge).
pub fn is_open(store: &dyn SharedStore, key: &str, now_s: u64) -> bool {
    matches!(parse_state(store.get(key).0.as_deref()), State::Open(until) if now_s < until)
}

impl Breaker {
    /// Asks to use the variant at `now_s`.
    pub fn admit(&self, store: &dyn SharedStore, key: &str, now_s: u64) -> Admit {
        update(store, key, |value| match parse_state(value) {
            State::Closed(_) => None, // nothing to write
            State::Open(until) if now_s < until => None,
            State::Open(_) => Some((encode(State::HalfOpen(1, 0)), Admit::Yes { probe: true })),
            State::HalfOpen(flying, ok) if flying + ok < PROBES => Some((
                encode(State::HalfOpen(flying + 1, ok)),
                Admit::Yes { probe: true },
            )),
            State::HalfOpen(..) => None,
        })
        .unwrap_or_else(|| match parse_state(store.get(key).0.as_deref()) {
            State::Closed(_) => Admit::Yes { probe: false },
            _ => Admit::No,
        })
    }

    /// Reports how a request that used the variant ended; returns `true`
    /// when this report opened the breaker.
    pub fn report(
        &self,
        store: &dyn SharedStore,
        key: &str,
        now_s: u64,
        failed: bool,
        probe: bool,
        window: &Summary,
    ) -> bool {
        let open = State::Open(now_s + self.open_s);
        update(store, key, |value| {
            let next = match (parse_state(value), probe) {
                (State::HalfOpen(flying, ok), true) => {
                    if failed {
                        open
                    } else if ok + 1 >= PROBES {
                        State::Closed(0)
                    } else {
                        State::HalfOpen(flying.saturating_sub(1), ok + 1)
                    }
                }
                (State::Closed(n), _) => {
                    let rate_trips = window.requests >= self.min_requests
                        && window.error_rate >= self.failure_rate;
                    if failed && (n + 1 >= self.consecutive_failures || rate_trips) {
                        open
                    } else if failed {
                        State::Closed(n + 1)
                    } else {
                        State::Closed(0)
                    }
                }
                _ => return None,
            };
            Some((encode(next), matches!(next, State::Open(_))))
        })
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::tests::MemStore;

    fn sample(error: bool, latency_ms: u64) -> Sample {
        Sample {
            error,
            latency_ms,
            ..Sample::default()
        }
    }

    #[test]
    fn windows_keep_every_count_in_shared_data() {
        let slots: Vec<Slot> = (0..SLOTS)
            .map(|i| Slot {
                t: u64::MAX - i,
                n: i,
                e: 1 << i,
                f: 3 * i,
                c: 5,
                p: 4,
                h: (0..LATENCY_BUCKETS as u64).map(|b| b * 1000 + i).collect(),
            })
            .collect();
        let bytes = encode_window(&slots);
        assert_eq!(bytes.len(), slots.len() * SLOT_BYTES);
        assert_eq!(decode_window(&bytes), slots);
        // What no build wrote reads as an empty window, never a panic.
        assert!(decode_window(&bytes[1..]).is_empty());
        assert!(decode_window(b"[{\"t\":1}]").is_empty());
        assert!(decode_window(b"").is_empty());
    }

    #[test]
    fn window_summarises_and_forgets() {
        let s = MemStore::default();
        for i in 0..100 {
            record(
                &s,
                "w",
                60,
                1000,
                sample(i % 10 == 0, if i < 90 { 100 } else { 5000 }),
            );
        }
        let sum = summary(&s, "w", 60, 1000);
        assert_eq!(sum.requests, 100);
        assert!((sum.error_rate - 0.1).abs() < 1e-9);
        assert!(sum.p95_latency_ms >= 4096, "{sum:?}");
        assert_eq!(
            summary(&s, "w", 60, 1000 + 61).requests,
            0,
            "the window moved on"
        );
        let slo = Slo {
            window_s: 60,
            min_requests: 50,
            max_error_rate: Some(0.05),
            max_p95_latency_ms: None,
            max_fallback_rate: None,
            min_schema_pass_rate: None,
        };
        assert_eq!(slo.breach(&sum).map(|b| b.0), Some("max_error_rate"));
        let few = Summary {
            requests: 10,
            ..sum
        };
        assert_eq!(slo.breach(&few), None, "min_requests");
        let latency = Slo {
            max_error_rate: None,
            max_p95_latency_ms: Some(1000),
            ..slo
        };
        assert_eq!(
            latency.breach(&sum).map(|b| b.0),
            Some("max_p95_latency_ms")
        );
    }

    #[test]
    fn breaker_opens_probes_and_closes() {
        let s = MemStore::default();
        let b = Breaker {
            consecutive_failures: 3,
            failure_rate: 0.9,
            window_s: 30,
            min_requests: 100,
            open_s: 10,
        };
        let w = Summary::default();
        assert_eq!(b.admit(&s, "b", 0), Admit::Yes { probe: false });
        assert!(!b.report(&s, "b", 0, true, false, &w));
        assert!(!b.report(&s, "b", 0, true, false, &w));
        assert!(
            b.report(&s, "b", 0, true, false, &w),
            "third failure opens it"
        );
        assert!(is_open(&s, "b", 5));
        assert_eq!(b.admit(&s, "b", 5), Admit::No);
        // After open_s, a few probes go through.
        let probes: Vec<Admit> = (0..5).map(|_| b.admit(&s, "b", 11)).collect();
        assert_eq!(
            probes
                .iter()
                .filter(|a| **a == Admit::Yes { probe: true })
                .count() as u64,
            PROBES
        );
        for _ in 0..PROBES {
            b.report(&s, "b", 11, false, true, &w);
        }
        assert_eq!(
            b.admit(&s, "b", 12),
            Admit::Yes { probe: false },
            "closed again"
        );
        // A failed probe reopens it.
        for _ in 0..3 {
            b.report(&s, "b", 20, true, false, &w);
        }
        assert_eq!(b.admit(&s, "b", 31), Admit::Yes { probe: true });
        assert!(b.report(&s, "b", 31, true, true, &w));
        assert_eq!(b.admit(&s, "b", 32), Admit::No);
    }

    #[test]
    fn breaker_opens_on_the_failure_rate() {
        let s = MemStore::default();
        let b = Breaker {
            consecutive_failures: 100,
            failure_rate: 0.5,
            window_s: 30,
            min_requests: 20,
            open_s: 10,
        };
        let bad = Summary {
            requests: 20,
            error_rate: 0.5,
            ..Summary::default()
        };
        assert!(b.report(&s, "b", 0, true, false, &bad));
    }
}
