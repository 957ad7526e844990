//! Reading the filter's access-log records (and the app's outcomes) into
//! bucket-level sums ([`crate::aggregates`]), streamed: memory grows with
//! the cells (experiment × variant × bucket × day), the distinct unit ids
//! and the outcome rows, never with the records.
//!
//! What counts, as `analysis/aggregate.sql` counts it: a record in an
//! experiment, with an assigned variant and a bucket (0–9999), whose
//! reason is not `no_key` or `forced`, under its *assigned* variant
//! (intention-to-treat). Every other line is counted by why it was left
//! out, never fatal.

use crate::aggregates::{latency_bin, Aggregates, Key};
use serde::de::{Deserializer, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::BufRead;

/// A string field, borrowed from the line unless it holds escapes.
#[derive(Debug)]
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Str<'a>, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// The record fields the analysis reads; the others are skipped unparsed.
#[derive(Deserialize)]
struct RecordLine<'a> {
    #[serde(borrow, default)]
    trace_id: Option<Str<'a>>,
    #[serde(default)]
    start_unix_ms: Option<u64>,
    #[serde(borrow, default)]
    experiment_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    assigned_variant: Option<Str<'a>>,
    #[serde(borrow, default)]
    reason: Option<Str<'a>>,
    #[serde(default)]
    bucket: Option<u64>,
    #[serde(borrow, default)]
    unit_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    outcome: Option<Str<'a>>,
    #[serde(default)]
    schema_pass: Option<bool>,
    #[serde(default)]
    cost_usd_est: Option<f64>,
    #[serde(default)]
    tokens_in: Option<u64>,
    #[serde(default)]
    tokens_out: Option<u64>,
    #[serde(default)]
    latency_ms: Option<u64>,
    /// A shadow record (`"shadow": true`), and its own fields.
    #[serde(default)]
    shadow: Option<bool>,
    #[serde(borrow, default)]
    variant: Option<Str<'a>>,
    #[serde(borrow, default)]
    control_outcome: Option<Str<'a>>,
    #[serde(default)]
    similarity: Option<f64>,
}

/// One line of the outcomes file.
#[derive(Deserialize)]
struct OutcomeLine<'a> {
    #[serde(borrow)]
    trace_id: Str<'a>,
    #[serde(borrow)]
    metric: Str<'a>,
    value: f64,
}

/// What was read and what was left out, by reason.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Lines of the records files.
    pub lines: u64,
    /// Records the analysis counts.
    pub records: u64,
    /// Lines that are not a JSON record (Envoy's `-`, truncated lines).
    pub not_records: u64,
    /// Records of requests no experiment matched.
    pub not_in_experiment: u64,
    /// Left out: reason `no_key` (no sticky key, nothing was randomized).
    pub no_key: u64,
    /// Left out: reason `forced` (the override chose the variant).
    pub forced: u64,
    /// Left out: no bucket in 0–9999 (e.g. reason `killed`) or no assigned variant.
    pub no_bucket: u64,
    /// Lines of the outcomes file.
    pub outcome_lines: u64,
    /// Outcome lines that are not `{"trace_id", "metric", "value"}` (or an empty metric).
    pub outcome_bad: u64,
    /// Outcome rows whose trace id no counted record has.
    pub outcome_unknown_trace: u64,
    /// Of those, rows whose trace id only left-out records have.
    pub outcome_left_out: u64,
    /// Shadow records (`"shadow": true`): read for the shadow section.
    pub shadow_records: u64,
}

/// A trace id as 128 bits: its 32 lowercase hex digits, or (any other
/// text) a 128-bit FNV-1a of it.
fn trace_key(id: &str) -> u128 {
    let b = id.as_bytes();
    if b.len() == 32 && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        if let Ok(v) = u128::from_str_radix(id, 16) {
            return v;
        }
    }
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for c in b {
        h ^= u128::from(*c);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    h
}

