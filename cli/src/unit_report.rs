//! The unit-level analysis as text: plain tables or Markdown, the
//! sample-ratio check first, then sizes, metrics and verdicts.

use crate::analysis::{ExperimentAnalysis, MetricRow};

/// How a metric's values are written.
#[derive(Clone, Copy, PartialEq)]
enum Style {
    Rate,
    Dollars,
    Millis,
    Plain,
}

fn style(metric: &str) -> Style {
    if metric.ends_with("_rate") {
        Style::Rate
    } else if metric == "cost_per_request" {
        Style::Dollars
    } else if metric.starts_with("latency_ms") {
        Style::Millis
    } else {
        Style::Plain
    }
}

/// `v` with `digits` significant digits (scientific below 0.001).
fn significant(v: f64, digits: i32, sign: bool) -> String {
    if v != 0.0 && v.is_finite() && v.abs() < 1e-3 {
        let decimals = (digits - 1).max(0) as usize;
        return if sign {
            format!("{v:+.decimals$e}")
        } else {
            format!("{v:.decimals$e}")
        };
    }
    let decimals = if v == 0.0 || !v.is_finite() {
        0
    } else {
        (digits - 1 - v.abs().log10().floor() as i32).max(0) as usize
    };
    if sign {
        format!("{v:+.decimals$}")
    } else {
        format!("{v:.decimals$}")
    }
}

/// A metric value.
pub fn value(metric: &str, v: Option<f64>) -> String {
    let Some(v) = v else {
        return "-".into();
    };
    match style(metric) {
        Style::Rate => format!("{:.2}%", v * 100.0),
        Style::Dollars => format!("${}", significant(v, 4, false)),
        Style::Millis => format!("{v:.1} ms"),
        Style::Plain => significant(v, 5, false),
    }
}

/// A difference (signed; rates in points).
pub fn delta(metric: &str, v: Option<f64>) -> String {
    let Some(v) = v else {
        return "-".into();
    };
    match style(metric) {
        Style::Rate => format!("{:+.2} pts", v * 100.0),
        Style::Dollars => significant(v, 3, true),
        Style::Millis => format!("{v:+.1}"),
        Style::Plain => significant(v, 4, true),
    }
}

/// A difference with its interval: `-0.90 pts [-1.50, -0.30]`.
pub fn delta_with_interval(row: &MetricRow) -> String {
    let bound = |v: Option<f64>| {
        let text = delta(&row.metric, v);
        text.trim_end_matches(" pts").to_string()
    };
    match (row.ci_low, row.ci_high) {
        (Some(_), Some(_)) => format!(
            "{} [{}, {}]",
            delta(&row.metric, row.diff),
            bound(row.ci_low),
            bound(row.ci_high)
        ),
        _ => delta(&row.metric, row.diff),
    }
}

/// A p-value.
pub fn p(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v < 1e-4 => format!("{v:.1e}"),
        Some(v) => format!("{v:.4}"),
    }
}

/// The interval's name.
pub fn interval_name(e: &ExperimentAnalysis) -> String {
    match e.inference.cs_tuning {
        Some(t) => format!(
            "always-valid {:.0}% confidence sequence (tuned for {t:.0} buckets)",
            (1.0 - e.inference.alpha) * 100.0
        ),
        None => format!(
            "fixed-horizon {:.0}% interval",
            (1.0 - e.inference.alpha) * 100.0
        ),
    }
}

