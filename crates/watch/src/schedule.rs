//! The schedule, one copy for the service and for a backtest: per query, an inference every
//! `infer_every` that judges each series' new samples with its current model, and a fit of the
//! series that are due (every `fit_every`, once they have `min_history`) on the `fit_window`
//! before now. Time comes from the [`Clock`](crate::clock::Clock), samples from the
//! [`Source`](crate::source::Source), and where the work
//! runs from [`Exec`]:
//!
//! - the service: real time, Prometheus, and every CPU-bound step on the blocking pool, never
//!   on an async thread (which `/metrics`, the timers and the reads need): an inference's answer
//!   is booked there under one take of the lock and judged on every core (`judge.rs`), 1,024
//!   series between two takes of the lock; the walks over every series that plan a read or
//!   find a round's due fits run there too ([`Engine::off_async`]); a fit round's jobs are drained by at most `fit_slots` workers, each holding a
//!   fit slot for trips of up to 100 ms, and a round too large for half an inference period is
//!   spread over several ([`FIT_SHARE`]). Inference never waits for a fit and keeps using the
//!   last fitted model (an `Arc<dyn Fitted>`) until a new one replaces it;
//! - a backtest: simulated time, series in memory, everything on the calling thread in order, so
//!   a run is deterministic.
//!
//! All state is behind one mutex that is only held for bookkeeping, never across an `.await`, a
//! fit, an analysis or the caller's sink. `/metrics` does not take it: it serves the page the
//! render loop (`loops.rs`) made after the last inference round (`export.rs`).

