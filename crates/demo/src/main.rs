//! `promlearn-demo`: TensorFlow-IO's Prometheus tutorial end to end, printing what it prints, on
//! the promlearn libraries. `cargo xtask demo` provisions the servers, builds this and runs it;
//! `--check` makes it the end-to-end test of the whole flow.
//!
//! It holds no capability of its own: servers come from `promlearn-testbed`, traffic from
//! `promlearn-dns`, data from `promlearn-loader`, models from `promlearn-model`.

mod anomaly;
mod checks;
mod keras;
mod tutorial;
mod ui;

use std::{net::SocketAddr, process::ExitCode, time::Instant};

use anyhow::{Context, bail};
use clap::Parser;
use promlearn_testbed::{Ports, RuntimeChoice, Testbed, TestbedConfig};

use crate::{anomaly::AnomalyOutcome, ui::Status};

#[derive(Parser)]
#[command(
    name = "promlearn-demo",
    about = "TensorFlow-IO's Prometheus tutorial, end to end: servers, DNS queries, dataset, LSTM training"
)]
pub struct DemoArgs {
    /// Where the servers run: auto, containers or processes
    #[arg(long, default_value = "auto")]
    runtime: RuntimeChoice,
    /// CoreDNS's DNS port
    #[arg(long, default_value_t = Ports::TUTORIAL.dns)]
    dns_port: u16,
    /// CoreDNS's metrics port
    #[arg(long, default_value_t = Ports::TUTORIAL.metrics)]
    metrics_port: u16,
    /// Prometheus's port
    #[arg(long, default_value_t = Ports::TUTORIAL.prometheus)]
    prometheus_port: u16,
    /// Free ephemeral ports instead of the tutorial's (as the end-to-end checks run it)
    #[arg(long, conflicts_with_all = ["dns_port", "metrics_port", "prometheus_port"])]
    ephemeral_ports: bool,
    /// Use this Prometheus (which must scrape a CoreDNS as job `coredns`) instead of starting servers;
    /// the DNS queries then go to --dns-server
    #[arg(long)]
    endpoint: Option<String>,
    /// The CoreDNS that --endpoint's Prometheus scrapes
    #[arg(long, default_value = "127.0.0.1:9053", requires = "endpoint")]
    dns_server: SocketAddr,
    /// Print only the results, without progress
    #[arg(long, conflicts_with = "json")]
    quiet: bool,
    /// Print one JSON document for scripts instead of the tutorial's text
    #[arg(long)]
    json: bool,
    /// Then the DevOps use: drive CoreDNS with a rhythm plus unannounced events, learn the
    /// rhythm, flag the events, and plot it (about 2.5 minutes more)
    #[arg(long)]
    anomaly: bool,
    /// Where the anomaly run's watch service listens (Prometheus scrapes it there)
    #[arg(long, default_value = "127.0.0.1:9464")]
    watch_listen: SocketAddr,
    /// After the anomaly run, keep the watch, its page and the servers running until Ctrl-C,
    /// to look at the page
    #[arg(long, requires = "anomaly")]
    keep: bool,
    /// Judge the run: read the facts back from Prometheus and print one line per check; exit
    /// non-zero if any fails (what `cargo xtask e2e` runs)
    #[arg(long)]
    check: bool,
}

impl DemoArgs {
    fn watch_addr(&self) -> SocketAddr {
        self.watch_listen
    }
}

/// What the demo found, for `--json` and for the checks.
#[derive(Default, serde::Serialize)]
pub struct Outcome {
    pub runtime: String,
    pub dns_rcodes: Vec<String>,
    pub request_count: Vec<(i64, f64)>,
    pub gc_sys_bytes: Vec<(i64, f64, f64)>,
    pub read_back: ReadBack,
    pub epoch_losses: Vec<f64>,
    pub tutorial_seconds: f64,
    pub anomaly: Option<AnomalyOutcome>,
    pub wall_seconds: f64,
}

