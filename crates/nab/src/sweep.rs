//! NAB's per-row rules, ported from `nab/sweeper.py` (`calcSweepScore`): where each row of a file
//! stands (probation, inside a window, outside) and the unweighted score a detection there earns,
//! the scaled sigmoid of its relative position.
//!
//! Everything here depends on the data file and its windows only, never on a detector's scores,
//! so it is computed once when the corpus is loaded.

use crate::Window;

/// The share of each file that is probation (NAB's `probationaryPercent`).
pub const PROBATION_PERCENT: f64 = 0.15;

/// The standard logistic function `1 / (1 + e^-x)` (NAB's `sigmoid`).
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// NAB's reward for a detection at a relative `position` (NAB's `scaledSigmoid`):
/// `2 * sigmoid(-5 * position) - 1`, and `-1` beyond `position` 3.
///
/// Inside a window the position runs from -1 (its left edge: 0.98661) to 0 (just past its right
/// edge: 0); after a window it is the distance from the window's right edge in window widths, so
/// a false positive right after a window costs less than one far away (-0.98661 at 1).
pub fn scaled_sigmoid(position: f64) -> f64 {
    if position > 3.0 {
        -1.0
    } else {
        2.0 * sigmoid(-5.0 * position) - 1.0
    }
}

/// How many rows at the start of a file of `rows` rows are probation and not scored: NAB's
/// `min(floor(0.15 * rows), 0.15 * 5000)`, so 15% of the file and at most 750 rows.
pub fn probation_len(rows: usize) -> usize {
    // The same f64 arithmetic as NAB's Python, so the boundary row is the same.
    (PROBATION_PERCENT * rows as f64)
        .floor()
        .min(PROBATION_PERCENT * 5000.0) as usize
}

/// Where a row stands for the scorer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// In the probationary period: never scored (even inside a window).
    Probation,
    /// Inside the file's window of this index (windows that share a start are one window, as
    /// NAB names them `file|start`).
    Window(u32),
    /// Outside every window.
    Outside,
}

/// One row's place and the unweighted score NAB gives a detection there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RowSweep {
    pub place: Place,
    pub unweighted: f64,
}

