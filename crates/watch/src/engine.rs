//! The engine: per query an inference loop and a fit loop, sharing one state.
//!
//! Inference never waits for a fit: fits run on the blocking pool, at most `fit_permits` at a
//! time, and inference keeps using the last fitted model (an `Arc<dyn Fitted>`) until a new one
//! replaces it. All state is behind one mutex that is only held for bookkeeping, never across an
//! `.await` or a fit.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use promlearn_detect::{Analysis, DetectorSpec, Fitted};
use promlearn_loader::{Client, Labels, Matrix, RangeQuery};
use tokio::{sync::Semaphore, time::MissedTickBehavior};

use crate::{
    Config, QueryConfig,
    expo::{Exposition, Histogram},
};

/// What counts as an error, by kind (the `kind` label of `promlearn_watch_errors_total`).
pub const ERROR_KINDS: [&str; 5] = [
    "query_failed",
    "timeout",
    "fit_failed",
    "analyse_failed",
    "series_limit",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    QueryFailed = 0,
    Timeout = 1,
    FitFailed = 2,
    AnalyseFailed = 3,
    SeriesLimit = 4,
}

/// Fits a detector on a history; the detector crate's `DetectorSpec::fit`, or a stand-in in tests.
pub(crate) type FitFn = Arc<
    dyn Fn(&DetectorSpec, &[i64], &[f64]) -> promlearn_detect::Result<Arc<dyn Fitted>>
        + Send
        + Sync,
>;

/// The detector crate's own fit.
pub(crate) fn detector_fit() -> FitFn {
    Arc::new(|spec: &DetectorSpec, timestamps: &[i64], values: &[f64]| spec.fit(timestamps, values))
}

/// The exported values of one series: its last judged point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    pub value: f64,
    pub yhat: f64,
    pub lower: f64,
    pub upper: f64,
    pub score: f64,
    pub anomalous: bool,
}

impl Point {
    fn last_judged(analysis: &Analysis) -> Option<Point> {
        let i = analysis.last_judged()?;
        Some(Point {
            value: analysis.values[i],
            yhat: analysis.yhat[i],
            lower: analysis.yhat_lower[i],
            upper: analysis.yhat_upper[i],
            score: analysis.score[i],
            anomalous: analysis.anomalous[i],
        })
    }
}

pub(crate) struct SeriesState {
    /// The labels exported with every value of this series (after `query`/`detector`).
    exported: Vec<(String, String)>,
    pub model: Option<Arc<dyn Fitted>>,
    pub fitting: bool,
    /// When the next fit is due.
    pub next_fit: Instant,
    pub last_seen: Instant,
    /// The last judged point of the latest inference; `None` while the query fails or the
    /// series has no judged point, so that nothing old is exported.
    pub last: Option<Point>,
}

#[derive(Default)]
pub(crate) struct QueryState {
    pub up: bool,
    pub series: BTreeMap<Labels, SeriesState>,
    pub errors: [u64; ERROR_KINDS.len()],
    pub fits_skipped: u64,
    pub fits: u64,
    pub fit_durations: Histogram,
    pub infer_durations: Histogram,
    pub last_fit_unix: Option<f64>,
}

impl QueryState {
    fn error(&mut self, kind: ErrorKind) {
        self.errors[kind as usize] += 1;
    }
}

pub(crate) struct State {
    pub queries: Vec<QueryState>,
    pub total_series: usize,
}

/// Everything the loops, the fits and `/metrics` share.
pub(crate) struct Shared {
    pub config: Config,
    state: Mutex<State>,
    fit_permits: Arc<Semaphore>,
    fit_fn: FitFn,
}

