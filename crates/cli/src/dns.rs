//! `promlearn dns query` (one query, printed as dig prints it) and `promlearn dns load` (a
//! bounded load run that follows a rate profile, with a report at the end).

use std::{net::SocketAddr, time::Duration};

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use promlearn_dns::{
    LoadConfig, LoadReport, NameMix, Profile, Query, Transport, TypeMix, parse_class,
    parse_record_type,
};
use serde_json::json;

use crate::{output, timeutil::parse_duration};

#[derive(Subcommand, Debug)]
pub enum DnsCommand {
    /// Send one query and print the answer as dig does.
    #[command(after_help = QUERY_EXAMPLES)]
    Query(QueryArgs),
    /// Send load that follows a rate profile, bounded by a query count and a duration.
    #[command(after_help = LOAD_EXAMPLES)]
    Load(LoadArgs),
}

const QUERY_EXAMPLES: &str = "Examples:
  promlearn dns query demo1.example.org --server 127.0.0.1:9053
  promlearn dns query example.org MX --server 127.0.0.1:9053 --tcp
  promlearn dns query version.bind TXT --class CH --server 127.0.0.1:9053";

const LOAD_EXAMPLES: &str = "Profiles: constant:200 | ramp:from=10,to=200,over=60s | sine:base=100,amp=80,period=60s |
  day:base=100,amp=80,period=60s | max, each optionally followed by
  +spike:at=30s,len=5s,x=5 or +burst:at=30s,len=5s,qps=500 (or the same as JSON).

Examples:
  promlearn dns load --server 127.0.0.1:9053 --profile constant:100 --count 1000 --duration 30s
  promlearn dns load --server 127.0.0.1:9053 --profile 'day:base=200,amp=150,period=60s+spike:at=30s,len=3s,x=5' \\
      --count 20000 --duration 70s --names 'demo1.example.org=8,*.example.org=2' --types A=3,AAAA=1 --json";

/// Where the DNS server is (shared by both sub-commands).
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// The DNS server, as IP:PORT (or IP for port 53).
    #[arg(long, short = 's', value_name = "ADDR", default_value = "127.0.0.1:53", value_parser = parse_server)]
    pub server: SocketAddr,

    /// udp or tcp.
    #[arg(long, value_name = "PROTO", default_value = "udp", value_parser = parse_transport)]
    pub transport: Transport,

    /// Same as --transport tcp.
    #[arg(long)]
    pub tcp: bool,

    /// How long to wait for an answer.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
}

impl ServerArgs {
    fn transport(&self) -> Transport {
        if self.tcp {
            Transport::Tcp
        } else {
            self.transport
        }
    }
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The name to look up.
    pub name: String,

    /// The record type (A, AAAA, MX, TXT, SRV, ...).
    #[arg(default_value = "A")]
    pub record_type: String,

    /// The class (IN, CH, HS).
    #[arg(long, default_value = "IN")]
    pub class: String,

    /// Send no EDNS OPT record (dig +noedns).
    #[arg(long)]
    pub no_edns: bool,

    /// Print the answer as JSON instead of dig's text.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The rate over time (see below).
    #[arg(long, short = 'p', default_value = "constant:100")]
    pub profile: String,

    /// Send at most this many queries.
    #[arg(long, short = 'n', value_name = "N")]
    pub count: u64,

    /// Run at most this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Duration,

    /// Queries in flight at most.
    #[arg(long, short = 'c', default_value_t = 64)]
    pub concurrency: usize,

    /// UDP sockets or TCP connections to spread the queries over [default: min(4, concurrency)].
    #[arg(long)]
    pub connections: Option<usize>,

    /// Names to ask for, weighted: 'demo1.example.org=8,*.example.org=2' (`*.zone`: random names).
    #[arg(long, default_value = "demo1.example.org")]
    pub names: String,

    /// Record types, weighted: 'A=3,AAAA=1'.
    #[arg(long, default_value = "A")]
    pub types: String,

    /// Share of queries (0 to 1) for names that cannot exist (under invalid.).
    #[arg(long, default_value_t = 0.0, value_parser = crate::unit_interval)]
    pub nxdomain_share: f64,

