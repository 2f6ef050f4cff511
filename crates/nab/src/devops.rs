//! A DevOps scenario corpus in NAB's format, generated: twelve 5-minute series of five weeks
//! (request rates, p99 latencies, error ratios, CPU, memory and queue depth, each with a daily
//! and a weekly rhythm), with labelled incidents and unlabelled harmless events, so a detector
//! tuned on NAB can be checked on the metrics a watch of Prometheus sees.
//!
//! Deterministic: each file has its own seeded generator ([`SplitMix`], written here so the
//! bytes never move with a crate's version), and every value is written with a fixed number of
//! decimals. `fixtures/devops` holds what [`write_corpus`] writes, so NAB's own Python scorer can
//! score it like NAB; a test checks that regenerating gives the same bytes.
//!
//! Incidents (labelled, one NAB window each): level shifts, spikes, outages (drops), slow leaks,
//! stuck exporters (the value stops changing for hours), a weekday's daytime peak that never
//! comes, a nightly job that does not run. Harmless events (not labelled): 1-3-point bursts, a
//! deploy restart every Wednesday at 10:00, a weekly job on Sundays, nightly jobs and cache
//! evictions, and weekday peaks 6-23 % above the same day of the week before.
//!
//! Windows follow NAB's labeller: each is 10 % of the file's rows divided by its number of
//! anomalies, centred on the anomaly's first row (cut at the file's ends). The first incident
//! of every file lies in its third week or later, after NAB's probation (750 rows here) and a
//! week of history.

use std::{fmt::Write as _, path::Path};

use crate::{Corpus, DataFile, Error, Profile, Window, time::format_timestamp};

/// Points a day at 5-minute steps.
const DAY: usize = 288;
/// Points an hour.
const HOUR: usize = 12;
/// Days in every file: five weeks, so a detector with a week of history has seen each weekday.
const DAYS: usize = 35;
/// 2026-01-05 00:00:00 UTC, a Monday: day `d` of a file is weekday `d % 7` (0 = Monday).
const START_MS: i64 = 1_767_571_200_000;
/// The step, ms.
const STEP_MS: i64 = 300_000;
/// NAB's window size: a tenth of the file's rows, shared among its anomalies.
const WINDOW_SHARE: f64 = 0.10;

/// One generated file: NAB's name (`category/file.csv`), its rows and its anomalies' first
/// rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// `category/file.csv`, as NAB names files.
    pub name: String,
    /// Unix ms, one per 5 minutes.
    pub timestamps: Vec<i64>,
    /// The series.
    pub values: Vec<f64>,
    /// Each incident's first row and what kind it is, in time order.
    pub incidents: Vec<(usize, Incident)>,
    /// Decimals the values are written with.
    decimals: usize,
}

/// The kinds of incident the corpus holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incident {
    /// The level moves and stays (a bad deploy, a runaway process).
    LevelShift,
    /// A short excursion far above the usual.
    Spike,
    /// A drop to a fraction of the usual (an outage).
    Outage,
    /// A slow, steady climb (a memory leak, a growing backlog).
    SlowLeak,
    /// The value stops changing for hours (a stuck exporter, a frozen gauge).
    StuckExporter,
    /// A weekday's daytime peak that never comes.
    MissingPeak,
    /// A nightly job that does not run.
    MissedJob,
}

impl Incident {
    /// Every kind, for a check that each one is caught.
    pub const ALL: [Incident; 7] = [
        Incident::LevelShift,
        Incident::Spike,
        Incident::Outage,
        Incident::SlowLeak,
        Incident::StuckExporter,
        Incident::MissingPeak,
        Incident::MissedJob,
    ];

    /// A short name: `level shift`, `stuck exporter`, ...
    pub fn name(self) -> &'static str {
        match self {
            Incident::LevelShift => "level shift",
            Incident::Spike => "spike",
            Incident::Outage => "outage",
            Incident::SlowLeak => "slow leak",
            Incident::StuckExporter => "stuck exporter",
            Incident::MissingPeak => "missing peak",
            Incident::MissedJob => "missed nightly job",
        }
    }
}

