//! `promlearn watch` against a real Prometheus and CoreDNS from promlearn-testbed: scoring the
//! request rate, an empty answer, Prometheus killed and restarted, and the alerting round trip
//! (Prometheus scrapes the watch, evaluates examples/watch/alerts.yml, and the alert fires for an
//! injected spike but not on a calm run with a busy core).
//!
//! `cargo xtask e2e` runs them; alone: `cargo test -p promlearn-watch --test e2e -- --include-ignored NAME`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests show what they compare; cargo prints it when one fails"
)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use promlearn_testbed::{ScrapeTarget, Testbed, TestbedConfig, repository_root};
use promlearn_watch::{Config, Watch};

mod common;

use common::{Running, dns_load, start, testbed, value, wait_for};

/// The example's `dns_rate` query (the first `[[query]]` of examples/watch/watch.toml) against
/// `endpoint`, served on an ephemeral port, with `replace` applied to the text.
fn example_config(endpoint: &str, replace: &[(&str, &str)]) -> Config {
    let path = repository_root().join("examples/watch/watch.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // Everything up to the second `[[query]]` table: the settings and the first query.
    let second = text.match_indices("\n[[query]]\n").nth(1).unwrap().0;
    let mut text = text[..second + 1]
        .replace(
            "endpoint = \"http://localhost:9090\"",
            &format!("endpoint = \"{endpoint}\""),
        )
        .replace("listen = \"127.0.0.1:9464\"", "listen = \"127.0.0.1:0\"");
    for (from, to) in replace {
        assert!(text.contains(from), "{from} is not in the example");
        text = text.replace(from, to);
    }
    Config::from_toml(&text, &path.display().to_string()).unwrap()
}

/// A small, quick detector for tests that do not care which one scores.
fn quick_config(endpoint: &str, expr: &str) -> Config {
    common::config(
        endpoint,
        &format!(
            r#"
[[query]]
name = "dns_rate"
expr = "{expr}"
step = "1s"
detector = {{ kind = "zscore", window = 8, threshold = 4 }}
infer_every = "1s"
fit_every = "20s"
fit_window = "2m"
"#
        ),
        "quick.toml",
    )
}

/// The tests of this file run one at a time: each starts its own servers, and the alerting ones
/// measure what a calm, 2-core machine does.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn scores_coredns_request_rate() {
    let _serial = SERIAL.lock().await;
    let testbed = testbed().await;
    let load = dns_load(&testbed, "constant:50", Duration::from_secs(40));
    let watch = Watch::new(quick_config(
        &testbed.prometheus_url(),
        "sum by (type) (rate(coredns_dns_requests_total[5s]))",
    ))
    .unwrap();
    let running = start(watch);
    let started = Instant::now();
    let text = wait_for(
        &running.handle,
        "a score for type A",
        Duration::from_secs(40),
        |t| {
            t.contains("promlearn_anomaly_score{query=\"dns_rate\",detector=\"zscore\",type=\"A\"}")
        },
    )
    .await;
    eprintln!("first score after {:.1} s", started.elapsed().as_secs_f64());
    let rate = value(
        &text,
        "promlearn_value{query=\"dns_rate\",detector=\"zscore\",type=\"A\"}",
    )
    .unwrap();
    assert!((25.0..=75.0).contains(&rate), "rate {rate}\n{text}");
    let yhat = value(
        &text,
        "promlearn_yhat{query=\"dns_rate\",detector=\"zscore\",type=\"A\"}",
    )
    .unwrap();
    let lower = value(
        &text,
        "promlearn_yhat_lower{query=\"dns_rate\",detector=\"zscore\",type=\"A\"}",
    )
    .unwrap();
    let upper = value(
        &text,
        "promlearn_yhat_upper{query=\"dns_rate\",detector=\"zscore\",type=\"A\"}",
    )
    .unwrap();
    assert!(lower <= yhat && yhat <= upper, "{text}");
    assert!(
        text.contains("promlearn_watch_up{query=\"dns_rate\"} 1\n"),
        "{text}"
    );
    assert!(value(&text, "promlearn_watch_fits_total{query=\"dns_rate\"}").unwrap() >= 1.0);
    for kind in promlearn_watch::ERROR_KINDS {
        assert_eq!(
            value(
                &text,
                &format!("promlearn_watch_errors_total{{query=\"dns_rate\",kind=\"{kind}\"}}")
            ),
            Some(0.0),
            "{text}"
        );
    }
    // Over HTTP, as Prometheus scrapes it.
    let body = reqwest::get(format!("http://{}/metrics", running.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("promlearn_anomaly_score{query=\"dns_rate\""),
        "{body}"
    );
    running.stop().await;
    load.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn an_empty_answer_gives_no_series_and_no_errors() {
    let _serial = SERIAL.lock().await;
    let testbed = testbed().await;
    let watch = Watch::new(quick_config(
        &testbed.prometheus_url(),
        "sum by (type) (rate(coredns_dns_requests_total{type=\\\"NO_SUCH_TYPE\\\"}[5s]))",
    ))
    .unwrap();
    let running = start(watch);
    let text = wait_for(
        &running.handle,
        "5 inferences",
        Duration::from_secs(15),
        |t| {
            value(
                t,
                "promlearn_watch_infer_duration_seconds_count{query=\"dns_rate\"}",
            )
            .unwrap_or(0.0)
                >= 5.0
        },
    )
    .await;
    assert!(
        text.contains("promlearn_watch_up{query=\"dns_rate\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("promlearn_watch_series{query=\"dns_rate\"} 0\n"),
        "{text}"
    );
    assert!(!text.contains("\npromlearn_anomaly_score{"), "{text}");
    for kind in promlearn_watch::ERROR_KINDS {
        assert_eq!(
            value(
                &text,
                &format!("promlearn_watch_errors_total{{query=\"dns_rate\",kind=\"{kind}\"}}")
            ),
            Some(0.0),
            "{text}"
        );
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn prometheus_killed_and_restarted_during_a_watch() {
    let _serial = SERIAL.lock().await;
    let mut testbed = testbed().await;
    let load = dns_load(&testbed, "constant:50", Duration::from_secs(90));
    let running = start(
        Watch::new(quick_config(
            &testbed.prometheus_url(),
            "sum by (type) (rate(coredns_dns_requests_total[5s]))",
        ))
        .unwrap(),
    );
    wait_for(&running.handle, "a score", Duration::from_secs(40), |t| {
        t.contains("\npromlearn_anomaly_score{query=\"dns_rate\"")
    })
    .await;

    testbed.stop_prometheus().await.unwrap();
    let stopped = Instant::now();
    let text = wait_for(&running.handle, "up 0", Duration::from_secs(10), |t| {
        t.contains("promlearn_watch_up{query=\"dns_rate\"} 0\n")
    })
    .await;
    assert!(
        !text.contains("\npromlearn_anomaly_score{"),
        "no score on old data\n{text}"
    );
    // /metrics is still served while Prometheus is down.
    let body = reqwest::get(format!("http://{}/metrics", running.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("promlearn_watch_up{query=\"dns_rate\"} 0"),
        "{body}"
    );
    let failed = |t: &str| {
        value(
            t,
            "promlearn_watch_errors_total{query=\"dns_rate\",kind=\"query_failed\"}",
        )
        .unwrap()
            + value(
                t,
                "promlearn_watch_errors_total{query=\"dns_rate\",kind=\"timeout\"}",
            )
            .unwrap()
    };
    let text = wait_for(
        &running.handle,
        "three failed queries",
        Duration::from_secs(30),
        |t| failed(t) >= 3.0,
    )
    .await;
    // One error per cycle, no storm: inference ticks once per `infer_every` (1 s) at most, and a
    // failed fit window is asked again only after 10 cycles; a slow machine only makes fewer.
    let cycles = stopped.elapsed().as_secs_f64().ceil() + 1.0;
    assert!(
        failed(&text) <= cycles + (cycles / 10.0).ceil() + 1.0,
        "{} errors in {cycles} cycles\n{text}",
        failed(&text)
    );

    let restarted = Instant::now();
    testbed.start_prometheus().await.unwrap();
    let text = wait_for(&running.handle, "recovery", Duration::from_secs(30), |t| {
        t.contains("promlearn_watch_up{query=\"dns_rate\"} 1\n")
            && t.contains("\npromlearn_anomaly_score{query=\"dns_rate\"")
    })
    .await;
    eprintln!(
        "scores again {:.1} s after Prometheus was started again",
        restarted.elapsed().as_secs_f64()
    );
    assert!(
        text.contains("promlearn_watch_series{query=\"dns_rate\"} 1\n"),
        "{text}"
    );
    running.stop().await;
    load.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn the_whole_example_scores_with_both_detectors() {
    let _serial = SERIAL.lock().await;
    let testbed = testbed().await;
    let load = dns_load(
        &testbed,
        "sine:base=60,amp=30,period=20s",
        Duration::from_secs(90),
    );
    let path = repository_root().join("examples/watch/watch.toml");
    let mut config = Config::load(&path).unwrap();
    config.endpoint = testbed.prometheus_url();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let running = start(Watch::new(config).unwrap());
    let started = Instant::now();
    let text = wait_for(
        &running.handle,
        "scores from both queries",
        Duration::from_secs(75),
        |t| {
            t.contains("\npromlearn_anomaly_score{query=\"dns_rate\",detector=\"knn\",type=\"A\"}")
                && t.contains(
                    "\npromlearn_anomaly_score{query=\"dns_rate_lstm\",detector=\"lstm\"}",
                )
        },
    )
    .await;
    let fits = value(
        &text,
        "promlearn_watch_fit_duration_seconds_count{query=\"dns_rate_lstm\"}",
    )
    .unwrap();
    let fit_seconds = value(
        &text,
        "promlearn_watch_fit_duration_seconds_sum{query=\"dns_rate_lstm\"}",
    )
    .unwrap();
    let infers = value(
        &text,
        "promlearn_watch_infer_duration_seconds_count{query=\"dns_rate_lstm\"}",
    )
    .unwrap();
    let infer_seconds = value(
        &text,
        "promlearn_watch_infer_duration_seconds_sum{query=\"dns_rate_lstm\"}",
    )
    .unwrap();
    eprintln!(
        "both scoring after {:.1} s; LSTM: {fits} fit(s), {:.2} s each; inference {:.1} ms per cycle",
        started.elapsed().as_secs_f64(),
        fit_seconds / fits,
        1000.0 * infer_seconds / infers
    );
    assert!(infer_seconds / infers < 0.5, "inference too slow\n{text}");
    running.stop().await;
    load.abort();
}

/// Starts the watch on the example's `dns_rate` query and a testbed whose Prometheus scrapes it
/// every second and loads examples/watch/alerts.yml.
async fn alerting_setup() -> (Testbed, Running) {
    // The watch binds first, so that Prometheus's configuration can name its port.
    let placeholder = "http://127.0.0.1:1";
    let mut config = example_config(placeholder, &[]);
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    config.listen = probe.local_addr().unwrap();
    drop(probe);
    let mut testbed_config = TestbedConfig::for_tests().unwrap();
    testbed_config.extra_scrape_targets = vec![ScrapeTarget::new(
        "promlearn-watch",
        config.listen.to_string(),
    )];
    testbed_config.rule_files = vec![repository_root().join("examples/watch/alerts.yml")];
    let testbed = Testbed::start(testbed_config).await.unwrap();
    config.endpoint = testbed.prometheus_url();
    let running = start(Watch::new(config).unwrap());
    (testbed, running)
}

async fn firing(testbed: &Testbed) -> Vec<promlearn_testbed::Sample> {
    testbed
        .query("ALERTS{alertname=\"PromlearnAnomaly\",alertstate=\"firing\"}")
        .await
        .unwrap()
}

const CALM_QPS: &str = "constant:40";
/// Load length: the example's detector (knn) needs its min_history (18 s at 1 s steps) of rate
/// history before it scores.
const RUN: Duration = Duration::from_secs(80);
const SPIKE_AT: Duration = Duration::from_secs(55);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn the_alert_fires_for_an_injected_spike() {
    let _serial = SERIAL.lock().await;
    let (testbed, running) = alerting_setup().await;
    let profile = format!("{CALM_QPS}+spike:at={}s,len=12s,x=5", SPIKE_AT.as_secs());
    let load = dns_load(&testbed, &profile, RUN);
    let started = Instant::now();
    // Calm before the spike: scores are scraped by Prometheus, and nothing fires.
    let mut scored = false;
    while started.elapsed() < SPIKE_AT {
        let alerts = firing(&testbed).await;
        assert!(
            alerts.is_empty(),
            "fired {:.0} s into the calm part: {alerts:?}",
            started.elapsed().as_secs_f64()
        );
        scored |= !testbed
            .query("promlearn_anomaly_score{job=\"promlearn-watch\",query=\"dns_rate\"}")
            .await
            .unwrap()
            .is_empty();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        scored,
        "Prometheus never scraped a score before the spike\n{}",
        running.handle.render_metrics()
    );
    // The spike: the alert fires within its length plus `for`.
    let fired = loop {
        let alerts = firing(&testbed).await;
        if let Some(alert) = alerts.into_iter().next() {
            break alert;
        }
        assert!(
            started.elapsed() < SPIKE_AT + Duration::from_secs(25),
            "no alert for the spike\n{}\n{}",
            running.handle.render_metrics(),
            testbed.server_logs(10).await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let after = started.elapsed().saturating_sub(SPIKE_AT);
    eprintln!(
        "alert firing {:.1} s after the spike began: {:?}",
        after.as_secs_f64(),
        fired.labels
    );
    assert_eq!(
        fired.labels.get("query").map(String::as_str),
        Some("dns_rate")
    );
    assert_eq!(
        fired.labels.get("detector").map(String::as_str),
        Some("knn")
    );
    assert_eq!(fired.labels.get("type").map(String::as_str), Some("A"));
    assert_eq!(
        fired.labels.get("severity").map(String::as_str),
        Some("warning")
    );
    running.stop().await;
    load.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn a_calm_run_with_a_busy_core_fires_nothing() {
    let _serial = SERIAL.lock().await;
    let (testbed, running) = alerting_setup().await;
    // The load outlasts the observation, so that its end is not seen as a drop.
    let load = dns_load(&testbed, CALM_QPS, RUN + Duration::from_secs(20));
    // One core busy all along, as a noisy neighbour would keep it.
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut x = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                std::hint::black_box(x);
            }
        })
    };
    let started = Instant::now();
    let mut scored = 0;
    let mut max_score = 0.0f64;
    while started.elapsed() < RUN {
        let alerts = testbed
            .query("ALERTS{alertname=\"PromlearnAnomaly\"}")
            .await
            .unwrap();
        let firing: Vec<_> = alerts
            .iter()
            .filter(|a| a.labels.get("alertstate").map(String::as_str) == Some("firing"))
            .collect();
        assert!(
            firing.is_empty(),
            "fired {:.0} s into a calm run: {firing:?}\n{}",
            started.elapsed().as_secs_f64(),
            running.handle.render_metrics()
        );
        let scores = testbed
            .query("promlearn_anomaly_score{job=\"promlearn-watch\",query=\"dns_rate\"}")
            .await
            .unwrap();
        if !scores.is_empty() {
            scored += 1;
        }
        for s in &scores {
            max_score = max_score.max(s.value);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    busy.join().unwrap();
    eprintln!("{scored} polls saw scores; the highest score was {max_score:.2}");
    assert!(
        scored >= 20,
        "the watch scored too little of the run to prove anything: {scored}\n{}",
        running.handle.render_metrics()
    );
    running.stop().await;
    load.abort();
}
