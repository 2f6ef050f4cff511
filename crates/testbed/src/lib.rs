//! Real CoreDNS and Prometheus on demand, for the tutorial's demo and for end-to-end tests.
//!
//! A [`Testbed`] starts CoreDNS (DNS plus a metrics endpoint) and a Prometheus that scrapes it
//! every second, from the repository's `Corefile` and `prometheus.yml`, either as containers
//! (testcontainers, cargo feature `containers`, on by default) or as child processes. It returns
//! once Prometheus reports the CoreDNS target up, and stops both servers when dropped. It starts
//! servers from the binaries and images it is given ([`locate`] says where it looks) and never
//! installs anything: `cargo xtask setup` provisions a machine.
//!
//! ```no_run
//! # async fn demo() -> Result<(), promlearn_testbed::TestbedError> {
//! use promlearn_testbed::{Testbed, TestbedConfig};
//!
//! let testbed = Testbed::start(TestbedConfig::for_tests()?).await?;
//! println!("DNS at {}, Prometheus at {}", testbed.dns_addr(), testbed.prometheus_url());
//! let up = testbed.query("up{job=\"coredns\"}").await?;
//! assert_eq!(up[0].value, 1.0);
//! testbed.stop().await?; // or just drop it
//! # Ok(()) }
//! ```

pub mod certs;
mod config;
#[cfg(feature = "containers")]
pub mod containers;
mod error;
pub mod locate;
pub mod node_exporter;
pub mod peer;
mod ports;
mod process;
mod prom;
mod server;
pub mod thanos;
pub mod victoria;

use std::{
    fmt,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    str::FromStr,
    time::{Duration, Instant},
};

pub use config::{ScrapeTarget, ServerConfigs, repository_root};
pub use error::{Result, TestbedError};
pub use ports::Ports;
pub use process::ServerProcess;
pub use prom::Sample;
use server::Server;
pub use server::{CONTAINER_LABEL, ServerId};

/// Which runtime to use, as asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeChoice {
    /// Containers when a Docker daemon answers and the images are present or pullable, else processes.
    #[default]
    Auto,
    /// Docker containers only; fails when no daemon answers or an image is missing.
    Containers,
    /// Local `coredns` and `prometheus` processes only; fails when a binary is missing.
    Processes,
}

/// The runtime a testbed actually runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// The servers run in Docker containers (labelled [`CONTAINER_LABEL`]).
    Containers,
    /// The servers run as child processes of this one.
    Processes,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Containers => "containers",
            Runtime::Processes => "processes",
        })
    }
}

impl FromStr for RuntimeChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(RuntimeChoice::Auto),
            "containers" | "container" | "docker" => Ok(RuntimeChoice::Containers),
            "processes" | "process" => Ok(RuntimeChoice::Processes),
            other => Err(format!(
                "unknown runtime `{other}`: use `auto`, `containers` or `processes`"
            )),
        }
    }
}

/// The environment variable that picks the runtime for [`TestbedConfig::for_tests`].
pub const RUNTIME_ENV: &str = "PROMLEARN_RUNTIME";
/// The environment variable that picks the Prometheus release for [`TestbedConfig::for_tests`]
/// (`2` or `3`; default 2).
pub const PROMETHEUS_RELEASE_ENV: &str = "PROMLEARN_PROMETHEUS";

/// Which Prometheus to run: Debian's 2.x (`prometheus` on PATH, `$PROMETHEUS_BIN`) or 3.x
/// (`$PROMETHEUS3_BIN`, the tool cache). They differ where clients notice: Prometheus 3's
/// look-back window and range selectors are left-open, it serves native histograms and UTF-8
/// names by default, and answers may carry `infos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrometheusRelease {
    /// Prometheus 2.x (Debian's package; `prometheus` on PATH or `$PROMETHEUS_BIN`).
    #[default]
    V2,
    /// Prometheus 3.x (`$PROMETHEUS3_BIN` or the tool cache).
    V3,
}

impl fmt::Display for PrometheusRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrometheusRelease::V2 => "2",
            PrometheusRelease::V3 => "3",
        })
    }
}

impl FromStr for PrometheusRelease {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().trim_start_matches(['v', 'V']) {
            "2" | "2.x" => Ok(PrometheusRelease::V2),
            "3" | "3.x" => Ok(PrometheusRelease::V3),
            other => Err(format!(
                "unknown Prometheus release `{other}`: use `2` or `3`"
            )),
        }
    }
}

