//! A self-contained HTML report: SVG charts (success rate with 95 % error
//! bars, latency percentiles, cost per 1,000 requests), the verdicts, and
//! the numbers as a table. No scripts, no external files.

use crate::report::{ExperimentReport, VariantReport};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One color per variant, control first.
const COLORS: [&str; 6] = [
    "#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2",
];

/// One bar: label, value, optional interval, variant index (its color).
type Bar = (String, f64, Option<(f64, f64)>, usize);

/// How bar values are written.
#[derive(Clone, Copy)]
enum Unit {
    Percent,
    Millis,
    Dollars,
}

fn value_text(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Percent => format!("{v:.1}%"),
        Unit::Millis => format!("{v:.0} ms"),
        Unit::Dollars => format!("${v:.4}"),
    }
}

/// A horizontal bar chart.
fn bars(title: &str, unit: Unit, rows: &[Bar]) -> String {
    let max = rows
        .iter()
        .map(|(_, v, ci, _)| ci.map_or(*v, |c| c.1).max(*v))
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let (width, bar_h, left) = (640.0, 24.0, 170.0);
    let height = 36.0 + rows.len() as f64 * (bar_h + 8.0);
    let scale = |x: f64| left + (width - left - 90.0) * x / max;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{t}"><text x="0" y="16" font-size="14" font-weight="bold">{t}</text>"#,
        t = esc(title)
    );
    for (i, (label, v, ci, color)) in rows.iter().enumerate() {
        let y = 28.0 + i as f64 * (bar_h + 8.0);
        svg.push_str(&format!(
            r#"<text x="0" y="{ty}" font-size="12">{l}</text><rect x="{left}" y="{y}" width="{w:.1}" height="{bar_h}" rx="2" fill="{c}"/><text x="{tx:.1}" y="{ty}" font-size="12">{text}</text>"#,
            ty = y + 16.0,
            l = esc(label),
            w = (scale(*v) - left).max(1.0),
            c = COLORS[color % COLORS.len()],
            tx = scale(ci.map_or(*v, |c| c.1)) + 6.0,
            text = value_text(*v, unit),
        ));
        if let Some((lo, hi)) = ci {
            let ym = y + bar_h / 2.0;
            svg.push_str(&format!(
                r##"<line x1="{a:.1}" y1="{ym}" x2="{b:.1}" y2="{ym}" stroke="#222" stroke-width="2"/><line x1="{a:.1}" y1="{y1}" x2="{a:.1}" y2="{y2}" stroke="#222" stroke-width="2"/><line x1="{b:.1}" y1="{y1}" x2="{b:.1}" y2="{y2}" stroke="#222" stroke-width="2"/>"##,
                a = scale(*lo),
                b = scale(*hi),
                y1 = ym - 7.0,
                y2 = ym + 7.0
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The numbers of one experiment as an HTML table.
fn table(e: &ExperimentReport) -> String {
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let ms = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.0}"));
    let mut out = String::from(
        "<table><tr><th>variant</th><th>requests</th><th>success (95% CI)</th><th>error</th><th>fallback</th><th>refusal</th><th>blocked</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>TTFT p50</th><th>tokens in/1k</th><th>tokens out/1k</th><th>$/1k</th></tr>",
    );
    for v in &e.variants {
        let rate = |k: &str| v.rates.get(k).map_or("–".to_string(), |r| pct(r.value));
        let success = v.rates.get("success").map_or("–".to_string(), |r| {
            format!(
                "{} <small>[{}, {}]</small>",
                pct(r.value),
                pct(r.low),
                pct(r.high)
            )
        });
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{success}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>${:.4}</td></tr>",
            esc(&v.variant),
            v.requests,
            rate("error"),
            rate("fallback"),
            rate("refusal"),
            rate("blocked"),
            ms(v.latency_ms.p50),
            ms(v.latency_ms.p95),
            ms(v.latency_ms.p99),
            ms(v.ttft_ms.p50),
            v.tokens_in_per_1k,
            v.tokens_out_per_1k,
            v.cost_usd_per_1k
        ));
    }
    out.push_str("</table>");
    out
}

type Pick = fn(&VariantReport) -> Option<f64>;

/// The whole page.
pub fn render(reports: &[ExperimentReport], min_effect: f64) -> String {
    let mut body = String::new();
    for e in reports {
        body.push_str(&format!(
            "<h2>Experiment {} <small>(control: {})</small></h2><ul>",
            esc(&e.experiment),
            esc(&e.control)
        ));
        for v in e.variants.iter().skip(1) {
            let class = match v.verdict.as_str() {
                "better" => "good",
                "worse" => "bad",
                _ => "wait",
            };
            body.push_str(&format!(
                "<li class=\"{class}\">{}</li>",
                esc(&crate::report::verdict_line(v, &e.control, min_effect))
            ));
        }
        body.push_str("</ul>");
        let success: Vec<Bar> = e
            .variants
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let r = v.rates.get("success")?;
                Some((
                    v.variant.clone(),
                    r.value * 100.0,
                    Some((r.low * 100.0, r.high * 100.0)),
                    i,
                ))
            })
            .collect();
        body.push_str(&bars(
            "Success rate (95% interval)",
            Unit::Percent,
            &success,
        ));
        let mut latency: Vec<Bar> = Vec::new();
        let picks: [(&str, Pick); 3] = [
            ("p50", |v| v.latency_ms.p50),
            ("p95", |v| v.latency_ms.p95),
            ("p99", |v| v.latency_ms.p99),
        ];
        for (name, pick) in picks {
            for (i, v) in e.variants.iter().enumerate() {
                if let Some(p) = pick(v) {
                    latency.push((format!("{} {name}", v.variant), p, None, i));
                }
            }
        }
        if !latency.is_empty() {
            body.push_str(&bars("Latency (ms)", Unit::Millis, &latency));
        }
        let cost: Vec<Bar> = e
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| (v.variant.clone(), v.cost_usd_per_1k, None, i))
            .collect();
        body.push_str(&bars(
            "Estimated cost per 1,000 requests (USD)",
            Unit::Dollars,
            &cost,
        ));
        body.push_str(&table(e));
    }
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>llm-ab report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}}svg{{display:block;margin:1.2em 0}}
.good{{color:#1a7f37}}.bad{{color:#cf222e}}.wait{{color:#9a6700}}
table{{border-collapse:collapse;font-size:13px;margin:1em 0}}td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}</style></head>
<body><h1>llm-ab experiment report</h1>{body}<p><small>{note}</small></p></body></html>"#,
        note = esc(crate::report::REQUEST_LEVEL_NOTE)
    )
}

