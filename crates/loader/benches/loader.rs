//! The loader against the wire: samples per second of a full load into the matrix, next to the
//! floor of fetching the very same `query_range` requests and throwing the bodies away, on a real
//! Prometheus backfilled by promtool; and the loader's peak heap per sample.
//!
//! `cargo bench -p promlearn-loader --bench loader` (release build; takes about a minute).
//! Environment: `LOADER_BENCH_ROUNDS` (default 5) measured rounds per data set; the median is shown.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use promlearn_loader::{Client, RangeQuery};
use support::{BackfilledPrometheus, SeriesData};

/// Counts live heap bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as if old and new were both alive for a moment, as a copying realloc has them.
            grew(new_size);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct DataSet {
    name: String,
    series: usize,
    points: usize,
}

impl DataSet {
    fn samples(&self) -> usize {
        self.series * self.points
    }
}

/// A gauge's typical values: a few significant digits, some decimals.
fn value(series: usize, i: usize) -> f64 {
    let x = (i * 7919 + series * 104_729) % 1_000_003;
    (x as f64) / 8.0 + series as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn floor(http: &reqwest::Client, urls: &[reqwest::Url], concurrency: usize) -> usize {
    let bytes = futures_util::stream::iter(urls.iter().cloned())
        .map(|url| async move {
            let mut response = http.get(url).send().await.expect("floor request");
            assert!(response.status().is_success());
            let mut n = 0;
            while let Some(chunk) = response.chunk().await.expect("floor body") {
                n += chunk.len();
            }
            n
        })
        .buffer_unordered(concurrency);
    bytes.fold(0, |a, b| async move { a + b }).await
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let rounds: usize = std::env::var("LOADER_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .max(1);
    let sets = [
        DataSet {
            name: "bench_1x3600".into(),
            series: 1,
            points: 3_600,
        },
        DataSet {
            name: "bench_10x36000".into(),
            series: 10,
            points: 36_000,
        },
        DataSet {
            name: "bench_100x10800".into(),
            series: 100,
            points: 10_800,
        },
    ];
    let base = support::recent_base_ms() - 2 * 3_600_000;
    let mut series = Vec::new();
    for set in &sets {
        for s in 0..set.series {
            let label = s.to_string();
            series.push(SeriesData::new(
                &set.name,
                &[("series", label.as_str())],
                (0..set.points)
                    .map(|i| (base + i as i64 * 1000, value(s, i)))
                    .collect(),
            ));
        }
    }
    let started = Instant::now();
    let prometheus = BackfilledPrometheus::start(&series).await;
    drop(series);
    println!(
        "Prometheus {} backfilled by promtool with {} samples in {:.1?}",
        prometheus.url,
        sets.iter().map(DataSet::samples).sum::<usize>(),
        started.elapsed()
    );

    let client = Client::builder(&prometheus.url).no_proxy().build().unwrap();
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let concurrency = 4;
    let mut last_ratio = 0.0;
    println!(
        "{:<16} {:>9} {:>7} {:>14} {:>14} {:>14} {:>7} {:>7} {:>11}",
        "data set",
        "samples",
        "chunks",
        "floor seq/s",
        "floor conc/s",
        "loader/s",
        "ratio",
        "vs conc",
        "peak B/smp"
    );
    for set in &sets {
        let query = RangeQuery::new(
            set.name.clone(),
            base,
            base + (set.points as i64 - 1) * 1000,
            Duration::from_secs(1),
        )
        .unwrap();
        let urls: Vec<reqwest::Url> = client
            .plan(&query)
            .iter()
            .map(|c| client.range_url(c))
            .collect();
        let samples = set.samples() as f64;
        // Warm Prometheus's caches and the connection pools.
        floor(&plain, &urls, 1).await;
        client.query_range(&query).await.unwrap();

        let (mut seq, mut conc, mut ours, mut peaks) = (vec![], vec![], vec![], vec![]);
        for _ in 0..rounds {
            let t = Instant::now();
            let bytes = floor(&plain, &urls, 1).await;
            seq.push(samples / t.elapsed().as_secs_f64());
            assert!(bytes > set.samples() * 10);

            let t = Instant::now();
            floor(&plain, &urls, concurrency).await;
            conc.push(samples / t.elapsed().as_secs_f64());

            let baseline = LIVE.load(Ordering::Relaxed);
            PEAK.store(baseline, Ordering::Relaxed);
            let t = Instant::now();
            let matrix = client.query_range(&query).await.unwrap();
            ours.push(samples / t.elapsed().as_secs_f64());
            let peak = PEAK.load(Ordering::Relaxed) - baseline;
            peaks.push(peak as f64 / samples);
            assert_eq!(matrix.sample_count(), set.samples());
            assert_eq!(matrix.n_series(), set.series);
            drop(matrix);
        }
        let (seq, conc, ours, peak) = (median(seq), median(conc), median(ours), median(peaks));
        last_ratio = ours / seq;
        println!(
            "{:<16} {:>9} {:>7} {:>14.0} {:>14.0} {:>14.0} {:>7.2} {:>7.2} {:>11.1}",
            set.name,
            set.samples(),
            urls.len(),
            seq,
            conc,
            ours,
            ours / seq,
            ours / conc,
            peak
        );
    }
    println!(
        "(medians of {rounds} rounds; floor seq: the loader's requests one after another, bodies \
         discarded, as curl would; floor conc: the same {concurrency} at a time, as the loader \
         fetches; peak: the loader's heap high-water mark during the load / samples)"
    );
    println!("loader ratio: {last_ratio:.2} (target >= 1.00)");
}
