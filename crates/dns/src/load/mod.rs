//! Bounded DNS load with a known shape: a [`Profile`] of rate over time, weighted names and
//! types, a share of names that cannot exist, over UDP or TCP.

mod mix;
mod report;
mod worker;

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use hickory_resolver::proto::rr::Name;
use tokio::{net::UdpSocket, time::Instant};

pub use mix::{NameMix, NamePattern, TypeMix};
pub use report::{Latency, LoadProgress, LoadReport};

use crate::{
    DnsError, Profile, Transport,
    query::{DEFAULT_EDNS_PAYLOAD, parse_name, unspecified_for},
};
use worker::{Plan, Shared, WorkerStats};

/// Everything about a load run. Both bounds are required: a run stops at whichever of
/// `max_queries` and `max_duration` comes first, then waits at most `timeout` for the
/// answers still due.
///
/// ```
/// use std::time::Duration;
/// use promlearn_dns::{LoadConfig, Profile, Transport};
///
/// let mut load = LoadConfig::new(
///     "127.0.0.1:9053".parse().unwrap(),
///     "day:base=300,amp=250,period=60s+spike:at=40s,len=3s,x=4".parse()?,
///     100_000,                  // at most this many queries
///     Duration::from_secs(120), // and for at most this long
/// );
/// load.names = "demo1.example.org=8,*.example.org=2".parse()?;
/// load.types = "A=3,AAAA=1".parse()?;
/// load.nxdomain_share = 0.05;
/// load.transport = Transport::Udp;
/// load.concurrency = 50;
/// load.validate()?;
/// // `load.run().await?` sends it and returns a LoadReport; `run_with_progress` also reports
/// // a LoadProgress snapshot periodically, for a progress bar.
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The DNS server's address and port.
    pub server: SocketAddr,
    /// UDP (the default) or TCP; TCP opens `connections` connections up front.
    pub transport: Transport,
    /// Queries per second over time, from the run's start.
    pub profile: Profile,
    /// Which names to ask for, and how often each (default: `demo1.example.org` only).
    pub names: NameMix,
    /// Which record types to ask for, and how often each (default: A only).
    pub types: TypeMix,
    /// The share of queries (0 to 1) for names that cannot exist: a random label under
    /// `nx_zone`. Whatever the server answers to them is counted by rcode like any other answer.
    pub nxdomain_share: f64,
    /// Where NXDOMAIN names live; `invalid.` can never exist (RFC 6761).
    pub nx_zone: Name,
    /// Queries in flight at most, over all connections.
    pub concurrency: usize,
    /// UDP sockets (distinct source ports) or TCP connections to spread the queries over.
    pub connections: usize,
    /// The run stops after sending this many queries.
    pub max_queries: u64,
    /// The run stops sending after this long from its start (must be above 0).
    pub max_duration: Duration,
    /// How long a query may wait for its answer before it counts as a time-out.
    pub timeout: Duration,
    /// The UDP payload size advertised in an OPT record; `None` sends no OPT.
    pub edns_payload: Option<u16>,
    /// Seeds the name and type choices, for a reproducible mix; `None` seeds from the OS.
    pub seed: Option<u64>,
}

/// Per-connection in-flight limit: a connection's ids live in a ring of twice this size,
/// which must fit the 16-bit id space.
const MAX_IN_FLIGHT_PER_CONNECTION: usize = 32_768;

impl LoadConfig {
    /// `demo1.example.org` type A over UDP, 64 in flight over 4 sockets, 2 s time-out, EDNS.
    pub fn new(
        server: SocketAddr,
        profile: Profile,
        max_queries: u64,
        max_duration: Duration,
    ) -> LoadConfig {
        LoadConfig {
            server,
            transport: Transport::Udp,
            profile,
            names: NameMix::exact("demo1.example.org").expect("a valid name"),
            types: TypeMix::only(hickory_resolver::proto::rr::RecordType::A),
            nxdomain_share: 0.0,
            nx_zone: parse_name("invalid").expect("a valid name"),
            concurrency: 64,
            connections: 4,
            max_queries,
            max_duration,
            timeout: Duration::from_secs(2),
            edns_payload: Some(DEFAULT_EDNS_PAYLOAD),
            seed: None,
        }
    }