impl PrometheusRelease {
    /// `$PROMLEARN_PROMETHEUS`, else 2.
    pub fn from_env() -> Result<PrometheusRelease> {
        match std::env::var(PROMETHEUS_RELEASE_ENV) {
            Ok(value) if !value.trim().is_empty() => {
                value.parse().map_err(|problem| TestbedError::Provision {
                    what: "the Prometheus release choice",
                    detail: format!("{PROMETHEUS_RELEASE_ENV}: {problem}"),
                })
            }
            _ => Ok(PrometheusRelease::V2),
        }
    }
}

/// How to start a testbed.
#[derive(Debug, Clone)]
pub struct TestbedConfig {
    /// Containers, processes, or whichever is available (default [`RuntimeChoice::Auto`]).
    pub runtime: RuntimeChoice,
    /// Which Prometheus: 2.x (default) or 3.x; `prometheus_bin` / `prometheus_image` override it.
    pub prometheus_release: PrometheusRelease,
    /// Host ports for CoreDNS's DNS and metrics and for Prometheus, all on 127.0.0.1.
    pub ports: Ports,
    /// The Corefile to start CoreDNS with; its tutorial ports are rewritten to `ports`.
    pub corefile: PathBuf,
    /// The prometheus.yml to start Prometheus with; its tutorial ports are rewritten to `ports`,
    /// and rule files it names are read from beside it.
    pub prometheus_yml: PathBuf,
    /// How long CoreDNS and Prometheus may take, together, to be up and scraping.
    pub start_timeout: Duration,
    /// Binaries for the process runtime; `None` searches as [`locate::coredns`] does.
    pub coredns_bin: Option<PathBuf>,
    /// The Prometheus binary for the process runtime; `None` searches for the chosen release.
    pub prometheus_bin: Option<PathBuf>,
    /// Images for the container runtime; `None` takes `$COREDNS_IMAGE` / `$PROMETHEUS_IMAGE`, else upstream's.
    pub coredns_image: Option<String>,
    /// The Prometheus image for the container runtime; `None` as for `coredns_image`.
    pub prometheus_image: Option<String>,
    /// More scrape jobs for Prometheus, e.g. a service under test (scraped every second).
    pub extra_scrape_targets: Vec<ScrapeTarget>,
    /// More rule files (alerting or recording rules) for Prometheus, copied beside its
    /// prometheus.yml; their file names must differ from the rule files it already names.
    pub rule_files: Vec<PathBuf>,
}

impl TestbedConfig {
    /// The tutorial's set-up: its ports and the repository's `Corefile` and `prometheus.yml`.
    pub fn tutorial(runtime: RuntimeChoice) -> TestbedConfig {
        let root = repository_root();
        TestbedConfig {
            runtime,
            prometheus_release: PrometheusRelease::V2,
            ports: Ports::TUTORIAL,
            corefile: root.join("Corefile"),
            prometheus_yml: root.join("prometheus.yml"),
            start_timeout: Duration::from_secs(60),
            coredns_bin: None,
            prometheus_bin: None,
            coredns_image: None,
            prometheus_image: None,
            extra_scrape_targets: Vec::new(),
            rule_files: Vec::new(),
        }
    }

    /// Free ephemeral ports, the runtime named by `$PROMLEARN_RUNTIME` (default auto) and the
    /// Prometheus release named by `$PROMLEARN_PROMETHEUS` (default 2).
    pub fn for_tests() -> Result<TestbedConfig> {
        let runtime = match std::env::var(RUNTIME_ENV) {
            Ok(value) => value.parse().map_err(|problem| TestbedError::Provision {
                what: "the runtime choice",
                detail: format!("{RUNTIME_ENV}: {problem}"),
            })?,
            Err(_) => RuntimeChoice::Auto,
        };
        Ok(TestbedConfig {
            ports: Ports::ephemeral()?,
            prometheus_release: PrometheusRelease::from_env()?,
            ..TestbedConfig::tutorial(runtime)
        })
    }

    /// Runs `release` instead of the configured Prometheus release.
    pub fn with_prometheus_release(mut self, release: PrometheusRelease) -> TestbedConfig {
        self.prometheus_release = release;
        self
    }

    /// Runs on `runtime` instead of the configured one.
    pub fn with_runtime(mut self, runtime: RuntimeChoice) -> TestbedConfig {
        self.runtime = runtime;
        self
    }
}

