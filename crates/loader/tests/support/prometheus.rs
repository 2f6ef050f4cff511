//! A real Prometheus (2 or 3), or Thanos over replicas of it, serving a TSDB that promtool
//! backfilled with known series.

use super::*;

/// A real Prometheus (or Thanos over replicas of it) serving a TSDB backfilled by promtool from
/// known series.
pub struct BackfilledPrometheus {
    pub url: String,
    pub engine: Engine,
    process: Option<ServerProcess>,
    thanos: Option<ThanosQuery>,
    dir: tempfile::TempDir,
}

impl BackfilledPrometheus {
    /// Prometheus 2.42 over `series`.
    pub async fn start(series: &[SeriesData]) -> BackfilledPrometheus {
        BackfilledPrometheus::start_on(Engine::Prometheus2, series).await
    }

    /// `engine` over `series`. Each Prometheus also scrapes itself every second with native
    /// histograms enabled, so that live series (and on Prometheus 3 a native histogram) sit
    /// beside the backfilled ones.
    pub async fn start_on(engine: Engine, series: &[SeriesData]) -> BackfilledPrometheus {
        let dir = tempfile::Builder::new()
            .prefix("promlearn-loader-prom-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        let input = dir.path().join("input.om");
        std::fs::write(&input, openmetrics(series)).unwrap();
        let promtool = match engine {
            Engine::Prometheus2 => locate_promtool(),
            _ => promtool_of(engine.release()),
        }
        .expect("promtool");
        let out = Command::new(&promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(&data)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "promtool failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(&input).ok();
        let last = series
            .iter()
            .filter_map(|s| s.samples.last().map(|(t, _)| *t))
            .max()
            .unwrap_or(0);
        let names: Vec<String> = series.iter().map(|s| regex_quote(&s.name)).collect();
        let selector = format!("{{__name__=~\"{}\"}}", names.join("|"));
        let expected = series.len();
        promlearn_loader::install_crypto_provider();
        if engine == Engine::Thanos {
            // Ready once the querier shows every series from every replica.
            let thanos = ThanosQuery::start(ThanosConfig {
                seed_blocks: Some(data),
                prometheus_args: vec!["--enable-feature=native-histograms".into()],
                ready_query: format!("last_over_time({selector}[1d])"),
                ready_time_ms: Some(last),
                ready_min_series: expected,
                ..ThanosConfig::default()
            })
            .await
            .unwrap_or_else(|e| panic!("the Thanos set-up: {e}"));
            return BackfilledPrometheus {
                url: thanos.url(),
                engine,
                process: None,
                thanos: Some(thanos),
                dir,
            };
        }
        let (process, url) = start_prometheus_of(engine.release(), dir.path(), &data, None).await;
        wait_for_series(
            "the backfilled Prometheus",
            &url,
            &selector,
            last,
            expected,
            None,
        )
        .await;
        BackfilledPrometheus {
            url,
            engine,
            process: Some(process),
            thanos: None,
            dir,
        }
    }

    /// The Thanos set-up, on [`Engine::Thanos`].
    pub fn thanos(&mut self) -> Option<&mut ThanosQuery> {
        self.thanos.as_mut()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServerProcess::pid)
    }

    /// Kills the server (SIGKILL) and waits until it is gone.
    pub async fn kill(&mut self) {
        if let Some(p) = self.process.take() {
            p.stop().await.unwrap();
        }
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }
}

/// `name` as a literal in a PromQL regular expression.
fn regex_quote(name: &str) -> String {
    name.replace('.', "\\\\.")
}

/// Starts Prometheus 2.42 on `data` with an optional web config file; returns it and its URL.
pub async fn start_prometheus(
    dir: &Path,
    data: &Path,
    web_config: Option<&Path>,
) -> (ServerProcess, String) {
    start_prometheus_of(PrometheusRelease::V2, dir, data, web_config).await
}

/// Starts Prometheus of `release` on `data`, scraping itself every second (native histograms
/// enabled), with an optional web config file; returns it and its URL.
pub async fn start_prometheus_of(
    release: PrometheusRelease,
    dir: &Path,
    data: &Path,
    web_config: Option<&Path>,
) -> (ServerProcess, String) {
    let port = Ports::ephemeral().unwrap().prometheus;
    let config = dir.join("prometheus.yml");
    let self_scrape = if web_config.is_some() {
        String::new()
    } else {
        format!(
            "scrape_configs:\n- job_name: prometheus\n  scrape_interval: 1s\n  static_configs:\n  \
             - targets: [\"127.0.0.1:{port}\"]\n"
        )
    };
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1m\n{self_scrape}"),
    )
    .unwrap();
    let mut command = Command::new(prometheus_of(release).expect("prometheus"));
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=10y")
        .arg("--enable-feature=native-histograms");
    if let Some(web) = web_config {
        command.arg(format!("--web.config.file={}", web.display()));
    }
    let process = ServerProcess::spawn("prometheus", command).unwrap();
    let scheme = if web_config.is_some() {
        "https"
    } else {
        "http"
    };
    (process, format!("{scheme}://127.0.0.1:{port}"))
}
