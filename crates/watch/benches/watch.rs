//! `cargo xtask bench watch`: `promlearn watch` on 100,000 series on this machine.
//!
//! A real VictoriaMetrics (the testbed's; Prometheus's query API, and it imports samples at any
//! timestamp, so history ending now loads at once) holds 100,000 CoreDNS-like request-rate series
//! at a 10 s step: 15 minutes of history, then a new point for every series every 10 s while the
//! bench runs. The service runs as users run it, from a TOML configuration: a rolling detector
//! (z-score) inferred every 30 s over all 100,000 series, and LSTM(16) models on 1,000 of them
//! refitted beside it. The figures come from the service's own `/metrics` (its inference and fit
//! duration histograms, read with the loader's exposition parser) once every rolling model is
//! fitted: the cycle time is the mean of the inference cycles after that, and the ratio is the
//! `infer_every` budget over it. Then three clients scrape `/metrics` at once, several rounds,
//! timed to the page's last byte, and one page is parsed with the loader's exposition parser.
//! The service keeps its state as users keep it (`state_dir`): after it stops, a second one
//! starts on the same directory, and the bench times reading the 101,000 models back and the
//! first cycle that scores every series with them, before any fit.
//!
//! Then, each in a process of its own so that no part's memory shows in another's, the knn part
//! (`watch/knn.rs`: the recommended detector over 100,000 series fitted on a week's worth of
//! points, its ratio and memory per series measured the same way) and the churn part
//! (`watch/churn.rs`): series replaced as they come and go, RSS to a plateau and back. The web
//! page's figures (`watch/ui.rs`) are taken beside the running service.
//! `PROMLEARN_BENCH_WATCH=service`, `=knn` or `=churn` runs only that part; `PROMLEARN_BENCH_CHURN_MINUTES`
//! sets how long it churns (default 30).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use std::{
    fmt::Write as _,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use promlearn_loader::exposition;
use promlearn_testbed::victoria::{VictoriaConfig, VictoriaMetrics};
use promlearn_watch::{Config, Handle, Watch};

const SERIES: usize = 100_000;
/// The LSTM query's share: the series of the first 500 instances (two record types each).
const LSTM_SERIES: usize = 1000;
const LSTM_INSTANCES: &str = "node-00[0-4][0-9][0-9]:9153";
const STEP_S: i64 = 10;
const HISTORY_S: i64 = 900;
const INFER_EVERY_S: f64 = 30.0;
/// Series per import request, and requests in flight.
const IMPORT_BATCH: usize = 5000;
const IMPORT_PARALLEL: usize = 2;
/// Inference cycles measured once every rolling model is fitted.
const MEASURED_CYCLES: f64 = 4.0;
/// How long the rolling models may take to be fitted before the bench gives up: on an idle
/// 2-core machine they take about a minute, with both cores busy with builds five times that
/// (the bench prints its progress every 5 s meanwhile).
const FIT_TIMEOUT: Duration = Duration::from_secs(900);
/// Concurrent scrapers, and rounds of them.
const SCRAPERS: usize = 3;
const SCRAPE_ROUNDS: usize = 5;
/// Runs only the knn part when set to `knn`, only the churn part when set to `churn`.
const ONLY_ENV: &str = "PROMLEARN_BENCH_WATCH";
/// How many minutes the churn part churns (default [`CHURN_MINUTES`]).
const CHURN_MINUTES_ENV: &str = "PROMLEARN_BENCH_CHURN_MINUTES";
const CHURN_MINUTES: f64 = 30.0;

#[path = "watch/churn.rs"]
mod churn;
#[path = "watch/knn.rs"]
mod knn;
#[path = "watch/ui.rs"]
mod ui;

