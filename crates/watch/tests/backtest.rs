//! `promlearn_watch::backtest` against a real Prometheus and CoreDNS from promlearn-testbed: a
//! past range of CoreDNS's request rate replayed through the service's schedule gives one row per
//! sample that Prometheus's own `query_range` returns for that range (same timestamps, same
//! values), judged from the first tick's model on, with a fit every `fit_every`.
//!
//! `cargo xtask e2e` runs it; alone: `cargo test -p promlearn-watch --test backtest -- --include-ignored`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests show what they compare; cargo prints it when one fails"
)]

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use promlearn_loader::{Client, RangeQuery, is_missing};
use promlearn_watch::{
    Config,
    backtest::{self, CSV_HEADER, CsvWriter},
};

mod common;

use common::{dns_load, testbed};

const EXPR: &str = "sum by (type) (rate(coredns_dns_requests_total[5s]))";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn config(endpoint: &str) -> Config {
    Config::from_toml(
        &format!(
            r#"
endpoint = "{endpoint}"
[[query]]
name = "dns_rate"
expr = "{EXPR}"
step = "1s"
detector = {{ kind = "zscore", window = 8, threshold = 4 }}
infer_every = "2s"
fit_every = "10s"
fit_window = "20s"
"#
        ),
        "backtest.toml",
    )
    .unwrap()
}

/// One row as the backtest wrote it: value, judged.
type Rows = BTreeMap<(String, i64), (f64, bool)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn a_backtest_writes_one_row_per_sample_prometheus_returns_for_the_range() {
    promlearn_loader::install_crypto_provider();
    let testbed = testbed().await;
    let load = dns_load(&testbed, "constant:50", Duration::from_secs(120));
    let endpoint = testbed.prometheus_url();
    let client = Client::builder(endpoint.clone())
        .no_proxy()
        .build()
        .unwrap();

    // Wait for 45 s of rate history: 20 s before the range for the first fit, 20 s of range.
    let started = now_ms();
    let first_ms = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let range =
            RangeQuery::new(EXPR, started - 120_000, now_ms(), Duration::from_secs(1)).unwrap();
        let m = client.query_range(&range).await.unwrap();
        let first =
            (0..m.n_rows()).find(|&r| (0..m.n_series()).any(|s| !is_missing(m.column(s)[r])));
        if let Some(r) = first {
            let first_ms = m.timestamps()[r];
            if now_ms() - first_ms >= 50_000 {
                break first_ms;
            }
        }
        assert!(
            now_ms() - started < 120_000,
            "no rate history after 2 minutes"
        );
    };
    // A range whose every sample is ingested (5 s back) and with a full fit window before it.
    let to = (now_ms() - 5_000) / 1000 * 1000;
    let from = to - 20_000;
    assert!(from - 20_000 > first_ms);

    let config = config(&endpoint);
    let source = backtest::load(&config, from, to).await.unwrap();
    let mut rows = Rows::new();
    let mut repeats = 0;
    let mut csv = CsvWriter::new(Vec::new()).unwrap();
    let summary = backtest::run(&config, &source, from, to, &mut |p| {
        csv.write(p)?;
        if rows
            .insert(
                (p.labels.to_string(), p.timestamp_ms),
                (p.value, p.judged()),
            )
            .is_some()
        {
            repeats += 1;
        }
        Ok(())
    })
    .unwrap();
    let csv = String::from_utf8(csv.finish().unwrap()).unwrap();
    eprintln!("{summary:?}");

    // What Prometheus answers for the range itself, on the same grid.
    let range = RangeQuery::new(EXPR, from, to, Duration::from_secs(1)).unwrap();
    let m = client.query_range(&range).await.unwrap();
    let mut expected = Rows::new();
    for (s, labels) in m.series().iter().enumerate() {
        for (t, v) in m.timestamps().iter().zip(m.column(s)) {
            if !is_missing(*v) {
                // From the first tick's model on, every sample is judged: all but those at `from`.
                expected.insert((labels.to_string(), *t), (*v, *t > from));
            }
        }
    }
    assert_eq!(repeats, 0, "a sample handed on twice");
    assert!(
        expected.len() >= 21,
        "{} samples: is the load running?",
        expected.len()
    );
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the rows are Prometheus's samples of the range"
    );
    for (key, (value, judged)) in &rows {
        let (want, want_judged) = expected[key];
        assert_eq!(
            value.to_bits(),
            want.to_bits(),
            "{key:?}: {value} != {want}"
        );
        assert_eq!(*judged, want_judged, "{key:?}: judged {judged}");
    }
    let series = m.n_series() as u64;
    let q = &summary.queries[0];
    assert_eq!(
        (q.series, q.points, q.judged),
        (
            series,
            expected.len() as u64,
            expected.values().filter(|v| v.1).count() as u64
        )
    );
    // Fits at the ticks `from`, `from + 10 s` and `from + 20 s`, each series.
    assert_eq!(q.fits, 3 * series);
    assert_eq!(q.errors, [0; promlearn_watch::ERROR_KINDS.len()]);
    assert_eq!(csv.lines().count(), rows.len() + 1);
    assert_eq!(csv.lines().next(), Some(CSV_HEADER));
    load.abort();
}
