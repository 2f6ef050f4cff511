//! `cargo xtask demo`: TensorFlow-IO's Prometheus tutorial, end to end, printing what it prints.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use promlearn_dns::Query;
use promlearn_loader::tutorial::{Dataset as MetricsDataset, Nested, PyFloat, format_time};
use promlearn_model::{
    Dataset, FitOptions, Forecaster, ModelConfig, ScaleKind, Scaler, TargetMode,
};
use promlearn_testbed::{Ports, RuntimeChoice, Testbed, TestbedConfig};

use crate::{
    anomaly::AnomalyOutcome,
    setup::{self, Status},
};

#[derive(clap::Args)]
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
}

impl DemoArgs {
    /// The demo as `cargo xtask e2e` runs it: free ports, the given runtime, quiet.
    pub fn for_e2e(runtime: RuntimeChoice, anomaly: bool) -> anyhow::Result<DemoArgs> {
        let ports = Ports::ephemeral()?;
        Ok(DemoArgs {
            runtime,
            dns_port: ports.dns,
            metrics_port: ports.metrics,
            prometheus_port: ports.prometheus,
            endpoint: None,
            dns_server: SocketAddr::from(([127, 0, 0, 1], ports.dns)),
            quiet: true,
            json: false,
            anomaly,
        })
    }
}

/// What the demo found, for `--json` and for the end-to-end test that runs the demo.
#[derive(Default, serde::Serialize)]
pub struct Outcome {
    pub runtime: String,
    pub dns_rcodes: Vec<String>,
    pub request_count: Vec<(i64, f64)>,
    pub gc_sys_bytes: Vec<(i64, f64, f64)>,
    pub epoch_losses: Vec<f64>,
    pub tutorial_seconds: f64,
    pub anomaly: Option<AnomalyOutcome>,
    pub wall_seconds: f64,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let outcome = run_demo(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        println!("demo wall: {:.1} s", outcome.wall_seconds);
    }
    Ok(())
}

