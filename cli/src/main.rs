//! `llm-ab`: configuration checks, experiment reports with significance,
//! and offline replay evals against a gateway running the llm-ab filter.

mod aggregates;
mod analysis;
mod fleet;
mod html;
mod prom;
mod records;
mod replay;
mod report;
mod shadow;
mod stats;
mod unit_report;

use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "llm-ab",
    version,
    about = "Reports, replay evals and config checks for the llm-ab Envoy filter",
    after_help = "Examples:\n  llm-ab check envoy/filter.json\n  llm-ab report --records access.log --config envoy/filter.json\n  llm-ab report --aggregates aggregates.csv --config envoy/filter.json --format json\n  llm-ab report --admin http://127.0.0.1:9901\n  llm-ab report --prometheus http://prometheus:9090 --range 24h\n  llm-ab report --stats stats.txt --format markdown --html report.html\n  llm-ab replay --dataset evals/sample.jsonl --gateway http://127.0.0.1:10000 \\\n      --variants control,candidate --token change-me --output result.json --fail-if-worse 5"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Markdown,
}

/// `llm-ab report`'s options.
#[derive(clap::Args)]
struct ReportArgs {
    /// Envoy admin base URL (reads /stats/prometheus): the live,
    /// request-level view.
    #[arg(long, conflicts_with_all = ["stats", "prometheus", "records", "aggregates"])]
    admin: Option<String>,
    /// A saved /stats/prometheus file.
    #[arg(long, conflicts_with_all = ["prometheus", "records", "aggregates"])]
    stats: Option<std::path::PathBuf>,
    /// Prometheus base URL: the report over every proxy it scrapes.
    #[arg(long, conflicts_with_all = ["records", "aggregates"])]
    prometheus: Option<String>,
    /// With --prometheus: the window (30m, 24h, 7d …); default the
    /// experiment's whole history, as far back as the series go.
    #[arg(long, requires = "prometheus", conflicts_with_all = ["admin", "stats"])]
    range: Option<String>,
    /// With --prometheus: the end of the window, RFC 3339 or unix
    /// seconds (default now).
    #[arg(long, requires = "prometheus", conflicts_with_all = ["admin", "stats"])]
    at: Option<String>,
    /// Access-log record files (JSON lines; `-` for stdin): the unit-level
    /// report, buckets as units.
    #[arg(long, num_args = 1.., value_name = "FILE", conflicts_with = "aggregates")]
    records: Vec<std::path::PathBuf>,
    /// With --records: the app's business outcomes, JSON lines
    /// {"trace_id", "metric", "value"}, joined by trace id.
    #[arg(long, value_name = "FILE", requires = "records")]
    outcomes: Option<std::path::PathBuf>,
    /// The result of analysis/aggregate.sql (CSV with a header, or JSON
    /// lines): the same report as --records, from a warehouse.
    #[arg(long, value_name = "FILE")]
    aggregates: Option<std::path::PathBuf>,
    /// The filter configuration: the weights of the sample-ratio check.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// The metric that decides the verdict (the others are guardrails).
    #[arg(long, default_value = "success_rate")]
    primary: String,
    /// Classic 95 % intervals, valid only when read once at a planned end,
    /// instead of always-valid confidence sequences.
    #[arg(long)]
    fixed_horizon: bool,
    /// The number of buckets (both arms together) where the confidence
    /// sequence is tightest.
    #[arg(long, default_value_t = analysis::DEFAULT_CS_TUNING, value_name = "BUCKETS")]
    cs_tuning: f64,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Also write a self-contained HTML page with charts.
    #[arg(long)]
    html: Option<std::path::PathBuf>,
    /// Name of the control variant (default: the configuration's, else
    /// "control", else the first).
    #[arg(long)]
    control: Option<String>,
    /// Smallest change in success rate worth detecting (for the sample
    /// size of the request-level report).
    #[arg(long, default_value_t = 0.02)]
    min_effect: f64,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a filter configuration with the filter's own code.
    Check {
        /// The filter configuration (JSON).
        config: std::path::PathBuf,
    },
    /// Report an experiment: from the access-log records or a warehouse's
    /// aggregates (unit-level, for decisions), or live from Envoy's stats.
    Report(Box<ReportArgs>),
    /// Send an offline eval set through the gateway once per variant and score it.
    Replay(replay::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => check(&config),
        Command::Report(args) => report_command(*args),
        Command::Replay(args) => replay::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("llm-ab: {message}");
            ExitCode::from(2)
        }
    }
}

