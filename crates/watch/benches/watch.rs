//! `cargo xtask bench watch`: `promlearn watch` on 1,000 series on this machine.
//!
//! A real VictoriaMetrics (Prometheus's query API; it imports samples at any timestamp, so history
//! ending now can be loaded at once) holds 1,000 CoreDNS-like request-rate series at a 10 s step:
//! an hour of history, then a new point for every series every 10 s while the bench runs. The
//! service runs as users run it, from a TOML configuration: a cheap detector (rolling z-score)
//! inferred every 10 s over all 1,000 series, and LSTM(16) models on the same series refitted on a
//! `fit_every` of 10 minutes, fitting beside the inference as they would in production. The figures
//! come from the service's own `/metrics` (its inference and fit duration histograms), and the
//! ratio is the `infer_every` budget over the measured cycle time.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use std::{
    fmt::Write as _,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use promlearn_testbed::{Ports, ServerProcess};
use promlearn_watch::{Config, Watch};
use tokio::process::Command;

const SERIES: usize = 1000;
const STEP_S: i64 = 10;
const HISTORY_S: i64 = 3600;
const INFER_EVERY_S: f64 = 10.0;
/// Long enough for several inference cycles and a few dozen LSTM fits.
const RUN: Duration = Duration::from_secs(75);

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

