//! Test and benchmark support: real Prometheus and VictoriaMetrics filled with known data, and a
//! tiny scripted HTTP server for fault cases.
#![allow(dead_code)]

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
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    process::Command,
};

/// One series of known samples: `(timestamp ms, value)`, ascending.
#[derive(Debug, Clone)]
pub struct SeriesData {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
}

impl SeriesData {
    pub fn new(name: &str, labels: &[(&str, &str)], samples: Vec<(i64, f64)>) -> SeriesData {
        SeriesData {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            samples,
        }
    }

    /// The loader's label set for this series.
    pub fn label_set(&self) -> promlearn_loader::Labels {
        let mut pairs = self.labels.clone();
        pairs.push(("__name__".into(), self.name.clone()));
        promlearn_loader::Labels::from_pairs(pairs)
    }

    /// `name{a="1"}`, or `{"a.b","x.y"="1"}` where a name is not a legacy one.
    pub fn selector(&self) -> String {
        let legacy = |n: &str, colon: bool| {
            n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic()
                    || c == '_'
                    || (colon && c == ':')
                    || (i > 0 && c.is_ascii_digit())
            }) && !n.is_empty()
        };
        let quoted =
            !legacy(&self.name, true) || self.labels.iter().any(|(n, _)| !legacy(n, false));
        let mut out = if quoted {
            format!("{{{:?}", self.name)
        } else {
            format!("{}{{", self.name)
        };
        for (i, (n, v)) in self.labels.iter().enumerate() {
            if i > 0 || quoted {
                out.push(',');
            }
            let n = if quoted { format!("{n:?}") } else { n.clone() };
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            write!(out, "{n}=\"{v}\"").unwrap();
        }
        out.push('}');
        out
    }
}

/// A value as Go's ParseFloat reads it back exactly.
pub fn float_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:?}")
    }
}

fn seconds_text(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:03}",
        ms.unsigned_abs() / 1000,
        ms.unsigned_abs() % 1000
    )
}

/// OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.
pub fn openmetrics(series: &[SeriesData]) -> String {
    let mut names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    names.dedup();
    let mut out = String::new();
    let mut done = Vec::new();
    for s in series {
        if done.contains(&s.name) {
            continue;
        }
        done.push(s.name.clone());
        if s.selector().starts_with('{') {
            writeln!(out, "# TYPE {:?} gauge", s.name).unwrap();
        } else {
            writeln!(out, "# TYPE {} gauge", s.name).unwrap();
        }
        for member in series.iter().filter(|m| m.name == s.name) {
            let selector = member.selector();
            for (t, v) in &member.samples {
                writeln!(out, "{selector} {} {}", float_text(*v), seconds_text(*t)).unwrap();
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// Prometheus's text exposition with millisecond timestamps, for VictoriaMetrics' import.
pub fn prometheus_text(series: &[SeriesData]) -> String {
    let mut out = String::new();
    for s in series {
        let selector = s.selector();
        for (t, v) in &s.samples {
            writeln!(out, "{selector} {} {t}", float_text(*v)).unwrap();
        }
    }
    out
}

/// A start time ten hours ago on a whole hour, so that backfilled blocks are recent.
pub fn recent_base_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now / 3600 - 10) * 3600 * 1000
}

/// The known data set of the end-to-end tests.
pub struct Known {
    pub base: i64,
    /// `known_gauge{series="a"}`: 25,000 samples at 1 s, on the second; special values at 100..=107.
    pub a: SeriesData,
    /// `known_gauge{extra="x\"y", series="b"}`: 25,000 samples at 1 s, each 250 ms after the second.
    pub b: SeriesData,
    /// `known_gap{series="g"}`: samples at seconds 0..100 and 1300..1400 only.
    pub gap: SeriesData,
    /// `{"known.utf8", "ünit.x"="a.b"}`: 100 samples at 1 s, value = second; on engines with
    /// UTF-8 names only.
    pub utf8: SeriesData,
}

pub const KNOWN_POINTS: i64 = 25_000;

pub fn value_a(i: i64) -> f64 {
    match i {
        100 => f64::NAN,
        101 => f64::INFINITY,
        102 => f64::NEG_INFINITY,
        103 => 1e-7,
        104 => f64::MAX,
        105 => 5e-324,
        106 => -0.0,
        107 => 123_456_789_012_345_680.0,
        _ => i as f64 * 0.5 - 3000.0,
    }
}

pub fn value_b(i: i64) -> f64 {
    (i as f64) * 0.25 + 0.125
}

impl Known {
    pub fn new() -> Known {
        let base = recent_base_ms();
        Known {
            base,
            a: SeriesData::new(
                "known_gauge",
                &[("series", "a")],
                (0..KNOWN_POINTS)
                    .map(|i| (base + i * 1000, value_a(i)))
                    .collect(),
            ),
            b: SeriesData::new(
                "known_gauge",
                &[("extra", "x\"y"), ("series", "b")],
                (0..KNOWN_POINTS)
                    .map(|i| (base + i * 1000 + 250, value_b(i)))
                    .collect(),
            ),
            gap: SeriesData::new(
                "known_gap",
                &[("series", "g")],
                (0..100)
                    .chain(1300..1400)
                    .map(|i| (base + i * 1000, i as f64))
                    .collect(),
            ),
            utf8: SeriesData::new(
                "known.utf8",
                &[("ünit.x", "a.b")],
                (0..100).map(|i| (base + i * 1000, i as f64)).collect(),
            ),
        }
    }

    pub fn all(&self) -> Vec<SeriesData> {
        vec![self.a.clone(), self.b.clone(), self.gap.clone()]
    }

    /// [`Known::all`], plus the UTF-8-named series where the engine has UTF-8 names.
    pub fn for_engine(&self, engine: Engine) -> Vec<SeriesData> {
        let mut all = self.all();
        if engine.utf8_names() {
            all.push(self.utf8.clone());
        }
        all
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
        let http = reqwest::Client::new();
        poll(
            "the backfilled Prometheus",
            Duration::from_secs(60),
            async || {
                // Every series answers at some time in the last 5 minutes of the data.
                let n = count_series(
                    &http,
                    &url,
                    &format!("last_over_time({selector}[1d])"),
                    last,
                )
                .await?;
                if n >= expected {
                    Ok(())
                } else {
                    Err(format!("{n} of {expected} series"))
                }
            },
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

/// A real VictoriaMetrics (started by the testbed) holding known series, imported as Prometheus
/// text.
pub struct Victoria {
    pub url: String,
    server: VictoriaMetrics,
}

impl Victoria {
    pub async fn start(series: &[SeriesData]) -> Victoria {
        let server = VictoriaMetrics::start(VictoriaConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let url = server.url();
        promlearn_loader::install_crypto_provider();
        let http = reqwest::Client::new();
        let text = prometheus_text(series);
        let r = http
            .post(format!("{url}/api/v1/import/prometheus"))
            .body(text)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "import: {}", r.status());
        let last = series
            .iter()
            .filter_map(|s| s.samples.last().map(|(t, _)| *t))
            .max()
            .unwrap_or(0);
        let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
        let selector = format!("{{__name__=~\"{}\"}}", names.join("|"));
        let expected = series.len();
        poll(
            "VictoriaMetrics' import",
            Duration::from_secs(60),
            async || {
                http.get(format!("{url}/internal/force_flush"))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let n = count_series(
                    &http,
                    &url,
                    &format!("last_over_time({selector}[1d])"),
                    last,
                )
                .await?;
                if n >= expected {
                    Ok(())
                } else {
                    Err(format!("{n} of {expected} series"))
                }
            },
        )
        .await;
        Victoria { url, server }
    }

    pub fn log(&self) -> String {
        self.server.logs(20)
    }
}

/// What the scripted server does with one request.
pub enum Reply {
    /// Write these bytes (a whole HTTP response), then close.
    Send(Vec<u8>),
    /// Never answer.
    Hang,
}

/// A whole HTTP/1.1 response.
pub fn http_response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A scripted HTTP server on loopback: `reply(n, request_head)` decides the n-th answer.
pub struct FakeServer {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
    pub heads: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    pub async fn start(reply: impl Fn(usize, &str) -> Reply + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let reply = Arc::new(reply);
        let (count, seen) = (requests.clone(), heads.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (reply, count, seen) = (reply.clone(), count.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    seen.lock().unwrap().push(head.clone());
                    match reply(n, &head) {
                        Reply::Send(bytes) => {
                            let _ = socket.write_all(&bytes).await;
                            let _ = socket.shutdown().await;
                        }
                        Reply::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
                    }
                });
            }
        });
        FakeServer {
            url,
            requests,
            heads,
            task,
        }
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A recorded fixture.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/loader")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
