//! The web page's part of `cargo xtask bench watch`, beside the running service: the overview
//! at 100,000 series, explore jobs beside the inference cycle, and one 7-day job.

use std::{
    fmt::Write as _,
    time::{Duration, Instant},
};

use promlearn_watch::Handle;

use super::{Figures, INFER_EVERY_S, SERIES, STEP_S, now_ms, rate};

/// Overview requests timed (first pages and searches, half each).
const OVERVIEW_REQUESTS: usize = 200;
/// The explore jobs run beside the service (the most the page allows at once).
const EXPLORE_JOBS: usize = promlearn_watch::ui::MAX_RUNNING;

/// The web page beside the running service: the overview's first page and a search by label at
/// 100,000 series (the server's time, to the last byte), once the service's own figures are
/// measured.
pub(crate) async fn overview(http: &reqwest::Client, base: &str, handle: &Handle) -> Vec<String> {
    let mut first = Vec::new();
    let mut search = Vec::new();
    for i in 0..OVERVIEW_REQUESTS {
        let (path, into) = if i % 2 == 0 {
            ("/api/overview?query=zscore&page=0".to_owned(), &mut first)
        } else {
            (
                format!(
                    "/api/overview?query=zscore&search=instance~node-{:03}",
                    i % 1000
                ),
                &mut search,
            )
        };
        let started = Instant::now();
        let response = http
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("the overview");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let body = response.bytes().await.expect("the overview's body");
        into.push(started.elapsed());
        assert!(
            body.len() > 100,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
        // Spread over the inference rounds, so that some requests are the first after a round
        // (they rank the 100,000 series).
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let p99 = |v: &mut Vec<Duration>| {
        v.sort();
        v[(v.len() * 99).div_ceil(100) - 1].as_secs_f64() * 1e3
    };
    let mut all: Vec<Duration> = first.iter().chain(&search).copied().collect();
    let lines = vec![
        format!("ui overview p99: {:.1} ms ({SERIES} series)", p99(&mut all)),
        format!(
            "ui overview: first page p99 {:.1} ms, search by label p99 {:.1} ms, {} requests each \
             (target p99 under 300 ms)",
            p99(&mut first),
            p99(&mut search),
            OVERVIEW_REQUESTS / 2
        ),
    ];
    let _ = handle;
    lines
}

/// One explore job as the page runs it: 100 series over 7 days at 5 minutes (a daily rhythm)
/// with knn, loaded from VictoriaMetrics and replayed; timed from the request to the job's end.
pub(crate) async fn explore_week(http: &reqwest::Client, vm_url: &str, base: &str) -> String {
    const WEEK_SERIES: usize = 100;
    const STEP_MS: i64 = 300_000;
    let end = now_ms() / STEP_MS * STEP_MS;
    // Eight days: the first is the fit window before the week.
    let times: Vec<i64> = (0..=8 * 288)
        .map(|i| end - (8 * 288 - i) * STEP_MS)
        .collect();
    let mut text = String::new();
    for s in 0..WEEK_SERIES {
        let _ = write!(
            text,
            r#"{{"metric":{{"__name__":"week_rate","instance":"node-{s:03}"}},"values":["#
        );
        for (i, t) in times.iter().enumerate() {
            let _ = write!(
                text,
                "{}{:.3}",
                if i > 0 { "," } else { "" },
                rate(s, *t / 48)
            );
        }
        text.push_str(r#"],"timestamps":["#);
        for (i, t) in times.iter().enumerate() {
            let _ = write!(text, "{}{t}", if i > 0 { "," } else { "" });
        }
        text.push_str("]}\n");
    }
    let r = http
        .post(format!("{vm_url}/api/v1/import"))
        .body(text)
        .send()
        .await
        .expect("the week's import");
    assert!(r.status().is_success(), "import: {}", r.status());
    let _ = http
        .get(format!("{vm_url}/internal/force_flush"))
        .send()
        .await;
    let job = serde_json::json!({
        "form": {
            "name": "week",
            "expr": "week_rate",
            "step": "5m",
            "fit_window": "1d",
            "fit_every": "1d",
            "detector": "{ kind = \"knn\" }",
        },
        "from_ms": end - 7 * 86_400_000,
        "to_ms": end,
    });
    let started = Instant::now();
    let r = http
        .post(format!("{base}/api/explore"))
        .json(&job)
        .send()
        .await
        .expect("explore answers");
    let body: serde_json::Value = r.json().await.expect("JSON");
    let id = body["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("a job: {body}"));
    let status = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let status: serde_json::Value = http
            .get(format!("{base}/api/explore/{id}"))
            .send()
            .await
            .expect("a job's status")
            .json()
            .await
            .expect("JSON");
        match status["state"].as_str() {
            Some("done") => break status,
            Some("failed" | "cancelled") => panic!("the week's job ended: {status}"),
            _ => {}
        }
    };
    let d = &status["result"]["detectors"][0];
    format!(
        "ui explore: {} series x 7 days at 5 min with knn backtested in {:.2} s from the request \
         ({} points judged, {} flagged; replay {:.2} s) (target under 10 s)",
        d["series"],
        started.elapsed().as_secs_f64(),
        d["judged"],
        d["flagged"],
        status["result"]["wall_s"].as_f64().unwrap_or(0.0),
    )
}

/// Keeps `EXPLORE_JOBS` explore jobs running for two inference cycles and compares the cycle
/// with the two before.
pub(crate) async fn explore_beside(
    http: &reqwest::Client,
    base: &str,
    handle: &Handle,
) -> Vec<String> {
    let cycles_now = || {
        let f = Figures::now(handle);
        (
            f.get("promlearn_watch_infer_duration_seconds_count", "zscore"),
            f.get("promlearn_watch_infer_duration_seconds_sum", "zscore"),
        )
    };
    let wait_cycles = |from: f64, n: f64| async move {
        loop {
            let (count, _) = cycles_now();
            if count >= from + n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let before = cycles_now();
    wait_cycles(before.0, 2.0).await;
    let quiet = cycles_now();
    let end = now_ms() / 1000 * 1000;
    let job = serde_json::json!({
        "form": {
            "name": "bench",
            "expr": "coredns_like_rate{instance=~\"node-000[0-4][0-9]:9153\"}",
            "step": format!("{STEP_S}s"),
            "fit_window": "5m",
            "fit_every": "5m",
            "infer_every": "30s",
            "detector": "{ kind = \"zscore\", window = 20 }",
        },
        "from_ms": end - 300_000,
        "to_ms": end,
    });
    let submit = || async {
        http.post(format!("{base}/api/explore"))
            .json(&job)
            .send()
            .await
            .expect("explore answers")
    };
    let mut running = Vec::new();
    for _ in 0..EXPLORE_JOBS {
        let r = submit().await;
        assert_eq!(
            r.status(),
            reqwest::StatusCode::ACCEPTED,
            "{:?}",
            r.text().await
        );
        let body: serde_json::Value = r.json().await.expect("JSON");
        running.push(body["id"].as_u64().expect("an id"));
    }
    let sixth = submit().await.status();
    let start = cycles_now();
    let (mut finished, mut series, mut job_wall) = (0u64, 0u64, 0.0f64);
    while cycles_now().0 < start.0 + 2.0 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        for id in running.iter_mut() {
            let status: serde_json::Value = http
                .get(format!("{base}/api/explore/{id}"))
                .send()
                .await
                .expect("a job's status")
                .json()
                .await
                .expect("JSON");
            match status["state"].as_str() {
                Some("done") => {
                    finished += 1;
                    series = status["result"]["detectors"][0]["series"]
                        .as_u64()
                        .unwrap_or(0);
                    job_wall += status["elapsed_s"].as_f64().unwrap_or(0.0);
                    let r = submit().await;
                    let body: serde_json::Value = r.json().await.expect("JSON");
                    *id = body["id"].as_u64().expect("a new job");
                }
                Some("failed") => panic!("an explore job failed: {status}"),
                _ => {}
            }
        }
    }
    for id in &running {
        let _ = http.delete(format!("{base}/api/explore/{id}")).send().await;
    }
    let after = cycles_now();
    let mean = |a: (f64, f64), b: (f64, f64)| (b.1 - a.1) / (b.0 - a.0);
    let (quiet_s, busy_s) = (mean(before, quiet), mean(start, after));
    vec![format!(
        "ui explore beside the service: cycle {busy_s:.3} s (ratio {:.2}) while {EXPLORE_JOBS} \
         backtests ran ({finished} finished, {series} series x 5 min each, {:.1} s each on \
         average), {quiet_s:.3} s (ratio {:.2}) in the two cycles before; a sixth request got {}",
        INFER_EVERY_S / busy_s,
        if finished > 0 {
            job_wall / finished as f64
        } else {
            0.0
        },
        INFER_EVERY_S / quiet_s,
        sixth.as_u16()
    )]
}
