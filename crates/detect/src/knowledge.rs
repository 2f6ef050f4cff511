//! What a team knows about a metric ([`DomainKnowledge`]), applied to every detector's
//! judgement in the alerting stage: which side of `yhat` matters, the smallest deviation worth
//! an alert, and the values the metric can take at all.
//!
//! How each setting meets the score and the quiet period after an alert (`stream.rs`):
//! - a point on the side `direction` leaves out, or closer to `yhat` than `min_deviation`,
//!   has its score capped at 1 (on the band's edge: never an alert, so
//!   `promlearn_anomaly_score` above 1 still means "alerted") and counts as a judged point of a
//!   quiet period like any other;
//! - a value outside `data_range` is an anomaly whatever the detector says (even one it could
//!   not judge): it scores at least `1 + distance beyond the range / the range's width` (the
//!   width taken as 1 for an unbounded range), whatever `direction` and `min_deviation` say.
//!   Leaving the range is an incident of its own, so it alerts even within the quiet period of
//!   an alert on an in-range point; while the series stays outside, the quiet period holds as
//!   for any incident. The band and `yhat` are clipped into the range.
//!
//! With nothing set ([`DomainKnowledge::default`]) judgements are exactly the detector's.

use serde::{Deserialize, Serialize};

use crate::{Analysis, Error, Result};

/// Which side of `yhat` may alert.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Either side (the default).
    #[default]
    Both,
    /// Only values above `yhat` (latency, errors: a drop is no incident).
    Up,
    /// Only values below `yhat` (free space, throughput: a rise is no incident).
    Down,
}

/// The smallest distance from `yhat` that may alert: a point closer than `absolute` (in the
/// metric's unit) or than `relative` × `|yhat|` never alerts, however unusual its score. Both
/// default to 0 (off); with both set, a point must be at least as far as each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinDeviation {
    /// In the metric's unit, e.g. 5 (ms) for a latency.
    pub absolute: f64,
    /// A share of `|yhat|`, e.g. 0.1 for 10 %.
    pub relative: f64,
}

/// What a team knows about a metric, given to [`Fitted::advance_knowing`](crate::Fitted::advance_knowing)
/// (the watch reads it per query from its TOML) or applied to an [`Analysis`] with
/// [`apply`](Self::apply). The module docs say how it meets the score and the quiet period.
///
/// ```
/// use promlearn_detect::{Direction, DomainKnowledge, MinDeviation};
///
/// // A p99 latency in ms: only a rise matters, and only by 5 ms and 10 % at least; a negative
/// // value is a broken exporter.
/// let knowledge = DomainKnowledge {
///     direction: Direction::Up,
///     min_deviation: MinDeviation { absolute: 5.0, relative: 0.1 },
///     data_range: Some([0.0, f64::INFINITY]),
/// };
/// knowledge.validate()?;
/// let from_json: DomainKnowledge = serde_json::from_str(
///     r#"{"direction": "up", "min_deviation": {"absolute": 5, "relative": 0.1}, "data_range": [0, 1e308]}"#,
/// )?;
/// assert_eq!(from_json.direction, Direction::Up);
/// assert!(DomainKnowledge::default().is_unset());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomainKnowledge {
    /// Which side of `yhat` may alert.
    pub direction: Direction,
    /// The smallest deviation from `yhat` that may alert.
    pub min_deviation: MinDeviation,
    /// `[lowest, highest]` value the metric can take (±inf for no bound on a side): a value
    /// outside is an anomaly at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_range: Option<[f64; 2]>,
}

/// One point's judgement after [`DomainKnowledge`]: its score, and whether its value lies
/// outside the data range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Known {
    pub(crate) score: f64,
    pub(crate) out_of_range: bool,
}