/// Running CoreDNS and Prometheus. Dropping it stops both and removes their files.
#[derive(Debug)]
pub struct Testbed {
    runtime: Runtime,
    runtime_reason: String,
    ports: Ports,
    /// The loader's client for Prometheus's API (instant queries).
    api: promlearn_loader::Client,
    // Declared before the work directory: servers stop before their files go.
    prometheus: Option<Server>,
    coredns: Option<Server>,
    /// What starting Prometheus again takes ([`Testbed::start_prometheus`]).
    relaunch: Relaunch,
    _workdir: tempfile::TempDir,
}

#[derive(Debug)]
struct Relaunch {
    configs: ServerConfigs,
    prometheus_release: PrometheusRelease,
    prometheus_bin: Option<PathBuf>,
    #[cfg(feature = "containers")]
    prometheus_image: String,
    start_timeout: Duration,
}

impl Testbed {
    /// Starts both servers and waits until Prometheus has scraped CoreDNS (`up{job="coredns"} == 1`).
    pub async fn start(config: TestbedConfig) -> Result<Testbed> {
        Testbed::start_with_progress(config, &mut |_| {}).await
    }

    /// As [`Testbed::start`], reporting each stage to `progress`.
    pub async fn start_with_progress(
        config: TestbedConfig,
        progress: locate::Progress<'_>,
    ) -> Result<Testbed> {
        let deadline = Instant::now() + config.start_timeout;
        #[cfg(feature = "containers")]
        let images = Images {
            coredns: config
                .coredns_image
                .clone()
                .unwrap_or_else(containers::coredns_image),
            prometheus: config
                .prometheus_image
                .clone()
                .unwrap_or_else(|| containers::prometheus_image_of(config.prometheus_release)),
        };
        #[cfg(feature = "containers")]
        let (runtime, runtime_reason) = choose_runtime(config.runtime, &images).await?;
        #[cfg(not(feature = "containers"))]
        let (runtime, runtime_reason) = choose_runtime(config.runtime)?;
        progress(&format!("runtime: {runtime} ({runtime_reason})"));
        config.ports.ensure_free()?;
        let mut configs =
            ServerConfigs::load(&config.corefile, &config.prometheus_yml, config.ports)?;
        configs.add_extras(&config.extra_scrape_targets, &config.rule_files)?;
        let workdir = tempfile::Builder::new()
            .prefix("promlearn-testbed-")
            .tempdir()
            .map_err(TestbedError::io("creating the testbed's work directory"))?;
        let api = prom::local_client(
            &format!("http://127.0.0.1:{}", config.ports.prometheus),
            Duration::from_secs(5),
            &[],
        )?;
        let coredns_metrics = prom::local_client(
            &format!("http://127.0.0.1:{}", config.ports.metrics),
            Duration::from_secs(5),
            &[],
        )?;
        let mut testbed = Testbed {
            runtime,
            runtime_reason,
            ports: config.ports,
            api,
            prometheus: None,
            coredns: None,
            relaunch: Relaunch {
                configs: configs.clone(),
                prometheus_release: config.prometheus_release,
                prometheus_bin: config.prometheus_bin.clone(),
                #[cfg(feature = "containers")]
                prometheus_image: images.prometheus.clone(),
                start_timeout: config.start_timeout,
            },
            _workdir: workdir,
        };

        progress(&format!(
            "starting CoreDNS (DNS :{}, metrics :{})",
            config.ports.dns, config.ports.metrics
        ));
        testbed.coredns = Some(match runtime {
            Runtime::Processes => server::coredns_process(
                &configs,
                testbed._workdir.path(),
                config.coredns_bin.clone(),
            )?,
            #[cfg(feature = "containers")]
            Runtime::Containers => {
                containers::coredns_container(&configs, images.coredns.clone()).await?
            }
            #[cfg(not(feature = "containers"))]
            Runtime::Containers => unreachable!("choose_runtime never picks containers here"),
        });
        testbed
            .wait_until(deadline, "CoreDNS's metrics endpoint to answer", || {
                let client = coredns_metrics.clone();
                async move {
                    client
                        .scrape("/metrics")
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            })
            .await?;

        progress(&format!(
            "starting Prometheus (:{})",
            config.ports.prometheus
        ));
        testbed.launch_prometheus().await?;
        progress("waiting for Prometheus to scrape CoreDNS (up{job=\"coredns\"} == 1)");
        testbed.wait_prometheus_ready(deadline).await?;
        progress("testbed ready");
        Ok(testbed)
    }

    /// Starts Prometheus from the testbed's configuration (on the process runtime, on the same
    /// TSDB directory, so that its history survives a restart).
    async fn launch_prometheus(&mut self) -> Result<()> {
        let relaunch = &self.relaunch;
        self.prometheus = Some(match self.runtime {
            Runtime::Processes => server::prometheus_process(
                &relaunch.configs,
                self._workdir.path(),
                self.ports.prometheus,
                relaunch.prometheus_bin.clone(),
                relaunch.prometheus_release,
            )?,
            #[cfg(not(feature = "containers"))]
            Runtime::Containers => unreachable!("choose_runtime never picks containers here"),
            #[cfg(feature = "containers")]
            Runtime::Containers => {
                containers::prometheus_container(
                    &relaunch.configs,
                    self.ports.prometheus,
                    relaunch.prometheus_image.clone(),
                )
                .await?
            }
        });
        Ok(())
    }

    /// Waits until Prometheus reports the CoreDNS target up.
    async fn wait_prometheus_ready(&mut self, deadline: Instant) -> Result<()> {
        let api = self.api.clone();
        self.wait_until(
            deadline,
            "Prometheus to report the CoreDNS target up",
            || {
                let api = api.clone();
                async move {
                    let up = prom::instant_query(&api, "up{job=\"coredns\"}", None)
                        .await
                        .map_err(|e| e.to_string())?;
                    match up.first() {
                        Some(sample) if sample.value == 1.0 => Ok(()),
                        Some(sample) => Err(format!("up{{job=\"coredns\"}} is {}", sample.value)),
                        None => Err("no scrape of the coredns job yet".into()),
                    }
                }
            },
        )
        .await
    }

    /// Stops Prometheus alone (CoreDNS keeps running), to test what clients do while it is
    /// down. [`Testbed::start_prometheus`] starts it again.
    pub async fn stop_prometheus(&mut self) -> Result<()> {
        match self.prometheus.take() {
            Some(server) => server.stop().await,
            None => Ok(()),
        }
    }

    /// Starts Prometheus again after [`Testbed::stop_prometheus`], on the same port and
    /// configuration (and, on the process runtime, the same TSDB), and waits until it has
    /// scraped CoreDNS. Does nothing if it runs.
    pub async fn start_prometheus(&mut self) -> Result<()> {
        if self.prometheus.is_some() {
            return Ok(());
        }
        self.launch_prometheus().await?;
        let deadline = Instant::now() + self.relaunch.start_timeout;
        self.wait_prometheus_ready(deadline).await
    }

    /// Stops Prometheus and starts it again ([`Testbed::stop_prometheus`], then
    /// [`Testbed::start_prometheus`]).
    pub async fn restart_prometheus(&mut self) -> Result<()> {
        self.stop_prometheus().await?;
        self.start_prometheus().await
    }

    /// Polls `check` every 200 ms until it succeeds, a server exits, or the deadline passes.
    async fn wait_until<F, Fut>(&mut self, deadline: Instant, what: &str, check: F) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(), String>>,
    {
        let started = Instant::now();
        loop {
            for server in [self.coredns.as_mut(), self.prometheus.as_mut()]
                .into_iter()
                .flatten()
            {
                if let Some(status) = server.exit_status().await {
                    return Err(TestbedError::ServerExited {
                        server: server.name(),
                        status,
                        log: server.last_log_lines(20).await,
                    });
                }
            }
            let detail = match check().await {
                Ok(()) => return Ok(()),
                Err(detail) => detail,
            };
            if Instant::now() >= deadline {
                let server = self
                    .prometheus
                    .as_ref()
                    .or(self.coredns.as_ref())
                    .expect("a server started");
                return Err(TestbedError::NotReady {
                    what: what.to_owned(),
                    timeout: started.elapsed(),
                    detail,
                    server: server.name(),
                    log: server.last_log_lines(20).await,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The runtime the servers run on, and why it was chosen.
    pub fn runtime(&self) -> (Runtime, &str) {
        (self.runtime, &self.runtime_reason)
    }

    /// The host ports the servers listen on (127.0.0.1).
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// Where CoreDNS answers DNS (UDP and TCP).
    pub fn dns_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.dns))
    }

    /// CoreDNS's Prometheus exposition endpoint.
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.ports.metrics)
    }

    /// The `instance` label Prometheus gives the CoreDNS target (`localhost:9153` on the tutorial's ports).
    pub fn coredns_instance(&self) -> String {
        format!("localhost:{}", self.ports.metrics)
    }

    /// Prometheus's base URL, e.g. `http://127.0.0.1:9090`.
    pub fn prometheus_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.prometheus)
    }

    /// An instant query against the testbed's Prometheus.
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>> {
        prom::instant_query(&self.api, promql, None).await
    }

    /// Polls an instant query until `accept` returns true for its answer, or `timeout` passes.
    pub async fn wait_for_query(
        &self,
        promql: &str,
        timeout: Duration,
        accept: impl Fn(&[Sample]) -> bool,
    ) -> Result<Vec<Sample>> {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self.query(promql).await;
            if let Ok(samples) = &answer
                && accept(samples)
            {
                return answer;
            }
            if Instant::now() >= deadline {
                let seen = match answer {
                    Ok(samples) => format!("last answer: {samples:?}"),
                    Err(e) => e.to_string(),
                };
                let server = self.prometheus.as_ref().expect("running");
                return Err(TestbedError::NotReady {
                    what: format!("`{promql}` to give the expected answer"),
                    timeout,
                    detail: seen,
                    server: server.name(),
                    log: server.last_log_lines(10).await,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Process ids or container ids of the running servers, to prove that teardown leaves nothing.
    pub fn server_ids(&self) -> Vec<ServerId> {
        [self.coredns.as_ref(), self.prometheus.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(Server::id)
            .collect()
    }

    /// The last lines each server logged, for diagnostics.
    pub async fn server_logs(&self, lines: usize) -> String {
        let mut text = String::new();
        for server in [self.coredns.as_ref(), self.prometheus.as_ref()]
            .into_iter()
            .flatten()
        {
            text.push_str(&format!(
                "--- {} ---\n{}\n",
                server.name(),
                server.last_log_lines(lines).await
            ));
        }
        text
    }

    /// Stops Prometheus, then CoreDNS, and waits until both are gone.
    pub async fn stop(mut self) -> Result<()> {
        let mut first_error = None;
        for server in [self.prometheus.take(), self.coredns.take()]
            .into_iter()
            .flatten()
        {
            if let Err(e) = server.stop().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(feature = "containers")]
struct Images {
    coredns: String,
    prometheus: String,
}

/// Without the `containers` feature, the process runtime is the only one.
#[cfg(not(feature = "containers"))]
fn choose_runtime(choice: RuntimeChoice) -> Result<(Runtime, String)> {
    match choice {
        RuntimeChoice::Processes => Ok((Runtime::Processes, "asked for".into())),
        RuntimeChoice::Auto => Ok((
            Runtime::Processes,
            "this build has no container runtime (cargo feature `containers` off)".into(),
        )),
        RuntimeChoice::Containers => Err(TestbedError::DockerUnavailable {
            reason: "this build has no container runtime: build with the cargo feature \
                     `containers` (`cargo xtask demo` does where a Docker daemon answers)"
                .into(),
        }),
    }
}

#[cfg(feature = "containers")]
async fn choose_runtime(choice: RuntimeChoice, images: &Images) -> Result<(Runtime, String)> {
    use containers::{docker_image_present, docker_ping, docker_pull};
    let images = [
        (images.coredns.clone(), locate::COREDNS_IMAGE_ENV),
        (images.prometheus.clone(), locate::PROMETHEUS_IMAGE_ENV),
    ];
    match choice {
        RuntimeChoice::Processes => Ok((Runtime::Processes, "asked for".into())),
        RuntimeChoice::Containers => {
            docker_ping()
                .await
                .map_err(|reason| TestbedError::DockerUnavailable { reason })?;
            Ok((Runtime::Containers, "asked for".into()))
        }
        RuntimeChoice::Auto => {
            if let Err(reason) = docker_ping().await {
                return Ok((
                    Runtime::Processes,
                    format!("no Docker daemon answers: {reason}"),
                ));
            }
            for (image, env_var) in &images {
                if docker_image_present(image).await {
                    continue;
                }
                if let Err(reason) = docker_pull(image).await {
                    return Ok((
                        Runtime::Processes,
                        format!(
                            "Docker answers, but image {image} is not present and cannot be pulled \
                             ({reason}); build one with `cargo xtask setup` and name it in {env_var}"
                        ),
                    ));
                }
            }
            Ok((
                Runtime::Containers,
                format!("Docker answers and has {} and {}", images[0].0, images[1].0),
            ))
        }
    }
}
