//! The `promlearn` binary against the testbed's real CoreDNS and Prometheus.
//!
//! `cargo xtask e2e` runs these with `--include-ignored`; so does
//! `cargo test -p promlearn -- --include-ignored`.

mod common;

use std::{collections::BTreeSet, time::Duration};

use common::{promlearn, testbed, wait_sum};
use serde_json::Value;

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn dns_query_and_load_reach_coredns_and_its_counters() {
    let tb = testbed().await;
    let server = tb.dns_addr().to_string();

    let dig = promlearn(["dns", "query", "demo1.example.org", "--server", &server])
        .await
        .ok();
    assert!(dig.stdout.contains("status: NOERROR"), "{}", dig.stdout);
    assert!(
        dig.stdout
            .contains(";; QUESTION SECTION:\n;demo1.example.org.\t\tIN\tA"),
        "{}",
        dig.stdout
    );
    assert!(
        dig.stdout
            .contains(&format!(";; SERVER: 127.0.0.1#{}", tb.dns_addr().port()))
    );

    let json = promlearn([
        "dns",
        "query",
        "example.org",
        "MX",
        "--server",
        &server,
        "--tcp",
        "--json",
    ])
    .await
    .ok();
    let answer: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(answer["status"], "NOERROR");
    assert_eq!(answer["transport"], "TCP");
    assert_eq!(answer["query"]["type"], "MX");

    wait_sum(&tb, "sum(coredns_dns_requests_total)", 2.0).await;
    let load = promlearn([
        "dns",
        "load",
        "--server",
        &server,
        "--profile",
        "constant:400",
        "--count",
        "600",
        "--duration",
        "20s",
        "--types",
        "A=3,AAAA=1",
        "--json",
    ])
    .await
    .ok();
    let report: Value = serde_json::from_str(&load.stdout).unwrap();
    let sent = report["sent"].as_f64().unwrap();
    assert!(sent > 500.0 && sent <= 600.0, "{report}");
    assert_eq!(report["answered"], report["sent"], "{report}");
    assert_eq!(report["answers"]["NOERROR"], report["sent"]);
    // Every query of both commands is counted by CoreDNS and scraped by Prometheus.
    let total = wait_sum(&tb, "sum(coredns_dns_requests_total)", 2.0 + sent).await;
    assert_eq!(total, 2.0 + sent);
    let aaaa = tb
        .query("sum(coredns_dns_requests_total{type=\"AAAA\"})")
        .await
        .unwrap();
    assert_eq!(
        aaaa[0].value,
        report["sent_by_type"]["AAAA"].as_f64().unwrap()
    );

    // The text report, as people read it.
    let text = promlearn([
        "dns",
        "load",
        "--server",
        &server,
        "--profile",
        "constant:100",
        "--count",
        "20",
        "--duration",
        "5s",
    ])
    .await
    .ok();
    // Exactly the count: the pacer ends the run only once every permit became a query.
    assert!(
        text.stdout.contains("(100.00%)  NOERROR"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("Queries sent:       20\n"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("Latency:"), "{}", text.stdout);
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn scrape_streams_every_sample_with_labels_types_and_timestamps() {
    let tb = testbed().await;
    let server = tb.dns_addr().to_string();
    promlearn(["dns", "query", "demo1.example.org", "--server", &server])
        .await
        .ok();

    let started = chrono::Utc::now().timestamp_millis();
    let run = promlearn([
        "scrape",
        &tb.metrics_url(),
        "--count",
        "2",
        "--interval",
        "500ms",
        "--format",
        "json",
    ])
    .await
    .ok();
    let finished = chrono::Utc::now().timestamp_millis();
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let times: BTreeSet<i64> = lines
        .iter()
        .map(|l| l["timestamp_ms"].as_i64().unwrap())
        .collect();
    assert_eq!(times.len(), 2, "two scrapes, each stamped once");
    assert!(times.iter().all(|t| (started..=finished).contains(t)));
    assert!(times.last().unwrap() - times.first().unwrap() >= 400);

    let find = |name: &str, label: (&str, &str)| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["name"] == name && l["labels"][label.0] == label.1)
            .collect()
    };
    // Counter, with every label CoreDNS gives it.
    let requests = find("coredns_dns_requests_total", ("type", "A"));
    assert_eq!(requests.len(), 2, "once per scrape");
    let r = requests[0];
    assert_eq!(r["type"], "counter");
    assert_eq!(r["value"], 1.0);
    assert_eq!(r["labels"]["zone"], ".");
    assert_eq!(r["labels"]["proto"], "udp");
    assert_eq!(
        r["labels"]["server"],
        format!("dns://:{}", tb.dns_addr().port())
    );
    // Histogram: buckets keep `le` (up to +Inf), and _sum/_count belong to the family.
    let inf = find(
        "coredns_dns_request_duration_seconds_bucket",
        ("le", "+Inf"),
    );
    assert_eq!(inf.len(), 2);
    assert_eq!(inf[0]["type"], "histogram");
    assert_eq!(inf[0]["family"], "coredns_dns_request_duration_seconds");
    assert_eq!(inf[0]["value"], 1.0);
    let count = find("coredns_dns_request_duration_seconds_count", ("zone", "."));
    assert_eq!(count[0]["type"], "histogram");
    assert_eq!(count[0]["value"], 1.0);
    // Summary quantiles and gauges (Go runtime metrics CoreDNS exports).
    let quantiles = find("go_gc_duration_seconds", ("quantile", "0.5"));
    assert_eq!(quantiles[0]["type"], "summary");
    assert!(lines.iter().any(|l| l["type"] == "gauge"));

    // Exactly the samples the endpoint exposes, none dropped or merged.
    promlearn_loader::install_crypto_provider();
    let body = reqwest::get(tb.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exposed = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    let first_scrape = lines
        .iter()
        .filter(|l| l["timestamp_ms"].as_i64() == times.first().copied())
        .count();
    assert_eq!(first_scrape, exposed);

    // Text lines, filtered by family, and CSV.
    let text = promlearn([
        "scrape",
        &tb.metrics_url(),
        "-n",
        "1",
        "-M",
        "coredns_dns_request_duration_seconds",
    ])
    .await
    .ok();
    let text_lines: Vec<&str> = text.stdout.lines().collect();
    assert!(
        text_lines
            .iter()
            .all(|l| l.starts_with("coredns_dns_request_duration_seconds_"))
    );
    assert!(
        text_lines.iter().any(|l| l.contains(",le=\"+Inf\"} 1 ")),
        "{}",
        text.stdout
    );
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("samples.csv");
    promlearn([
        "scrape",
        &tb.metrics_url(),
        "-n",
        "1",
        "-M",
        "coredns_dns_requests_total",
        "-o",
        common::path_str(&csv),
    ])
    .await
    .ok();
    let written = std::fs::read_to_string(&csv).unwrap();
    let mut rows = written.lines();
    assert_eq!(
        rows.next(),
        Some("name,family,type,labels,timestamp_ms,value")
    );
    let row = rows.next().unwrap();
    assert!(
        row.starts_with("coredns_dns_requests_total,coredns_dns_requests_total,counter,\"{"),
        "{row}"
    );
    assert!(row.ends_with(",1"), "{row}");
}

/// Normal traffic to learn from, then a burst the model has never seen.
#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn train_learns_normal_traffic_and_detect_flags_a_burst() {
    let tb = testbed().await;
    let server = tb.dns_addr().to_string();
    let endpoint = tb.prometheus_url();
    let query = "sum(rate(coredns_dns_requests_total[3s]))";

    // 40 s of a 10 s sine between 20 and 100 queries/s.
    promlearn([
        "dns",
        "load",
        "--server",
        &server,
        "--profile",
        "sine:base=60,amp=40,period=10s",
        "--count",
        "100000",
        "--duration",
        "40s",
    ])
    .await
    .ok();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let train = promlearn([
        "train",
        query,
        "--endpoint",
        &endpoint,
        "--last",
        "35s",
        "--step",
        "1s",
        "--window",
        "5",
        "--hidden",
        "16",
        "--epochs",
        "60",
        "--batch-size",
        "8",
        "--quantile",
        "1",
        "--model",
        common::path_str(&model),
    ])
    .await
    .ok();
    assert!(train.stdout.contains("saved to"), "{}", train.stdout);
    for file in ["model.safetensors", "model.json", "promlearn.json"] {
        assert!(model.join(file).exists(), "{file}");
    }
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("promlearn.json")).unwrap())
            .unwrap();
    assert_eq!(meta["query"], query);
    assert_eq!(meta["step_seconds"], 1.0);
    let saved = promlearn_model::Forecaster::load(&model).unwrap();
    assert_eq!(saved.config().n_steps, 5);
    assert_eq!(saved.config().hidden, 16);
    // The detector's band (in requests/s) is what promlearn.json reports as the threshold.
    let detector = promlearn_detect::FittedLstm::load(&model).unwrap();
    let threshold = detector.half_width();
    assert!(threshold > 0.0);
    assert_eq!(meta["threshold"].as_f64().unwrap(), threshold);
    assert_eq!(meta["quantile"].as_f64().unwrap(), 1.0);

    // The same rhythm with a 3 s burst at 800 queries/s from 6 s on.
    let burst_from = chrono::Utc::now().timestamp() as f64 + 6.0;
    promlearn([
        "dns",
        "load",
        "--server",
        &server,
        "--profile",
        "sine:base=60,amp=40,period=10s+burst:at=6s,len=3s,qps=800",
        "--count",
        "100000",
        "--duration",
        "14s",
    ])
    .await
    .ok();
    // Let Prometheus scrape the end of it.
    let scraped_to = chrono::Utc::now().timestamp() + 2;
    tb.wait_for_query("time()", Duration::from_secs(10), |s| {
        s.first().is_some_and(|t| t.value >= scraped_to as f64)
    })
    .await
    .unwrap();

    let report = dir.path().join("anomalies.json");
    let png = dir.path().join("anomalies.png");
    let detect = promlearn([
        "detect",
        "--model",
        common::path_str(&model),
        "--endpoint",
        &endpoint,
        "--last",
        "30s",
        "--output",
        common::path_str(&report),
        "--plot",
        common::path_str(&png),
    ])
    .await
    .ok();
    assert!(detect.stderr.contains("written to"), "{}", detect.stderr);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(doc["query"], query, "the query comes from the model");
    assert_eq!(doc["threshold"].as_f64().unwrap(), threshold);
    let anomalies = doc["anomalies"].as_array().unwrap();
    assert!(!anomalies.is_empty(), "the burst is flagged: {doc}");
    for a in anomalies {
        assert!(a["score"].as_f64().unwrap() > 1.0);
        assert!(a["error"].as_f64().unwrap() > threshold);
    }
    // Flagged during the burst (give the 3 s rate window and scrape timing some room).
    let in_burst = anomalies.iter().any(|a| {
        let t = a["unix_seconds"].as_f64().unwrap();
        (burst_from - 2.0..=burst_from + 3.0 + 5.0).contains(&t)
            && a["value"].as_f64().unwrap() > 150.0
    });
    assert!(
        in_burst,
        "an anomaly inside the burst from {burst_from}: {doc}"
    );
    let png_bytes = std::fs::read(&png).unwrap();
    assert_eq!(&png_bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png_bytes.len() > 10_000, "a real picture");

    // CSV to stdout agrees with the JSON.
    let csv = promlearn([
        "detect",
        "--model",
        common::path_str(&model),
        "--endpoint",
        &endpoint,
        "--last",
        "30s",
        "--format",
        "csv",
    ])
    .await
    .ok();
    let mut rows = csv.stdout.lines();
    assert_eq!(
        rows.next(),
        Some("timestamp,unix_seconds,value,predicted,error,score,lower,upper")
    );
    assert!(rows.count() >= 1);

    // Without a model: a rolling detector fitted on the range itself also flags the burst.
    let fitted_here = promlearn([
        "detect",
        "--query",
        query,
        "--detector",
        // A window the young testbed's history can hold, fitted on the normal traffic before the
        // judged range (fitted on a range that holds the burst, its band would swallow it).
        r#"{"kind": "mad", "window": 20}"#,
        "--fit-window",
        "40s",
        "--endpoint",
        &endpoint,
        "--last",
        "30s",
        "--step",
        "1s",
        "--format",
        "json",
    ])
    .await
    .ok();
    let doc: Value = serde_json::from_str(&fitted_here.stdout).unwrap();
    assert_eq!(doc["detector"]["kind"], "mad");
    assert!(
        doc["threshold"].is_null(),
        "a rolling band has no one threshold"
    );
    let anomalies = doc["anomalies"].as_array().unwrap();
    assert!(
        anomalies.iter().any(|a| {
            let t = a["unix_seconds"].as_f64().unwrap();
            (burst_from - 2.0..=burst_from + 3.0 + 5.0).contains(&t)
                && a["value"].as_f64().unwrap() > 150.0
        }),
        "mad flags the burst: {doc}"
    );
    for a in anomalies {
        let (v, lo, hi) = (
            a["value"].as_f64().unwrap(),
            a["lower"].as_f64().unwrap(),
            a["upper"].as_f64().unwrap(),
        );
        assert!(v < lo || v > hi, "{a}");
    }

    // Live: two checks a second apart, JSON lines, the burst still in the window.
    let live = promlearn([
        "detect",
        "--model",
        common::path_str(&model),
        "--endpoint",
        &endpoint,
        "--live",
        "--interval",
        "1s",
        "--count",
        "2",
        "--last",
        "40s",
        "--format",
        "json",
    ])
    .await
    .ok();
    let live_lines: Vec<Value> = live
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!live_lines.is_empty(), "{}", live.stderr);
    let stamps: Vec<f64> = live_lines
        .iter()
        .map(|l| l["unix_seconds"].as_f64().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "each anomaly once");
    assert_eq!(live_lines[0]["query"], query);
}