impl DomainKnowledge {
    /// Whether nothing is set: judgements are exactly the detector's.
    pub fn is_unset(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the settings; the error names the setting and says what to write instead.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &'static str, problem: String, fix: &str| Error::InvalidKnowledge {
            field,
            problem,
            fix: fix.to_owned(),
        };
        let MinDeviation { absolute, relative } = self.min_deviation;
        for (name, v) in [("absolute", absolute), ("relative", relative)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(
                    "min_deviation",
                    format!("{name} must be a finite number, 0 or more (got {v})"),
                    "write e.g. min_deviation = { absolute = 5.0, relative = 0.1 }",
                ));
            }
        }
        if let Some([lo, hi]) = self.data_range
            && (lo.is_nan() || hi.is_nan() || lo >= hi)
        {
            return Err(invalid(
                "data_range",
                format!("must be [lowest, highest] with lowest below highest (got [{lo}, {hi}])"),
                "write e.g. data_range = [0, 100] for a percentage, or [0, inf] for a value that is never negative",
            ));
        }
        Ok(())
    }

    /// Judges one point: `score` is the detector's (NaN where it judged nothing), `yhat` its
    /// prediction (NaN there too).
    pub(crate) fn judge(&self, value: f64, yhat: f64, score: f64) -> Known {
        if let Some([lo, hi]) = self.data_range
            && (value < lo || value > hi)
        {
            let beyond = if value < lo { lo - value } else { value - hi };
            let width = hi - lo;
            let width = if width.is_finite() { width } else { 1.0 };
            let floor = (1.0 + beyond / width).max(1.0 + f64::EPSILON);
            return Known {
                score: if score.is_nan() {
                    floor
                } else {
                    score.max(floor)
                },
                out_of_range: true,
            };
        }
        let plain = Known {
            score,
            out_of_range: false,
        };
        if !(yhat.is_finite() && value.is_finite()) {
            return plain;
        }
        let wrong_side = match self.direction {
            Direction::Both => false,
            Direction::Up => value < yhat,
            Direction::Down => value > yhat,
        };
        let MinDeviation { absolute, relative } = self.min_deviation;
        let too_close = (value - yhat).abs() < absolute.max(relative * yhat.abs());
        if wrong_side || too_close {
            return Known {
                score: score.min(1.0),
                out_of_range: false,
            };
        }
        plain
    }

    /// Clips `yhat` and the band of `analysis` into the data range.
    pub(crate) fn clip_band(&self, analysis: &mut Analysis) {
        let Some([lo, hi]) = self.data_range else {
            return;
        };
        for column in [
            &mut analysis.yhat,
            &mut analysis.yhat_lower,
            &mut analysis.yhat_upper,
        ] {
            for v in column.iter_mut().filter(|v| !v.is_nan()) {
                *v = v.clamp(lo, hi);
            }
        }
    }

    /// Applies the knowledge to an analysis judged point by point ([`Fitted::analyse`](crate::Fitted::analyse),
    /// with no alerting stage): scores capped or raised and flags set as the module docs say,
    /// the band clipped into the data range.
    pub fn apply(&self, analysis: &mut Analysis) {
        if self.is_unset() {
            return;
        }
        for i in 0..analysis.len() {
            let known = self.judge(analysis.values[i], analysis.yhat[i], analysis.score[i]);
            analysis.score[i] = known.score;
            analysis.anomalous[i] = known.score > 1.0;
        }
        self.clip_band(analysis);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knowing(direction: Direction, absolute: f64, relative: f64) -> DomainKnowledge {
        DomainKnowledge {
            direction,
            min_deviation: MinDeviation { absolute, relative },
            data_range: None,
        }
    }

    #[test]
    fn direction_caps_the_other_side_at_1() {
        let up = knowing(Direction::Up, 0.0, 0.0);
        assert_eq!(up.judge(5.0, 10.0, 7.0).score, 1.0, "a drop: capped");
        assert_eq!(up.judge(5.0, 10.0, 0.4).score, 0.4, "below 1 kept");
        assert_eq!(up.judge(15.0, 10.0, 7.0).score, 7.0, "a rise: kept");
        let down = knowing(Direction::Down, 0.0, 0.0);
        assert_eq!(down.judge(15.0, 10.0, 7.0).score, 1.0);
        assert_eq!(down.judge(5.0, 10.0, 7.0).score, 7.0);
        let both = DomainKnowledge::default();
        assert_eq!(both.judge(5.0, 10.0, 7.0).score, 7.0);
        // No side where yhat is not finite: nothing to cap.
        assert_eq!(up.judge(5.0, f64::NAN, 7.0).score, 7.0);
    }

    #[test]
    fn min_deviation_needs_both_the_absolute_and_the_relative_distance() {
        let k = knowing(Direction::Both, 5.0, 0.1);
        // yhat 100: 10 % is 10, so a point must be 10 away.
        assert_eq!(k.judge(108.0, 100.0, 9.0).score, 1.0);
        assert_eq!(
            k.judge(110.0, 100.0, 9.0).score,
            9.0,
            "exactly the minimum alerts"
        );
        assert_eq!(k.judge(91.0, 100.0, 9.0).score, 1.0);
        // yhat 20: 10 % is 2, the absolute 5 rules.
        assert_eq!(k.judge(24.0, 20.0, 9.0).score, 1.0);
        assert_eq!(k.judge(26.0, 20.0, 9.0).score, 9.0);
        let relative_only = knowing(Direction::Both, 0.0, 0.5);
        assert_eq!(
            relative_only.judge(0.1, 0.0, 9.0).score,
            9.0,
            "yhat 0: no floor"
        );
    }

    #[test]
    fn a_value_outside_the_data_range_is_an_anomaly_whatever_the_detector_says() {
        let k = DomainKnowledge {
            direction: Direction::Down,
            min_deviation: MinDeviation {
                absolute: 1000.0,
                relative: 0.0,
            },
            data_range: Some([0.0, 100.0]),
        };
        let out = k.judge(150.0, 120.0, 0.2);
        assert!(out.out_of_range);
        assert_eq!(out.score, 1.5, "1 + 50 beyond / width 100");
        assert_eq!(
            k.judge(-1.0, f64::NAN, f64::NAN).score,
            1.01,
            "unjudged: still out"
        );
        assert_eq!(k.judge(150.0, 120.0, 9.0).score, 9.0, "a higher score kept");
        let edge = k.judge(100.0 + 1e-13, 99.0, 0.0);
        assert!(edge.out_of_range && edge.score > 1.0, "{edge:?}");
        assert!(
            !k.judge(100.0, 50.0, 0.5).out_of_range,
            "the bounds are in range"
        );
        let unbounded = DomainKnowledge {
            data_range: Some([0.0, f64::INFINITY]),
            ..DomainKnowledge::default()
        };
        assert_eq!(unbounded.judge(-2.0, 1.0, 0.0).score, 3.0, "width 1");
        assert!(!unbounded.judge(1e300, 1.0, 0.0).out_of_range);
        assert!(!k.judge(f64::NAN, 1.0, f64::NAN).out_of_range);
    }

    #[test]
    fn apply_caps_flags_and_clips_an_analysis() {
        let mut a = Analysis::unjudged("zscore", &[1, 2, 3], &[5.0, 15.0, 120.0]);
        for (i, score) in [(0, 4.0), (1, 4.0), (2, 0.5)] {
            a.yhat[i] = 10.0;
            a.yhat_lower[i] = -10.0;
            a.yhat_upper[i] = 110.0;
            a.score[i] = score;
            a.anomalous[i] = score > 1.0;
        }
        let k = DomainKnowledge {
            direction: Direction::Up,
            data_range: Some([0.0, 100.0]),
            ..DomainKnowledge::default()
        };
        k.apply(&mut a);
        assert_eq!(a.score, vec![1.0, 4.0, 1.2]);
        assert_eq!(a.anomalous, vec![false, true, true]);
        assert_eq!(a.yhat_lower, vec![0.0; 3]);
        assert_eq!(a.yhat_upper, vec![100.0; 3]);
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let bad = |k: DomainKnowledge| k.validate().unwrap_err().to_string();
        let e = bad(knowing(Direction::Up, -1.0, 0.0));
        assert!(e.contains("min_deviation") && e.contains("-1"), "{e}");
        let e = bad(knowing(Direction::Up, 0.0, f64::NAN));
        assert!(e.contains("relative"), "{e}");
        for range in [[1.0, 1.0], [2.0, 1.0], [f64::NAN, 1.0]] {
            let e = bad(DomainKnowledge {
                data_range: Some(range),
                ..DomainKnowledge::default()
            });
            assert!(
                e.contains("data_range") && e.contains("below highest"),
                "{e}"
            );
        }
        assert!(DomainKnowledge::default().validate().is_ok());
        let e = serde_json::from_str::<DomainKnowledge>(r#"{"direction":"sideways"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sideways") && e.contains("up"), "{e}");
    }
}
