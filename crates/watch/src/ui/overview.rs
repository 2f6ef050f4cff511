//! The overview: every query with its series count and alerts of the last hour and day, and one
//! query's series ranked by their newest score, a page at a time, searched by label.
//!
//! At 100,000 series a request must not sort them all: the ranking is made once per inference
//! round, at the first request after it (a watch nobody looks at pays nothing), and kept until
//! the next round. It is made from a copy of each series' score and labels taken under the state
//! lock (no formatting, no sorting there); sorting happens outside the lock on the blocking pool.
//! A page of it then costs a slice and, for its rows only, a look-up of their samples.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, atomic::Ordering},
};

use hyper::StatusCode;
use promlearn_loader::Labels;
use serde::Serialize;

use super::Params;
use crate::engine::Engine;

/// Rows per page unless the request asks for another number (at most [`MAX_PER_PAGE`]).
const PER_PAGE: usize = 50;
const MAX_PER_PAGE: usize = 500;

/// The ranking of the newest round, shared by the requests until the next.
#[derive(Default)]
pub(crate) struct RankingCache {
    current: Mutex<Option<Arc<Ranking>>>,
}

/// Every query's series, highest newest score first.
struct Ranking {
    /// Which engine (a reload makes a new one) and round it was made after.
    made_after: (usize, u64),
    queries: Vec<Vec<Row>>,
}

struct Row {
    /// The newest judged point's score; `-inf` when there is none (ranked last).
    score: f64,
    anomalous: bool,
    labels: Labels,
}

impl RankingCache {
    fn get(&self, engine: &Arc<Engine>) -> Arc<Ranking> {
        let now = (
            Arc::as_ptr(engine) as usize,
            engine.rounds.load(Ordering::Relaxed),
        );
        // Held while ranking: requests that arrive meanwhile wait for this ranking rather than
        // each making its own.
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ranking) = current.as_ref().filter(|r| r.made_after == now) {
            return ranking.clone();
        }
        let mut queries: Vec<Vec<Row>> = {
            let state = engine.lock();
            state
                .queries
                .iter()
                .map(|q| {
                    q.series
                        .iter()
                        .map(|(labels, s)| Row {
                            score: s.last.map_or(f64::NEG_INFINITY, |p| {
                                if p.score.is_nan() {
                                    f64::NEG_INFINITY
                                } else {
                                    p.score
                                }
                            }),
                            anomalous: s.last.is_some_and(|p| p.anomalous),
                            labels: labels.clone(),
                        })
                        .collect()
                })
                .collect()
        };
        for rows in &mut queries {
            // Highest score first; ties in label order, so that a page is stable.
            rows.sort_by(|a, b| {
                b.score
                    .total_cmp(&a.score)
                    .then_with(|| a.labels.cmp(&b.labels))
            });
        }
        let ranking = Arc::new(Ranking {
            made_after: now,
            queries,
        });
        // The last round's ranking (a copy of every series' labels) goes, and with it the
        // memory it held in whichever blocking thread's arena made it: without the trim, each
        // round's ranking, made on another thread, left its arena that much larger (at 100,000
        // series, 6.6 KiB per series of resident memory after 200 overview requests).
        let old = current.replace(ranking.clone());
        if old.is_some_and(|old| Arc::strong_count(&old) == 1) {
            crate::series::give_memory_back();
        }
        ranking
    }
}

#[derive(Serialize)]
pub(crate) struct Overview {
    queries: Vec<QueryLine>,
    /// The query the rows are of.
    query: String,
    /// Series matching the search (all of the query's without one).
    matched: usize,
    page: usize,
    per_page: usize,
    rows: Vec<SeriesRow>,
}

#[derive(Serialize)]
struct QueryLine {
    name: String,
    detector: String,
    up: bool,
    series: usize,
    alerts_last_hour: usize,
    alerts_last_day: usize,
    /// At least this many: the day's alert times are capped.
    alerts_capped: bool,
}

#[derive(Serialize)]
struct SeriesRow {
    rank: usize,
    labels: BTreeMap<String, String>,
    /// The newest judged point's score (none while there is none).
    score: Option<f64>,
    anomalous: bool,
    /// Its samples over the detector's window, oldest first: `[unix ms, value]` (what the
    /// series keeps for its next read; nothing more is kept for the page).
    spark: Vec<(i64, f64)>,
}

