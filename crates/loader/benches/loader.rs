//! The loader against the wire: samples per second of a full load into the matrix, next to the
//! floor of fetching the very same `query_range` requests at the same concurrency and throwing
//! the bodies away, on a real Prometheus backfilled by promtool; the loader's peak heap per
//! sample; and, on the same server, Python's prometheus-api-client and tensorflow-io's
//! `from_prometheus` (benches/python_peers.py, run with `$PROMLEARN_PEER_PYTHON`); then raw
//! samples by every path (benches/raw_paths: JSON, remote read SAMPLES and streamed) on the
//! 1.08 M-sample set and a ten-times larger one, ending with the `remote read ratio:` line.
//!
//! Then decode only (benches/decode), on one core: the 1.08 M-sample `query_range` body recorded
//! from that Prometheus, and small recorded answers from `fixtures/loader` (long label sets,
//! `NaN`, `+Inf`), decoded by ours and by serde_json, simd-json and sonic-rs into the same
//! result, checked equal; its `decode ratio:` line is the last.
//!
//! On this machine Prometheus encodes JSON on the same cores our decoder needs, so the floor
//! (bodies discarded) is a ceiling only a decoder costing nothing reaches: the bench measures
//! Prometheus's CPU per sample (from `/proc/<pid>/stat` around the floor's requests) beside the
//! loader's (its process's CPU around its loads) and our decoder's alone (decode only), and
//! prints the ceiling they imply.
//!
//! `cargo xtask bench loader` installs the Python peers, then runs
//! `cargo bench -p promlearn-loader --bench loader` (release build; about a minute).
//! Environment: `LOADER_BENCH_ROUNDS` (default 5) measured rounds per data set; the median is
//! shown. `LOADER_BENCH_ONLY=decode` runs the decode-only part alone (a Prometheus holding only
//! the 1.08 M-sample set, recorded from, then the decoders; no Python peers, seconds to start);
//! `LOADER_BENCH_ONLY=ratio` adds the loader and the floor on that set, the CPU per sample and
//! the `loader ratio:` line.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

#[path = "decode/mod.rs"]
mod decode_only;
#[path = "raw_paths/mod.rs"]
mod raw_paths;
#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    alloc::{GlobalAlloc, Layout, System},
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use promlearn_loader::{Client, RangeQuery};
use promlearn_testbed::peer::{median, run_python_peer};
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

/// The loader's concurrency, and the floor's: the same requests, as many at a time.
const CONCURRENCY: usize = 4;
/// The data set of the `loader ratio:` line and of prometheus-api-client.
const RATIO_SET: &str = "bench_100x10800";
/// The ten-times larger data set of the raw-sample paths (JSON, remote read SAMPLES and streamed).
const RAW_BIG_SET: &str = "bench_1000x10800";
/// The data set tensorflow-io reads: small, as it makes one request per second per series.
const TFIO_SET: &str = "bench_tfio_10x300";

struct DataSet {
    name: &'static str,
    series: usize,
    points: usize,
}

impl DataSet {
    fn samples(&self) -> usize {
        self.series * self.points
    }

    /// tensorflow-io tells series apart by `job` and `instance` only; the others by `series`.
    fn labels(&self, s: usize) -> Vec<(&'static str, String)> {
        if self.name == TFIO_SET {
            vec![("job", "bench".into()), ("instance", format!("i{s}"))]
        } else {
            vec![("series", s.to_string())]
        }
    }
}

/// A gauge's typical values: a few significant digits, some decimals.
fn value(series: usize, i: usize) -> f64 {
    let x = (i * 7919 + series * 104_729) % 1_000_003;
    (x as f64) / 8.0 + series as f64
}

/// Samples per second, short: `5.21 M`, `318 k`, `812`.
fn rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2} M", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.0} k", per_s / 1e3)
    } else {
        format!("{per_s:.0}")
    }
}