/// `train QUERY` over the last minute at 1 s.
fn train_last_minute(query: &str, endpoint: &str, model: &str) -> Vec<String> {
    [
        "train",
        query,
        "--endpoint",
        endpoint,
        "--model",
        model,
        "--last",
        "1m",
        "--step",
        "1s",
    ]
    .map(str::to_owned)
    .to_vec()
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn failures_exit_non_zero_with_one_line() {
    // Bad flags: clap's reason on one line, exit 2.
    for args in [
        vec!["load"],
        vec!["train", "up", "--model", "/tmp/x", "--window", "0"],
        vec!["scrape", "--interval", "soon"],
        vec!["detect", "--model", "/tmp/x", "--count", "3"],
        vec!["dns", "load", "--count", "10"],
        vec!["load", "up", "--last", "1h", "--start", "now"],
        vec!["frobnicate"],
    ] {
        let run = promlearn(&args).await;
        let line = run.one_line_error();
        assert_eq!(run.code, 2, "{args:?}: {line}");
    }

    let tb = testbed().await;
    let endpoint = tb.prometheus_url();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    let model = common::path_str(&model);

    // Bad PromQL: Prometheus's own reason.
    let run = promlearn(train_last_minute("sum(rate(", &endpoint, model)).await;
    let line = run.one_line_error();
    assert!(
        line.contains(&format!("{endpoint} rejected `sum(rate(`: bad_data")),
        "{line}"
    );
    assert!(line.contains("parse error"), "{line}");
    assert_eq!(run.code, 1);

    // A query selecting nothing, and one selecting many series.
    let run = promlearn(train_last_minute("no_such_metric", &endpoint, model)).await;
    assert!(run.one_line_error().contains("selects no series"));
    tb.wait_for_query("up", Duration::from_secs(20), |s| s.len() == 2)
        .await
        .unwrap();
    let run = promlearn(train_last_minute("up", &endpoint, model)).await;
    let line = run.one_line_error();
    assert!(line.contains("selects 2 series"), "{line}");
    assert!(line.contains("up{instance="), "{line}");

    // Unreachable endpoints: nothing listens on a port we just had the kernel free.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let run = promlearn([
        "train",
        "up",
        "--endpoint",
        &format!("http://{closed}"),
        "--model",
        model,
    ])
    .await;
    let line = run.one_line_error();
    assert!(
        line.contains(&format!("cannot connect to http://{closed}")),
        "{line}"
    );
    assert!(line.contains("refused"), "{line}");
    let run = promlearn(["scrape", &format!("http://{closed}/metrics"), "-n", "1"]).await;
    let line = run.one_line_error();
    assert!(
        line.contains(&format!("cannot connect to http://{closed}")),
        "{line}"
    );
    // Not a metrics endpoint.
    let run = promlearn([
        "scrape",
        &format!("{endpoint}/api/v1/status/buildinfo"),
        "-n",
        "1",
    ])
    .await;
    let line = run.one_line_error();
    assert!(
        line.contains("is not in the Prometheus text exposition format"),
        "{line}"
    );
    // A model directory that holds no model.
    let run = promlearn(["detect", "--model", model, "--endpoint", &endpoint]).await;
    assert!(run.one_line_error().contains("cannot load the model"));
    // No DNS server there.
    let run = promlearn([
        "dns",
        "query",
        "demo1.example.org",
        "--server",
        &closed.to_string(),
        "--timeout",
        "1s",
    ])
    .await;
    run.one_line_error();
}

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

