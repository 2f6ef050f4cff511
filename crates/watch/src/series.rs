//! The per-series state: its fitted model, where its stream has been judged up to, when its next
//! fit is due and what it exports; and the per-query state that holds them with the query's
//! counters; and how series are forgotten (`stale_after`; room made at `max_series` is
//! `stopped.rs`'s).
//!
//! Nothing here knows what time it is or where samples come from: the schedule hands in the time
//! and the samples.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use promlearn_detect::{Analysis, DomainKnowledge, Fitted, StreamState};
use promlearn_loader::Labels;

use crate::{Config, histogram::Histogram, labels::unique_label_text};

/// What counts as an error, by kind (the `kind` label of `promlearn_watch_errors_total`).
pub const ERROR_KINDS: [&str; 5] = [
    "query_failed",
    "timeout",
    "fit_failed",
    "analyse_failed",
    "series_limit",
];

/// An error kind; its value indexes [`ERROR_KINDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    QueryFailed = 0,
    Timeout = 1,
    FitFailed = 2,
    AnalyseFailed = 3,
    SeriesLimit = 4,
}

/// One judged point of a series, as exported: the newest one is what `/metrics` shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    /// Unix ms.
    pub timestamp_ms: i64,
    pub value: f64,
    pub yhat: f64,
    pub yhat_lower: f64,
    pub yhat_upper: f64,
    pub score: f64,
    pub anomalous: bool,
}

impl Point {
    /// Point `i` of `analysis`, if the detector judged it.
    pub(crate) fn judged(analysis: &Analysis, i: usize) -> Option<Point> {
        (!analysis.score[i].is_nan()).then(|| Point {
            timestamp_ms: analysis.timestamps[i],
            value: analysis.values[i],
            yhat: analysis.yhat[i],
            yhat_lower: analysis.yhat_lower[i],
            yhat_upper: analysis.yhat_upper[i],
            score: analysis.score[i],
            anomalous: analysis.anomalous[i],
        })
    }
}

/// Where a series' stream has been judged up to: every sample at or before `through_ms` has been
/// handed on (judged, or passed by for want of a model) exactly once, and is only context from
/// now on. Beside it, the detector's own [`StreamState`]. Both outlive refits.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Stream {
    pub through_ms: Option<i64>,
    /// The detector's state; it only moves when a model judges, so it may lag the mark (samples
    /// passed by before the first model).
    pub detector: StreamState,
}

impl Stream {
    /// A stream whose samples up to `through_ms` (if given) count as already judged.
    pub(crate) fn starting_after(through_ms: Option<i64>) -> Stream {
        Stream {
            through_ms,
            detector: StreamState::new(),
        }
    }

    /// The index of the first sample of `timestamps` (ascending) not yet judged.
    pub(crate) fn first_new(&self, timestamps: &[i64]) -> usize {
        match self.through_ms {
            None => 0,
            Some(t) => timestamps.partition_point(|&ts| ts <= t),
        }
    }

    /// Judges the samples newer than the mark with the detector's `Fitted::advance_knowing`
    /// (what is known about the query's metric applied in its alerting stage), the earlier
    /// ones serving as context, moves the mark past them, and returns the analysis of exactly
    /// the new samples.
    pub(crate) fn judge(
        &mut self,
        model: &dyn Fitted,
        knowledge: &DomainKnowledge,
        timestamps: &[i64],
        values: &[f64],
    ) -> promlearn_detect::Result<Analysis> {
        let first = self.first_new(timestamps);
        let analysis = model.advance_knowing(&mut self.detector, knowledge, timestamps, values)?;
        self.pass_over(timestamps);
        let new = timestamps.len() - first;
        // The detector's state lags the mark until its first judgement: it then returns the
        // samples passed by before too, which are not new.
        if analysis.len() == new {
            return Ok(analysis);
        }
        if analysis.len() > new {
            return Ok(analysis.slice(analysis.len() - new..analysis.len()));
        }
        // Never expected (the detector's state is never ahead of the mark); if it were, the
        // samples it did not return are handed on unjudged rather than lost.
        let mut full = analysis.slice(0..0);
        for i in first..timestamps.len() {
            let j = analysis.timestamps.binary_search(&timestamps[i]).ok();
            full.timestamps.push(timestamps[i]);
            full.values.push(values[i]);
            let pick = |column: &[f64]| j.map_or(f64::NAN, |j| column[j]);
            full.yhat.push(pick(&analysis.yhat));
            full.yhat_lower.push(pick(&analysis.yhat_lower));
            full.yhat_upper.push(pick(&analysis.yhat_upper));
            full.score.push(pick(&analysis.score));
            full.anomalous
                .push(j.is_some_and(|j| analysis.anomalous[j]));
        }
        Ok(full)
    }