/// A part in a process of its own (this bench again, with [`ONLY_ENV`] set to `part`).
fn in_its_own_process(part: &str) {
    let exe = std::env::current_exe().expect("the bench's own path");
    let status = std::process::Command::new(exe)
        .env(ONLY_ENV, part)
        .status()
        .unwrap_or_else(|e| panic!("the {part} part starts: {e}"));
    assert!(status.success(), "the {part} part failed: {status}");
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// A request rate with a daily rhythm (compressed), a per-series level and some jitter.
fn rate(series: usize, t_ms: i64) -> f64 {
    let level = 20.0 + (series % 50) as f64 * 4.0;
    let phase = (t_ms / 1000) as f64 / 1800.0 * std::f64::consts::TAU + series as f64;
    let jitter = (((t_ms / 1000) as u64)
        .wrapping_mul(2654435761)
        .wrapping_add(series as u64)
        % 1000) as f64
        / 1000.0;
    (level * (1.0 + 0.3 * phase.sin()) + level * 0.05 * (jitter - 0.5)).max(0.0)
}

/// The series a part imports: `count` CoreDNS-like request rates named `name`, with `extra`
/// labels (a JSON fragment, `,"zone":"example.org."` or empty), in requests of `batch` series.
#[derive(Debug, Clone, Copy)]
struct Shape {
    name: &'static str,
    extra: &'static str,
    count: usize,
    batch: usize,
}

/// The main part's series: 100,000 in requests of 5,000.
const MAIN: Shape = Shape {
    name: "coredns_like_rate",
    extra: r#","zone":"example.org.""#,
    count: SERIES,
    batch: IMPORT_BATCH,
};

/// Series `from..to` of `shape` over `[from_ms, to_ms]` at [`STEP_S`] as VictoriaMetrics's
/// JSON-lines import (`/api/v1/import`): one line per series, its values and timestamps as
/// arrays, a fifth of the Prometheus text lines' size for a long history.
fn import_json(shape: Shape, series: std::ops::Range<usize>, from_ms: i64, to_ms: i64) -> String {
    let times: Vec<i64> = (0..)
        .map(|i| from_ms + i * STEP_S * 1000)
        .take_while(|t| *t <= to_ms)
        .collect();
    let mut text = String::with_capacity(series.len() * times.len() * 24);
    for s in series {
        let _ = write!(
            text,
            r#"{{"metric":{{"__name__":"{}","instance":"node-{:05}:9153","type":"{}"{}}},"values":["#,
            shape.name,
            s / 2,
            if s % 2 == 0 { "A" } else { "AAAA" },
            shape.extra,
        );
        for (i, t) in times.iter().enumerate() {
            let _ = write!(text, "{}{:.3}", if i > 0 { "," } else { "" }, rate(s, *t));
        }
        text.push_str(r#"],"timestamps":["#);
        for (i, t) in times.iter().enumerate() {
            let _ = write!(text, "{}{t}", if i > 0 { "," } else { "" });
        }
        text.push_str("]}\n");
    }
    text
}

/// Imports every series of `shape` over `[from_ms, to_ms]`, [`IMPORT_PARALLEL`] requests at a
/// time, and has VictoriaMetrics make them searchable.
async fn import(http: &reqwest::Client, url: &str, shape: Shape, from_ms: i64, to_ms: i64) {
    let mut batches = tokio::task::JoinSet::new();
    for start in (0..shape.count).step_by(shape.batch) {
        if batches.len() >= IMPORT_PARALLEL {
            batches.join_next().await.expect("a batch").expect("import");
        }
        let (http, url) = (http.clone(), url.to_owned());
        batches.spawn(async move {
            let body = tokio::task::spawn_blocking(move || {
                import_json(
                    shape,
                    start..(start + shape.batch).min(shape.count),
                    from_ms,
                    to_ms,
                )
            })
            .await
            .expect("generating a batch");
            let r = http
                .post(format!("{url}/api/v1/import"))
                .body(body)
                .send()
                .await
                .expect("import request");
            assert!(r.status().is_success(), "import: {}", r.status());
        });
    }
    while let Some(done) = batches.join_next().await {
        done.expect("import");
    }
    let _ = http.get(format!("{url}/internal/force_flush")).send().await;
}

/// The process's resident memory, from /proc.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// CPU seconds (user and system) a process has used so far, from /proc (`self` or a pid).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    (ticks(11) + ticks(12)) / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// The watch's own families of a page, read with the loader's exposition parser.
struct Figures(Vec<exposition::Sample>);

impl Figures {
    /// The page `/metrics` serves now; only the watch's health families are parsed (the
    /// per-series scores are most of a 100,000-series page and are not needed here).
    fn now(handle: &Handle) -> Figures {
        let page = handle.served_metrics();
        let page = std::str::from_utf8(&page).expect("the page is text");
        let own: String = page
            .lines()
            .filter(|l| l.starts_with("promlearn_watch_") || l.starts_with("# "))
            .flat_map(|l| [l, "\n"])
            .collect();
        Figures(exposition::parse(&own).expect("the watch's page parses"))
    }

    /// `name{query="q"}` (the `_sum` or `_count` of a histogram, or a gauge).
    fn get(&self, name: &str, query: &str) -> f64 {
        self.0
            .iter()
            .find(|s| s.name == name && s.labels.iter().any(|(n, v)| n == "query" && v == query))
            .map_or(f64::NAN, |s| s.value)
    }
}

/// Every file under `dir`, and their bytes.
fn files_under(dir: &std::path::Path) -> (usize, u64) {
    let mut found = (0, 0);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            let (n, bytes) = files_under(&path);
            found = (found.0 + n, found.1 + bytes);
        } else {
            found = (
                found.0 + 1,
                found.1 + entry.metadata().map_or(0, |m| m.len()),
            );
        }
    }
    found
}

