//! The aligned, columnar result: timestamps x series of `f64`.

use std::{collections::HashMap, time::Duration};

use crate::{Error, Labels, Result, decode::Sink};

/// The bit pattern stored in a cell that has no sample: a quiet NaN whose payload no decoded value
/// carries (the server's own `"NaN"` decodes to the canonical NaN), so a real NaN sample and a
/// missing one stay apart. Test with [`is_missing`].
pub const MISSING_BITS: u64 = 0x7FF8_0000_6D69_7373;

/// The value of a cell that has no sample (a NaN: see [`MISSING_BITS`]).
pub const MISSING: f64 = f64::from_bits(MISSING_BITS);

/// Whether `value` marks a missing sample (as opposed to a NaN the server sent).
#[inline]
pub fn is_missing(value: f64) -> bool {
    value.to_bits() == MISSING_BITS
}

/// What to do where a series has no sample at a timestamp.
///
/// Prometheus already carries a sample forward for its look-back window (5 minutes by default)
/// in range queries, so a missing cell means the series had no sample that recent, or had ended
/// (a staleness marker), or had not started yet.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum MissingPolicy {
    /// Keep the row; the cell holds NaN (the [`MISSING`] pattern, so it stays distinguishable
    /// from a NaN the server sent). The default.
    #[default]
    Nan,
    /// Drop every timestamp (row) at which any series has no sample.
    Skip,
    /// Carry a series' last value forward over at most `max_gap` (measured from the row it was
    /// seen in); cells beyond that stay missing (NaN).
    ForwardFill {
        /// How long a value may be carried.
        max_gap: Duration,
    },
}

/// Timestamps x series, as `f64`, with every series' labels.
///
/// Layout: **column-major**. The values of series `s` are the contiguous slice
/// `values()[s * n_rows() .. (s + 1) * n_rows()]`, one per timestamp. For a tensor of shape
/// `(n_series, n_rows)` hand `values()` over as it is (with candle:
/// `Tensor::from_slice(m.values(), (m.n_series(), m.n_rows()), &device)`, then `.t()` for
/// `(time, series)`), or ask [`Matrix::to_row_major`] for a `(n_rows, n_series)` buffer.
///
/// Missing cells hold NaN with the [`MISSING_BITS`] payload; see [`MissingPolicy`].
///
/// ```
/// use promlearn_loader::{Labels, Matrix, MissingPolicy};
///
/// let mut m = Matrix::from_columns(
///     vec![1000, 2000, 3000],
///     vec![Labels::from_pairs([("__name__", "a")]), Labels::from_pairs([("__name__", "b")])],
///     vec![vec![Some(1.0), None, Some(3.0)], vec![Some(10.0), Some(20.0), Some(f64::NAN)]],
/// );
/// assert_eq!(m.column(0)[0], 1.0);
/// assert!(m.get(1, 0).is_none() && m.get(2, 1).unwrap().is_nan());
/// assert_eq!(m.to_row_major()[..2], [1.0, 10.0]);
/// m.apply(MissingPolicy::Skip);
/// assert_eq!(m.timestamps(), [1000, 3000]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matrix {
    timestamps: Vec<i64>,
    series: Vec<Labels>,
    values: Vec<f64>,
    warnings: Vec<String>,
    infos: Vec<String>,
}

impl Matrix {
    /// Builds a matrix from per-series columns (`None` = missing). Every column must have one
    /// entry per timestamp.
    pub fn from_columns(
        timestamps: Vec<i64>,
        series: Vec<Labels>,
        columns: Vec<Vec<Option<f64>>>,
    ) -> Matrix {
        assert_eq!(series.len(), columns.len(), "one column per series");
        let mut values = Vec::with_capacity(timestamps.len() * columns.len());
        for column in columns {
            assert_eq!(column.len(), timestamps.len(), "one value per timestamp");
            values.extend(column.into_iter().map(|v| v.unwrap_or(MISSING)));
        }
        Matrix {
            timestamps,
            series,
            values,
            warnings: Vec::new(),
            infos: Vec::new(),
        }
    }