/// Runs `promlearn ARGS | head -1`: reads one line of stdout, closes the pipe, then waits.
async fn promlearn_head_1(args: &[&str]) -> (Option<i32>, String, String) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_promlearn"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("promlearn starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut first)
        .await
        .expect("one line");
    // The reader is gone: the next write into the pipe fails with EPIPE.
    let mut stderr = String::new();
    let mut err = child.stderr.take().expect("piped");
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .expect("promlearn ends once its reader is gone")
        .expect("promlearn waits");
    err.read_to_string(&mut stderr).await.expect("stderr");
    (status.code(), first, stderr)
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn every_printing_command_ends_quietly_on_a_closed_pipe() {
    let tb = testbed().await;
    let server = tb.dns_addr().to_string();
    let endpoint = tb.prometheus_url();
    let metrics = tb.metrics_url();
    promlearn(["dns", "query", "demo1.example.org", "--server", &server])
        .await
        .ok();
    wait_sum(&tb, "coredns_dns_requests_total", 1.0).await;
    // Enough history of `up` for the detector below (a window of 5 points and its fit).
    tb.wait_for_query(
        "count_over_time(up{job=\"coredns\"}[30s])",
        Duration::from_secs(60),
        |s| s.first().is_some_and(|x| x.value >= 15.0),
    )
    .await
    .expect("15 s of scrapes");
    for args in [
        vec!["dns", "query", "demo1.example.org", "--server", &server],
        vec![
            "dns",
            "load",
            "--server",
            &server,
            "--profile",
            "constant:50",
            "--count",
            "100",
            "--duration",
            "2s",
        ],
        vec!["scrape", &metrics, "--count", "50", "--interval", "100ms"],
        vec![
            "load",
            "up",
            "--last",
            "1m",
            "--step",
            "1s",
            "--endpoint",
            &endpoint,
            "--format",
            "csv",
        ],
        vec![
            "detect",
            "--detector",
            r#"{"kind": "mad", "window": 5}"#,
            "--query",
            "sum(up)",
            "--last",
            "30s",
            "--step",
            "1s",
            "--endpoint",
            &endpoint,
        ],
    ] {
        let (code, first, stderr) = promlearn_head_1(&args).await;
        assert!(
            !first.is_empty(),
            "`promlearn {}` printed nothing; stderr: {stderr}",
            args.join(" ")
        );
        assert_eq!(
            code,
            Some(0),
            "`promlearn {} | head -1` must exit 0; stderr: {stderr}",
            args.join(" ")
        );
        assert!(
            !stderr.contains("error")
                && !stderr.contains("panicked")
                && !stderr.contains("Broken pipe"),
            "`promlearn {} | head -1` must end quietly, not with: {stderr}",
            args.join(" ")
        );
    }
}
