//! The nearest-neighbour detector: how far the recent pattern (the last `window` points) lies
//! from the patterns the history holds.
//!
//! A point's pattern is the last `window` finite points up to it, if they span at most
//! [`MAX_SPAN`] windows of the series' median spacing (so irregular samples are judged too),
//! followed by its time context: where its newest point lies on the day's circle, weighed by
//! [`DAY_WEIGHT`], so the nearest patterns are those of the same hour on other days and a daily
//! peak that does not come, or a night's job that does not run, is far from them.
//! Fitting keeps the history's patterns, scaled by its median and interquartile range (those of
//! its newest [`MAX_POINTS`] points), and calibrates a unit: the [`CAL_QUANTILE`] quantile of how
//! far a pattern of the history lies from its `neighbours` nearest others (its own neighbourhood
//! in time left out). A point's distance score is its pattern's mean RMS distance to its
//! `neighbours` nearest patterns in that unit, the smallest over its own pattern and the
//! [`PERSIST`]` - 1` before it. So a daily peak that the history has seen before scores low
//! however far it lies from the last hours, while a level shift, a spike, a drop or a day that
//! looks like no other scores high; a fitting window of a week (refitted daily) is what it needs
//! to know a daily rhythm.
//!
//! The same is done at a coarse scale: a point's coarse pattern is the means of the `window`
//! blocks of [`COARSE_BLOCK`] points that end at it (32 points at the default window), with
//! its own patterns (one a block), unit and `confirm` unit, calibrated the same way (a
//! pattern's neighbourhood of 32 points left out; a history with too few coarse patterns to
//! calibrate has none, as the demo's minute of history). Its score, weighed by
//! [`COARSE_WEIGHT`], counts when it is the higher: averaging 4 points halves a noise's
//! deviation, so a level shift or a slow change that noise hides from 8 points stands out of
//! the means, and 32 points see a change of rhythm that 8 see only in part.
//!
//! With `extreme` a value further outside the history's range (its lowest to its highest value)
//! than that share of the range scores above 1 by itself, at once: a level or a spike the whole
//! fit window never saw is news however ordinary its pattern's shape. Through
//! [`Fitted::advance`] a new extreme widens the range the next one must leave (kept in the
//! series' [`StreamState`] until a refit brings a new range; [`Fitted::analyse`] widens it
//! within the slice), so a drift to new highs alerts at its first step out, not at each new
//! step beyond the fit window's stale range after every quiet period.
//!
//! With `confirm` (a quantile) the score is also capped by how far each of those last points
//! lies from what its nearest patterns did next, in units of that quantile of the history's own
//! such deviations: both must agree. On a noise-dominated series (a 1 s `rate()` of Poisson
//! requests) 1 % of the noise's own patterns lie beyond the unit, so pattern distance alone
//! alerts every few minutes.
//!
//! The unit widens with what the model meets live: a model's pattern scores since its fit are
//! counted (in the series' [`StreamState`] through [`Fitted::advance`], within the slice in
//! [`Fitted::analyse`]), and once their [`LIVE_QUANTILE`], pooled with its [`CALIBRATION`]
//! scores of the fit, lies above 1, the unit grows to it. The fit's unit says how far the
//! history's patterns lie from each other; when new data lies further from the history than
//! that (a series noisier this day than its week), the excursions it already had are its
//! normal, and the next pattern alerts only beyond them; a refit starts counting again, its
//! calibration being newer. New extremes are judged as before, not in the widened unit.
//!
//! What each of these is worth on NAB and on the DevOps corpus, and what was tried instead, is
//! in `docs/detection.md`.
//!
//! The patterns are windows of one series, so the model keeps the series once, not every
//! window: its scaled values in half precision, a bit per point saying whether a pattern ends
//! there, and on a regular grid only its first time and step (`store.rs`, with the why).
//!
//! Costs: fitting keeps the patterns of at most [`MAX_POINTS`] points and a quarter as many
//! coarse ones and compares [`CALIBRATION`] of each with all the others; judging a call decodes
//! the kept series once, then compares each point's patterns with every kept one, plus two
//! comparisons with the range and a few with the live tail. The model is about 2 bytes a point
//! and 2 a block on a regular grid (twice that off it, where each point's time of day is kept);
//! the series' state holds 4 more numbers for the range and the live tail's highest scores.
//! Measured sizes are in `docs/sizing.md`.

