//! Project automation, run as `cargo xtask <task>` (the rust-analyzer pattern: plain Rust, no make).
//!
//! - `setup`: provisions real servers on this machine (Prometheus, CoreDNS, Docker, local images);
//! - `e2e`:   setup, then every test including those against real servers, on both runtimes;
//! - `demo`:  the TensorFlow-IO Prometheus tutorial, end to end;
//! - `bench`: the speed targets, measured side by side against the peers.

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
    })
    .await?;
    let mut command = setup::cargo();
    command
        .args([
            "test",
            "--workspace",
            "--all-targets",
            "--",
            "--include-ignored",
        ])
        .args(&args.cargo_test_args)
        .env("PROMLEARN_E2E_RUNTIMES", args.runtimes.join(","));
    provisioned.apply_env(&mut command);
    setup::run_step("cargo test (unit, integration and end-to-end)", command)?;
    // `--all-targets` leaves doctests out; they run on their own.
    let mut doc = setup::cargo();
    doc.args(["test", "--workspace", "--doc"]);
    provisioned.apply_env(&mut doc);
    setup::run_step("cargo test --doc", doc)
}
