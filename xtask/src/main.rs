//! Project automation, run as `cargo xtask <task>` (the rust-analyzer pattern: plain Rust, no make).
//!
//! - `setup`: provisions real servers on this machine (Prometheus, CoreDNS, Docker, local images);
//! - `e2e`:   setup, then every test including those against real servers, on both runtimes;
//! - `demo`:  the TensorFlow-IO Prometheus tutorial, end to end (the `promlearn-demo` program);
//! - `bench`: the speed targets, measured side by side against the peers.
//!
//! xtask holds no domain logic and depends on none of the workspace's libraries: it provisions,
//! builds and runs. So `cargo xtask` compiles in seconds and sets the machine up while cargo
//! compiles the programs it runs (the tidy test keeps it so).

mod bench;
mod compile;
mod demo;
mod e2e;
mod engines;
mod peers;
mod provision;
mod setup;
mod steps;
#[cfg(test)]
mod tidy;

use std::{path::PathBuf, process::ExitCode};

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
    E2e(e2e::E2eArgs),
    /// Run the tutorial end to end: servers, DNS queries, dataset, training
    /// (flags after `demo` go to the demo program; `cargo xtask demo --help` lists them)
    #[command(disable_help_flag = true)]
    Demo(demo::DemoArgs),
    /// Measure the speed targets against their peers, side by side in one run
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup(args) => steps::Ui::new(false).and_then(|ui| {
            let provisioned = setup::run(&ui, &args)?;
            ui.println(format!(
                "set-up done; logs in {}\n  COREDNS_BIN={}\n  PROMETHEUS_BIN={}",
                ui.log_dir().display(),
                provisioned.coredns.display(),
                provisioned.prometheus.display()
            ));
            if let Some(engines) = &provisioned.engines {
                ui.println(format!(
                    "  {}={}\n  {}={}",
                    engines::PROMETHEUS3_BIN_ENV,
                    engines.prometheus3.0.display(),
                    engines::THANOS_BIN_ENV,
                    engines.thanos.0.display()
                ));
            }
            Ok(ExitCode::SUCCESS)
        }),
        Task::E2e(args) => e2e::run(args).map(|()| ExitCode::SUCCESS),
        Task::Demo(args) => demo::run(args),
        Task::Bench(args) => bench::run(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}