/// A unit id as 64 bits: its 16 lowercase hex digits, or an FNV-1a of it.
fn unit_key(id: &str) -> u64 {
    let b = id.as_bytes();
    if b.len() == 16 && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        if let Ok(v) = u64::from_str_radix(id, 16) {
            return v;
        }
    }
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, c| {
        (h ^ u64::from(*c)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The outcomes of one trace, and the record they count for so far.
struct TraceOutcomes {
    metrics: Vec<(u32, i64)>,
    /// The earliest counted record of the trace: start, then the cell.
    record: Option<(u64, Key)>,
    /// A left-out record has this trace id.
    left_out: bool,
}

/// The reader's state: the cells, the units seen, the outcomes waiting.
#[derive(Default)]
pub struct Reader {
    /// The sums.
    pub agg: Aggregates,
    /// What was read.
    pub counts: Counts,
    /// (experiment, variant, bucket, unit) → first day.
    units: HashMap<(u32, u32, u16, u64), i64>,
    outcomes: HashMap<u128, TraceOutcomes>,
    /// The shadow records' sums.
    shadow: crate::shadow::Tallies,
}

/// Lines longer than this are not records (the record is under 1 KB).
const MAX_LINE: usize = 1 << 20;

impl Reader {
    /// Reads the outcomes file (before the records: they are joined as
    /// the records stream by). Memory: one entry per trace id with outcomes.
    pub fn read_outcomes(&mut self, input: impl BufRead) -> Result<(), String> {
        for_lines(input, |line| {
            self.counts.outcome_lines += 1;
            let parsed = serde_json::from_slice::<OutcomeLine>(line)
                .ok()
                .filter(|o| !o.metric.0.is_empty());
            let Some(o) = parsed else {
                self.counts.outcome_bad += 1;
                return;
            };
            let metric = self.agg.metrics.index(&o.metric.0);
            let micro = (o.value * 1e6).round() as i64;
            let entry = self
                .outcomes
                .entry(trace_key(&o.trace_id.0))
                .or_insert(TraceOutcomes {
                    metrics: Vec::new(),
                    record: None,
                    left_out: false,
                });
            match entry.metrics.iter_mut().find(|(m, _)| *m == metric) {
                Some((_, v)) => *v = v.saturating_add(micro),
                None => entry.metrics.push((metric, micro)),
            }
        })
    }

    /// Reads records (JSON lines; anything before a line's first `{`, such
    /// as a container runtime's timestamp, is ignored).
    pub fn read_records(&mut self, input: impl BufRead) -> Result<(), String> {
        for_lines(input, |line| self.record_line(line))
    }

    fn record_line(&mut self, line: &[u8]) {
        self.counts.lines += 1;
        let json = match line.iter().position(|b| *b == b'{') {
            Some(start) => &line[start..],
            None => {
                self.counts.not_records += 1;
                return;
            }
        };
        let Ok(r) = serde_json::from_slice::<RecordLine>(json) else {
            self.counts.not_records += 1;
            return;
        };
        if r.shadow == Some(true) {
            self.shadow_line(&r);
            return;
        }
        let Some(experiment) = &r.experiment_id else {
            if r.reason.is_some() || r.trace_id.is_some() {
                self.counts.not_in_experiment += 1;
            } else {
                self.counts.not_records += 1;
            }
            return;
        };
        let reason = r.reason.as_ref().map_or("", |s| &s.0);
        let left_out = matches!(reason, "no_key" | "forced");
        let bucket = r.bucket.filter(|b| *b < 10_000);
        let (Some(variant), Some(bucket), false) = (&r.assigned_variant, bucket, left_out) else {
            match reason {
                "no_key" => self.counts.no_key += 1,
                "forced" => self.counts.forced += 1,
                _ => self.counts.no_bucket += 1,
            }
            if let Some(t) = &r.trace_id {
                if let Some(o) = self.outcomes.get_mut(&trace_key(&t.0)) {
                    o.left_out = true;
                }
            }
            return;
        };
        self.counts.records += 1;
        let start = r.start_unix_ms.unwrap_or(0);
        let key = Key {
            experiment: self.agg.experiments.index(&experiment.0),
            variant: self.agg.variants.index(&variant.0),
            bucket: bucket as u16,
            day: (start / 86_400_000) as i64,
        };
        let cell = self.agg.cell(key);
        cell.requests += 1;
        match r.outcome.as_ref().map(|o| &*o.0) {
            Some("success") => cell.successes += 1,
            Some("error") => cell.errors += 1,
            Some("refusal") => cell.refusals += 1,
            Some("blocked") => cell.blocked += 1,
            Some("invalid") => cell.invalid += 1,
            Some("fallback") => cell.fallbacks += 1,
            _ => {}
        }
        if let Some(pass) = r.schema_pass {
            cell.schema_checked += 1;
            cell.schema_passed += u64::from(pass);
        }
        let cost = (r.cost_usd_est.unwrap_or(0.0) * 1e9).round() as i64;
        cell.cost_nano_usd = cell.cost_nano_usd.saturating_add(cost);
        cell.tokens_in += r.tokens_in.unwrap_or(0);
        cell.tokens_out += r.tokens_out.unwrap_or(0);
        let latency = r.latency_ms.unwrap_or(0);
        cell.latency_ms += latency;
        let bin = &mut cell.latency_bins[latency_bin(latency)];
        *bin = bin.saturating_add(1);
        if let Some(u) = &r.unit_id {
            let day = self
                .units
                .entry((key.experiment, key.variant, key.bucket, unit_key(&u.0)))
                .or_insert(key.day);
            *day = (*day).min(key.day);
        }
        if self.outcomes.is_empty() {
            return;
        }
        let Some(t) = &r.trace_id else {
            return;
        };
        let agg = &self.agg;
        if let Some(o) = self.outcomes.get_mut(&trace_key(&t.0)) {
            // The earliest record, ties broken by the cell's names and
            // bucket, as the query orders them: the same whatever the
            // order of the lines.
            let earlier = match &o.record {
                None => true,
                Some((s, k)) => {
                    let names = |k: &Key| {
                        (
                            agg.experiments.name(k.experiment),
                            agg.variants.name(k.variant),
                            k.bucket,
                        )
                    };
                    (start, names(&key)) < (*s, names(k))
                }
            };
            if earlier {
                o.record = Some((start, key));
            }
        }
    }

    /// A shadow record: summed for the shadow section (never a request of
    /// the experiment: nobody saw its answer).
    fn shadow_line(&mut self, r: &RecordLine<'_>) {
        let field = |f: &Option<Str<'_>>| f.as_ref().map(|s| s.0.to_string());
        let (Some(experiment), Some(variant), Some(outcome)) = (
            field(&r.experiment_id),
            field(&r.variant),
            field(&r.outcome),
        ) else {
            self.counts.not_records += 1;
            return;
        };
        self.counts.shadow_records += 1;
        self.shadow.add(&crate::shadow::RecordFields {
            experiment: &experiment,
            variant: &variant,
            outcome: &outcome,
            control_outcome: r.control_outcome.as_ref().map_or("", |s| &s.0),
            similarity: r.similarity,
            cost_usd: r.cost_usd_est.unwrap_or(0.0),
            latency_ms: r.latency_ms.unwrap_or(0),
        });
    }

    /// Takes the sums of the shadow records read.
    pub fn take_shadow(&mut self) -> crate::shadow::Tallies {
        std::mem::take(&mut self.shadow)
    }

    /// Adds the units and the outcomes to their cells; the sums are then
    /// complete.
    pub fn finish(mut self) -> (Aggregates, Counts) {
        for ((experiment, variant, bucket, _), day) in self.units.drain() {
            let key = Key {
                experiment,
                variant,
                bucket,
                day,
            };
            self.agg.cell(key).new_units += 1;
        }
        for (_, o) in self.outcomes.drain() {
            match o.record {
                Some((_, key)) => {
                    let cell = self.agg.cell(key);
                    for (m, v) in o.metrics {
                        cell.add_outcome(m, v);
                    }
                }
                None => {
                    let rows = o.metrics.len() as u64;
                    self.counts.outcome_unknown_trace += rows;
                    if o.left_out {
                        self.counts.outcome_left_out += rows;
                    }
                }
            }
        }
        (self.agg, self.counts)
    }
}

/// Calls `f` with every line of `input` (without its line break; a line
/// over [`MAX_LINE`] bytes is passed cut, to be counted as not a record).
fn for_lines(mut input: impl BufRead, mut f: impl FnMut(&[u8])) -> Result<(), String> {
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        let n = std::io::Read::take(std::io::Read::by_ref(&mut input), MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read: {e}"))?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && n == MAX_LINE {
            // Skip the rest of an overlong line.
            let mut rest = Vec::new();
            input
                .read_until(b'\n', &mut rest)
                .map_err(|e| format!("cannot read: {e}"))?;
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if !line.is_empty() {
            f(&line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            trace_key("0af7651916cd43dd8448eb211c80319c"),
            0x0af7651916cd43dd8448eb211c80319c
        );
        assert_ne!(
            trace_key("0AF7651916CD43DD8448EB211C80319C"),
            trace_key("0af7651916cd43dd8448eb211c80319c")
        );
        assert_ne!(trace_key("a"), trace_key("b"));
        assert_eq!(unit_key("5bdcc146bf60754e"), 0x5bdcc146bf60754e);
    }

    #[test]
    fn lines_are_counted_by_why_they_are_left_out() {
        let text = concat!(
            "-\n",
            "{\"trace_id\":\"t1\",\"experiment_id\":\"e\",\"assigned_variant\":\"control\",\"reason\":\"hashed\",\"bucket\":5,\"outcome\":\"success\",\"latency_ms\":12}\n",
            "2026-01-01T00:00:00Z stdout F {\"trace_id\":\"t2\",\"experiment_id\":\"e\",\"assigned_variant\":\"control\",\"reason\":\"hashed\",\"bucket\":5,\"outcome\":\"error\"}\r\n",
            "{\"trace_id\":\"t3\",\"experiment_id\":\"e\",\"assigned_variant\":\"control\",\"reason\":\"no_key\",\"bucket\":null}\n",
            "{\"trace_id\":\"t4\",\"experiment_id\":\"e\",\"assigned_variant\":\"control\",\"reason\":\"forced\",\"bucket\":null}\n",
            "{\"trace_id\":\"t5\",\"experiment_id\":\"e\",\"assigned_variant\":\"control\",\"reason\":\"killed\",\"bucket\":null}\n",
            "{\"trace_id\":\"t6\",\"experiment_id\":null,\"reason\":\"default\"}\n",
            "{\"trace_id\":\"t7\",\"experiment_id\":\"e\",\"assigned_variant\":\"control\",\"reason\":\"hashed\",\"bucket\":50\n",
            "{\"trace_id\":\"t8\",\"experiment_id\":\"e\",\"assigned_variant\":\"control\",\"reason\":\"hashed\",\"bucket\":12000}\n",
            "{\"shadow\":true,\"paired_trace_id\":\"t1\",\"experiment_id\":\"e\",\"variant\":\"cand\",\"outcome\":\"error\",\"control_outcome\":\"success\",\"similarity\":null,\"latency_ms\":3}\n",
            "\n",
        );
        let mut r = Reader::default();
        let outcomes = "{\"trace_id\":\"t1\",\"metric\":\"purchase\",\"value\":2.5}\n{\"trace_id\":\"t1\",\"metric\":\"purchase\",\"value\":1}\n{\"trace_id\":\"t3\",\"metric\":\"purchase\",\"value\":1}\n{\"trace_id\":\"nope\",\"metric\":\"purchase\",\"value\":1}\n{\"trace_id\":\"t2\",\"metric\":\"purchase\"}\nnot json\n";
        assert!(r.read_outcomes(outcomes.as_bytes()).is_ok());
        assert!(r.read_records(text.as_bytes()).is_ok());
        let shadow = r.take_shadow();
        let (agg, counts) = r.finish();
        let cand = shadow.reports("e", 0.0, &[]);
        assert_eq!(cand.len(), 1);
        assert_eq!((cand[0].copies, cand[0].mcnemar.control_only), (1, 1));
        assert_eq!(
            counts,
            Counts {
                shadow_records: 1,
                lines: 10,
                records: 2,
                not_records: 2,
                not_in_experiment: 1,
                no_key: 1,
                forced: 1,
                no_bucket: 2,
                outcome_lines: 6,
                outcome_bad: 2,
                outcome_unknown_trace: 2,
                outcome_left_out: 1,
            }
        );
        assert_eq!(agg.cells.len(), 1);
        let cell = agg.cells.values().next().cloned().unwrap_or_default();
        assert_eq!((cell.requests, cell.successes, cell.errors), (2, 1, 1));
        assert_eq!(cell.outcome(0), 3_500_000);
        assert_eq!(cell.latency_bins[latency_bin(12)], 1);
    }
}