    /// Row timestamps, milliseconds since the Unix epoch, ascending.
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamps
    }

    /// The series' labels, one per column, sorted as Prometheus sorts label sets.
    pub fn series(&self) -> &[Labels] {
        &self.series
    }

    /// Rows: one per grid timestamp.
    pub fn n_rows(&self) -> usize {
        self.timestamps.len()
    }

    /// Columns: one per series.
    pub fn n_series(&self) -> usize {
        self.series.len()
    }

    /// All values, column-major (see the type's documentation).
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Takes the column-major values, e.g. for `Tensor::from_vec`.
    pub fn into_values(self) -> Vec<f64> {
        self.values
    }

    /// The values of series `s`, one per timestamp.
    pub fn column(&self, s: usize) -> &[f64] {
        let n = self.n_rows();
        &self.values[s * n..(s + 1) * n]
    }

    /// Each series with the rows it has a sample at (a missing cell left out, a NaN the server
    /// sent kept), its labels moved out rather than copied: for a caller that wants series, not
    /// a grid (at 100,000 series a copy of every label set is most of the work).
    pub fn into_series(self) -> Vec<crate::Series> {
        let n = self.n_rows();
        let timestamps = self.timestamps;
        let mut values = self.values.chunks(n.max(1));
        self.series
            .into_iter()
            .map(|labels| {
                let column = values.next().unwrap_or(&[]);
                let present = column.iter().filter(|v| !is_missing(**v)).count();
                let (mut ts, mut vs) = (Vec::with_capacity(present), Vec::with_capacity(present));
                for (t, v) in timestamps.iter().zip(column) {
                    if !is_missing(*v) {
                        ts.push(*t);
                        vs.push(*v);
                    }
                }
                crate::Series {
                    labels,
                    timestamps: ts,
                    values: vs,
                }
            })
            .collect()
    }

    /// The index of the series with exactly these labels.
    pub fn position(&self, labels: &Labels) -> Option<usize> {
        self.series.iter().position(|l| l == labels)
    }

    /// The sample of series `s` at row `row`; `None` where it is missing.
    pub fn get(&self, row: usize, s: usize) -> Option<f64> {
        let v = self.values[s * self.n_rows() + row];
        (!is_missing(v)).then_some(v)
    }

    /// Values row-major, shape `(n_rows, n_series)`: row `r` is `[r * n_series .. (r + 1) * n_series]`.
    pub fn to_row_major(&self) -> Vec<f64> {
        let (rows, cols) = (self.n_rows(), self.n_series());
        let mut out = vec![0.0; rows * cols];
        for s in 0..cols {
            for (r, v) in self.column(s).iter().enumerate() {
                out[r * cols + s] = *v;
            }
        }
        out
    }

    /// Cells that hold a sample.
    pub fn sample_count(&self) -> usize {
        self.values.iter().filter(|v| !is_missing(**v)).count()
    }

    /// Warnings the server attached to its answers (each once), and the loader's own about them
    /// (a native-histogram series left out, see [`crate::decode`]).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Prometheus 3's info annotations (`infos`), each once: notes on the query that are not
    /// warnings, such as `rate()` over a name that does not look like a counter's. (Thanos's
    /// querier hands them out as warnings.)
    pub fn infos(&self) -> &[String] {
        &self.infos
    }

    /// Applies a missing-sample policy in place.
    pub fn apply(&mut self, policy: MissingPolicy) {
        match policy {
            MissingPolicy::Nan => {}
            MissingPolicy::ForwardFill { max_gap } => self.forward_fill(max_gap),
            MissingPolicy::Skip => self.drop_incomplete_rows(),
        }
    }

    fn forward_fill(&mut self, max_gap: Duration) {
        let max_gap = i64::try_from(max_gap.as_millis()).unwrap_or(i64::MAX);
        let n = self.n_rows();
        if n == 0 {
            return;
        }
        for column in self.values.chunks_mut(n) {
            let mut last: Option<(i64, f64)> = None;
            for (v, &t) in column.iter_mut().zip(&self.timestamps) {
                if !is_missing(*v) {
                    last = Some((t, *v));
                } else if let Some((seen, value)) = last
                    && t - seen <= max_gap
                {
                    *v = value;
                }
            }
        }
    }

    fn drop_incomplete_rows(&mut self) {
        let n = self.n_rows();
        if n == 0 {
            return;
        }
        let keep: Vec<bool> = (0..n)
            .map(|r| (0..self.n_series()).all(|s| !is_missing(self.values[s * n + r])))
            .collect();
        let kept = keep.iter().filter(|k| **k).count();
        let mut out = 0;
        for s in 0..self.n_series() {
            for (r, &k) in keep.iter().enumerate() {
                if k {
                    self.values[out] = self.values[s * n + r];
                    out += 1;
                }
            }
        }
        self.values.truncate(kept * self.n_series());
        let mut r = 0;
        self.timestamps.retain(|_| {
            r += 1;
            keep[r - 1]
        });
    }

    pub(crate) fn push_warnings(&mut self, warnings: impl IntoIterator<Item = String>) {
        for w in warnings {
            if !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
        }
    }

    pub(crate) fn push_infos(&mut self, infos: impl IntoIterator<Item = String>) {
        for i in infos {
            if !self.infos.contains(&i) {
                self.infos.push(i);
            }
        }
    }
}

