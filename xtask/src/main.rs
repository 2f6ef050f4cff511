//! Project automation, run as `cargo xtask <task>` (the rust-analyzer pattern: plain Rust, no make).
//!
//! - `setup`: provisions real servers on this machine (Prometheus, CoreDNS, Docker, local images);
//! - `e2e`:   setup, then every test including those against real servers, on both runtimes;
//! - `demo`:  the TensorFlow-IO Prometheus tutorial, end to end;
//! - `bench`: the speed targets, measured side by side against the peers.

mod anomaly;
mod bench;
mod demo;
mod setup;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "promlearn's project automation")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install and build what the tests and the demo need (idempotent; fast once done)
    Setup(setup::SetupArgs),
    /// Set up, then run every test, including end-to-end tests against real servers
    E2e(E2eArgs),
    /// Run the tutorial end to end: servers, DNS queries, dataset, training
    Demo(demo::DemoArgs),
    /// Measure the speed targets against their peers, side by side in one run
    Bench(bench::BenchArgs),
}

#[derive(clap::Args)]
struct E2eArgs {
    /// Runtimes to run the end-to-end tests on, comma-separated
    #[arg(long, default_value = "processes,containers", value_delimiter = ',')]
    runtimes: Vec<String>,
    /// Skip running the demo as a test after the test suites
    #[arg(long)]
    skip_demo: bool,
    /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter
    #[arg(last = true)]
    cargo_test_args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async {
        match cli.task {
            Task::Setup(args) => setup::run(&args).await.map(|_| ()),
            Task::E2e(args) => e2e(args).await,
            Task::Demo(args) => demo::run(args).await,
            Task::Bench(args) => bench::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn e2e(args: E2eArgs) -> anyhow::Result<()> {
    let want_docker = args.runtimes.iter().any(|r| r.trim() == "containers");
    let provisioned = setup::run(&setup::SetupArgs {
        no_docker: !want_docker,
        quiet: false,
    })
    .await?;
    // Every step runs even when one fails, so that one CI run shows every failure.
    let mut failed = Vec::new();
    let mut command = setup::cargo();
    command
        .args([
            "test",
            "--workspace",
            "--lib",
            "--bins",
            "--tests",
            "--no-fail-fast",
            "--",
            "--include-ignored",
        ])
        .args(&args.cargo_test_args)
        .env("PROMLEARN_E2E_RUNTIMES", args.runtimes.join(","));
    provisioned.apply_env(&mut command);
    if let Err(e) = setup::run_step("cargo test (unit, integration and end-to-end)", command) {
        failed.push(format!("{e:#}"));
    }
    // Benchmarks are left out (they run long, in `cargo xtask bench`), and doctests run on their own.
    let mut doc = setup::cargo();
    doc.args(["test", "--workspace", "--doc", "--no-fail-fast"]);
    provisioned.apply_env(&mut doc);
    if let Err(e) = setup::run_step("cargo test --doc", doc) {
        failed.push(format!("{e:#}"));
    }
    if !args.skip_demo
        && let Err(e) = demo_checks(&args.runtimes).await
    {
        failed.push(format!("{e:#}"));
    }
    if failed.is_empty() {
        eprintln!("e2e: every step passed");
        Ok(())
    } else {
        anyhow::bail!(
            "{} step(s) failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        )
    }
}

/// The demo, run as a test on each runtime: the tutorial's facts, and the anomaly run's flags.
async fn demo_checks(runtimes: &[String]) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    let mut passed = 0;
    for (i, runtime) in runtimes.iter().enumerate() {
        // The anomaly run takes 2.5 minutes of traffic and does not depend on the runtime: once is enough.
        let with_anomaly = i == 0;
        eprintln!(
            "==> demo on {runtime} ({})",
            if with_anomaly {
                "tutorial and anomaly run, about 3 minutes"
            } else {
                "tutorial, about 20 s"
            }
        );
        let args =
            demo::DemoArgs::for_e2e(runtime.parse().map_err(anyhow::Error::msg)?, with_anomaly)?;
        let outcome = demo::run_demo(&args).await?;
        let mut checks = vec![
            (
                "the request count is exactly 2.0 over the 5 s after two queries",
                outcome.request_count.len() == 5
                    && outcome.request_count.iter().all(|(_, v)| *v == 2.0),
            ),
            (
                "go_memstats_gc_sys_bytes has both the coredns and the prometheus job",
                outcome.gc_sys_bytes.len() == 5
                    && outcome
                        .gc_sys_bytes
                        .iter()
                        .all(|(_, c, p)| c.is_finite() && p.is_finite()),
            ),
            (
                "the training loss falls",
                outcome.epoch_losses.len() == 5
                    && outcome.epoch_losses[4] < outcome.epoch_losses[0],
            ),
        ];
        if let Some(anomaly) = &outcome.anomaly {
            checks.push((
                "the anomaly run flags both injected events",
                anomaly.events_found.iter().all(|(_, found)| *found),
            ));
            checks.push((
                "no more than 3 false flags over the baseline",
                anomaly.false_flags <= 3,
            ));
        }
        for (what, ok) in checks {
            eprintln!(
                "    [{}] {runtime}: {what}",
                if ok { "ok" } else { "FAILED" }
            );
            if ok {
                passed += 1;
            } else {
                failures.push(format!("{runtime}: {what}"));
            }
        }
        eprintln!(
            "    tutorial part took {:.1} s; whole demo {:.1} s",
            outcome.tutorial_seconds, outcome.wall_seconds
        );
    }
    println!("demo checks: {passed} passed, {} failed", failures.len());
    anyhow::ensure!(
        failures.is_empty(),
        "demo checks failed: {}",
        failures.join("; ")
    );
    Ok(())
}
