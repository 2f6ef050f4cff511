//! `promlearn dns` and `promlearn scrape` against the testbed's real CoreDNS and Prometheus: the
//! queries and the load reach CoreDNS and its counters, and a scrape streams every sample.
//!
//! `cargo xtask e2e` runs these with `--include-ignored`; so does
//! `cargo test -p promlearn -- --include-ignored`.

mod common;

use common::{promlearn, testbed, wait_sum};
use serde_json::Value;
use std::collections::BTreeSet;

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
