//! The web page in a real browser: headless Chromium, driven through WebDriver (chromedriver)
//! with fantoccini, against `promlearn watch` scoring CoreDNS's request rate in a real
//! Prometheus (the demo's query), on each runtime in `PROMLEARN_E2E_RUNTIMES`.
//!
//! WebDriver rather than CDP (chromiumoxide): it is the W3C protocol every browser speaks, Debian
//! ships chromedriver beside chromium at the same version, and fantoccini is a small, well-kept
//! client that needs no TLS stack here (it talks plain HTTP to chromedriver on 127.0.0.1).
//!
//! It checks what a user sees: the overview ranks the watch's series by score; a series' view
//! draws the band and flags that `/metrics` holds for its newest point and, replayed over a
//! range, what `promlearn watch --backtest` writes to its CSV for that range, point for point;
//! explore backtests two detectors and its counts equal the CLI's; a bad expr shows the PromQL
//! parser's message, the one `--check` gives for the same TOML; with basic auth on, the page
//! answers 401 without credentials. Screenshots go to `target/browser/`, and the number of checks
//! that passed to `target/browser/checks`, which `cargo xtask e2e` prints.
//!
//! `cargo xtask e2e` runs it; alone: `cargo test -p promlearn --test browser -- --include-ignored`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests show what they compare; cargo prints it when one fails"
)]

mod browser_support;
mod common;

use std::{collections::BTreeMap, process::Stdio, time::Duration};

use fantoccini::Locator;
use promlearn_dns::{LoadConfig, Profile};
use promlearn_loader::Labels;
use promlearn_testbed::{RuntimeChoice, Testbed, TestbedConfig};
use serde_json::Value;

use browser_support::*;
use common::{NEEDS_SERVERS, path_str, promlearn};

/// The user and password of the auth check (bcrypt-hashed into the web config).
const USER: &str = "alice";
const PASSWORD: &str = "wonderland";

