//! Backtesting: the service's own schedule replayed over a past range with a simulated clock, to
//! choose a detector before deploying it (as vmanomaly's backtesting does).
//!
//! The replay is the live schedule (`schedule.rs`) with another clock and source: ticks every
//! `infer_every` from `from_ms` to `to_ms`, as fast as the CPU goes; at each tick every series'
//! new samples are judged with its current model, then the series that are due are refitted on
//! the `fit_window` before the tick. Nothing sees the future: a fit or an inference at simulated
//! time `t` reads only samples at or before `t`. Fits run on the calling thread, one after the
//! other, so a run is deterministic. Every sample of `[from_ms, to_ms]` reaches the sink exactly
//! once, judged or not (before a series' first model there is nothing to judge with).
//!
//! ```
//! use promlearn_loader::Labels;
//! use promlearn_watch::{Config, backtest::{self, MemorySource}};
//!
//! let config = Config::from_toml(r#"
//! endpoint = "http://localhost:9090"
//! [[query]]
//! name = "cpu"
//! expr = "unused: the series come from memory"
//! step = "5m"
//! detector = { kind = "zscore", window = 12 }
//! fit_window = "1d"
//! fit_every = "6h"
//! "#, "nab.toml")?;
//! // Two days at an irregular ~5 minutes, with one spike.
//! let t: Vec<i64> = (0..576).map(|i| i * 300_000 + (i % 7) * 11_000).collect();
//! let mut v: Vec<f64> = (0..576).map(|i| 50.0 + (i % 12) as f64).collect();
//! v[500] = 500.0;
//! let source = MemorySource::new(vec![(Labels::from_pairs([("file", "cpu")]), t.clone(), v)])?;
//!
//! let mut flagged = Vec::new();
//! let summary = backtest::run(&config, &source, t[288], t[575], &mut |p| {
//!     if p.anomalous { flagged.push(p.timestamp_ms); }
//!     Ok(())
//! })?;
//! assert_eq!(summary.queries[0].points, 288, "every sample of the range, once");
//! assert_eq!(flagged, [t[500]]);
//! # Ok::<(), promlearn_watch::Error>(())
//! ```

use std::{
    future::Future,
    io::{self, Write},
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use promlearn_loader::exposition::format_value;

use crate::{
    Config, Error, Result,
    clock::{Clock, Exec, simulated_ticks},
    engine::{Engine, FitFn, detector_fit},
    schedule,
    source::{self, Source},
};

pub use crate::{judge::JudgedPoint, source::MemorySource};

/// What a backtest did, per query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuerySummary {
    /// The query's name.
    pub query: String,
    /// The detector's name.
    pub detector: String,
    /// Series tracked over the run (one dropped as stale and seen again counts twice).
    pub series: u64,
    /// Samples of the range handed to the sink.
    pub points: u64,
    /// Of them, judged by a model.
    pub judged: u64,
    /// Of them, flagged anomalous.
    pub flagged: u64,
    /// Fits completed.
    pub fits: u64,
    /// Errors by kind, as `promlearn_watch_errors_total` counts them (see [`crate::ERROR_KINDS`]).
    pub errors: [u64; crate::ERROR_KINDS.len()],
    /// Wall time spent on this query's ticks (its fits included).
    pub wall: Duration,
}

/// What a backtest did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// One per query, in the configuration's order.
    pub queries: Vec<QuerySummary>,
    /// Wall time of the whole replay.
    pub wall: Duration,
}

/// Loads what a backtest of `[from_ms, to_ms]` needs from the configuration's Prometheus: per
/// query, its step grid (the one the service reads) from a fit window before `from_ms` to
/// `to_ms`, in one chunked load per query. Every `expr` is parsed first
/// ([`Config::check_queries`]): one that is not PromQL is an error before anything is asked.
pub async fn load(config: &Config, from_ms: i64, to_ms: i64) -> Result<MemorySource> {
    check_range(from_ms, to_ms)?;
    config.check_queries()?;
    source::load_history(config, from_ms, to_ms).await
}

