//! `promlearn watch`: the long-running detection service of `promlearn-watch`, from a TOML file;
//! with `--backtest`, the same schedule replayed over a past range, every judged point to CSV.

use std::{io::Write, net::SocketAddr, path::PathBuf, time::Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use promlearn_watch::{
    Config, ERROR_KINDS, Shard, Watch, WebConfig,
    backtest::{self, CsvWriter, Summary},
    preset,
};

use crate::{
    output::{self, Format},
    timeutil::{self, parse_duration, parse_time},
};

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The watch configuration (TOML; see examples/watch/watch.toml).
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        required_unless_present = "preset"
    )]
    pub config: Option<PathBuf>,

    /// Watch a built-in set of queries instead of a file: `node` (node_exporter's CPU, load,
    /// memory, disk and network metrics, each with its detector and what is known about it).
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "config",
        help_heading = "Presets"
    )]
    pub preset: Option<String>,

    /// The Prometheus-API base URL, instead of the file's (or the preset's,
    /// http://localhost:9090) `endpoint`.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// Print the preset as a configuration file (with --endpoint) and exit: save it, edit it,
    /// and run it with --config.
    #[arg(long, requires = "preset", help_heading = "Presets")]
    pub print_config: bool,

    /// Print the Prometheus alert rules for the configuration's queries (YAML, for
    /// `rule_files`; `promtool check rules` accepts it) and exit.
    #[arg(long, conflicts_with_all = ["check", "backtest", "print_config"], help_heading = "Presets")]
    pub print_rules: bool,

    /// Serve /metrics here instead of the file's `listen` (e.g. 0.0.0.0:9464).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Keep only shard I of N: the series whose label-set hash modulo N is I (instead of the
    /// file's `shard`); run N watches, 0/N to N-1/N, to share the series between them.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,

    /// TLS and basic auth for /metrics: a web config file in the format of Prometheus's
    /// exporter-toolkit, the same file node_exporter takes (instead of the file's
    /// `web_config_file`; see examples/watch/web.yml).
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Check the configuration and exit (0 if it is valid), as `promtool check config` does:
    /// every field, and every query's expr parsed as PromQL (offline, no server needed).
    #[arg(long, conflicts_with = "backtest")]
    pub check: bool,

    /// Replay a past range through the service's schedule (simulated clock, no look-ahead) and
    /// write every point of it, judged or not, as CSV; nothing is served.
    #[arg(long, requires = "from", help_heading = "Backtest")]
    pub backtest: bool,

    /// Start of the backtest: RFC 3339, unix seconds, `now`, or a duration before now (`-7d`).
    #[arg(long, value_name = "TIME", value_parser = parse_when, allow_hyphen_values = true,
          requires = "backtest", help_heading = "Backtest")]
    pub from: Option<DateTime<Utc>>,

    /// End of the backtest [default: now].
    #[arg(long, value_name = "TIME", value_parser = parse_when, allow_hyphen_values = true,
          requires = "backtest", help_heading = "Backtest")]
    pub to: Option<DateTime<Utc>>,

    /// The backtest's CSV file [default: stdout].
    #[arg(
        long,
        short = 'o',
        value_name = "FILE",
        requires = "backtest",
        help_heading = "Backtest"
    )]
    pub output: Option<PathBuf>,
}

/// A time as `load` reads it (RFC 3339, unix seconds, `now`), or `-DURATION` before now (`-7d`,
/// `-1h30m`, `-90`: durations in promlearn's one grammar).
fn parse_when(text: &str) -> Result<DateTime<Utc>, String> {
    let Some(ago) = text.trim().strip_prefix('-') else {
        return parse_time(text);
    };
    let ago = parse_duration(ago)?;
    let ago = chrono::Duration::from_std(ago).map_err(|_| format!("`{text}` is too far back"))?;
    Ok(Utc::now() - ago)
}

/// Reads the configuration file with the command line's overrides applied: at start, and
/// again at each reload (so that `--listen`, `--shard` and `--web.config.file` hold across
/// reloads).
fn loader(
    args: &WatchArgs,
) -> impl Fn() -> promlearn_watch::Result<Config> + Send + Sync + 'static {
    let (path, listen, shard) = (args.config.clone(), args.listen, args.shard);
    let (preset, endpoint) = (args.preset.clone(), args.endpoint.clone());
    let web_config_file = args.web_config_file.clone();
    move || {
        let mut config = match (&path, &preset) {
            (Some(path), _) => Config::load(path)?,
            (None, preset) => {
                let name = preset.as_deref().unwrap_or_default();
                promlearn_watch::preset::config(name, endpoint.as_deref())?
            }
        };
        if let Some(endpoint) = &endpoint {
            config.endpoint = endpoint.clone();
        }
        if let Some(listen) = listen {
            config.listen = listen;
        }
        if let Some(shard) = shard {
            config.shard = shard;
        }
        if let Some(web) = &web_config_file {
            config.web_config_file = Some(web.clone());
        }
        Ok(config)
    }
}