    /// Moves the mark past `timestamps` without judging them; returns the index of the first
    /// sample that was new.
    pub(crate) fn pass_over(&mut self, timestamps: &[i64]) -> usize {
        let first = self.first_new(timestamps);
        if first < timestamps.len() {
            self.through_ms = timestamps.last().copied();
        }
        first
    }
}

/// One series of a query.
pub(crate) struct SeriesState {
    /// The label set written with every value of this series, escaped and without braces:
    /// `query`, `detector`, then its own labels with clashes renamed (`labels::label_text`).
    /// Shared, so that a `/metrics` snapshot copies a pointer, not the strings.
    pub label_text: Arc<str>,
    pub model: Option<Arc<dyn Fitted>>,
    pub stream: Stream,
    pub fitting: bool,
    /// When the next fit is due (unix ms on the schedule's clock).
    pub next_fit_ms: i64,
    /// When an answer last held this series (unix ms on the schedule's clock).
    pub last_seen_ms: i64,
    /// The timestamp of its newest sample in any answer (unix ms): staleness is measured from
    /// it, not from when an answer last held the series (a range query keeps returning a
    /// stopped series for as long as its range reaches back to the last sample).
    pub last_sample_ms: i64,
    /// The timestamp of its newest raw sample (unix ms), when it was last asked for (only when
    /// room is needed at `max_series`: `stopped.rs`): an evaluated step may carry a sample the
    /// series no longer has, this cannot.
    pub raw_sample_ms: Option<i64>,
    /// When the series was first tracked (unix ms on the schedule's clock).
    pub since_ms: i64,
    /// Its last fit round found too few finite samples (`min_history`): it has no model, or its
    /// model is older than what its history now holds.
    pub short_history: bool,
    /// When its newest point was judged (unix ms of the point), if one ever was.
    pub scored_ms: Option<i64>,
    /// Whether the series' long wait for a score (past its `fit_window`) was logged.
    pub wait_logged: bool,
    /// The newest judged point; `None` while the query fails, the series is absent, or no point
    /// in the latest answer was judged, so that nothing old is exported.
    pub last: Option<Point>,
    /// Points flagged since the series was first tracked: every alert counts, also one that is
    /// not the newest point of its inference round, and a scrape that comes late misses none.
    pub anomalies: u64,
    /// Its samples over the last steps read from Prometheus, so that the next inference reads
    /// only what is new (`recent.rs`).
    pub recent: crate::recent::Recent,
}

impl SeriesState {
    /// A series first seen at `now_ms` (its newest sample at `last_sample_ms`), due for a fit
    /// at once, whose samples up to `through_ms` count as judged; exported with `label_text`.
    pub(crate) fn new(
        label_text: Arc<str>,
        now_ms: i64,
        last_sample_ms: i64,
        through_ms: Option<i64>,
    ) -> SeriesState {
        SeriesState {
            label_text,
            model: None,
            stream: Stream::starting_after(through_ms),
            fitting: false,
            next_fit_ms: now_ms,
            last_seen_ms: now_ms,
            last_sample_ms,
            raw_sample_ms: None,
            since_ms: now_ms,
            short_history: false,
            scored_ms: None,
            wait_logged: false,
            last: None,
            anomalies: 0,
            recent: Default::default(),
        }
    }
}

