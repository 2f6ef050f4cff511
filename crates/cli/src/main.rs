//! `promlearn`: Prometheus metrics to ML data and models, from the command line.

use std::{process::ExitCode, time::Duration};

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

mod conn;
mod detect;
mod dns;
mod output;
mod plot;
mod promapi;
mod scrape;
mod series;
mod timeutil;
mod train;
mod ui;
mod watch;

use timeutil::{parse_duration, parse_time};

#[derive(Parser, Debug)]
#[command(
    name = "promlearn",
    version,
    about = "Prometheus metrics to ML data and models: load, scrape, train, detect, dns, watch.",
    after_help = "Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=info or RUST_LOG=promlearn=debug) for more.\n\
                  Run `promlearn <COMMAND> --help` for each command's flags and examples."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a PromQL query over a time range; print a summary or write CSV, Parquet or JSON.
    #[command(after_help = LOAD_EXAMPLES)]
    Load(load::LoadArgs),
    /// Read a /metrics endpoint at an interval and stream every sample with its labels.
    #[command(after_help = SCRAPE_EXAMPLES)]
    Scrape(scrape::ScrapeArgs),
    /// Train the LSTM detector on one series and save it (forecaster and anomaly band).
    #[command(after_help = TRAIN_EXAMPLES)]
    Train(train::TrainArgs),
    /// Judge a series (a range, or live) with a saved model or a detector fitted on the spot; report the anomalies.
    #[command(after_help = DETECT_EXAMPLES)]
    Detect(detect::DetectArgs),
    /// DNS traffic: one dig-like query, or a load run that follows a rate profile.
    #[command(subcommand)]
    Dns(dns::DnsCommand),
    /// Serve anomaly scores of PromQL queries on /metrics, as a long-running service (TOML config).
    #[command(after_help = WATCH_EXAMPLES)]
    Watch(watch::WatchArgs),
    /// Serve the web page's explore view alone: backtest detectors on a Prometheus's history from a browser.
    Ui(ui::UiArgs),
}

mod load;

const LOAD_EXAMPLES: &str = "Examples:
  promlearn load 'rate(coredns_dns_requests_total[1m])' --last 1h --step 15s
  promlearn load 'coredns_dns_requests_total' --last 30m --output requests.parquet
  promlearn load 'up' --start 2024-05-01T00:00:00Z --end 2024-05-02T00:00:00Z --step 1m -o up.csv
  promlearn load 'coredns_dns_requests_total' --last 10m --format json   (no --step: raw samples)
  PROMLEARN_BASIC_AUTH=me:secret promlearn load up --endpoint https://prom.example.org --last 1h --step 1m";

const SCRAPE_EXAMPLES: &str = "Examples:
  promlearn scrape http://localhost:9153/metrics --count 3
  promlearn scrape http://localhost:9153/metrics --interval 5s --duration 1m --format json
  promlearn scrape http://localhost:9153/metrics -M coredns_dns_requests_total -M coredns_dns_request_duration_seconds -n 1
  promlearn scrape https://node:9100/metrics --ca-cert ca.pem --bearer-token-file token -o samples.csv -n 10";

const TRAIN_EXAMPLES: &str = "Examples:
  promlearn train 'sum(rate(coredns_dns_requests_total[1m]))' --last 6h --step 15s --model ./dns-model
  promlearn train 'sum(rate(coredns_dns_requests_total[1m]))' --last 1h --step 5s --window 12 --hidden 16 \\
      --epochs 50 --quantile 0.995 --model ./dns-model";

const DETECT_EXAMPLES: &str = "Examples:
  promlearn detect --model ./dns-model --last 1h
  promlearn detect --model ./dns-model --last 1h --output anomalies.csv --plot anomalies.png
  promlearn detect --model ./dns-model --live --interval 15s --last 30m --format json
  promlearn detect --model ./dns-model --query 'sum(rate(coredns_dns_requests_total{zone=\"example.org.\"}[1m]))' --last 2h
  promlearn detect --query 'sum(rate(coredns_dns_requests_total[1m]))' --last 6h --step 1m --detector zscore --plot z.png
  promlearn detect --query 'sum(rate(coredns_dns_requests_total[1m]))' --last 1h --detector '{\"kind\":\"mad\",\"threshold\":6}'
  promlearn detect --query 'sum(rate(coredns_dns_requests_total[1m]))' --last 1h --detector lstm --fit-window 6h";

