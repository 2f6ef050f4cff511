//! Holds a testbed open until Ctrl-C or SIGTERM: real CoreDNS and Prometheus for manual work.
//!
//! Prints one JSON line once the servers are up (addresses, runtime, server ids), then waits.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a program: it prints the servers it started"
)]

use std::process::ExitCode;

use promlearn_testbed::{Ports, RuntimeChoice, ServerId, Testbed, TestbedConfig};

const USAGE: &str = "\
Start CoreDNS and Prometheus from the repository's Corefile and prometheus.yml; stop them on Ctrl-C

Usage: promlearn-testbed [--runtime auto|containers|processes] [--ephemeral-ports]

  --runtime <RUNTIME>  auto, containers or processes [default: auto]
  --ephemeral-ports    free ephemeral ports instead of the tutorial's 9053, 9153 and 9090";

/// The two flags, read by hand: the testbed is a library first, and its program adds no
/// argument parser to everything that depends on it.
struct Args {
    runtime: RuntimeChoice,
    ephemeral_ports: bool,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
        let mut parsed = Args {
            runtime: RuntimeChoice::Auto,
            ephemeral_ports: false,
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-h" | "--help" => return Ok(None),
                "--ephemeral-ports" => parsed.ephemeral_ports = true,
                "--runtime" => {
                    let value = args.next().ok_or("--runtime needs a value")?;
                    parsed.runtime = value.parse()?;
                }
                other => match other.strip_prefix("--runtime=") {
                    Some(value) => parsed.runtime = value.parse()?,
                    None => return Err(format!("unexpected argument `{other}`")),
                },
            }
        }
        Ok(Some(parsed))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            eprintln!("error: {problem}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut config = TestbedConfig::tutorial(args.runtime);
    if args.ephemeral_ports {
        match Ports::ephemeral() {
            Ok(ports) => config.ports = ports,
            Err(e) => return fail(e),
        }
    }
    let testbed = match Testbed::start_with_progress(config, &mut |line| {
        eprintln!("testbed: {line}")
    })
    .await
    {
        Ok(testbed) => testbed,
        Err(e) => return fail(e),
    };
    let ids: Vec<String> = testbed
        .server_ids()
        .into_iter()
        .map(|id| match id {
            ServerId::Process(pid) => format!("pid:{pid}"),
            ServerId::Container(id) => format!("container:{id}"),
        })
        .collect();
    let (runtime, reason) = testbed.runtime();
    println!(
        "{}",
        serde_json::json!({
            "runtime": runtime.to_string(),
            "why": reason,
            "dns": testbed.dns_addr().to_string(),
            "prometheus": testbed.prometheus_url(),
            "metrics": testbed.metrics_url(),
            "servers": ids,
        })
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => eprintln!("testbed: interrupted, stopping"),
        _ = term.recv() => eprintln!("testbed: terminated, stopping"),
    }
    match testbed.stop().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn fail(e: promlearn_testbed::TestbedError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}
