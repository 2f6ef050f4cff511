//! promlearn's one detection pipeline. A [`DetectorSpec`] (what a user writes in a watch config or
//! on the command line) is fitted on a stretch of history into a [`Fitted`] model; a fitted model
//! turns a series into an [`Analysis`]: per timestamp the value, the prediction `yhat`, a band
//! `[yhat_lower, yhat_upper]`, an anomaly score and a 0/1 flag.
//!
//! The score is scaled the way vmanomaly's `anomaly_score` is, so one alerting rule fits every
//! detector: it is 1 on the edge of what the detector calls normal and above 1 beyond it, and
//! `anomalous` is `score > 1`. For the band detectors (`zscore`, `mad`, `quantile`, `lstm`)
//! `score = |value - yhat| / half-width of the band on that side`, so it is 0 on the prediction;
//! for `knn` it is the distance of the recent pattern from the history's patterns, in units of
//! the distance that only 1 % of the history's own patterns exceed (widened to the 99.9 %
//! quantile of the scores the model gave since its fit once that lies above 1: a series
//! noisier than its history alerts beyond its own recent excursions), or how far the
//! newest value lies beyond the history's range, whichever is larger.
//!
//! Two ways to judge a series. [`Fitted::analyse`] judges every point of a slice on its own
//! (what `promlearn detect` and plots show). [`Fitted::advance`] judges a stream: each point
//! once, oldest first, with a [`StreamState`] per series carried from one call to the next and
//! across refits, and through the alerting stage, so that **one incident is one alert**: after
//! a flagged point the next [`QUIET_POINTS`] judged points are not flagged and their score is
//! capped at 1 (for the band detectors, unless a point lies on the other side of `yhat`: a
//! drop and then a spike are two incidents). That is what `promlearn watch` runs and what NAB
//! measures. [`Fitted::advance_knowing`] adds, in that stage and for every detector, what a team
//! knows about the metric ([`DomainKnowledge`]: only rises matter, the smallest deviation worth an
//! alert, the values it can take); [`DomainKnowledge::apply`] does the same to an `analyse`.
//!
//! Points the detector cannot judge (its warm-up, a gap, NaN or ±Inf input) have NaN in `yhat`,
//! the band and the score, and are never anomalous.
//!
//! Fitting and inference are separate on purpose: a [`Fitted`] model is immutable and `Send +
//! Sync`, so a service can keep inferring with the last model while a new one is being fitted.
//!
//! The detectors:
//!
//! | `kind` | `yhat` | band | fitting learns |
//! |---|---|---|---|
//! | `zscore` | mean of the previous `window` points | `± threshold·std` | the smallest half-width |
//! | `mad` | their median | `± threshold·1.4826·MAD` | the smallest half-width |
//! | `quantile` | their median | `lower`..`upper` quantile, widened by `margin` × their distance | the smallest half-width |
//! | `knn` | the nearest patterns' newest values | `± unit` (the score is the pattern distance, or the distance beyond the history's range) | the history's patterns, the unit, the range |
//! | `lstm` | promlearn-model's next-value forecast | `± margin × quantile` of its training errors | the forecaster, the band |
//!
//! How they do on the Numenta Anomaly Benchmark and on the DevOps scenario corpus
//! (`fixtures/devops`): README's table, from `cargo xtask bench detect`; what each part of
//! them is worth, and what was tried instead: `docs/detection.md`.
//!
//! The smallest half-width keeps a flat stretch (an idle counter's rate is often exactly
//! constant, then jitters by one request) from turning every small change into a huge score.
//! Series are unix-millisecond timestamps and `f64` values; windows are counted in steps of the
//! series' own grid (its median spacing), so a gap leaves a window with fewer points, judged
//! from what remains if at least half of it (a quarter may be missing for the LSTM).
//!
//! This crate does no I/O except what a caller asks for ([`FittedLstm::save`],
//! [`FittedLstm::load`], `plot_png` with the `plot` feature) and never prints.
//!
//! ```
//! use promlearn_detect::DetectorSpec;
//!
//! // Ten minutes at 1 s of a 2-minute rhythm around 100 requests/s, with a little jitter.
//! let timestamps: Vec<i64> = (0..600).map(|i| 1_700_000_000_000 + i * 1000).collect();
//! let rhythm = |i: usize| 100.0 + 10.0 * (i as f64 / 120.0 * std::f64::consts::TAU).sin()
//!     + if i % 3 == 0 { 1.5 } else { -0.75 };
//! let history: Vec<f64> = (0..600).map(rhythm).collect();
//!
//! let spec: DetectorSpec = serde_json::from_str(r#"{ "kind": "zscore" }"#)?;
//! let fitted = spec.fit(&timestamps, &history)?;
//!
//! // The same rhythm with a five-fold spike at point 400.
//! let mut live = history.clone();
//! live[400] *= 5.0;
//! let analysis = fitted.analyse(&timestamps, &live)?;
//! assert_eq!(analysis.flagged().collect::<Vec<_>>(), vec![400]);
//! assert!(analysis.score[400] > 10.0);
//! assert!(analysis.yhat[..spec.context()].iter().all(|y| y.is_nan()), "the warm-up is not judged");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod analysis;
mod detectors;
mod error;
mod flat;
mod grid;
mod knowledge;
#[cfg(feature = "plot")]
mod plot;
mod stream;

pub use analysis::{Analysis, EventScore, Injected, evaluate};
pub use detectors::{
    DETECTOR_FILE, DETECTOR_NAMES, DetectorSpec, EpochDone, Fitted, FittedKnn, FittedLstm,
    FittedRolling, LstmOptions, SavedModel,
};
pub use error::{Error, Result};
pub use knowledge::{Direction, DomainKnowledge, MinDeviation};
#[cfg(feature = "plot")]
pub use plot::plot_png;
pub use stream::{QUIET_POINTS, StreamState};
