//! The churn part of `cargo xtask bench watch`: 5,000 live series at a 10 s step in a real
//! VictoriaMetrics, a fifth of them replaced by new ones every minute (as pods and instances
//! come and go), watched with `max_series = 5500` and `stale_after = "1m"` for
//! `PROMLEARN_BENCH_CHURN_MINUTES` minutes (default 30). Every minute it reads the process's
//! resident memory and the heap the allocator has handed out (glibc's `mallinfo2`, what the
//! program holds, whatever the allocator keeps beside it); then the churn stops, every series
//! goes stale, and it reads both again, and once more after `malloc_trim`, so that held state
//! and allocator retention are told apart. The "series dropped" log lines are counted by a
//! `tracing` layer and divided by the series the watch counts as dropped.
//!
//! It prints `churn: RSS plateau N MB at 5000 live series, series_limit L, log lines per
//! dropped series R` (the plateau: the highest RSS over the second half of the churn), and a
//! line of detail.

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use promlearn_testbed::victoria::{VictoriaConfig, VictoriaMetrics};
use promlearn_watch::{Config, Handle, Watch};
use tracing_subscriber::layer::SubscriberExt as _;

use super::{now_ms, rss_bytes};

const LIVE: usize = 5000;
const ROTATED_PER_MINUTE: usize = 1000;
const STEP_S: i64 = 10;