    /// Seed for the name and type choices (reproducible mix).
    #[arg(long)]
    pub seed: Option<u64>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

fn parse_server(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim().trim_start_matches('@');
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(format!(
        "`{text}` is not IP:PORT or IP (e.g. 127.0.0.1:9053, [::1]:53)"
    ))
}

fn parse_transport(text: &str) -> Result<Transport, String> {
    text.parse()
        .map_err(|e: promlearn_dns::DnsError| e.to_string())
}

pub async fn run(command: DnsCommand) -> Result<()> {
    match command {
        DnsCommand::Query(args) => query(args).await,
        DnsCommand::Load(args) => load(args).await,
    }
}

async fn query(args: QueryArgs) -> Result<()> {
    let record_type = parse_record_type(&args.record_type)?;
    let class = parse_class(&args.class)?;
    let mut q = Query::new(args.server.server, &args.name)?
        .with_type(record_type)
        .with_class(class)
        .with_transport(args.server.transport())
        .with_timeout(args.server.timeout);
    if args.no_edns {
        q = q.with_edns(None);
    }
    let answer = q.send().await?;
    if args.json {
        let records = |section: &[promlearn_dns::proto::rr::Record]| -> Vec<serde_json::Value> {
            section
                .iter()
                .map(|r| {
                    json!({
                        "name": r.name.to_string(),
                        "ttl": r.ttl,
                        "class": r.dns_class.to_string(),
                        "type": r.record_type().to_string(),
                        "data": r.data.to_string(),
                    })
                })
                .collect()
        };
        let m = &answer.message;
        let doc = json!({
            "server": answer.query.server.to_string(),
            "transport": answer.transport.as_str(),
            "query": { "name": answer.query.name.to_string(), "type": record_type.to_string(), "class": class.to_string() },
            "id": answer.id(),
            "status": answer.rcode().to_string(),
            "flags": answer.flags(),
            "answer": records(&m.answers),
            "authority": records(&m.authorities),
            "additional": records(&m.additionals),
            "query_time_ms": answer.query_time.as_secs_f64() * 1e3,
            "size": answer.size,
            "retried_over_tcp": answer.retried_over_tcp,
        });
        output::print(format_args!("{}\n", serde_json::to_string_pretty(&doc)?))?;
    } else {
        output::print(&answer)?;
    }
    Ok(())
}

async fn load(args: LoadArgs) -> Result<()> {
    let profile: Profile = args.profile.parse()?;
    let mut config = LoadConfig::new(args.server.server, profile, args.count, args.duration);
    config.transport = args.server.transport();
    config.timeout = args.server.timeout;
    config.concurrency = args.concurrency;
    config.connections = args.connections.unwrap_or(4.min(args.concurrency.max(1)));
    config.names = args.names.parse::<NameMix>()?;
    config.types = args.types.parse::<TypeMix>()?;
    config.nxdomain_share = args.nxdomain_share;
    config.seed = args.seed;
    config.validate()?;
    if args.count == 0 {
        bail!("--count must be at least 1");
    }

    let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr_with_hz(5));
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {elapsed}/{msg}").expect("a valid template"),
    );
    let report = config
        .run_with_progress(Duration::from_millis(250), |p| {
            // Whichever bound is nearer: the query count or the duration.
            let by_count = p.sent as f64 / p.max_queries.max(1) as f64;
            let by_time = p.elapsed.as_secs_f64() / p.max_duration.as_secs_f64().max(1e-9);
            bar.set_position((by_count.max(by_time).min(1.0) * 1000.0) as u64);
            bar.set_message(format!(
                "{}s  sent {}  answered {}  timed out {}  target {:.0} q/s{}",
                p.max_duration.as_secs(),
                p.sent,
                p.answered,
                p.timeouts,
                p.target_qps,
                if p.finished_sending {
                    "  (waiting for the last answers)"
                } else {
                    ""
                }
            ));
        })
        .await?;
    bar.finish_and_clear();
    if args.json {
        output::print(format_args!(
            "{}\n",
            serde_json::to_string_pretty(&report_json(&report))?
        ))?;
    } else {
        output::print(&report)?;
    }
    if report.sent > 0 && report.answered() == 0 {
        return Err(anyhow!(
            "none of the {} queries was answered: is a DNS server listening at {} over {}?",
            report.sent,
            args.server.server,
            config.transport
        ));
    }
    Ok(())
}

fn report_json(r: &LoadReport) -> serde_json::Value {
    let latency = r.latency();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    json!({
        "sent": r.sent,
        "answered": r.answered(),
        "answers": r.answers.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "timeouts": r.timeouts,
        "lost": r.lost,
        "errors": r.errors,
        "first_error": r.first_error,
        "truncated": r.truncated,
        "unexpected": r.unexpected,
        "sent_by_type": r.sent_by_type.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "sent_nxdomain_names": r.sent_nxdomain_names,
        "sent_per_second": r.sent_per_second,
        "elapsed_seconds": r.elapsed.as_secs_f64(),
        "sending_seconds": r.sending_time.as_secs_f64(),
        "answers_per_second": r.qps(),
        "latency_ms": {
            "p50": ms(latency.p50), "p90": ms(latency.p90), "p99": ms(latency.p99),
            "max": ms(latency.max), "mean": ms(latency.mean),
        },
    })
}