/// Decodes one range-query answer straight into per-series columns on the query's grid.
#[derive(Debug)]
pub(crate) struct RangeSink {
    start: i64,
    step: i64,
    rows: usize,
    pub(crate) series: Vec<Labels>,
    pub(crate) columns: Vec<Vec<f64>>,
    /// The hash of every label set so far, to refuse a series sent twice without a copy of
    /// each label set; series whose hashes collide are compared in full.
    seen: HashMap<u64, usize>,
    hasher: std::collections::hash_map::RandomState,
    // The fast path: the next sample usually sits on the next row.
    expect_t: i64,
    expect_row: usize,
}

impl RangeSink {
    pub(crate) fn new(start: i64, step: i64, rows: usize) -> RangeSink {
        RangeSink {
            start,
            step,
            rows,
            series: Vec::new(),
            columns: Vec::new(),
            seen: Default::default(),
            hasher: Default::default(),
            expect_t: i64::MIN,
            expect_row: 0,
        }
    }

    /// The chunk as a matrix of its own rows.
    pub(crate) fn into_matrix(self, warnings: Vec<String>) -> Matrix {
        let timestamps = (0..self.rows as i64)
            .map(|i| self.start + i * self.step)
            .collect();
        let mut values = Vec::with_capacity(self.rows * self.columns.len());
        for c in &self.columns {
            values.extend_from_slice(c);
        }
        let mut m = Matrix {
            timestamps,
            series: self.series,
            values,
            warnings: Vec::new(),
            infos: Vec::new(),
        };
        m.push_warnings(warnings);
        m
    }
}

impl Sink for RangeSink {
    fn begin_series(&mut self, labels: Labels) -> Result<()> {
        let hash = std::hash::BuildHasher::hash_one(&self.hasher, &labels);
        let index = self.series.len();
        if let Some(&other) = self.seen.get(&hash) {
            // The same hash: the same series, or (very rarely) another one; then every series
            // is compared.
            if self.series[other] == labels || self.series.contains(&labels) {
                return Err(Error::DuplicateSeries(labels));
            }
        } else {
            self.seen.insert(hash, index);
        }
        self.series.push(labels);
        self.columns.push(vec![MISSING; self.rows]);
        self.expect_t = self.start;
        self.expect_row = 0;
        Ok(())
    }

    #[inline]
    fn point(&mut self, t: i64, value: f64) -> Result<()> {
        let row = if t == self.expect_t && self.expect_row < self.rows {
            self.expect_row
        } else {
            let offset = t - self.start;
            let row = offset / self.step;
            if offset < 0 || offset % self.step != 0 || row as usize >= self.rows {
                return Err(Error::OffGrid {
                    series: self.series.last().cloned().unwrap_or_default(),
                    timestamp_ms: t,
                    start_ms: self.start,
                    step_ms: self.step,
                    rows: self.rows,
                });
            }
            row as usize
        };
        // A NaN the server sent must not look missing: the canonical NaN never has our payload.
        let column = self.columns.last_mut().expect("begin_series comes first");
        column[row] = value;
        self.expect_t = t + self.step;
        self.expect_row = row + 1;
        Ok(())
    }
}

/// Assembles chunk results, in any order, into one matrix on the whole query's grid.
#[derive(Debug)]
pub(crate) struct Assembler {
    rows: usize,
    timestamps: Vec<i64>,
    series: Vec<Labels>,
    /// Where each series' column is; made at the second chunk (a load of one chunk, such as
    /// a service's short read, never copies a label set).
    index: Option<HashMap<Labels, usize>>,
    values: Vec<f64>,
    warnings: Vec<String>,
}

