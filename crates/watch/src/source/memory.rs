//! Series held in memory as a source: a backtest's Prometheus history, or a caller's own series
//! (NAB's files), irregular sampling and all.

use std::{collections::BTreeMap, sync::Arc};

use promlearn_loader::Labels;

use super::{SeriesData, Want};
use crate::{Config, Error, INFER_EXTRA_POINTS, QueryConfig, Result};

/// One series, sorted by time with one sample per timestamp.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    labels: Labels,
    timestamps: Vec<i64>,
    values: Vec<f64>,
}

/// Series in memory that a backtest replays: the answer of every query (what [`MemorySource::new`]
/// holds), or of the query named in [`MemorySource::with_query`]. Samples may be irregular; each
/// is judged on its own timestamp, none is moved onto a grid. Cheap to clone (the series are
/// shared).
///
/// A series is in an inference's answer while it has a sample within the query's inference
/// window (`context + 1 +` [`INFER_EXTRA_POINTS`](crate::INFER_EXTRA_POINTS) steps), as a
/// Prometheus series is while its range query has a point; after a longer gap it counts as
/// absent and, past `stale_after`, is dropped with its model (and refitted when it returns), as
/// the service does. Give series with long gaps a long `stale_after`.
///
/// ```
/// use promlearn_loader::Labels;
/// use promlearn_watch::backtest::MemorySource;
///
/// // Out of order and with a repeated timestamp: sorted, and the first of each kept (with a warning).
/// let source = MemorySource::new(vec![(
///     Labels::from_pairs([("file", "nyc_taxi")]),
///     vec![3_000, 1_000, 2_000, 2_000],
///     vec![3.0, 1.0, 2.0, 20.0],
/// )])?;
/// assert_eq!(source.sample_count(), 3);
/// # Ok::<(), promlearn_watch::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    every: Option<Arc<Vec<Series>>>,
    named: BTreeMap<String, Arc<Vec<Series>>>,
}

impl MemorySource {
    /// A source whose series answer every query of the configuration. Each is `(labels,
    /// timestamps in unix ms, values)`; timestamps out of order or repeated are sorted and
    /// de-duplicated (the first sample of a timestamp is kept) with a warning, never refused.
    /// Errors only when a series has not one value per timestamp.
    pub fn new(series: Vec<(Labels, Vec<i64>, Vec<f64>)>) -> Result<MemorySource> {
        Ok(MemorySource {
            every: Some(Arc::new(prepare(series)?)),
            named: BTreeMap::new(),
        })
    }

    /// The same, with `series` as the answer of the query named `query` only.
    pub fn with_query(
        mut self,
        query: &str,
        series: Vec<(Labels, Vec<i64>, Vec<f64>)>,
    ) -> Result<MemorySource> {
        self.named
            .insert(query.to_owned(), Arc::new(prepare(series)?));
        Ok(self)
    }

    /// Samples held, over all series (those answering every query counted once).
    pub fn sample_count(&self) -> usize {
        self.every
            .iter()
            .chain(self.named.values())
            .flat_map(|s| s.iter())
            .map(|s| s.timestamps.len())
            .sum()
    }

    /// How many series answer the query named `query`.
    pub(crate) fn series_count(&self, query: &str) -> usize {
        self.named
            .get(query)
            .or(self.every.as_ref())
            .map_or(0, |s| s.len())
    }

