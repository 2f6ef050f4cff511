//! An explore job's replay on every core: its series are split as shards split them (by the
//! label-set hash), each part is replayed by [`backtest::run`] on a thread of its own, and the
//! parts are joined. A backtest judges each series on its own (an explore job's 100 series are
//! far from `max_series`, the only bound that makes series meet), so the joined parts hold what
//! one replay would, point for point; the browser test compares them with the CLI's.
//!
//! The threads are made by the job's thread and so keep its lowest CPU priority.

use std::{collections::BTreeMap, io, sync::atomic::Ordering};

use promlearn_loader::Labels;

use super::{Columns, Counts, Job, Outcome, SeriesPoints, detector_toml};
use crate::{
    Config, Shard,
    backtest::{self, JudgedPoint, MemorySource, Summary},
};

/// What one part of the series gave: the backtest's summary, its series' points, and alerts
/// per detector.
struct Part {
    summary: Summary,
    series: Vec<SeriesPoints>,
    alerts: Vec<u64>,
}

/// Replays the job's range of `source` through `config`'s queries on as many threads as there
/// are cores (at most one per series).
pub(super) fn on_every_core(
    job: &Job,
    config: &Config,
    source: &MemorySource,
) -> Result<Outcome, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    in_parts(job, config, source, cores)
}

/// Replays on `threads` threads at most (one per series).
pub(super) fn in_parts(
    job: &Job,
    config: &Config,
    source: &MemorySource,
    threads: usize,
) -> Result<Outcome, String> {
    let series = config
        .queries
        .iter()
        .map(|q| source.series_count(&q.name))
        .max()
        .unwrap_or(0);
    let threads = threads.min(series).max(1) as u64;
    let parts: Vec<Result<Part, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                let mut config = config.clone();
                config.shard = Shard::new(index, threads).expect("an index below the total");
                scope.spawn(move || part(job, &config, source))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| match handle.join() {
                Ok(part) => part,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    let mut joined: Option<Part> = None;
    for part in parts {
        let part = part?;
        joined = Some(match joined {
            None => part,
            Some(mut all) => {
                for (a, b) in all.summary.queries.iter_mut().zip(&part.summary.queries) {
                    a.series += b.series;
                    a.points += b.points;
                    a.judged += b.judged;
                    a.flagged += b.flagged;
                    a.fits += b.fits;
                    for (x, y) in a.errors.iter_mut().zip(b.errors) {
                        *x += y;
                    }
                    // Side by side: the query's time is its slowest part's.
                    a.wall = a.wall.max(b.wall);
                }
                all.summary.wall = all.summary.wall.max(part.summary.wall);
                all.series.extend(part.series);
                for (a, b) in all.alerts.iter_mut().zip(part.alerts) {
                    *a += b;
                }
                all
            }
        });
    }
    let Part {
        summary,
        mut series,
        alerts,
    } = joined.expect("at least one part");
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    let counts = summary
        .queries
        .iter()
        .zip(&config.queries)
        .zip(alerts)
        .map(|((s, q), alerts)| Counts {
            query: s.query.clone(),
            detector: s.detector.clone(),
            settings: detector_toml(&q.detector),
            series: s.series,
            points: s.points,
            judged: s.judged,
            flagged: s.flagged,
            alerts,
            fits: s.fits,
            wall_s: s.wall.as_secs_f64(),
        })
        .collect();
    Ok(Outcome {
        detectors: counts,
        series,
        wall_s: summary.wall.as_secs_f64(),
    })
}

/// One part: the series `config.shard` owns.
fn part(job: &Job, config: &Config, source: &MemorySource) -> Result<Part, String> {
    let detectors = config.queries.len();
    let index_of: BTreeMap<&str, usize> = config
        .queries
        .iter()
        .enumerate()
        .map(|(i, q)| (q.name.as_str(), i))
        .collect();
    let mut series: Vec<SeriesPoints> = Vec::new();
    let mut series_index: BTreeMap<Labels, usize> = BTreeMap::new();
    let mut alerts = vec![0u64; detectors];
    let mut sink = |p: &JudgedPoint<'_>| -> io::Result<()> {
        if job.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("cancelled"));
        }
        job.reached_ms.fetch_max(p.timestamp_ms, Ordering::Relaxed);
        let d = index_of[p.query];
        let s = *series_index.entry(p.labels.clone()).or_insert_with(|| {
            series.push(SeriesPoints {
                labels: p.labels.clone(),
                columns: (0..detectors).map(|_| Columns::default()).collect(),
            });
            series.len() - 1
        });
        let c = &mut series[s].columns[d];
        if p.anomalous && !c.anomalous.last().copied().unwrap_or(false) {
            alerts[d] += 1;
        }
        c.t.push(p.timestamp_ms);
        c.value.push(p.value);
        c.yhat.push(p.yhat);
        c.lower.push(p.yhat_lower);
        c.upper.push(p.yhat_upper);
        c.score.push(p.score);
        c.anomalous.push(p.anomalous);
        Ok(())
    };
    let summary = backtest::run(config, source, job.from_ms, job.to_ms, &mut sink)
        .map_err(|e| e.to_string())?;
    Ok(Part {
        summary,
        series,
        alerts,
    })
}
