//! The rolling detectors: z-score, MAD and quantile bands over the points before each point,
//! and over the recent level before it.

use crate::analysis::Analysis;
use crate::detectors::{DetectorSpec, Fitted, require_history};
use crate::error::{Error, Result};
use crate::grid::{self, History};

mod profile;

pub(crate) use profile::DayProfile;

/// A fitted rolling detector (`zscore`, `mad` or `quantile`). Each point is judged twice: the
/// point against the band of the `window` points before it, and the recent level (the median
/// of its last `window / 2 + 1` points, the point among them) against the band of the `window`
/// points before those. The level is what catches a drop that arrives as a ramp (a rate over a
/// 5 s look-back falls over 5 points), which each point's own window follows down; a point
/// flagged for its level is drawn against the level's band, with the level's score.
///
/// Fitting learns one number from the history: the smallest half-width a band may have, so a
/// flat window (an idle counter's rate is often exactly constant for a while) does not turn the
/// next jitter of one request into a score of 1000, and the history's own jitter (scrape timing
/// makes rates heavy-tailed) and rhythm are not flagged. It is the largest of: the 5 % quantile
/// of the history's own rolling half-widths; 2 × the 99 % quantile of its points' distances
/// from their rolling centre, and of its levels' distances from theirs; twice its typical change
/// between neighbouring points (for a history that never changed: a tenth of its level).
#[derive(Debug, Clone, PartialEq)]
pub struct FittedRolling {
    pub(crate) spec: DetectorSpec,
    pub(crate) min_half_width: f64,
    /// The longest run of equal values the history held (see the `flat` module).
    pub(crate) longest_flat: u32,
    /// The time of day's offsets, where the history held days with a rhythm (see the `profile`
    /// module): every point, the history's too, is judged less its offset.
    pub(crate) profile: Option<DayProfile>,
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
            let fitter = match spec {
                DetectorSpec::Knn { .. } => "FittedKnn::fit",
                _ => "FittedLstm::fit",
            };
            return Err(Error::InvalidSpec {
                detector: spec.name(),
                field: "kind",
                problem: "is not a rolling detector".into(),
                fix: format!("fit it with DetectorSpec::fit or {fitter}"),
            });
        }
        grid::check(timestamps, values)?;
        require_history(spec, values, spec.min_history())?;
        let raw = values;
        let profile = DayProfile::learn(timestamps, values);
        let unfloored = Self {
            spec: spec.clone(),
            min_half_width: 0.0,
            longest_flat: 0,
            profile,
        };
        let z = unfloored.deseasoned(timestamps, values);
        let values = &z[..];
        let own = unfloored.judgements(timestamps, values, 0);
        let halves: Vec<f64> = own
            .iter()
            .flatten()
            .flat_map(|j| {
                [
                    j.point.upper - j.point.centre,
                    j.point.centre - j.point.lower,
                ]
            })
            .collect();
        // How far the points, and the recent levels, lie from the centres they are judged
        // against.
        let deviations: Vec<f64> = own
            .iter()
            .enumerate()
            .filter_map(|(i, j)| Some((values[i] - j.as_ref()?.point.centre).abs()))
            .collect();
        let level_deviations: Vec<f64> = own
            .iter()
            .flatten()
            .filter_map(|j| Some((j.level?.0 - j.level?.1.centre).abs()))
            .collect();
        let from_spreads = grid::quantile(&halves, SPREAD_FLOOR_QUANTILE);
        let from_deviations = DEVIATION_MARGIN * grid::quantile(&deviations, DEVIATION_QUANTILE);
        let from_levels = DEVIATION_MARGIN * grid::quantile(&level_deviations, DEVIATION_QUANTILE);
        let from_changes = History::of(values).min_half_width(CHANGE_FLOOR);
        let min_half_width = [from_spreads, from_deviations, from_levels]
            .into_iter()
            .filter(|v| v.is_finite())
            .fold(from_changes, f64::max);
        Ok(Self {
            min_half_width,
            longest_flat: crate::flat::longest_run(raw),
            ..unfloored
        })
    }

    /// The values less their time of day's offset (as they are without a profile).
    fn deseasoned(&self, timestamps: &[i64], values: &[f64]) -> Vec<f64> {
        match &self.profile {
            Some(p) => timestamps
                .iter()
                .zip(values)
                .map(|(&t, &v)| v - p.at(t))
                .collect(),
            None => values.to_vec(),
        }
    }

    /// The time of day's offset at unix ms `t` (0 without a profile).
    fn offset(&self, t: i64) -> f64 {
        self.profile.as_ref().map_or(0.0, |p| p.at(t))
    }

    /// The smallest half-width a band may have, learned from the history (series units).
    pub fn min_half_width(&self) -> f64 {
        self.min_half_width
    }

    /// The centre and the band of the finite values of one window (sorted in place), before
    /// the floor.
    fn band(&self, window: &mut [f64]) -> Band {
        match self.spec {
            DetectorSpec::ZScore { threshold, .. } => {
                let n = window.len() as f64;
                let mean = window.iter().sum::<f64>() / n;
                let var = window.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
                let half = threshold * var.max(0.0).sqrt();
                Band {
                    centre: mean,
                    lower: mean - half,
                    upper: mean + half,
                }
            }
            DetectorSpec::Mad { threshold, .. } => {
                window.sort_by(f64::total_cmp);
                let median = grid::quantile_sorted(window, 0.5);
                for v in window.iter_mut() {
                    *v = (*v - median).abs();
                }
                window.sort_by(f64::total_cmp);
                let half = threshold * 1.4826 * grid::quantile_sorted(window, 0.5);
                Band {
                    centre: median,
                    lower: median - half,
                    upper: median + half,
                }
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
                Band {
                    centre: median,
                    lower: lo - widen,
                    upper: hi + widen,
                }
            }
            DetectorSpec::Lstm { .. } | DetectorSpec::Knn { .. } => unreachable!("checked in fit"),
        }
    }

    /// Every point's unfloored judgement from index `from` on (the earlier ones are context
    /// only, `None`): the band of the `window` points before it and, where the series reaches
    /// back far enough, the median of the last [`level_points`] points (the point among them)
    /// with the band of the `window` points before those. `None` for the points that are not
    /// judged (non-finite, or too little finite look-back). A point's judgement reads only the
    /// values before it, never an earlier judgement, so skipping the context changes nothing.
    fn judgements(
        &self,
        timestamps: &[i64],
        values: &[f64],
        from: usize,
    ) -> Vec<Option<Judgement>> {
        let mut out = vec![None; values.len()];
        let Some(step) = grid::step(timestamps) else {
            return out;
        };
        let window = self.spec.window();
        let recent = level_points(window);
        let behind = grid::lookbacks(timestamps, window, step);
        let recent_from = grid::lookbacks(timestamps, recent - 1, step);
        // The warm-up: points whose series does not reach back a whole context are not judged.
        let reaches = grid::lookbacks(timestamps, self.spec.context(), step);
        let mut buf = Vec::with_capacity(window + 1);
        let band_before = |i: usize, buf: &mut Vec<f64>| -> Option<Band> {
            let lo = behind[i]?;
            buf.clear();
            buf.extend(values[lo..i].iter().copied().filter(|v| v.is_finite()));
            // Enough of the window must be finite to judge from it.
            (buf.len() >= window.div_ceil(2).max(3).min(window)).then(|| self.band(buf))
        };
        for i in from..values.len() {
            if !values[i].is_finite() || reaches[i].is_none() {
                continue;
            }
            let Some(point) = band_before(i, &mut buf) else {
                continue;
            };
            let level = recent_from[i].and_then(|from| {
                buf.clear();
                buf.extend(values[from..=i].iter().copied().filter(|v| v.is_finite()));
                if buf.len() < recent.div_ceil(2) {
                    return None;
                }
                buf.sort_by(f64::total_cmp);
                let level = grid::quantile_sorted(&buf, 0.5);
                Some((level, band_before(from, &mut buf)?))
            });
            out[i] = Some(Judgement { point, level });
        }
        out
    }
}

