//! The knn part of `cargo xtask bench watch`: the recommended detector over 100,000 series,
//! each model fitted on as many points as a week at 5-minute steps holds, in a process of its
//! own (so that neither part's memory shows in the other's).
//!
//! A real VictoriaMetrics holds 100,000 request-rate series (the rolling part's, with their
//! daily rhythm compressed to half an hour) at a 10 s step: [`HISTORY_POINTS`] points of history
//! each, then a new point for every series every 10 s while the part runs. The service runs one
//! `knn` query over all of them (inferred every 30 s, fitted once on the whole history); its
//! figures are measured as the rolling part's are: once every model is fitted, the cycle time is
//! the mean of the next inference cycles (the service's own histogram), and the ratio is the
//! `infer_every` budget over it. Memory is the process's resident memory before the service
//! starts and after those cycles, once the allocator has given back what it keeps free
//! (`malloc_trim`, as the service does after forgetting series): the fit round's one read of
//! every series' whole history is gone by then and is no series' cost. The heap in use
//! (glibc's `mallinfo2`) is printed beside it.
//!
//! It prints `knn ratio: X (target >= 10.00, 100000 series)` and `knn memory: N KiB per series
//! (target <= 16.0)`, and a line of detail. `PROMLEARN_BENCH_WATCH=knn` runs only this part;
//! `PROMLEARN_BENCH_KNN_SERIES` watches fewer series (a quick look; the target is 100,000).

use std::time::{Duration, Instant};

use promlearn_testbed::victoria::{VictoriaConfig, VictoriaMetrics};
use promlearn_watch::{Config, Watch};

use super::{Figures, STEP_S, Shape, churn::heap_in_use, import, now_ms, rss_bytes};

const SERIES: usize = 100_000;
/// Fewer series, for a quick look.
pub const SERIES_ENV: &str = "PROMLEARN_BENCH_KNN_SERIES";
/// A week at 5-minute steps: what a knn model is sized for.
const HISTORY_POINTS: i64 = 2016;
const INFER_EVERY_S: f64 = 30.0;
/// Series per import request: the history is most of the part's time.
const IMPORT_BATCH: usize = 2000;
/// Inference cycles measured once every model is fitted.
const MEASURED_CYCLES: f64 = 4.0;
/// How long the models may take to be fitted before the part gives up.
const FIT_TIMEOUT: Duration = Duration::from_secs(1800);

/// This part's `series` series, in requests of [`IMPORT_BATCH`].
fn shape(series: usize) -> Shape {
    Shape {
        name: "knn_like_rate",
        extra: "",
        count: series,
        batch: IMPORT_BATCH,
    }
}

/// The knn part; returns its lines.
pub async fn run() -> String {
    let series = std::env::var(SERIES_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SERIES);
    let vm = VictoriaMetrics::start(VictoriaConfig {
        args: vec![
            "-search.maxStalenessInterval=30s".into(),
            "-search.maxUniqueTimeseries=1000000".into(),
            // The fit round reads every series' whole history in one query.
            "-search.maxQueryDuration=10m".into(),
            "-search.maxSamplesPerQuery=2000000000".into(),
        ],
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("starting VictoriaMetrics failed ({e})"));
    let url = vm.url();
    let http = reqwest::Client::new();
    let end = now_ms() / 1000 * 1000;
    let history_ms = (HISTORY_POINTS - 1) * STEP_S * 1000;
    let loading = Instant::now();
    import(&http, &url, shape(series), end - history_ms, end).await;
    eprintln!(
        "knn: {series} series x {HISTORY_POINTS} points loaded into VictoriaMetrics in {:.0} s",
        loading.elapsed().as_secs_f64()
    );
    let config = Config::from_toml(
        &format!(
            r#"
endpoint = "{url}"
listen = "127.0.0.1:0"
max_series = 200000

[[query]]
name = "knn"
expr = "knn_like_rate"
step = "{STEP_S}s"
detector = {{ kind = "knn" }}
infer_every = "{INFER_EVERY_S}s"
fit_every = "24h"
fit_window = "{}s"
"#,
            HISTORY_POINTS * STEP_S
        ),
        "bench knn.toml",
    )
    .expect("the knn part's configuration is valid");
    let rss_before = rss_bytes();
    let heap_before = heap_in_use();
    let watch = Watch::new(config).expect("the service starts");
    let handle = watch.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(watch.serve(async {
        let _ = stopped.await;
    }));
    let feeder = {
        let (http, url) = (http.clone(), url.clone());
        tokio::spawn(async move {
            let mut last = end;
            loop {
                tokio::time::sleep(Duration::from_secs(STEP_S as u64)).await;
                let now = now_ms() / 1000 * 1000;
                import(&http, &url, shape(series), last + STEP_S * 1000, now).await;
                last = now;
            }
        })
    };
    let started = Instant::now();
    let mut at_fit: Option<(Instant, Figures)> = None;
    let last = loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let figures = Figures::now(&handle);
        let cycles = figures.get("promlearn_watch_infer_duration_seconds_count", "knn");
        let models = figures.get("promlearn_watch_models", "knn");
        eprintln!(
            "knn: {:>4.0} s  cycles {cycles}, models {models}",
            started.elapsed().as_secs_f64()
        );
        match &at_fit {
            None if models >= series as f64 => at_fit = Some((Instant::now(), figures)),
            None => assert!(
                started.elapsed() < FIT_TIMEOUT,
                "only {models} of {series} knn models after {FIT_TIMEOUT:?}"
            ),
            Some((_, fitted)) => {
                let counted = fitted.get("promlearn_watch_infer_duration_seconds_count", "knn");
                if cycles - counted >= MEASURED_CYCLES {
                    break figures;
                }
            }
        }
    };
    let (fitted_at, fitted) = at_fit.expect("the loop ends after the fit");
    let (rss_held, heap_held) = (rss_bytes(), heap_in_use());
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe { libc::malloc_trim(0) };
    let rss_after = rss_bytes();
    feeder.abort();
    let _ = stop.send(());
    service
        .await
        .expect("the service task")
        .expect("the service ran");
    drop(vm);

    let delta = |name: &str| last.get(name, "knn") - fitted.get(name, "knn");
    let cycles = delta("promlearn_watch_infer_duration_seconds_count");
    let cycle_s = delta("promlearn_watch_infer_duration_seconds_sum") / cycles;
    let fits = last.get("promlearn_watch_fit_duration_seconds_count", "knn");
    let fit_s = last.get("promlearn_watch_fit_duration_seconds_sum", "knn") / fits;
    let watched = last.get("promlearn_watch_series", "knn");
    assert!(
        watched >= series as f64,
        "the service watched {watched} knn series; expected {series}"
    );
    let per_series =
        |after: u64, before: u64| after.saturating_sub(before) as f64 / 1024.0 / series as f64;
    format!(
        "knn: {cycle_s:.3} s per cycle over {watched} series (mean of {cycles} cycles once every \
         model was fitted, {:.0} s after the start; fits {:.1} ms per series, {fits} fits on \
         {HISTORY_POINTS} points each); RSS {:.0} -> {:.0} MiB ({:.0} MiB before malloc_trim), \
         heap in use {:.1} KiB per series\n\
         knn ratio: {:.2} (target >= 10.00, {series} series)\n\
         knn memory: {:.1} KiB per series (target <= 16.0)",
        (fitted_at - started).as_secs_f64(),
        fit_s * 1e3,
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0,
        rss_held as f64 / 1048576.0,
        per_series(heap_held, heap_before),
        INFER_EVERY_S / cycle_s,
        per_series(rss_after, rss_before),
    )
}