/// Facts read back from Prometheus by instant queries after the dataset was built, independent
/// of the loop that waited for the data.
#[derive(Default, serde::Serialize)]
pub struct ReadBack {
    pub at_ms: i64,
    pub request_count: Option<f64>,
    pub jobs_with_gc_sys_bytes: Vec<String>,
}

fn main() -> ExitCode {
    let args = DemoArgs::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mut args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.ephemeral_ports {
        let ports = Ports::ephemeral()?;
        args.dns_port = ports.dns;
        args.metrics_port = ports.metrics;
        args.prometheus_port = ports.prometheus;
        // A free port for the watch service too (released at once; the service binds it again).
        args.watch_listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    }
    let outcome = run_demo(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        if !args.quiet {
            println!("demo wall: {:.1} s", outcome.wall_seconds);
        }
        // The DevOps answer comes last: did the alert fire, and how well each detector did.
        if let Some(anomaly) = &outcome.anomaly {
            for line in anomaly.summary() {
                println!("{line}");
            }
        }
    }
    if args.check {
        let failed = checks::report(&outcome);
        return Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_demo(args: &DemoArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let verbose = !args.quiet && !args.json;
    let mut outcome = Outcome::default();

    let testbed = match &args.endpoint {
        Some(_) => None,
        None => Some(start_testbed(args, verbose).await?),
    };
    let (endpoint, dns_server) = match &testbed {
        Some(testbed) => {
            let (runtime, why) = testbed.runtime();
            outcome.runtime = format!("{runtime} ({why})");
            (testbed.prometheus_url(), testbed.dns_addr())
        }
        None => {
            outcome.runtime = "an existing Prometheus".into();
            (
                args.endpoint.clone().expect("endpoint given"),
                args.dns_server,
            )
        }
    };
    if verbose && testbed.is_none() {
        println!("Servers: {}\n", outcome.runtime);
    }

    // Ctrl-C abandons the tutorial, but never the teardown below.
    let mut kept = None;
    let work = async {
        tutorial::run(&endpoint, dns_server, verbose, &mut outcome).await?;
        outcome.tutorial_seconds = started.elapsed().as_secs_f64();
        if verbose {
            println!("tutorial wall: {:.1} s", outcome.tutorial_seconds);
        }
        if args.anomaly {
            let (anomaly, watch) =
                anomaly::run(&endpoint, dns_server, args.watch_addr(), verbose, args.keep).await?;
            outcome.anomaly = Some(anomaly);
            kept = watch;
        }
        anyhow::Ok(())
    };
    let result = tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if let Some(watch) = kept {
        // Printed even with --quiet: it is what --keep is for.
        println!(
            "The watch and its page stay up at {}; Ctrl-C stops them and the servers",
            watch.page_url
        );
        let _ = tokio::signal::ctrl_c().await;
        // The servers' teardown below runs whatever the watch's stop says.
        if let Err(e) = watch.stop().await {
            eprintln!("stopping the watch: {e:#}");
        }
    }
    if let Some(testbed) = testbed {
        if verbose {
            eprintln!("stopping CoreDNS and Prometheus");
        }
        testbed.stop().await.context("stopping the servers")?;
    }
    result?;
    outcome.wall_seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

async fn start_testbed(args: &DemoArgs, verbose: bool) -> anyhow::Result<Testbed> {
    let mut config = TestbedConfig::tutorial(args.runtime);
    if args.anomaly {
        let (target, rules) = anomaly::testbed_additions(args.watch_addr());
        config.extra_scrape_targets.push(target);
        config.rule_files.push(rules);
    }
    config.ports = Ports {
        dns: args.dns_port,
        metrics: args.metrics_port,
        prometheus: args.prometheus_port,
    };
    let status = Status::new("servers", !verbose);
    let mut progress = |line: &str| status.message(line);
    let start = Testbed::start_with_progress(config, &mut progress);
    let testbed = tokio::select! {
        testbed = start => testbed?,
        _ = tokio::signal::ctrl_c() => bail!("interrupted while starting the servers (nothing is left running)"),
    };
    status.finish("CoreDNS and Prometheus are up; Prometheus scrapes CoreDNS");
    Ok(testbed)
}