fn runtimes() -> Vec<RuntimeChoice> {
    std::env::var("PROMLEARN_E2E_RUNTIMES")
        .unwrap_or_else(|_| "processes".into())
        .split(',')
        .map(|name| {
            name.parse()
                .expect("PROMLEARN_E2E_RUNTIMES lists processes and/or containers")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers and Chromium: run cargo xtask e2e"]
async fn the_page_in_a_real_browser() {
    let _ = NEEDS_SERVERS;
    promlearn_loader::install_crypto_provider();
    let mut passed = 0u64;
    for runtime in runtimes() {
        passed += on_runtime(runtime).await;
    }
    std::fs::write(out_dir().join("checks"), format!("{passed}\n")).unwrap();
    eprintln!("browser: {passed} checks passed");
}

async fn on_runtime(runtime: RuntimeChoice) -> u64 {
    let mut passed = 0u64;
    let mut check = |what: &str| {
        passed += 1;
        eprintln!("browser ({runtime:?}): ok: {what}");
    };
    let testbed = Testbed::start(TestbedConfig::for_tests().unwrap().with_runtime(runtime))
        .await
        .expect("the testbed starts");
    let endpoint = testbed.prometheus_url();
    // The demo's traffic: a 30 s rhythm with a spike.
    let profile: Profile = "day:base=60,amp=30,period=30s+spike:at=50s,len=4s,x=6"
        .parse()
        .unwrap();
    let mut load = LoadConfig::new(
        testbed.dns_addr(),
        profile,
        u64::MAX,
        Duration::from_secs(600),
    );
    load.concurrency = 8;
    load.connections = 2;
    load.types = "A=3,AAAA=1".parse().unwrap();
    let traffic = tokio::spawn(async move {
        let _ = load.run().await;
    });

    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config_path = dir.path().join("watch.toml");
    std::fs::write(&config_path, watch_toml(&endpoint, &listen)).unwrap();
    let _watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_promlearn"))
        .args(["watch", "--config", path_str(&config_path)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://{listen}");
    // Scores for the demo's series, and a flag among them once the spike has passed.
    wait_until("the watch's scores", Duration::from_secs(240), || async {
        let m = metrics(&base, "dns_rate").await;
        (!m.is_empty()
            && m.values()
                .all(|f| f.contains_key("promlearn_anomaly_score")))
        .then_some(())
    })
    .await;

    // Two minutes of the rate in Prometheus (scraped every second), the spike among them: the
    // range replayed below then holds the fit window and more for the replay's own fits.
    wait_until(
        "two minutes of history",
        Duration::from_secs(300),
        || async {
            let samples = testbed
                .query("max(count_over_time(coredns_dns_requests_total[10m]))")
                .await
                .ok()?;
            (samples.first()?.value >= 120.0).then_some(())
        },
    )
    .await;

    let browser = Browser::start().await;

    // The overview: every series of the query, highest score first.
    browser
        .open(&format!("{base}/ui/?query=dns_rate"), "overview")
        .await;
    let ranked = browser
        .js("[...document.querySelectorAll('#series-rows tr[data-score]')].map(r => [r.querySelector('a').textContent, Number(r.dataset.score)])")
        .await;
    let ranked = ranked.as_array().unwrap().clone();
    let on_metrics = metrics(&base, "dns_rate").await;
    assert_eq!(
        ranked.len(),
        on_metrics.len(),
        "the overview lists every series /metrics has: {ranked:?}"
    );
    let scores: Vec<f64> = ranked.iter().map(|r| r[1].as_f64().unwrap()).collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "ranked by score: {scores:?}"
    );
    check("the overview lists the demo's series, ranked by score");
    browser
        .screenshot(&format!("overview-{runtime:?}.png"))
        .await;

    // A series: its newest point is /metrics's, to the bit. A round may land between the page's
    // read and ours, so both are read again until they agree on a quiet moment (/metrics read
    // before and after the page agree).
    let first_link = browser
        .js("document.querySelector('#series-rows a').href")
        .await;
    let series_url = first_link.as_str().unwrap().to_owned();
    let matched = wait_until(
        "the series view to show /metrics's newest point",
        Duration::from_secs(60),
        || async {
            let before = metrics(&base, "dns_rate").await;
            browser.open(&series_url, "series").await;
            let after = metrics(&base, "dns_rate").await;
            if before != after {
                return None;
            }
            let labels: BTreeMap<String, String> =
                serde_json::from_value(browser.js("window.promlearn.series.labels").await).unwrap();
            let m = &after[&Labels::from_pairs(labels)];
            let live = chart_rows(&browser, "live").await;
            let newest = *live.last()?;
            let on_metrics = (
                newest.0,
                m["promlearn_value"],
                m["promlearn_yhat"],
                m["promlearn_yhat_lower"],
                m["promlearn_yhat_upper"],
                m["promlearn_anomalous"] == 1.0,
            );
            same_rows(&[newest], &[on_metrics]).then_some(live.len())
        },
    )
    .await;
    check(&format!(
        "the series view draws /metrics's newest point (value, yhat, band, flag) after {} recent samples",
        matched - 1
    ));

    // The same series replayed over the last 15 minutes: the backtest CSV's points, all of them.
    let select = browser
        .client
        .find(Locator::Id("replay-range"))
        .await
        .unwrap();
    select.select_by_value("900000").await.unwrap();
    browser
        .client
        .find(Locator::Id("replay"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_js(
            "window.promlearn.replayed === window.promlearn.job",
            "the replay drawn",
        )
        .await;
    let job = browser.js("window.promlearn.job").await;
    let status: Value = reqwest::get(format!("{base}/api/explore/{job}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (from_ms, to_ms) = (
        status["from_ms"].as_i64().unwrap(),
        status["to_ms"].as_i64().unwrap(),
    );
    let replay = chart_rows(&browser, "replay").await;
    let labels: BTreeMap<String, String> =
        serde_json::from_value(browser.js("window.promlearn.series.labels").await).unwrap();
    let labels = Labels::from_pairs(labels).to_string();
    let file = std::fs::read_to_string(&config_path).unwrap();
    let (_, csv) = cli_backtest(dir.path(), "replay", &file, from_ms, to_ms).await;
    let rows = csv_rows(&csv, "dns_rate", &labels);
    assert!(
        replay.iter().filter(|r| !r.2.is_nan()).count() > 10,
        "judged points drawn: {replay:?}"
    );
    assert!(
        same_rows(&replay, &rows),
        "the replay drew the CSV's points:\npage {replay:?}\ncsv {rows:?}"
    );
    check(&format!(
        "the series replay draws the backtest CSV's {} points, band and flags, point for point",
        rows.len()
    ));
    browser.screenshot(&format!("series-{runtime:?}.png")).await;

    // Explore: two detectors over the same range; their counts are the CLI's.
    browser.open(&format!("{base}/ui/explore"), "explore").await;
    browser
        .fill(
            "expr",
            "sum by (type) (rate(coredns_dns_requests_total[5s]))",
        )
        .await;
    browser.fill("step", "1s").await;
    browser.fill("fit_window", "1m").await;
    browser.fill("fit_every", "75s").await;
    browser
        .client
        .find(Locator::Id("add-detector"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let inputs = browser
        .client
        .find_all(Locator::Css(".detector-input"))
        .await
        .unwrap();
    inputs[0].clear().await.unwrap();
    inputs[0].send_keys("{ kind = \"knn\" }").await.unwrap();
    inputs[1].clear().await.unwrap();
    inputs[1]
        .send_keys("{ kind = \"zscore\", window = 8, threshold = 4 }")
        .await
        .unwrap();
    browser
        .client
        .find(Locator::Id("range"))
        .await
        .unwrap()
        .select_by_value("custom")
        .await
        .unwrap();
    browser.fill("from_ms", &from_ms.to_string()).await;
    browser.fill("to_ms", &to_ms.to_string()).await;
    browser
        .client
        .find(Locator::Id("run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_js(
            "window.promlearn.done === window.promlearn.job",
            "the explore job's results",
        )
        .await;
    let counts = browser
        .js("[...document.querySelectorAll('#counts tr[data-query]')].map(r => [r.dataset.query, ...['points','judged','flagged','alerts'].map(c => Number(r.querySelector('.' + c).textContent))])")
        .await;
    let toml = browser.text("#toml").await;
    let (summary, csv) = cli_backtest(
        dir.path(),
        "explore",
        &format!("endpoint = \"{endpoint}\"\n\n{toml}\n"),
        from_ms,
        to_ms,
    )
    .await;
    let counts = counts.as_array().unwrap();
    assert_eq!(counts.len(), 2, "two detectors: {counts:?}");
    for row in counts {
        let query = row[0].as_str().unwrap();
        let line = summary
            .lines()
            .find(|l| l.starts_with(&format!("query {query} ")))
            .unwrap_or_else(|| panic!("the CLI's summary has {query}: {summary}"));
        let (points, judged, flagged) = (
            row[1].as_u64().unwrap(),
            row[2].as_u64().unwrap(),
            row[3].as_u64().unwrap(),
        );
        let expected = format!("{points} points, {judged} judged, {flagged} flagged");
        assert!(
            line.contains(&expected),
            "page {expected} against the CLI's {line}"
        );
        // Alerts: runs of flagged points per series in the CSV.
        let mut alerts = 0;
        let mut last: BTreeMap<String, bool> = BTreeMap::new();
        for l in csv
            .lines()
            .skip(1)
            .filter(|l| l.split(',').nth(1) == Some(query))
        {
            let flagged = l.ends_with(",1");
            let key = l.split(',').skip(2).collect::<Vec<_>>().join(",");
            let key = key.split("},").next().unwrap_or("").to_owned();
            if flagged && !last.get(&key).copied().unwrap_or(false) {
                alerts += 1;
            }
            last.insert(key, flagged);
        }
        assert_eq!(row[4].as_u64().unwrap(), alerts, "{query}: alerts");
        assert!(judged > 0, "{query} judged points: {line}");
    }
    check(
        "explore's counts of two detectors (points, judged, flagged, alerts) equal the CLI's --backtest",
    );
    browser
        .js("document.getElementById('counts').scrollIntoView()")
        .await;
    browser
        .screenshot(&format!("explore-{runtime:?}.png"))
        .await;

    // A bad expr: the PromQL parser's message, as --check gives it for the same TOML.
    browser
        .fill("expr", "rate(coredns_dns_requests_total[5s]")
        .await;
    browser
        .client
        .find(Locator::Id("run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_js(
            "document.getElementById('explore-error').textContent.length > 0",
            "the error shown",
        )
        .await;
    let shown = browser.text("#explore-error").await;
    let toml = browser
        .js("(() => { const i = [...document.querySelectorAll('.detector-input')]; return i.map(x => x.value); })()")
        .await;
    assert_eq!(toml.as_array().unwrap().len(), 2);
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "endpoint = \"{endpoint}\"\n\n[[query]]\nname = \"explore_1\"\nexpr = \"rate(coredns_dns_requests_total[5s]\"\nstep = \"1s\"\nfit_window = \"1m\"\nfit_every = \"75s\"\ndetector = {{ kind = \"knn\" }}\n"
        ),
    )
    .unwrap();
    let run = promlearn(["watch", "--config", path_str(&bad), "--check"]).await;
    let message = run.one_line_error().trim_start_matches("error: ");
    let message = message.split_once(": ").map_or(message, |(_, m)| m);
    assert!(
        shown.contains("expr is not valid PromQL"),
        "the page shows the parser's message: {shown}"
    );
    assert!(
        shown.ends_with(message),
        "the page shows {shown:?}; --check says {message:?}"
    );
    check("a bad expr shows the PromQL parser's message, the one --check gives");
    browser
        .screenshot(&format!("explore-error-{runtime:?}.png"))
        .await;

    // Starting from a query of the file fills what the team knows about it, and the copied
    // block keeps it.
    browser
        .client
        .find(Locator::Id("pick"))
        .await
        .unwrap()
        .select_by_value("1") // dns_rate_zscore, the file's second query
        .await
        .unwrap();
    let known = browser
        .js("['direction', 'min_deviation_relative', 'data_range_low', 'data_range_high'].map(id => document.getElementById(id).value)")
        .await;
    assert_eq!(
        known,
        serde_json::json!(["up", "0.05", "0", ""]),
        "the file's direction, min_deviation and data_range in the form"
    );
    check("explore, started from a query of the file, shows what the file says the team knows");

    // With basic auth on: 401 without credentials, the page with them.
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  {USER}: '{hash}'\n")).unwrap();
    let ui_listen = format!("127.0.0.1:{}", free_port());
    let _ui = tokio::process::Command::new(env!("CARGO_BIN_EXE_promlearn"))
        .args([
            "ui",
            "--endpoint",
            &endpoint,
            "--listen",
            &ui_listen,
            "--web.config.file",
            path_str(&web),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ui_base = format!("http://{ui_listen}");
    let client = reqwest::Client::new();
    let refused = wait_until(
        "promlearn ui to answer",
        Duration::from_secs(30),
        || async {
            client
                .get(format!("{ui_base}/ui/explore"))
                .send()
                .await
                .ok()
        },
    )
    .await;
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    for path in ["/api/info", "/ui/assets/app.js", "/"] {
        let r = client.get(format!("{ui_base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED, "{path}");
    }
    browser
        .client
        .goto(&format!("{ui_base}/ui/explore"))
        .await
        .unwrap();
    // Headless Chromium cancels the credentials prompt and shows nothing of the page.
    let source = browser.client.source().await.unwrap();
    assert!(
        !source.contains("promlearn") && !source.contains("app.js"),
        "the browser gets no page: {source}"
    );
    let allowed = client
        .get(format!("{ui_base}/ui/explore"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), reqwest::StatusCode::OK);
    assert!(allowed.text().await.unwrap().contains("/ui/assets/app.js"));
    check("with basic auth on, the page answers 401 without credentials and the page with them");

    traffic.abort();
    let _ = browser.client.close().await;
    passed
}
