//! A strictly increasing series for detectors, made from a file's rows: sorted by time, one point
//! per timestamp (the first row of a repeated timestamp kept), with the map from every original
//! row to its point and a list of the repairs made.
//!
//! NAB's scorer and NAB's results files keep every original row in file order; a detector wants
//! time that only moves forward. Nothing is refused: eight NAB files repeat a timestamp (a DST
//! hour) and one steps back 55 minutes.
//!
//! Why the first row of a repeated timestamp: it is the one that arrived first, so the cleaned
//! series never judges a row with a value that came after it (NAB's streaming rule), and it is
//! what Prometheus keeps (its TSDB refuses a second sample at a timestamp it already holds).

use std::fmt;

/// A file's rows made strictly increasing in time, for a detector.
#[derive(Clone, Debug, PartialEq)]
pub struct Cleaned {
    /// Unix milliseconds, strictly increasing.
    pub timestamps: Vec<i64>,
    /// The value of each point: the first row (in file order) holding that timestamp.
    pub values: Vec<f64>,
    /// For each original row, in file order, the index of its point in `timestamps`.
    pub point_of_row: Vec<usize>,
}

impl Cleaned {
    /// Spreads one value per cleaned point (a detector's score or flag) back onto the original
    /// rows, as a NAB results file needs them: every row gets its point's value, so the rows of
    /// a repeated timestamp share the score of the point that was judged.
    ///
    /// # Panics
    /// When `per_point` does not have one value per cleaned point.
    pub fn expand<T: Copy>(&self, per_point: &[T]) -> Vec<T> {
        assert_eq!(
            per_point.len(),
            self.timestamps.len(),
            "Cleaned::expand needs one value per cleaned point"
        );
        self.point_of_row.iter().map(|&p| per_point[p]).collect()
    }
}

/// What [`clean`] changed in a file, so a caller can warn about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repair {
    /// The data file (`category/name.csv`).
    pub file: String,
    /// What was wrong and what was done.
    pub kind: RepairKind,
    /// How many rows: the steps back in time, or the rows dropped as repeats.
    pub rows: usize,
}

/// The kinds of repair [`clean`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairKind {
    /// Rows whose timestamp is earlier than the row before them; the series was sorted by time.
    /// `largest_ms` is the largest step back.
    BackwardSteps {
        /// The largest step back in time, in milliseconds.
        largest_ms: i64,
    },
    /// Rows whose timestamp an earlier row already holds; the first row of each timestamp was
    /// kept and these rows were dropped from the cleaned series (they keep their place in the
    /// original rows and in results files).
    RepeatedTimestamps,
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RepairKind::BackwardSteps { largest_ms } => write!(
                f,
                "{}: {} step(s) back in time (the largest {}): sorted by time",
                self.file,
                self.rows,
                if largest_ms % 60_000 == 0 {
                    format!("{} min", largest_ms / 60_000)
                } else {
                    format!("{} ms", largest_ms)
                }
            ),
            RepairKind::RepeatedTimestamps => write!(
                f,
                "{}: {} row(s) repeat an earlier timestamp: the first row of each timestamp kept, \
                 the repeats dropped",
                self.file, self.rows
            ),
        }
    }
}

