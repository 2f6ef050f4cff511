//! Our load generator against Debian's dnsperf, on the same real CoreDNS, at the same
//! concurrency, in one run: `cargo bench -p promlearn-dns --bench dns`.
//!
//! Both run flat out (no rate limit) over UDP with EDNS for the same time, twice each, the order
//! alternating between rounds and each run after a warm-up of the same length, and the better
//! run of each counts: other work on a shared machine then hurts both sides alike. hickory's own client is measured briefly as well, for reference: it opens
//! a socket per query, which is why the generator writes its own packets.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use std::{
    error::Error,
    io::Write,
    process::Command,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hickory_resolver::{
    net::{
        client::{Client, ClientHandle},
        runtime::TokioRuntimeProvider,
        udp::UdpClientStream,
    },
    proto::rr::{DNSClass, Name, RecordType},
};
use promlearn_dns::{LoadConfig, NameMix, Profile};
use promlearn_testbed::{RuntimeChoice, Testbed, TestbedConfig};

/// dnsperf's `-c`: sockets (distinct source ports).
const CLIENTS: usize = 4;
/// dnsperf's `-q`: queries in flight at most.
const IN_FLIGHT: usize = 100;
const RUN: Duration = Duration::from_secs(5);
/// Each measured run follows a warm-up of the same tool, this long, for both sides alike.
const WARM_UP: Duration = Duration::from_secs(1);
const ROUNDS: usize = 2;
const NAMES: usize = 10;
const TARGET: f64 = 0.80;

fn main() -> Result<(), Box<dyn Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench())
}

async fn bench() -> Result<(), Box<dyn Error>> {
    let dnsperf_version = Command::new("dnsperf")
        .arg("-h")
        .output()
        .map_err(|e| format!("dnsperf is needed (apt-get install dnsperf): {e}"))?;
    let dnsperf_version = String::from_utf8_lossy(&dnsperf_version.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&dnsperf_version.stderr).lines())
        .find_map(|line| line.strip_prefix("Version ").map(str::to_owned))
        .unwrap_or_else(|| "?".into());

    let testbed =
        Testbed::start(TestbedConfig::for_tests()?.with_runtime(RuntimeChoice::Processes)).await?;
    let server = testbed.dns_addr();
    println!(
        "CoreDNS at {server} ({}); {CLIENTS} sockets, {IN_FLIGHT} queries in flight, UDP + EDNS, \
         {} s per run after {} s of warm-up, order alternating, best of {ROUNDS}",
        testbed.runtime().0,
        RUN.as_secs(),
        WARM_UP.as_secs()
    );

    let queryfile = tempfile_with_queries()?;
    let mut ours_best: f64 = 0.0;
    let mut dnsperf_best: f64 = 0.0;
    for round in 1..=ROUNDS {
        // The order alternates, and each run follows a warm-up of its own tool of the same
        // length, so that neither side pays for CoreDNS's first allocations or profits from the
        // other's: both meet the same server state.
        let ours_first = round % 2 == 1;
        for run_ours in [ours_first, !ours_first] {
            if run_ours {
                ours(server, WARM_UP).await?;
                let (qps, summary) = ours(server, RUN).await?;
                println!("  round {round} promlearn-dns: {qps:>9.0} qps  ({summary})");
                ours_best = ours_best.max(qps);
            } else {
                dnsperf(server, &queryfile, WARM_UP)?;
                let qps = dnsperf(server, &queryfile, RUN)?;
                println!("  round {round} dnsperf {dnsperf_version}: {qps:>9.0} qps");
                dnsperf_best = dnsperf_best.max(qps);
            }
        }
    }
    let hickory = hickory_client(server, Duration::from_secs(2)).await?;
    println!("  hickory Client (socket per query, reference): {hickory:>9.0} qps");
    testbed.stop().await?;
    let _ = std::fs::remove_file(&queryfile);

    println!("promlearn-dns: {ours_best:.0} qps");
    println!("dnsperf:       {dnsperf_best:.0} qps");
    println!(
        "dns ratio: {:.2} (target >= {TARGET:.2})",
        ours_best / dnsperf_best
    );
    Ok(())
}

async fn ours(
    server: std::net::SocketAddr,
    run: Duration,
) -> Result<(f64, String), Box<dyn Error>> {
    let mut load = LoadConfig::new(server, Profile::unlimited(), u64::MAX, run);
    let names = (1..=NAMES)
        .map(|i| format!("demo{i}.example.org"))
        .collect::<Vec<_>>()
        .join(",");
    load.names = NameMix::from_str(&names)?;
    load.concurrency = IN_FLIGHT;
    load.connections = CLIENTS;
    let report = load.run().await?;
    let latency = report.latency();
    let summary = format!(
        "{} sent, {} answered, {} timed out, p50 {:.2} ms, p99 {:.2} ms",
        report.sent,
        report.answered(),
        report.timeouts,
        latency.p50.as_secs_f64() * 1e3,
        latency.p99.as_secs_f64() * 1e3
    );
    Ok((report.qps(), summary))
}

fn tempfile_with_queries() -> Result<std::path::PathBuf, Box<dyn Error>> {
    let path = std::env::temp_dir().join(format!("promlearn-dnsperf-{}.txt", std::process::id()));
    let mut file = std::fs::File::create(&path)?;
    for i in 1..=NAMES {
        writeln!(file, "demo{i}.example.org A")?;
    }
    Ok(path)
}

fn dnsperf(
    server: std::net::SocketAddr,
    queryfile: &std::path::Path,
    run: Duration,
) -> Result<f64, Box<dyn Error>> {
    let output = Command::new("dnsperf")
        .args([
            "-s",
            &server.ip().to_string(),
            "-p",
            &server.port().to_string(),
        ])
        .arg("-d")
        .arg(queryfile)
        .args(["-c", &CLIENTS.to_string(), "-q", &IN_FLIGHT.to_string()])
        .args(["-l", &run.as_secs_f64().to_string(), "-e"])
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("Queries per second:"))
        .and_then(|qps| qps.trim().parse().ok())
        .ok_or_else(|| {
            format!(
                "no `Queries per second` in dnsperf's output:\n{stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into()
        })
}

/// hickory's own client, as many queries in flight as the others.
async fn hickory_client(
    server: std::net::SocketAddr,
    run: Duration,
) -> Result<f64, Box<dyn Error>> {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default()).build();
    let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
    let background = tokio::spawn(background);
    let answered = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + run;
    let name = Name::from_str("demo1.example.org.")?;
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (mut client, answered, name) = (client.clone(), answered.clone(), name.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    if client
                        .query(name.clone(), DNSClass::IN, RecordType::A)
                        .await
                        .is_ok()
                    {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    background.abort();
    Ok(answered.load(Ordering::Relaxed) as f64 / elapsed)
}
