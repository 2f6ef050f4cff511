//! A VictoriaMetrics single-node server on the process runtime, beside Prometheus and Thanos: a
//! second engine behind the Prometheus query API that also imports samples at any timestamp
//! (`/api/v1/import/prometheus`), so a test or benchmark can load history ending now at once.
//!
//! [`VictoriaMetrics::start`] returns once its query API answers; dropping it stops the server
//! and removes its data. Filling it is the caller's: the import is one HTTP POST of Prometheus
//! text lines with millisecond timestamps (tests and benchmarks may use an HTTP client of their
//! own; see ARCHITECTURE.md).

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use tokio::process::Command;

use crate::{Ports, Result, ServerProcess, TestbedError, locate, prom};

/// How to start a VictoriaMetrics.
#[derive(Debug, Clone)]
pub struct VictoriaConfig {
    /// `None` locates it ([`locate::victoria_metrics`]).
    pub binary: Option<PathBuf>,
    /// `-retentionPeriod`: long enough for the oldest sample a caller imports, or it is dropped
    /// (default `100y`).
    pub retention: String,
    /// Further flags.
    pub args: Vec<String>,
    /// How long starting may take until the query API answers (default 60 s).
    pub start_timeout: Duration,
}

impl Default for VictoriaConfig {
    fn default() -> Self {
        VictoriaConfig {
            binary: None,
            retention: "100y".into(),
            args: Vec::new(),
            start_timeout: Duration::from_secs(60),
        }
    }
}

/// A running VictoriaMetrics. Dropping it stops the server and removes its data directory.
#[derive(Debug)]
pub struct VictoriaMetrics {
    // Declared before the work directory: the process stops before its files go.
    process: Option<ServerProcess>,
    port: u16,
    _workdir: tempfile::TempDir,
}

impl VictoriaMetrics {
    /// Starts VictoriaMetrics on a free loopback port and waits until its query API answers.
    pub async fn start(config: VictoriaConfig) -> Result<VictoriaMetrics> {
        let binary = match config.binary {
            Some(path) => path,
            None => locate::victoria_metrics()?,
        };
        let workdir = tempfile::Builder::new()
            .prefix("promlearn-victoria-")
            .tempdir()
            .map_err(TestbedError::io(
                "creating VictoriaMetrics's work directory",
            ))?;
        let port = Ports::ephemeral()?.prometheus;
        let mut command = Command::new(binary);
        command
            .arg(format!(
                "-storageDataPath={}",
                workdir.path().join("data").display()
            ))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-retentionPeriod={}", config.retention))
            .args(&config.args)
            .current_dir(workdir.path());
        let mut process = ServerProcess::spawn("victoria-metrics", command)?;
        prom::wait_until_answering(
            &mut process,
            port,
            "VictoriaMetrics's query API to answer",
            Instant::now() + config.start_timeout,
        )
        .await?;
        Ok(VictoriaMetrics {
            process: Some(process),
            port,
            _workdir: workdir,
        })
    }

    /// Its base URL (the Prometheus query API under `/api/v1/`, the import under
    /// `/api/v1/import/prometheus`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its process id, to prove that teardown leaves nothing.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServerProcess::pid)
    }

    /// Its last log lines, for diagnostics.
    pub fn logs(&self, lines: usize) -> String {
        self.process
            .as_ref()
            .map(|p| p.last_log_lines(lines))
            .unwrap_or_default()
    }

    /// Stops the server and waits until it is gone.
    pub async fn stop(mut self) -> Result<()> {
        match self.process.take() {
            Some(process) => process.stop().await,
            None => Ok(()),
        }
    }
}