/// Replays `[from_ms, to_ms]` of `source` through the schedule of `config` (see the module's
/// docs) and hands every sample of the range to `sink` exactly once, each series' in time order
/// (series interleave tick by tick). Needs no async runtime. Errors on an empty range, on a source naming a query the configuration does not
/// have, and when the sink fails.
pub fn run(
    config: &Config,
    source: &MemorySource,
    from_ms: i64,
    to_ms: i64,
    sink: &mut dyn FnMut(&JudgedPoint<'_>) -> io::Result<()>,
) -> Result<Summary> {
    run_with(config, source, from_ms, to_ms, detector_fit(), sink)
}

fn check_range(from_ms: i64, to_ms: i64) -> Result<()> {
    if from_ms > to_ms {
        return Err(Error::EmptyRange { from_ms, to_ms });
    }
    Ok(())
}

/// [`run`] with a chosen fit (tests use stand-ins).
pub(crate) fn run_with(
    config: &Config,
    source: &MemorySource,
    from_ms: i64,
    to_ms: i64,
    fit_fn: FitFn,
    sink: &mut dyn FnMut(&JudgedPoint<'_>) -> io::Result<()>,
) -> Result<Summary> {
    check_range(from_ms, to_ms)?;
    source.check(config)?;
    let started = Instant::now();
    let engine = Arc::new(Engine::new(
        config.clone(),
        Clock::simulated(from_ms),
        Source::Memory(source.clone()),
        Exec::Inline,
        fit_fn,
        1,
    ));
    // Samples before the range are history: context and fit windows, never judged.
    for q in &mut engine.lock().queries {
        q.read_through_ms = Some(from_ms - 1);
    }
    let n = config.queries.len();
    let mut summaries: Vec<QuerySummary> = config
        .queries
        .iter()
        .map(|q| QuerySummary {
            query: q.name.clone(),
            detector: q.detector.name().to_owned(),
            ..QuerySummary::default()
        })
        .collect();
    let mut ticks: Vec<_> = config
        .queries
        .iter()
        .map(|q| simulated_ticks(from_ms, to_ms, q.infer_every).peekable())
        .collect();
    // The queries' ticks merged in time order (the first query first on a tie).
    while let Some((index, t)) = (0..n)
        .filter_map(|i| ticks[i].peek().map(|t| (i, *t)))
        .min_by_key(|(i, t)| (*t, *i))
    {
        ticks[index].next();
        engine.clock.set(t);
        let tick_started = Instant::now();
        let summary = &mut summaries[index];
        let mut counting = |p: &JudgedPoint<'_>| {
            summary.points += 1;
            summary.judged += u64::from(p.judged());
            summary.flagged += u64::from(p.anomalous);
            sink(p)
        };
        ready(schedule::infer_once(&engine, index, &mut counting)).map_err(Error::Sink)?;
        ready(schedule::fit_once(&engine, index));
        summary.wall += tick_started.elapsed();
    }
    let state = engine.lock();
    for (summary, q) in summaries.iter_mut().zip(&state.queries) {
        summary.series = q.series_created;
        summary.fits = q.fits;
        summary.errors = q.errors;
    }
    Ok(Summary {
        queries: summaries,
        wall: started.elapsed(),
    })
}

/// Runs a step of the schedule to its end. With series in memory and inline fits a step never
/// waits on anything (no I/O, no timer, no other task), so one poll finishes it; that is what
/// lets the backtest share the service's async schedule without a runtime.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => {
            unreachable!("a backtest step waited; in-memory sources and inline fits never do")
        }
    }
}

/// The CSV columns [`CsvWriter`] writes.
pub const CSV_HEADER: &str =
    "timestamp_ms,query,labels,value,yhat,yhat_lower,yhat_upper,score,anomalous";

/// Writes judged points as CSV: [`CSV_HEADER`], then one row per point; labels in PromQL form
/// (`{instance="a", job="b"}`), values as Prometheus writes them (`NaN`, `+Inf`), the
/// judgement's cells empty where the point was not judged, `anomalous` 0 or 1.
#[derive(Debug)]
pub struct CsvWriter<W: Write> {
    out: W,
}

impl<W: Write> CsvWriter<W> {
    /// Writes the header.
    pub fn new(mut out: W) -> io::Result<Self> {
        writeln!(out, "{CSV_HEADER}")?;
        Ok(CsvWriter { out })
    }

    /// Writes one point.
    pub fn write(&mut self, p: &JudgedPoint<'_>) -> io::Result<()> {
        let judged = |v: f64| {
            if p.judged() {
                format_value(v)
            } else {
                String::new()
            }
        };
        writeln!(
            self.out,
            "{},{},{},{},{},{},{},{},{}",
            p.timestamp_ms,
            csv_field(p.query),
            csv_field(&p.labels.to_string()),
            format_value(p.value),
            judged(p.yhat),
            judged(p.yhat_lower),
            judged(p.yhat_upper),
            judged(p.score),
            u8::from(p.anomalous)
        )
    }

    /// Flushes and hands the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A CSV field, quoted when it needs to be (RFC 4180).
fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests;