/// Makes the cleaned series of one file's rows (see the module's documentation), and says what
/// it repaired. `timestamps` and `values` are the file's rows in file order.
///
/// # Panics
/// When `timestamps` and `values` differ in length.
pub fn clean(file: &str, timestamps: &[i64], values: &[f64]) -> (Cleaned, Vec<Repair>) {
    assert_eq!(timestamps.len(), values.len(), "one value per timestamp");
    let mut repairs = Vec::new();
    let (mut back, mut largest) = (0, 0);
    for w in timestamps.windows(2) {
        if w[1] < w[0] {
            back += 1;
            largest = largest.max(w[0] - w[1]);
        }
    }
    if back > 0 {
        repairs.push(Repair {
            file: file.to_owned(),
            kind: RepairKind::BackwardSteps {
                largest_ms: largest,
            },
            rows: back,
        });
    }
    // A stable sort: among rows of one timestamp, file order stays, so the first comes first.
    let mut order: Vec<usize> = (0..timestamps.len()).collect();
    if back > 0 {
        order.sort_by_key(|&i| timestamps[i]);
    }
    let mut cleaned = Cleaned {
        timestamps: Vec::with_capacity(timestamps.len()),
        values: Vec::with_capacity(timestamps.len()),
        point_of_row: vec![0; timestamps.len()],
    };
    let mut repeats = 0;
    for i in order {
        if cleaned.timestamps.last() == Some(&timestamps[i]) {
            repeats += 1;
        } else {
            cleaned.timestamps.push(timestamps[i]);
            cleaned.values.push(values[i]);
        }
        cleaned.point_of_row[i] = cleaned.timestamps.len() - 1;
    }
    if repeats > 0 {
        repairs.push(Repair {
            file: file.to_owned(),
            kind: RepairKind::RepeatedTimestamps,
            rows: repeats,
        });
    }
    (cleaned, repairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ordered_series_is_left_as_it_is() {
        let (c, repairs) = clean("a.csv", &[1, 2, 3], &[10.0, 20.0, 30.0]);
        assert_eq!(c.timestamps, [1, 2, 3]);
        assert_eq!(c.values, [10.0, 20.0, 30.0]);
        assert_eq!(c.point_of_row, [0, 1, 2]);
        assert!(repairs.is_empty());
    }

    /// The DST shape of NAB's AWS files: several rows squashed onto one timestamp.
    #[test]
    fn repeated_timestamps_keep_the_first_row() {
        let ts = [100, 200, 300, 300, 300, 400];
        let vs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let (c, repairs) = clean("x/dst.csv", &ts, &vs);
        assert_eq!(c.timestamps, [100, 200, 300, 400]);
        assert_eq!(c.values, [1.0, 2.0, 3.0, 6.0]);
        assert_eq!(c.point_of_row, [0, 1, 2, 2, 2, 3]);
        assert_eq!(
            repairs,
            [Repair {
                file: "x/dst.csv".into(),
                kind: RepairKind::RepeatedTimestamps,
                rows: 2
            }]
        );
        assert_eq!(
            c.expand(&[0.1, 0.2, 0.3, 0.4]),
            [0.1, 0.2, 0.3, 0.3, 0.3, 0.4]
        );
        assert_eq!(
            repairs[0].to_string(),
            "x/dst.csv: 2 row(s) repeat an earlier timestamp: the first row of each timestamp \
             kept, the repeats dropped"
        );
    }

    /// machine_temperature's shape: the clock steps back, then repeats what it already had.
    #[test]
    fn a_step_back_is_sorted_and_its_repeats_dropped() {
        let min = 60_000;
        let ts = [0, min, 2 * min, 3 * min, min, 2 * min, 4 * min];
        let vs = [0.0, 1.0, 2.0, 3.0, 11.0, 12.0, 4.0];
        let (c, repairs) = clean("m.csv", &ts, &vs);
        assert_eq!(c.timestamps, [0, min, 2 * min, 3 * min, 4 * min]);
        assert_eq!(c.values, [0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(c.point_of_row, [0, 1, 2, 3, 1, 2, 4]);
        assert_eq!(
            repairs,
            [
                Repair {
                    file: "m.csv".into(),
                    kind: RepairKind::BackwardSteps {
                        largest_ms: 2 * min
                    },
                    rows: 1
                },
                Repair {
                    file: "m.csv".into(),
                    kind: RepairKind::RepeatedTimestamps,
                    rows: 2
                }
            ]
        );
        assert_eq!(
            repairs[0].to_string(),
            "m.csv: 1 step(s) back in time (the largest 2 min): sorted by time"
        );
    }

    /// A step back to a time the file never had: the row is moved to its place, nothing dropped.
    #[test]
    fn a_row_out_of_order_is_moved_to_its_place() {
        let (c, repairs) = clean("o.csv", &[10, 30, 20, 40], &[1.0, 3.0, 2.0, 4.0]);
        assert_eq!(c.timestamps, [10, 20, 30, 40]);
        assert_eq!(c.values, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(c.point_of_row, [0, 2, 1, 3]);
        assert_eq!(repairs.len(), 1);
        assert_eq!(repairs[0].rows, 1);
    }
}
