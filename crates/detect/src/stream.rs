//! Streaming judgement: what one series carries from one inference to the next
//! ([`StreamState`]), and the alerting stage that turns a detector's scores into alerts.
//!
//! The alerting stage is what makes a flag worth an alert: one incident is one alert. After a
//! point is flagged, the next [`QUIET_POINTS`] judged points are not flagged and their score is
//! capped at 1 (on the band's edge), however far out they lie; a point after that quiet period
//! that scores above 1 alerts again. A point on the other side of `yhat` than the alert that
//! scores above [`NEW_INCIDENT_SCORE`] ends the quiet period: a drop and then a spike are two
//! incidents (the demo has them 25 s apart), while the jitter around a new level after a shift
//! is not. A point scoring [`ESCALATION`] times the alert's score ends the quiet period too, on
//! either side: the outage a blip announced is an incident of its own. Without the quiet period
//! a level shift or a burst is a run of alerts, each one after the first charged as a false
//! positive by NAB (what each rule is worth: `docs/detection.md`).
//!
//! Before the alerting stage, a model that knows its history's longest run of equal values
//! ([`Fitted::longest_flat_run`](crate::Fitted::longest_flat_run)) has the series' current run counted (the `flat` module): a
//! series that stopped changing for far longer than it ever did alerts once.

use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;
use crate::error::Result;
use crate::flat::FlatRun;
use crate::grid;
use crate::knowledge::{DomainKnowledge, Known};

/// Judged points after an alert that are not flagged (their score capped at 1): at NAB's
/// 5-minute steps 8 hours, at a 15 s scrape interval 25 minutes; the best of 50 to 200 on NAB.
pub const QUIET_POINTS: u32 = 100;

/// A point on the other side of `yhat` than the alert, scoring above this, ends the quiet
/// period: a second incident (the demo's spike 25 s after its drop), not the first one's
/// jitter around a new level; at 4 a 60-point `zscore` whose window still holds the drop
/// misses the spike.
pub const NEW_INCIDENT_SCORE: f64 = 2.0;

/// A point within the quiet period scoring this many times the alert's score (and above
/// [`NEW_INCIDENT_SCORE`]) ends the quiet period, on either side of `yhat`: the alert was a
/// precursor, and the quiet period is for an incident's repeats, not for swallowing the outage
/// a small blip came just before.
pub const ESCALATION: f64 = 10.0;

/// What one series carries from one judgement to the next: the newest judged timestamp, how
/// long ago the last alert was, the current run of equal values and, for `knn`, the range its
/// new extremes widened and the highest scores its model gave since the fit (on the heap):
/// about 210 bytes with `knn` (128 inline, 80 on the heap), 128 with another detector. Kept across refits (a new fitted model continues the
/// old one's state), and serde so a service can save it. A new series starts
/// from [`StreamState::new`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamState {
    /// Unix ms of the newest point passed through [`Fitted::advance`](crate::Fitted::advance).
    judged_through_ms: Option<i64>,
    /// Judged points since the last alert; `None` before the first alert.
    since_alert: Option<u32>,
    /// Which side of `yhat` the last alert was on (above: true), for the band detectors.
    alert_above: Option<bool>,
    /// The last alert's score: a point within its quiet period scoring [`ESCALATION`] times
    /// as much is a new incident (absent in state saved before it: none until the next alert).
    #[serde(skip_serializing_if = "Option::is_none")]
    alert_score: Option<f64>,
    /// For `knn`'s new extremes: the range of the model it last judged with, widened by each
    /// new extreme judged since (absent in state saved before it: it starts from the model's).
    #[serde(skip_serializing_if = "Option::is_none")]
    range: Option<SeenRange>,
    /// For `knn`: how its model's scores since the fit were spread above 1 (absent in state
    /// saved before it: it starts empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    tail: Option<Box<LiveTail>>,
    /// Whether the last alert was on a value outside the data range of [`DomainKnowledge`]:
    /// leaving the range ends the quiet period of an in-range alert, not of one outside it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    alert_out_of_range: bool,
    /// What the team knows about the series, only for the length of one
    /// [`Fitted::advance_knowing`](crate::Fitted::advance_knowing) call (it is the query's, not the series' state).
    #[serde(skip)]
    knowledge: Option<Box<DomainKnowledge>>,
    /// The current run of equal values, for a model that knows its history's longest
    /// ([`Fitted::longest_flat_run`](crate::Fitted::longest_flat_run); absent in state saved before it: it starts again).
    #[serde(skip_serializing_if = "Option::is_none")]
    flat: Option<FlatRun>,
}