/// One query: its series and counters.
#[derive(Default)]
pub(crate) struct QueryState {
    pub up: bool,
    pub series: BTreeMap<Labels, SeriesState>,
    /// The clock's time of the last inference that read an answer: samples after it are new.
    pub read_through_ms: Option<i64>,
    /// The newest sample of any series in the last answer (unix ms): a series more than a step
    /// behind it has stopped.
    pub newest_sample_ms: Option<i64>,
    /// The newest raw sample of any series (unix ms), when raw timestamps were last asked for
    /// (`stopped.rs`), and when that was (the clock's time of that inference).
    pub newest_raw_ms: Option<i64>,
    pub raw_asked_ms: Option<i64>,
    /// Series forgotten (stale, or to make room) with the newest sample they had then: one
    /// comes back only with a newer sample, so that a range that still returns a stopped series
    /// does not bring it back (and log it again) every cycle. Pruned once such a sample can no
    /// longer be in a read (`prune_forgotten`).
    pub forgotten: HashMap<Labels, i64>,
    /// Series forgotten, by [`DROP_REASONS`].
    pub dropped: [u64; DROP_REASONS.len()],
    /// Every exported label text of the query's series: no two series share one (`export.rs`).
    pub texts: HashSet<Arc<str>>,
    pub series_created: u64,
    pub errors: [u64; ERROR_KINDS.len()],
    pub fits_skipped: u64,
    pub fits: u64,
    pub fit_durations: Histogram,
    pub infer_durations: Histogram,
    pub last_fit_unix: Option<f64>,
    /// When its flagged points were (unix ms, oldest first), for the web page's alerts of the
    /// last hour and day: those older than a day go at each inference, and at most
    /// [`ALERT_TIMES`] are kept (the page then says "at least").
    pub alert_times: std::collections::VecDeque<i64>,
}

/// The most alert times a query keeps for the web page.
pub(crate) const ALERT_TIMES: usize = 10_000;

impl QueryState {
    pub(crate) fn error(&mut self, kind: ErrorKind) {
        self.errors[kind as usize] += 1;
    }

    /// Forgets the alert times older than a day before `now_ms`, and any beyond the cap.
    pub(crate) fn keep_alert_times(&mut self, now_ms: i64) {
        let day_ago = now_ms - 86_400_000;
        while let Some(&t) = self.alert_times.front() {
            if t >= day_ago && self.alert_times.len() <= ALERT_TIMES {
                break;
            }
            self.alert_times.pop_front();
        }
    }

    /// Tracks a series, exported with a label text no other series of the query has
    /// (`labels::unique_label_text`); `make` builds its state around that text. The caller
    /// counts it in [`State::total_series`].
    pub(crate) fn track(
        &mut self,
        query: &str,
        detector: &str,
        labels: Labels,
        make: impl FnOnce(Arc<str>) -> SeriesState,
    ) -> &mut SeriesState {
        self.forgotten.remove(&labels);
        let text = unique_label_text(query, detector, &labels, &self.texts);
        self.texts.insert(text.clone());
        self.series.entry(labels).or_insert_with(|| make(text))
    }

    /// Forgets a series: its label text is free again, it is counted and logged (once: it is
    /// remembered with its newest sample and does not come back without a newer one).
    pub(crate) fn forget(
        &mut self,
        labels: Labels,
        series: &SeriesState,
        reason: DropReason,
        why: &str,
    ) {
        self.texts.remove(&series.label_text);
        self.dropped[reason as usize] += 1;
        tracing::info!(series = %labels, "series dropped: {why}");
        self.forgotten.insert(labels, series.last_sample_ms);
    }

    /// Whether a series absent from the state is one that was forgotten and has no sample
    /// newer than the one it was forgotten with (`newest_ms`, its newest in this answer).
    pub(crate) fn stays_forgotten(&self, labels: &Labels, newest_ms: Option<i64>) -> bool {
        self.forgotten
            .get(labels)
            .is_some_and(|&last| newest_ms.is_none_or(|t| t <= last))
    }

