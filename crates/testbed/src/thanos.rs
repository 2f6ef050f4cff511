//! A small Thanos set-up on the process runtime: Prometheus replicas that differ only in an
//! external `replica` label, a `thanos sidecar` beside each, and a `thanos query` in front that
//! deduplicates over that label (`--query.replica-label=replica`), as users put Thanos in front of
//! several Prometheus.
//!
//! Only child processes: Thanos has no Debian package, so there is no local image to run, and the
//! containers would add nothing the process runtime does not test (the querier's HTTP API is the
//! same). [`ThanosQuery::start`] returns once the querier answers a query with data from every
//! replica (asked with `dedup=false`, so each replica shows); dropping it stops every process.

use std::{
    net::{Ipv4Addr, TcpListener},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use tokio::process::Command;

use crate::{PrometheusRelease, Result, ServerProcess, TestbedError, locate, prom};

/// The external label that tells the replicas apart, and that the querier deduplicates away.
pub const REPLICA_LABEL: &str = "replica";

/// How to start a Thanos set-up.
#[derive(Debug, Clone)]
pub struct ThanosConfig {
    /// How many Prometheus replicas (each with its sidecar); at least 1.
    pub replicas: usize,
    /// Which Prometheus the replicas run (default 3.x).
    pub prometheus_release: PrometheusRelease,
    /// `None` locates the release's binary ([`locate::prometheus_of`]).
    pub prometheus_bin: Option<PathBuf>,
    /// `None` locates it ([`locate::thanos`]).
    pub thanos_bin: Option<PathBuf>,
    /// A TSDB directory (as `promtool tsdb create-blocks-from` writes it) whose blocks each
    /// replica starts with.
    pub seed_blocks: Option<PathBuf>,
    /// Extra Prometheus flags, e.g. `--enable-feature=native-histograms`.
    pub prometheus_args: Vec<String>,
    /// YAML of more `scrape_configs` items (written at column 0), after the replicas' own job
    /// (`prometheus`: every replica scrapes every replica, every second, as an HA pair scrapes
    /// the same targets).
    pub extra_scrape_configs: String,
    /// Ready means: `count by (replica) (<ready_query>)`, asked from the querier with
    /// `dedup=false` at `ready_time_ms` (now if `None`), shows every replica with at least
    /// `ready_min_series` series.
    pub ready_query: String,
    /// When the ready query is evaluated, unix milliseconds; `None` asks at the querier's now
    /// (give a time inside `seed_blocks` when the data is historical).
    pub ready_time_ms: Option<i64>,
    /// Series each replica must show for the set-up to count as ready (default 1).
    pub ready_min_series: usize,
    /// How long starting every process and becoming ready may take, together (default 90 s);
    /// past it, [`TestbedError::NotReady`].
    pub start_timeout: Duration,
}

impl Default for ThanosConfig {
    fn default() -> ThanosConfig {
        ThanosConfig {
            replicas: 2,
            prometheus_release: PrometheusRelease::V3,
            prometheus_bin: None,
            thanos_bin: None,
            seed_blocks: None,
            prometheus_args: Vec::new(),
            extra_scrape_configs: String::new(),
            // Each replica has scraped both replicas once.
            ready_query: "up{job=\"prometheus\"}".into(),
            ready_time_ms: None,
            ready_min_series: 2,
            start_timeout: Duration::from_secs(90),
        }
    }
}

/// One replica: its Prometheus and its sidecar.
#[derive(Debug)]
struct Replica {
    prometheus: Option<ServerProcess>,
    sidecar: Option<ServerProcess>,
    prometheus_port: u16,
    sidecar_grpc: u16,
}

/// A running `thanos query` over Prometheus replicas with sidecars. Dropping it kills them all.
#[derive(Debug)]
pub struct ThanosQuery {
    // Declared before the work directory: processes stop before their files go.
    query: Option<ServerProcess>,
    replicas: Vec<Replica>,
    query_port: u16,
    /// The loader's client for the querier, asking with `dedup=false` so that each replica shows.
    api: promlearn_loader::Client,
    _workdir: tempfile::TempDir,
}

/// `n` loopback TCP ports the kernel reports free, held together until all are chosen.
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .map_err(TestbedError::io("asking the kernel for a free port"))
        })
        .collect::<Result<Vec<_>>>()?;
    held.iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(TestbedError::io("reading a bound port"))
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