/// Highest scores a [`LiveTail`] keeps.
pub(crate) const TAIL_TOP: usize = 16;

/// The highest scores above 1 that a `knn` model gave since its fit (at most [`TAIL_TOP`],
/// highest first) and how many it gave: the unit it widens to is a high quantile of them
/// pooled with the fit's calibration ([`LiveTail::unit`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct LiveTail {
    /// Which model gave them ([`crate::detectors::FittedKnn`]'s fingerprint): a refit starts
    /// again, its calibration being newer than every score counted.
    model: u64,
    judged: u32,
    /// Highest first; 0 where fewer scores than this lay above 1.
    top: [f32; TAIL_TOP],
}

impl LiveTail {
    pub(crate) fn new(model: u64) -> Self {
        Self {
            model,
            judged: 0,
            top: [0.0; TAIL_TOP],
        }
    }

    /// The `quantile` of the scores given so far pooled with `calibrated` scores of the fit's
    /// calibration (at most 1 each), or 1 where that lies at or below 1. Beyond [`TAIL_TOP`]
    /// scores above it (more than 15,700 judged at 0.999), the lowest one kept: a little above
    /// the quantile, never below it.
    pub(crate) fn unit(&self, quantile: f64, calibrated: usize) -> f64 {
        // Less a hair: 0.01 × 200 is 2.0000000000000004 in floating point.
        let rank = ((1.0 - quantile) * (calibrated as f64 + f64::from(self.judged)) - 1e-9).ceil();
        let at = (rank.max(1.0) as usize).min(TAIL_TOP) - 1;
        f64::from(self.top[at]).max(1.0)
    }

    /// Counts one more score.
    pub(crate) fn record(&mut self, score: f64) {
        self.judged = self.judged.saturating_add(1);
        // f32's largest, not infinity: the state stays JSON.
        let score = score.min(f64::from(f32::MAX)) as f32;
        if score > 1.0
            && let Some(at) = self.top.iter().position(|&t| score > t)
        {
            self.top.copy_within(at..TAIL_TOP - 1, at + 1);
            self.top[at] = score;
        }
    }
}

/// The range (lowest, highest value) of the fit window of the model a series was last judged
/// with, and that range widened by each new extreme judged since: the next new extreme must
/// lie beyond the widened range, so a drift to new highs alerts at its first step out, not
/// again at every step beyond the fit window's stale range after each quiet period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct SeenRange {
    fit: [f64; 2],
    seen: [f64; 2],
}

impl StreamState {
    /// The state of a series nothing has been judged of yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Unix ms of the newest point already passed through [`Fitted::advance`](crate::Fitted::advance) (judged or not);
    /// `None` on a new state.
    pub fn judged_through_ms(&self) -> Option<i64> {
        self.judged_through_ms
    }

    /// Whether the series is in the quiet period after an alert, where nothing is flagged.
    pub fn quiet(&self) -> bool {
        self.since_alert.is_some_and(|k| k < QUIET_POINTS)
    }

    /// The range to judge new extremes against for a model whose fit window's range is `fit`:
    /// `fit` as [`set_range`](Self::set_range) last widened it, unless the model changed (a
    /// refit's new range starts again: the refit's window holds those values).
    pub(crate) fn range(&mut self, fit: [f64; 2]) -> [f64; 2] {
        match self.range {
            Some(r) if r.fit == fit => r.seen,
            _ => {
                self.range = Some(SeenRange { fit, seen: fit });
                fit
            }
        }
    }

