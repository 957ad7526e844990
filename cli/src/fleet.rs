//! The fleet report: the filter's series summed over every proxy a
//! Prometheus scrapes, read through its HTTP API (`/api/v1/query`).
//!
//! Each counter the report uses is asked for as
//! `sum by (experiment, variant[, label]) (increase(NAME[RANGE:STEP]))`, the
//! histograms as `sum by (experiment, variant, le) (increase(NAME_bucket[…]))`,
//! and the answers become the same samples (name, labels, value) that one
//! Envoy's `/stats/prometheus` gives, so [`crate::report::build`] computes the
//! same report from them.
//!
//! `increase` handles counter resets (a proxy that restarts starts again
//! from 0; Prometheus adds the value before the drop), and `sum` adds the
//! proxies. `increase` extrapolates to the ends of its window; the range is a
//! subquery (`[RANGE:STEP]`, STEP 1 s for windows up to about 3 hours) whose
//! last point is the evaluation time itself, so it never extrapolates past
//! the last scrape, and a series that begins inside the window (a proxy's
//! counters start at 0: the filter defines them when it loads) is not
//! extrapolated before its first 0 either. So over the whole history (and a
//! window on whole steps) the counts are exact for what Prometheus saw: a
//! proxy scraped before its first request and again after a restart before
//! its counters overtook their old values. The values are rounded to whole
//! requests; a proxy no longer scraped is extrapolated by half a step (the
//! README, "Counts are exact where Prometheus saw them").

use crate::prom::Sample;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Counters the report reads, with the label kept besides experiment and
/// variant (`None`: summed over all other labels).
const COUNTERS: [(&str, Option<&str>); 14] = [
    ("llm_ab_requests", None),
    ("llm_ab_shadow_calls", Some("outcome")),
    ("llm_ab_shadow_skipped", Some("reason")),
    ("llm_ab_shadow_pairs", Some("pair")),
    ("llm_ab_shadow_tokens_in", None),
    ("llm_ab_shadow_tokens_out", None),
    ("llm_ab_shadow_cost_micro_usd", None),
    ("llm_ab_outcomes", Some("outcome")),
    ("llm_ab_schema_checks", Some("schema_result")),
    ("llm_ab_tokens_in", None),
    ("llm_ab_tokens_in_cached", None),
    ("llm_ab_tokens_out", None),
    ("llm_ab_tokens_reasoning", None),
    ("llm_ab_cost_micro_usd", None),
];

/// Histograms the report reads (their `_bucket` series).
const HISTOGRAMS: [&str; 4] = [
    "llm_ab_latency_ms_bucket",
    "llm_ab_ttft_ms_bucket",
    "llm_ab_shadow_latency_ms_bucket",
    "llm_ab_shadow_similarity_bucket",
];

/// How far back the whole history is looked for when `--range` is not given.
const HISTORY_LOOKBACK: &str = "90d";

/// Subquery points at most, per series: sets the step of long windows.
const MAX_POINTS: u64 = 11_000;

/// One element of an instant vector: labels and value.
pub type Point = (BTreeMap<String, String>, f64);

/// The window a fleet report covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Evaluation time, unix seconds (a multiple of `step_s`).
    pub at: u64,
    /// Length, seconds.
    pub range_s: u64,
    /// Subquery step, seconds.
    pub step_s: u64,
}

impl Window {
    fn new(at: f64, range_s: u64) -> Window {
        let range_s = range_s.max(1);
        let step_s = range_s.div_ceil(MAX_POINTS).max(1);
        let at = (at.max(0.0) as u64) / step_s * step_s;
        Window {
            at,
            range_s,
            step_s,
        }
    }

    /// `[RANGEs:STEPs]`.
    fn selector(&self) -> String {
        format!("[{}s:{}s]", self.range_s, self.step_s)
    }
}

/// A Prometheus HTTP API client.
pub struct Prometheus {
    base: String,
    agent: ureq::Agent,
}