    /// Checks the configuration without sending anything.
    pub fn validate(&self) -> Result<(), DnsError> {
        let bad = |reason: String| Err(DnsError::BadConfig(reason));
        self.profile.validate()?;
        if self.max_duration.is_zero() {
            return bad("max_duration must be longer than 0s".into());
        }
        if self.timeout.is_zero() {
            return bad("timeout must be longer than 0s".into());
        }
        if self.concurrency == 0 || self.connections == 0 {
            return bad("concurrency and connections must be at least 1".into());
        }
        if self.connections > self.concurrency {
            return bad(format!(
                "{} connections cannot share {} queries in flight: use at most as many connections as concurrency",
                self.connections, self.concurrency
            ));
        }
        if self.concurrency.div_ceil(self.connections) > MAX_IN_FLIGHT_PER_CONNECTION {
            return bad(format!(
                "at most {MAX_IN_FLIGHT_PER_CONNECTION} queries in flight per connection: add connections"
            ));
        }
        if !(0.0..=1.0).contains(&self.nxdomain_share) {
            return bad(format!(
                "nxdomain_share {} must be between 0 and 1",
                self.nxdomain_share
            ));
        }
        if self.nxdomain_share < 1.0 && mix_weights_unusable(self.names.entries()) {
            return bad("names: give at least one name with a weight > 0".into());
        }
        if mix_weights_unusable(self.types.entries()) {
            return bad("types: give at least one type with a weight > 0".into());
        }
        let room = crate::wire::MAX_NAME_WIRE_LEN - 1 - crate::wire::RANDOM_LABEL_LEN;
        if crate::wire::name_wire(&self.nx_zone).len() > room {
            return Err(DnsError::BadName {
                name: self.nx_zone.to_string(),
                reason: "no room left under this zone for a random label".into(),
            });
        }
        Ok(())
    }

    /// Runs the load to its end and reports what happened.
    pub async fn run(&self) -> Result<LoadReport, DnsError> {
        self.run_with_progress(Duration::from_secs(1), |_| {}).await
    }

