//! What a user asks for ([`DetectorSpec`]) and what fitting it gives ([`Fitted`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;
use crate::error::{Error, Result};
use crate::stream::StreamState;

mod knn;
mod lstm;
mod rolling;
mod saved;

pub use knn::FittedKnn;
pub use lstm::{DETECTOR_FILE, EpochDone, FittedLstm, LstmOptions};
pub use rolling::FittedRolling;
pub use saved::SavedModel;

/// A detector and its settings, as a user writes it in a watch configuration
/// (`{ kind = "mad", threshold = 6 }`) or on the command line. Every field has a default, so
/// `{ kind = "zscore" }` is a complete spec.
///
/// The rolling detectors (`zscore`, `mad`, `quantile`) judge each point from the `window`
/// points before it (never from itself, so a spike cannot hide inside its own statistics);
/// fitting only learns the smallest band worth drawing from the history. `knn` compares the
/// last `window` points with every such pattern of the history (fit it on a week to know a
/// daily rhythm). `lstm` learns the series' shape with promlearn-model's next-value forecaster.
///
/// ```
/// use promlearn_detect::DetectorSpec;
///
/// let spec: DetectorSpec = serde_json::from_str(r#"{ "kind": "mad", "threshold": 6 }"#).unwrap();
/// assert_eq!(spec, DetectorSpec::Mad { window: 60, threshold: 6.0 });
/// assert_eq!(spec.name(), "mad");
/// assert!(serde_json::from_str::<DetectorSpec>(r#"{ "kind": "mad", "treshold": 6 }"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DetectorSpec {
    /// Rolling z-score: the band is `mean ± threshold·std` of the previous `window` points.
    #[serde(rename = "zscore", alias = "z_score")]
    ZScore {
        /// Points looked back on (default 60).
        #[serde(default = "defaults::zscore_window")]
        window: usize,
        /// Standard deviations from the mean to the band's edge (default 4).
        #[serde(default = "defaults::zscore_threshold")]
        threshold: f64,
    },
    /// Rolling median absolute deviation: the band is `median ± threshold·1.4826·MAD` of the
    /// previous `window` points (1.4826·MAD estimates the standard deviation, robustly).
    Mad {
        /// Points looked back on (default 60).
        #[serde(default = "defaults::mad_window")]
        window: usize,
        /// Robust standard deviations from the median to the band's edge (default 5).
        #[serde(default = "defaults::mad_threshold")]
        threshold: f64,
    },
    /// Rolling quantiles: the band runs from the `lower` to the `upper` quantile of the previous
    /// `window` points, widened on each side by `margin` × their distance; `yhat` is the median.
    Quantile {
        /// Points looked back on (default 120).
        #[serde(default = "defaults::quantile_window")]
        window: usize,
        /// Lower quantile, 0 to 1 (default 0.01).
        #[serde(default = "defaults::quantile_lower")]
        lower: f64,
        /// Upper quantile, 0 to 1 (default 0.99).
        #[serde(default = "defaults::quantile_upper")]
        upper: f64,
        /// Widening on each side, as a multiple of `upper − lower` quantile (default 1).
        #[serde(default = "defaults::quantile_margin")]
        margin: f64,
    },
    /// Nearest neighbours: how far the last `window` points lie from the history's patterns,
    /// in units of the distance only 1 % of the history's own patterns exceed (widened to the
    /// 99.9 % quantile of the scores the model gave since its fit once that lies above 1),
    /// and whether the newest value left the history's range; each pattern also knows its
    /// time of day (the best on NAB and the DevOps corpus; fit it on a week of history,
    /// refitted daily).
    Knn {
        /// Points in a pattern (default 8).
        #[serde(default = "defaults::knn_window")]
        window: usize,
        /// Nearest patterns averaged (default 8).
        #[serde(default = "defaults::knn_neighbours")]
        neighbours: usize,
        /// Agreement: the newest values must also lie this far from what the nearest patterns
        /// did next, as a quantile of the history's own such deviations, at each of the last
        /// three points (default 0.9; 0 turns it off). Off, a jittery 1 s rate alerts on its
        /// noise every few minutes.
        #[serde(default = "defaults::knn_confirm")]
        confirm: f64,
        /// New extremes: a value further outside the history's range (lowest to highest value)
        /// than this share of the range scores above 1 by itself, at once (default 0.1; 0
        /// turns it off): a level or a spike the fit window never saw; in a stream each new
        /// extreme widens the range the next one must leave, until the next refit.
        #[serde(default = "defaults::knn_extreme")]
        extreme: f64,
    },
    /// promlearn-model's LSTM next-value forecaster over `window` points; the band's half-width
    /// is `margin` × the `quantile` of its absolute errors on the history.
    Lstm {
        /// Input window: points each forecast sees (default 8).
        #[serde(default = "defaults::lstm_window")]
        window: usize,
        /// LSTM units (default 16).
        #[serde(default = "defaults::lstm_hidden")]
        hidden: usize,
        /// Passes over the history (default 40).
        #[serde(default = "defaults::lstm_epochs")]
        epochs: usize,
        /// Adam's learning rate (default 0.01).
        #[serde(default = "defaults::lstm_learning_rate")]
        learning_rate: f64,
        /// Quantile of the training errors the band is built on, 0 to 1 (default 0.99).
        #[serde(default = "defaults::lstm_quantile")]
        quantile: f64,
        /// The band's half-width as a multiple of that quantile (default 2).
        #[serde(default = "defaults::lstm_margin")]
        margin: f64,
    },
}