fn check(path: &std::path::Path) -> Result<ExitCode, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match llm_ab::config::load(&bytes) {
        Ok(plan) => {
            for w in &plan.warnings {
                println!("warning: {w}");
            }
            println!(
                "{}: OK ({} experiment(s))",
                path.display(),
                plan.experiments.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors.0 {
                println!("{}: {}: {}", path.display(), e.path, e.message);
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn fetch(url: &str) -> Result<String, String> {
    let mut resp = ureq::get(url)
        .call()
        .map_err(|e| format!("cannot read {url}: {e}"))?;
    resp.body_mut()
        .read_to_string()
        .map_err(|e| format!("cannot read {url}: {e}"))
}

/// Where a report's samples come from.
enum Source {
    /// One Envoy's admin `/stats/prometheus`.
    Admin(String),
    /// A saved `/stats/prometheus` page.
    File(std::path::PathBuf),
    /// Every proxy a Prometheus scrapes.
    Prometheus {
        url: String,
        range: Option<String>,
        at: Option<String>,
    },
}

/// The samples of `source`: parsed exposition text, or the fleet's sums
/// from PromQL (the same names and labels, so one report computation).
fn samples(source: Source) -> Result<Vec<prom::Sample>, String> {
    let text = match source {
        Source::Admin(admin) => {
            fetch(&format!("{}/stats/prometheus", admin.trim_end_matches('/')))?
        }
        Source::File(path) => std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        Source::Prometheus { url, range, at } => {
            let client = fleet::Prometheus::new(&url);
            let window = fleet::window(&client, range.as_deref(), at.as_deref())?;
            let samples = fleet::samples(&client, &window)?;
            eprintln!(
                "llm-ab: every proxy {url} scrapes, {} ending at unix {} (step {}s)",
                fleet::format_duration(window.range_s),
                window.at,
                window.step_s
            );
            return Ok(samples);
        }
    };
    prom::parse(&text)
}

fn report_command(a: ReportArgs) -> Result<ExitCode, String> {
    if !a.records.is_empty() || a.aggregates.is_some() {
        return unit_level(&a);
    }
    let source = match (a.admin, a.stats, a.prometheus) {
        (Some(admin), _, _) => Source::Admin(admin),
        (None, Some(path), _) => Source::File(path),
        (None, None, Some(url)) => Source::Prometheus {
            url,
            range: a.range,
            at: a.at,
        },
        (None, None, None) => {
            return Err(
                "give --records FILE, --aggregates FILE, --admin URL, --stats FILE or --prometheus URL"
                    .into(),
            );
        }
    };
    report(source, a.format, a.html, a.control, a.min_effect)
}

/// Opens `path` for buffered reading (`-`: standard input).
fn open(path: &std::path::Path) -> Result<Box<dyn std::io::BufRead>, String> {
    const BUFFER: usize = 1 << 20;
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::BufReader::with_capacity(
            BUFFER,
            std::io::stdin(),
        )));
    }
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(Box::new(std::io::BufReader::with_capacity(BUFFER, file)))
}

/// The unit-level report: `--records` or `--aggregates`.
fn unit_level(a: &ReportArgs) -> Result<ExitCode, String> {
    let designs = match &a.config {
        Some(path) => {
            let bytes =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let plan = llm_ab::config::load(&bytes).map_err(|errors| {
                let first = errors
                    .0
                    .first()
                    .map_or(String::new(), |e| format!("{}: {}", e.path, e.message));
                format!(
                    "{} is not a valid filter configuration ({first}; `llm-ab check` lists every problem)",
                    path.display()
                )
            })?;
            Some(analysis::designs(&plan))
        }
        None => None,
    };
    let mut shadow = shadow::Tallies::default();
    let agg = if let Some(path) = &a.aggregates {
        let mut agg = aggregates::Aggregates::default();
        let counts = aggregates::read(open(path)?, &mut agg)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!(
            "llm-ab: {} aggregate rows from {}{}",
            counts.rows,
            path.display(),
            if counts.bad > 0 {
                format!(", {} unreadable and skipped", counts.bad)
            } else {
                String::new()
            }
        );
        agg
    } else {
        let mut reader = records::Reader::default();
        if let Some(path) = &a.outcomes {
            reader
                .read_outcomes(open(path)?)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        for path in &a.records {
            reader
                .read_records(open(path)?)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        shadow = reader.take_shadow();
        let (agg, c) = reader.finish();
        eprintln!(
            "llm-ab: {} lines, {} records counted; left out: {} no_key, {} forced, {} without a bucket, {} not in an experiment, {} not records",
            c.lines, c.records, c.no_key, c.forced, c.no_bucket, c.not_in_experiment, c.not_records
        );
        if c.shadow_records > 0 {
            eprintln!(
                "llm-ab: {} shadow records, for the shadow sections",
                c.shadow_records
            );
        }
        if a.outcomes.is_some() {
            eprintln!(
                "llm-ab: {} outcome lines, {} unreadable; {} outcome rows for trace ids no counted record has ({} of left-out requests)",
                c.outcome_lines, c.outcome_bad, c.outcome_unknown_trace, c.outcome_left_out
            );
        }
        agg
    };
    let names = analysis::metric_names(&agg);
    if !names.contains(&a.primary) {
        return Err(format!(
            "--primary {}: no such metric (one of: {})",
            a.primary,
            names.join(", ")
        ));
    }
    let options = analysis::Options {
        control: a.control.clone(),
        primary: a.primary.clone(),
        fixed_horizon: a.fixed_horizon,
        cs_tuning: a.cs_tuning,
    };
    if !(a.cs_tuning.is_finite() && a.cs_tuning >= 1.0) {
        return Err("--cs-tuning must be at least 1 (buckets)".into());
    }
    let mut reports = analysis::analyze(&agg, designs.as_ref(), &options);
    for e in &mut reports {
        let (cost, latency) = analysis::control_baseline(&agg, &e.experiment, &e.control);
        e.shadow = shadow.reports(&e.experiment, cost, &latency);
    }
    if reports.is_empty() {
        return Err("no experiment records to analyse".into());
    }
    for e in reports.iter().filter(|e| e.srm.mismatch) {
        eprintln!(
            "llm-ab: SAMPLE RATIO MISMATCH in experiment {} (p = {}): no verdicts",
            e.experiment,
            unit_report::p(e.srm.p_value)
        );
    }
    match a.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&reports).map_err(|e| e.to_string())?
        ),
        Format::Markdown => print!("{}", unit_report::render(&reports, true)),
        Format::Table => print!("{}", unit_report::render(&reports, false)),
    }
    if let Some(path) = &a.html {
        std::fs::write(path, html::render_units(&reports))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn report(
    source: Source,
    format: Format,
    html: Option<std::path::PathBuf>,
    control: Option<String>,
    min_effect: f64,
) -> Result<ExitCode, String> {
    let samples = samples(source)?;
    let reports = report::build(&samples, control.as_deref(), min_effect);
    if reports.is_empty() {
        return Err("no llm-ab experiment metrics in these stats".into());
    }
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&reports).map_err(|e| e.to_string())?
        ),
        Format::Markdown => {
            print!("{}", report::render_table(&reports, true, min_effect));
            println!("_{}_", report::REQUEST_LEVEL_NOTE);
        }
        Format::Table => {
            let text = report::render_table(&reports, false, min_effect);
            if std::io::stdout().is_terminal() {
                print!("{}", colorize(&text));
            } else {
                print!("{text}");
            }
            println!("{}", report::REQUEST_LEVEL_NOTE);
        }
    }
    if matches!(format, Format::Json) {
        eprintln!("llm-ab: {}", report::REQUEST_LEVEL_NOTE);
    }
    if let Some(path) = html {
        let page = html::render(&reports, min_effect);
        std::fs::write(&path, page).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Colors verdicts on a terminal.
fn colorize(text: &str) -> String {
    text.replace(": better", ": \x1b[32mbetter\x1b[0m")
        .replace(": worse", ": \x1b[31mworse\x1b[0m")
        .replace(
            ": not yet significant",
            ": \x1b[33mnot yet significant\x1b[0m",
        )
}