    /// Lets go of forgotten series whose newest sample is older than `oldest_read_ms` (the
    /// start of the widest read a query makes): no answer can bring that sample back.
    fn prune_forgotten(&mut self, oldest_read_ms: i64) {
        self.forgotten.retain(|_, last| *last >= oldest_read_ms);
        if self.forgotten.capacity() > 4 * self.forgotten.len().max(16) {
            self.forgotten.shrink_to_fit();
        }
    }
}

/// Why a tracked series gets no score (the `reason` label of `promlearn_watch_series_unscored`).
pub const UNSCORED_REASONS: [&str; 2] = ["not_enough_history", "no_score"];

impl SeriesState {
    /// Why the series gets no score at `now_ms` (an index of [`UNSCORED_REASONS`]), if it
    /// does not: its last fit round found too few finite samples, or it has a model but judged
    /// no point over `wait_ms` (its fit window) since it was tracked or last scored.
    pub(crate) fn unscored(&self, now_ms: i64, wait_ms: i64) -> Option<usize> {
        if self.short_history {
            return Some(0);
        }
        let waited = now_ms - self.scored_ms.unwrap_or(self.since_ms).max(self.since_ms);
        (self.model.is_some() && waited > wait_ms).then_some(1)
    }
}

impl SeriesState {
    /// Logs, once per wait, that the series has got no score for longer than its fit window
    /// (`reason` says why); a score ends the wait.
    pub(crate) fn note_wait(
        &mut self,
        query: &crate::QueryConfig,
        labels: &Labels,
        now_ms: i64,
        reason: impl FnOnce() -> String,
    ) {
        let wait_ms = query.fit_window.as_millis() as i64;
        match self.unscored(now_ms, wait_ms) {
            None if self.scored_ms.is_some() => self.wait_logged = false,
            Some(_) if !self.wait_logged && now_ms - self.since_ms > wait_ms => {
                self.wait_logged = true;
                tracing::info!(query = %query.name, series = %labels, "series not scored for longer than its fit_window ({}): {}", promlearn_duration::format(query.fit_window), reason());
            }
            _ => {}
        }
    }
}

impl QueryState {
    /// How many series get no score at `now_ms`, by [`UNSCORED_REASONS`].
    pub(crate) fn unscored(
        &self,
        config: &crate::QueryConfig,
        now_ms: i64,
    ) -> [usize; UNSCORED_REASONS.len()] {
        let mut counts = [0; UNSCORED_REASONS.len()];
        let wait_ms = config.fit_window.as_millis() as i64;
        for series in self.series.values() {
            if let Some(reason) = series.unscored(now_ms, wait_ms) {
                counts[reason] += 1;
            }
        }
        counts
    }
}

/// Why a series was forgotten (the `reason` label of `promlearn_watch_series_dropped_total`).
pub const DROP_REASONS: [&str; 2] = ["stale", "stopped_at_max_series"];

/// A reason; its value indexes [`DROP_REASONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    Stale = 0,
    StoppedAtMaxSeries = 1,
}

/// Every query's state, and the series bound they share.
pub(crate) struct State {
    pub queries: Vec<QueryState>,
    pub total_series: usize,
    /// Series forgotten (all queries, all reasons) when memory was last given back.
    pub dropped_at_trim: u64,
}

/// [`State`] behind the engine's one lock, which is only held for bookkeeping, never across an
/// `.await`, a fit, an analysis or a caller's sink.
pub(crate) struct StateLock(Mutex<State>);