/// The places and unweighted scores of a file's rows, as NAB's `calcSweepScore` computes them:
/// it walks the rows in file order, enters a window at the row whose timestamp equals the
/// window's start, leaves it after the row whose timestamp equals its end, and measures widths
/// and positions in rows between the first rows holding those timestamps.
///
/// `windows` must be in file order with each limit present in `timestamps` (checked when a
/// [`crate::DataFile`] is built).
pub(crate) fn sweep_rows(timestamps: &[i64], windows: &[Window]) -> Vec<RowSweep> {
    let first_index = |t: i64| timestamps.iter().position(|&x| x == t);
    let probation = probation_len(timestamps.len());
    let mut next_window = 0;
    // The window we are in: (its index, its end timestamp, its right row, its width in rows).
    let mut current: Option<(u32, i64, i64, f64)> = None;
    // The window we last left: (its right row, its width).
    let mut previous: Option<(i64, f64)> = None;
    let mut rows = Vec::with_capacity(timestamps.len());
    for (i, &t) in timestamps.iter().enumerate() {
        let i_row = i as i64;
        if let Some(w) = windows.get(next_window)
            && t == w.start
        {
            let right = first_index(w.end).map_or(i_row, |r| r as i64);
            let left = first_index(w.start).map_or(i_row, |l| l as i64);
            // Windows sharing a start share NAB's name `file|start`, hence one identity.
            let id = windows
                .iter()
                .position(|x| x.start == w.start)
                .unwrap_or(next_window) as u32;
            current = Some((id, w.end, right, (right - left + 1) as f64));
            next_window += 1;
        }
        let (window_place, unweighted) = match current {
            Some((id, _, right, width)) => {
                let position = -((right - i_row + 1) as f64) / width;
                (Place::Window(id), scaled_sigmoid(position))
            }
            None => match previous {
                None => (Place::Outside, -1.0),
                Some((right, width)) => {
                    // NAB divides by zero after a one-row window; here that is +inf, so -1.
                    let position = (right - i_row).abs() as f64 / (width - 1.0);
                    (Place::Outside, scaled_sigmoid(position))
                }
            },
        };
        let place = if i >= probation {
            window_place
        } else {
            Place::Probation
        };
        rows.push(RowSweep { place, unweighted });
        if let Some((_, end, _, width)) = current
            && t == end
        {
            previous = Some((i_row, width));
            current = None;
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-6
    }

    #[test]
    fn the_scaled_sigmoid_has_nabs_documented_values() {
        assert_eq!(sigmoid(0.0), 0.5);
        // NAB's docstring: -1 -> 0.98661, -0.5 -> 0.84828, 0 -> 0, 1 -> -0.98661.
        assert!(
            close(scaled_sigmoid(-1.0), 0.98661),
            "{}",
            scaled_sigmoid(-1.0)
        );
        assert!(
            close(scaled_sigmoid(-0.5), 0.84828),
            "{}",
            scaled_sigmoid(-0.5)
        );
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert!(
            close(scaled_sigmoid(1.0), -0.98661),
            "{}",
            scaled_sigmoid(1.0)
        );
        assert!(scaled_sigmoid(3.0) > -1.0);
        assert_eq!(scaled_sigmoid(3.0001), -1.0);
        assert_eq!(scaled_sigmoid(1e9), -1.0);
        // Exactly the expression NAB evaluates.
        let x: f64 = -0.3;
        assert_eq!(scaled_sigmoid(x), 2.0 / (1.0 + (5.0 * x).exp()) - 1.0);
    }

    #[test]
    fn probation_is_15_percent_of_the_file_and_at_most_750_rows() {
        assert_eq!(probation_len(0), 0);
        assert_eq!(probation_len(6), 0);
        assert_eq!(probation_len(7), 1);
        assert_eq!(probation_len(20), 3);
        assert_eq!(probation_len(100), 15);
        assert_eq!(probation_len(4032), 604);
        assert_eq!(probation_len(5000), 750);
        assert_eq!(probation_len(5007), 750);
        assert_eq!(probation_len(22_695), 750);
    }

    /// Twenty rows a minute apart, probation 3 rows, one window over rows 8..=11.
    #[test]
    fn rows_are_placed_and_rewarded_as_nab_places_them() {
        let ts: Vec<i64> = (0..20).map(|i| i * 60_000).collect();
        let windows = [Window {
            start: ts[8],
            end: ts[11],
        }];
        let rows = sweep_rows(&ts, &windows);
        let places: Vec<Place> = rows.iter().map(|r| r.place).collect();
        let mut expected = vec![Place::Probation; 3];
        expected.extend([Place::Outside; 5]);
        expected.extend([Place::Window(0); 4]);
        expected.extend([Place::Outside; 8]);
        assert_eq!(places, expected);
        // Before any window: -1. In the window of width 4: positions -1, -3/4, -1/2, -1/4.
        assert_eq!(rows[5].unweighted, -1.0);
        for (row, position) in [(8, -1.0), (9, -0.75), (10, -0.5), (11, -0.25)] {
            assert_eq!(rows[row].unweighted, scaled_sigmoid(position), "row {row}");
        }
        // After it: |11 - i| / (width - 1) = |11 - i| / 3.
        for (row, position) in [(12, 1.0 / 3.0), (14, 1.0), (19, 8.0 / 3.0)] {
            assert_eq!(rows[row].unweighted, scaled_sigmoid(position), "row {row}");
        }
        // A window that starts inside probation: its early rows are probation, the rest scored.
        let early = [Window {
            start: ts[1],
            end: ts[5],
        }];
        let rows = sweep_rows(&ts, &early);
        assert_eq!(rows[2].place, Place::Probation);
        assert_eq!(rows[3].place, Place::Window(0));
        assert_eq!(rows[3].unweighted, scaled_sigmoid(-3.0 / 5.0));
        assert_eq!(rows[6].place, Place::Outside);
    }

    /// A repeated timestamp: NAB measures a window to the first row holding its end, and leaves it
    /// there; a later row with the same timestamp is outside.
    #[test]
    fn repeated_timestamps_place_rows_as_nab_does() {
        let mut ts: Vec<i64> = (0..20).map(|i| i * 60_000).collect();
        ts[12] = ts[11];
        let windows = [Window {
            start: ts[8],
            end: ts[11],
        }];
        let rows = sweep_rows(&ts, &windows);
        assert_eq!(rows[11].place, Place::Window(0));
        assert_eq!(rows[12].place, Place::Outside);
        assert_eq!(rows[12].unweighted, scaled_sigmoid(1.0 / 3.0));
    }
}
