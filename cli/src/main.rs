//! `llm-ab`: configuration checks, experiment reports with significance,
//! and offline replay evals against a gateway running the llm-ab filter.

mod fleet;
mod html;
mod prom;
mod replay;
mod report;
mod shadow;
mod stats;

use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "llm-ab",
    version,
    about = "Reports, replay evals and config checks for the llm-ab Envoy filter",
    after_help = "Examples:\n  llm-ab check envoy/filter.json\n  llm-ab report --admin http://127.0.0.1:9901\n  llm-ab report --prometheus http://prometheus:9090 --range 24h\n  llm-ab report --stats stats.txt --format markdown --html report.html\n  llm-ab replay --dataset evals/sample.jsonl --gateway http://127.0.0.1:10000 \\\n      --variants control,candidate --token change-me --output result.json --fail-if-worse 5"
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

#[derive(Subcommand)]
enum Command {
    /// Validate a filter configuration with the filter's own code.
    Check {
        /// The filter configuration (JSON).
        config: std::path::PathBuf,
    },
    /// Report an experiment from Envoy's stats: rates, intervals, p-values, verdicts.
    Report {
        /// Envoy admin base URL (reads /stats/prometheus).
        #[arg(long, conflicts_with_all = ["stats", "prometheus"])]
        admin: Option<String>,
        /// A saved /stats/prometheus file.
        #[arg(long, conflicts_with = "prometheus")]
        stats: Option<std::path::PathBuf>,
        /// Prometheus base URL: the report over every proxy it scrapes.
        #[arg(long)]
        prometheus: Option<String>,
        /// With --prometheus: the window (30m, 24h, 7d …); default the
        /// experiment's whole history, as far back as the series go.
        #[arg(long, requires = "prometheus", conflicts_with_all = ["admin", "stats"])]
        range: Option<String>,
        /// With --prometheus: the end of the window, RFC 3339 or unix
        /// seconds (default now).
        #[arg(long, requires = "prometheus", conflicts_with_all = ["admin", "stats"])]
        at: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Also write a self-contained HTML page with charts.
        #[arg(long)]
        html: Option<std::path::PathBuf>,
        /// Name of the control variant (default: "control", else the first).
        #[arg(long)]
        control: Option<String>,
        /// Smallest change in success rate worth detecting (for the sample size).
        #[arg(long, default_value_t = 0.02)]
        min_effect: f64,
    },
    /// Send an offline eval set through the gateway once per variant and score it.
    Replay(replay::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => check(&config),
        Command::Report {
            admin,
            stats,
            prometheus,
            range,
            at,
            format,
            html,
            control,
            min_effect,
        } => {
            let source = match (admin, stats, prometheus) {
                (Some(admin), _, _) => Source::Admin(admin),
                (None, Some(path), _) => Source::File(path),
                (None, None, Some(url)) => Source::Prometheus { url, range, at },
                (None, None, None) => {
                    eprintln!("llm-ab: give --admin URL, --stats FILE or --prometheus URL");
                    return ExitCode::from(2);
                }
            };
            report(source, format, html, control, min_effect)
        }
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
        Format::Markdown => print!("{}", report::render_table(&reports, true, min_effect)),
        Format::Table => {
            let text = report::render_table(&reports, false, min_effect);
            if std::io::stdout().is_terminal() {
                print!("{}", colorize(&text));
            } else {
                print!("{text}");
            }
        }
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