use crate::analysis::Analysis;
use crate::detectors::{DetectorSpec, Fitted, require_history};
use crate::error::{Error, Result};
use crate::grid::{self, History};
use crate::stream::{self, LiveTail, StreamState};
use store::Decoded;
pub(crate) use store::PatternSet;

mod store;

/// Points of the history the patterns come from at most (its newest): bounds inference cost
/// (`window` × this many multiply-adds per judged point) and the model's size (2 bytes a point
/// and 2 a block of [`COARSE_BLOCK`] on a regular grid, 2 more each off it), so that a series
/// with its state stays within 16 KiB; a week at 5-minute steps fits whole.
const MAX_POINTS: usize = 3000;
/// Patterns whose own distance calibrates the score.
const CALIBRATION: usize = 300;
/// The calibration quantile that scores 1.
const CAL_QUANTILE: f64 = 0.99;
/// The quantile of a model's scores since its fit, pooled with [`CALIBRATION`] scores of the
/// fit (at most 1 each), that its unit widens to once it lies above 1 (see the module docs):
/// at 0.999 to 0.9999 NAB's standard score is 67.9, at 0.99 66.4.
const LIVE_QUANTILE: f64 = 0.999;
/// A point's score is the smallest distance of its own pattern and the `PERSIST - 1` before
/// it: one odd pattern of noise is no anomaly, while a spike stays in `window` patterns.
pub(crate) const PERSIST: usize = 3;
/// A pattern spans at most this many windows of the series' grid steps (its median spacing).
const MAX_SPAN: i64 = 4;
/// Points a coarse pattern averages into one value: the coarse patterns see `window` × this
/// many points, so a level shift that noise hides from `window` points stands out of the
/// means (see the module docs). On NAB (with a coarse pattern at every point), 3 gave 70.66,
/// 4 71.22, 6 69.24, 8 68.91 (weight 0.8).
const COARSE_BLOCK: usize = 4;
/// What a coarse score weighs against a fine one (both its units widened by the inverse): at
/// full weight the coarse scale's own calibration quantile alerts more often than it catches
/// more. On NAB (with a coarse pattern at every point), 1 gave 68.32, 0.8 69.64, 0.75 71.25,
/// 0.7 71.22, 0.65 70.88, 0.6 70.29, 0.55 69.50: the figures above 70 lie between 0.6 and 0.75.
const COARSE_WEIGHT: f64 = 0.7;
/// Time context: the weight of a pattern's place on the day's circle beside its values (in
/// the values' scaled units; 0 turns it off), so the nearest patterns are those of the same
/// hour on other days and a daily peak that does not come is far from them; heavier, NAB's
/// series without a daily rhythm lose more than the DevOps corpus gains.
const DAY_WEIGHT: f64 = 0.5;

/// A fitted nearest-neighbour detector: the history's patterns (scaled) at two time scales,
/// and the distance that an ordinary pattern of the history lies from its nearest neighbours.
/// `yhat` is the mean of the nearest patterns' newest values (what the series did the last
/// times it looked like this), the band `yhat ± unit` in series units; the score is the
/// pattern distance in units, not the distance to the band.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedKnn {
    pub(crate) spec: DetectorSpec,
    /// The spec's settings, typed.
    pub(crate) settings: KnnSettings,
    pub(crate) centre: f64,
    pub(crate) scale: f64,
    /// Patterns of the last `window` points.
    pub(crate) fine: PatternSet,
    /// Patterns of the last `window` means of [`COARSE_BLOCK`] points; `None` when the
    /// history holds too few of them.
    pub(crate) coarse: Option<PatternSet>,
    /// The history's lowest finite value: below it by `extreme` × the range, a new extreme.
    pub(crate) low: f64,
    /// The history's highest finite value: above it by `extreme` × the range, a new extreme.
    pub(crate) high: f64,
    /// The longest run of equal values the history held: a stream's run far longer is a
    /// stuck series (see the `flat` module).
    pub(crate) longest_flat: u32,
}

/// `knn`'s settings, read once from its [`DetectorSpec::Knn`] (see there for each).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct KnnSettings {
    pub(crate) window: usize,
    pub(crate) neighbours: usize,
    pub(crate) confirm: f64,
    pub(crate) extreme: f64,
}