/// Counts the events whose message starts with "series dropped".
struct DropLines(Arc<AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for DropLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}").starts_with("series dropped");
                }
            }
        }
        let mut message = Message(false);
        event.record(&mut message);
        if message.0 {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The bytes the program holds from the allocator now (glibc's arena and mmapped chunks).
pub(super) fn heap_in_use() -> u64 {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as u64
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// One sample at `t_ms` for each series of `ids`, as Prometheus text lines.
fn samples(ids: &[usize], t_ms: i64) -> String {
    let mut text = String::with_capacity(ids.len() * 64);
    for &id in ids {
        let value = 20.0 + (id % 50) as f64 + ((t_ms / 1000 + id as i64) % 7) as f64;
        let _ = writeln!(
            text,
            "churn_like_rate{{pod=\"pod-{id:07}\",zone=\"example.org.\"}} {value} {t_ms}"
        );
    }
    text
}

async fn import(http: &reqwest::Client, url: &str, body: String) {
    let r = http
        .post(format!("{url}/api/v1/import/prometheus"))
        .body(body)
        .send()
        .await
        .expect("import request");
    assert!(r.status().is_success(), "import: {}", r.status());
    let _ = http.get(format!("{url}/internal/force_flush")).send().await;
}

/// The value of the page's sample line that starts with `prefix`.
fn value(page: &str, prefix: &str) -> f64 {
    page.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The churn bench, `minutes` long; returns its two lines.
pub async fn run(minutes: f64) -> String {
    let drop_lines = Arc::new(AtomicU64::new(0));
    let subscriber = tracing_subscriber::registry().with(DropLines(drop_lines.clone()));
    tracing::subscriber::set_global_default(subscriber).expect("the bench's only subscriber");
    let vm = VictoriaMetrics::start(VictoriaConfig {
        args: vec![
            "-search.latencyOffset=0s".into(),
            "-search.disableCache".into(),
        ],
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("starting VictoriaMetrics failed ({e})"));
    let url = vm.url();
    let http = reqwest::Client::new();
    let mut live: Vec<usize> = (0..LIVE).collect();
    let start = now_ms() / 1000 * 1000;
    for t in (start - 300_000..=start).step_by(STEP_S as usize * 1000) {
        import(&http, &url, samples(&live, t)).await;
    }
    let config = Config::from_toml(
        &format!(
            r#"
endpoint = "{url}"
listen = "127.0.0.1:0"
max_series = 5500
stale_after = "1m"

[[query]]
name = "churn"
expr = "churn_like_rate"
step = "{STEP_S}s"
detector = {{ kind = "zscore", window = 20 }}
infer_every = "{STEP_S}s"
fit_every = "10m"
fit_window = "10m"
"#
        ),
        "bench churn.toml",
    )
    .expect("the churn bench's configuration is valid");
    let watch = Watch::new(config).expect("the service starts");
    let handle: Handle = watch.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(watch.serve(async {
        let _ = stopped.await;
    }));
    let page = |handle: &Handle| handle.render_metrics();
    // The first series tracked and fitted: the start's memory.
    let settle = Instant::now();
    while value(&page(&handle), "promlearn_watch_models{query=\"churn\"}") < LIVE as f64 {
        assert!(
            settle.elapsed() < Duration::from_secs(300),
            "no models in 5 minutes"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (rss_start, heap_start) = (rss_bytes(), heap_in_use());

    let churn = Duration::from_secs_f64(minutes * 60.0);
    let started = Instant::now();
    let mut next_id = LIVE;
    let mut rotations = 0;
    let mut rss: Vec<(f64, u64, u64)> = Vec::new();
    let mut last_rotation = Instant::now();
    let mut last_sample = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs(STEP_S as u64));
    while started.elapsed() < churn {
        ticks.tick().await;
        if last_rotation.elapsed() >= Duration::from_secs(60) {
            last_rotation = Instant::now();
            live.drain(..ROTATED_PER_MINUTE);
            live.extend(next_id..next_id + ROTATED_PER_MINUTE);
            next_id += ROTATED_PER_MINUTE;
            rotations += 1;
        }
        import(&http, &url, samples(&live, now_ms() / 1000 * 1000)).await;
        if last_sample.elapsed() >= Duration::from_secs(60) {
            last_sample = Instant::now();
            rss.push((
                started.elapsed().as_secs_f64() / 60.0,
                rss_bytes(),
                heap_in_use(),
            ));
        }
    }
    let (rss_churned, heap_churned) = (rss_bytes(), heap_in_use());

    // The churn stops: every series stops, and goes.
    let quiet = Instant::now();
    while value(&page(&handle), "promlearn_watch_series{query=\"churn\"}") > 0.0 {
        assert!(
            quiet.elapsed() < Duration::from_secs(600),
            "series still tracked 10 minutes after the last sample"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    // Two more cycles, so that the forgotten series' memory is let go too.
    tokio::time::sleep(Duration::from_secs(3 * STEP_S as u64)).await;
    let (rss_stale, heap_stale) = (rss_bytes(), heap_in_use());
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe { libc::malloc_trim(0) };
    let rss_trimmed = rss_bytes();
    let last = page(&handle);
    let _ = stop.send(());
    let _ = service.await;

    let second_half: Vec<&(f64, u64, u64)> =
        rss.iter().filter(|(m, _, _)| *m >= minutes / 2.0).collect();
    let plateau = second_half
        .iter()
        .map(|(_, r, _)| *r)
        .max()
        .unwrap_or(rss_churned);
    let grew = match (second_half.first(), second_half.last()) {
        (Some(a), Some(b)) => mb(b.1) - mb(a.1),
        _ => 0.0,
    };
    let limit = value(
        &last,
        "promlearn_watch_errors_total{query=\"churn\",kind=\"series_limit\"}",
    );
    let dropped = value(
        &last,
        "promlearn_watch_series_dropped_total{query=\"churn\",reason=\"stale\"}",
    ) + value(
        &last,
        "promlearn_watch_series_dropped_total{query=\"churn\",reason=\"stopped_at_max_series\"}",
    );
    let lines = drop_lines.load(Ordering::Relaxed) as f64;
    let by_minute: Vec<String> = rss
        .iter()
        .filter(|(m, _, _)| (*m as usize).is_multiple_of(5) || *m >= minutes - 1.0)
        .map(|(m, r, h)| format!("{m:.0} min {:.0}/{:.0}", mb(*r), mb(*h)))
        .collect();
    format!(
        "churn: RSS plateau {:.0} MB at {LIVE} live series, series_limit {limit}, log lines per \
         dropped series {:.1}\n\
         churn: {minutes:.0} min, {rotations} rotations of {ROTATED_PER_MINUTE} series, {} \
         series in all, {dropped} dropped ({lines} log lines); RSS/heap in use (MB): start \
         {:.0}/{:.0}, {}, end of churn {:.0}/{:.0}, after every series went stale {:.0}/{:.0}, \
         after malloc_trim RSS {:.0}; RSS over the second half grew {grew:+.1} MB",
        mb(plateau),
        if dropped > 0.0 { lines / dropped } else { 0.0 },
        next_id,
        mb(rss_start),
        mb(heap_start),
        by_minute.join(", "),
        mb(rss_churned),
        mb(heap_churned),
        mb(rss_stale),
        mb(heap_stale),
        mb(rss_trimmed),
    )
}
