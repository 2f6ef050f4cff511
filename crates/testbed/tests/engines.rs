//! The engines beside Prometheus 2.42: the tutorial testbed on Prometheus 3, and the Thanos set-up
//! (two Prometheus 3 replicas, a sidecar on each, `thanos query` deduplicating in front).
//!
//! `cargo xtask e2e` provisions them (`PROMETHEUS3_BIN`, `THANOS_BIN`) and runs these with
//! `--include-ignored`.

use std::time::Duration;

use promlearn_loader::{Client, decode::Answer};
use promlearn_testbed::{
    PrometheusRelease, RuntimeChoice, Testbed, TestbedConfig,
    thanos::{REPLICA_LABEL, ThanosConfig, ThanosQuery},
};

fn is_gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(") Z "))
        .unwrap_or(true)
}

async fn assert_all_gone(pids: &[u32]) {
    for _ in 0..100 {
        if pids.iter().all(|p| is_gone(*p)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "still running after teardown: {:?}",
        pids.iter().filter(|p| !is_gone(**p)).collect::<Vec<_>>()
    );
}

/// The runtimes under test, as `cargo xtask e2e` names them (default: processes).
fn runtimes() -> Vec<RuntimeChoice> {
    std::env::var("PROMLEARN_E2E_RUNTIMES")
        .unwrap_or_else(|_| "processes".into())
        .split(',')
        .map(|name| name.parse().expect("processes and/or containers"))
        .collect()
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn the_tutorial_testbed_runs_on_prometheus_3() {
    for runtime in runtimes() {
        let config = TestbedConfig::for_tests()
            .unwrap()
            .with_runtime(runtime)
            .with_prometheus_release(PrometheusRelease::V3);
        let testbed = Testbed::start(config).await.unwrap();
        let build = testbed
            .wait_for_query("prometheus_build_info", Duration::from_secs(30), |s| {
                !s.is_empty()
            })
            .await
            .unwrap();
        let version = &build[0].labels["version"];
        assert!(
            version.starts_with("3."),
            "{runtime:?}: Prometheus {version} runs"
        );
        testbed.stop().await.unwrap();
    }
}

/// An instant query to the querier, through the loader's client (with or without `dedup`).
async fn api(url: &str, promql: &str, dedup: bool) -> Answer {
    promlearn_loader::install_crypto_provider();
    Client::builder(url)
        .no_proxy()
        .query_param("dedup", dedup.to_string())
        .build()
        .unwrap()
        .query(promql, None)
        .await
        .unwrap()
}

fn replicas_of(answer: &Answer) -> Vec<Option<String>> {
    let mut replicas: Vec<Option<String>> = answer
        .series
        .iter()
        .map(|s| s.labels.get(REPLICA_LABEL).map(str::to_owned))
        .collect();
    replicas.sort();
    replicas
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn thanos_query_deduplicates_two_replicas_and_reports_a_lost_one() {
    let mut thanos = ThanosQuery::start(ThanosConfig::default()).await.unwrap();
    assert_eq!(thanos.replicas(), 2);
    let url = thanos.url();
    let selector = "up{job=\"prometheus\"}";

    // Both replicas scrape both Prometheus. Without deduplication each replica's two series
    // show, with its external label; with it, two series without the replica label.
    let r = |name: &str| Some(name.to_owned());
    let raw = api(&url, selector, false).await;
    assert_eq!(
        replicas_of(&raw),
        [r("r0"), r("r0"), r("r1"), r("r1")],
        "{raw:?}"
    );
    let deduplicated = api(&url, selector, true).await;
    assert_eq!(replicas_of(&deduplicated), [None, None], "{deduplicated:?}");
    assert!(deduplicated.warnings.is_empty(), "{deduplicated:?}");

    // One sidecar gone: the querier still answers from the other replica, and says that the
    // answer is partial.
    thanos.stop_sidecar(1).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let partial = loop {
        let answer = api(&url, selector, true).await;
        if !answer.warnings.is_empty() || std::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(replicas_of(&partial), [None, None], "{partial:?}");
    assert!(
        partial.warnings.iter().any(|w| w.contains("127.0.0.1")),
        "{partial:?}\n{}",
        thanos.logs(5)
    );

    let pids = thanos.pids();
    assert_eq!(pids.len(), 4, "query, two Prometheus, one sidecar left");
    drop(thanos);
    assert_all_gone(&pids).await;
}