impl KnnSettings {
    /// The settings of a `knn` spec; `None` for another detector's.
    pub(crate) fn of(spec: &DetectorSpec) -> Option<Self> {
        match *spec {
            DetectorSpec::Knn {
                window,
                neighbours,
                confirm,
                extreme,
            } => Some(Self {
                window,
                neighbours,
                confirm,
                extreme,
            }),
            _ => None,
        }
    }
}

/// The time context's numbers in a pattern.
const fn time_dims() -> usize {
    if DAY_WEIGHT > 0.0 { 2 } else { 0 }
}

/// The time context of a point at unix ms `t`: where it lies on the day's circle (UTC),
/// weighed by [`DAY_WEIGHT`], in a pattern's scaled units.
fn time_context(t: i64, out: &mut Vec<f32>) {
    const DAY_MS: i64 = 86_400_000;
    if DAY_WEIGHT > 0.0 {
        let angle = std::f64::consts::TAU * t.rem_euclid(DAY_MS) as f64 / DAY_MS as f64;
        out.push((DAY_WEIGHT * angle.sin()) as f32);
        out.push((DAY_WEIGHT * angle.cos()) as f32);
    }
}

/// The points before a judged point that its patterns need: `window - 1` finite ones for the
/// fine pattern (and [`PERSIST`]` - 1` patterns before it), `window` blocks for the coarse one.
pub(crate) fn context(window: usize) -> usize {
    (window + PERSIST - 2).max(window * COARSE_BLOCK - 1)
}

/// The patterns of every point with a finite value ([`pattern_at`]), with the point's index.
fn patterns(
    timestamps: &[i64],
    values: &[f64],
    window: usize,
    step: i64,
) -> Vec<(usize, Vec<f64>)> {
    let mut out = Vec::new();
    for i in 0..values.len() {
        if !values[i].is_finite() {
            continue;
        }
        if let Some(w) = pattern_at(timestamps, values, i, window, step) {
            out.push((i, w));
        }
    }
    out
}

/// Point `i`'s pattern: the last `window` finite points up to it (oldest first), or `None`
/// when there are fewer or they span more than [`MAX_SPAN`] windows of grid steps (a gap). So an
/// irregularly sampled series is judged at every point, not only where its samples fall on a grid.
fn pattern_at(
    timestamps: &[i64],
    values: &[f64],
    i: usize,
    window: usize,
    step: i64,
) -> Option<Vec<f64>> {
    let mut w = Vec::with_capacity(window);
    let mut j = i + 1;
    while j > 0 && w.len() < window {
        j -= 1;
        if values[j].is_finite() {
            w.push(values[j]);
        }
    }
    let span = MAX_SPAN.saturating_mul(window as i64).saturating_mul(step);
    if w.len() < window || timestamps[i] - timestamps[j] > span {
        return None;
    }
    w.reverse();
    Some(w)
}

/// Point `i`'s coarse pattern: the means of the finite values of the `window` blocks of
/// [`COARSE_BLOCK`] points that end at it (oldest first), or `None` when there are fewer
/// points, a block has no finite value, or they span more than [`MAX_SPAN`] times their count
/// of grid steps.
fn coarse_at(
    timestamps: &[i64],
    values: &[f64],
    i: usize,
    window: usize,
    step: i64,
) -> Option<Vec<f64>> {
    let points = window * COARSE_BLOCK;
    let first = (i + 1).checked_sub(points)?;
    let span = MAX_SPAN.saturating_mul(points as i64).saturating_mul(step);
    if timestamps[i] - timestamps[first] > span {
        return None;
    }
    values[first..=i]
        .chunks_exact(COARSE_BLOCK)
        .map(|block| {
            let (sum, n) = block
                .iter()
                .filter(|v| v.is_finite())
                .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
            (n > 0).then(|| sum / n as f64)
        })
        .collect()
}

