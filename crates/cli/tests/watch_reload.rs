//! `promlearn watch` as a process against the testbed's real Prometheus: the configuration
//! reloaded on SIGHUP and on `POST /-/reload` (an unchanged query keeps its model and its
//! scores, a bad file is refused while scoring goes on), and a watch with `state_dir` killed
//! with SIGKILL and started again, scoring from its saved models before any fit.
//!
//! `cargo xtask e2e` runs them; alone:
//! `cargo test -p promlearn --test watch_reload -- --include-ignored NAME`.

#![allow(
    clippy::print_stderr,
    reason = "tests show what they measure; cargo prints it when one fails"
)]

use std::{
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::io::{AsyncBufReadExt, BufReader};

mod common;

use common::testbed;

/// The tests of this file run one at a time: each starts its own Prometheus and watch.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A query on what the testbed's Prometheus scrapes of itself and CoreDNS every second.
fn query(name: &str, window: usize, infer_every: &str) -> String {
    format!(
        r#"
[[query]]
name = "{name}"
expr = "scrape_duration_seconds"
step = "1s"
detector = {{ kind = "zscore", window = {window} }}
infer_every = "{infer_every}"
fit_every = "1h"
fit_window = "1m"
"#
    )
}

fn config(endpoint: &str, queries: &str, state_dir: Option<&str>) -> String {
    let state = state_dir.map_or(String::new(), |d| format!("state_dir = \"{d}\"\n"));
    format!("endpoint = \"{endpoint}\"\nlisten = \"127.0.0.1:0\"\n{state}{queries}")
}

/// A running `promlearn watch`: where it serves, and everything it has logged so far.
struct Process {
    child: tokio::process::Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
    started: Instant,
}

impl Process {
    /// Starts `promlearn watch --config PATH` and waits for its `serving` line.
    async fn start(path: &Path) -> Process {
        let started = Instant::now();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_promlearn"))
            .args(["watch", "--config", path.to_str().unwrap()])
            .env(
                "RUST_LOG",
                "warn,promlearn_watch=info,promlearn_loader=error",
            )
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                log.lock().unwrap().push(line.clone());
                if let Some(rest) = line.split("serving http://").nth(1) {
                    return rest.trim_end_matches("/metrics").to_owned();
                }
            }
            panic!("no `serving` line: {:?}", log.lock().unwrap());
        })
        .await
        .expect("the watch starts");
        let keep = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep.lock().unwrap().push(line);
            }
        });
        Process {
            child,
            addr,
            log,
            started,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn metrics(&self) -> String {
        client()
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("/metrics answers")
            .text()
            .await
            .unwrap()
    }

    /// Polls /metrics (every 100 ms) until `accept` holds; returns that page.
    async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        accept: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let page = self.metrics().await;
            if accept(&page) {
                return page;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log: {:?}\n/metrics:\n{page}",
                self.log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {pid}");
    }

    fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Waits (10 s at most) until a line containing `needle` has been read from the process's
    /// stderr: a task reads it, so a line written before an HTTP answer may arrive after it.
    async fn wait_logged(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.logged(needle) {
            assert!(
                Instant::now() < deadline,
                "never logged {needle:?}: {:?}",
                self.log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn client() -> reqwest::Client {
    promlearn_loader::install_crypto_provider();
    reqwest::Client::new()
}

/// The value of the first sample line of `page` that starts with `prefix`.
fn value(page: &str, prefix: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn scored(page: &str, query: &str) -> bool {
    page.contains(&format!("\npromlearn_anomaly_score{{query=\"{query}\""))
}

/// Every series of `query` has its model (and the testbed's two scrape targets, Prometheus
/// and CoreDNS, are both among them), so no fit is due or in flight until `fit_every` (1 h)
/// has passed: a fit count read now stays as it is unless something refits.
fn every_series_fitted(page: &str, query: &str) -> bool {
    let models = value(
        page,
        &format!("promlearn_watch_models{{query=\"{query}\"}}"),
    );
    scored(page, query)
        && models.is_some_and(|m| m >= 2.0)
        && models
            == value(
                page,
                &format!("promlearn_watch_series{{query=\"{query}\"}}"),
            )
}

fn fits(page: &str, query: &str) -> f64 {
    value(
        page,
        &format!("promlearn_watch_fits_total{{query=\"{query}\"}}"),
    )
    .unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn reload_on_sighup_keeps_an_unchanged_querys_model_and_its_scores_without_a_gap() {
    let _serial = SERIAL.lock().await;
    let testbed = testbed().await;
    let endpoint = testbed.prometheus_url();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watch.toml");
    std::fs::write(&path, config(&endpoint, &query("q1", 5, "1s"), None)).unwrap();
    let watch = Process::start(&path).await;
    // A series fitted after the first score would count as a refit below.
    let page = watch
        .wait_for("every q1 series fitted", Duration::from_secs(60), |p| {
            every_series_fitted(p, "q1")
        })
        .await;
    let fitted = fits(&page, "q1");
    assert!(fitted >= 1.0, "{page}");

    // A second query, then SIGHUP; /metrics polled all along: q1's scores never leave the page.
    let queries = query("q1", 5, "1s") + &query("q2", 6, "1s");
    std::fs::write(&path, config(&endpoint, &queries, None)).unwrap();
    let sent = Instant::now();
    watch.signal("HUP");
    let mut pages = 0;
    let page = loop {
        let page = watch.metrics().await;
        pages += 1;
        assert!(
            scored(&page, "q1"),
            "q1's score left the page during the reload:\n{page}"
        );
        if scored(&page, "q2") {
            break page;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "q2 never scored:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "q2 scored {:.1} s after SIGHUP; q1 on each of {pages} pages in between",
        sent.elapsed().as_secs_f64()
    );
    assert_eq!(fits(&page, "q1"), fitted, "q1 was not refitted:\n{page}");
    assert_eq!(
        value(&page, "promlearn_watch_models{query=\"q1\"}"),
        value(&page, "promlearn_watch_series{query=\"q1\"}"),
        "every q1 series kept its model"
    );
    assert_eq!(
        value(&page, "promlearn_watch_config_last_reload_successful"),
        Some(1.0)
    );
    watch.wait_logged("configuration reloaded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn reload_over_post_refuses_a_bad_config_the_gauge_says_0_and_scoring_goes_on() {
    let _serial = SERIAL.lock().await;
    let testbed = testbed().await;
    let endpoint = testbed.prometheus_url();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watch.toml");
    let good = config(&endpoint, &query("q1", 5, "1s"), None);
    std::fs::write(&path, &good).unwrap();
    let watch = Process::start(&path).await;
    // Not the first score: a series still being fitted then is fitted again after the good
    // reload at the end (a fit in flight at a reload is refitted by design), and one fitted
    // after it counts too; with every series fitted, no fit is due for `fit_every` (1 h).
    let page = watch
        .wait_for("every q1 series fitted", Duration::from_secs(60), |p| {
            every_series_fitted(p, "q1")
        })
        .await;
    let fitted = fits(&page, "q1");
    let loaded_at = value(
        &page,
        "promlearn_watch_config_last_reload_success_timestamp_seconds",
    )
    .unwrap();

    // A query without its detector (line 5 of the file): refused with file:line.
    std::fs::write(
        &path,
        good.clone() + "\n[[query]]\nname = \"broken\"\nexpr = \"up\"\n",
    )
    .unwrap();
    let answer = client().post(watch.url("/-/reload")).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 500);
    let body = answer.text().await.unwrap();
    let file_line = format!("{}:", path.display());
    assert!(
        body.starts_with("failed to reload config: ") && body.contains(&file_line),
        "{body}"
    );
    assert!(body.contains("detector"), "{body}");
    // Logged with file:line.
    watch.wait_logged(&file_line).await;
    // The gauge says so (on the page rendered right after), and q1 goes on being scored by the
    // running configuration.
    watch
        .wait_for("the reload gauge at 0", Duration::from_secs(2), |p| {
            value(p, "promlearn_watch_config_last_reload_successful") == Some(0.0)
        })
        .await;
    let newest = |p: &str| value(p, "promlearn_anomaly_score{query=\"q1\"");
    let before = watch.metrics().await;
    let after = watch
        .wait_for("q1 scored anew", Duration::from_secs(10), |p| {
            scored(p, "q1")
                && value(
                    p,
                    "promlearn_watch_infer_duration_seconds_count{query=\"q1\"}",
                ) > value(
                    &before,
                    "promlearn_watch_infer_duration_seconds_count{query=\"q1\"}",
                )
        })
        .await;
    assert!(newest(&after).is_some());
    assert!(!after.contains("query=\"broken\""));

    // The listen address cannot change at run time: refused, saying to restart.
    std::fs::write(&path, good.replace("127.0.0.1:0", "127.0.0.1:1")).unwrap();
    let answer = client().post(watch.url("/-/reload")).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 500);
    let body = answer.text().await.unwrap();
    assert!(
        body.contains("`listen` cannot change") && body.contains("restart"),
        "{body}"
    );

    // Put right: 200, the gauge back to 1 with a newer timestamp, q1 kept without a refit.
    std::fs::write(&path, &good).unwrap();
    let answer = client().post(watch.url("/-/reload")).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let body = answer.text().await.unwrap();
    assert!(body.contains("kept [\"q1\"]"), "{body}");
    let page = watch.metrics().await;
    assert_eq!(
        value(&page, "promlearn_watch_config_last_reload_successful"),
        Some(1.0)
    );
    let reloaded_at = value(
        &page,
        "promlearn_watch_config_last_reload_success_timestamp_seconds",
    )
    .unwrap();
    assert!(reloaded_at > loaded_at, "{reloaded_at} > {loaded_at}");
    assert!(scored(&page, "q1"));
    assert_eq!(fits(&page, "q1"), fitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn restart_after_sigkill_scores_from_the_saved_models_within_one_infer_every_before_any_fit()
{
    let _serial = SERIAL.lock().await;
    let testbed = testbed().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watch.toml");
    // Inference every 3 s: "within one infer_every" is then a window a fit cannot hide in (a
    // series without a model is fitted at its first inference and scored at the next).
    let text = config(
        &testbed.prometheus_url(),
        &query("q", 5, "3s"),
        Some("state"),
    );
    std::fs::write(&path, text).unwrap();

    let first = Process::start(&path).await;
    // Every series it watches has its model (a series whose job was scraped later is fitted
    // later: comparing files with a count read at the first score raced with its fit).
    let page = first
        .wait_for(
            "every series fitted and scored",
            Duration::from_secs(60),
            |p| every_series_fitted(p, "q"),
        )
        .await;
    let series = value(&page, "promlearn_watch_models{query=\"q\"}").unwrap();
    // Mid-run: an inference that began after every fit (the second one counted after this
    // page; the first may have begun before), and its streams file written (before the third
    // is counted: the file is written after each inference, before the next).
    let inferences = |p: &str| {
        value(
            p,
            "promlearn_watch_infer_duration_seconds_count{query=\"q\"}",
        )
    };
    let counted = inferences(&page).unwrap();
    first
        .wait_for("three more inferences", Duration::from_secs(60), |p| {
            inferences(p).is_some_and(|n| n >= counted + 3.0)
        })
        .await;
    let state = dir.path().join("state");
    let (files, streams): (Vec<_>, Vec<_>) = walk(&state)
        .into_iter()
        .partition(|f| f.extension().is_some_and(|x| x == "model"));
    assert_eq!(
        files.len() as f64,
        series,
        "one file per fitted series: {files:?}"
    );
    assert!(
        streams.len() == 1 && streams[0].ends_with("streams"),
        "beside them, one streams file: {streams:?}"
    );
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    eprintln!(
        "{} state files, {} bytes each on average (zscore)",
        files.len(),
        bytes / files.len() as u64
    );
    let mut first = first;
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();

    let second = Process::start(&path).await;
    // Counted in inference rounds, not seconds (a loaded machine delays a round, never adds
    // one): the first round, at the start, judges what came since the kill; when nothing
    // did, the next one, an infer_every later, has new points.
    let page = second
        .wait_for("scores after the restart", Duration::from_secs(30), |p| {
            scored(p, "q")
        })
        .await;
    let waited = second.started.elapsed();
    eprintln!(
        "scores {:.2} s after the restarted process was spawned",
        waited.as_secs_f64()
    );
    let rounds = value(
        &page,
        "promlearn_watch_infer_duration_seconds_count{query=\"q\"}",
    );
    assert!(
        rounds.is_some_and(|n| n <= 2.0),
        "scored within one infer_every (by the second round):\n{page}"
    );
    assert_eq!(fits(&page, "q"), 0.0, "scored before any fit:\n{page}");
    assert_eq!(
        value(&page, "promlearn_watch_models{query=\"q\"}"),
        Some(series),
        "every model read back"
    );
    // The streams file written after the rounds before the kill moved every series' mark past
    // its fit: the points the first process judged are not judged again.
    assert!(
        second.logged("saved state read back") && second.logged(&format!("marks_moved={series}")),
        "{:?}",
        second.log.lock().unwrap()
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
