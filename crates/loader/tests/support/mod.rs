//! Test and benchmark support, one concern per file: the engines under test and where they differ
//! (here), known data and its text formats (`data.rs`), a real Prometheus or Thanos backfilled
//! with it (`prometheus.rs`), a real VictoriaMetrics holding it (`victoria.rs`), and a scripted
//! HTTP server for fault cases (`fake.rs`).
#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a part of it"
)]

mod data;
mod fake;
mod prometheus;
mod victoria;

pub use data::*;
pub use fake::*;
pub use prometheus::*;
pub use victoria::*;

use std::{
    fmt::Write as _,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use promlearn_testbed::{
    Ports, PrometheusRelease, ServerProcess,
    locate::{prometheus_of, promtool as locate_promtool, promtool_of},
    thanos::{ThanosConfig, ThanosQuery},
    victoria::{VictoriaConfig, VictoriaMetrics},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    process::Command,
};

/// The query engines the end-to-end suite runs against, and where they differ for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Debian bookworm's Prometheus 2.42.
    Prometheus2,
    /// Debian sid's Prometheus 3 (`PROMETHEUS3_BIN`).
    Prometheus3,
    /// `thanos query` over two Prometheus 3 replicas with sidecars (`THANOS_BIN`).
    Thanos,
}

impl Engine {
    /// The Prometheus release that stores the data.
    pub fn release(self) -> PrometheusRelease {
        match self {
            Engine::Prometheus2 => PrometheusRelease::V2,
            Engine::Prometheus3 | Engine::Thanos => PrometheusRelease::V3,
        }
    }

    /// Whether a sample exactly as old as the 5-minute look-back window still fills a step.
    /// Prometheus 2 closes the window on the left (`[t-5m, t]`); Prometheus 3 opens it
    /// (`(t-5m, t]`). Thanos's querier runs PromQL with the Prometheus 3.5 engine it is built
    /// with (github.com/prometheus/prometheus v0.305 in xtask/tools/thanos/go.mod), whatever
    /// the replicas run.
    pub fn lookback_includes_its_start(self) -> bool {
        match self {
            Engine::Prometheus2 => true,
            Engine::Prometheus3 | Engine::Thanos => false,
        }
    }

    /// Whether metric and label names may be any UTF-8 (`{"a.b"}`); Prometheus 2.42 knows
    /// only `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    pub fn utf8_names(self) -> bool {
        self != Engine::Prometheus2
    }

    /// Whether its own `/metrics` exposes a native histogram (Prometheus 3's
    /// `prometheus_http_request_duration_seconds`), stored as one with
    /// `--enable-feature=native-histograms`. 2.42's own metrics are classic histograms only.
    pub fn native_histograms(self) -> bool {
        self != Engine::Prometheus2
    }
}

async fn poll<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => {
                panic!("{what}: not ready after {timeout:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until every one of `expected` series of `selector` answers at some time in the day
/// before `last` (ms), asking `flush` (a path) first on each try where the server buffers.
pub async fn wait_for_series(
    what: &str,
    url: &str,
    selector: &str,
    last: i64,
    expected: usize,
    flush: Option<&str>,
) {
    let http = reqwest::Client::new();
    poll(what, Duration::from_secs(60), async || {
        if let Some(path) = flush {
            http.get(format!("{url}/{path}"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
        }
        let n = count_series(&http, url, &format!("last_over_time({selector}[1d])"), last).await?;
        if n >= expected {
            Ok(())
        } else {
            Err(format!("{n} of {expected} series"))
        }
    })
    .await;
}

async fn count_series(
    http: &reqwest::Client,
    url: &str,
    selector: &str,
    at_ms: i64,
) -> Result<usize, String> {
    let body = http
        .get(format!("{url}/api/v1/query"))
        .query(&[
            ("query", format!("count({selector})")),
            ("time", seconds_text(at_ms)),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    let answer = promlearn_loader::decode::decode(body.as_bytes()).map_err(|e| e.to_string())?;
    Ok(answer
        .series
        .first()
        .and_then(|s| s.values.first())
        .map_or(0, |v| *v as usize))
}

/// A recorded fixture.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/loader")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
