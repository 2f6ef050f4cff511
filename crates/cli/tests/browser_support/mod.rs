//! What the browser test (`browser.rs`) drives and compares with: chromedriver and a headless
//! Chromium session, `/metrics` read back, the CLI's backtest and its CSV.

#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator};
use promlearn_loader::Labels;
use promlearn_testbed::ServerProcess;
use serde_json::{Value, json};

use crate::common::{path_str, promlearn};

/// `target/browser/`, beside the test binaries' target directory.
pub fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for `condition` to hold, up to `limit`; panics with `what` if it never does.
pub async fn wait_until<T, F, Fut>(what: &str, limit: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The binary named in `env` (as `cargo xtask e2e` gives it), or `name` on PATH: chromedriver
/// wants Chromium's full path.
pub fn binary(env: &str, name: &str) -> String {
    if let Ok(path) = std::env::var(env) {
        return path;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("no {name} on PATH and no {env}: cargo xtask setup installs it"))
        .display()
        .to_string()
}

/// chromedriver and a headless Chromium session, both stopped on drop.
pub struct Browser {
    pub client: Client,
    _driver: ServerProcess,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let chromium = binary("PROMLEARN_CHROMIUM_BIN", "chromium");
        let driver_bin = binary("PROMLEARN_CHROMEDRIVER_BIN", "chromedriver");
        let port = free_port();
        let mut command = tokio::process::Command::new(&driver_bin);
        command.arg(format!("--port={port}"));
        // A server process: chromedriver and the Chromium it starts die with the test.
        let driver = ServerProcess::spawn("chromedriver", command).unwrap_or_else(|e| {
            panic!("{driver_bin} starts (cargo xtask setup installs chromium-driver): {e}")
        });
        let url = format!("http://127.0.0.1:{port}");
        wait_until(
            "chromedriver to answer",
            Duration::from_secs(30),
            || async {
                reqwest::get(format!("{url}/status"))
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
            },
        )
        .await;
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("a Chromium session starts");
        Browser {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Opens `url` and waits until the page has drawn its view (`body[data-ready]`).
    pub async fn open(&self, url: &str, view: &str) {
        self.client.goto(url).await.unwrap();
        self.wait_js(&format!("document.body.dataset.ready === '{view}'"), view)
            .await;
    }

    /// Waits until `expr` is true in the page.
    pub async fn wait_js(&self, expr: &str, what: &str) {
        wait_until(what, Duration::from_secs(60), || async {
            let v = self
                .client
                .execute(&format!("return !!({expr});"), vec![])
                .await
                .ok()?;
            v.as_bool().filter(|ok| *ok)
        })
        .await;
    }

    pub async fn js(&self, expr: &str) -> Value {
        self.client
            .execute(&format!("return {expr};"), vec![])
            .await
            .unwrap()
    }

    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(out_dir().join(name), png).unwrap();
    }

    pub async fn fill(&self, id: &str, text: &str) {
        let field = self.client.find(Locator::Id(id)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The watch's file: the demo's `dns_rate` query (examples/watch/watch.toml) and a second,
/// quick one, so that the overview has queries to list.
pub fn watch_toml(endpoint: &str, listen: &str) -> String {
    format!(
        r#"endpoint = "{endpoint}"
listen = "{listen}"
stale_after = "5m"

[[query]]
name = "dns_rate"
expr = "sum by (type) (rate(coredns_dns_requests_total[5s]))"
step = "1s"
detector = {{ kind = "knn" }}
infer_every = "1s"
fit_every = "75s"
fit_window = "1m"

[[query]]
name = "dns_rate_zscore"
expr = "sum by (type) (rate(coredns_dns_requests_total[5s]))"
step = "1s"
detector = {{ kind = "zscore", window = 8, threshold = 4 }}
infer_every = "1s"
fit_every = "20s"
fit_window = "1m"
direction = "up"
min_deviation = {{ relative = 0.05 }}
data_range = [0, inf]
"#
    )
}

/// `/metrics`'s samples of the query `query`: labels (without query and detector) to
/// family name to value.
pub async fn metrics(base: &str, query: &str) -> BTreeMap<Labels, BTreeMap<String, f64>> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut out: BTreeMap<Labels, BTreeMap<String, f64>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((family, labels)) = series.split_once('{') else {
            continue;
        };
        // The series' families, not the watch's own (`promlearn_watch_…{query}`).
        if family.starts_with("promlearn_watch_") {
            continue;
        }
        let mut pairs = Vec::new();
        let mut in_query = false;
        for pair in labels.trim_end_matches('}').split("\",") {
            let Some((name, value)) = pair.split_once("=\"") else {
                continue;
            };
            let value = value.trim_end_matches('"');
            match name {
                "query" => in_query = value == query,
                "detector" => {}
                _ => pairs.push((name.to_owned(), value.to_owned())),
            }
        }
        if in_query {
            out.entry(Labels::from_pairs(pairs))
                .or_default()
                .insert(family.to_owned(), value.parse().unwrap_or(f64::NAN));
        }
    }
    out
}

/// A CSV row of `--backtest` as numbers: (t, value, yhat, lower, upper, anomalous); the
/// judgement's cells NaN where empty.
pub type Row = (i64, f64, f64, f64, f64, bool);

pub fn csv_rows(csv: &str, query: &str, labels: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for line in csv.lines().skip(1) {
        // Labels are the only quoted field and hold commas.
        let (head, rest) = line.split_once(",\"").map_or((line, ""), |x| x);
        let (labels_field, tail) = if rest.is_empty() {
            let mut parts = head.splitn(4, ',');
            let (t, q, l) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            ((t, q, l.to_owned()), parts.next().unwrap().to_owned())
        } else {
            let mut parts = head.splitn(2, ',');
            let (t, q) = (parts.next().unwrap(), parts.next().unwrap());
            let (l, tail) = rest.split_once("\",").unwrap();
            ((t, q, l.replace("\"\"", "\"")), tail.to_owned())
        };
        let (t, q, l) = labels_field;
        if q != query || l != labels {
            continue;
        }
        let cells: Vec<&str> = tail.split(',').collect();
        let num = |s: &str| {
            if s.is_empty() {
                f64::NAN
            } else {
                s.parse().unwrap()
            }
        };
        rows.push((
            t.parse().unwrap(),
            num(cells[0]),
            num(cells[1]),
            num(cells[2]),
            num(cells[3]),
            cells[5] == "1",
        ));
    }
    rows
}

/// The chart the page drew under `key`, as rows.
pub async fn chart_rows(browser: &Browser, key: &str) -> Vec<Row> {
    // Every number as the page's own shortest round-trip text (`String(v)`), parsed by Rust's
    // exact parser: chromedriver's number encoding keeps 15 significant digits, and
    // serde_json's default float parser may miss by an ulp.
    let text = browser
        .js(&format!(
            "JSON.stringify(window.promlearn.charts[{}], (k, v) => typeof v === 'number' ? String(v) : v)",
            json!(key)
        ))
        .await;
    let chart: Value =
        serde_json::from_str(text.as_str().expect("the chart as JSON text")).unwrap();
    let column = |name: &str| {
        chart[name]
            .as_array()
            .unwrap_or_else(|| panic!("{key}: {name} drawn"))
            .clone()
    };
    let num = |v: &Value| v.as_str().map_or(f64::NAN, |s| s.parse().unwrap());
    let (t, value, yhat, lower, upper, flag) = (
        column("t"),
        column("value"),
        column("yhat"),
        column("lower"),
        column("upper"),
        column("anomalous"),
    );
    (0..t.len())
        .map(|i| {
            (
                t[i].as_str().unwrap().parse().unwrap(),
                num(&value[i]),
                num(&yhat[i]),
                num(&lower[i]),
                num(&upper[i]),
                flag[i].as_bool().unwrap(),
            )
        })
        .collect()
}

pub fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

pub fn same_rows(a: &[Row], b: &[Row]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.0 == y.0
                && same(x.1, y.1)
                && same(x.2, y.2)
                && same(x.3, y.3)
                && same(x.4, y.4)
                && x.5 == y.5
        })
}

/// `promlearn watch --backtest` of `config_text` over `[from_ms, to_ms]`: its summary (stdout)
/// and CSV.
pub async fn cli_backtest(
    dir: &Path,
    name: &str,
    config_text: &str,
    from_ms: i64,
    to_ms: i64,
) -> (String, String) {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, config_text).unwrap();
    let csv = dir.join(format!("{name}.csv"));
    let from = format!("{}", from_ms / 1000);
    let to = format!("{}", to_ms / 1000);
    assert!(
        from_ms % 1000 == 0 && to_ms % 1000 == 0,
        "the page's ranges are whole seconds"
    );
    let run = promlearn([
        "watch",
        "--config",
        path_str(&config),
        "--backtest",
        "--from",
        &from,
        "--to",
        &to,
        "-o",
        path_str(&csv),
    ])
    .await
    .ok();
    (run.stdout, std::fs::read_to_string(&csv).unwrap())
}