const WATCH_EXAMPLES: &str = "Examples:
  promlearn watch --config examples/watch/watch.toml
  promlearn watch --config watch.toml --listen 0.0.0.0:9464
  promlearn watch --config watch.toml --check
  promlearn watch --config watch.toml --web.config.file web.yml
  promlearn watch --config watch.toml --backtest --from -7d --output backtest.csv
  promlearn watch --config watch.toml --backtest --from 2024-05-01T00:00:00Z --to 2024-05-02T00:00:00Z -o may1.csv";

/// A time range: `--start`/`--end`, or `--last` before `--end` (default: now).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Time range")]
pub struct RangeArgs {
    /// Start of the range: RFC 3339 (2024-05-01T12:00:00Z), unix seconds or `now`.
    #[arg(long, value_name = "TIME", value_parser = parse_time, conflicts_with = "last")]
    pub start: Option<DateTime<Utc>>,

    /// End of the range [default: now].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub end: Option<DateTime<Utc>>,

    /// The range ending at --end, e.g. 30m, 1h, 7d.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub last: Option<Duration>,
}

impl RangeArgs {
    /// The range asked for, `default_last` long when neither --start nor --last is given.
    pub fn resolve(
        &self,
        step: Option<Duration>,
        default_last: Duration,
    ) -> Result<promapi::Range> {
        let end = self.end.unwrap_or_else(Utc::now);
        let start = match (self.start, self.last) {
            (Some(start), _) => start,
            (None, last) => {
                let last = last.unwrap_or(default_last);
                if last.is_zero() {
                    bail!("--last must be longer than 0s");
                }
                end - chrono::Duration::from_std(last)
                    .map_err(|_| anyhow::anyhow!("--last is too long"))?
            }
        };
        if start >= end {
            bail!(
                "--start ({}) must be before --end ({})",
                timeutil::rfc3339(start),
                timeutil::rfc3339(end)
            );
        }
        Ok(promapi::Range { start, end, step })
    }
}

/// A count of at least 1.
pub fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{text}` is not a whole number of at least 1")),
    }
}

/// A number from 0 to 1.
pub fn unit_interval(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(q) if (0.0..=1.0).contains(&q) => Ok(q),
        _ => Err(format!("`{text}` is not a number from 0 to 1 (e.g. 0.99)")),
    }
}

/// An error and its causes on one line, each cause once.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    // By default only warnings, and not the loader's per-retry ones nor rustls' report of a
    // refused certificate: a failure ends in one `error:` line that says it all, and the
    // server's own warnings are printed by the commands themselves.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,promlearn_loader=error,rustls=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// A panic is a bug, never the user's fault: one `error:` line that says so, without a backtrace
/// (RUST_BACKTRACE=1 still shows one). A `print!` into a closed pipe ends quietly instead.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if message.contains("Broken pipe") {
            std::process::exit(0);
        }
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            default(info);
            return;
        }
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: promlearn hit a bug ({message}{place}); please report it with the command you ran"
        );
    }));
}

fn main() -> ExitCode {
    install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    return ExitCode::SUCCESS;
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    eprintln!("error: a command is missing (see --help for the list)");
                    return ExitCode::from(2);
                }
                _ => {}
            }
            // clap's first line is the reason; the usage that follows is one --help away.
            let rendered = e.render().to_string();
            let first: Vec<&str> = rendered
                .trim_start()
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let first = first.join(" ");
            let first = if first.is_empty() {
                "error: invalid arguments".to_owned()
            } else if first.starts_with("error:") {
                first
            } else {
                format!("error: {first}")
            };
            eprintln!("{first} (see --help)");
            return ExitCode::from(2);
        }
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Load(args) => load::run(args).await,
            Command::Scrape(args) => scrape::run(args).await,
            Command::Train(args) => train::run(args).await,
            Command::Detect(args) => detect::run(args).await,
            Command::Dns(command) => dns::run(command).await,
            Command::Watch(args) => watch::run(args).await,
            Command::Ui(args) => ui::run(args).await,
        }
    });
    // Background tasks (a DNS worker, a pending request) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head`): nothing is wrong, as for any Unix tool.
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}
