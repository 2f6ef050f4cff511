//! Series plumbing shared by the detectors: input checks, the series' step, look-back windows on
//! the time grid, quantiles, and what a history says about the smallest band worth drawing.

use crate::error::{Error, Result};

/// Checks that `timestamps` and `values` pair up and that timestamps increase.
pub(crate) fn check(timestamps: &[i64], values: &[f64]) -> Result<()> {
    if timestamps.len() != values.len() {
        return Err(Error::LengthMismatch {
            timestamps: timestamps.len(),
            values: values.len(),
        });
    }
    if let Some(i) = timestamps.windows(2).position(|w| w[1] <= w[0]) {
        return Err(Error::Unordered {
            index: i + 1,
            before: timestamps[i],
            at: timestamps[i + 1],
        });
    }
    Ok(())
}

/// The series' step: the median distance between neighbouring timestamps (robust to a few
/// gaps). `None` with fewer than two points.
pub(crate) fn step(timestamps: &[i64]) -> Option<i64> {
    let mut diffs: Vec<i64> = timestamps.windows(2).map(|w| w[1] - w[0]).collect();
    if diffs.is_empty() {
        return None;
    }
    let mid = diffs.len() / 2;
    let (_, m, _) = diffs.select_nth_unstable(mid);
    Some((*m).max(1))
}

/// For every point `i`, the first index of its look-back: the points `lo..i` that lie within
/// the `window` grid steps before it. `None` where the series does not reach back that far
/// (the warm-up).
pub(crate) fn lookbacks(timestamps: &[i64], window: usize, step: i64) -> Vec<Option<usize>> {
    let Some(&first) = timestamps.first() else {
        return Vec::new();
    };
    let half = step / 2;
    let span = step.saturating_mul(window as i64);
    let mut lo = 0usize;
    timestamps
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let start = t.saturating_sub(span);
            if first > start.saturating_add(half) {
                return None;
            }
            while lo < i && timestamps[lo] < start.saturating_sub(half) {
                lo += 1;
            }
            Some(lo)
        })
        .collect()
}

/// The values at the `window` grid slots before point `i` (oldest first), NaN where a slot has
/// no point or a non-finite one. `None` where the series does not reach back that far.
pub(crate) fn grid_window(
    timestamps: &[i64],
    values: &[f64],
    i: usize,
    window: usize,
    step: i64,
) -> Option<Vec<f64>> {
    let half = step / 2;
    let t = timestamps[i];
    let oldest = t.saturating_sub(step.saturating_mul(window as i64));
    if timestamps[0] > oldest.saturating_add(half) {
        return None;
    }
    let mut out = vec![f64::NAN; window];
    let mut j = i;
    for k in 1..=window {
        let target = t.saturating_sub(step.saturating_mul(k as i64));
        while j > 0 && timestamps[j - 1] > target.saturating_add(half) {
            j -= 1;
        }
        if j > 0 && timestamps[j - 1] >= target.saturating_sub(half) {
            out[window - k] = values[j - 1];
            j -= 1;
        }
    }
    Some(out)
}

/// Fills non-finite values of a window by linear interpolation between finite neighbours (the
/// nearest finite value at the edges). Returns `false`, leaving the window as it was, when more
/// than `max_missing` values are missing.
pub(crate) fn fill(window: &mut [f64], max_missing: usize) -> bool {
    let missing = window.iter().filter(|v| !v.is_finite()).count();
    if missing == 0 {
        return true;
    }
    if missing > max_missing || missing == window.len() {
        return false;
    }
    let known: Vec<usize> = (0..window.len())
        .filter(|&k| window[k].is_finite())
        .collect();
    for k in 0..window.len() {
        if window[k].is_finite() {
            continue;
        }
        let after = known.partition_point(|&p| p < k);
        window[k] = match (after.checked_sub(1).map(|a| known[a]), known.get(after)) {
            (Some(a), Some(&b)) => {
                let f = (k - a) as f64 / (b - a) as f64;
                window[a] + (window[b] - window[a]) * f
            }
            (Some(a), None) => window[a],
            (None, Some(&b)) => window[b],
            (None, None) => unreachable!("at least one value is finite"),
        };
    }
    true
}

/// The `q` quantile of sorted values, interpolating linearly between order statistics (numpy's
/// default). `sorted` must not be empty.
pub(crate) fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The `q` quantile of the finite values of `values`, NaN when there are none.
pub(crate) fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    quantile_sorted(&v, q)
}