impl Shared {
    pub(crate) fn new(config: Config, fit_fn: FitFn, fit_concurrency: usize) -> Shared {
        let queries = config
            .queries
            .iter()
            .map(|_| QueryState::default())
            .collect();
        Shared {
            config,
            state: Mutex::new(State {
                queries,
                total_series: 0,
            }),
            fit_permits: Arc::new(Semaphore::new(fit_concurrency.max(1))),
            fit_fn,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters behind; keep serving them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Labels exported for a series: its own, with `query` and `detector` renamed to
/// `exported_query`/`exported_detector` (as Prometheus does on a clash) and `__name__` to
/// `exported_name` (our metric names replace it).
fn exported_labels(labels: &Labels) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(name, value)| {
            let name = match name {
                "query" | "detector" => format!("exported_{name}"),
                "__name__" => "exported_name".to_owned(),
                other => other.to_owned(),
            };
            (name, value.to_owned())
        })
        .collect()
}

fn error_kind(e: &promlearn_loader::Error) -> ErrorKind {
    match e {
        promlearn_loader::Error::Timeout { .. } => ErrorKind::Timeout,
        _ => ErrorKind::QueryFailed,
    }
}

/// Runs one range query with a deadline, mapping failures to their kind.
async fn fetch(
    client: &Client,
    query: &QueryConfig,
    points: usize,
    deadline: Duration,
) -> Result<Matrix, (ErrorKind, String)> {
    let step = query.step_ms();
    let end = now_unix_ms().div_euclid(step) * step;
    let start = end - (points.max(1) as i64 - 1) * step;
    let range = RangeQuery::new(query.expr.clone(), start, end, query.step)
        .map_err(|e| (ErrorKind::QueryFailed, e.to_string()))?;
    match tokio::time::timeout(deadline, client.query_range(&range)).await {
        Err(_) => Err((
            ErrorKind::Timeout,
            format!("no answer within {}", promlearn_duration::format(deadline)),
        )),
        Ok(Err(e)) => Err((error_kind(&e), e.to_string())),
        Ok(Ok(matrix)) => Ok(matrix),
    }
}

/// The inference loop of query `index`: every `infer_every`, score the newest points of every
/// series with its current model.
pub(crate) async fn infer_loop(shared: Arc<Shared>, client: Client, index: usize) {
    let query = shared.config.queries[index].clone();
    let mut ticks = tokio::time::interval(query.infer_every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        infer_once(&shared, &client, index, &query).await;
    }
}

pub(crate) async fn infer_once(
    shared: &Arc<Shared>,
    client: &Client,
    index: usize,
    query: &QueryConfig,
) {
    let started = Instant::now();
    let answer = fetch(client, query, query.infer_points(), query.infer_every).await;
    let now = Instant::now();
    let matrix = match answer {
        Err((kind, message)) => {
            let mut state = shared.lock();
            let q = &mut state.queries[index];
            if q.up || q.errors.iter().sum::<u64>() == 0 {
                tracing::warn!(query = %query.name, "query failed, its series are not exported until it answers again: {message}");
            } else {
                tracing::debug!(query = %query.name, "query failed: {message}");
            }
            q.up = false;
            q.error(kind);
            for series in q.series.values_mut() {
                series.last = None;
            }
            drop_stale(&mut state, index, now, shared.config.stale_after);
            return;
        }
        Ok(matrix) => matrix,
    };

    // Bookkeeping: new series, last-seen times, what to analyse.
    let timestamps: Arc<[i64]> = matrix.timestamps().into();
    let mut jobs = Vec::new();
    {
        let mut guard = shared.lock();
        let state = &mut *guard;
        let max_series = shared.config.max_series;
        let q = &mut state.queries[index];
        if !q.up {
            tracing::info!(query = %query.name, series = matrix.n_series(), "query answers");
        }
        q.up = true;
        for (s, labels) in matrix.series().iter().enumerate() {
            if !q.series.contains_key(labels) {
                if state.total_series >= max_series {
                    q.error(ErrorKind::SeriesLimit);
                    continue;
                }
                state.total_series += 1;
                tracing::debug!(query = %query.name, series = %labels, "new series");
                q.series.insert(
                    labels.clone(),
                    SeriesState {
                        exported: exported_labels(labels),
                        model: None,
                        fitting: false,
                        next_fit: now,
                        last_seen: now,
                        last: None,
                    },
                );
            }
            let series = q.series.get_mut(labels).expect("present or just added");
            series.last_seen = now;
            if let Some(model) = &series.model {
                jobs.push((labels.clone(), model.clone(), matrix.column(s).to_vec()));
            }
        }
        // A series missing from this answer exports nothing (its model stays until it is stale).
        for series in q.series.values_mut() {
            if series.last_seen != now {
                series.last = None;
            }
        }
        drop_stale(state, index, now, shared.config.stale_after);
    }

    // Analysis off the async threads (an LSTM's forward pass is real work).
    let results = if jobs.is_empty() {
        Vec::new()
    } else {
        let ts = timestamps.clone();
        match tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .map(|(labels, model, values)| (labels, model.analyse(&ts, &values)))
                .collect::<Vec<_>>()
        })
        .await
        {
            Ok(results) => results,
            Err(e) => {
                tracing::error!(query = %query.name, "analysis panicked: {e}");
                shared.lock().queries[index].error(ErrorKind::AnalyseFailed);
                return;
            }
        }
    };
    let mut state = shared.lock();
    let q = &mut state.queries[index];
    for (labels, result) in results {
        match result {
            Ok(analysis) => {
                if let Some(series) = q.series.get_mut(&labels) {
                    series.last = Point::last_judged(&analysis);
                }
            }
            Err(e) => {
                tracing::warn!(query = %query.name, series = %labels, "analysis failed: {e}");
                q.error(ErrorKind::AnalyseFailed);
            }
        }
    }
    q.infer_durations.observe(started.elapsed().as_secs_f64());
}