impl PatternSet {
    /// `self`'s calibration, its patterns being `kept` (each with its point's index): each
    /// sampled pattern against the others, its own neighbourhood in time (`exclude` points)
    /// left out, since a pattern resembles its overlapping neighbours trivially. With
    /// `full_neighbourhoods`, only a pattern that finds all its `neighbours` outside its own
    /// neighbourhood calibrates: a history barely longer than the patterns (a coarse pattern
    /// spans 32 points of a minute's fit window) would otherwise leave the unit at its floor,
    /// and ordinary data would score far above 1. `None` when too few patterns are left to
    /// compare or, with `full_neighbourhoods`, fewer than `neighbours + 2` calibrate.
    #[allow(clippy::too_many_arguments)]
    fn calibrated(
        mut self,
        kept: &[(usize, Vec<f64>)],
        timestamps: &[i64],
        frame: [f64; 2],
        settings: &KnnSettings,
        exclude: usize,
        full_neighbourhoods: bool,
        dev_floor: f64,
    ) -> Option<Self> {
        let (window, k) = (settings.window, settings.neighbours);
        if kept.len() < k + 2 {
            return None;
        }
        let decoded = self.decode(window);
        let n = kept.len();
        let mut dists = Vec::new();
        let mut devs = Vec::new();
        for c in (0..n).step_by(n.div_ceil(CALIBRATION).max(1)) {
            let q = scaled(&kept[c].1, timestamps[kept[c].0], frame);
            let (d, y, found) = decoded.nearest(k, &q, |j| kept[j].0.abs_diff(kept[c].0) < exclude);
            if d.is_finite() && (found == k || !full_neighbourhoods) {
                dists.push(d);
                devs.push((kept[c].1[window - 1] - unscaled(y, frame)).abs());
            }
        }
        if full_neighbourhoods && dists.len() < k + 2 {
            return None;
        }
        let dev_unit = grid::quantile(&devs, settings.confirm);
        self.dev_unit = if dev_unit.is_finite() {
            dev_unit.max(dev_floor)
        } else {
            dev_floor
        };
        // Never below one point of the pattern off by a quarter of the scale (itself at least
        // the history's typical change): a history that never changed does not make its first
        // jitter an alarm.
        let floor = 0.25 / (window as f64).sqrt();
        let unit = grid::quantile(&dists, CAL_QUANTILE);
        self.unit = if unit.is_finite() {
            unit.max(floor)
        } else {
            floor
        };
        Some(self)
    }

    /// A pattern's distance score (in units of the set's unit) and how far its newest value
    /// lies from what its nearest patterns did next (in units of `dev_unit`), with the
    /// neighbours' mean newest value; `decoded` is this set's.
    fn judge(
        &self,
        decoded: &Decoded,
        k: usize,
        w: &[f64],
        t: i64,
        frame: [f64; 2],
    ) -> Option<[f64; 3]> {
        let (d, y, _) = decoded.nearest(k, &scaled(w, t, frame), |_| false);
        let y = unscaled(y, frame);
        d.is_finite()
            .then(|| [d / self.unit, (w[w.len() - 1] - y).abs() / self.dev_unit, y])
    }
}

/// A scaled value in series units again.
fn unscaled(v: f64, [centre, scale]: [f64; 2]) -> f64 {
    centre + scale * v
}

/// A pattern as stored and compared: its values scaled by the model's centre and scale, then
/// its newest point's time context.
fn scaled(w: &[f64], t: i64, [centre, scale]: [f64; 2]) -> Vec<f32> {
    let mut out = Vec::with_capacity(w.len() + time_dims());
    out.extend(w.iter().map(|v| ((v - centre) / scale) as f32));
    time_context(t, &mut out);
    out
}

