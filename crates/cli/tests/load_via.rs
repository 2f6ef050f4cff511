//! `promlearn load --via`: on the testbed's real Prometheus, raw samples by every path it serves
//! come out the same, the summary names the path, and paths it does not serve fail on one line.

mod common;

use std::time::Duration;

use common::{NEEDS_SERVERS, promlearn, testbed};

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn load_via_each_path_gives_the_same_samples() {
    let _ = NEEDS_SERVERS;
    let tb = testbed().await;
    let endpoint = tb.prometheus_url();
    // A few seconds of Prometheus's own samples, ending in the past so that all paths see them.
    tb.wait_for_query("count_over_time(up[10s])", Duration::from_secs(30), |s| {
        s.first().is_some_and(|c| c.value >= 5.0)
    })
    .await
    .unwrap();
    let end_s = chrono::Utc::now().timestamp() - 1;
    let (start, end) = ((end_s - 10).to_string(), end_s.to_string());
    let load = |via: &'static str, format: &'static str| {
        let (endpoint, start, end) = (endpoint.clone(), start.clone(), end.clone());
        async move {
            promlearn([
                "load",
                "up",
                "--endpoint",
                &endpoint,
                "--start",
                &start,
                "--end",
                &end,
                "--format",
                format,
                "--via",
                via,
            ])
            .await
        }
    };
    let json = load("json", "csv").await.ok().stdout;
    // Not a comparison of empty answers: a header and samples.
    assert!(json.lines().count() >= 4, "{json}");
    for via in ["auto", "remote-read", "remote-read-samples", "query-range"] {
        assert_eq!(load(via, "csv").await.ok().stdout, json, "--via {via}");
    }
    let summary = load("auto", "text").await.ok().stdout;
    assert!(
        summary
            .lines()
            .next()
            .unwrap()
            .ends_with(", via remote-read)"),
        "{summary}"
    );
    let refused = load("export", "csv").await;
    let line = refused.one_line_error();
    assert!(
        line.contains("HTTP 404") && line.contains("does not serve it"),
        "{line}"
    );
    let with_step = promlearn([
        "load",
        "up",
        "--endpoint",
        &endpoint,
        "--last",
        "10s",
        "--step",
        "1s",
        "--via",
        "remote-read",
    ])
    .await;
    assert!(with_step.one_line_error().contains("leave out --step"));
}