/// Drops the series of query `index` not seen for `stale_after`.
fn drop_stale(state: &mut State, index: usize, now: Instant, stale_after: Duration) {
    let q = &mut state.queries[index];
    let before = q.series.len();
    q.series.retain(|labels, series| {
        let keep = now.saturating_duration_since(series.last_seen) <= stale_after;
        if !keep {
            tracing::info!(series = %labels, "series dropped: not seen for {}", promlearn_duration::format(stale_after));
        }
        keep
    });
    state.total_series -= before - q.series.len();
}

/// The fit loop of query `index`: when series are due for a (re)fit, one query over the fit
/// window, then one fit per due series on the blocking pool.
pub(crate) async fn fit_loop(shared: Arc<Shared>, client: Client, index: usize) {
    let query = shared.config.queries[index].clone();
    let mut ticks = tokio::time::interval(query.infer_every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        fit_once(&shared, &client, index, &query).await;
    }
}

pub(crate) async fn fit_once(
    shared: &Arc<Shared>,
    client: &Client,
    index: usize,
    query: &QueryConfig,
) {
    let now = Instant::now();
    let due: Vec<Labels> = {
        let mut state = shared.lock();
        let q = &mut state.queries[index];
        let mut due = Vec::new();
        let mut skipped = 0;
        for (labels, series) in q.series.iter_mut() {
            if now < series.next_fit {
                continue;
            }
            if series.fitting {
                // The previous fit still runs: skip this one, keep inferring with the last model.
                skipped += 1;
                series.next_fit = now + query.fit_every;
                tracing::debug!(query = %query.name, series = %labels, "fit skipped: the previous one still runs");
            } else {
                due.push(labels.clone());
            }
        }
        q.fits_skipped += skipped;
        due
    };
    if due.is_empty() {
        return;
    }
    let deadline = query
        .fit_every
        .clamp(query.infer_every, Duration::from_secs(120));
    let matrix = match fetch(client, query, query.fit_points(), deadline).await {
        Ok(matrix) => matrix,
        Err((kind, message)) => {
            let mut state = shared.lock();
            let q = &mut state.queries[index];
            if q.up {
                tracing::warn!(query = %query.name, "the fit window's query failed: {message}");
            } else {
                tracing::debug!(query = %query.name, "the fit window's query failed: {message}");
            }
            q.error(kind);
            // Not every cycle: a Prometheus that is down is already counted by inference.
            let retry = Instant::now() + (query.infer_every * 10).min(query.fit_every);
            for labels in &due {
                if let Some(series) = q.series.get_mut(labels) {
                    series.next_fit = series.next_fit.max(retry);
                }
            }
            return;
        }
    };
    let timestamps: Arc<[i64]> = matrix.timestamps().into();
    let min_history = query.detector.min_history();
    let mut state = shared.lock();
    let q = &mut state.queries[index];
    for labels in due {
        let Some(series) = q.series.get_mut(&labels) else {
            continue;
        };
        let values = match matrix.position(&labels) {
            Some(s) => matrix.column(s).to_vec(),
            None => Vec::new(),
        };
        let finite = values.iter().filter(|v| v.is_finite()).count();
        if finite < min_history {
            // Not enough history yet: come back when there can be.
            let wait = query.step * (min_history - finite) as u32;
            series.next_fit = now + wait.max(query.infer_every);
            tracing::debug!(query = %query.name, series = %labels, finite, min_history, "not enough history to fit yet");
            continue;
        }
        series.fitting = true;
        series.next_fit = now + query.fit_every;
        let job = FitJob {
            shared: shared.clone(),
            index,
            labels,
            spec: query.detector.clone(),
            timestamps: timestamps.clone(),
            values,
        };
        tokio::spawn(job.run());
    }
}