/// A second service on the first one's `state_dir`: how long reading its state back takes, and
/// when its first cycle has scored every rolling series with the models read back (no fit).
async fn restart(config: Config, state_dir: &std::path::Path) -> String {
    let (files, bytes) = files_under(state_dir);
    let starting = Instant::now();
    let watch = Watch::new(config).expect("the restarted service starts");
    let restored_s = starting.elapsed().as_secs_f64();
    let handle = watch.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(watch.serve(async {
        let _ = stopped.await;
    }));
    let figures = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let figures = Figures::now(&handle);
        if figures.get("promlearn_watch_infer_duration_seconds_count", "zscore") >= 1.0 {
            break figures;
        }
        assert!(
            starting.elapsed() < FIT_TIMEOUT,
            "the restarted service has not finished a cycle after {FIT_TIMEOUT:?}"
        );
    };
    let scored_s = starting.elapsed().as_secs_f64();
    let _ = stop.send(());
    service
        .await
        .expect("the service task")
        .expect("the service ran");
    let models = figures.get("promlearn_watch_models", "zscore");
    let fits = figures.get("promlearn_watch_fit_duration_seconds_count", "zscore");
    assert!(
        models >= SERIES as f64 && fits == 0.0,
        "restarted: {models} rolling models, {fits} fits; every one should have been read back"
    );
    format!(
        "watch restart: {models} rolling and {} LSTM models read back from {files} files \
         ({:.0} MB) in {restored_s:.1} s; the first cycle scored them {scored_s:.1} s after the \
         start, with no fit",
        figures.get("promlearn_watch_models", "lstm"),
        bytes as f64 / 1e6
    )
}