/// The defaults of every field, one function each (what serde's `default = ...` needs).
mod defaults {
    pub fn zscore_window() -> usize {
        60
    }
    pub fn zscore_threshold() -> f64 {
        4.0
    }
    pub fn mad_window() -> usize {
        60
    }
    pub fn mad_threshold() -> f64 {
        5.0
    }
    pub fn quantile_window() -> usize {
        120
    }
    pub fn quantile_lower() -> f64 {
        0.01
    }
    pub fn quantile_upper() -> f64 {
        0.99
    }
    pub fn quantile_margin() -> f64 {
        1.0
    }
    pub fn knn_window() -> usize {
        8
    }
    pub fn knn_neighbours() -> usize {
        8
    }
    pub fn knn_confirm() -> f64 {
        0.9
    }
    pub fn knn_extreme() -> f64 {
        0.1
    }
    pub fn lstm_window() -> usize {
        8
    }
    pub fn lstm_hidden() -> usize {
        16
    }
    pub fn lstm_epochs() -> usize {
        40
    }
    pub fn lstm_learning_rate() -> f64 {
        0.01
    }
    pub fn lstm_quantile() -> f64 {
        0.99
    }
    pub fn lstm_margin() -> f64 {
        2.0
    }
}

/// The detectors' names, as `kind` and [`DetectorSpec::name`] spell them.
pub const DETECTOR_NAMES: [&str; 5] = ["zscore", "mad", "quantile", "knn", "lstm"];