pub async fn run_demo(args: &DemoArgs) -> anyhow::Result<Outcome> {
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
    let work = async {
        tutorial(&endpoint, dns_server, verbose, &mut outcome).await?;
        outcome.tutorial_seconds = started.elapsed().as_secs_f64();
        if verbose {
            println!("tutorial wall: {:.1} s", outcome.tutorial_seconds);
        }
        if args.anomaly {
            outcome.anomaly = Some(crate::anomaly::run(&endpoint, dns_server, verbose).await?);
        }
        anyhow::Ok(())
    };
    let result = tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
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
    let provisioned = setup::run(&setup::SetupArgs {
        // The demo never installs Docker by itself; it uses it when it is there (auto) or asked for.
        no_docker: args.runtime != RuntimeChoice::Containers,
        quiet: !verbose,
    })
    .await?;
    let mut config = TestbedConfig::tutorial(args.runtime);
    provisioned.apply_to(&mut config);
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

async fn tutorial(
    endpoint: &str,
    dns_server: SocketAddr,
    verbose: bool,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    // The tutorial's two `dig @127.0.0.1 -p 9053 demoN.example.org`.
    for name in ["demo1.example.org", "demo2.example.org"] {
        let answer = Query::new(dns_server, name)?
            .send()
            .await
            .with_context(|| format!("querying {name} at {dns_server}"))?;
        if verbose {
            println!(
                "$ dig @{} -p {} {name}\n{answer}",
                dns_server.ip(),
                dns_server.port()
            );
        }
        outcome.dns_rcodes.push(answer.rcode().to_string());
    }

    let status = Status::new("prometheus", !verbose);
    status.message(
        "waiting until Prometheus holds 5 s of the request count at 2.0 and 12 s of memory stats",
    );
    let client = promlearn_loader::Client::new(endpoint)?;
    let load = |query: &'static str, length: u64| {
        MetricsDataset::builder(query, length)
            .client(client.clone())
            .load()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (n_samples, n_steps) = (10, 2);
    let training_length = n_samples + n_steps - 1 + 1;
    let (count, gc, memory) = loop {
        let count = load("coredns_dns_request_count_total", 5).await?;
        let gc = load("go_memstats_gc_sys_bytes", 5).await?;
        let memory = load("go_memstats_sys_bytes", training_length as u64).await?;
        let ready = complete(&count, "coredns", "coredns_dns_request_count_total")
            .is_some_and(|c| c.iter().all(|v| *v == 2.0))
            && complete(&gc, "coredns", "go_memstats_gc_sys_bytes").is_some()
            && complete(&gc, "prometheus", "go_memstats_gc_sys_bytes").is_some()
            && complete(&memory, "coredns", "go_memstats_sys_bytes").is_some();
        if ready {
            break (count, gc, memory);
        }
        if Instant::now() > deadline {
            bail!(
                "within 60 s, Prometheus did not hold 5 s of coredns_dns_request_count_total at 2.0 \
                 and {training_length} s of go_memstats_sys_bytes from CoreDNS"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    status.finish("data is in");

    // The tutorial's prints, element by element: `value['coredns']['localhost:9153'][metric]`.
    if verbose {
        println!("Dataset Spec:\n{}\n", count.element_spec());
        println!("CoreDNS Time Series:");
    }
    for (time_ms, element) in &count {
        let value = element_value(&element, "coredns", "coredns_dns_request_count_total");
        if verbose {
            println!("{}: {}", format_time(time_ms), PyFloat(value));
        }
        outcome.request_count.push((time_ms, value));
    }
    if verbose {
        println!("\nTime Series CoreDNS/Prometheus Comparision:");
    }
    for (time_ms, element) in &gc {
        let coredns = element_value(&element, "coredns", "go_memstats_gc_sys_bytes");
        let prometheus = element_value(&element, "prometheus", "go_memstats_gc_sys_bytes");
        if verbose {
            println!(
                "{}: {}/{}",
                format_time(time_ms),
                PyFloat(coredns),
                PyFloat(prometheus)
            );
        }
        outcome.gc_sys_bytes.push((time_ms, coredns, prometheus));
    }

    // Training, as the tutorial does it: 10 samples + 2 steps of go_memstats_sys_bytes from the
    // coredns job, scaled by its maximum, 2-step windows with shift 1, the next window as target.
    let series = complete(&memory, "coredns", "go_memstats_sys_bytes").expect("checked above");
    let scaler = Scaler::fit(&series, ScaleKind::Max)?;
    let dataset = Dataset::from_series(
        &scaler.transform(&series)?,
        n_steps,
        TargetMode::TutorialNextWindow,
    )?;
    let batches = dataset.repeat(10).batch(1)?;
    let mut model = Forecaster::new(ModelConfig::tutorial())?;
    if verbose {
        println!(
            "\nTrain for 10 steps (LSTM(8) + Dense(1), Adam, MAE; the tutorial's next-window target)"
        );
    }
    let history = model.fit(
        &batches,
        &FitOptions {
            epochs: 5,
            steps_per_epoch: Some(10),
            verbose,
        },
    )?;
    outcome.epoch_losses = history.epoch_losses;
    Ok(())
}

/// A job's series of `metric` (its one instance), when it has a value at every second.
fn complete(dataset: &MetricsDataset, job: &str, metric: &str) -> Option<Vec<f64>> {
    let column = dataset.get_in_job(job, metric)?;
    (!dataset.is_empty() && column.iter().all(|v| v.is_finite())).then(|| column.to_vec())
}

/// `element[job][<its instance>][metric]`, NaN where the element has no such value.
fn element_value(element: &Nested, job: &str, metric: &str) -> f64 {
    element
        .get(job)
        .and_then(|instances| instances.values().next())
        .and_then(|metrics| metrics.get(metric))
        .copied()
        .unwrap_or(f64::NAN)
}