impl FittedKnn {
    /// Fits a `knn` spec on a history; see [`DetectorSpec::fit`].
    pub fn fit(spec: &DetectorSpec, timestamps: &[i64], values: &[f64]) -> Result<Self> {
        spec.validate()?;
        let Some(settings) = KnnSettings::of(spec) else {
            return Err(Error::InvalidSpec {
                detector: spec.name(),
                field: "kind",
                problem: "is not the knn detector".into(),
                fix: "fit it with DetectorSpec::fit".into(),
            });
        };
        grid::check(timestamps, values)?;
        require_history(spec, values, spec.min_history())?;
        let (window, k) = (settings.window, settings.neighbours);
        let step = grid::step(timestamps).expect("min_history is above 1");
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let centre = grid::quantile(&finite, 0.5);
        let iqr = grid::quantile(&finite, 0.75) - grid::quantile(&finite, 0.25);
        let dev_floor = History::of(&finite).min_half_width(1.0);
        let scale = (iqr / 1.349).max(dev_floor);
        let frame = [centre, scale];
        // The patterns come from the newest points only, so the model's size has a bound.
        let from = values.len().saturating_sub(MAX_POINTS);
        let (times, points) = (&timestamps[from..], &values[from..]);
        let kept = patterns(times, points, window, step);
        // A fine pattern's values are the finite points up to it, consecutive once the others
        // are left out.
        let mut element = vec![0; points.len()];
        let mut finite_points = Vec::new();
        for (i, v) in points.iter().enumerate() {
            if v.is_finite() {
                element[i] = finite_points.len();
                finite_points.push((times[i], (v - centre) / scale));
            }
        }
        let ends: Vec<usize> = kept.iter().map(|(i, _)| element[*i]).collect();
        let fine = PatternSet::new(&finite_points, &ends)
            .calibrated(&kept, times, frame, &settings, window, false, dev_floor)
            .ok_or(Error::TooLittleHistory {
                detector: "knn",
                what: "complete patterns",
                needed: k + 2,
                got: kept.len(),
            })?;
        // One coarse pattern a block: neighbours one point apart share all but one of their
        // points' means and add size, not knowledge (on NAB, every point's: 71.19; every
        // block's: 71.40; every second point's 70.68, third 71.43, eighth 71.12). Block `b` ends
        // at point `COARSE_BLOCK * (b + 1)`, as the patterns' blocks do.
        let coarse_kept: Vec<(usize, Vec<f64>)> = (0..points.len())
            .step_by(COARSE_BLOCK)
            .filter_map(|i| Some((i, coarse_at(times, points, i, window, step)?)))
            .collect();
        let blocks: Vec<(i64, f64)> = (COARSE_BLOCK..points.len())
            .step_by(COARSE_BLOCK)
            .map(|end| {
                let block = &points[end + 1 - COARSE_BLOCK..=end];
                let (sum, n) = block
                    .iter()
                    .filter(|v| v.is_finite())
                    .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
                let mean = if n > 0 { sum / n as f64 } else { f64::NAN };
                (times[end], (mean - centre) / scale)
            })
            .collect();
        let block_ends: Vec<usize> = coarse_kept
            .iter()
            .map(|(i, _)| i / COARSE_BLOCK - 1)
            .collect();
        let coarse = PatternSet::new(&blocks, &block_ends).calibrated(
            &coarse_kept,
            times,
            frame,
            &settings,
            window * COARSE_BLOCK,
            true,
            dev_floor,
        );
        Ok(Self {
            spec: spec.clone(),
            settings,
            centre,
            scale,
            fine,
            coarse,
            low: finite.iter().copied().fold(f64::INFINITY, f64::min),
            high: finite.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            longest_flat: crate::flat::longest_run(values),
        })
    }

    /// How far `value` lies outside `range` (the history's, widened by the new extremes since),
    /// in units of `extreme` × that range (at least the scale, so a history that never moved
    /// does not make its first change infinitely far); 0 inside the range or with
    /// `extreme = 0`.
    fn extremity(&self, value: f64, [low, high]: [f64; 2]) -> f64 {
        let extreme = self.settings.extreme;
        let beyond = (value - high).max(low - value);
        if extreme <= 0.0 || beyond <= 0.0 {
            return 0.0;
        }
        beyond / (extreme * (high - low).max(self.scale))
    }

    /// Tells this model from another (a refit's), for the series' [`LiveTail`].
    fn fingerprint(&self) -> u64 {
        let coarse_unit = self.coarse.as_ref().map_or(0.0, |c| c.unit);
        let fields = [
            self.centre,
            self.scale,
            self.fine.unit,
            self.fine.dev_unit,
            coarse_unit,
            self.low,
            self.high,
        ];
        fields
            .iter()
            .map(|v| v.to_bits())
            .chain([self.fine.len() as u64])
            .fold(0xcbf2_9ce4_8422_2325, |h, x| {
                (h ^ x).wrapping_mul(0x0100_0000_01b3).rotate_left(23)
            })
    }

