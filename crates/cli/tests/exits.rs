//! How `promlearn` ends, against the testbed's real servers: failures exit non-zero with one
//! `error:` line, and every printing command ends quietly on a closed pipe (`| head -1`).
//!
//! `cargo xtask e2e` runs these with `--include-ignored`; so does
//! `cargo test -p promlearn -- --include-ignored`.

mod common;

use common::{promlearn, testbed, wait_sum};
use std::time::Duration;

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
