//! `/metrics` under load against a real Prometheus (promlearn-testbed): many concurrent scrapes
//! while fits run, every one answered with a page Prometheus accepts, and a series that carries
//! both `query` and `exported_query` (made by Prometheus itself) exported without a duplicate.
//!
//! `cargo xtask e2e` runs it; alone: `cargo test -p promlearn-watch --test scrapes -- --include-ignored`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests show what they measure; cargo prints it when one fails"
)]

use std::{
    collections::HashSet,
    io::Write,
    time::{Duration, Instant},
};

use promlearn_loader::exposition;
use promlearn_watch::{Config, Watch};

mod common;

use common::{dns_load, start, testbed, value};

/// Concurrent scrapers, and how long each keeps scraping.
const SCRAPERS: usize = 50;
const SCRAPING: Duration = Duration::from_secs(15);

fn config(endpoint: &str) -> Config {
    common::config(
        endpoint,
        r#"
# Hundreds of raw series, refitted every 2 s: fits run all the time.
[[query]]
name = "many"
expr = '{__name__=~"go_.*|process_.*|prometheus_(http|tsdb|engine|sd)_.*|coredns_.*"}'
step = "1s"
detector = { kind = "zscore", window = 8 }
infer_every = "1s"
fit_every = "2s"
fit_window = "1m"

# A series that carries both labels we would clash with.
[[query]]
name = "clash"
expr = 'label_replace(label_replace(up, "query", "mine", "", ""), "exported_query", "theirs", "", "")'
step = "1s"
detector = { kind = "mad", window = 8 }
infer_every = "1s"
fit_every = "5s"
fit_window = "1m"
"#,
        "scrapes.toml",
    )
}

/// Every sample's label names are unique (the loader's parser reads the page; duplicates are
/// what Prometheus refuses).
fn check_page(page: &str) {
    let samples = exposition::parse(page).unwrap_or_else(|e| panic!("{e}"));
    for s in &samples {
        let mut names = HashSet::new();
        for (name, _) in &s.labels {
            assert!(names.insert(name), "`{name}` twice in {s:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn concurrent_scrapes_while_fits_run_all_answer_with_a_valid_page() {
    let testbed = testbed().await;
    let load = dns_load(&testbed, "constant:50", SCRAPING + Duration::from_secs(60));
    let watch = Watch::new(config(&testbed.prometheus_url())).unwrap();
    let running = start(watch);
    let (handle, addr) = (running.handle.clone(), running.addr);

    // Scores on both queries, and the first fits done.
    let deadline = Instant::now() + Duration::from_secs(60);
    let before = loop {
        let page = String::from_utf8(handle.served_metrics().to_vec()).unwrap();
        if page.contains("promlearn_anomaly_score{query=\"clash\"")
            && value(&page, "promlearn_watch_fits_total{query=\"many\"}").unwrap_or(0.0) >= 1.0
        {
            break page;
        }
        assert!(Instant::now() < deadline, "no scores yet:\n{page}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let series = value(&before, "promlearn_watch_series{query=\"many\"}").unwrap();
    let fits_before = value(&before, "promlearn_watch_fits_total{query=\"many\"}").unwrap();
    // Prometheus's own series with both labels: ours first, its `exported_query` kept, its
    // `query` renamed once more; none twice.
    check_page(&before);
    let clash = before
        .lines()
        .find(|l| l.starts_with("promlearn_anomaly_score{query=\"clash\",detector=\"mad\","))
        .unwrap();
    assert!(
        clash.contains(",exported_query=\"theirs\"")
            && clash.contains(",exported_exported_query=\"mine\""),
        "{clash}"
    );

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("http://{addr}/metrics");
    let scrapers: Vec<_> = (0..SCRAPERS)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let until = Instant::now() + SCRAPING;
                let mut took = Vec::new();
                let mut pages = Vec::new();
                while Instant::now() < until {
                    let started = Instant::now();
                    let response = client.get(&url).send().await.expect("a scrape answers");
                    assert_eq!(response.status(), 200);
                    let body = response.text().await.expect("a whole page");
                    took.push(started.elapsed());
                    // Every scraper keeps a few pages to check.
                    if took.len() % 20 == 1 && i % 5 == 0 {
                        pages.push(body);
                    }
                }
                (took, pages)
            })
        })
        .collect();
    let mut took = Vec::new();
    let mut pages = Vec::new();
    for scraper in scrapers {
        let (t, p) = scraper.await.unwrap();
        took.extend(t);
        pages.extend(p);
    }
    let after = handle.render_metrics();
    let fits_during =
        value(&after, "promlearn_watch_fits_total{query=\"many\"}").unwrap() - fits_before;
    for page in &pages {
        check_page(page);
    }
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "{} scrapes by {SCRAPERS} concurrent clients in {SCRAPING:?} of {series} series ({} bytes), {fits_during} fits meanwhile: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        took.len(),
        pages.last().map_or(0, String::len),
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        took.last().unwrap().as_secs_f64() * 1000.0,
    );
    assert!(
        fits_during >= series,
        "fits did not run during the scrapes: {fits_during}"
    );
    assert!(!pages.is_empty());

    // promtool, as CI has it (Debian's prometheus package).
    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Err(e) => eprintln!("skipped promtool: {e} (Debian's prometheus package ships it)"),
        Ok(mut child) => {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(pages.last().unwrap().as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stderr);
            // Exit 3 is lint only (e.g. the raw series' own `le` and `quantile` labels).
            assert!(
                out.status.success() || (out.status.code() == Some(3) && !text.contains("error")),
                "promtool: {}: {text}",
                out.status
            );
        }
    }

    running.stop().await;
    load.abort();
}
