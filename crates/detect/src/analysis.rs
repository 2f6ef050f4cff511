//! The finished analysis of one series, and how it scores against injected events.

use serde::Serialize;

/// One finished analysis of one series: per timestamp the value, the prediction, the band, the
/// score and the flag. All vectors have the same length as `timestamps`.
///
/// Points the detector could not judge (its warm-up, a gap, a NaN or ±Inf value) have NaN in
/// `yhat`, `yhat_lower`, `yhat_upper` and `score`, and `false` in `anomalous`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// The detector's name: `zscore`, `mad`, `quantile`, `knn` or `lstm`.
    pub detector: String,
    /// Unix milliseconds.
    pub timestamps: Vec<i64>,
    /// The series as given.
    pub values: Vec<f64>,
    /// The prediction (the rolling centre, or the forecast); NaN where not judged.
    pub yhat: Vec<f64>,
    /// The band's lower edge; NaN where not judged.
    pub yhat_lower: Vec<f64>,
    /// The band's upper edge; NaN where not judged.
    pub yhat_upper: Vec<f64>,
    /// 1 on the edge of normal, above 1 beyond it; NaN where not judged. For the band detectors
    /// `|value - yhat|` divided by the band's half-width on the value's side (0 on `yhat`); for
    /// `knn` the pattern distance (see the crate docs). From [`Fitted::advance`](crate::Fitted::advance),
    /// capped at 1 in the quiet period after an alert.
    pub score: Vec<f64>,
    /// `score > 1` (from `advance`: and not in the quiet period after an alert); never true
    /// where not judged.
    pub anomalous: Vec<bool>,
}

impl Analysis {
    /// An analysis of `timestamps`/`values` with nothing judged yet.
    pub(crate) fn unjudged(detector: &str, timestamps: &[i64], values: &[f64]) -> Self {
        let n = timestamps.len();
        Self {
            detector: detector.to_owned(),
            timestamps: timestamps.to_vec(),
            values: values.to_vec(),
            yhat: vec![f64::NAN; n],
            yhat_lower: vec![f64::NAN; n],
            yhat_upper: vec![f64::NAN; n],
            score: vec![f64::NAN; n],
            anomalous: vec![false; n],
        }
    }

    /// Records the judgement of point `i`: the prediction and the band around it. The score is
    /// computed from the stored band, so a value exactly on an edge scores exactly 1.
    pub(crate) fn judge(&mut self, i: usize, yhat: f64, lower: f64, upper: f64) {
        let v = self.values[i];
        if !(v.is_finite() && yhat.is_finite() && lower.is_finite() && upper.is_finite()) {
            return;
        }
        self.yhat[i] = yhat;
        self.yhat_lower[i] = lower;
        self.yhat_upper[i] = upper;
        let (distance, half) = if v >= yhat {
            (v - yhat, upper - yhat)
        } else {
            (yhat - v, yhat - lower)
        };
        let score = if half > 0.0 {
            distance / half
        } else if distance == 0.0 {
            0.0
        } else {
            f64::INFINITY
        };
        self.score[i] = score;
        self.anomalous[i] = score > 1.0;
    }

    /// Records the judgement of point `i` with a score of the detector's own (not the distance
    /// to the band): the prediction, the band drawn around it, and the score.
    pub(crate) fn judge_scored(&mut self, i: usize, yhat: f64, lower: f64, upper: f64, score: f64) {
        if !(self.values[i].is_finite() && score.is_finite()) {
            return;
        }
        self.yhat[i] = yhat;
        self.yhat_lower[i] = lower;
        self.yhat_upper[i] = upper;
        self.score[i] = score;
        self.anomalous[i] = score > 1.0;
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The index of the newest point that was judged (has a finite score), if any.
    pub fn last_judged(&self) -> Option<usize> {
        self.score.iter().rposition(|s| !s.is_nan())
    }

    /// Indices of the flagged points, oldest first.
    pub fn flagged(&self) -> impl Iterator<Item = usize> + '_ {
        self.anomalous
            .iter()
            .enumerate()
            .filter(|(_, a)| **a)
            .map(|(i, _)| i)
    }

