//! A self-contained HTML report: tables plus SVG charts (success rate with
//! 95 % error bars, latency percentiles, cost per 1,000 requests).

use crate::report::ExperimentReport;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLORS: [&str; 6] = [
    "#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2",
];

/// One bar: label, value, optional interval.
type Bar = (String, f64, Option<(f64, f64)>);

/// A horizontal bar chart.
fn bars(title: &str, unit: &str, rows: &[Bar]) -> String {
    let max = rows
        .iter()
        .map(|(_, v, ci)| ci.map_or(*v, |c| c.1).max(*v))
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let (width, bar_h, left) = (560.0, 26.0, 150.0);
    let height = 40.0 + rows.len() as f64 * (bar_h + 10.0);
    let scale = |x: f64| left + (width - left - 60.0) * x / max;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{t}"><text x="0" y="18" font-size="14" font-weight="bold">{t}</text>"#,
        t = esc(title)
    );
    for (i, (label, v, ci)) in rows.iter().enumerate() {
        let y = 30.0 + i as f64 * (bar_h + 10.0);
        svg.push_str(&format!(
            r#"<text x="0" y="{ty}" font-size="12">{l}</text><rect x="{left}" y="{y}" width="{w:.1}" height="{bar_h}" fill="{c}"/><text x="{tx:.1}" y="{ty}" font-size="12">{v}{unit}</text>"#,
            ty = y + 17.0,
            l = esc(label),
            w = (scale(*v) - left).max(1.0),
            c = COLORS[i % COLORS.len()],
            tx = scale(ci.map_or(*v, |c| c.1)) + 6.0,
            v = if unit == "%" { format!("{:.1}", v) } else { format!("{:.4}", v).trim_end_matches('0').trim_end_matches('.').to_string() },
        ));
        if let Some((lo, hi)) = ci {
            let ym = y + bar_h / 2.0;
            svg.push_str(&format!(
                r#"<line x1="{a:.1}" y1="{ym}" x2="{b:.1}" y2="{ym}" stroke="black" stroke-width="2"/><line x1="{a:.1}" y1="{y1}" x2="{a:.1}" y2="{y2}" stroke="black"/><line x1="{b:.1}" y1="{y1}" x2="{b:.1}" y2="{y2}" stroke="black"/>"#,
                a = scale(*lo),
                b = scale(*hi),
                y1 = ym - 6.0,
                y2 = ym + 6.0
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The whole page.
pub fn render(reports: &[ExperimentReport], table_markdown: &str, min_effect: f64) -> String {
    let mut body = String::new();
    for e in reports {
        body.push_str(&format!(
            "<h2>Experiment {} <small>(control: {})</small></h2>",
            esc(&e.experiment),
            esc(&e.control)
        ));
        let success: Vec<_> = e
            .variants
            .iter()
            .filter_map(|v| {
                v.rates.get("success").map(|r| {
                    (
                        v.variant.clone(),
                        r.value * 100.0,
                        Some((r.low * 100.0, r.high * 100.0)),
                    )
                })
            })
            .collect();
        body.push_str(&bars("Success rate (95% interval)", "%", &success));
        let mut latency = Vec::new();
        for v in &e.variants {
            for (name, p) in [
                ("p50", v.latency_ms.p50),
                ("p95", v.latency_ms.p95),
                ("p99", v.latency_ms.p99),
            ] {
                if let Some(p) = p {
                    latency.push((format!("{} {name}", v.variant), p, None));
                }
            }
        }
        if !latency.is_empty() {
            body.push_str(&bars("Latency (ms)", " ms", &latency));
        }
        let cost: Vec<_> = e
            .variants
            .iter()
            .map(|v| (v.variant.clone(), v.cost_usd_per_1k, None))
            .collect();
        body.push_str(&bars(
            "Estimated cost per 1,000 requests (USD)",
            " $",
            &cost,
        ));
        body.push_str("<ul>");
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
    }
    let table = esc(table_markdown);
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>llm-ab report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}}svg{{display:block;margin:1em 0}}
.good{{color:#1a7f37}}.bad{{color:#cf222e}}.wait{{color:#9a6700}}pre{{background:#f6f8fa;padding:1em;overflow:auto;font-size:12px}}</style></head>
<body><h1>llm-ab experiment report</h1>{body}<h2>Numbers</h2><pre>{table}</pre></body></html>"#
    )
}