/// The sample-ratio check, as lines (the first is the loud one on a mismatch).
pub fn srm_lines(e: &ExperimentAnalysis) -> Vec<String> {
    let s = &e.srm;
    let mut out = Vec::new();
    let what = if s.unit == "unit_id" {
        "distinct unit ids"
    } else {
        "buckets with traffic"
    };
    if s.mismatch {
        out.push(format!(
            "!!! SAMPLE RATIO MISMATCH (p = {}): the variants did not get the {what} their weights give them. Assignment, fallback or logging loses some users: NO VERDICTS until the cause is found.",
            p(s.p_value)
        ));
    }
    let counts: Vec<String> = s
        .counts
        .iter()
        .map(|c| match c.expected_share {
            Some(share) => format!(
                "{} {} (expected {:.2}%)",
                c.variant,
                c.observed,
                share * 100.0
            ),
            None => format!("{} {}", c.variant, c.observed),
        })
        .collect();
    match (s.p_value, s.chi2, s.df) {
        (Some(pv), Some(x), Some(df)) => out.push(format!(
            "sample ratio: p = {} (χ² {x:.2}, {df:.0} df) on {what}: {}",
            p(Some(pv)),
            counts.join(", ")
        )),
        _ => out.push(format!(
            "sample ratio: not checked; {what}: {}",
            counts.join(", ")
        )),
    }
    out.extend(s.notes.iter().map(|n| format!("note: {n}")));
    out
}

/// One line per treatment.
pub fn verdict_lines(e: &ExperimentAnalysis) -> Vec<String> {
    e.verdicts
        .iter()
        .map(|v| {
            let primary = e
                .metrics
                .iter()
                .find(|r| r.variant == v.variant && r.metric == e.primary);
            let detail = primary.map_or(String::new(), |r| {
                format!(" ({}, p={})", delta_with_interval(r), p(r.p_value))
            });
            let guard = if v.guardrails_worse.is_empty() {
                "no guardrail worse".to_string()
            } else {
                format!("guardrails worse: {}", v.guardrails_worse.join(", "))
            };
            format!(
                "{} vs {}: {} on {}{detail}; {guard}",
                v.variant, e.control, v.verdict, e.primary
            )
        })
        .collect()
}

/// A plain-text table (columns padded to their widest cell) or a Markdown one.
pub fn table(header: &[&str], rows: &[Vec<String>], markdown: bool, out: &mut String) {
    if markdown {
        out.push_str(&format!(
            "| {} |\n|{}\n",
            header.join(" | "),
            "---|".repeat(header.len())
        ));
        for r in rows {
            out.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        return;
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    out.push_str(&line(header.to_vec()));
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
}

/// Plain-text or Markdown report.
pub fn render(reports: &[ExperimentAnalysis], markdown: bool) -> String {
    let mut out = String::new();
    for e in reports {
        out.push_str(&format!(
            "{}experiment {} (control: {}; unit: bucket; {})\n\n",
            if markdown { "### " } else { "" },
            e.experiment,
            e.control,
            interval_name(e)
        ));
        for l in srm_lines(e) {
            out.push_str(&format!("{}{l}\n", if markdown { "- " } else { "" }));
        }
        out.push('\n');
        let sizes: Vec<Vec<String>> = e
            .variants
            .iter()
            .map(|v| {
                vec![
                    v.variant.clone(),
                    v.units.to_string(),
                    v.buckets.to_string(),
                    v.requests.to_string(),
                ]
            })
            .collect();
        table(
            &["variant", "units", "buckets", "requests"],
            &sizes,
            markdown,
            &mut out,
        );
        out.push('\n');
        let rows: Vec<Vec<String>> = e
            .metrics
            .iter()
            .filter(|r| r.variant != e.control)
            .map(|r| {
                vec![
                    if r.role == "primary" {
                        format!("{} (primary)", r.metric)
                    } else {
                        r.metric.clone()
                    },
                    r.variant.clone(),
                    value(&r.metric, r.control_value),
                    value(&r.metric, r.value),
                    delta_with_interval(r),
                    p(r.p_value),
                    p(r.p_holm),
                ]
            })
            .collect();
        let interval = if e.inference.cs_tuning.is_some() {
            "diff [95% CS]"
        } else {
            "diff [95% CI]"
        };
        table(
            &[
                "metric", "variant", "control", "value", interval, "p", "p (Holm)",
            ],
            &rows,
            markdown,
            &mut out,
        );
        out.push('\n');
        for l in verdict_lines(e) {
            out.push_str(&format!("{}{l}\n", if markdown { "- " } else { "" }));
        }
        out.push('\n');
        out.push_str(&crate::shadow::render(&e.shadow, &e.control, markdown));
    }
    out
}