impl ThanosQuery {
    /// Starts the replicas, their sidecars and the querier; returns when the querier answers
    /// the ready query from every replica.
    pub async fn start(config: ThanosConfig) -> Result<ThanosQuery> {
        if config.replicas == 0 {
            return Err(TestbedError::Provision {
                what: "the Thanos set-up",
                detail: "it needs at least one Prometheus replica".into(),
            });
        }
        let deadline = Instant::now() + config.start_timeout;
        let thanos = match &config.thanos_bin {
            Some(path) if path.is_file() => path.clone(),
            Some(path) => {
                return Err(TestbedError::BinaryMissing {
                    what: "the thanos binary",
                    advice: format!("{} was named, but there is no file there", path.display()),
                });
            }
            None => locate::thanos()?,
        };
        let prometheus = match &config.prometheus_bin {
            Some(path) => path.clone(),
            None => locate::prometheus_of(config.prometheus_release)?,
        };
        let workdir = tempfile::Builder::new()
            .prefix("promlearn-thanos-")
            .tempdir()
            .map_err(TestbedError::io(
                "creating the Thanos set-up's work directory",
            ))?;
        let ports = free_ports(3 * config.replicas + 2)?;
        let api = prom::local_client(
            &format!("http://127.0.0.1:{}", ports[0]),
            Duration::from_secs(10),
            &[("dedup", "false")],
        )?;
        let mut setup = ThanosQuery {
            query: None,
            replicas: Vec::new(),
            query_port: ports[0],
            api,
            _workdir: workdir,
        };
        let targets: Vec<String> = (0..config.replicas)
            .map(|i| format!("\"127.0.0.1:{}\"", ports[2 + 3 * i]))
            .collect();
        for i in 0..config.replicas {
            let dir = setup._workdir.path().join(format!("replica-{i}"));
            let data = dir.join("data");
            match &config.seed_blocks {
                Some(blocks) => copy_dir(blocks, &data),
                None => std::fs::create_dir_all(&data),
            }
            .map_err(TestbedError::io(format!(
                "preparing replica {i}'s TSDB in {}",
                data.display()
            )))?;
            let (prometheus_port, grpc, sidecar_http) =
                (ports[2 + 3 * i], ports[3 + 3 * i], ports[4 + 3 * i]);
            let yml = format!(
                "global:\n  scrape_interval: 1s\n  external_labels:\n    {REPLICA_LABEL}: \"r{i}\"\n\
                 scrape_configs:\n- job_name: prometheus\n  static_configs:\n  - targets: \
                 [{}]\n{}",
                targets.join(", "),
                config.extra_scrape_configs
            );
            let config_file = dir.join("prometheus.yml");
            std::fs::write(&config_file, yml).map_err(TestbedError::io(format!(
                "writing {}",
                config_file.display()
            )))?;
            let mut command = Command::new(&prometheus);
            command
                .arg(format!("--config.file={}", config_file.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
                .arg("--storage.tsdb.retention.time=10y")
                .args(&config.prometheus_args)
                .current_dir(&dir);
            let mut prometheus_process =
                ServerProcess::spawn("Prometheus (Thanos replica)", command)?;
            // The sidecar asks Prometheus for its version and external labels at start and, when
            // Prometheus does not answer yet, asks again only 30 s later: start it once Prometheus
            // is ready.
            prom::wait_until_answering(
                &mut prometheus_process,
                prometheus_port,
                "a Thanos replica's Prometheus to be ready",
                deadline,
            )
            .await?;
            let mut sidecar = Command::new(&thanos);
            sidecar
                .arg("sidecar")
                .arg(format!(
                    "--prometheus.url=http://127.0.0.1:{prometheus_port}"
                ))
                .arg(format!("--tsdb.path={}", data.display()))
                .arg(format!("--grpc-address=127.0.0.1:{grpc}"))
                .arg(format!("--http-address=127.0.0.1:{sidecar_http}"))
                .current_dir(&dir);
            let sidecar_process = ServerProcess::spawn("thanos sidecar", sidecar)?;
            setup.replicas.push(Replica {
                prometheus: Some(prometheus_process),
                sidecar: Some(sidecar_process),
                prometheus_port,
                sidecar_grpc: grpc,
            });
        }
        let mut query = Command::new(&thanos);
        query
            .arg("query")
            .arg(format!("--http-address=127.0.0.1:{}", ports[0]))
            .arg(format!("--grpc-address=127.0.0.1:{}", ports[1]))
            .arg(format!("--query.replica-label={REPLICA_LABEL}"))
            // Sidecars that are gone are noticed soon (the default is 5 s).
            .arg("--endpoint.info-timeout=2s")
            .current_dir(setup._workdir.path());
        for replica in &setup.replicas {
            query.arg(format!("--endpoint=127.0.0.1:{}", replica.sidecar_grpc));
        }
        setup.query = Some(ServerProcess::spawn("thanos query", query)?);
        setup.wait_ready(&config, deadline).await?;
        Ok(setup)
    }

    async fn wait_ready(&mut self, config: &ThanosConfig, deadline: Instant) -> Result<()> {
        let started = Instant::now();
        let promql = format!("count by ({REPLICA_LABEL}) ({})", config.ready_query);
        loop {
            if let Some((name, status, log)) = self.exited() {
                return Err(TestbedError::ServerExited {
                    server: name,
                    status,
                    log,
                });
            }
            let detail = match self.replica_counts(&promql, config.ready_time_ms).await {
                Ok(counts)
                    if counts.len() == config.replicas
                        && counts.iter().all(|c| *c >= config.ready_min_series as f64) =>
                {
                    return Ok(());
                }
                Ok(counts) => format!(
                    "`{promql}` counts {counts:?} over {} replica(s) answering; {} expected, \
                     each with at least {} series",
                    counts.len(),
                    config.replicas,
                    config.ready_min_series
                ),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(TestbedError::NotReady {
                    what: "the Thanos querier to answer from every replica".into(),
                    timeout: started.elapsed(),
                    detail,
                    server: "thanos query",
                    log: self.logs(15),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The values of `promql` (one per replica), asked with `dedup=false`.
    async fn replica_counts(
        &self,
        promql: &str,
        time_ms: Option<i64>,
    ) -> std::result::Result<Vec<f64>, String> {
        let samples = prom::instant_query(&self.api, promql, time_ms)
            .await
            .map_err(|e| e.to_string())?;
        Ok(samples.into_iter().map(|s| s.value).collect())
    }

    fn exited(&mut self) -> Option<(&'static str, String, String)> {
        let processes = self.query.iter_mut().chain(
            self.replicas
                .iter_mut()
                .flat_map(|r| r.prometheus.iter_mut().chain(r.sidecar.iter_mut())),
        );
        for process in processes {
            if let Some(status) = process.exit_status() {
                return Some((process.name(), status, process.last_log_lines(20)));
            }
        }
        None
    }

    /// The last lines of every process's log, for diagnostics.
    pub fn logs(&self, lines: usize) -> String {
        let mut text = String::new();
        let processes = self.query.iter().chain(
            self.replicas
                .iter()
                .flat_map(|r| r.prometheus.iter().chain(r.sidecar.iter())),
        );
        for process in processes {
            text.push_str(&format!(
                "--- {} ---\n{}\n",
                process.name(),
                process.last_log_lines(lines)
            ));
        }
        text
    }

    /// The querier's HTTP API base URL (what `promlearn load --endpoint` is pointed at).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.query_port)
    }

    /// Replica `i`'s own Prometheus.
    pub fn prometheus_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.replicas[i].prometheus_port)
    }

    /// How many replicas run; valid indices for [`ThanosQuery::prometheus_url`] are below it.
    pub fn replicas(&self) -> usize {
        self.replicas.len()
    }

    /// Process ids of everything running, to prove that teardown leaves nothing.
    pub fn pids(&self) -> Vec<u32> {
        self.query
            .iter()
            .chain(
                self.replicas
                    .iter()
                    .flat_map(|r| r.prometheus.iter().chain(r.sidecar.iter())),
            )
            .filter_map(ServerProcess::pid)
            .collect()
    }

    /// Stops replica `i`'s sidecar (its Prometheus keeps running), so that the querier's store
    /// for it fails: a partial response.
    pub async fn stop_sidecar(&mut self, i: usize) -> Result<()> {
        match self.replicas[i].sidecar.take() {
            Some(process) => process.stop().await,
            None => Ok(()),
        }
    }

    /// Stops everything and waits until each process is gone.
    pub async fn stop(mut self) -> Result<()> {
        let mut first_error = None;
        let mut processes: Vec<ServerProcess> = self.query.take().into_iter().collect();
        for replica in &mut self.replicas {
            processes.extend(replica.sidecar.take());
            processes.extend(replica.prometheus.take());
        }
        for process in processes {
            if let Err(e) = process.stop().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
