//! `promlearn watch --preset node`: the preset printed as a file that checks, its alert rules
//! checked by promtool, and the preset watching a real node_exporter that the testbed's
//! Prometheus scrapes.
//!
//! `cargo xtask e2e -- node_preset` runs them (the last two need promtool, node_exporter and
//! Prometheus: missing ones fail them, never skip them); alone:
//! `cargo test -p promlearn --test watch_preset -- --include-ignored node_preset`.

#![allow(
    clippy::print_stderr,
    reason = "tests show what they measure; cargo prints it when one fails"
)]

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use promlearn_testbed::{Testbed, TestbedConfig, node_exporter::NodeExporter};
use tokio::io::{AsyncBufReadExt, BufReader};

mod common;

use common::{path_str, promlearn};

/// The queries of the node preset, by name, as `--print-config` writes them.
fn preset_queries(config: &str) -> Vec<String> {
    config
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .map(|rest| rest.trim_end_matches('"').to_owned())
        .collect()
}

#[tokio::test]
async fn the_node_preset_prints_a_file_that_checks() {
    let printed = promlearn([
        "watch",
        "--preset",
        "node",
        "--endpoint",
        "http://prometheus.example:9090",
        "--print-config",
    ])
    .await
    .ok()
    .stdout;
    assert!(
        printed.contains("endpoint = \"http://prometheus.example:9090\""),
        "{printed}"
    );
    let queries = preset_queries(&printed);
    assert!(queries.len() >= 8, "{queries:?}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, &printed).unwrap();
    let checked = promlearn(["watch", "--config", path_str(&path), "--check"])
        .await
        .ok()
        .stdout;
    for q in &queries {
        assert!(checked.contains(&format!("\n  {q} (knn)")), "{checked}");
    }
    // The preset runs as it is, too; an unknown one says which there are.
    let checked = promlearn(["watch", "--preset", "node", "--check"])
        .await
        .ok();
    assert!(
        checked.stdout.contains("preset node: OK"),
        "{}",
        checked.stdout
    );
    let wrong = promlearn(["watch", "--preset", "nodes", "--check"]).await;
    let line = wrong.one_line_error();
    assert!(line.contains("nodes") && line.contains("node"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs promtool: run cargo xtask e2e"]
async fn the_node_preset_rules_pass_promtool_check_rules() {
    let rules = promlearn(["watch", "--preset", "node", "--print-rules"])
        .await
        .ok()
        .stdout;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node-rules.yml");
    std::fs::write(&path, &rules).unwrap();
    let promtool = promlearn_testbed::locate::promtool().expect("promtool (cargo xtask setup)");
    let out = std::process::Command::new(&promtool)
        .args(["check", "rules", path_str(&path)])
        .output()
        .expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check rules: {said}\n{rules}"
    );
    let queries = preset_queries(&promlearn_preset_config().await);
    // One rule per query and the watch's own health rule.
    assert!(
        said.contains(&format!("SUCCESS: {} rules found", queries.len() + 1)),
        "{said}"
    );
}

async fn promlearn_preset_config() -> String {
    promlearn(["watch", "--preset", "node", "--print-config"])
        .await
        .ok()
        .stdout
}

/// A running `promlearn watch`, its address read from its `serving` line.
struct Watch {
    _child: tokio::process::Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    async fn start(args: &[&str]) -> Watch {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_promlearn"))
            .args(args)
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
        Watch {
            _child: child,
            addr,
            log,
        }
    }

    /// Polls /metrics (every 250 ms) until `accept` holds for the page; returns it.
    async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        accept: impl Fn(&str) -> bool,
    ) -> String {
        promlearn_loader::install_crypto_provider();
        let client = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        loop {
            let page = match client
                .get(format!("http://{}/metrics", self.addr))
                .send()
                .await
            {
                Ok(answer) => answer.text().await.unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            if accept(&page) {
                return page;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log: {:?}\n/metrics:\n{page}",
                self.log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The value of the sample line `name{labels} value` of `page`.
fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn the_node_preset_scores_a_real_node_exporter() {
    let node = NodeExporter::start(None, Duration::from_secs(30))
        .await
        .expect("node_exporter starts (cargo xtask setup installs it)");
    let mut config = TestbedConfig::for_tests().expect("free ports");
    config.extra_scrape_targets.push(node.target());
    let testbed = Testbed::start(config).await.expect("the testbed starts");
    testbed
        .wait_for_query("up{job=\"node\"}", Duration::from_secs(60), |s| {
            s.first().is_some_and(|x| x.value == 1.0)
        })
        .await
        .expect("Prometheus scrapes node_exporter");
    let endpoint = testbed.prometheus_url();
    let instance = format!("instance=\"{}\"", node.address());
    let config = promlearn([
        "watch",
        "--preset",
        "node",
        "--endpoint",
        &endpoint,
        "--print-config",
    ])
    .await
    .ok()
    .stdout;
    let queries = preset_queries(&config);

    // The preset as it ships (1m steps): every query answers, with series of this node.
    let shipped = Watch::start(&[
        "watch",
        "--preset",
        "node",
        "--endpoint",
        &endpoint,
        "--listen",
        "127.0.0.1:0",
    ])
    .await;
    shipped
        .wait_for(
            "every preset query to answer with series",
            Duration::from_secs(60),
            |page| {
                queries.iter().all(|q| {
                    value(page, &format!("promlearn_watch_up{{query=\"{q}\"}}")) == Some(1.0)
                        && value(page, &format!("promlearn_watch_series{{query=\"{q}\"}}"))
                            .is_some_and(|n| n >= 1.0)
                })
            },
        )
        .await;
    drop(shipped);

    // Its queries, detectors and knowledge unchanged, on a clock 60 times faster (1s steps, a
    // fit every 10s on 10m), so that every query's knn has its history within a minute: each
    // scores the real node_exporter's series on /metrics.
    let fast = config
        .replace("step = \"1m\"", "step = \"1s\"")
        .replace("fit_every = \"1h\"", "fit_every = \"10s\"")
        .replace("fit_window = \"7d\"", "fit_window = \"10m\"");
    assert_eq!(
        fast.matches("step = \"1s\"").count(),
        queries.len(),
        "{fast}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node-fast.toml");
    std::fs::write(&path, format!("listen = \"127.0.0.1:0\"\n{fast}")).unwrap();
    let watch = Watch::start(&["watch", "--config", path_str(&path)]).await;
    let page = watch
        .wait_for(
            "a score for every preset query",
            Duration::from_secs(180),
            |page| {
                queries.iter().all(|q| {
                    page.lines().any(|l| {
                        l.starts_with(&format!("promlearn_anomaly_score{{query=\"{q}\""))
                            && l.contains(&instance)
                    })
                })
            },
        )
        .await;
    for q in &queries {
        let scores: Vec<f64> = page
            .lines()
            .filter(|l| l.starts_with(&format!("promlearn_anomaly_score{{query=\"{q}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        assert!(
            scores.iter().all(|s: &f64| s.is_finite() && *s >= 0.0),
            "{q}: {scores:?}"
        );
        eprintln!("{q}: {} series scored", scores.len());
    }
    drop(watch);
    testbed.stop().await.unwrap();
    node.stop().await.unwrap();
}