/// The overview for `params`: `query` (default the first), `search` (label matchers, see
/// [`Search`]), `page` (from 0) and `per_page`.
pub(crate) fn page(
    cache: &RankingCache,
    engine: &Arc<Engine>,
    params: &Params,
) -> Result<Overview, (StatusCode, String)> {
    let config = &engine.config;
    let index = match params.get("query").filter(|q| !q.is_empty()) {
        None => 0,
        Some(name) => config
            .queries
            .iter()
            .position(|q| &q.name == name)
            .ok_or_else(|| {
                (
                    StatusCode::NOT_FOUND,
                    format!(
                        "no query named `{name}`; the file has {}",
                        config
                            .queries
                            .iter()
                            .map(|q| q.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?,
    };
    let number = |name: &str, default: usize| -> Result<usize, (StatusCode, String)> {
        params
            .get(name)
            .filter(|v| !v.is_empty())
            .map_or(Ok(default), |v| {
                v.parse().map_err(|_| {
                    (
                        StatusCode::BAD_REQUEST,
                        format!("{name} `{v}` is not a whole number"),
                    )
                })
            })
    };
    let per_page = number("per_page", PER_PAGE)?.clamp(1, MAX_PER_PAGE);
    let page = number("page", 0)?;
    let search = Search::parse(params.get("search").map_or("", String::as_str))
        .map_err(|e| (StatusCode::BAD_REQUEST, e))?;

    let ranking = cache.get(engine);
    let rows = &ranking.queries[index];
    let (matched, chosen): (usize, Vec<(usize, &Row)>) = if search.is_empty() {
        let start = (page * per_page).min(rows.len());
        let end = (start + per_page).min(rows.len());
        (rows.len(), (start..end).map(|i| (i, &rows[i])).collect())
    } else {
        let mut matched = 0;
        let mut chosen = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            if search.matches(&row.labels) {
                if matched >= page * per_page && chosen.len() < per_page {
                    chosen.push((i, row));
                }
                matched += 1;
            }
        }
        (matched, chosen)
    };

    let state = engine.lock();
    let now = engine.clock.now_ms();
    let queries = config
        .queries
        .iter()
        .zip(&state.queries)
        .map(|(qc, q)| {
            let since = |ms: i64| {
                q.alert_times
                    .iter()
                    .rev()
                    .take_while(|&&t| t >= now - ms)
                    .count()
            };
            QueryLine {
                name: qc.name.clone(),
                detector: qc.detector.name().to_owned(),
                up: q.up,
                series: q.series.len(),
                alerts_last_hour: since(3_600_000),
                alerts_last_day: since(86_400_000),
                alerts_capped: q.alert_times.len() >= crate::series::ALERT_TIMES,
            }
        })
        .collect();
    let series = &state.queries[index].series;
    let step = config.queries[index].step_ms();
    let rows = chosen
        .into_iter()
        .map(|(rank, row)| SeriesRow {
            rank: rank + 1,
            labels: super::label_map(&row.labels),
            score: row.score.is_finite().then_some(row.score),
            anomalous: row.anomalous,
            spark: series
                .get(&row.labels)
                .map_or_else(Vec::new, |s| s.recent.samples(step)),
        })
        .collect();
    Ok(Overview {
        queries,
        query: config.queries[index].name.clone(),
        matched,
        page,
        per_page,
        rows,
    })
}

/// A search by label: terms separated by spaces or commas, each `name=value` (the label's value
/// is exactly `value`; quotes around it are dropped), `name~text` (its value contains `text`) or
/// a bare `text` (some label's value contains it). Every term must match.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Search {
    terms: Vec<Term>,
}

#[derive(Debug, PartialEq)]
enum Term {
    Is(String, String),
    Contains(String, String),
    Anywhere(String),
}

impl Search {
    pub(crate) fn parse(text: &str) -> Result<Search, String> {
        let mut terms = Vec::new();
        for word in text
            .split([' ', ','])
            .map(str::trim)
            .filter(|w| !w.is_empty())
        {
            let unquote = |v: &str| v.trim_matches('"').to_owned();
            let term = if let Some((name, value)) = word.split_once('=') {
                Term::Is(name.to_owned(), unquote(value))
            } else if let Some((name, value)) = word.split_once('~') {
                Term::Contains(name.to_owned(), unquote(value))
            } else {
                Term::Anywhere(unquote(word))
            };
            if let Term::Is(name, _) | Term::Contains(name, _) = &term
                && name.is_empty()
            {
                return Err(format!(
                    "search `{word}` has no label name; write name=value, name~part or a bare word"
                ));
            }
            terms.push(term);
        }
        Ok(Search { terms })
    }

    fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub(crate) fn matches(&self, labels: &Labels) -> bool {
        self.terms.iter().all(|term| match term {
            Term::Is(name, value) => labels.get(name) == Some(value.as_str()),
            Term::Contains(name, part) => {
                labels.get(name).is_some_and(|v| v.contains(part.as_str()))
            }
            Term::Anywhere(part) => labels.iter().any(|(_, v)| v.contains(part.as_str())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_matches_every_term() {
        let labels = Labels::from_pairs([("instance", "node-42:9100"), ("type", "AAAA")]);
        let yes = [
            "",
            "type=AAAA",
            "type=\"AAAA\" instance~node-4",
            "node-42",
            "42, AAAA",
        ];
        for text in yes {
            assert!(Search::parse(text).unwrap().matches(&labels), "{text}");
        }
        for text in ["type=A", "instance~node-5", "zone~x", "nothing"] {
            assert!(!Search::parse(text).unwrap().matches(&labels), "{text}");
        }
        let err = Search::parse("=x").unwrap_err();
        assert!(err.contains("no label name"), "{err}");
    }
}