/// One metric's difference from control over time, per treatment: the
/// interval as a band, the difference as a line, zero as a rule.
fn over_time_chart(e: &crate::analysis::ExperimentAnalysis, metric: &str) -> String {
    let treatments: Vec<&str> = e.verdicts.iter().map(|v| v.variant.as_str()).collect();
    let mut days: Vec<&str> = e
        .over_time
        .iter()
        .filter(|p| p.metric == metric)
        .map(|p| p.day.as_str())
        .collect();
    days.dedup();
    let points = |t: &str| -> Vec<(usize, f64, f64, f64)> {
        e.over_time
            .iter()
            .filter(|p| p.metric == metric && p.variant == t)
            .filter_map(|p| {
                let x = days.iter().position(|d| *d == p.day)?;
                Some((
                    x,
                    p.diff?,
                    p.ci_low.unwrap_or(p.diff?),
                    p.ci_high.unwrap_or(p.diff?),
                ))
            })
            .collect()
    };
    let all: Vec<(usize, f64, f64, f64)> = treatments.iter().flat_map(|t| points(t)).collect();
    if all.is_empty() {
        return String::new();
    }
    let lo = all.iter().map(|p| p.2).fold(0.0_f64, f64::min);
    let hi = all.iter().map(|p| p.3).fold(0.0_f64, f64::max);
    let span = (hi - lo).max(1e-12);
    let (width, height, left, top, bottom) = (640.0, 180.0, 60.0, 24.0, 24.0);
    let plot_h = height - top - bottom;
    let x_of = |i: usize| {
        if days.len() <= 1 {
            left + (width - left - 20.0) / 2.0
        } else {
            left + (width - left - 20.0) * i as f64 / (days.len() - 1) as f64
        }
    };
    let y_of = |v: f64| top + plot_h * (hi - v) / span;
    let unit = |v: f64| crate::unit_report::delta(metric, Some(v));
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{t}"><text x="0" y="14" font-size="13" font-weight="bold">{t}</text><line x1="{left}" y1="{z:.1}" x2="{r}" y2="{z:.1}" stroke="#999" stroke-dasharray="4 3"/><text x="0" y="{yt:.1}" font-size="11">{hi_t}</text><text x="0" y="{yb:.1}" font-size="11">{lo_t}</text>"##,
        t = esc(&format!(
            "{metric}: difference from control, interval through each day"
        )),
        z = y_of(0.0),
        r = width - 20.0,
        yt = top + 4.0,
        yb = top + plot_h,
        hi_t = esc(&unit(hi)),
        lo_t = esc(&unit(lo)),
    );
    for (k, t) in treatments.iter().enumerate() {
        let pts = points(t);
        let color = COLORS[(k + 1) % COLORS.len()];
        if pts.len() == 1 {
            let (x, d, l, h) = pts[0];
            svg.push_str(&format!(
                r#"<line x1="{x:.1}" y1="{a:.1}" x2="{x:.1}" y2="{b:.1}" stroke="{color}" stroke-width="3"/><circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{color}"/>"#,
                x = x_of(x),
                a = y_of(l),
                b = y_of(h),
                y = y_of(d)
            ));
        } else {
            let upper: Vec<String> = pts
                .iter()
                .map(|p| format!("{:.1},{:.1}", x_of(p.0), y_of(p.3)))
                .collect();
            let lower: Vec<String> = pts
                .iter()
                .rev()
                .map(|p| format!("{:.1},{:.1}", x_of(p.0), y_of(p.2)))
                .collect();
            let line: Vec<String> = pts
                .iter()
                .map(|p| format!("{:.1},{:.1}", x_of(p.0), y_of(p.1)))
                .collect();
            svg.push_str(&format!(
                r#"<polygon points="{} {}" fill="{color}" fill-opacity="0.2"/><polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                upper.join(" "),
                lower.join(" "),
                line.join(" ")
            ));
        }
        svg.push_str(&format!(
            r#"<text x="{x:.1}" y="{y:.1}" font-size="11" fill="{color}">{name}</text>"#,
            x = left + 120.0 * k as f64,
            y = height - 4.0,
            name = esc(t)
        ));
    }
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        svg.push_str(&format!(
            r#"<text x="{left}" y="{y:.1}" font-size="11">{first}</text><text x="{r:.1}" y="{y:.1}" font-size="11" text-anchor="end">{last}</text>"#,
            y = height - 14.0,
            r = width - 20.0
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// The unit-level analysis (`--records`, `--aggregates`) as a page: the
/// sample-ratio check first, the verdicts, the metrics table, and each
/// metric's interval day by day.
pub fn render_units(reports: &[crate::analysis::ExperimentAnalysis]) -> String {
    use crate::unit_report as text;
    let mut body = String::new();
    for e in reports {
        body.push_str(&format!(
            "<h2>Experiment {} <small>(control: {}; unit: bucket; {})</small></h2>",
            esc(&e.experiment),
            esc(&e.control),
            esc(&text::interval_name(e))
        ));
        let class = if e.srm.mismatch { "srm bad" } else { "srm" };
        body.push_str(&format!("<div class=\"{class}\">"));
        for l in text::srm_lines(e) {
            body.push_str(&format!("<p>{}</p>", esc(&l)));
        }
        body.push_str("</div><ul>");
        for (v, line) in e.verdicts.iter().zip(text::verdict_lines(e)) {
            let class = match v.verdict.as_str() {
                "better" if v.guardrails_worse.is_empty() => "good",
                "worse" => "bad",
                _ if !v.guardrails_worse.is_empty() || e.srm.mismatch => "bad",
                _ => "wait",
            };
            body.push_str(&format!("<li class=\"{class}\">{}</li>", esc(&line)));
        }
        body.push_str(
            "</ul><table><tr><th>variant</th><th>units</th><th>buckets</th><th>requests</th></tr>",
        );
        for v in &e.variants {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&v.variant),
                v.units,
                v.buckets,
                v.requests
            ));
        }
        body.push_str("</table><table><tr><th>metric</th><th>variant</th><th>control</th><th>value</th><th>difference [interval]</th><th>p</th><th>p (Holm)</th></tr>");
        for r in e.metrics.iter().filter(|r| r.variant != e.control) {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.metric),
                esc(&r.variant),
                esc(&text::value(&r.metric, r.control_value)),
                esc(&text::value(&r.metric, r.value)),
                esc(&text::delta_with_interval(r)),
                esc(&text::p(r.p_value)),
                esc(&text::p(r.p_holm))
            ));
        }
        body.push_str("</table>");
        let mut metrics: Vec<&str> = e
            .metrics
            .iter()
            .filter(|r| r.variant == e.control)
            .map(|r| r.metric.as_str())
            .collect();
        metrics.dedup();
        for m in metrics {
            body.push_str(&over_time_chart(e, m));
        }
    }
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>llm-ab unit-level report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}}svg{{display:block;margin:1.2em 0}}
.good{{color:#1a7f37}}.bad{{color:#cf222e}}.wait{{color:#9a6700}}.srm.bad{{border:3px solid #cf222e;padding:0 1em;font-weight:bold}}
table{{border-collapse:collapse;font-size:13px;margin:1em 0}}td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}</style></head>
<body><h1>llm-ab experiment report (unit level)</h1>{body}</body></html>"#
    )
}