pub async fn run(args: WatchArgs) -> Result<()> {
    if args.print_config {
        let name = args.preset.as_deref().unwrap_or_default();
        let text = preset::print_config(name, args.endpoint.as_deref()).with_context(|| {
            format!(
                "preset `{name}` is not known; the presets are: {}",
                preset::NAMES.join(", ")
            )
        })?;
        return output::print(text);
    }
    let load = loader(&args);
    let config = load()?;
    if args.print_rules {
        return output::print(preset::alert_rules(&config));
    }
    if args.check {
        // Every expr parsed as PromQL (offline); with query_language = "metricsql", warnings.
        for warning in config.check_queries()? {
            eprintln!("warning: {warning}");
        }
        println!("{}", config.summary());
        if let Some(path) = &config.web_config_file {
            // Read as at start: certificates parsed and matched, hashes parsed.
            let web = WebConfig::load(path)?;
            let users = web.users().count();
            println!(
                "{}: {}, basic auth for {users} user{}",
                path.display(),
                if web.tls() { "TLS" } else { "plain HTTP" },
                if users == 1 { "" } else { "s" }
            );
        }
        println!("{}: OK", config.origin);
        return Ok(());
    }
    if args.backtest {
        return run_backtest(&args, config).await;
    }
    let watch = Watch::new(config)?.reload_with(load);
    reload_on_sighup(&watch);
    eprintln!(
        "promlearn watch: {} quer{} against {}, the page at {}, serving {}",
        watch.config().queries.len(),
        if watch.config().queries.len() == 1 {
            "y"
        } else {
            "ies"
        },
        watch.config().endpoint,
        watch.page_url(),
        watch.metrics_url()
    );
    watch.serve(shutdown_signal()).await?;
    eprintln!("stopped");
    Ok(())
}

/// Reloads the configuration on each SIGHUP, as Prometheus does (the library logs the outcome
/// and shows it on /metrics). Signals are the process's, so they are handled here, at the
/// edge, beside SIGTERM; the library offers `Handle::reload` and `POST /-/reload`.
fn reload_on_sighup(watch: &Watch) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handle = watch.handle();
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => {
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        // Refused or applied, the library has said which.
                        let _ = handle.reload().await;
                    }
                });
            }
            Err(e) => tracing::warn!("SIGHUP will not reload the configuration: {e}"),
        }
    }
    #[cfg(not(unix))]
    let _ = watch;
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run_backtest(args: &WatchArgs, config: Config) -> Result<()> {
    for warning in config.check_queries()? {
        eprintln!("warning: {warning}");
    }
    let from = args.from.context("--backtest needs --from")?;
    let to = args.to.unwrap_or_else(Utc::now);
    if from > to {
        bail!(
            "--from ({}) must be before --to ({})",
            timeutil::rfc3339(from),
            timeutil::rfc3339(to)
        );
    }
    Format::choose(None, args.output.as_deref(), &[Format::Csv])?;
    let (from_ms, to_ms) = (from.timestamp_millis(), to.timestamp_millis());
    let loading = Instant::now();
    let source = backtest::load(&config, from_ms, to_ms).await?;
    // The summary goes where the CSV does not.
    let to_stdout = args.output.is_some();
    let say = |line: String| -> Result<()> {
        if to_stdout {
            output::print(format!("{line}\n"))
        } else {
            eprintln!("{line}");
            Ok(())
        }
    };
    say(format!(
        "backtest {} .. {}: {} samples loaded from {} in {:.2} s",
        timeutil::rfc3339(from),
        timeutil::rfc3339(to),
        source.sample_count(),
        config.endpoint,
        loading.elapsed().as_secs_f64()
    ))?;
    let out = output::open(args.output.as_deref())?;
    let summary = tokio::task::spawn_blocking(move || -> Result<Summary> {
        let mut csv = CsvWriter::new(out)?;
        let summary = backtest::run(&config, &source, from_ms, to_ms, &mut |p| csv.write(p))?;
        csv.finish()?.flush()?;
        Ok(summary)
    })
    .await??;
    for q in &summary.queries {
        let errors: Vec<String> = ERROR_KINDS
            .iter()
            .zip(q.errors)
            .filter(|(_, n)| *n > 0)
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        say(format!(
            "query {} ({}): {} series, {} points, {} judged, {} flagged, {} fits, {:.3} s{}",
            q.query,
            q.detector,
            q.series,
            q.points,
            q.judged,
            q.flagged,
            q.fits,
            q.wall.as_secs_f64(),
            if errors.is_empty() {
                String::new()
            } else {
                format!("; errors: {}", errors.join(", "))
            }
        ))?;
    }
    if let Some(path) = &args.output {
        say(format!("wrote {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backtest_times_are_loads_times_or_a_duration_before_now() {
        assert_eq!(
            parse_when("2024-05-01T12:00:00Z").unwrap().timestamp(),
            1_714_564_800
        );
        assert_eq!(parse_when("1714564800").unwrap().timestamp(), 1_714_564_800);
        let ago = Utc::now() - parse_when("-7d").unwrap();
        assert!((ago.num_seconds() - 7 * 86_400).abs() <= 2, "{ago}");
        let ago = Utc::now() - parse_when("-1h30m").unwrap();
        assert!((ago.num_seconds() - 5_400).abs() <= 2, "{ago}");
        assert!(parse_when("-7 days").is_err());
        assert!(parse_when("yesterday").is_err());
    }
}