/// Points in the recent level the rolling detectors also judge: half the window and one (at
/// least 2). A drop reached through a ramp (a rate over a look-back arrives as one) is followed
/// down by each point's own window: the median of the recent level against the window before
/// it sees the new level once it holds for a quarter of the window.
pub(crate) fn level_points(window: usize) -> usize {
    (window / 2 + 1).max(2)
}

/// Where the recent level (its median `level`) lies beyond the band drawn around what the
/// points before it said (`centre`, `lower`, `upper`), further out than point `i` lies beyond
/// its own band, and the point is part of the move (nearer the level than the centre): the
/// point is flagged for its level, and drawn against that band with the level's score. A point
/// back at the old level after a drop is not (the alerting stage reads the point's side of
/// `yhat` as the incident's).
fn judge_level(out: &mut Analysis, i: usize, level: f64, centre: f64, lower: f64, upper: f64) {
    let value = out.values[i];
    let half = if level >= centre {
        upper - centre
    } else {
        centre - lower
    };
    // A band of no width (or NaN) has no score to give.
    if half.is_nan() || half <= 0.0 {
        return;
    }
    let score = (level - centre).abs() / half;
    let own = out.score[i];
    if score > 1.0 && score > own && (value - level).abs() < (value - centre).abs() {
        out.judge_scored(i, centre, lower, upper, score);
    }
}

