//! Which series have stopped, judged by the samples they really have, and which of them make
//! room for a live one at `max_series` ([`Evictions`]).
//!
//! A range query's answer cannot tell: the server's look-back carries a series' last sample
//! to the following steps (one step on VictoriaMetrics with its detected interval, up to five
//! minutes on Prometheus without a staleness marker), so a series that stopped this cycle
//! still has a value at the newest step, beside the live series that replace it. At
//! `max_series` that made the new, live series wait (refused) until the stopped ones fell a
//! step behind.
//!
//! So when room may be needed, and only then, the inference asks one instant query more,
//! `timestamp(<expr>)` at the end of its read: for a series selector both Prometheus and
//! VictoriaMetrics answer each series' newest raw sample's timestamp (for other expressions
//! the evaluation time, which keeps such series live, as their values are evaluated anew at
//! every step). A series stopped when its newest raw sample is at least a step older than the
//! query's newest raw sample, or when it has none in the look-back. This is the cheapest read
//! that knows: a raw-sample load (remote read, export) reads only plain selectors and every
//! sample of the range, a `timestamp()` range query doubles every inference's read, and the
//! values of an answer cannot tell a carried sample from a series whose value did not move.
//! The answer's labels lack `__name__` (`timestamp()` drops it), so series are matched without
//! it; when that is ambiguous or the query fails, the evaluated steps decide, as before.

use std::{collections::HashMap, time::Duration};

use promlearn_loader::{Client, Labels};

use crate::{
    Config, QueryConfig,
    series::{DropReason, QueryState, SeriesState, State, StateLock},
    source::{FetchError, SeriesData, Source},
};

/// After an inference's read at `now_ms` from Prometheus: each series' newest raw sample, when
/// the answer holds more series than there is room for (the query's own and the others'
/// together; an answer holding forgotten or other shards' series may ask needlessly, which
/// costs one instant query). `None` when there is room, from memory (no look-back carries a
/// sample there) and when the question fails (the evaluated steps then decide).
pub(crate) async fn ask_if_room_needed(
    source: &Source,
    config: &Config,
    state: &StateLock,
    index: usize,
    now_ms: i64,
    answer: &Result<Vec<SeriesData>, FetchError>,
) -> Option<RawNewest> {
    let (Source::Prometheus(client), Ok(data)) = (source, answer) else {
        return None;
    };
    let others = {
        let state = state.lock();
        state.total_series - state.queries[index].series.len()
    };
    if others + data.len() <= config.max_series {
        return None;
    }
    let query = &config.queries[index];
    let step = query.step_ms();
    let end = now_ms.div_euclid(step) * step;
    match RawNewest::ask(client, query, end, query.infer_every).await {
        Ok(raw) => Some(raw),
        Err(e) => {
            tracing::debug!(query = %query.name, "the newest raw samples were not read ({e}); stopped series are judged by the evaluated steps");
            None
        }
    }
}

/// Each series' newest raw sample (unix ms), keyed by its labels without `__name__`.
#[derive(Debug, Default)]
pub(crate) struct RawNewest {
    newest: HashMap<Labels, i64>,
}

/// A series' labels without `__name__`, as `timestamp()` answers them.
fn without_name(labels: &Labels) -> Labels {
    Labels::from_pairs(labels.iter().filter(|(name, _)| *name != "__name__"))
}

impl RawNewest {
    /// Asks `timestamp(<expr>)` at `at_ms` within `deadline`.
    pub(crate) async fn ask(
        client: &Client,
        query: &QueryConfig,
        at_ms: i64,
        deadline: Duration,
    ) -> Result<RawNewest, String> {
        let expr = format!("timestamp({})", query.expr);
        let answer = match tokio::time::timeout(deadline, client.query(&expr, Some(at_ms))).await {
            Err(_) => return Err("no answer in time".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(answer)) => answer,
        };
        let mut newest = HashMap::with_capacity(answer.series.len());
        for series in answer.series {
            let Some(&seconds) = series.values.last() else {
                continue;
            };
            if !seconds.is_finite() {
                continue;
            }
            let labels = without_name(&series.labels);
            if newest
                .insert(labels, (seconds * 1000.0).round() as i64)
                .is_some()
            {
                return Err("two series with the same labels but for their name".into());
            }
        }
        Ok(RawNewest { newest })
    }

    /// The newest raw sample of a series with `labels`, if it has one in the look-back.
    pub(crate) fn of(&self, labels: &Labels) -> Option<i64> {
        self.newest.get(&without_name(labels)).copied()
    }

    /// Records each series' newest raw sample in the query's state, asked at `now_ms`.
    pub(crate) fn record(&self, q: &mut QueryState, now_ms: i64) {
        q.newest_raw_ms = self.newest.values().copied().max();
        q.raw_asked_ms = Some(now_ms);
        for (labels, series) in q.series.iter_mut() {
            series.raw_sample_ms = self.of(labels);
        }
    }
}

/// Whether a series has stopped, at `now_ms` in query `q` (step `step_ms`): by its raw samples
/// when they were asked this cycle, else by its evaluated steps (more than a step behind the
/// query's newest).
pub(crate) fn has_stopped(q: &QueryState, series: &SeriesState, step_ms: i64, now_ms: i64) -> bool {
    is_behind(
        q,
        series.last_sample_ms,
        series.raw_sample_ms,
        step_ms,
        now_ms,
    )
}

/// [`has_stopped`] for a series with newest evaluated sample `evaluated_ms` and newest raw
/// sample `raw_ms` (as asked this cycle).
pub(crate) fn is_behind(
    q: &QueryState,
    evaluated_ms: i64,
    raw_ms: Option<i64>,
    step_ms: i64,
    now_ms: i64,
) -> bool {
    match q.newest_raw_ms.filter(|_| q.raw_asked_ms == Some(now_ms)) {
        Some(newest) => raw_ms.is_none_or(|raw| raw + step_ms <= newest),
        None => q
            .newest_sample_ms
            .is_some_and(|newest| evaluated_ms + step_ms < newest),
    }
}

/// Stopped series that may make room for new ones at `max_series`, oldest newest-sample first;
/// listed once per inference, at the first need.
#[derive(Default)]
pub(crate) struct Evictions {
    candidates: Option<std::vec::IntoIter<(i64, usize, Labels)>>,
}

impl Evictions {
    /// Forgets one stopped series (of any query, [`has_stopped`] at `now_ms`). False
    /// when every series is live.
    pub(crate) fn evict_one(&mut self, state: &mut State, config: &Config, now_ms: i64) -> bool {
        let candidates = self.candidates.get_or_insert_with(|| {
            let mut stopped = Vec::new();
            for (i, q) in state.queries.iter().enumerate() {
                let step = config.queries[i].step_ms();
                for (labels, series) in &q.series {
                    if has_stopped(q, series, step, now_ms) {
                        let newest = series.raw_sample_ms.unwrap_or(series.last_sample_ms);
                        stopped.push((newest, i, labels.clone()));
                    }
                }
            }
            stopped.sort_unstable();
            stopped.into_iter()
        });
        for (_, query, labels) in candidates.by_ref() {
            let q = &mut state.queries[query];
            if let Some(series) = q.series.remove(&labels) {
                q.forget(
                    labels,
                    &series,
                    DropReason::StoppedAtMaxSeries,
                    "stopped, its place taken by a live series at max_series",
                );
                state.total_series -= 1;
                return true;
            }
        }
        false
    }
}