impl DetectorSpec {
    /// The detector called `name` (`zscore`, `mad`, `quantile`, `knn`, `lstm`) with default
    /// settings.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "zscore" | "z_score" | "z-score" => Self::ZScore {
                window: defaults::zscore_window(),
                threshold: defaults::zscore_threshold(),
            },
            "mad" => Self::Mad {
                window: defaults::mad_window(),
                threshold: defaults::mad_threshold(),
            },
            "quantile" => Self::Quantile {
                window: defaults::quantile_window(),
                lower: defaults::quantile_lower(),
                upper: defaults::quantile_upper(),
                margin: defaults::quantile_margin(),
            },
            "knn" => Self::Knn {
                window: defaults::knn_window(),
                neighbours: defaults::knn_neighbours(),
                confirm: defaults::knn_confirm(),
                extreme: defaults::knn_extreme(),
            },
            "lstm" => Self::Lstm {
                window: defaults::lstm_window(),
                hidden: defaults::lstm_hidden(),
                epochs: defaults::lstm_epochs(),
                learning_rate: defaults::lstm_learning_rate(),
                quantile: defaults::lstm_quantile(),
                margin: defaults::lstm_margin(),
            },
            _ => {
                return Err(Error::InvalidSpec {
                    detector: "unknown",
                    field: "kind",
                    problem: format!("is `{name}`, which is not a detector"),
                    fix: format!("write one of {}", DETECTOR_NAMES.join(", ")),
                });
            }
        })
    }

    /// The detector's name: `zscore`, `mad`, `quantile`, `knn` or `lstm`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ZScore { .. } => "zscore",
            Self::Mad { .. } => "mad",
            Self::Quantile { .. } => "quantile",
            Self::Lstm { .. } => "lstm",
            Self::Knn { .. } => "knn",
        }
    }

    /// The look-back window, in points.
    pub fn window(&self) -> usize {
        match *self {
            Self::ZScore { window, .. }
            | Self::Mad { window, .. }
            | Self::Quantile { window, .. }
            | Self::Lstm { window, .. }
            | Self::Knn { window, .. } => window,
        }
    }

    /// The finite points [`fit`](Self::fit) needs at least: one window and the point after it
    /// for a rolling detector, one window and 24 forecasts to learn from for the LSTM.
    pub fn min_history(&self) -> usize {
        match self {
            Self::Lstm { window, .. } => window + lstm::MIN_PAIRS,
            Self::Knn {
                window, neighbours, ..
            } => window + neighbours + 2,
            _ => self.window() + 1,
        }
    }

    /// How many points before the first judged point [`Fitted::analyse`] needs: its window
    /// (for `knn`, its coarse patterns' 32 points at the default window, of which its fine
    /// score needs the last 10; for the rolling detectors, the recent level's points too,
    /// judged against the window before them). To have every point of a range judged, analyse from `context()` steps before it.
    pub fn context(&self) -> usize {
        match self {
            Self::Knn { window, .. } => knn::context(*window),
            Self::Lstm { window, .. } => *window,
            Self::ZScore { window, .. }
            | Self::Mad { window, .. }
            | Self::Quantile { window, .. } => window + rolling::level_points(*window) - 1,
        }
    }

    /// Checks the settings; the error names the field and says what to write instead.
    pub fn validate(&self) -> Result<()> {
        let name = self.name();
        let invalid = |field: &'static str, problem: String, fix: &str| Error::InvalidSpec {
            detector: name,
            field,
            problem,
            fix: fix.to_owned(),
        };
        let window_range = |window: usize, min: usize, max: usize, example: &str| {
            if window < min || window > max {
                Err(invalid(
                    "window",
                    format!("must be from {min} to {max} points (got {window})"),
                    example,
                ))
            } else {
                Ok(())
            }
        };
        let positive = |field: &'static str, value: f64, example: &str| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(invalid(
                    field,
                    format!("must be a positive number (got {value})"),
                    example,
                ))
            }
        };
        match *self {
            Self::ZScore { window, threshold } => {
                window_range(window, 3, 100_000, "write e.g. window = 60")?;
                positive("threshold", threshold, "write e.g. threshold = 4")
            }
            Self::Mad { window, threshold } => {
                window_range(window, 3, 100_000, "write e.g. window = 60")?;
                positive("threshold", threshold, "write e.g. threshold = 5")
            }
            Self::Quantile {
                window,
                lower,
                upper,
                margin,
            } => {
                window_range(window, 3, 100_000, "write e.g. window = 120")?;
                if !(0.0..=1.0).contains(&lower) {
                    return Err(invalid(
                        "lower",
                        format!("must be a quantile from 0 to 1 (got {lower})"),
                        "write e.g. lower = 0.01",
                    ));
                }
                if !(0.0..=1.0).contains(&upper) || upper <= lower {
                    return Err(invalid(
                        "upper",
                        format!(
                            "must be a quantile from 0 to 1 above lower = {lower} (got {upper})"
                        ),
                        "write e.g. lower = 0.01, upper = 0.99",
                    ));
                }
                if !(margin.is_finite() && margin >= 0.0) {
                    return Err(invalid(
                        "margin",
                        format!("must be 0 or more (got {margin})"),
                        "write e.g. margin = 1",
                    ));
                }
                Ok(())
            }
            Self::Knn {
                window,
                neighbours,
                confirm,
                extreme,
            } => {
                window_range(window, 1, 1000, "write e.g. window = 8")?;
                if !(0.0..1.0).contains(&confirm) {
                    return Err(invalid(
                        "confirm",
                        format!("must be a quantile from 0 (off) to below 1 (got {confirm})"),
                        "write e.g. confirm = 0.9, or confirm = 0 to turn it off",
                    ));
                }
                if !(1..=100).contains(&neighbours) {
                    return Err(invalid(
                        "neighbours",
                        format!("must be from 1 to 100 (got {neighbours})"),
                        "write e.g. neighbours = 8",
                    ));
                }
                if !(extreme.is_finite() && extreme >= 0.0) {
                    return Err(invalid(
                        "extreme",
                        format!("must be 0 (off) or more (got {extreme})"),
                        "write e.g. extreme = 0.1, or extreme = 0 to turn it off",
                    ));
                }
                Ok(())
            }
            Self::Lstm {
                window,
                hidden,
                epochs,
                learning_rate,
                quantile,
                margin,
            } => {
                window_range(window, 1, 1000, "write e.g. window = 8")?;
                if !(1..=512).contains(&hidden) {
                    return Err(invalid(
                        "hidden",
                        format!("must be from 1 to 512 units (got {hidden})"),
                        "write e.g. hidden = 16",
                    ));
                }
                if !(1..=100_000).contains(&epochs) {
                    return Err(invalid(
                        "epochs",
                        format!("must be from 1 to 100000 (got {epochs})"),
                        "write e.g. epochs = 40",
                    ));
                }
                if !(learning_rate.is_finite() && learning_rate > 0.0 && learning_rate <= 1.0) {
                    return Err(invalid(
                        "learning_rate",
                        format!("must be above 0 and at most 1 (got {learning_rate})"),
                        "write e.g. learning_rate = 0.01",
                    ));
                }
                if !(quantile > 0.0 && quantile <= 1.0) {
                    return Err(invalid(
                        "quantile",
                        format!("must be above 0 and at most 1 (got {quantile})"),
                        "write e.g. quantile = 0.99",
                    ));
                }
                positive("margin", margin, "write e.g. margin = 2")
            }
        }
    }

    /// Learns what the detector needs from `history` (unix ms timestamps, values; NaN, ±Inf and
    /// gaps are skipped). Errors on invalid settings, on mismatched or unordered input, and on
    /// fewer finite points than [`min_history`](Self::min_history).
    pub fn fit(&self, timestamps: &[i64], values: &[f64]) -> Result<Arc<dyn Fitted>> {
        let fitted: Arc<dyn Fitted> = match self {
            Self::Lstm { .. } => Arc::new(FittedLstm::fit(
                self,
                timestamps,
                values,
                &LstmOptions::default(),
                &mut |_| {},
            )?),
            Self::Knn { .. } => Arc::new(FittedKnn::fit(self, timestamps, values)?),
            _ => Arc::new(FittedRolling::fit(self, timestamps, values)?),
        };
        Ok(fitted)
    }
}