impl Prometheus {
    /// A client for the Prometheus at `base` (e.g. `http://prometheus:9090`).
    pub fn new(base: &str) -> Prometheus {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        Prometheus {
            base: base.trim_end_matches('/').to_string(),
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// Runs an instant query at `time` (unix seconds); returns the vector's
    /// (labels, value) pairs. `Err` is one line: unreachable, or
    /// Prometheus's own error.
    pub fn query(&self, promql: &str, time: u64) -> Result<Vec<Point>, String> {
        let url = format!("{}/api/v1/query", self.base);
        let mut resp = self
            .agent
            .get(&url)
            .query("query", promql)
            .query("time", time.to_string())
            .call()
            .map_err(|e| format!("cannot read {url}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("cannot read {url}: {e}"))?;
        let json: Value = serde_json::from_str(&body).map_err(|_| {
            format!(
                "{url} answered {status} without a Prometheus API answer: {:.80}",
                body.trim()
            )
        })?;
        if json["status"] != "success" {
            return Err(format!(
                "Prometheus refused `{promql}`: {}: {}",
                json["errorType"].as_str().unwrap_or("error"),
                json["error"].as_str().unwrap_or("no message")
            ));
        }
        parse_vector(&json["data"])
    }
}

/// The (labels, value) pairs of an API `data` object of type `vector`
/// (a `scalar` is one pair without labels).
pub fn parse_vector(data: &Value) -> Result<Vec<Point>, String> {
    let value = |v: &Value| -> Result<f64, String> {
        let text = v[1].as_str().ok_or("a sample without a value")?;
        match text {
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            t => t.parse().map_err(|_| format!("not a number: {t:.40}")),
        }
    };
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .ok_or_else(|| "a vector without a result".to_string())?
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok((labels, value(&r["value"])?))
            })
            .collect(),
        Some("scalar") => Ok(vec![(BTreeMap::new(), value(&data["result"])?)]),
        other => Err(format!("unexpected result type {other:?}")),
    }
}

/// The PromQL of one counter (or `_bucket` histogram) over `w`.
pub fn counter_query(name: &str, extra: Option<&str>, w: &Window) -> String {
    let by = match extra {
        Some(label) => format!("experiment, variant, {label}"),
        None => "experiment, variant".to_string(),
    };
    format!(
        "sum by ({by}) (increase({name}{{experiment!=\"\",variant!=\"\"}}{}))",
        w.selector()
    )
}

/// The window: `range` (a duration) ending at `at` (default now), or else
/// from the first sample of the filter's `llm_ab_requests` series.
pub fn window(prom: &Prometheus, range: Option<&str>, at: Option<&str>) -> Result<Window, String> {
    let at = match at {
        Some(t) => parse_time(t)?,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs_f64(),
    };
    if let Some(r) = range {
        return Ok(Window::new(at, parse_duration(r)?));
    }
    // The first sample: to the hour over HISTORY_LOOKBACK, to 10 s over the
    // last 2 hours, to the second over the last 2 minutes (a subquery's
    // points are multiples of its step: a series younger than the step has
    // none yet). Each answer is a sample of the series; the window starts
    // that step and Prometheus's 5-minute lookback before it, so it holds
    // the first sample (starting earlier changes nothing: a counter's series
    // begins at 0 and `increase` does not extrapolate before a 0).
    let mut start: Option<f64> = None;
    for (lookback, step) in [(HISTORY_LOOKBACK, 3600), ("2h", 10), ("2m", 1)] {
        let q = format!("min(min_over_time(timestamp(llm_ab_requests)[{lookback}:{step}s]))");
        for (_, t) in prom.query(&q, at as u64)? {
            if t.is_finite() {
                let candidate = t - step as f64 - 300.0;
                start = Some(start.map_or(candidate, |s: f64| s.min(candidate)));
            }
        }
    }
    let start = start.ok_or_else(|| {
        format!("no llm_ab_requests series in Prometheus over the last {HISTORY_LOOKBACK}")
    })?;
    Ok(Window::new(at, (at - start).ceil().max(1.0) as u64))
}

/// The samples of the report's counters and histograms over `w`, summed
/// over the fleet: the input of [`crate::report::build`].
pub fn samples(prom: &Prometheus, w: &Window) -> Result<Vec<Sample>, String> {
    let queries = COUNTERS
        .iter()
        .map(|(name, extra)| (*name, *extra))
        .chain(HISTOGRAMS.iter().map(|name| (*name, Some("le"))));
    let mut out = Vec::new();
    for (name, extra) in queries {
        for (labels, value) in prom.query(&counter_query(name, extra, w), w.at)? {
            if value.is_finite() {
                out.push(Sample {
                    name: name.to_string(),
                    labels,
                    // Whole requests, tokens, micro-USD: see the module docs.
                    value: value.round(),
                });
            }
        }
    }
    Ok(out)
}

/// A Prometheus duration (`90s`, `10m`, `1h30m`, `7d`, `2w`; a bare number
/// is seconds) in whole seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = || format!("not a duration: {text:?} (e.g. 30m, 1h30m, 7d)");
    let t = text.trim();
    if let Ok(s) = t.parse::<u64>() {
        return (s > 0).then_some(s).ok_or_else(bad);
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            "y" => 31_536_000,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    (total > 0).then_some(total).ok_or_else(bad)
}

/// A point in time: unix seconds (`1767225600`, `1767225600.5`) or RFC 3339
/// (`2026-01-01T00:00:00Z`, `2026-01-01T01:00:00+01:00`).
pub fn parse_time(text: &str) -> Result<f64, String> {
    let bad =
        || format!("not a time: {text:?} (RFC 3339, e.g. 2026-01-01T00:00:00Z, or unix seconds)");
    let t = text.trim();
    if let Ok(s) = t.parse::<f64>() {
        return (s.is_finite() && s >= 0.0).then_some(s).ok_or_else(bad);
    }
    let b = t.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let s = t.get(r).ok_or_else(bad)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (y, mo, d, h, mi, s) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let mut rest = &t[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        if n == 0 {
            return Err(bad());
        }
        frac = format!("0.{}", &r[..n]).parse().map_err(|_| bad())?;
        rest = &r[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let oh: i64 = o[1..3].parse().map_err(|_| bad())?;
            let om: i64 = o[4..6].parse().map_err(|_| bad())?;
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return Err(bad()),
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset;
    if secs < 0 {
        return Err(bad());
    }
    Ok(secs as f64 + frac)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `1h2m3s`-style text for a number of seconds.
pub fn format_duration(mut s: u64) -> String {
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("10m"), Ok(600));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        assert_eq!(parse_duration("45"), Ok(45));
        for bad in ["", "0", "0s", "m", "10x", "1.5h", "-5m", "h1"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(5400), "1h30m");
        assert_eq!(format_duration(86_461), "1d1m1s");
        assert_eq!(format_duration(0), "0s");
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1767225600"), Ok(1_767_225_600.0));
        assert_eq!(parse_time("2026-01-01T00:00:00Z"), Ok(1_767_225_600.0));
        assert_eq!(parse_time("2026-01-01T01:00:00+01:00"), Ok(1_767_225_600.0));
        assert_eq!(
            parse_time("2025-12-31T23:00:00.5-01:00"),
            Ok(1_767_225_600.5)
        );
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0.0));
        // 2024 is a leap year: 29 February exists.
        assert_eq!(parse_time("2024-03-01T00:00:00Z"), Ok(1_709_251_200.0));
        for bad in [
            "",
            "yesterday",
            "2026-01-01",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00+0100",
            "-5",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_are_aligned_to_their_step() {
        let w = Window::new(1_000_000.7, 600);
        assert_eq!((w.at, w.range_s, w.step_s), (1_000_000, 600, 1));
        assert_eq!(w.selector(), "[600s:1s]");
        // 30 days: about 11,000 points, the end a multiple of the step.
        let w = Window::new(1_000_000.0, 30 * 86_400);
        assert_eq!(w.step_s, 236);
        assert_eq!(w.at % w.step_s, 0);
    }

    #[test]
    fn queries_sum_over_the_fleet() {
        let w = Window::new(100.0, 600);
        assert_eq!(
            counter_query("llm_ab_outcomes", Some("outcome"), &w),
            "sum by (experiment, variant, outcome) (increase(llm_ab_outcomes{experiment!=\"\",variant!=\"\"}[600s:1s]))"
        );
        assert_eq!(
            counter_query("llm_ab_latency_ms_bucket", Some("le"), &w),
            "sum by (experiment, variant, le) (increase(llm_ab_latency_ms_bucket{experiment!=\"\",variant!=\"\"}[600s:1s]))"
        );
    }

    #[test]
    fn api_answers_become_samples() {
        let data = json!({"resultType": "vector", "result": [
            {"metric": {"experiment": "e", "variant": "control"}, "value": [1.0, "41.99999"]},
            {"metric": {"experiment": "e", "variant": "candidate", "le": "+Inf"}, "value": [1.0, "+Inf"]}
        ]});
        let v = parse_vector(&data).unwrap_or_default();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].0.get("variant").map(String::as_str), Some("control"));
        assert_eq!(v[0].1.round(), 42.0);
        assert_eq!(v[1].1, f64::INFINITY);
        assert_eq!(
            parse_vector(&json!({"resultType": "scalar", "result": [1.0, "3"]})),
            Ok(vec![(BTreeMap::new(), 3.0)])
        );
        assert!(parse_vector(&json!({"resultType": "matrix", "result": []})).is_err());
        assert!(parse_vector(
            &json!({"resultType": "vector", "result": [{"metric": {}, "value": [1, "x"]}]})
        )
        .is_err());
    }
}