    /// The points `range` (clamped to the analysis), e.g. a requested range without the
    /// context loaded before it.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Analysis {
        let end = range.end.min(self.len());
        let r = range.start.min(end)..end;
        Analysis {
            detector: self.detector.clone(),
            timestamps: self.timestamps[r.clone()].to_vec(),
            values: self.values[r.clone()].to_vec(),
            yhat: self.yhat[r.clone()].to_vec(),
            yhat_lower: self.yhat_lower[r.clone()].to_vec(),
            yhat_upper: self.yhat_upper[r.clone()].to_vec(),
            score: self.score[r.clone()].to_vec(),
            anomalous: self.anomalous[r].to_vec(),
        }
    }

    /// How many points were judged.
    pub fn judged(&self) -> usize {
        self.score.iter().filter(|s| !s.is_nan()).count()
    }
}

/// An event injected into (or known to be in) a series, to score an analysis against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Injected {
    /// What it was, e.g. `spike x5`.
    pub name: String,
    /// Start, unix milliseconds, inclusive.
    pub from_ms: i64,
    /// End, unix milliseconds, exclusive. A flag inside `[from_ms, to_ms)` counts for this
    /// event, so the caller widens the event's own end by the echo it expects (the rate
    /// query's look-back plus the detector's window).
    pub to_ms: i64,
}

/// How an analysis's flags match the injected events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventScore {
    /// Flagged points.
    pub flags: usize,
    /// Flags inside some event.
    pub true_flags: usize,
    /// Flags outside every event.
    pub false_flags: usize,
    /// Each event's name and whether at least one flag fell inside it, in the order given.
    pub events_found: Vec<(String, bool)>,
    /// `true_flags / flags`; 1 when nothing was flagged (no flag was wrong).
    pub precision: f64,
    /// Events found / events; 1 when there were no events (nothing was missed).
    pub recall: f64,
    /// The harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
}

/// Scores `analysis`'s flags against `events`: precision over flags (a flag is true when it
/// falls inside any event), recall over events (an event is found when any flag falls inside it).
///
/// ```
/// use promlearn_detect::{Analysis, Injected, evaluate};
///
/// let a = Analysis {
///     detector: "zscore".into(),
///     timestamps: vec![0, 1000, 2000, 3000],
///     values: vec![1.0; 4],
///     yhat: vec![1.0; 4],
///     yhat_lower: vec![0.0; 4],
///     yhat_upper: vec![2.0; 4],
///     score: vec![0.0, 3.0, 0.0, 3.0],
///     anomalous: vec![false, true, false, true],
/// };
/// let events = [Injected { name: "spike".into(), from_ms: 1000, to_ms: 2000 }];
/// let s = evaluate(&a, &events);
/// assert_eq!((s.flags, s.true_flags, s.false_flags), (2, 1, 1));
/// assert_eq!((s.precision, s.recall), (0.5, 1.0));
/// ```
pub fn evaluate(analysis: &Analysis, events: &[Injected]) -> EventScore {
    let mut found = vec![false; events.len()];
    let (mut flags, mut true_flags) = (0usize, 0usize);
    for i in analysis.flagged() {
        flags += 1;
        let t = analysis.timestamps[i];
        let mut inside = false;
        for (e, hit) in events.iter().zip(found.iter_mut()) {
            if (e.from_ms..e.to_ms).contains(&t) {
                inside = true;
                *hit = true;
            }
        }
        if inside {
            true_flags += 1;
        }
    }
    let precision = if flags == 0 {
        1.0
    } else {
        true_flags as f64 / flags as f64
    };
    let recall = if events.is_empty() {
        1.0
    } else {
        found.iter().filter(|f| **f).count() as f64 / events.len() as f64
    };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    EventScore {
        flags,
        true_flags,
        false_flags: flags - true_flags,
        events_found: events
            .iter()
            .zip(found)
            .map(|(e, f)| (e.name.clone(), f))
            .collect(),
        precision,
        recall,
        f1,
    }
}