/// Prometheus text lines with timestamps, for VictoriaMetrics's `/api/v1/import/prometheus`.
fn import_text(from_ms: i64, to_ms: i64) -> String {
    let mut text = String::new();
    for s in 0..SERIES {
        let mut t = from_ms;
        while t <= to_ms {
            let _ = writeln!(
                text,
                "coredns_like_rate{{instance=\"node-{:03}:9153\",type=\"{}\",zone=\"example.org.\"}} {:.3} {t}",
                s / 2,
                if s % 2 == 0 { "A" } else { "AAAA" },
                rate(s, t)
            );
            t += STEP_S * 1000;
        }
    }
    text
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

/// `name{query="q"}` (the `_sum` or `_count` of a histogram, or a gauge) from a /metrics page.
fn metric(page: &str, name: &str, query: &str) -> f64 {
    let prefix = format!("{name}{{query=\"{query}\"");
    page.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() {
    promlearn_loader::install_crypto_provider();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = Ports::ephemeral().expect("a free port").prometheus;
    let binary =
        std::env::var_os("VICTORIA_METRICS_BIN").unwrap_or_else(|| "victoria-metrics".into());
    let mut command = Command::new(binary);
    command
        .arg(format!(
            "-storageDataPath={}",
            dir.path().join("data").display()
        ))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg("-retentionPeriod=100y")
        // Answer a step's value from the newest sample within two steps, as Prometheus's look-back does.
        .arg("-search.maxStalenessInterval=30s");
    let vm = ServerProcess::spawn("victoria-metrics", command).unwrap_or_else(|e| {
        panic!("starting VictoriaMetrics failed ({e}); `cargo xtask setup` installs it")
    });
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{url}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "VictoriaMetrics did not start: {}",
            vm.last_log_lines(20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let end = now_ms() / 1000 * 1000;
    let (import_http, import_url) = (http.clone(), url.clone());
    let import = move |text: String| {
        let (http, url) = (import_http.clone(), import_url.clone());
        async move {
            let r = http
                .post(format!("{url}/api/v1/import/prometheus"))
                .body(text)
                .send()
                .await
                .expect("import request");
            assert!(r.status().is_success(), "import: {}", r.status());
            let _ = http.get(format!("{url}/internal/force_flush")).send().await;
        }
    };
    import(import_text(end - HISTORY_S * 1000, end)).await;
    println!(
        "watch: {SERIES} series x {} points of history at {STEP_S} s in VictoriaMetrics",
        HISTORY_S / STEP_S + 1
    );

    let config = Config::from_toml(
        &format!(
            r#"
endpoint = "{url}"
listen = "127.0.0.1:0"
max_series = 5000

[[query]]
name = "zscore"
expr = "coredns_like_rate"
step = "{STEP_S}s"
detector = {{ kind = "zscore", window = 30 }}
infer_every = "{INFER_EVERY_S}s"
fit_every = "10m"
fit_window = "30m"

[[query]]
name = "lstm"
expr = "coredns_like_rate"
step = "{STEP_S}s"
detector = {{ kind = "lstm", window = 8, hidden = 16, epochs = 40 }}
infer_every = "{INFER_EVERY_S}s"
fit_every = "10m"
fit_window = "30m"
"#
        ),
        "bench watch.toml",
    )
    .expect("the bench's configuration is valid");
    let rss_before = rss_bytes();
    let watch = Watch::new(config).expect("the service starts");
    let handle = watch.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(watch.serve(async {
        let _ = stopped.await;
    }));

    // New points every step, as scrapes would bring them.
    let feeder = {
        let import = import.clone();
        tokio::spawn(async move {
            let mut last = end;
            loop {
                tokio::time::sleep(Duration::from_secs(STEP_S as u64)).await;
                let now = now_ms() / 1000 * 1000;
                import(import_text(last + STEP_S * 1000, now)).await;
                last = now;
            }
        })
    };
    let started = Instant::now();
    while started.elapsed() < RUN {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let page = handle.render_metrics();
        eprintln!(
            "watch: {:>3.0} s  zscore cycles {}  lstm fits {}",
            started.elapsed().as_secs_f64(),
            metric(
                &page,
                "promlearn_watch_infer_duration_seconds_count",
                "zscore"
            ),
            metric(&page, "promlearn_watch_fit_duration_seconds_count", "lstm"),
        );
    }
    let page = handle.render_metrics();
    let rss_after = rss_bytes();
    feeder.abort();
    let _ = stop.send(());
    service
        .await
        .expect("the service task")
        .expect("the service ran");

    let cycles = metric(
        &page,
        "promlearn_watch_infer_duration_seconds_count",
        "zscore",
    );
    let cycle_s = metric(
        &page,
        "promlearn_watch_infer_duration_seconds_sum",
        "zscore",
    ) / cycles;
    let watched = metric(&page, "promlearn_watch_series", "zscore");
    let fits = metric(&page, "promlearn_watch_fit_duration_seconds_count", "lstm");
    let fit_s = metric(&page, "promlearn_watch_fit_duration_seconds_sum", "lstm") / fits;
    let cheap_fit_s = metric(&page, "promlearn_watch_fit_duration_seconds_sum", "zscore")
        / metric(
            &page,
            "promlearn_watch_fit_duration_seconds_count",
            "zscore",
        );
    let lstm_models = metric(&page, "promlearn_watch_models", "lstm");
    let zscore_models = metric(&page, "promlearn_watch_models", "zscore");
    assert!(
        cycles >= 3.0 && watched >= SERIES as f64,
        "the service ran {cycles} inference cycles over {watched} series; expected several over \
         {SERIES}:\n{page}"
    );
    let refit_round_s = fit_s * SERIES as f64 / promlearn_watch::fit_concurrency() as f64;
    println!(
        "watch inference: {cycle_s:.3} s per cycle over {watched} series (mean of {cycles} cycles, \
         query + scoring, while LSTM fits ran beside it)"
    );
    println!(
        "watch fit: LSTM(16) {:.0} ms per series ({fits} fits), zscore {:.2} ms per series; a full \
         LSTM refit of {SERIES} series takes ~{refit_round_s:.0} s of its 600 s fit_every",
        fit_s * 1e3,
        cheap_fit_s * 1e3
    );
    println!(
        "watch memory: {:.1} KiB per series ({zscore_models} zscore and {lstm_models} LSTM models, \
         RSS {:.0} -> {:.0} MiB)",
        (rss_after.saturating_sub(rss_before)) as f64 / 1024.0 / SERIES as f64,
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0
    );
    println!(
        "watch ratio: {:.2} (target >= 10.00)",
        INFER_EVERY_S / cycle_s
    );
    drop(vm);
}