    /// Stores the range [`range`](Self::range) gave (call it first), widened by the new
    /// extremes judged since.
    pub(crate) fn set_range(&mut self, seen: [f64; 2]) {
        if let Some(r) = self.range.as_mut() {
            r.seen = seen;
        }
    }

    /// The tail of the scores that the model fingerprinted `model` gave since its fit: empty
    /// for a new model.
    pub(crate) fn tail(&mut self, model: u64) -> LiveTail {
        match self.tail {
            Some(ref t) if t.model == model => **t,
            _ => LiveTail::new(model),
        }
    }

    /// Stores the tail [`tail`](Self::tail) gave, with the scores judged since.
    pub(crate) fn set_tail(&mut self, tail: LiveTail) {
        // Boxed: a series judged by another detector pays one pointer, not the tail.
        self.tail = Some(Box::new(tail));
    }

    /// Passes one judged point's score through the alerting stage: the score it reports and
    /// whether the point alerts.
    /// `above` is the point's side of `yhat`; `None` where it has none (an infinite yhat).
    fn alert(&mut self, score: f64, above: Option<bool>) -> (f64, bool) {
        let other_side = above.is_some() && self.alert_above.is_some() && above != self.alert_above;
        let escalated = self.alert_score.is_some_and(|s| score > ESCALATION * s);
        let new_incident = score > NEW_INCIDENT_SCORE && (other_side || escalated);
        if self.quiet() && !new_incident {
            self.since_alert = self.since_alert.map(|k| k + 1);
            return (score.min(1.0), false);
        }
        if score > 1.0 {
            self.since_alert = Some(0);
            self.alert_above = above;
            self.alert_score = Some(score);
            return (score, true);
        }
        self.since_alert = self.since_alert.map(|k| k.saturating_add(1));
        (score, false)
    }
}

/// What the alerting stage needs of a model: its detector's name, the longest run of equal
/// values in its history, and its analysis of a slice. Every [`Fitted`](crate::Fitted) model
/// is one (`detectors/mod.rs`), so this module, below the detectors, needs nothing of them.
pub(crate) trait Staged {
    /// The detector's name, for an empty analysis.
    fn detector_name(&self) -> &'static str;
    /// [`Fitted::longest_flat_run`](crate::Fitted::longest_flat_run).
    fn history_longest_flat(&self) -> Option<u32>;
    /// [`Fitted::analyse`](crate::Fitted::analyse).
    fn analyse_all(&self, timestamps: &[i64], values: &[f64]) -> Result<Analysis>;
}

/// The index of the first point of `timestamps` newer than what `state` has judged through.
fn first_new(state: &StreamState, timestamps: &[i64]) -> usize {
    match state.judged_through_ms {
        Some(t) => timestamps.partition_point(|&x| x <= t),
        None => 0,
    }
}

/// [`Fitted::advance`](crate::Fitted::advance) for every detector: the model's analysis of everything given, cut to
/// the new points, through the alerting stage.
pub(crate) fn advance<F: Staged + ?Sized>(
    fitted: &F,
    state: &mut StreamState,
    timestamps: &[i64],
    values: &[f64],
) -> Result<Analysis> {
    advance_with(fitted, state, timestamps, values, |_, _| {
        fitted.analyse_all(timestamps, values)
    })
}