#[tokio::main]
async fn main() {
    promlearn_loader::install_crypto_provider();
    if std::env::var(ONLY_ENV).is_ok_and(|v| v == "churn") {
        let minutes = std::env::var(CHURN_MINUTES_ENV)
            .ok()
            .and_then(|m| m.parse().ok())
            .unwrap_or(CHURN_MINUTES);
        println!("{}", churn::run(minutes).await);
        return;
    }
    if std::env::var(ONLY_ENV).is_ok_and(|v| v == "knn") {
        println!("{}", knn::run().await);
        return;
    }
    let bench_started = Instant::now();
    let vm = VictoriaMetrics::start(VictoriaConfig {
        args: vec![
            // Answer a step's value from the newest sample within two steps, as Prometheus's
            // look-back does.
            "-search.maxStalenessInterval=30s".into(),
            "-search.maxUniqueTimeseries=1000000".into(),
        ],
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("starting VictoriaMetrics failed ({e})"));
    let url = vm.url();
    let http = reqwest::Client::new();

    let end = now_ms() / 1000 * 1000;
    let loading = Instant::now();
    import(&http, &url, MAIN, end - HISTORY_S * 1000, end).await;
    println!(
        "watch: {SERIES} series x {} points of history at {STEP_S} s loaded into VictoriaMetrics \
         in {:.1} s",
        HISTORY_S / STEP_S + 1,
        loading.elapsed().as_secs_f64()
    );

    let state_dir = tempfile::tempdir().expect("a temporary directory");
    let state_path = state_dir.path().display();
    let config = Config::from_toml(
        &format!(
            r#"
endpoint = "{url}"
listen = "127.0.0.1:0"
max_series = 200000
state_dir = "{state_path}"

[[query]]
name = "zscore"
expr = "coredns_like_rate"
step = "{STEP_S}s"
detector = {{ kind = "zscore", window = 20 }}
infer_every = "{INFER_EVERY_S}s"
fit_every = "1h"
fit_window = "10m"

[[query]]
name = "lstm"
expr = 'coredns_like_rate{{instance=~"{LSTM_INSTANCES}"}}'
step = "{STEP_S}s"
detector = {{ kind = "lstm", window = 8, hidden = 16, epochs = 40 }}
infer_every = "{INFER_EVERY_S}s"
fit_every = "10m"
fit_window = "15m"
"#
        ),
        "bench watch.toml",
    )
    .expect("the bench's configuration is valid");
    let rss_before = rss_bytes();
    let watch = Watch::new(config.clone()).expect("the service starts");
    let handle = watch.handle();
    let metrics_url = format!("http://{}", watch.bound_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(watch.serve(async {
        let _ = stopped.await;
    }));

    // New points every step, as scrapes would bring them.
    let feeder = {
        let (http, url) = (http.clone(), url.clone());
        tokio::spawn(async move {
            let mut last = end;
            loop {
                tokio::time::sleep(Duration::from_secs(STEP_S as u64)).await;
                let now = now_ms() / 1000 * 1000;
                import(&http, &url, MAIN, last + STEP_S * 1000, now).await;
                last = now;
            }
        })
    };

    // Until every rolling model is fitted, then a few cycles more.
    let started = Instant::now();
    let mut fitted: Option<(Instant, Figures)> = None;
    // CPU time is what the noise of a shared machine leaves alone: the bench's process (the
    // watch, and the feeder's imports beside it) and VictoriaMetrics', over the cycles measured.
    let vm_pid = vm.pid().map_or_else(|| "0".to_owned(), |p| p.to_string());
    let mut cpu_at_fit = (0.0, 0.0);
    let last = loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let figures = Figures::now(&handle);
        let cycles = figures.get("promlearn_watch_infer_duration_seconds_count", "zscore");
        let models = figures.get("promlearn_watch_models", "zscore");
        eprintln!(
            "watch: {:>3.0} s  zscore cycles {cycles}, models {models}  lstm fits {}",
            started.elapsed().as_secs_f64(),
            figures.get("promlearn_watch_fit_duration_seconds_count", "lstm"),
        );
        match &fitted {
            None if models >= SERIES as f64 => {
                cpu_at_fit = (cpu_seconds("self"), cpu_seconds(&vm_pid));
                fitted = Some((Instant::now(), figures))
            }
            None => assert!(
                started.elapsed() < FIT_TIMEOUT,
                "only {models} of {SERIES} rolling models after {FIT_TIMEOUT:?}"
            ),
            Some((_, at_fit)) => {
                let counted = at_fit.get("promlearn_watch_infer_duration_seconds_count", "zscore");
                if cycles - counted >= MEASURED_CYCLES {
                    break figures;
                }
            }
        }
    };
    let (fitted_at, at_fit) = fitted.expect("the loop ends after the fit");
    let rss_after = rss_bytes();
    let cpu_after = (cpu_seconds("self"), cpu_seconds(&vm_pid));
    let measured_s = fitted_at.elapsed().as_secs_f64();

    // Concurrent scrapes while the engine keeps running: each is timed to the page's last byte
    // (what the watch serves; reqwest, as a scraper's HTTP client), then one page is parsed
    // with the loader's exposition parser (what a scraper does next, on its own CPU).
    let mut latencies = Vec::new();
    let mut page = bytes::Bytes::new();
    for _ in 0..SCRAPE_ROUNDS {
        let mut scrapes = tokio::task::JoinSet::new();
        for _ in 0..SCRAPERS {
            let (http, url) = (http.clone(), format!("{metrics_url}/metrics"));
            scrapes.spawn(async move {
                let started = Instant::now();
                let response = http.get(url).send().await.expect("a scrape");
                assert!(
                    response.status().is_success(),
                    "/metrics: {}",
                    response.status()
                );
                let body = response.bytes().await.expect("the page");
                (started.elapsed(), body)
            });
        }
        while let Some(done) = scrapes.join_next().await {
            let (took, body) = done.expect("a scrape task");
            latencies.push(took);
            page = body;
        }
    }
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    let p50 = latencies[latencies.len() / 2];
    let parsing = Instant::now();
    let page_samples = exposition::parse(std::str::from_utf8(&page).expect("text"))
        .expect("the page parses")
        .len();
    let parse_s = parsing.elapsed().as_secs_f64();
    // The page after the service's own figures, so that `watch memory` is the service's alone;
    // what a look at the overview keeps (its ranking of every series, until the next round
    // asks for a new one) is its own line.
    let mut ui_lines = ui::overview(&http, &metrics_url, &handle).await;
    let rss_after_ui = rss_bytes();
    ui_lines.push(format!(
        "ui memory: the overview's ranking and its requests added {:.2} KiB per series of \
         resident memory ({:.0} -> {:.0} MiB)",
        rss_after_ui.saturating_sub(rss_after) as f64 / 1024.0 / SERIES as f64,
        rss_after as f64 / 1048576.0,
        rss_after_ui as f64 / 1048576.0,
    ));
    ui_lines.extend(ui::explore_beside(&http, &metrics_url, &handle).await);
    ui_lines.push(ui::explore_week(&http, &url, &metrics_url).await);

    feeder.abort();
    let _ = stop.send(());
    service
        .await
        .expect("the service task")
        .expect("the service ran");

    let restart = restart(config, state_dir.path()).await;

    let delta = |name: &str, query: &str| last.get(name, query) - at_fit.get(name, query);
    let cycles = delta("promlearn_watch_infer_duration_seconds_count", "zscore");
    let cycle_s = delta("promlearn_watch_infer_duration_seconds_sum", "zscore") / cycles;
    let first_cycles = at_fit.get("promlearn_watch_infer_duration_seconds_count", "zscore");
    let first_cycle_s =
        at_fit.get("promlearn_watch_infer_duration_seconds_sum", "zscore") / first_cycles;
    let watched = last.get("promlearn_watch_series", "zscore");
    let fits = last.get("promlearn_watch_fit_duration_seconds_count", "lstm");
    let fit_s = last.get("promlearn_watch_fit_duration_seconds_sum", "lstm") / fits;
    let rolling_fits = last.get("promlearn_watch_fit_duration_seconds_count", "zscore");
    let rolling_fit_s =
        last.get("promlearn_watch_fit_duration_seconds_sum", "zscore") / rolling_fits;
    let lstm_models = last.get("promlearn_watch_models", "lstm");
    let zscore_models = last.get("promlearn_watch_models", "zscore");
    assert!(
        watched >= SERIES as f64,
        "the service watched {watched} series; expected {SERIES}"
    );
    let refit_round_s = fit_s * LSTM_SERIES as f64 / promlearn_watch::fit_concurrency() as f64;
    println!(
        "watch inference: {cycle_s:.3} s per cycle over {watched} series (mean of {cycles} cycles \
         once every rolling model was fitted, query + scoring, LSTM fits beside it; the \
         {first_cycles} before: {first_cycle_s:.3} s each); the {zscore_models} rolling models \
         were fitted {:.0} s after the start",
        (fitted_at - started).as_secs_f64()
    );
    println!(
        "watch fit: LSTM(16) {:.0} ms per series ({fits} fits, {lstm_models} models), zscore \
         {:.3} ms per series ({rolling_fits} fits); a full LSTM refit of {LSTM_SERIES} series \
         takes ~{refit_round_s:.0} s of its 600 s fit_every",
        fit_s * 1e3,
        rolling_fit_s * 1e3
    );
    println!(
        "watch scrapes: p99 {:.3} s, p50 {:.3} s of {} scrapes, {SCRAPERS} at a time, to the \
         last byte of a {:.0} MB page of {page_samples} samples (target p99 under 1 s); the \
         loader's parser then reads one in {parse_s:.2} s",
        p99.as_secs_f64(),
        p50.as_secs_f64(),
        latencies.len(),
        page.len() as f64 / 1e6,
    );
    // Per infer_every of wall time: one cycle of each query.
    let per_cycle = |cpu: f64| cpu / measured_s * INFER_EVERY_S;
    println!(
        "watch cpu: {:.2} s per cycle in the watch's process (the bench's feeder included), \
         {:.2} s in VictoriaMetrics (CPU time over the {measured_s:.0} s measured, per \
         {INFER_EVERY_S} s)",
        per_cycle(cpu_after.0 - cpu_at_fit.0),
        per_cycle(cpu_after.1 - cpu_at_fit.1),
    );
    println!(
        "watch: RSS {:.0} -> {:.0} MiB; the bench ran {:.0} s in all",
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0,
        bench_started.elapsed().as_secs_f64()
    );
    for line in ui_lines {
        println!("{line}");
    }
    println!("{restart}");
    println!(
        "watch ratio: {:.2} (target >= 10.00, {SERIES} series)",
        INFER_EVERY_S / cycle_s
    );
    println!(
        "watch memory: {:.1} KiB per series (target <= 8.0)",
        (rss_after.saturating_sub(rss_before)) as f64 / 1024.0 / SERIES as f64,
    );
    drop(vm);
    if std::env::var(ONLY_ENV).is_ok_and(|v| v == "service") {
        return;
    }
    in_its_own_process("knn");
    in_its_own_process("churn");
}