struct FitJob {
    shared: Arc<Shared>,
    index: usize,
    labels: Labels,
    spec: DetectorSpec,
    timestamps: Arc<[i64]>,
    values: Vec<f64>,
}

impl FitJob {
    async fn run(self) {
        let FitJob {
            shared,
            index,
            labels,
            spec,
            timestamps,
            values,
        } = self;
        let Ok(permit) = shared.fit_permits.clone().acquire_owned().await else {
            return;
        };
        let fit_fn = shared.fit_fn.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let started = Instant::now();
            let result = fit_fn(&spec, &timestamps, &values);
            (result, started.elapsed())
        })
        .await;
        let mut state = shared.lock();
        let name = &shared.config.queries[index].name;
        let q = &mut state.queries[index];
        let (result, took) = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(query = %name, series = %labels, "fit panicked: {e}");
                q.error(ErrorKind::FitFailed);
                if let Some(series) = q.series.get_mut(&labels) {
                    series.fitting = false;
                }
                return;
            }
        };
        q.fit_durations.observe(took.as_secs_f64());
        match result {
            Ok(model) => {
                q.fits += 1;
                q.last_fit_unix = Some(now_unix_ms() as f64 / 1000.0);
                if let Some(series) = q.series.get_mut(&labels) {
                    series.fitting = false;
                    if series.model.is_none() {
                        tracing::debug!(query = %name, series = %labels, "first model fitted in {took:?}");
                    }
                    series.model = Some(model);
                }
            }
            Err(e) => {
                tracing::warn!(query = %name, series = %labels, "fit failed: {e}");
                q.error(ErrorKind::FitFailed);
                if let Some(series) = q.series.get_mut(&labels) {
                    series.fitting = false;
                }
            }
        }
    }
}

// ---- /metrics ----------------------------------------------------------------------------

const SERIES_FAMILIES: [(&str, &str); 6] = [
    (
        "promlearn_anomaly_score",
        "Anomaly score of the series' newest judged point: 0 on the prediction, 1 on the band's edge, above 1 outside the band.",
    ),
    (
        "promlearn_anomalous",
        "1 if the series' newest judged point is outside the detector's band (score > 1), else 0.",
    ),
    (
        "promlearn_yhat",
        "The detector's prediction for the series' newest judged point.",
    ),
    (
        "promlearn_yhat_lower",
        "Lower edge of the detector's band at the series' newest judged point.",
    ),
    (
        "promlearn_yhat_upper",
        "Upper edge of the detector's band at the series' newest judged point.",
    ),
    (
        "promlearn_value",
        "The series' value at its newest judged point.",
    ),
];

