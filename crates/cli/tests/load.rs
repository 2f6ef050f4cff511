//! `promlearn load` against the testbed's real Prometheus: what it writes is what Prometheus
//! answers, value by value, in every format.
//!
//! `cargo xtask e2e` runs these with `--include-ignored`; so does
//! `cargo test -p promlearn -- --include-ignored`.

mod common;

use common::{promlearn, testbed};
use serde_json::Value;
use std::time::Duration;

/// `load` through the loader: a chunked range as Parquet, read back and checked value by value
/// against one direct `query_range` request for the same query; raw samples as JSON against
/// Prometheus's own `metric[range]`; CSV and the summary.
#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn load_writes_what_prometheus_answers() {
    use arrow_array::{Array, Float64Array, Int64Array};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::collections::BTreeMap;

    let tb = testbed().await;
    let endpoint = tb.prometheus_url();
    let server = tb.dns_addr().to_string();
    // Buckets that change while Prometheus scrapes them.
    promlearn([
        "dns",
        "load",
        "--server",
        &server,
        "--profile",
        "sine:base=100,amp=80,period=4s",
        "--count",
        "100000",
        "--duration",
        "8s",
    ])
    .await
    .ok();
    let end_s = chrono::Utc::now().timestamp();
    tb.wait_for_query("time()", Duration::from_secs(10), |s| {
        s.first().is_some_and(|t| t.value >= (end_s + 1) as f64)
    })
    .await
    .unwrap();
    // 25 minutes at 250 ms: 6001 points, which the loader cuts into several requests.
    let start_s = end_s - 25 * 60;
    let query = "coredns_dns_request_duration_seconds_bucket";
    let dir = tempfile::tempdir().unwrap();
    let parquet_path = dir.path().join("buckets.parquet");
    let run = promlearn([
        "load",
        query,
        "--endpoint",
        &endpoint,
        "--start",
        &start_s.to_string(),
        "--end",
        &end_s.to_string(),
        "--step",
        "250ms",
        "--output",
        common::path_str(&parquet_path),
    ])
    .await
    .ok();
    assert!(run.stderr.contains("timestamps"), "{}", run.stderr);

    let direct = common::prometheus_range(
        &endpoint,
        &[
            ("query", query.to_owned()),
            ("start", start_s.to_string()),
            ("end", end_s.to_string()),
            ("step", "0.25".to_owned()),
        ],
    )
    .await;
    assert!(direct.len() >= 10, "buckets from le=0.00025 to +Inf");

    let file = std::fs::File::open(&parquet_path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
    let schema = batches[0].schema();
    assert_eq!(schema.field(0).name(), "timestamp_ms");
    assert_eq!(
        schema.fields().len(),
        1 + direct.len(),
        "one column per series"
    );
    let mut timestamps = Vec::new();
    let mut columns: BTreeMap<BTreeMap<String, String>, Vec<Option<f64>>> = BTreeMap::new();
    for batch in &batches {
        let ts = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        timestamps.extend(ts.values().iter().copied());
        for (i, field) in schema.fields().iter().enumerate().skip(1) {
            let labels: BTreeMap<String, String> =
                serde_json::from_str(&field.metadata()["labels"]).unwrap();
            let col = batch
                .column(i)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap();
            columns
                .entry(labels)
                .or_default()
                .extend((0..col.len()).map(|r| (!col.is_null(r)).then(|| col.value(r))));
        }
    }
    let grid: Vec<i64> = (0..=6000).map(|i| start_s * 1000 + i * 250).collect();
    assert_eq!(timestamps, grid, "every step of the range, in order");
    let mut compared = 0;
    for (labels, values) in &direct {
        let column = &columns[labels];
        let by_time: BTreeMap<i64, f64> = values
            .iter()
            .map(|(t, v)| ((t * 1000.0).round() as i64, v.parse::<f64>().unwrap()))
            .collect();
        for (row, t) in grid.iter().enumerate() {
            match (by_time.get(t), column[row]) {
                (Some(want), Some(got)) => {
                    assert_eq!(want.to_bits(), got.to_bits(), "{labels:?} at {t}");
                    compared += 1;
                }
                (None, None) => {}
                (want, got) => panic!("{labels:?} at {t}: Prometheus {want:?}, Parquet {got:?}"),
            }
        }
    }
    assert!(compared > 100, "compared {compared} values");

    // Raw samples (no --step), as JSON, against Prometheus's own range selector.
    let raw = promlearn([
        "load",
        "coredns_dns_requests_total",
        "--endpoint",
        &endpoint,
        "--start",
        &(end_s - 20).to_string(),
        "--end",
        &end_s.to_string(),
        "--format",
        "json",
    ])
    .await
    .ok();
    let doc: Value = serde_json::from_str(&raw.stdout).unwrap();
    promlearn_loader::install_crypto_provider();
    let body: Value = reqwest::Client::new()
        .get(format!("{endpoint}/api/v1/query"))
        .query(&[
            ("query", "coredns_dns_requests_total[20s]".to_owned()),
            ("time", end_s.to_string()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let want: Vec<(i64, f64)> = body["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                (p[0].as_f64().unwrap() * 1000.0).round() as i64,
                p[1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let ts = doc["timestamps_ms"].as_array().unwrap();
    let got: Vec<(i64, f64)> = ts
        .iter()
        .zip(doc["series"][0]["values"].as_array().unwrap())
        .map(|(t, v)| (t.as_i64().unwrap(), v.as_f64().unwrap()))
        .filter(|(t, _)| *t > (end_s - 20) * 1000)
        .collect();
    assert!(want.len() >= 5, "a sample a second since the first query");
    assert_eq!(got, want);

    // CSV to stdout and the text summary.
    let csv = promlearn([
        "load",
        "up",
        "--endpoint",
        &endpoint,
        "--last",
        "10s",
        "--step",
        "1s",
        "--format",
        "csv",
    ])
    .await
    .ok();
    let mut rows = csv.stdout.lines();
    let header = rows.next().unwrap();
    assert!(
        header.starts_with("timestamp_ms,\"up{instance="),
        "{header}"
    );
    assert_eq!(rows.count(), 11);
    let summary = promlearn([
        "load",
        "up",
        "--endpoint",
        &endpoint,
        "--last",
        "10s",
        "--step",
        "1s",
    ])
    .await
    .ok();
    assert!(
        summary.stdout.starts_with("up: 2 series x 11 timestamps, "),
        "{}",
        summary.stdout
    );

    // Failures: bad PromQL, an unreachable endpoint, an expression without --step.
    let run = promlearn(["load", "sum(", "--endpoint", &endpoint, "--step", "1s"]).await;
    assert!(run.one_line_error().contains("parse error"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = format!("http://{closed}");
    let run = promlearn(["load", "up", "--endpoint", &unreachable, "--step", "1s"]).await;
    let line = run.one_line_error();
    assert!(
        line.contains(&format!("cannot connect to {unreachable}")),
        "{line}"
    );
    let run = promlearn([
        "load",
        "rate(up[1m])",
        "--endpoint",
        &endpoint,
        "--last",
        "1m",
    ])
    .await;
    assert!(
        run.one_line_error()
            .contains("give --step for an expression")
    );
}