    /// As [`run`](LoadConfig::run), calling `on_progress` every `every` (and once at the end)
    /// with a snapshot. The library prints nothing itself; draw a progress bar here.
    pub async fn run_with_progress(
        &self,
        every: Duration,
        mut on_progress: impl FnMut(&LoadProgress) + Send,
    ) -> Result<LoadReport, DnsError> {
        self.validate()?;
        let plan = Arc::new(Plan::new(self));
        let shared = Arc::new(Shared::new());
        // If the caller drops this future, the workers still stop: closing the permits makes
        // them drain what is in flight and exit.
        let _close_on_drop = worker::CloseOnDrop(shared.clone());

        let per_connection = split_evenly(self.concurrency, self.connections);
        let mut workers = Vec::with_capacity(self.connections);
        for (index, window) in per_connection.into_iter().enumerate() {
            let seed = self.seed.map(|seed| seed.wrapping_add(index as u64));
            let (plan, shared) = (plan.clone(), shared.clone());
            workers.push(match self.transport {
                Transport::Udp => {
                    let socket = self.udp_socket().await?;
                    tokio::spawn(worker::run_udp(socket, plan, shared, window, seed))
                }
                Transport::Tcp => {
                    let stream = worker::connect_tcp(self.server, self.timeout)
                        .await
                        .map_err(|source| DnsError::Unreachable {
                            server: self.server,
                            transport: "TCP",
                            source,
                        })?;
                    tokio::spawn(worker::run_tcp(Some(stream), plan, shared, window, seed))
                }
            });
        }

        let started = Instant::now();
        let deadline = started + self.max_duration;
        let snapshot = |finished_sending: bool| {
            let elapsed = started.elapsed();
            LoadProgress {
                elapsed,
                sent: shared.sent.load(Ordering::Relaxed),
                answered: shared.answered.load(Ordering::Relaxed),
                timeouts: shared.timeouts.load(Ordering::Relaxed),
                errors: shared.errors.load(Ordering::Relaxed),
                target_qps: self.profile.rate_at(elapsed),
                max_queries: self.max_queries,
                max_duration: self.max_duration,
                finished_sending,
            }
        };

        // Pacing: every millisecond, release as permits the queries the profile has asked for
        // so far. The integral is exact, so rounding never accumulates into drift.
        let mut released: u64 = 0;
        let mut ticker = tokio::time::interval(Duration::from_millis(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut next_progress = started + every;
        let mut sent_per_second = Vec::new();
        let mut sent_at_second_start = 0;
        let sending_time = loop {
            ticker.tick().await;
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(started);
            while Duration::from_secs(sent_per_second.len() as u64 + 1) <= elapsed {
                let sent = shared.sent.load(Ordering::Relaxed);
                sent_per_second.push(sent - sent_at_second_start);
                sent_at_second_start = sent;
            }
            if now >= deadline {
                break self.max_duration;
            }
            let due = self.profile.expected_queries(elapsed).ceil();
            let due = if due >= self.max_queries as f64 {
                self.max_queries
            } else {
                due as u64
            };
            if due > released {
                released += shared.add_permits(due - released);
            }
            if released == self.max_queries && shared.permits_taken() == self.max_queries {
                break elapsed;
            }
            if now >= next_progress {
                on_progress(&snapshot(false));
                next_progress += every;
            }
        };
        shared.close();
        let sent_in_last_partial_second =
            shared.sent.load(Ordering::Relaxed) - sent_at_second_start;
        if sent_in_last_partial_second > 0 {
            sent_per_second.push(sent_in_last_partial_second);
        }

        // Draining: the workers wait for the answers still due, at most `timeout` each.
        let mut all_done = std::pin::pin!(futures_join_all(workers));
        let stats = loop {
            tokio::select! {
                stats = &mut all_done => break stats?,
                _ = tokio::time::sleep_until(next_progress) => {
                    on_progress(&snapshot(true));
                    next_progress += every;
                }
            }
        };
        let elapsed = started.elapsed();
        on_progress(&snapshot(true));

        let total = stats
            .into_iter()
            .fold(WorkerStats::new(&plan), |mut total, one| {
                total.merge(one);
                total
            });
        Ok(total.into_report(&plan, sending_time, elapsed, sent_per_second, &shared))
    }

    async fn udp_socket(&self) -> Result<UdpSocket, DnsError> {
        let socket = UdpSocket::bind(unspecified_for(self.server))
            .await
            .map_err(DnsError::io("binding a UDP socket"))?;
        socket
            .connect(self.server)
            .await
            .map_err(DnsError::io(format!(
                "connecting a UDP socket to {}",
                self.server
            )))?;
        Ok(socket)
    }
}

fn mix_weights_unusable<T>(entries: &[(T, f64)]) -> bool {
    mix::Picker::new(entries.iter().map(|(_, weight)| *weight)).is_none()
}

/// `total` split into `parts` shares that differ by at most one.
fn split_evenly(total: usize, parts: usize) -> Vec<usize> {
    (0..parts)
        .map(|i| total / parts + usize::from(i < total % parts))
        .collect()
}

/// Waits for every worker; a worker that panicked becomes an error rather than a panic here.
async fn futures_join_all(
    workers: Vec<tokio::task::JoinHandle<WorkerStats>>,
) -> Result<Vec<WorkerStats>, DnsError> {
    let mut stats = Vec::with_capacity(workers.len());
    for worker in workers {
        stats.push(worker.await.map_err(|e| DnsError::Io {
            context: "a load worker failed".into(),
            source: std::io::Error::other(e.to_string()),
        })?);
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoadConfig {
        LoadConfig::new(
            "127.0.0.1:9".parse().unwrap(),
            Profile::constant(10.0),
            10,
            Duration::from_secs(1),
        )
    }

    #[test]
    fn splits_concurrency_evenly() {
        assert_eq!(split_evenly(10, 3), [4, 3, 3]);
        assert_eq!(split_evenly(4, 4), [1, 1, 1, 1]);
    }

    #[test]
    fn bad_configurations_are_typed_errors() {
        let err = |change: fn(&mut LoadConfig)| {
            let mut config = config();
            change(&mut config);
            config.validate().unwrap_err().to_string()
        };
        assert!(config().validate().is_ok());
        assert_eq!(
            err(|c| c.concurrency = 0),
            "bad load configuration: concurrency and connections must be at least 1"
        );
        assert!(err(|c| c.connections = 100).contains("use at most as many connections"));
        assert!(err(|c| c.nxdomain_share = 1.5).contains("between 0 and 1"));
        assert_eq!(
            err(|c| c.max_duration = Duration::ZERO),
            "bad load configuration: max_duration must be longer than 0s"
        );
        assert!(err(|c| c.profile = Profile::constant(-1.0)).starts_with("bad load profile:"));
        assert!(err(|c| c.names = NameMix::empty()).contains("at least one name"));
        assert_eq!(
            err(|c| c.types = "A=0,AAAA=0".parse().unwrap()),
            "bad load configuration: types: give at least one type with a weight > 0"
        );
        assert!(
            err(|c| {
                c.concurrency = 100_000;
                c.connections = 1;
            })
            .contains("per connection")
        );
        // Only NXDOMAIN names: no other names needed.
        let mut only_nx = config();
        only_nx.names = NameMix::empty();
        only_nx.nxdomain_share = 1.0;
        assert!(only_nx.validate().is_ok());
    }
}