impl Assembler {
    pub(crate) fn new(timestamps: Vec<i64>) -> Assembler {
        Assembler {
            rows: timestamps.len(),
            timestamps,
            series: Vec::new(),
            index: None,
            values: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Copies a chunk whose first row is `row_offset` into place, and frees it.
    pub(crate) fn merge(&mut self, row_offset: usize, chunk: RangeSink, warnings: Vec<String>) {
        if self.series.is_empty() {
            // The first chunk: its series are all new, and none is sent twice (the sink).
            self.values = vec![MISSING; chunk.series.len() * self.rows];
            for (s, column) in chunk.columns.iter().enumerate() {
                let at = s * self.rows + row_offset;
                self.values[at..at + column.len()].copy_from_slice(column);
            }
            self.series = chunk.series;
            self.add_warnings(warnings);
            return;
        }
        let index = self.index.get_or_insert_with(|| {
            self.series
                .iter()
                .enumerate()
                .map(|(s, labels)| (labels.clone(), s))
                .collect()
        });
        let new = chunk
            .series
            .iter()
            .filter(|l| !index.contains_key(*l))
            .count();
        self.values.reserve(new * self.rows);
        for (labels, column) in chunk.series.into_iter().zip(chunk.columns) {
            let s = match index.get(&labels) {
                Some(&s) => s,
                None => {
                    let s = self.series.len();
                    self.values.resize(self.values.len() + self.rows, MISSING);
                    index.insert(labels.clone(), s);
                    self.series.push(labels);
                    s
                }
            };
            let at = s * self.rows + row_offset;
            self.values[at..at + column.len()].copy_from_slice(&column);
        }
        self.add_warnings(warnings);
    }

    fn add_warnings(&mut self, warnings: Vec<String>) {
        for w in warnings {
            if !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
        }
    }

    /// The matrix, its series sorted by labels (the order Prometheus gives them).
    pub(crate) fn finish(self) -> Matrix {
        let Assembler {
            rows,
            timestamps,
            series,
            mut values,
            warnings,
            ..
        } = self;
        // Servers send them sorted already (Prometheus and VictoriaMetrics do): then nothing moves.
        if series.windows(2).all(|w| w[0] <= w[1]) {
            return Matrix {
                timestamps,
                series,
                values,
                warnings,
                infos: Vec::new(),
            };
        }
        let mut order: Vec<usize> = (0..series.len()).collect();
        order.sort_by(|&a, &b| series[a].cmp(&series[b]));
        permute_columns(&mut values, rows, &order);
        let mut labels: Vec<Option<Labels>> = series.into_iter().map(Some).collect();
        let series = order
            .iter()
            .map(|&i| labels[i].take().expect("a permutation"))
            .collect();
        Matrix {
            timestamps,
            series,
            values,
            warnings,
            infos: Vec::new(),
        }
    }
}

/// Reorders columns in place so that new column `i` is old column `order[i]`.
fn permute_columns(values: &mut [f64], rows: usize, order: &[usize]) {
    if rows == 0 {
        return;
    }
    let mut done = vec![false; order.len()];
    for start in 0..order.len() {
        if done[start] || order[start] == start {
            done[start] = true;
            continue;
        }
        // Follow the cycle: position i receives column order[i].
        let mut i = start;
        loop {
            done[i] = true;
            let from = order[i];
            if from == start {
                break;
            }
            // Swap columns i and from; column `from` now holds what position `from` needs later.
            let (a, b) = (i.min(from), i.max(from));
            let (left, right) = values.split_at_mut(b * rows);
            left[a * rows..(a + 1) * rows].swap_with_slice(&mut right[..rows]);
            i = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str) -> Labels {
        Labels::from_pairs([("__name__", name)])
    }

    #[test]
    fn permutation_matches_a_plain_copy() {
        let rows = 3;
        for order in [
            vec![0, 1, 2, 3],
            vec![3, 2, 1, 0],
            vec![1, 2, 3, 0],
            vec![2, 0, 3, 1],
            vec![1, 0, 3, 2],
        ] {
            let mut values: Vec<f64> = (0..4 * rows).map(|v| v as f64).collect();
            let expected: Vec<f64> = order
                .iter()
                .flat_map(|&c| (0..rows).map(move |r| (c * rows + r) as f64))
                .collect();
            permute_columns(&mut values, rows, &order);
            assert_eq!(values, expected, "{order:?}");
        }
    }

    #[test]
    fn chunks_in_any_order_assemble_sorted() {
        let mut a = Assembler::new(vec![0, 10, 20, 30]);
        let mut second = RangeSink::new(20, 10, 2);
        second.begin_series(labels("b")).unwrap();
        second.point(20, 2.0).unwrap();
        second.point(30, 3.0).unwrap();
        second.begin_series(labels("a")).unwrap();
        second.point(30, f64::NAN).unwrap();
        let mut first = RangeSink::new(0, 10, 2);
        first.begin_series(labels("b")).unwrap();
        first.point(0, 0.0).unwrap();
        first.point(10, 1.0).unwrap();
        a.merge(2, second, vec!["w".into()]);
        a.merge(0, first, vec!["w".into()]);
        let m = a.finish();
        assert_eq!(m.series(), [labels("a"), labels("b")]);
        assert!(is_missing(m.column(0)[0]) && is_missing(m.column(0)[2]));
        assert!(m.column(0)[3].is_nan() && !is_missing(m.column(0)[3]));
        assert_eq!(m.column(1), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(m.warnings(), ["w"]);
        assert_eq!(m.sample_count(), 5);
    }

    #[test]
    fn off_grid_and_duplicate_series_are_errors() {
        let mut s = RangeSink::new(1000, 1000, 3);
        s.begin_series(labels("a")).unwrap();
        assert!(matches!(s.point(1500, 1.0), Err(Error::OffGrid { .. })));
        assert!(matches!(s.point(4000, 1.0), Err(Error::OffGrid { .. })));
        assert!(matches!(s.point(0, 1.0), Err(Error::OffGrid { .. })));
        s.point(3000, 1.0).unwrap();
        assert!(matches!(
            s.begin_series(labels("a")),
            Err(Error::DuplicateSeries(_))
        ));
    }

    #[test]
    fn a_sample_outside_the_range_is_not_blamed_on_a_moved_grid() {
        let mut s = RangeSink::new(1000, 1000, 3);
        s.begin_series(labels("a")).unwrap();
        // Ten years after the end: the server's data, not VictoriaMetrics's grid or cache.
        let future = s
            .point(3000 + 10 * 365 * 86_400_000, 1.0)
            .unwrap_err()
            .to_string();
        assert!(future.contains("3650.0 days after the end"), "{future}");
        assert!(!future.contains("grid (VictoriaMetrics"), "{future}");
        let before = s.point(0, 1.0).unwrap_err().to_string();
        assert!(before.contains("before the start"), "{before}");
        let between = s.point(1500, 1.0).unwrap_err().to_string();
        assert!(between.contains("moved the query's grid"), "{between}");
    }

    #[test]
    fn into_series_leaves_out_missing_cells_and_keeps_nans() {
        let m = Matrix::from_columns(
            vec![0, 1000, 2000],
            vec![labels("a"), labels("b")],
            vec![
                vec![Some(1.0), None, Some(f64::NAN)],
                vec![None, None, None],
            ],
        );
        let series = m.into_series();
        assert_eq!(series[0].labels, labels("a"));
        assert_eq!(series[0].timestamps, [0, 2000]);
        assert!(series[0].values[0] == 1.0 && series[0].values[1].is_nan());
        assert!(series[1].timestamps.is_empty() && series[1].labels == labels("b"));
    }

    #[test]
    fn one_chunk_assembles_without_an_index_and_stays_sorted() {
        let mut a = Assembler::new(vec![0, 10]);
        let mut only = RangeSink::new(0, 10, 2);
        for name in ["a", "b", "c"] {
            only.begin_series(labels(name)).unwrap();
            only.point(10, 1.0).unwrap();
        }
        a.merge(0, only, Vec::new());
        assert!(a.index.is_none());
        let m = a.finish();
        assert_eq!(m.series(), [labels("a"), labels("b"), labels("c")]);
        assert!(is_missing(m.column(2)[0]) && m.column(2)[1] == 1.0);
    }

    #[test]
    fn policies() {
        let m = Matrix::from_columns(
            vec![0, 1000, 2000, 3000, 4000],
            vec![labels("a"), labels("b")],
            vec![
                vec![Some(1.0), None, None, None, Some(5.0)],
                vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0), Some(5.0)],
            ],
        );
        let mut filled = m.clone();
        filled.apply(MissingPolicy::ForwardFill {
            max_gap: Duration::from_secs(2),
        });
        assert_eq!(filled.column(0)[..3], [1.0, 1.0, 1.0]);
        assert!(is_missing(filled.column(0)[3]));
        let mut skipped = m.clone();
        skipped.apply(MissingPolicy::Skip);
        assert_eq!(skipped.timestamps(), [0, 4000]);
        assert_eq!(skipped.column(0), [1.0, 5.0]);
        assert_eq!(skipped.column(1), [1.0, 5.0]);
        let mut nan = m.clone();
        nan.apply(MissingPolicy::Nan);
        assert_eq!(nan.to_row_major().len(), 10);
        assert!(nan.get(1, 0).is_none());
    }
}