/// [`advance`] with the analysis of a detector whose judgement of the new points (from the
/// index it is given) also reads and updates the series' state.
pub(crate) fn advance_with<F: Staged + ?Sized>(
    fitted: &F,
    state: &mut StreamState,
    timestamps: &[i64],
    values: &[f64],
    analyse: impl FnOnce(usize, &mut StreamState) -> Result<Analysis>,
) -> Result<Analysis> {
    grid::check(timestamps, values)?;
    let from = first_new(state, timestamps);
    if from == timestamps.len() {
        return Ok(Analysis::unjudged(fitted.detector_name(), &[], &[]));
    }
    let mut out = analyse(from, state)?.slice(from..timestamps.len());
    state.judged_through_ms = timestamps.last().copied();
    if let Some(longest) = fitted.history_longest_flat() {
        state.flat.get_or_insert_default().count(longest, &mut out);
    }
    let knowledge = state.knowledge.as_deref().copied();
    for i in 0..out.len() {
        let Known {
            score,
            out_of_range,
        } = match &knowledge {
            Some(k) => k.judge(out.values[i], out.yhat[i], out.score[i]),
            None => Known {
                score: out.score[i],
                out_of_range: false,
            },
        };
        if score.is_nan() {
            continue;
        }
        let above = out.yhat[i]
            .is_finite()
            .then(|| out.values[i] >= out.yhat[i]);
        if out_of_range && !state.alert_out_of_range && state.quiet() {
            // Leaving the data range is an incident of its own.
            state.since_alert = Some(QUIET_POINTS);
        }
        let (score, alert) = state.alert(score, above);
        if alert {
            state.alert_out_of_range = out_of_range;
        }
        out.score[i] = score;
        out.anomalous[i] = alert;
    }
    if let Some(k) = knowledge {
        k.clip_band(&mut out);
    }
    Ok(out)
}