impl StateLock {
    /// The state of `queries` queries, none tracking a series yet.
    pub(crate) fn new(queries: usize) -> StateLock {
        StateLock(Mutex::new(State {
            queries: (0..queries).map(|_| QueryState::default()).collect(),
            total_series: 0,
            dropped_at_trim: 0,
        }))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters behind; keep serving them.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// After how many forgotten series the allocator is asked to give freed memory back.
const TRIM_AFTER_DROPS: u64 = 1000;

/// Gives memory back to the system once [`TRIM_AFTER_DROPS`] series were forgotten since it
/// last did (the service calls it after each inference, on the blocking pool). glibc keeps what
/// other threads freed in its per-thread arenas: under churn (pods replaced) the held state
/// comes back down, but without this the resident memory stayed at its high-water mark (the
/// churn part of `cargo xtask bench watch` measures both). A few milliseconds a call.
pub(crate) fn trim_after_drops(state: &StateLock) {
    {
        let mut state = state.lock();
        let dropped: u64 = state.queries.iter().flat_map(|q| q.dropped).sum();
        if dropped < state.dropped_at_trim + TRIM_AFTER_DROPS {
            return;
        }
        state.dropped_at_trim = dropped;
    }
    give_memory_back();
}

/// Asks glibc to hand the free pages of every arena back to the system: memory freed by
/// another thread than the one that allocated it stays in that thread's arena otherwise.
pub(crate) fn give_memory_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only hands free pages back to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

// ---- forgetting series: staleness and room at max_series ----------------------------------

/// How old a series' newest sample may be before the series is forgotten: `stale_after`, but at
/// least two steps, so that a series sampled once per step is never taken for stopped.
pub(crate) fn stale_ms(config: &Config, query: usize) -> i64 {
    (config.stale_after.as_millis() as i64).max(2 * config.queries[query].step_ms())
}

/// Drops the series of query `index` whose newest sample is older than [`stale_ms`] at `now_ms`.
pub(crate) fn drop_stale(state: &mut State, index: usize, now_ms: i64, config: &Config) {
    let q = &mut state.queries[index];
    let stale_ms = stale_ms(config, index);
    let stale: Vec<Labels> = q
        .series
        .iter()
        .filter(|(_, series)| now_ms - series.last_sample_ms > stale_ms)
        .map(|(labels, _)| labels.clone())
        .collect();
    let why = format!(
        "no sample for {}",
        promlearn_duration::format(Duration::from_millis(stale_ms as u64))
    );
    for labels in stale {
        if let Some(series) = q.series.remove(&labels) {
            q.forget(labels, &series, DropReason::Stale, &why);
            state.total_series -= 1;
        }
    }
    // The widest read: a fit window, or an inference's (`source::infer_points_since`).
    let query = &config.queries[index];
    let widest = query.fit_points().max(query.infer_points()) as i64 + 1;
    q.prune_forgotten(now_ms - widest * query.step_ms() - stale_ms);
}

#[cfg(test)]
mod tests {
    use promlearn_detect::DetectorSpec;

    use super::*;

    /// A model whose `advance` returns the last `keep` points of what it is given (all of them
    /// when `keep` is `usize::MAX`), each judged with its value as the score.
    #[derive(Debug)]
    struct Tail {
        spec: DetectorSpec,
        keep: usize,
    }

    impl Fitted for Tail {
        fn spec(&self) -> &DetectorSpec {
            &self.spec
        }

        fn analyse(&self, t: &[i64], v: &[f64]) -> promlearn_detect::Result<Analysis> {
            let n = t.len();
            Ok(Analysis {
                detector: "tail".into(),
                timestamps: t.to_vec(),
                values: v.to_vec(),
                yhat: vec![0.0; n],
                yhat_lower: vec![-1.0; n],
                yhat_upper: vec![1.0; n],
                score: v.to_vec(),
                anomalous: v.iter().map(|v| *v > 1.0).collect(),
            })
        }

        fn advance(
            &self,
            _state: &mut StreamState,
            t: &[i64],
            v: &[f64],
        ) -> promlearn_detect::Result<Analysis> {
            let a = self.analyse(t, v)?;
            Ok(a.slice(t.len().saturating_sub(self.keep)..t.len()))
        }
    }

    #[test]
    fn judging_returns_exactly_the_new_points_whatever_the_detector_returns() {
        let spec = DetectorSpec::from_name("zscore").unwrap();
        let (t, v) = ([10, 20, 30, 40], [0.1, 0.2, 3.0, 0.4]);
        // The detector's state lags the mark: it returns more than is new.
        let all = Tail {
            spec: spec.clone(),
            keep: usize::MAX,
        };
        let mut stream = Stream::starting_after(Some(20));
        let a = stream
            .judge(&all, &DomainKnowledge::default(), &t, &v)
            .unwrap();
        assert_eq!(a.timestamps, [30, 40]);
        assert_eq!(a.anomalous, [true, false]);
        assert_eq!(stream.through_ms, Some(40));
        assert_eq!(
            stream
                .judge(&all, &DomainKnowledge::default(), &t, &v)
                .unwrap()
                .len(),
            0,
            "nothing new"
        );
        // It returns less than is new: the rest is handed on unjudged, not lost.
        let one = Tail { spec, keep: 1 };
        let mut stream = Stream::starting_after(Some(10));
        let a = stream
            .judge(&one, &DomainKnowledge::default(), &t, &v)
            .unwrap();
        assert_eq!(a.timestamps, [20, 30, 40]);
        assert!(a.score[0].is_nan() && a.score[1].is_nan() && a.score[2] == 0.4);
        assert_eq!(a.anomalous, [false, false, false]);
    }

    /// What one series costs, for the README's sizing: the state, its key (the label set), its
    /// exported label text and a rolling model, on the benchmark's label set. (The allocator's
    /// own overhead, 8 to 16 bytes per allocation, and the map's slack come on top.)
    #[test]
    fn a_series_with_a_rolling_model_costs_about_a_kibibyte() {
        use std::mem::size_of;
        let labels = Labels::from_pairs([
            ("__name__", "coredns_like_rate"),
            ("instance", "node-00042:9153"),
            ("type", "AAAA"),
            ("zone", "example.org."),
        ]);
        let key = size_of::<Labels>()
            + labels
                .iter()
                .map(|(n, v)| size_of::<(String, String)>() + n.len() + v.len())
                .sum::<usize>();
        let text = crate::labels::label_text("zscore", "zscore", &labels);
        let t: Vec<i64> = (0..200).map(|i| i * 10_000).collect();
        let v: Vec<f64> = (0..200).map(|i| 50.0 + (i as f64 * 0.3).sin()).collect();
        let model = DetectorSpec::from_name("zscore")
            .unwrap()
            .fit(&t, &v)
            .unwrap();
        // The Arc's two counts, then the model.
        let model_bytes = 16 + std::mem::size_of_val(&*model);
        let state = size_of::<SeriesState>();
        // The samples it keeps for the next read: one cell per step of the window, the
        // detector's context and the points read again; the bench's zscore(20) (the default
        // window of 60 keeps 96 cells, 768 B).
        let spec: DetectorSpec =
            serde_json::from_str(r#"{"kind": "zscore", "window": 20}"#).unwrap();
        let recent = (spec.context() + 1 + crate::INFER_EXTRA_POINTS) * size_of::<f64>();
        let total = state + key + text.len() + 16 + model_bytes + recent;
        eprintln!(
            "per series: SeriesState {state} B (its Stream {} B, newest Point {} B), label set \
             {key} B, label text {} B, zscore model {model_bytes} B, recent samples {recent} B: \
             {total} B",
            size_of::<Stream>(),
            size_of::<Option<Point>>(),
            text.len() + 16,
        );
        assert!(total < 1200, "a series costs {total} bytes");
        // What the map promises besides the model (the bench's label set and zscore(20)).
        assert!(
            total - model_bytes < 1100,
            "a series costs {} bytes besides its model",
            total - model_bytes
        );
    }

    #[test]
    fn a_stream_hands_on_only_what_is_newer_than_its_mark() {
        let ts = [10, 20, 30, 40];
        assert_eq!(Stream::default().first_new(&ts), 0);
        assert_eq!(Stream::starting_after(Some(20)).first_new(&ts), 2);
        assert_eq!(Stream::starting_after(Some(25)).first_new(&ts), 2);
        assert_eq!(Stream::starting_after(Some(40)).first_new(&ts), 4);
        assert_eq!(Stream::starting_after(Some(5)).first_new(&ts), 0);
    }
}