/// A band before the floor.
#[derive(Debug, Clone, Copy)]
struct Band {
    centre: f64,
    lower: f64,
    upper: f64,
}

/// One point's judgement before the floor: its own band, and the recent level with its band.
#[derive(Debug, Clone, Copy)]
struct Judgement {
    point: Band,
    level: Option<(f64, Band)>,
}

impl Fitted for FittedRolling {
    fn spec(&self) -> &DetectorSpec {
        &self.spec
    }

    fn to_saved(&self) -> Option<crate::SavedModel> {
        Some(self.saved())
    }

    fn longest_flat_run(&self) -> Option<u32> {
        Some(self.longest_flat)
    }

    fn analyse(&self, timestamps: &[i64], values: &[f64]) -> Result<Analysis> {
        self.analyse_from(timestamps, values, 0)
    }

    // A service judges a few new points per series after a context several times as long:
    // only the new ones are worked out (the context's judgements would be cut off anyway).
    fn advance(
        &self,
        state: &mut crate::StreamState,
        timestamps: &[i64],
        values: &[f64],
    ) -> Result<Analysis> {
        crate::stream::advance_with(self, state, timestamps, values, |from, _| {
            self.analyse_from(timestamps, values, from)
        })
    }
}

impl FittedRolling {
    /// [`Fitted::analyse`], judging only the points from index `from` on (the earlier ones are
    /// left unjudged, as context).
    fn analyse_from(&self, timestamps: &[i64], values: &[f64], from: usize) -> Result<Analysis> {
        grid::check(timestamps, values)?;
        let mut out = Analysis::unjudged(self.spec.name(), timestamps, values);
        let floor = self.min_half_width;
        let z = self.deseasoned(timestamps, values);
        for (i, j) in self
            .judgements(timestamps, &z, from)
            .into_iter()
            .enumerate()
        {
            let Some(j) = j else { continue };
            let p = self.offset(timestamps[i]);
            let Band {
                centre,
                lower,
                upper,
            } = j.point;
            out.judge(
                i,
                centre + p,
                lower.min(centre - floor) + p,
                upper.max(centre + floor) + p,
            );
            if let Some((level, band)) = j.level {
                let lower = band.lower.min(band.centre - floor) + p;
                let upper = band.upper.max(band.centre + floor) + p;
                judge_level(&mut out, i, level + p, band.centre + p, lower, upper);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StreamState;

    /// Every column of an analysis as bits, so that NaN compares equal to NaN.
    fn bits(a: &Analysis) -> Vec<Vec<u64>> {
        let mut out: Vec<Vec<u64>> = [&a.values, &a.yhat, &a.yhat_lower, &a.yhat_upper, &a.score]
            .iter()
            .map(|c| c.iter().map(|v| v.to_bits()).collect())
            .collect();
        out.push(a.timestamps.iter().map(|t| *t as u64).collect());
        out.push(a.anomalous.iter().map(|f| u64::from(*f)).collect());
        out
    }

    #[test]
    fn a_spec_that_is_not_rolling_is_refused_under_its_own_name() {
        let ts: Vec<i64> = (0..200).map(|i| i * 10_000).collect();
        let vs: Vec<f64> = (0..200).map(|i| (i % 10) as f64).collect();
        for (name, fitter) in [("knn", "FittedKnn::fit"), ("lstm", "FittedLstm::fit")] {
            let spec = DetectorSpec::from_name(name).unwrap();
            let e = FittedRolling::fit(&spec, &ts, &vs).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidSpec { detector, field: "kind", .. } if *detector == name),
                "{name}: {e}"
            );
            assert!(e.to_string().contains(fitter), "{name}: {e}");
        }
    }

    /// 8 days of 5-minute CPU with a nightly job at 02:00 (+30 for 30 minutes), and on the
    /// last day a night whose job does not come and a spike of +20 at 16:00 (beyond `quantile`'s
    /// 10 hours of window after the missing job, which would widen its band).
    fn nightly_cpu() -> (Vec<i64>, Vec<f64>, usize, usize) {
        let day = 288;
        let n = 8 * day;
        let ts: Vec<i64> = (0..n as i64)
            .map(|i| 1_767_571_200_000 + i * 300_000)
            .collect();
        let mut vs: Vec<f64> = (0..n)
            .map(|i| {
                let job = if (24..30).contains(&(i % day)) {
                    30.0
                } else {
                    0.0
                };
                20.0 + ((i * 7919) % 11) as f64 * 0.3 + job
            })
            .collect();
        let (skipped, spike) = (7 * day + 24, 7 * day + 192);
        vs[skipped..skipped + 6].iter_mut().for_each(|v| *v -= 30.0);
        vs[spike..spike + 3].iter_mut().for_each(|v| *v += 20.0);
        (ts, vs, skipped, spike)
    }

    #[test]
    fn a_nightly_job_is_no_news_and_hides_neither_a_smaller_spike_nor_its_absence() {
        let (ts, vs, skipped, spike) = nightly_cpu();
        let fit_end = 7 * 288;
        for name in ["zscore", "mad", "quantile"] {
            let spec = DetectorSpec::from_name(name).unwrap();
            let fitted = FittedRolling::fit(&spec, &ts[..fit_end], &vs[..fit_end]).unwrap();
            assert!(fitted.profile.is_some(), "{name}");
            // Below the job's 30: the floor no longer makes room for it.
            assert!(
                fitted.min_half_width() < 15.0,
                "{name}: {}",
                fitted.min_half_width()
            );
            let a = fitted.analyse(&ts, &vs).unwrap();
            let flagged: Vec<usize> = a.flagged().filter(|&i| i >= fit_end).collect();
            assert!(
                flagged.iter().any(|i| (skipped..skipped + 6).contains(i)),
                "{name}: {flagged:?}"
            );
            assert!(
                flagged.iter().any(|i| (spike..spike + 3).contains(i)),
                "{name}: {flagged:?}"
            );
            // The jobs of the history are not flagged.
            let jobs = (1..7).flat_map(|d| d * 288 + 24..d * 288 + 30);
            assert!(jobs.clone().all(|i| !a.anomalous[i]), "{name}");
        }
    }

    #[test]
    fn a_saved_profile_judges_as_the_fitted_one() {
        let (ts, vs, _, _) = nightly_cpu();
        let spec = DetectorSpec::from_name("mad").unwrap();
        let fitted = FittedRolling::fit(&spec, &ts[..7 * 288], &vs[..7 * 288]).unwrap();
        let text = serde_json::to_string(&fitted.to_saved().unwrap()).unwrap();
        let back = serde_json::from_str::<crate::SavedModel>(&text)
            .unwrap()
            .into_fitted()
            .unwrap();
        assert_eq!(
            bits(&back.analyse(&ts, &vs).unwrap()),
            bits(&fitted.analyse(&ts, &vs).unwrap())
        );
    }

    #[test]
    fn advance_judges_the_new_points_as_the_whole_analysis_does() {
        let n = 400;
        let ts: Vec<i64> = (0..n as i64).map(|i| i * 10_000).collect();
        let wave = |i: usize, seed: usize| {
            100.0 + 10.0 * (i as f64 / 30.0).sin() + ((i * 7919 + seed) % 13) as f64 * 0.3
        };
        let history: Vec<f64> = (0..n).map(|i| wave(i, 1)).collect();
        let mut live: Vec<f64> = (0..n).map(|i| wave(i, 2)).collect();
        live[200..206].iter_mut().for_each(|v| *v *= 3.0);
        live[300] = f64::NAN;
        for name in ["zscore", "mad", "quantile"] {
            let spec = DetectorSpec::from_name(name).unwrap();
            let fitted = FittedRolling::fit(&spec, &ts, &history).unwrap();
            let ctx = spec.context();
            let (mut fast, mut whole) = (StreamState::new(), StreamState::new());
            let mut end = 0;
            for chunk in [ctx + 3, 1, 4, 3, 17, 3, 60, 3].iter().cycle() {
                if end == n {
                    break;
                }
                let new_end = (end + chunk).min(n);
                let from = end.saturating_sub(ctx + 5);
                let (t, v) = (&ts[from..new_end], &live[from..new_end]);
                let a = fitted.advance(&mut fast, t, v).unwrap();
                let b = crate::stream::advance(&fitted, &mut whole, t, v).unwrap();
                assert_eq!(bits(&a), bits(&b), "{name} at {end}");
                assert_eq!(fast, whole, "{name} at {end}");
                end = new_end;
            }
        }
    }
}