/// Renders every family, HELP and TYPE included, even when there is nothing to report yet.
pub(crate) fn render(shared: &Shared) -> String {
    let state = shared.lock();
    let config = &shared.config;
    let mut e = Exposition::new();
    for (f, (family, help)) in SERIES_FAMILIES.iter().enumerate() {
        e.family(family, "gauge", help);
        for (qc, q) in config.queries.iter().zip(&state.queries) {
            if !q.up {
                continue;
            }
            for series in q.series.values() {
                let Some(p) = series.last else { continue };
                let value = match f {
                    0 => p.score,
                    1 => f64::from(u8::from(p.anomalous)),
                    2 => p.yhat,
                    3 => p.lower,
                    4 => p.upper,
                    _ => p.value,
                };
                let labels = [
                    ("query", qc.name.as_str()),
                    ("detector", qc.detector.name()),
                ]
                .into_iter()
                .chain(
                    series
                        .exported
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str())),
                );
                e.sample(family, labels, value);
            }
        }
    }
    let per_query = |e: &mut Exposition,
                     name: &str,
                     kind: &str,
                     help: &str,
                     value: &dyn Fn(&QueryState) -> Option<f64>| {
        e.family(name, kind, help);
        for (qc, q) in config.queries.iter().zip(&state.queries) {
            if let Some(v) = value(q) {
                e.sample(name, [("query", qc.name.as_str())], v);
            }
        }
    };
    per_query(
        &mut e,
        "promlearn_watch_up",
        "gauge",
        "1 if the query's last inference query answered, else 0 (its series are then not exported).",
        &|q| Some(f64::from(u8::from(q.up))),
    );
    per_query(
        &mut e,
        "promlearn_watch_series",
        "gauge",
        "Series the query currently tracks.",
        &|q| Some(q.series.len() as f64),
    );
    per_query(
        &mut e,
        "promlearn_watch_models",
        "gauge",
        "Series of the query that have a fitted model.",
        &|q| Some(q.series.values().filter(|s| s.model.is_some()).count() as f64),
    );
    per_query(
        &mut e,
        "promlearn_watch_fits_total",
        "counter",
        "Fits completed successfully.",
        &|q| Some(q.fits as f64),
    );
    per_query(
        &mut e,
        "promlearn_watch_fits_skipped_total",
        "counter",
        "Fits skipped because the series' previous fit was still running.",
        &|q| Some(q.fits_skipped as f64),
    );
    per_query(
        &mut e,
        "promlearn_watch_last_fit_timestamp_seconds",
        "gauge",
        "Unix time of the query's last successful fit.",
        &|q| q.last_fit_unix,
    );

    e.family(
        "promlearn_watch_errors_total",
        "counter",
        "Errors by kind: query_failed, timeout, fit_failed, analyse_failed, series_limit.",
    );
    for (qc, q) in config.queries.iter().zip(&state.queries) {
        for (kind, count) in ERROR_KINDS.iter().zip(q.errors) {
            e.sample(
                "promlearn_watch_errors_total",
                [("query", qc.name.as_str()), ("kind", kind)],
                count as f64,
            );
        }
    }
    for (name, help, fits) in [
        (
            "promlearn_watch_fit_duration_seconds",
            "Time one series' fit took (on the blocking pool, not counting the wait for a fit slot).",
            true,
        ),
        (
            "promlearn_watch_infer_duration_seconds",
            "Time one inference cycle of the query took: its range query and the analysis of every series.",
            false,
        ),
    ] {
        e.family(name, "histogram", help);
        for (qc, q) in config.queries.iter().zip(&state.queries) {
            let histogram = if fits {
                &q.fit_durations
            } else {
                &q.infer_durations
            };
            e.histogram(name, &[("query", qc.name.as_str())], histogram);
        }
    }
    e.finish()
}