use std::{
    collections::{HashMap, VecDeque},
    io,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use promlearn_detect::{DetectorSpec, Fitted};
use promlearn_loader::Labels;

use crate::{
    clock::Exec,
    engine::{Engine, FitFn},
    judge::{InferJob, JudgedPoint, Outcome, emit, infer_job, judge_all},
    recent::GridRead,
    series::{ErrorKind, Point, SeriesState, drop_stale},
    source::{FetchError, SeriesData, Want, infer_points_since},
    stopped::{self, Evictions, RawNewest},
};

/// One inference of query `index` at the clock's time, on the calling thread: reads the new
/// samples of every series (with context), judges them with the series' model, hands every new
/// sample to `sink` exactly once (judged or not) and keeps the newest judged point for
/// `/metrics`. Only the sink can fail.
pub(crate) async fn infer_once<K>(
    engine: &Arc<Engine>,
    index: usize,
    sink: &mut K,
) -> io::Result<()>
where
    K: FnMut(&JudgedPoint<'_>) -> io::Result<()>,
{
    let answer = fetch_new(engine, index).await;
    judge_new(engine, index, answer, sink)
}

/// An inference's read: when it began, the clock's time it reads at, and the answer.
pub(crate) struct NewSamples {
    started: Instant,
    now: i64,
    /// The previous read's time: samples after it are new.
    after: Option<i64>,
    /// The steps read from Prometheus (`None` from memory).
    read: Option<GridRead>,
    answer: Result<Vec<SeriesData>, FetchError>,
    /// Each series' newest raw sample, asked only when room may be needed (`stopped.rs`).
    raw: Option<RawNewest>,
}

/// The read of an inference of query `index` at the clock's time: the samples after the last
/// read, with the detector's context.
pub(crate) async fn fetch_new(engine: &Arc<Engine>, index: usize) -> NewSamples {
    let query = &engine.config.queries[index];
    let started = Instant::now();
    let now = engine.clock.now_ms();
    let (after, read) = engine
        .off_async(move |engine| {
            engine.assert_off_async();
            let query = &engine.config.queries[index];
            let state = engine.lock();
            let q = &state.queries[index];
            let after = q.read_through_ms;
            let read = engine.source.reads_grid().then(|| {
                let points = infer_points_since(query, now, after);
                let read = GridRead::plan(query, now, points, after, q.newest_sample_ms);
                // The whole window when a series does not hold the steps before the read.
                if q.series.values().all(|s| s.recent.covers(&read)) {
                    read
                } else {
                    read.whole()
                }
            });
            (after, read)
        })
        .await;
    let answer = engine
        .source
        .fetch(
            query,
            now,
            Want::Infer {
                after_ms: after,
                read,
            },
            query.infer_every,
        )
        .await;
    let raw = stopped::ask_if_room_needed(
        &engine.source,
        &engine.config,
        &engine.state,
        index,
        now,
        &answer,
    )
    .await;
    NewSamples {
        started,
        now,
        after,
        read,
        answer,
        raw,
    }
}

/// The rest of an inference, without an `.await`: bookkeeping, judging, the sink and the
/// newest points (see [`infer_once`]).
pub(crate) fn judge_new<K>(
    engine: &Engine,
    index: usize,
    NewSamples {
        started,
        now,
        after,
        read,
        answer,
        raw,
    }: NewSamples,
    sink: &mut K,
) -> io::Result<()>
where
    K: FnMut(&JudgedPoint<'_>) -> io::Result<()>,
{
    let query = &engine.config.queries[index];
    let mut data = match answer {
        Err((kind, message)) => {
            let mut state = engine.lock();
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
            drop_stale(&mut state, index, now, &engine.config);
            return Ok(());
        }
        Ok(data) => data,
    };
    // Another shard's series are not this watch's business.
    let shard = engine.config.shard;
    data.retain(|series| shard.owns(&series.labels));

    // Bookkeeping: new series, last-seen times, what to judge.
    let mut jobs = Vec::new();
    {
        let mut guard = engine.lock();
        let state = &mut *guard;
        let q = &mut state.queries[index];
        if !q.up {
            tracing::info!(query = %query.name, series = data.len(), "query answers");
        }
        q.up = true;
        q.read_through_ms = Some(now);
        q.newest_sample_ms = data
            .iter()
            .filter_map(|d| d.timestamps.last().copied())
            .max()
            .or(q.newest_sample_ms);
        if let Some(raw) = &raw {
            raw.record(q, now);
        }
        let mut new = Vec::new();
        let cells = query.infer_points();
        for mut data in data {
            let Some(series) = q.series.get_mut(&data.labels) else {
                new.push(data);
                continue;
            };
            if let Some(read) = &read {
                (data.timestamps, data.values) =
                    series
                        .recent
                        .complete(read, cells, data.timestamps, data.values);
            }
            series.last_seen_ms = now;
            if let Some(&newest) = data.timestamps.last() {
                series.last_sample_ms = series.last_sample_ms.max(newest);
            }
            if let Some(job) = infer_job(series, data, now) {
                jobs.push(job);
            }
        }
        // Stopped series go before live ones are refused: a series at the limit may take the
        // place of a stopped one (`stopped.rs`), the one with the oldest newest sample first.
        let mut room = Evictions::default();
        for mut data in new {
            let newest = data.timestamps.last().copied();
            let raw_ms = raw.as_ref().and_then(|raw| raw.of(&data.labels));
            // A forgotten series comes back only with a newer sample than it was forgotten with.
            if state.queries[index].stays_forgotten(&data.labels, newest) {
                continue;
            }
            if state.total_series >= engine.config.max_series {
                // A series that has already stopped takes no one's place, and is no error.
                let q = &state.queries[index];
                if newest.is_none_or(|t| stopped::is_behind(q, t, raw_ms, query.step_ms(), now)) {
                    continue;
                }
            }
            if state.total_series >= engine.config.max_series
                && !room.evict_one(state, &engine.config, now)
            {
                state.queries[index].error(ErrorKind::SeriesLimit);
                continue;
            }
            let q = &mut state.queries[index];
            state.total_series += 1;
            q.series_created += 1;
            tracing::debug!(query = %query.name, series = %data.labels, "new series");
            // What the answers before this one held is history, not new.
            let newest = newest.unwrap_or(now);
            let series = q.track(
                &query.name,
                query.detector.name(),
                data.labels.clone(),
                |text| SeriesState::new(text, now, newest, after),
            );
            series.raw_sample_ms = raw_ms;
            if let Some(read) = &read {
                (data.timestamps, data.values) =
                    series
                        .recent
                        .complete(read, cells, data.timestamps, data.values);
            }
            if let Some(job) = infer_job(series, data, now) {
                jobs.push(job);
            }
        }
        // A series missing from this answer exports nothing (its model stays until it is stale);
        // it had no sample at the steps read.
        for series in state.queries[index].series.values_mut() {
            if series.last_seen_ms != now {
                series.last = None;
                if let Some(read) = &read {
                    series.recent.record(read, cells, &[], &[]);
                }
            }
        }
        drop_stale(state, index, now, &engine.config);
    }

    // Judging, outside the lock (the service is on the blocking pool already), a chunk at a
    // time: each chunk's analyses go to the sink and into the state, and are dropped, before
    // the next, so that 100,000 series never hold 100,000 analyses at once.
    let write_back = |results: Vec<(InferJob, Outcome)>| -> io::Result<()> {
        // Every new sample to the sink, outside the lock.
        for (job, outcome) in &results {
            emit(&query.name, job, outcome, sink)?;
        }
        let mut state = engine.lock();
        let q = &mut state.queries[index];
        for (job, outcome) in results {
            let Some(series) = q.series.get_mut(&job.data.labels) else {
                continue;
            };
            series.stream = job.stream;
            let start = job.data.timestamps.first().copied().unwrap_or(now);
            let newest = match &outcome {
                Outcome::Judged(a) => {
                    series.anomalies += a.flagged().count() as u64;
                    // The page's alerts of the last hour and day.
                    q.alert_times.extend(a.flagged().map(|i| a.timestamps[i]));
                    a.last_judged().and_then(|i| Point::judged(a, i))
                }
                Outcome::NoModel { .. } => None,
                Outcome::Failed { error, .. } => {
                    tracing::warn!(query = %query.name, series = %job.data.labels, "analysis failed: {error}");
                    q.errors[ErrorKind::AnalyseFailed as usize] += 1;
                    None
                }
            };
            if let Some(point) = &newest {
                series.scored_ms = Some(point.timestamp_ms);
            }
            series.last = newest.or(series.last.filter(|p| p.timestamp_ms >= start));
            series.note_wait(query, &job.data.labels, now, || {
                "its model judged no point: too many NaN or infinite values in the detector's context".into()
            });
        }
        Ok(())
    };
    judge_all(engine.exec, &query.knowledge, jobs, write_back)?;
    let mut state = engine.lock();
    let q = &mut state.queries[index];
    q.infer_durations.observe(started.elapsed().as_secs_f64());
    q.keep_alert_times(now);
    drop(state);
    engine.rounds.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The share of each inference period that one query's fits may fill on the fit slots, in
/// the service: a round whose fits (at the query's mean fit time) fit in it runs at once, after
/// one read of the fit window; a larger one is spread over as many inference periods as it
/// needs (a read each), series without a model first, and series fitted at different ticks stay
/// apart in later rounds, each due `fit_every` after its own fit. Rolling detectors' rounds
/// (0.02 ms a fit) never spread; 10,000 LSTM series (~11 ms a fit) spread over ~8 periods of
/// 30 s on one slot, so inference never shares the machine with a whole round at once.
const FIT_SHARE: f64 = 0.5;

/// A series due for a fit.
struct Due {
    has_model: bool,
    next_fit_ms: i64,
    labels: Labels,
}

/// Which of the `due` series a round fits now: all of them when their fits, with `in_flight`
/// fits still queued or running and `mean_fit_s` each, fit in `budget_s` (or the mean is not
/// known yet); else as many as fit, at least one when none is in flight, those without a model
/// first, then the longest due.
fn within_budget(
    mut due: Vec<Due>,
    in_flight: usize,
    mean_fit_s: Option<f64>,
    budget_s: f64,
) -> Vec<Labels> {
    if let Some(mean) = mean_fit_s.filter(|m| *m > 0.0) {
        let room = budget_s - in_flight as f64 * mean;
        let mut take = (room / mean).floor().max(0.0) as usize;
        if in_flight == 0 {
            take = take.max(1);
        }
        if due.len() > take {
            due.sort_by_key(|d| (d.has_model, d.next_fit_ms));
            due.truncate(take);
        }
    }
    due.into_iter().map(|d| d.labels).collect()
}

/// One fit round of query `index` at the clock's time: when series are due for a (re)fit (as
/// many as [`FIT_SHARE`] lets in, in the service), one read of the fit window, then one fit per
/// due series that has `min_history`.
pub(crate) async fn fit_once(engine: &Arc<Engine>, index: usize) {
    let query = &engine.config.queries[index];
    let now = engine.clock.now_ms();
    let fit_every = query.fit_every.as_millis() as i64;
    // The scan walks every series: off the async threads (it clones the due ones' labels).
    let due: Vec<Labels> = engine
        .off_async(move |engine| {
            engine.assert_off_async();
            let query = &engine.config.queries[index];
            let mut state = engine.lock();
            let q = &mut state.queries[index];
            let mut due = Vec::new();
            let (mut skipped, mut in_flight) = (0, 0);
            for (labels, series) in q.series.iter_mut() {
                in_flight += usize::from(series.fitting);
                if now < series.next_fit_ms {
                    continue;
                }
                if series.fitting {
                    // The previous fit still runs: skip this one, keep inferring with the last model.
                    skipped += 1;
                    series.next_fit_ms = now + fit_every;
                    tracing::debug!(query = %query.name, series = %labels, "fit skipped: the previous one still runs");
                } else {
                    due.push(Due {
                        has_model: series.model.is_some(),
                        next_fit_ms: series.next_fit_ms,
                        labels: labels.clone(),
                    });
                }
            }
            q.fits_skipped += skipped;
            if engine.exec == Exec::Pool {
                // A backtest fits inline on a simulated clock: spreading by measured time would
                // make its runs differ.
                let budget_s = query.infer_every.as_secs_f64() * engine.fit_slots as f64 * FIT_SHARE;
                let all = due.len();
                let due = within_budget(due, in_flight, q.fit_durations.mean(), budget_s);
                if due.len() < all {
                    tracing::debug!(query = %query.name, now = due.len(), later = all - due.len(), "fits spread over the next inference periods");
                }
                due
            } else {
                due.into_iter().map(|d| d.labels).collect()
            }
        })
        .await;
    if due.is_empty() {
        return;
    }
    let deadline = query.fit_deadline();
    let fetched = match engine.source.fetch(query, now, Want::Fit, deadline).await {
        Ok(fetched) => fetched,
        Err((kind, message)) => {
            let mut state = engine.lock();
            let q = &mut state.queries[index];
            if q.up {
                tracing::warn!(query = %query.name, "the fit window's query failed: {message}");
            } else {
                tracing::debug!(query = %query.name, "the fit window's query failed: {message}");
            }
            q.error(kind);
            // Not every cycle: a Prometheus that is down is already counted by inference.
            let retry = engine.clock.now_ms()
                + (query.infer_every * 10).min(query.fit_every).as_millis() as i64;
            for labels in &due {
                if let Some(series) = q.series.get_mut(labels) {
                    series.next_fit_ms = series.next_fit_ms.max(retry);
                }
            }
            return;
        }
    };
    let mut fetched: HashMap<Labels, (Vec<i64>, Vec<f64>)> = fetched
        .into_iter()
        .map(|s| (s.labels, (s.timestamps, s.values)))
        .collect();
    let min_history = query.detector.min_history();
    let mut jobs = Vec::new();
    {
        let mut state = engine.lock();
        let q = &mut state.queries[index];
        for labels in due {
            let Some(series) = q.series.get_mut(&labels) else {
                continue;
            };
            let (timestamps, values) = fetched.remove(&labels).unwrap_or_default();
            let finite = values.iter().filter(|v| v.is_finite()).count();
            if finite < min_history {
                // Not enough history yet: come back when there can be.
                let wait = query.step * (min_history - finite) as u32;
                series.next_fit_ms = now + wait.max(query.infer_every).as_millis() as i64;
                series.short_history = true;
                tracing::debug!(query = %query.name, series = %labels, finite, min_history, "not enough history to fit yet");
                series.note_wait(query, &labels, now, || {
                    format!("its fit window holds {finite} finite samples, the detector needs {min_history} (NaN and infinite values do not count)")
                });
                continue;
            }
            series.short_history = false;
            series.fitting = true;
            series.next_fit_ms = now + fit_every;
            jobs.push(FitJob {
                index,
                labels,
                spec: query.detector.clone(),
                timestamps,
                values,
            });
        }
    }
    match engine.exec {
        Exec::Pool => spawn_fit_workers(engine, jobs),
        Exec::Inline => {
            for job in jobs {
                job.run_inline(engine);
            }
        }
    }
}

/// How long one trip of a fit worker to the blocking pool lasts at most before it gives its fit
/// slot back (fits of other queries waiting for one then go first): long enough that a trip's
/// cost is nothing beside its fits, short enough that no query waits long on another's round.
const FIT_TRIP: Duration = Duration::from_millis(100);

/// The service's fits of one round, drained by one worker per fit slot (at most): each trip to
/// the blocking pool takes a slot and fits jobs for up to [`FIT_TRIP`]. At 100,000 series a
/// task and a trip per fit cost more than a rolling detector's fit itself, and every waiting
/// task held its series' history.
fn spawn_fit_workers(engine: &Arc<Engine>, jobs: Vec<FitJob>) {
    let workers = engine.fit_slots.min(jobs.len());
    let queue = Arc::new(Mutex::new(VecDeque::from(jobs)));
    for _ in 0..workers {
        tokio::spawn(fit_worker(engine.clone(), queue.clone()));
    }
}

/// One fit worker: trips to the blocking pool, one fit slot each, until the queue is empty or
/// the service stops (fits not started by then never start, and none counts as failed).
async fn fit_worker(engine: Arc<Engine>, queue: Arc<Mutex<VecDeque<FitJob>>>) {
    loop {
        let Ok(permit) = engine.fit_permits.clone().acquire_owned().await else {
            return; // Closed: the service stops.
        };
        let (working, jobs) = (engine.clone(), queue.clone());
        let trip = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let started = Instant::now();
            while started.elapsed() < FIT_TRIP {
                if working.stopping() {
                    return false;
                }
                let next = jobs.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some(job) = next else {
                    return false;
                };
                job.run_here(&working);
            }
            true
        })
        .await;
        // A trip that found the queue empty, or that the runtime cancelled (it shuts down),
        // ends the worker.
        if !matches!(trip, Ok(true)) {
            return;
        }
    }
}
/// What a panic said, if it said it as text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// One series' fit.
struct FitJob {
    index: usize,
    labels: Labels,
    spec: DetectorSpec,
    timestamps: Vec<i64>,
    values: Vec<f64>,
}

type FitOutcome = (promlearn_detect::Result<Arc<dyn Fitted>>, Duration);

impl FitJob {
    fn fit(&self, fit_fn: &FitFn) -> FitOutcome {
        let started = Instant::now();
        let result = fit_fn(&self.spec, &self.timestamps, &self.values);
        (result, started.elapsed())
    }

    /// The service: fit on this (blocking-pool) thread; a panicking fit counts as failed.
    fn run_here(self, engine: &Engine) {
        let fit_fn = &engine.fit_fn;
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.fit(fit_fn))) {
            Ok(outcome) => {
                // Written before the model is used: a kill after this point loses nothing.
                if let Ok(model) = &outcome.0 {
                    engine.after_fit(self.index, &self.labels, model.as_ref());
                }
                self.finish(engine, outcome);
            }
            Err(panic) => {
                let name = &engine.config.queries[self.index].name;
                let message = panic_message(&*panic);
                tracing::error!(query = %name, series = %self.labels, "fit panicked: {message}");
                let mut state = engine.lock();
                let q = &mut state.queries[self.index];
                q.error(ErrorKind::FitFailed);
                if let Some(series) = q.series.get_mut(&self.labels) {
                    series.fitting = false;
                }
            }
        }
    }

    /// A backtest: fit here and now.
    fn run_inline(self, engine: &Engine) {
        let outcome = self.fit(&engine.fit_fn);
        if let Ok(model) = &outcome.0 {
            engine.after_fit(self.index, &self.labels, model.as_ref());
        }
        self.finish(engine, outcome);
    }

    /// Records the fit's result: the new model replaces the old one; the stream goes on.
    fn finish(&self, engine: &Engine, (result, took): FitOutcome) {
        let name = &engine.config.queries[self.index].name;
        let mut state = engine.lock();
        let q = &mut state.queries[self.index];
        q.fit_durations.observe(took.as_secs_f64());
        match result {
            Ok(model) => {
                q.fits += 1;
                q.last_fit_unix = Some(engine.clock.now_ms() as f64 / 1000.0);
                if let Some(series) = q.series.get_mut(&self.labels) {
                    series.fitting = false;
                    if series.model.is_none() {
                        tracing::debug!(query = %name, series = %self.labels, "first model fitted in {took:?}");
                    }
                    series.model = Some(model);
                }
            }
            Err(e) => {
                tracing::warn!(query = %name, series = %self.labels, "fit failed: {e}");
                q.error(ErrorKind::FitFailed);
                if let Some(series) = q.series.get_mut(&self.labels) {
                    series.fitting = false;
                }
            }
        }
    }
}