    /// Judges every point it can from index `from` on (the points before it are context):
    /// each new extreme (a value scoring above 1 beyond `range`) widens `range` after its own
    /// judgement, so the next one must lie beyond it, and each pattern score is counted in
    /// `tail`, which widens the unit the next ones are judged in.
    fn judge(
        &self,
        timestamps: &[i64],
        values: &[f64],
        from: usize,
        range: &mut [f64; 2],
        tail: &mut LiveTail,
    ) -> Result<Analysis> {
        grid::check(timestamps, values)?;
        let mut out = Analysis::unjudged(self.spec.name(), timestamps, values);
        let Some(step) = grid::step(timestamps) else {
            return Ok(out);
        };
        let (window, k) = (self.settings.window, self.settings.neighbours);
        let confirm = self.settings.confirm > 0.0;
        let frame = [self.centre, self.scale];
        let mut recent: Vec<(usize, f64, f64)> = Vec::new();
        // Decoded at the first point judged: a call with nothing new to judge costs nothing.
        let mut decoded: Option<(Decoded, Option<Decoded>)> = None;
        for (i, w) in patterns(timestamps, values, window, step) {
            // Points before `from` are context (their judgement is the caller's to drop): only
            // the fine patterns the next scores take their minimum over are needed. So a
            // stream's call costs its new points, however long the coarse context.
            if i + PERSIST <= from {
                continue;
            }
            let (fine, coarse_decoded) = decoded.get_or_insert_with(|| {
                let coarse = self.coarse.as_ref().map(|c| c.decode(window));
                (self.fine.decode(window), coarse)
            });
            let Some([far, off, y]) = self.fine.judge(fine, k, &w, timestamps[i], frame) else {
                continue;
            };
            recent.retain(|(j, _, _)| i - j < PERSIST);
            recent.push((i, far, off));
            if i < from || recent.len() < PERSIST || recent[0].0 != i + 1 - PERSIST {
                continue;
            }
            let far = recent.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
            let off = recent.iter().map(|r| r.2).fold(f64::INFINITY, f64::min);
            let mut score = if confirm { far.min(off) } else { far };
            if let Some(coarse) = &self.coarse
                && let Some(coarse_decoded) = coarse_decoded
                && let Some(w) = coarse_at(timestamps, values, i, window, step)
                && let Some([far, off, _]) =
                    coarse.judge(coarse_decoded, k, &w, timestamps[i], frame)
            {
                let coarse_score = if confirm { far.min(off) } else { far };
                score = score.max(COARSE_WEIGHT * coarse_score);
            }
            let live = tail.unit(LIVE_QUANTILE, CALIBRATION);
            let extremity = self.extremity(values[i], *range);
            if i >= from {
                tail.record(score);
                if extremity > 1.0 {
                    *range = [range[0].min(values[i]), range[1].max(values[i])];
                }
            }
            let score = (score / live).max(extremity);
            let half = self.fine.unit * live * self.scale;
            out.judge_scored(i, y, y - half, y + half, score);
        }
        Ok(out)
    }
}

impl Fitted for FittedKnn {
    fn spec(&self) -> &DetectorSpec {
        &self.spec
    }

    fn to_saved(&self) -> Option<crate::SavedModel> {
        Some(self.saved())
    }

    fn longest_flat_run(&self) -> Option<u32> {
        Some(self.longest_flat)
    }

    /// Each point judged from the points before it: the range for new extremes is widened by
    /// the earlier points of `values`.
    fn analyse(&self, timestamps: &[i64], values: &[f64]) -> Result<Analysis> {
        let mut tail = LiveTail::new(self.fingerprint());
        self.judge(timestamps, values, 0, &mut [self.low, self.high], &mut tail)
    }

    /// As every detector's, and the range for new extremes is the fit window's widened by
    /// every value judged since the fit: a drift to new highs alerts at its first step out.
    fn advance(
        &self,
        state: &mut StreamState,
        timestamps: &[i64],
        values: &[f64],
    ) -> Result<Analysis> {
        stream::advance_with(self, state, timestamps, values, |from, state| {
            let mut range = state.range([self.low, self.high]);
            let mut tail = state.tail(self.fingerprint());
            let out = self.judge(timestamps, values, from, &mut range, &mut tail)?;
            state.set_range(range);
            state.set_tail(tail);
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests;
