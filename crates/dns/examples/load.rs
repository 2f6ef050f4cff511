//! `cargo run -p promlearn-dns --example load -- 127.0.0.1:9053 PROFILE MAX_QUERIES SECONDS [udp|tcp] [CONCURRENCY] [CONNECTIONS]`
//! e.g. `... -- 127.0.0.1:9053 constant:500 5000 20`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program prints its report"
)]

use std::time::Duration;

use promlearn_dns::{LoadConfig, Transport};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Errors print with Display: they are written to be read as they are.
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [server, profile, max_queries, seconds, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: load SERVER:PORT PROFILE MAX_QUERIES SECONDS [udp|tcp] [CONCURRENCY] [CONNECTIONS]"
                .into(),
        );
    };
    let mut load = LoadConfig::new(
        server.parse()?,
        profile.parse()?,
        max_queries.parse()?,
        promlearn_duration::parse(seconds)?,
    );
    if let Some(transport) = rest.first() {
        load.transport = transport.parse::<Transport>()?;
    }
    if let Some(concurrency) = rest.get(1) {
        load.concurrency = concurrency.parse()?;
        load.connections = load.connections.min(load.concurrency);
    }
    if let Some(connections) = rest.get(2) {
        load.connections = connections.parse()?;
    }
    let report = load
        .run_with_progress(Duration::from_secs(1), |p| {
            eprintln!(
                "{:>6.1}s sent {} answered {} timeouts {} errors {} (target {:.0} qps)",
                p.elapsed.as_secs_f64(),
                p.sent,
                p.answered,
                p.timeouts,
                p.errors,
                p.target_qps
            )
        })
        .await?;
    print!("{report}");
    Ok(())
}