/// The floor: the loader's own requests, `concurrency` at a time, bodies counted and dropped.
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
    if let Err(why) = runtime.block_on(run()) {
        eprintln!("error: {why}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let rounds: usize = std::env::var("LOADER_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .max(1);
    let sets = [
        DataSet {
            name: TFIO_SET,
            series: 10,
            points: 300,
        },
        DataSet {
            name: "bench_1x3600",
            series: 1,
            points: 3_600,
        },
        DataSet {
            name: "bench_10x36000",
            series: 10,
            points: 36_000,
        },
        DataSet {
            name: RATIO_SET,
            series: 100,
            points: 10_800,
        },
    ];
    let base = support::recent_base_ms() - 2 * 3_600_000;
    let raw_sets = [
        raw_paths::RawSet {
            name: RATIO_SET,
            series: 100,
            points: 10_800,
        },
        raw_paths::RawSet {
            name: RAW_BIG_SET,
            series: 1_000,
            points: 10_800,
        },
    ];
    let big = DataSet {
        name: RAW_BIG_SET,
        series: 1_000,
        points: 10_800,
    };
    let only = std::env::var("LOADER_BENCH_ONLY").unwrap_or_default();
    let (only_decode, only_ratio) = (only == "decode", only == "ratio");
    let wanted = |name: &str| !(only_decode || only_ratio) || name == RATIO_SET;
    let mut series = Vec::new();
    for set in sets.iter().chain([&big]).filter(|set| wanted(set.name)) {
        for s in 0..set.series {
            let labels = set.labels(s);
            let labels: Vec<(&str, &str)> = labels.iter().map(|(n, v)| (*n, v.as_str())).collect();
            series.push(SeriesData::new(
                set.name,
                &labels,
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
        sets.iter()
            .chain([&big])
            .filter(|set| wanted(set.name))
            .map(DataSet::samples)
            .sum::<usize>(),
        started.elapsed()
    );

    let client = Client::builder(&prometheus.url)
        .concurrency(CONCURRENCY)
        .no_proxy()
        .build()
        .unwrap();
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let ratio_set = sets.iter().find(|s| s.name == RATIO_SET).unwrap();
    let bodies = decode_bodies(&plain, &client, ratio_set, base).await;
    if only_decode {
        drop(prometheus);
        let (decode_ratio, _) = decode_only::run(&bodies, rounds);
        println!("{decode_ratio}");
        return Ok(());
    }
    let prometheus_pid = prometheus
        .pid()
        .expect("the bench's Prometheus is a process");
    println!(
        "{:<18} {:>9} {:>6} {:>11} {:>11} {:>6} {:>10}",
        "data set", "samples", "chunks", "floor/s", "loader/s", "ratio", "peak B/smp"
    );
    let mut loader_rates = Vec::new();
    let mut cpu_rates = Vec::new();
    for set in sets.iter().filter(|set| wanted(set.name)) {
        let query = RangeQuery::new(
            set.name,
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
        // Warm Prometheus's caches and both connection pools.
        floor(&plain, &urls, CONCURRENCY).await;
        client.query_range(&query).await.unwrap();

        let (mut floors, mut ours, mut peaks) = (vec![], vec![], vec![]);
        // CPU seconds: Prometheus's during the floor's requests, ours and Prometheus's during
        // the loader's.
        let (mut prom_floor, mut prom_loader, mut ours_cpu) = (0.0, 0.0, 0.0);
        for round in 0..rounds {
            // Alternating which goes first, so that neither always follows the other's work.
            for floor_now in [round % 2 == 0, round % 2 == 1] {
                if floor_now {
                    let cpu = process_cpu(prometheus_pid);
                    let t = Instant::now();
                    let bytes = floor(&plain, &urls, CONCURRENCY).await;
                    floors.push(samples / t.elapsed().as_secs_f64());
                    prom_floor += process_cpu(prometheus_pid) - cpu;
                    assert!(bytes > set.samples() * 10);
                } else {
                    let baseline = LIVE.load(Ordering::Relaxed);
                    PEAK.store(baseline, Ordering::Relaxed);
                    let (cpu, own) = (process_cpu(prometheus_pid), own_cpu());
                    let t = Instant::now();
                    let matrix = client.query_range(&query).await.unwrap();
                    ours.push(samples / t.elapsed().as_secs_f64());
                    ours_cpu += own_cpu() - own;
                    prom_loader += process_cpu(prometheus_pid) - cpu;
                    let peak = PEAK.load(Ordering::Relaxed) - baseline;
                    peaks.push(peak as f64 / samples);
                    assert_eq!(matrix.sample_count(), set.samples());
                    assert_eq!(matrix.n_series(), set.series);
                }
            }
        }
        let (floor, ours, peak) = (median(floors), median(ours), median(peaks));
        loader_rates.push((set.name, ours, floor));
        let per_sample = |cpu: f64| cpu / (samples * rounds as f64);
        cpu_rates.push((
            set.name,
            per_sample(prom_floor),
            per_sample(prom_loader),
            per_sample(ours_cpu),
        ));
        println!(
            "{:<18} {:>9} {:>6} {:>11} {:>11} {:>6.2} {:>10.1}",
            set.name,
            set.samples(),
            urls.len(),
            rate(floor),
            rate(ours),
            ours / floor,
            peak
        );
    }
    println!(
        "(medians of {rounds} rounds, floor and loader alternating; floor: the loader's own \
         requests, {CONCURRENCY} at a time as the loader fetches, bodies discarded; peak: the \
         loader's heap high-water mark / samples)"
    );
    let loader_on = |name: &str| {
        loader_rates
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(_, ours, floor)| (ours, floor))
            .expect("a measured data set")
    };

    if only_ratio {
        drop(prometheus);
        let (decode_ratio, decode_cpu) = decode_only::run(&bodies, rounds);
        let (ours, floor) = loader_on(RATIO_SET);
        closing_lines(&cpu_rates, decode_cpu, ours / floor);
        println!("{decode_ratio}");
        return Ok(());
    }
    let remote_read_ratio = raw_paths::run(&client, &raw_sets, base, rounds).await;
    // Decode only while Prometheus idles: one core, no network.
    let (decode_ratio, decode_cpu) = decode_only::run(&bodies, rounds);

    let tfio_set = sets.iter().find(|s| s.name == TFIO_SET).unwrap();
    let peers = python_peers(&serde_json::json!({
        "url": prometheus.url,
        "pac": {
            "query": RATIO_SET,
            "start": base / 1000,
            "end": base / 1000 + ratio_set.points as i64 - 1,
            "series": ratio_set.series,
            "points": ratio_set.points,
            "rounds": 3,
        },
        "tfio": {
            "query": TFIO_SET,
            "offset_ms": base + tfio_set.points as i64 * 1000,
            "length": tfio_set.points,
            "series": tfio_set.series,
        },
    }));
    drop(prometheus);
    let peers = peers?;
    let (ours, floor) = loader_on(RATIO_SET);
    let pac = peers["pac_samples"].as_f64().unwrap_or(0.0)
        / peers["pac_seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "prometheus-api-client {} on {RATIO_SET} (custom_query_range, values to float64 arrays): \
         {}/s; loader {}/s: {:.1}x",
        peers["pac_version"].as_str().unwrap_or("?"),
        rate(pac),
        rate(ours),
        ours / pac
    );
    let (tfio_ours, _) = loader_on(TFIO_SET);
    let tfio = peers["tfio_samples"].as_f64().unwrap_or(0.0)
        / peers["tfio_seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "tensorflow-io {} from_prometheus on {TFIO_SET}: {}/s; loader {}/s: {:.0}x",
        peers["tfio_version"].as_str().unwrap_or("?"),
        rate(tfio),
        rate(tfio_ours),
        tfio_ours / tfio
    );
    closing_lines(&cpu_rates, decode_cpu, ours / floor);
    println!("{remote_read_ratio}");
    println!("{decode_ratio}");
    Ok(())
}

/// The CPU per sample of each side on the ratio set, the ceiling they imply, and the
/// `loader ratio:` line.
fn closing_lines(cpu_rates: &[(&str, f64, f64, f64)], decode_cpu: f64, ratio: f64) {
    let &(_, prom_encode, prom_serving, loader_cpu) = cpu_rates
        .iter()
        .find(|c| c.0 == RATIO_SET)
        .expect("the ratio set was measured");
    println!(
        "CPU per sample on {RATIO_SET}, this run: Prometheus encoding JSON {:.3} us (during the \
         floor; {:.3} us while the loader reads), our decoder alone {:.3} us (decode only, one \
         core), the whole loader {:.3} us (HTTP, decode, matrix)",
        prom_encode * 1e6,
        prom_serving * 1e6,
        decode_cpu * 1e6,
        loader_cpu * 1e6
    );
    println!(
        "why 1.00 is the ceiling: on these {} cores Prometheus encodes the JSON the loader \
         decodes, so while both are CPU-bound the loader can reach at most encode / (encode + \
         loader) = {:.2} of the floor, whose client spends nothing; only a loader costing no \
         CPU reaches 1.00",
        std::thread::available_parallelism().map_or(0, usize::from),
        prom_encode / (prom_encode + loader_cpu)
    );
    println!("loader ratio: {ratio:.2} (target >= 1.00, floor at the same concurrency)");
}

/// The bodies the decode-only part decodes: the ratio set's whole `query_range` answer as
/// Prometheus sends it (one request, every series), the same divided by 3 (full-precision
/// values), and small recorded answers with what those lack (long label sets, escaped values,
/// `NaN`, `+Inf`, `1e-07`).
async fn decode_bodies(
    http: &reqwest::Client,
    client: &Client,
    set: &DataSet,
    base: i64,
) -> Vec<decode_only::Body> {
    let mut bodies = Vec::new();
    // The set as stored (gauges of a few decimals), and divided by 3: full-precision values
    // (`4115.041666666667`), as rates and ratios come.
    for (query, name) in [
        (set.name.to_owned(), format!("{} (1 request)", set.name)),
        (format!("{} / 3", set.name), format!("{} / 3", set.name)),
    ] {
        let whole = RangeQuery::new(
            &query,
            base,
            base + (set.points as i64 - 1) * 1000,
            Duration::from_secs(1),
        )
        .unwrap();
        let response = http.get(client.range_url(&whole)).send().await.unwrap();
        assert!(response.status().is_success());
        bodies.push(decode_only::Body {
            name,
            bytes: response.bytes().await.unwrap().to_vec(),
        });
    }
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/loader");
    for name in [
        "range_many_series.200.json",
        "range_special_values.200.json",
    ] {
        bodies.push(decode_only::Body {
            name: name.trim_end_matches(".200.json").to_owned(),
            bytes: std::fs::read(fixtures.join(name)).unwrap(),
        });
    }
    bodies
}

/// A process's CPU time (user + system, all its threads, in seconds) from `/proc/<pid>/stat`.
fn process_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces): state is 3rd, utime 14th, stime 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

/// This process's CPU time (user + system, all threads), in seconds.
fn own_cpu() -> f64 {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// benches/python_peers.py, run by the testbed's peer runner: its one JSON line, or why the
/// peers could not be measured.
fn python_peers(config: &serde_json::Value) -> Result<serde_json::Value, String> {
    run_python_peer(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_peers.py"),
        config,
        "the Python peers (prometheus-api-client, tensorflow-io)",
        "`cargo xtask bench loader` installs them into the tool cache; or set \
         PROMLEARN_PEER_PYTHON to a Python that has them",
    )
}
