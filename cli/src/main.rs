//! `llm-ab`: configuration checks, experiment reports with significance,
//! and offline replay evals against a gateway running the llm-ab filter.

mod html;
mod prom;
mod replay;
mod report;
mod stats;

use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "llm-ab",
    version,
    about = "Reports, replay evals and config checks for the llm-ab Envoy filter",
    after_help = "Examples:\n  llm-ab check envoy/filter.json\n  llm-ab report --admin http://127.0.0.1:9901\n  llm-ab report --stats stats.txt --format markdown --html report.html\n  llm-ab replay --dataset evals/sample.jsonl --gateway http://127.0.0.1:10000 \\\n      --variants control,candidate --token change-me --output result.json --fail-if-worse 5"
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
        #[arg(long, conflicts_with = "stats")]
        admin: Option<String>,
        /// A saved /stats/prometheus file.
        #[arg(long)]
        stats: Option<std::path::PathBuf>,
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
            format,
            html,
            control,
            min_effect,
        } => report(admin, stats, format, html, control, min_effect),
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

fn report(
    admin: Option<String>,
    stats: Option<std::path::PathBuf>,
    format: Format,
    html: Option<std::path::PathBuf>,
    control: Option<String>,
    min_effect: f64,
) -> Result<ExitCode, String> {
    let text = match (admin, stats) {
        (Some(admin), _) => fetch(&format!("{}/stats/prometheus", admin.trim_end_matches('/')))?,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        (None, None) => return Err("give --admin URL or --stats FILE".into()),
    };
    let samples = prom::parse(&text)?;
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
