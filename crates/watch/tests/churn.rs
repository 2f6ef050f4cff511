//! Series that churn, against a real VictoriaMetrics (the testbed's): a feeder imports a sample
//! for each live series every second at the wall clock's time, and replaces live series with
//! new ones as it goes, as rotating pods or instances do. At `max_series`, a new live series
//! takes the place of a stopped one in the cycle it appears (the server's look-back still
//! carries the stopped one's last sample at the newest step; its raw samples tell); and a
//! series forgotten as stale stays forgotten while the query's range still returns its old
//! samples, so it is created, dropped and logged once.
//!
//! `cargo xtask e2e` runs it; alone: `cargo test -p promlearn-watch --test churn -- --include-ignored`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests show what they compare; cargo prints it when one fails"
)]

use std::{
    fmt::Write as _,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use promlearn_testbed::victoria::{VictoriaConfig, VictoriaMetrics};
use promlearn_watch::Watch;

mod common;

use common::{start, value, wait_for};

/// Live series at any time.
const LIVE: usize = 10;
/// Every `ROTATE_EVERY` steps, `ROTATED` live series stop and as many new ones start.
const ROTATE_EVERY: u64 = 4;
const ROTATED: usize = 2;
const ROTATIONS: usize = 6;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// One sample at `t_ms` for each of the series `ids`, as Prometheus text lines.
fn samples(ids: &[usize], t_ms: i64) -> String {
    let mut text = String::new();
    for id in ids {
        let _ = writeln!(text, "churn_demo{{pod=\"pod-{id}\"}} {} {t_ms}", 5 + id % 3);
    }
    text
}

async fn import(http: &reqwest::Client, url: &str, body: String) {
    let r = http
        .post(format!("{url}/api/v1/import/prometheus"))
        .body(body)
        .send()
        .await
        .expect("import request");
    assert!(r.status().is_success(), "import: {}", r.status());
    let _ = http.get(format!("{url}/internal/force_flush")).send().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn churning_series_never_refuse_live_ones_and_are_dropped_once() {
    promlearn_loader::install_crypto_provider();
    let vm = VictoriaMetrics::start(VictoriaConfig {
        // Newest samples visible at once, and no cache of older answers: the test reads the
        // server as a scrape left it a moment ago.
        args: vec![
            "-search.latencyOffset=0s".into(),
            "-search.disableCache".into(),
        ],
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("starting VictoriaMetrics failed ({e})"));
    let url = vm.url();
    let http = reqwest::Client::new();

    // One live series more than max_series allows with a stopped one beside each new one; a
    // range of 30 steps (the detector's context) that returns a stopped series long after
    // stale_after.
    let config = common::config(
        &url,
        &format!(
            r#"
max_series = {}
stale_after = "3s"
[[query]]
name = "churn"
expr = "churn_demo"
step = "1s"
infer_every = "1s"
detector = {{ kind = "zscore", window = 20 }}
fit_every = "1m"
fit_window = "1m"
"#,
            LIVE + 1
        ),
        "churn.toml",
    );
    // History for the first live series, so that the first answers hold them.
    let mut live: Vec<usize> = (0..LIVE).collect();
    let start_ms = now_ms() / 1000 * 1000;
    let mut history = String::new();
    for t in (start_ms - 30_000..=start_ms).step_by(1000) {
        history.push_str(&samples(&live, t));
    }
    import(&http, &url, history).await;

    let running = start(Watch::new(config).expect("the watch starts"));
    wait_for(
        &running.handle,
        "the first series",
        Duration::from_secs(30),
        |page| value(page, "promlearn_watch_series{query=\"churn\"}") == Some(LIVE as f64),
    )
    .await;

    // Feed every second; rotate every ROTATE_EVERY seconds.
    let mut next_id = LIVE;
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let mut tick = 0;
    let mut stopped = 0;
    while tick < ROTATE_EVERY * ROTATIONS as u64 {
        ticks.tick().await;
        tick += 1;
        if tick % ROTATE_EVERY == 0 {
            live.drain(..ROTATED);
            live.extend(next_id..next_id + ROTATED);
            next_id += ROTATED;
            stopped += ROTATED;
        }
        import(&http, &url, samples(&live, now_ms() / 1000 * 1000)).await;
    }
    // Every stopped series dropped (stale, or to make room), and the last new ones tracked.
    let page = wait_for(
        &running.handle,
        "every stopped series to be dropped",
        Duration::from_secs(30),
        |page| {
            let dropped = |reason: &str| {
                value(
                    page,
                    &format!(
                        "promlearn_watch_series_dropped_total{{query=\"churn\",reason=\"{reason}\"}}"
                    ),
                )
                .unwrap_or(0.0)
            };
            dropped("stale") + dropped("stopped_at_max_series") >= stopped as f64
        },
    )
    .await;
    running.stop().await;
    let refused = value(
        &page,
        "promlearn_watch_errors_total{query=\"churn\",kind=\"series_limit\"}",
    );
    let dropped = |reason: &str| {
        value(
            &page,
            &format!("promlearn_watch_series_dropped_total{{query=\"churn\",reason=\"{reason}\"}}"),
        )
    };
    eprintln!(
        "{ROTATIONS} rotations of {ROTATED} of {LIVE} live series: series_limit {refused:?}, \
         {next_id} series in all, {stopped} stopped, dropped stale {:?}, dropped to make room {:?}",
        dropped("stale"),
        dropped("stopped_at_max_series"),
    );
    assert_eq!(refused, Some(0.0), "a live series was refused");
    assert_eq!(
        dropped("stale").unwrap_or(0.0) + dropped("stopped_at_max_series").unwrap_or(0.0),
        stopped as f64,
        "each stopped series is dropped once (a series created again is dropped again)"
    );
}