/// What a history says about the smallest change worth a band: the typical step between
/// neighbouring points, and the typical level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct History {
    /// Finite points.
    pub finite: usize,
    /// The median of the non-zero absolute differences between neighbouring finite points: the
    /// series' resolution (1 request for an integer rate that jitters by one) or its ordinary
    /// jitter. 0 when the history never changed.
    pub typical_change: f64,
    /// The median absolute value.
    pub level: f64,
}

impl History {
    pub(crate) fn of(values: &[f64]) -> Self {
        let finite = values.iter().filter(|v| v.is_finite()).count();
        let changes: Vec<f64> = values
            .windows(2)
            .filter(|w| w[0].is_finite() && w[1].is_finite())
            .map(|w| (w[1] - w[0]).abs())
            .filter(|d| *d > 0.0)
            .collect();
        let typical_change = if changes.is_empty() {
            0.0
        } else {
            quantile(&changes, 0.5)
        };
        let level = quantile(&values.iter().map(|v| v.abs()).collect::<Vec<_>>(), 0.5);
        Self {
            finite,
            typical_change,
            level: if level.is_finite() { level } else { 0.0 },
        }
    }

    /// The half-width below which no band may shrink: `factor` typical changes, or, for a
    /// history that never changed (so it teaches no spread at all), a tenth of its level
    /// (0.001 around zero), so the first jitter after a flat stretch is not an alarm of
    /// score 1000. Always positive and finite.
    pub(crate) fn min_half_width(&self, factor: f64) -> f64 {
        let from_changes = factor * self.typical_change;
        let floor = if from_changes > 0.0 && from_changes.is_finite() {
            from_changes
        } else if self.level > 0.0 {
            0.1 * self.level
        } else {
            1e-3
        };
        if floor.is_finite() && floor > 0.0 {
            floor
        } else {
            1e-3
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_ignores_a_gap() {
        assert_eq!(step(&[0, 1000, 2000, 9000, 10_000]), Some(1000));
        assert_eq!(step(&[5]), None);
    }

    #[test]
    fn lookback_covers_the_window_before_each_point() {
        let ts: Vec<i64> = (0..10).map(|i| i * 1000).collect();
        let lb = lookbacks(&ts, 3, 1000);
        assert_eq!(&lb[..4], &[None, None, None, Some(0)]);
        assert_eq!(lb[9], Some(6));
        // A gap: the window ends up with fewer points.
        let ts = [0, 1000, 2000, 3000, 6000, 7000];
        let lb = lookbacks(&ts, 3, 1000);
        assert_eq!(lb[4], Some(3), "only 3000 within 3 steps before 6000");
        assert_eq!(lb[5], Some(4), "only 6000 within 3 steps before 7000");
    }

    #[test]
    fn grid_window_marks_missing_slots() {
        let ts = [0, 1000, 2000, 4000, 5000];
        let vs = [1.0, 2.0, 3.0, 5.0, 6.0];
        let w = grid_window(&ts, &vs, 4, 4, 1000).unwrap();
        assert_eq!(w[0], 2.0);
        assert_eq!(w[1], 3.0);
        assert!(w[2].is_nan());
        assert_eq!(w[3], 5.0);
        assert!(grid_window(&ts, &vs, 2, 4, 1000).is_none());
        let mut w = w;
        assert!(fill(&mut w, 1));
        assert_eq!(w, vec![2.0, 3.0, 4.0, 5.0]);
        let mut edge = vec![f64::NAN, f64::NAN, 1.0];
        assert!(!fill(&mut edge, 1));
        assert!(fill(&mut edge, 2));
        assert_eq!(edge, vec![1.0, 1.0, 1.0]);
    }

    #[test]
    fn history_floor() {
        let jitter = [5.0, 5.0, 6.0, 5.0, 5.0, 5.0, 6.0, 6.0];
        assert_eq!(History::of(&jitter).min_half_width(2.0), 2.0);
        assert_eq!(History::of(&[5.0; 10]).min_half_width(2.0), 0.5);
        assert_eq!(History::of(&[0.0; 10]).min_half_width(2.0), 1e-3);
        assert_eq!(quantile(&[1.0, f64::NAN, 2.0, 3.0, 4.0], 0.5), 2.5);
    }
}
