//! The rolling detectors: z-score, MAD and quantile bands over the points before each point.

use crate::analysis::Analysis;
use crate::detectors::{DetectorSpec, Fitted, require_history};
use crate::error::{Error, Result};
use crate::grid::{self, History};

/// A fitted rolling detector (`zscore`, `mad` or `quantile`). Fitting learns one number from the
/// history: the smallest half-width a band may have, so a flat window (an idle counter's rate is
/// often exactly constant for a while) does not turn the next jitter of one request into a
/// score of 1000, and the history's own jitter (scrape timing makes rates heavy-tailed) is not
/// flagged. It is the largest of: the 5 % quantile of the history's own rolling half-widths;
/// 2 × the 99 % quantile of its points' distances from their rolling centre; twice its typical
/// change between neighbouring points (for a history that never changed: a tenth of its level).
#[derive(Debug, Clone, PartialEq)]
pub struct FittedRolling {
    spec: DetectorSpec,
    min_half_width: f64,
}

/// The band's half-width is never below this many typical changes between neighbouring points.
const CHANGE_FLOOR: f64 = 2.0;
/// ... nor below this quantile of the history's own rolling half-widths ...
const SPREAD_FLOOR_QUANTILE: f64 = 0.05;
/// ... nor below `DEVIATION_MARGIN` × this quantile of how far the history's points lie from
/// their rolling centre: what the history shows as normal is never flagged (the LSTM's rule).
const DEVIATION_QUANTILE: f64 = 0.99;
const DEVIATION_MARGIN: f64 = 2.0;

impl FittedRolling {
    /// Fits `spec` (a rolling detector) on a history; see [`DetectorSpec::fit`].
    pub fn fit(spec: &DetectorSpec, timestamps: &[i64], values: &[f64]) -> Result<Self> {
        spec.validate()?;
        if matches!(spec, DetectorSpec::Lstm { .. } | DetectorSpec::Knn { .. }) {
            return Err(Error::InvalidSpec {
                detector: "lstm",
                field: "kind",
                problem: "is not a rolling detector".into(),
                fix: "fit it with DetectorSpec::fit or FittedLstm::fit".into(),
            });
        }
        grid::check(timestamps, values)?;
        require_history(spec, values, spec.min_history())?;
        let unfloored = Self {
            spec: spec.clone(),
            min_half_width: 0.0,
        };
        let own = unfloored.analyse(timestamps, values)?;
        let halves: Vec<f64> = (0..own.len())
            .filter(|&i| own.yhat[i].is_finite())
            .flat_map(|i| {
                [
                    own.yhat_upper[i] - own.yhat[i],
                    own.yhat[i] - own.yhat_lower[i],
                ]
            })
            .collect();
        let deviations: Vec<f64> = (0..own.len())
            .filter(|&i| own.yhat[i].is_finite())
            .map(|i| (own.values[i] - own.yhat[i]).abs())
            .collect();
        let from_spreads = grid::quantile(&halves, SPREAD_FLOOR_QUANTILE);
        let from_deviations = DEVIATION_MARGIN * grid::quantile(&deviations, DEVIATION_QUANTILE);
        let from_changes = History::of(values).min_half_width(CHANGE_FLOOR);
        let min_half_width = [from_spreads, from_deviations]
            .into_iter()
            .filter(|v| v.is_finite())
            .fold(from_changes, f64::max);
        Ok(Self {
            spec: spec.clone(),
            min_half_width,
        })
    }

    /// The smallest half-width a band may have, learned from the history (series units).
    pub fn min_half_width(&self) -> f64 {
        self.min_half_width
    }

    /// The centre and the band of the finite values of one window (sorted in place), before
    /// the floor.
    fn band(&self, window: &mut [f64]) -> (f64, f64, f64) {
        match self.spec {
            DetectorSpec::ZScore { threshold, .. } => {
                let n = window.len() as f64;
                let mean = window.iter().sum::<f64>() / n;
                let var = window.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
                let half = threshold * var.max(0.0).sqrt();
                (mean, mean - half, mean + half)
            }
            DetectorSpec::Mad { threshold, .. } => {
                window.sort_by(f64::total_cmp);
                let median = grid::quantile_sorted(window, 0.5);
                for v in window.iter_mut() {
                    *v = (*v - median).abs();
                }
                window.sort_by(f64::total_cmp);
                let half = threshold * 1.4826 * grid::quantile_sorted(window, 0.5);
                (median, median - half, median + half)
            }
            DetectorSpec::Quantile {
                lower,
                upper,
                margin,
                ..
            } => {
                window.sort_by(f64::total_cmp);
                let lo = grid::quantile_sorted(window, lower);
                let hi = grid::quantile_sorted(window, upper);
                let median = grid::quantile_sorted(window, 0.5);
                let widen = margin * (hi - lo);
                (median, lo - widen, hi + widen)
            }
            DetectorSpec::Lstm { .. } | DetectorSpec::Knn { .. } => unreachable!("checked in fit"),
        }
    }
}

impl Fitted for FittedRolling {
    fn spec(&self) -> &DetectorSpec {
        &self.spec
    }

    fn analyse(&self, timestamps: &[i64], values: &[f64]) -> Result<Analysis> {
        grid::check(timestamps, values)?;
        let mut out = Analysis::unjudged(self.spec.name(), timestamps, values);
        let Some(step) = grid::step(timestamps) else {
            return Ok(out);
        };
        let window = self.spec.window();
        // Enough of the window must be finite to judge from it.
        let min_finite = window.div_ceil(2).max(3).min(window);
        let mut buf = Vec::with_capacity(window + 1);
        for (i, lo) in grid::lookbacks(timestamps, window, step)
            .into_iter()
            .enumerate()
        {
            let Some(lo) = lo else { continue };
            if !values[i].is_finite() {
                continue;
            }
            buf.clear();
            buf.extend(values[lo..i].iter().copied().filter(|v| v.is_finite()));
            if buf.len() < min_finite {
                continue;
            }
            let (yhat, lower, upper) = self.band(&mut buf);
            let floor = self.min_half_width;
            out.judge(i, yhat, lower.min(yhat - floor), upper.max(yhat + floor));
        }
        Ok(out)
    }
}
