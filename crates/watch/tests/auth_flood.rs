//! Wrong passwords cannot blind the monitoring of the monitor: while a client sends wrong basic
//! auth passwords, 200 requests in flight at any time (each password new, so none is
//! remembered), the testbed's real Prometheus still scrapes the watch with the right one (its
//! scrape timeout is its 1 s interval), and another user's first login answers well within a
//! scrape timeout. The flood gets 401 for the few it may have checked and 429 for the rest.
//!
//! `cargo xtask e2e` runs it; alone: `cargo test -p promlearn-watch --test auth_flood -- --include-ignored`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests show what they compare; cargo prints it when one fails"
)]

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use promlearn_testbed::{ScrapeTarget, Testbed, TestbedConfig};
use promlearn_watch::Watch;

mod common;

const JOB: &str = "watch-auth-flood";
/// Wrong requests in flight at any time.
const IN_FLIGHT: usize = 200;
/// How long the flood lasts at most.
const FLOOD: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn wrong_passwords_do_not_starve_a_first_login() {
    promlearn_loader::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    // Cost 10, as `htpasswd -B` and most guides make them: ~90 ms a check here.
    let (scrape_hash, operator_hash) = (
        bcrypt::hash("scrape-Pa55word", 10).unwrap(),
        bcrypt::hash("operator-Pa55word", 10).unwrap(),
    );
    let web_yml = dir.path().join("web.yml");
    std::fs::write(
        &web_yml,
        format!(
            "basic_auth_users:\n  prometheus: '{scrape_hash}'\n  operator: '{operator_hash}'\n"
        ),
    )
    .unwrap();
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let mut testbed_config = TestbedConfig::for_tests().unwrap();
    testbed_config.extra_scrape_targets = vec![
        ScrapeTarget::new(JOB, format!("127.0.0.1:{}", addr.port()))
            .basic_auth("prometheus", "scrape-Pa55word"),
    ];
    let testbed = Testbed::start(testbed_config).await.unwrap();
    let mut config = common::config(
        &testbed.prometheus_url(),
        r#"
[[query]]
name = "scrape_time"
expr = "scrape_duration_seconds{job=\"prometheus\"}"
step = "1s"
detector = { kind = "zscore", window = 8 }
infer_every = "1s"
fit_every = "20s"
fit_window = "2m"
"#,
        "auth_flood.toml",
    );
    config.listen = addr;
    config.web_config_file = Some(web_yml);
    let running = common::start(Watch::new(config).unwrap());
    let url = format!("http://{addr}/metrics");

    // The flood, from another loopback address than Prometheus's.
    let attacker: IpAddr = "127.0.0.2".parse().unwrap();
    let flooding = Arc::new(AtomicBool::new(true));
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, usize>::new()));
    let mut flood = tokio::task::JoinSet::new();
    for lane in 0..IN_FLIGHT {
        let client = reqwest::Client::builder()
            .local_address(attacker)
            .no_proxy()
            .build()
            .unwrap();
        let (url, flooding, statuses) = (url.clone(), flooding.clone(), statuses.clone());
        flood.spawn(async move {
            let mut n = 0;
            while flooding.load(Ordering::Relaxed) {
                n += 1;
                let status = client
                    .get(&url)
                    .basic_auth("prometheus", Some(format!("wrong-{lane}-{n}")))
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                *statuses.lock().unwrap().entry(status).or_default() += 1;
                if status == 429 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
    }
    let flood_started = Instant::now();
    // Wait until the flood is on: wrong requests answered.
    while statuses.lock().unwrap().values().sum::<usize>() < IN_FLIGHT {
        assert!(flood_started.elapsed() < FLOOD, "the flood never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Another user's first login, while the flood goes on, from an address of its own: one
    // shared with Prometheus (127.0.0.1) shares its one place for a check, and Prometheus's own
    // first check may hold it at that moment (a 429 with Retry-After: 1 then, by design).
    let operator = reqwest::Client::builder()
        .local_address("127.0.0.3".parse::<IpAddr>().unwrap())
        .no_proxy()
        .build()
        .unwrap();
    let asked = Instant::now();
    let first_login = operator
        .get(&url)
        .basic_auth("operator", Some("operator-Pa55word"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16());
    let first_login_s = asked.elapsed().as_secs_f64();

    // Prometheus's scrapes with the right password, while the flood goes on.
    let up = loop {
        let up = testbed
            .query(&format!("up{{job=\"{JOB}\"}}"))
            .await
            .unwrap();
        if up.first().is_some_and(|s| s.value == 1.0) {
            break Some(flood_started.elapsed());
        }
        if flood_started.elapsed() > FLOOD {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    flooding.store(false, Ordering::Relaxed);
    while flood.join_next().await.is_some() {}
    let statuses = statuses.lock().unwrap().clone();
    eprintln!(
        "{IN_FLIGHT} wrong requests in flight: answers {statuses:?}; another user's first login \
         answered {first_login:?} in {first_login_s:.2} s; Prometheus's scrape up after \
         {:?} of flood",
        up
    );
    running.stop().await;
    assert_eq!(first_login.ok(), Some(200), "the first login's status");
    assert!(
        first_login_s < 5.0,
        "the first login took {first_login_s:.2} s behind wrong passwords"
    );
    assert!(
        up.is_some(),
        "Prometheus never scraped the watch during {FLOOD:?} of wrong passwords"
    );
    assert_eq!(
        statuses.get(&200),
        None,
        "a wrong password got in: {statuses:?}"
    );
}
