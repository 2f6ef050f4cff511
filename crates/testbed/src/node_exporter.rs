//! A real node_exporter (Debian's `prometheus-node-exporter`) on the process runtime, for the
//! watch's node preset: the host's own CPU, memory, disks and network on `/metrics`, for a
//! testbed's Prometheus to scrape ([`NodeExporter::target`] as one of its extra targets).
//!
//! [`NodeExporter::start`] returns once its `/metrics` answers with node_exporter's metrics;
//! dropping it stops the process. It listens on 127.0.0.1 only, on a free port.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use tokio::process::Command;

use crate::{Ports, Result, ScrapeTarget, ServerProcess, TestbedError, locate, prom};

/// The scrape job a [`NodeExporter::target`] is given: node_exporter's usual one.
pub const NODE_JOB: &str = "node";

/// A running node_exporter. Dropping it stops the process.
#[derive(Debug)]
pub struct NodeExporter {
    process: Option<ServerProcess>,
    port: u16,
}

impl NodeExporter {
    /// Starts node_exporter (`binary`, or [`locate::node_exporter`]) on a free loopback port
    /// and waits, up to `timeout`, until its `/metrics` serves `node_cpu_seconds_total`.
    pub async fn start(binary: Option<PathBuf>, timeout: Duration) -> Result<NodeExporter> {
        let binary = match binary {
            Some(path) => path,
            None => locate::node_exporter()?,
        };
        let port = Ports::ephemeral()?.metrics;
        let mut command = Command::new(binary);
        command.arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let mut process = ServerProcess::spawn("node_exporter", command)?;
        let client = prom::local_client(
            &format!("http://127.0.0.1:{port}"),
            Duration::from_secs(5),
            &[],
        )?;
        let (started, deadline) = (Instant::now(), Instant::now() + timeout);
        loop {
            if let Some(status) = process.exit_status() {
                return Err(TestbedError::ServerExited {
                    server: process.name(),
                    status,
                    log: process.last_log_lines(20),
                });
            }
            let detail = match client.scrape("/metrics").await {
                Ok(page)
                    if page
                        .samples
                        .iter()
                        .any(|s| s.name == "node_cpu_seconds_total") =>
                {
                    break;
                }
                Ok(_) => "its /metrics has no node_cpu_seconds_total".to_owned(),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(TestbedError::NotReady {
                    what: "node_exporter's /metrics to answer".into(),
                    timeout: started.elapsed(),
                    detail,
                    server: process.name(),
                    log: process.last_log_lines(20),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(NodeExporter {
            process: Some(process),
            port,
        })
    }

    /// `127.0.0.1:PORT`, where `/metrics` is served.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The scrape job for a testbed's Prometheus: job `node`, every second.
    pub fn target(&self) -> ScrapeTarget {
        ScrapeTarget::new(NODE_JOB, self.address())
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

    /// Stops the process and waits until it is gone.
    pub async fn stop(mut self) -> Result<()> {
        match self.process.take() {
            Some(process) => process.stop().await,
            None => Ok(()),
        }
    }
}
