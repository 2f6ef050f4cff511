//! Raw samples as stored, by instant queries of `selector[span]` over consecutive windows:
//! the JSON path of raw loads (remote read and VictoriaMetrics' export are in `raw_path`).

use std::collections::HashMap;

use futures_util::{StreamExt, stream};

use super::{Client, expect_type};
use crate::{
    Error, Labels, Matrix, Result,
    decode::{Collect, Series, Sink},
    query::seconds,
};

/// Raw samples as stored, per series (from [`Client::query_raw`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawSeries {
    /// Series sorted by labels, samples ascending in time.
    pub series: Vec<Series>,
    /// The servers' warnings over all requests, each once, in the order first seen.
    pub warnings: Vec<String>,
}

impl RawSeries {
    /// Aligns the series on the union of their timestamps; a series without a sample at one of
    /// them has a missing cell there.
    pub fn to_matrix(&self) -> Matrix {
        let mut timestamps: Vec<i64> = self
            .series
            .iter()
            .flat_map(|s| s.timestamps.iter().copied())
            .collect();
        timestamps.sort_unstable();
        timestamps.dedup();
        let columns = self
            .series
            .iter()
            .map(|s| {
                let mut column = vec![None; timestamps.len()];
                let mut row = 0;
                for (t, v) in s.timestamps.iter().zip(&s.values) {
                    while timestamps[row] < *t {
                        row += 1;
                    }
                    column[row] = Some(*v);
                }
                column
            })
            .collect();
        let mut m = Matrix::from_columns(
            timestamps,
            self.series.iter().map(|s| s.labels.clone()).collect(),
            columns,
        );
        m.push_warnings(self.warnings.iter().cloned());
        m
    }

    /// Samples in all series.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.values.len()).sum()
    }
}

impl Client {
    /// Raw samples as stored, between `start_ms` and `end_ms` inclusive, of the series `selector`
    /// picks (a plain selector such as `up{job="coredns"}`): it asks for `selector[<span>]` with
    /// instant queries, one per [`ClientBuilder::raw_chunk`](crate::ClientBuilder::raw_chunk) span, keeping each sample once.
    pub async fn query_raw(&self, selector: &str, start_ms: i64, end_ms: i64) -> Result<RawSeries> {
        if end_ms < start_ms {
            return Err(Error::InvalidArgument(format!(
                "the range ends ({end_ms} ms) before it starts ({start_ms} ms)"
            )));
        }
        let span = self.inner.raw_chunk_ms;
        let mut windows = Vec::new();
        let mut lo = start_ms;
        loop {
            let hi = lo.saturating_add(span - 1).min(end_ms);
            windows.push((lo, hi));
            if hi >= end_ms {
                break;
            }
            lo = hi + 1;
        }
        let mut fetches = stream::iter(windows)
            .map(|(lo, hi)| async move {
                // Prometheus 2 includes both ends of `[d]`, Prometheus 3 and VictoriaMetrics
                // only the right one: ask one millisecond wider and keep [lo, hi].
                let query = format!("{selector}[{}ms]", hi - lo + 1);
                let params = [("query", query.clone()), ("time", seconds(hi))];
                let (envelope, sink) = self
                    .fetch("api/v1/query", &params, &query, || Window {
                        lo,
                        hi,
                        collect: Collect::default(),
                    })
                    .await?;
                expect_type(&query, &envelope, "matrix")?;
                Ok::<_, Error>((envelope, sink.collect))
            })
            .buffered(self.inner.concurrency);
        let mut by_labels: HashMap<Labels, Series> = HashMap::new();
        let mut warnings = Vec::new();
        while let Some(done) = fetches.next().await {
            let (envelope, collect) = done?;
            for w in envelope.warnings {
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
            for s in collect.series {
                let entry = by_labels.entry(s.labels.clone()).or_insert_with(|| Series {
                    labels: s.labels.clone(),
                    ..Series::default()
                });
                entry.timestamps.extend_from_slice(&s.timestamps);
                entry.values.extend_from_slice(&s.values);
            }
        }
        let mut series: Vec<Series> = by_labels
            .into_values()
            .filter(|s| !s.timestamps.is_empty())
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(RawSeries { series, warnings })
    }
}

/// Keeps the points of a raw-sample window that fall in `[lo, hi]`.
pub(super) struct Window {
    pub(super) lo: i64,
    pub(super) hi: i64,
    pub(super) collect: Collect,
}

impl Sink for Window {
    fn begin_series(&mut self, labels: Labels) -> Result<()> {
        self.collect.begin_series(labels)
    }

    fn point(&mut self, t: i64, value: f64) -> Result<()> {
        if (self.lo..=self.hi).contains(&t) {
            self.collect.point(t, value)?;
        }
        Ok(())
    }
}