/// A fitted detector: immutable, so a service can keep analysing with it from several threads
/// while another one is being fitted.
pub trait Fitted: Send + Sync + std::fmt::Debug {
    /// The settings it was fitted with.
    fn spec(&self) -> &DetectorSpec;

    /// Judges every point of a series (unix ms timestamps, values) it can: the first
    /// [`context`](DetectorSpec::context) points are its warm-up. An empty series gives an
    /// empty analysis; NaN, ±Inf and gaps are never judged and never poison their neighbours
    /// beyond the window they sit in.
    fn analyse(&self, timestamps: &[i64], values: &[f64]) -> Result<Analysis>;

    /// Judges, oldest first, the points of `timestamps`/`values` newer than
    /// [`state.judged_through_ms()`](StreamState::judged_through_ms), using the earlier points
    /// given as context only (pass [`context`](DetectorSpec::context) points before the new
    /// ones), and updates `state`. Returns an [`Analysis`] of exactly those new points (the ones
    /// it could not judge with NaN score); with nothing new, an empty analysis and `state`
    /// unchanged. The state outlives the model: after a refit, advance the new model with the
    /// same state.
    fn advance(
        &self,
        state: &mut StreamState,
        timestamps: &[i64],
        values: &[f64],
    ) -> Result<Analysis> {
        crate::stream::advance(self, state, timestamps, values)
    }

    /// [`advance`](Self::advance) with what a team knows about the series applied in the
    /// alerting stage, whatever the detector: a side that does not matter, the smallest
    /// deviation worth an alert, the range of possible values ([`DomainKnowledge`](crate::DomainKnowledge)
    /// says how they meet the score and the quiet period). With it unset, exactly `advance`.
    fn advance_knowing(
        &self,
        state: &mut StreamState,
        knowledge: &crate::DomainKnowledge,
        timestamps: &[i64],
        values: &[f64],
    ) -> Result<Analysis> {
        crate::stream::advance_knowing(state, knowledge, |state| {
            self.advance(state, timestamps, values)
        })
    }

    /// What the model learned, as plain data to write down and read back with
    /// [`SavedModel::into_fitted`]; `None` for a model that cannot be saved (every detector of
    /// this crate can: the default is for stand-ins written elsewhere, e.g. in tests).
    fn to_saved(&self) -> Option<SavedModel> {
        None
    }

    /// The longest run of equal values in the history the model was fitted on, for the
    /// streaming stage that flags a series that stopped changing; `None` where the model does
    /// not know it (no flat-run alerts then).
    fn longest_flat_run(&self) -> Option<u32> {
        None
    }
}

/// Every model is what the alerting stage needs (`stream.rs`, below the detectors).
impl<F: Fitted + ?Sized> crate::stream::Staged for F {
    fn detector_name(&self) -> &'static str {
        self.spec().name()
    }

    fn history_longest_flat(&self) -> Option<u32> {
        self.longest_flat_run()
    }

    fn analyse_all(&self, timestamps: &[i64], values: &[f64]) -> Result<Analysis> {
        self.analyse(timestamps, values)
    }
}

/// Counts the finite values, erroring when there are fewer than `needed`.
pub(crate) fn require_history(spec: &DetectorSpec, values: &[f64], needed: usize) -> Result<usize> {
    let got = values.iter().filter(|v| v.is_finite()).count();
    if got < needed {
        return Err(Error::TooLittleHistory {
            detector: spec.name(),
            what: "finite points",
            needed,
            got,
        });
    }
    Ok(got)
}