impl Scenario {
    /// NAB's windows for this file: 10 % of its rows divided by its number of anomalies, centred
    /// on each anomaly's first row (NAB's `labeler.py`, integer halves as in NAB's Python 2).
    pub fn windows(&self) -> Vec<Window> {
        let n = self.timestamps.len();
        let len = (WINDOW_SHARE * n as f64 / self.incidents.len().max(1) as f64) as usize;
        self.incidents
            .iter()
            .map(|&(a, _)| Window {
                start: self.timestamps[a.saturating_sub(len / 2)],
                end: self.timestamps[(a + len / 2).min(n - 1)],
            })
            .collect()
    }

    /// The file as NAB's scorer reads it: `timestamp,value` rows.
    pub fn csv(&self) -> String {
        let mut text = String::with_capacity(self.values.len() * 32);
        text.push_str("timestamp,value\n");
        for (t, v) in self.timestamps.iter().zip(&self.values) {
            let _ = writeln!(text, "{},{:.*}", format_timestamp(*t), self.decimals, v);
        }
        text
    }
}

/// Every scenario of the corpus, in name order.
pub fn scenarios() -> Vec<Scenario> {
    let mut all = vec![
        api_requests(),
        web_requests(),
        checkout_requests(),
        api_p99(),
        search_p99(),
        api_error_ratio(),
        auth_error_ratio(),
        batch_cpu(),
        web_cpu(),
        cache_memory(),
        worker_memory(),
        jobs_queue(),
    ];
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// The corpus as [`Corpus::load`] would read it from [`write_corpus`]'s directory (the values
/// rounded as written), scored with NAB's three profiles.
pub fn corpus() -> Result<Corpus, Error> {
    let mut files = Vec::new();
    for s in scenarios() {
        let values = s
            .values
            .iter()
            .map(|v| {
                format!("{:.*}", s.decimals, v)
                    .parse()
                    .expect("a written number")
            })
            .collect();
        let windows = s.windows();
        files.push(DataFile::new(s.name, s.timestamps, values, windows)?);
    }
    Ok(Corpus::new(files, Profile::nab()))
}

/// Writes the corpus as NAB lays out its own: `data/<category>/<file>.csv`,
/// `labels/combined_windows.json`, `labels/combined_labels.json` (each anomaly's first row) and
/// `config/profiles.json` (NAB's three profiles), under `dir`.
pub fn write_corpus(dir: &Path) -> Result<(), Error> {
    let all = scenarios();
    let write = |rel: &str, text: &str| -> Result<(), Error> {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        std::fs::write(&path, text).map_err(|e| Error::io("write", &path, e))
    };
    let (mut windows, mut labels) = (String::from("{\n"), String::from("{\n"));
    for (i, s) in all.iter().enumerate() {
        write(&format!("data/{}", s.name), &s.csv())?;
        let sep = if i + 1 < all.len() { "," } else { "" };
        let limits: Vec<String> = s
            .windows()
            .iter()
            .map(|w| {
                format!(
                    "        [\n            \"{}.000000\",\n            \"{}.000000\"\n        ]",
                    format_timestamp(w.start),
                    format_timestamp(w.end)
                )
            })
            .collect();
        let _ = writeln!(
            windows,
            "    \"{}\": [\n{}\n    ]{sep}",
            s.name,
            limits.join(",\n")
        );
        let points: Vec<String> = s
            .incidents
            .iter()
            .map(|&(a, _)| format!("        \"{}\"", format_timestamp(s.timestamps[a])))
            .collect();
        let _ = writeln!(
            labels,
            "    \"{}\": [\n{}\n    ]{sep}",
            s.name,
            points.join(",\n")
        );
    }
    windows.push_str("}\n");
    labels.push_str("}\n");
    write("labels/combined_windows.json", &windows)?;
    write("labels/combined_labels.json", &labels)?;
    let mut profiles = String::from("{\n");
    for (i, p) in Profile::nab().iter().enumerate() {
        let sep = if i < 2 { "," } else { "" };
        let _ = writeln!(
            profiles,
            "  \"{}\": {{\n    \"CostMatrix\": {{\n      \"tpWeight\": {:?},\n      \
             \"fnWeight\": {:?},\n      \"fpWeight\": {:?},\n      \"tnWeight\": {:?}\n    }}\n  }}{sep}",
            p.name, p.tp_weight, p.fn_weight, p.fp_weight, p.tn_weight
        );
    }
    profiles.push_str("}\n");
    write("config/profiles.json", &profiles)
}

/// SplitMix64: a small, seeded generator whose output never changes (the corpus's bytes are
/// committed), with uniform and normal draws.
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.uniform().max(1e-300);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Hour of the day (0 to 24) of row `i`.
fn hour(i: usize) -> f64 {
    (i % DAY) as f64 / HOUR as f64
}

/// Day number and weekday (0 = Monday) of row `i`.
fn day(i: usize) -> (usize, usize) {
    (i / DAY, (i / DAY) % 7)
}

/// Row of `hh:mm` on day `d`.
fn at(d: usize, hh: usize, mm: usize) -> usize {
    d * DAY + hh * HOUR + mm / 5
}

/// The daily rhythm of user traffic, 0 at 04:00 to 1 at 16:00, with a sharper daytime peak.
fn daily(h: f64) -> f64 {
    let x = (1.0 - (std::f64::consts::TAU * (h - 4.0) / 24.0).cos()) / 2.0;
    x.powf(1.5)
}

/// The user load of every row, 0 to about 1: the daily rhythm, weekends at 55 %, each day's
/// peak a little different from the week before (±3 %), and on `raised` days (weekdays) 6 to
/// 23 % above the same day a week earlier (harmless); on `missing` days the daytime peak never
/// comes (an incident, labelled by the caller).
struct Load {
    peak: Vec<f64>,
    missing: Vec<usize>,
}

impl Load {
    fn new(rng: &mut SplitMix, raised: &[usize], missing: &[usize]) -> Self {
        let mut peak: Vec<f64> = (0..DAYS).map(|_| 1.0 + 0.03 * rng.normal()).collect();
        for &d in raised {
            peak[d] = peak[d - 7] * rng.between(1.06, 1.23);
        }
        Self {
            peak,
            missing: missing.to_vec(),
        }
    }

    fn at(&self, i: usize) -> f64 {
        let (d, weekday) = day(i);
        let weekend = if weekday >= 5 { 0.55 } else { 1.0 };
        let shape = if self.missing.contains(&d) {
            // The night's level held through the day: the users never came (a broken login,
            // a DNS entry gone), however ordinary each 5 minutes looks at night.
            daily(hour(i)).min(daily(7.0))
        } else {
            daily(hour(i))
        };
        0.12 + 0.88 * shape * weekend * self.peak[d]
    }
}

/// Whether row `i` is within `len` rows from the Wednesday deploy restart (10:00).
fn restart(i: usize, len: usize) -> bool {
    let (d, weekday) = day(i);
    weekday == 2 && (at(d, 10, 0)..at(d, 10, 0) + len).contains(&i)
}

/// Harmless 1-3-point bursts, about `per_day` a day at random rows: row -> factor.
fn bursts(rng: &mut SplitMix, per_day: f64, lo: f64, hi: f64) -> Vec<f64> {
    let n = DAYS * DAY;
    let mut f = vec![1.0; n];
    let count = (per_day * DAYS as f64) as usize;
    for _ in 0..count {
        let start = (rng.uniform() * n as f64) as usize;
        let len = 1 + (rng.uniform() * 3.0) as usize;
        let factor = rng.between(lo, hi);
        for v in f.iter_mut().skip(start).take(len) {
            *v = factor;
        }
    }
    f
}

fn scenario(
    name: &str,
    decimals: usize,
    values: Vec<f64>,
    mut incidents: Vec<(usize, Incident)>,
) -> Scenario {
    incidents.sort_by_key(|&(a, _)| a);
    Scenario {
        name: name.to_owned(),
        timestamps: (0..values.len() as i64)
            .map(|i| START_MS + i * STEP_MS)
            .collect(),
        values,
        incidents,
        decimals,
    }
}

/// Holds the value of the row before `from` for `len` rows: a stuck exporter.
fn stuck(values: &mut [f64], from: usize, len: usize) {
    let held = values[from - 1];
    for v in &mut values[from..from + len] {
        *v = held;
    }
}

/// A request rate (req/s) of `base` at the peak: the load with Poisson-like noise, a short dip
/// at the Wednesday restart.
fn requests(rng: &mut SplitMix, load: &Load, base: f64) -> Vec<f64> {
    (0..DAYS * DAY)
        .map(|i| {
            let mut r = base * load.at(i) * (1.0 + 0.02 * rng.normal());
            if restart(i, 2) {
                r *= 0.75;
            }
            (r + r.sqrt() * rng.normal()).max(0.0)
        })
        .collect()
}

fn api_requests() -> Scenario {
    let mut rng = SplitMix::new(101);
    let load = Load::new(&mut rng, &[22], &[]);
    let mut v = requests(&mut rng, &load, 900.0);
    let outage = at(17, 14, 0);
    for x in &mut v[outage..outage + 9] {
        *x *= 0.05;
    }
    let frozen = at(29, 3, 0);
    stuck(&mut v, frozen, 6 * HOUR);
    scenario(
        "devopsRequests/api_requests.csv",
        2,
        v,
        vec![
            (outage, Incident::Outage),
            (frozen, Incident::StuckExporter),
        ],
    )
}

fn web_requests() -> Scenario {
    let mut rng = SplitMix::new(102);
    let missing = 24; // a Thursday
    let load = Load::new(&mut rng, &[15, 21, 29], &[missing]);
    let v = requests(&mut rng, &load, 400.0);
    scenario(
        "devopsRequests/web_requests.csv",
        2,
        v,
        vec![(at(missing, 9, 0), Incident::MissingPeak)],
    )
}

fn checkout_requests() -> Scenario {
    let mut rng = SplitMix::new(103);
    let load = Load::new(&mut rng, &[16, 26], &[]);
    let mut v = requests(&mut rng, &load, 120.0);
    let shift = at(19, 11, 0);
    for x in &mut v[shift..] {
        *x *= 0.62;
    }
    let spike = at(31, 12, 0);
    for x in &mut v[spike..spike + 6] {
        *x *= 2.6;
    }
    scenario(
        "devopsRequests/checkout_requests.csv",
        2,
        v,
        vec![(shift, Incident::LevelShift), (spike, Incident::Spike)],
    )
}

/// A p99 latency (ms): `base` plus a share growing with the load, log-normal noise, harmless
/// bursts, and a short rise at the Wednesday restart (cold caches).
fn latency(rng: &mut SplitMix, load: &Load, base: f64, per_day: f64) -> Vec<f64> {
    let burst = bursts(rng, per_day, 1.8, 3.2);
    (0..DAYS * DAY)
        .map(|i| {
            let mut l = base * (1.0 + 0.5 * load.at(i)) * (0.08 * rng.normal()).exp() * burst[i];
            if restart(i, 3) {
                l *= 2.2;
            }
            l
        })
        .collect()
}

fn api_p99() -> Scenario {
    let mut rng = SplitMix::new(104);
    let load = Load::new(&mut rng, &[], &[]);
    let mut v = latency(&mut rng, &load, 120.0, 1.5);
    let shift = at(26, 15, 0);
    for x in &mut v[shift..] {
        *x *= 1.8;
    }
    scenario(
        "devopsLatency/api_p99.csv",
        1,
        v,
        vec![(shift, Incident::LevelShift)],
    )
}

fn search_p99() -> Scenario {
    let mut rng = SplitMix::new(105);
    let load = Load::new(&mut rng, &[], &[]);
    let mut v = latency(&mut rng, &load, 250.0, 2.0);
    let spike = at(18, 13, 0);
    for x in &mut v[spike..spike + 8] {
        *x *= 4.0;
    }
    let frozen = at(27, 9, 0);
    stuck(&mut v, frozen, 5 * HOUR);
    scenario(
        "devopsLatency/search_p99.csv",
        1,
        v,
        vec![(spike, Incident::Spike), (frozen, Incident::StuckExporter)],
    )
}

/// An error ratio (errors / requests): a small base rising with the load, noisy, harmless
/// bursts, a bump at the Wednesday restart.
fn errors(rng: &mut SplitMix, load: &Load, base: f64) -> Vec<f64> {
    let burst = bursts(rng, 1.0, 2.0, 4.0);
    (0..DAYS * DAY)
        .map(|i| {
            let mut e = base * (0.7 + 0.6 * load.at(i)) * (0.25 * rng.normal()).exp() * burst[i];
            if restart(i, 2) {
                e *= 3.0;
            }
            e
        })
        .collect()
}

fn api_error_ratio() -> Scenario {
    let mut rng = SplitMix::new(106);
    let load = Load::new(&mut rng, &[], &[]);
    let mut v = errors(&mut rng, &load, 0.002);
    // A bad release, rolled back after 10 hours.
    let shift = at(20, 16, 0);
    for x in &mut v[shift..shift + 10 * HOUR] {
        *x *= 6.0;
    }
    scenario(
        "devopsErrors/api_error_ratio.csv",
        6,
        v,
        vec![(shift, Incident::LevelShift)],
    )
}

fn auth_error_ratio() -> Scenario {
    let mut rng = SplitMix::new(107);
    let load = Load::new(&mut rng, &[], &[]);
    let mut v = errors(&mut rng, &load, 0.001);
    let spike = at(23, 9, 30);
    for x in &mut v[spike..spike + 5] {
        *x *= 20.0;
    }
    scenario(
        "devopsErrors/auth_error_ratio.csv",
        6,
        v,
        vec![(spike, Incident::Spike)],
    )
}

/// CPU (%): a base plus the load, a nightly job from 02:00 for 30 minutes (unless its day is
/// in `skipped`), a weekly job on Sundays from 03:00 for 90 minutes, a short rise at the
/// Wednesday restart.
fn cpu(rng: &mut SplitMix, load: &Load, busy: f64, skipped: &[usize]) -> Vec<f64> {
    (0..DAYS * DAY)
        .map(|i| {
            let (d, weekday) = day(i);
            let mut c = 12.0 + busy * load.at(i) + 1.5 * rng.normal();
            if (at(d, 2, 0)..at(d, 2, 30)).contains(&i) && !skipped.contains(&d) {
                c += 30.0;
            }
            if weekday == 6 && (at(d, 3, 0)..at(d, 4, 30)).contains(&i) {
                c += 40.0;
            }
            if restart(i, 3) {
                c += 25.0;
            }
            c.clamp(0.0, 100.0)
        })
        .collect()
}

fn batch_cpu() -> Scenario {
    let mut rng = SplitMix::new(108);
    let load = Load::new(&mut rng, &[], &[]);
    let skipped = 21;
    let mut v = cpu(&mut rng, &load, 25.0, &[skipped]);
    let frozen = at(30, 14, 0);
    stuck(&mut v, frozen, 8 * HOUR);
    scenario(
        "devopsCpu/batch_cpu.csv",
        2,
        v,
        vec![
            (at(skipped, 2, 0), Incident::MissedJob),
            (frozen, Incident::StuckExporter),
        ],
    )
}

fn web_cpu() -> Scenario {
    let mut rng = SplitMix::new(109);
    let load = Load::new(&mut rng, &[18, 25], &[]);
    let mut v = cpu(&mut rng, &load, 55.0, &[]);
    let spike = at(16, 14, 0);
    for x in &mut v[spike..spike + HOUR] {
        *x = (97.0 + rng.normal()).min(100.0);
    }
    // A runaway process: 20 points more, from a Friday night on.
    let shift = at(32, 22, 0);
    for x in &mut v[shift..] {
        *x = (*x + 20.0).min(100.0);
    }
    scenario(
        "devopsCpu/web_cpu.csv",
        2,
        v,
        vec![(spike, Incident::Spike), (shift, Incident::LevelShift)],
    )
}

/// Memory (GB): a heap of `heap` plus a cache filling with the load up to `cap`, evicted to a
/// third every night at 00:00 and emptied with the heap reset at the Wednesday restart;
/// `leak` (from row, GB per hour) grows the heap until the next restart.
fn memory(
    rng: &mut SplitMix,
    load: &Load,
    heap: f64,
    cap: f64,
    leak: Option<(usize, f64)>,
) -> Vec<f64> {
    let mut cache = 0.3 * cap;
    let mut leaked = 0.0;
    (0..DAYS * DAY)
        .map(|i| {
            if i % DAY == 0 {
                cache *= 0.33;
            }
            if restart(i, 1) {
                cache = 0.0;
                leaked = 0.0;
            }
            cache = (cache + 0.004 * cap * load.at(i)).min(cap);
            if let Some((from, per_hour)) = leak
                && i >= from
            {
                leaked += per_hour / HOUR as f64 * (1.0 + 0.3 * rng.normal());
            }
            heap + cache + leaked + 0.01 * rng.normal()
        })
        .collect()
}

fn cache_memory() -> Scenario {
    let mut rng = SplitMix::new(110);
    let load = Load::new(&mut rng, &[], &[]);
    let leak = at(30, 11, 0); // the Wednesday's release leaks
    let v = memory(&mut rng, &load, 1.5, 2.0, Some((leak, 0.06)));
    scenario(
        "devopsMemory/cache_memory.csv",
        3,
        v,
        vec![(leak, Incident::SlowLeak)],
    )
}

fn worker_memory() -> Scenario {
    let mut rng = SplitMix::new(111);
    let load = Load::new(&mut rng, &[], &[]);
    let leak = at(24, 15, 0); // a Thursday: it leaks until the next restart
    let mut v = memory(&mut rng, &load, 3.0, 1.0, Some((leak, 0.04)));
    let frozen = at(18, 20, 0);
    stuck(&mut v, frozen, 10 * HOUR);
    scenario(
        "devopsMemory/worker_memory.csv",
        3,
        v,
        vec![
            (frozen, Incident::StuckExporter),
            (leak, Incident::SlowLeak),
        ],
    )
}

fn jobs_queue() -> Scenario {
    let mut rng = SplitMix::new(112);
    let load = Load::new(&mut rng, &[], &[]);
    let skipped = 20;
    let stalled = at(27, 15, 0); // the consumers stall for two hours
    let mut depth: f64 = 0.0;
    let v = (0..DAYS * DAY)
        .map(|i| {
            let (d, weekday) = day(i);
            // Users enqueue through the day; the nightly batch at 01:00 and the weekly one
            // on Sundays at 04:00 enqueue thousands at once.
            depth += 40.0 * load.at(i) * (1.0 + 0.3 * rng.normal()).max(0.0);
            if i == at(d, 1, 0) && d != skipped {
                depth += rng.between(4500.0, 5500.0);
            }
            if weekday == 6 && i == at(d, 4, 0) {
                depth += 8000.0;
            }
            if !(stalled..stalled + 2 * HOUR).contains(&i) {
                depth = (depth - rng.between(90.0, 130.0)).max(0.0);
            }
            (depth + (3.0 + 10.0 * load.at(i)) * rng.uniform()).round()
        })
        .collect();
    scenario(
        "devopsQueue/jobs_queue.csv",
        0,
        v,
        vec![
            (at(skipped, 1, 0), Incident::MissedJob),
            (stalled, Incident::SlowLeak),
        ],
    )
}

#[cfg(test)]
mod tests;
