//! One running server, whichever runtime started it.

use std::path::{Path, PathBuf};

use tokio::process::Command;

#[cfg(feature = "containers")]
use crate::containers::ContainerServer;
use crate::{Result, TestbedError, config::ServerConfigs, locate, process::ServerProcess};

/// A label on every container the testbed starts, so that leftovers can be found.
pub const CONTAINER_LABEL: &str = "dev.promlearn.testbed";

/// What identifies a running server to the operating system or to Docker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerId {
    /// A child process, by its process id.
    Process(u32),
    /// A Docker container, by its container id.
    Container(String),
}

#[derive(Debug)]
pub(crate) enum Server {
    Process(ServerProcess),
    #[cfg(feature = "containers")]
    Container(ContainerServer),
}

impl Server {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Server::Process(process) => process.name(),
            #[cfg(feature = "containers")]
            Server::Container(container) => container.name(),
        }
    }

    pub(crate) fn id(&self) -> Option<ServerId> {
        match self {
            Server::Process(process) => process.pid().map(ServerId::Process),
            #[cfg(feature = "containers")]
            Server::Container(container) => Some(ServerId::Container(container.id())),
        }
    }

    /// `Some(status)` once the server has stopped running.
    pub(crate) async fn exit_status(&mut self) -> Option<String> {
        match self {
            Server::Process(process) => process.exit_status(),
            #[cfg(feature = "containers")]
            Server::Container(container) => container.exit_status().await,
        }
    }

    pub(crate) async fn last_log_lines(&self, n: usize) -> String {
        match self {
            Server::Process(process) => process.last_log_lines(n),
            #[cfg(feature = "containers")]
            Server::Container(container) => container.last_log_lines(n).await,
        }
    }

    pub(crate) async fn stop(self) -> Result<()> {
        match self {
            Server::Process(process) => process.stop().await,
            #[cfg(feature = "containers")]
            Server::Container(container) => container.stop().await,
        }
    }
}

/// Starts CoreDNS as a child process with the rendered Corefile written into `workdir`.
pub(crate) fn coredns_process(
    configs: &ServerConfigs,
    workdir: &Path,
    binary: Option<PathBuf>,
) -> Result<Server> {
    let binary = existing(binary, "the coredns binary")?.map_or_else(locate::coredns, Ok)?;
    let corefile = workdir.join("Corefile");
    std::fs::write(&corefile, &configs.corefile)
        .map_err(TestbedError::io("writing the Corefile"))?;
    let mut command = Command::new(binary);
    command.arg("-conf").arg(&corefile).current_dir(workdir);
    Ok(Server::Process(ServerProcess::spawn("CoreDNS", command)?))
}

/// Starts Prometheus as a child process, its config and TSDB in `workdir`.
pub(crate) fn prometheus_process(
    configs: &ServerConfigs,
    workdir: &Path,
    port: u16,
    binary: Option<PathBuf>,
    release: crate::PrometheusRelease,
) -> Result<Server> {
    let binary = existing(binary, "the prometheus binary")?
        .map_or_else(|| locate::prometheus_of(release), Ok)?;
    let config = workdir.join("prometheus.yml");
    std::fs::write(&config, &configs.prometheus_yml)
        .map_err(TestbedError::io("writing prometheus.yml"))?;
    for (name, contents) in configs.rule_files.iter().chain(&configs.side_files) {
        std::fs::write(workdir.join(name), contents)
            .map_err(TestbedError::io(format!("writing {name}")))?;
    }
    let mut command = Command::new(binary);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            workdir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .current_dir(workdir);
    Ok(Server::Process(ServerProcess::spawn(
        "Prometheus",
        command,
    )?))
}

fn existing(binary: Option<PathBuf>, what: &'static str) -> Result<Option<PathBuf>> {
    match binary {
        Some(path) if !path.is_file() => Err(TestbedError::BinaryMissing {
            what,
            advice: format!("{} was named, but there is no file there", path.display()),
        }),
        other => Ok(other),
    }
}
