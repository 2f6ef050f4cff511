//! Raw samples by each path on the same promtool-backfilled data: the JSON API (`query_range` at
//! the samples' own 1 s step, and `selector[1h]` windows as `Client::query_raw` asks), remote
//! read `SAMPLES` and remote read `STREAMED_XOR_CHUNKS`. Samples per second and the heap's
//! high-water mark per sample, medians of alternating rounds; the ratio line compares streamed
//! remote read with the faster of the two JSON loads, on each data set, and reports the lower.

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::{sync::atomic::Ordering, time::Duration, time::Instant};

use promlearn_loader::{Client, RangeQuery, Via};

use super::{LIVE, PEAK, median, rate};

/// A data set of `series` x `points` samples at 1 s from `base`.
pub struct RawSet {
    pub name: &'static str,
    pub series: usize,
    pub points: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Path {
    JsonRange,
    JsonRaw,
    Samples,
    Streamed,
}

const PATHS: [Path; 4] = [
    Path::JsonRange,
    Path::JsonRaw,
    Path::Samples,
    Path::Streamed,
];

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::JsonRange => "JSON query_range",
            Path::JsonRaw => "JSON query_raw",
            Path::Samples => "remote read SAMPLES",
            Path::Streamed => "remote read streamed",
        }
    }
}

/// One load by `path`; the samples it returned.
async fn load(client: &Client, path: Path, set: &RawSet, base: i64) -> usize {
    let hi = base + (set.points as i64 - 1) * 1000;
    let via = match path {
        Path::JsonRange => {
            let q = RangeQuery::new(set.name, base, hi, Duration::from_secs(1)).unwrap();
            return client.query_range(&q).await.unwrap().sample_count();
        }
        Path::JsonRaw => Via::Json,
        Path::Samples => Via::RemoteReadSamples,
        Path::Streamed => Via::RemoteRead,
    };
    let loaded = client.load_raw_via(set.name, base, hi, via).await.unwrap();
    assert_eq!(loaded.via, via);
    assert_eq!(loaded.data.series.len(), set.series);
    loaded.data.sample_count()
}

/// Measures every path on every set; prints a table, returns the `remote read ratio:` line.
pub async fn run(client: &Client, sets: &[RawSet], base: i64, rounds: usize) -> String {
    println!();
    println!(
        "{:<18} {:>9} {:<22} {:>11} {:>10}",
        "raw samples", "samples", "path", "samples/s", "peak B/smp"
    );
    let mut ratios = Vec::new();
    for set in sets {
        let samples = set.series * set.points;
        // Warm the server's caches and the connection pool on every path.
        for path in PATHS {
            assert_eq!(
                load(client, path, set, base).await,
                samples,
                "{}",
                path.label()
            );
        }
        // Fewer rounds for the big set: each of its loads takes seconds.
        let rounds = if samples > 2_000_000 {
            rounds.min(3)
        } else {
            rounds
        };
        let mut rates = vec![Vec::new(); PATHS.len()];
        let mut peaks = vec![Vec::new(); PATHS.len()];
        for round in 0..rounds {
            for k in 0..PATHS.len() {
                // Each round starts with another path, so that none always follows the same one.
                let p = (k + round) % PATHS.len();
                let baseline = LIVE.load(Ordering::Relaxed);
                PEAK.store(baseline, Ordering::Relaxed);
                let t = Instant::now();
                let got = load(client, PATHS[p], set, base).await;
                rates[p].push(samples as f64 / t.elapsed().as_secs_f64());
                peaks[p].push((PEAK.load(Ordering::Relaxed) - baseline) as f64 / samples as f64);
                assert_eq!(got, samples, "{}", PATHS[p].label());
            }
        }
        let rates: Vec<f64> = rates.into_iter().map(median).collect();
        let peaks: Vec<f64> = peaks.into_iter().map(median).collect();
        for (p, path) in PATHS.iter().enumerate() {
            println!(
                "{:<18} {:>9} {:<22} {:>11} {:>10.1}",
                set.name,
                samples,
                path.label(),
                rate(rates[p]),
                peaks[p]
            );
        }
        let json = rates[0].max(rates[1]);
        let ratio = rates[3] / json;
        println!(
            "{:<18} streamed remote read / faster JSON load: {ratio:.2} (SAMPLES: {:.2})",
            set.name,
            rates[2] / json
        );
        ratios.push(ratio);
    }
    println!(
        "(medians of {rounds} rounds, {} for sets over 2 M samples, paths in rotating order; \
         peak: the heap's high-water mark during the load / samples, the result itself \
         included: 16 B per sample of timestamps and values; JSON query_raw and SAMPLES ask \
         1-hour windows, 4 at a time)",
        rounds.min(3)
    );
    let lowest = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    format!("remote read ratio: {lowest:.2} (target >= 3.00)")
}