/// [`Fitted::advance_knowing`](crate::Fitted::advance_knowing): `advance` (the model's
/// [`Fitted::advance`](crate::Fitted::advance)) with `knowledge` applied in its alerting stage
/// (nothing is added to the work when it is unset).
pub(crate) fn advance_knowing(
    state: &mut StreamState,
    knowledge: &DomainKnowledge,
    advance: impl FnOnce(&mut StreamState) -> Result<Analysis>,
) -> Result<Analysis> {
    if knowledge.is_unset() {
        return advance(state);
    }
    state.knowledge = Some(Box::new(*knowledge));
    let out = advance(state);
    state.knowledge = None;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size the type's docs give, for a `knn` series (its live tail on the heap); the
    /// watch holds one per series.
    #[test]
    fn a_knn_series_stream_state_is_about_200_bytes() {
        let bytes = std::mem::size_of::<StreamState>() + std::mem::size_of::<LiveTail>();
        eprintln!(
            "StreamState {} B inline, LiveTail {} B boxed: {bytes} B",
            std::mem::size_of::<StreamState>(),
            std::mem::size_of::<LiveTail>()
        );
        assert!((180..=230).contains(&bytes), "{bytes} B");
    }

    #[test]
    fn the_range_is_kept_until_a_refit_and_old_state_loads() {
        let mut s = StreamState::new();
        assert_eq!(s.range([0.0, 3.0]), [0.0, 3.0]);
        s.set_range([0.0, 10.0]);
        assert_eq!(s.range([0.0, 3.0]), [0.0, 10.0], "the same model: widened");
        let text = serde_json::to_string(&s).unwrap();
        let back: StreamState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        assert_eq!(s.range([1.0, 9.0]), [1.0, 9.0], "a refit starts again");
        // State saved before the range existed still loads, and starts from the model's.
        let mut old: StreamState =
            serde_json::from_str(r#"{"judged_through_ms":5,"since_alert":3,"alert_above":true}"#)
                .unwrap();
        assert_eq!(old.judged_through_ms(), Some(5));
        assert_eq!(old.alert_score, None);
        assert_eq!(old.range([0.0, 3.0]), [0.0, 3.0]);
        assert_eq!(old.tail(7), LiveTail::new(7), "no tail yet: an empty one");
        // A state that never judged knn writes no range and no tail.
        let fresh = serde_json::to_string(&StreamState::new()).unwrap();
        assert!(
            !fresh.contains("range") && !fresh.contains("tail"),
            "{fresh}"
        );
    }

    #[test]
    fn the_live_tail_is_a_quantile_above_1_and_starts_again_with_a_new_model() {
        let mut s = StreamState::new();
        let mut t = s.tail(1);
        // Pooled with 100 calibration scores, the 99 % quantile is the second highest of 101 to
        // 200 scores, the third of 201 to 300.
        for _ in 0..97 {
            t.record(0.5);
        }
        assert_eq!(t.unit(0.99, 100), 1.0);
        t.record(3.0);
        t.record(1.2);
        t.record(2.0);
        assert_eq!(t.unit(0.99, 100), 2.0, "the second highest of 200");
        t.record(0.5);
        assert_eq!(t.unit(0.99, 100), f64::from(1.2f32), "the third of 201");
        assert_eq!(t.unit(0.999, 100), 3.0, "the highest");
        t.record(f64::INFINITY);
        assert_eq!(t.unit(0.999, 100), f64::from(f32::MAX));
        // Beyond the highest kept, the lowest of them.
        for _ in 0..TAIL_TOP {
            t.record(1.5);
        }
        assert_eq!(t.unit(0.5, 100), 1.5);
        s.set_tail(t);
        assert_eq!(s.tail(1), t, "the same model: kept");
        let back: StreamState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(s.tail(2), LiveTail::new(2), "a refit starts again");
    }

    #[test]
    fn one_alert_then_quiet_then_armed_again() {
        let mut s = StreamState::new();
        let below = Some(false);
        assert_eq!(s.alert(0.5, below), (0.5, false));
        assert!(!s.quiet());
        assert_eq!(s.alert(7.0, below), (7.0, true));
        assert!(s.quiet());
        for _ in 0..QUIET_POINTS {
            assert_eq!(s.alert(9.0, below), (1.0, false), "capped and quiet");
        }
        assert!(!s.quiet());
        assert_eq!(s.alert(3.0, below), (3.0, true), "armed again");
        let mut s = StreamState::new();
        assert_eq!(s.alert(f64::INFINITY, None), (f64::INFINITY, true));
        // A drop, then a far spike within the quiet period: two incidents, two alerts; a spike
        // that is only just out (the jitter around a new level), or one with no side: one.
        for (side_of_spike, spike, alerts) in [
            (Some(true), 12.0, 2),
            (Some(true), NEW_INCIDENT_SCORE, 1),
            (None, 12.0, 1),
        ] {
            let mut s = StreamState::new();
            let drop = Some(false);
            let mut n = usize::from(s.alert(8.0, drop).1);
            n += (0..20).filter(|_| s.alert(0.2, drop).1).count();
            n += usize::from(s.alert(spike, side_of_spike).1);
            n += (0..5).filter(|_| s.alert(spike, side_of_spike).1).count();
            assert_eq!(n, alerts, "{side_of_spike:?}");
        }
    }

    #[test]
    fn an_escalation_within_the_quiet_period_is_a_new_incident() {
        // A blip alerts at 3, then its jitter, then the outage it announced on the same side:
        // at 10 times the blip's score a second alert, below that none.
        for (at, outage, alerts) in [
            (20, 3.0 * ESCALATION + 1.0, 2),
            (20, 3.0 * ESCALATION - 1.0, 1),
            (5, 3.0 * ESCALATION + 1.0, 2),
        ] {
            let mut s = StreamState::new();
            let mut n = usize::from(s.alert(3.0, Some(true)).1);
            n += (1..at).filter(|_| s.alert(1.5, Some(true)).1).count();
            n += usize::from(s.alert(outage, Some(true)).1);
            n += (0..3).filter(|_| s.alert(outage, Some(true)).1).count();
            assert_eq!(n, alerts, "{outage} at {at}");
        }
        // An alert at an infinite score (a value where nothing was before) never escalates.
        let mut s = StreamState::new();
        assert!(s.alert(f64::INFINITY, None).1);
        assert!(!s.alert(1e300, None).1);
    }
}