    /// The same source holding only the series labelled `labels` (the web page's replay of one
    /// series: every series is judged on its own, so its points are those of the whole replay).
    pub(crate) fn only(&self, labels: &Labels) -> MemorySource {
        let keep = |all: &Arc<Vec<Series>>| {
            Arc::new(
                all.iter()
                    .filter(|s| &s.labels == labels)
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        };
        MemorySource {
            every: self.every.as_ref().map(keep),
            named: self
                .named
                .iter()
                .map(|(q, s)| (q.clone(), keep(s)))
                .collect(),
        }
    }

    /// Checks that every query the source names is in `config`.
    pub(crate) fn check(&self, config: &Config) -> Result<()> {
        for name in self.named.keys() {
            if !config.queries.iter().any(|q| &q.name == name) {
                return Err(Error::UnknownQuery {
                    query: name.clone(),
                    known: config
                        .queries
                        .iter()
                        .map(|q| q.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        Ok(())
    }

    /// What `query` answers at `now_ms`, nothing after it: for a fit, the samples in
    /// `(now - fit_window, now]`; for an inference, the samples after `after_ms` with the
    /// detector's context before them, for every series with a sample in the query's
    /// inference window (its inference points at its step) or after `after_ms`.
    pub(crate) fn fetch(&self, query: &QueryConfig, now_ms: i64, want: Want) -> Vec<SeriesData> {
        let Some(all) = self.named.get(&query.name).or(self.every.as_ref()) else {
            return Vec::new();
        };
        let span = query.infer_points() as i64 * query.step_ms();
        let mut out = Vec::new();
        for s in all.iter() {
            let end = s.timestamps.partition_point(|&t| t <= now_ms);
            let start = match want {
                Want::Fit => {
                    let from = now_ms - query.fit_window.as_millis() as i64;
                    s.timestamps.partition_point(|&t| t <= from)
                }
                Want::Infer { after_ms, .. } => {
                    let after = after_ms.unwrap_or(now_ms - span);
                    let window = s
                        .timestamps
                        .partition_point(|&t| t <= after.min(now_ms - span));
                    if window >= end {
                        continue;
                    }
                    let new = s.timestamps.partition_point(|&t| t <= after).min(end);
                    new.saturating_sub(query.detector.context() + INFER_EXTRA_POINTS)
                }
            };
            if start >= end {
                continue;
            }
            out.push(SeriesData {
                labels: s.labels.clone(),
                timestamps: s.timestamps[start..end].to_vec(),
                values: s.values[start..end].to_vec(),
            });
        }
        out
    }
}

/// Checks, sorts and de-duplicates the series.
fn prepare(series: Vec<(Labels, Vec<i64>, Vec<f64>)>) -> Result<Vec<Series>> {
    series
        .into_iter()
        .map(|(labels, timestamps, values)| {
            if timestamps.len() != values.len() {
                return Err(Error::SeriesLength {
                    labels: labels.to_string(),
                    timestamps: timestamps.len(),
                    values: values.len(),
                });
            }
            let mut series = Series {
                labels,
                timestamps,
                values,
            };
            sort_and_dedup(&mut series);
            Ok(series)
        })
        .collect()
}

/// Puts the samples in time order, keeping the first sample of each timestamp (in the order
/// given), and says so when anything changed.
fn sort_and_dedup(series: &mut Series) {
    if series.timestamps.windows(2).all(|w| w[0] < w[1]) {
        return;
    }
    let backward = series.timestamps.windows(2).filter(|w| w[1] < w[0]).count();
    let mut pairs: Vec<(i64, f64)> = series
        .timestamps
        .iter()
        .copied()
        .zip(series.values.iter().copied())
        .collect();
    // Stable: of the samples sharing a timestamp, the first given stays first.
    pairs.sort_by_key(|p| p.0);
    let before = pairs.len();
    pairs.dedup_by_key(|p| p.0);
    let repeated = before - pairs.len();
    tracing::warn!(
        series = %series.labels,
        backward,
        repeated,
        "series sorted by time and de-duplicated: {backward} step(s) back in time, {repeated} repeated timestamp(s) dropped (the first sample of each timestamp is kept)"
    );
    (series.timestamps, series.values) = pairs.into_iter().unzip();
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn labels(name: &str) -> Labels {
        Labels::from_pairs([("s", name)])
    }

    #[test]
    fn repeated_and_backward_timestamps_are_sorted_and_deduplicated_not_refused() {
        let source = MemorySource::new(vec![
            (
                labels("dst"),
                vec![1, 2, 3, 2, 3, 4, 0],
                vec![1.0, 2.0, 3.0, 20.0, 30.0, 4.0, 0.5],
            ),
            (labels("fine"), vec![1, 5], vec![1.0, 5.0]),
        ])
        .unwrap();
        let s = &source.every.as_ref().unwrap()[0];
        assert_eq!(s.timestamps, [0, 1, 2, 3, 4]);
        assert_eq!(
            s.values,
            [0.5, 1.0, 2.0, 3.0, 4.0],
            "the first of each kept"
        );
        assert_eq!(source.sample_count(), 7);
        let e = MemorySource::new(vec![(labels("x"), vec![1, 2], vec![1.0])]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "series {s=\"x\"}: 2 timestamps but 1 values; give one value per timestamp"
        );
    }

    fn query() -> QueryConfig {
        let config = Config::from_toml(
            r#"
endpoint = "http://localhost:9090"
[[query]]
name = "q"
expr = "x"
step = "10ms"
detector = { kind = "zscore", window = 3 }
fit_window = "100ms"
infer_every = "100ms"
fit_every = "1s"
"#,
            "t.toml",
        )
        .unwrap();
        config.queries[0].clone()
    }

    #[test]
    fn fetches_see_nothing_after_now() {
        let q = query();
        assert_eq!(q.fit_window, Duration::from_millis(100));
        let ts: Vec<i64> = (0..100).map(|i| i * 7).collect();
        let vs: Vec<f64> = ts.iter().map(|t| *t as f64).collect();
        let source = MemorySource::new(vec![(labels("a"), ts, vs)]).unwrap();
        let fit = source.fetch(&q, 300, Want::Fit);
        assert_eq!(fit[0].timestamps.first(), Some(&203));
        assert_eq!(fit[0].timestamps.last(), Some(&294));
        let infer = source.fetch(
            &q,
            300,
            Want::Infer {
                after_ms: Some(250),
                read: None,
            },
        );
        // The detector's context and 5 extra samples before the new samples 252..=294.
        let t = &infer[0].timestamps;
        assert_eq!(t.last(), Some(&294));
        assert_eq!(t.iter().filter(|t| **t > 250).count(), 7);
        assert_eq!(
            t.iter().filter(|t| **t <= 250).count(),
            q.detector.context() + crate::INFER_EXTRA_POINTS
        );
        // A series with nothing in the inference window is absent.
        assert!(
            source
                .fetch(
                    &q,
                    2_000,
                    Want::Infer {
                        after_ms: Some(1_900),
                        read: None,
                    }
                )
                .is_empty()
        );
        // Present but with nothing new: context only.
        let idle = source.fetch(
            &q,
            700,
            Want::Infer {
                after_ms: Some(695),
                read: None,
            },
        );
        assert!(idle[0].timestamps.iter().all(|t| *t <= 693));
    }
}
