//! The LSTM detector: promlearn-model's next-value forecaster, its band learned from its own
//! errors on the history.

use std::path::Path;

use promlearn_model::{
    Dataset, FitOptions, Forecaster, Init, ModelConfig, ScaleKind, Scaler, TargetMode,
};
use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;
use crate::detectors::{DetectorSpec, Fitted, require_history};
use crate::error::{Error, Result};
use crate::grid::{self, History};

/// With the automatic batch size, an epoch has at most this many training steps.
const MAX_STEPS_PER_EPOCH: usize = 16;

/// Forecasts (a window and the value after it) the history must offer at least.
pub(crate) const MIN_PAIRS: usize = 24;

/// The band's half-width is never below this many typical changes between neighbouring points
/// of the history: a forecaster is not asked to beat "the next value is the last one" by more.
const CHANGE_FLOOR: f64 = 1.0;

/// The file beside the forecaster's own files that holds the detector's settings and band.
pub const DETECTOR_FILE: &str = "detector.json";
const FORMAT: &str = "promlearn-detect/lstm";
const FORMAT_VERSION: u32 = 1;

/// Training settings of the LSTM detector that are not part of its [`DetectorSpec`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LstmOptions {
    /// Windows per training step; `None` (the default) picks 8, or more for a long history so
    /// that an epoch is at most 16 steps and fitting stays quick.
    pub batch_size: Option<usize>,
    /// Seed of the initial weights and of each epoch's shuffle: the same seed and history give
    /// the same model (default 0).
    pub seed: u64,
}

/// Reported after each training epoch, for a caller's progress display (this crate never
/// prints).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochDone {
    /// 1-based epoch just finished.
    pub epoch: usize,
    /// Epochs in all.
    pub epochs: usize,
    /// The epoch's mean training loss (MAE on the scaled series).
    pub loss: f64,
}

/// A fitted LSTM detector: the forecaster, the min-max scaler fitted on the history and the
/// band's half-width. `yhat` at point `i` is the forecast from the `window` grid steps before
/// it; the band is `yhat ± half_width`.
#[derive(Debug)]
pub struct FittedLstm {
    pub(crate) spec: DetectorSpec,
    pub(crate) model: Forecaster,
    pub(crate) scaler: Scaler,
    pub(crate) error_quantile: f64,
    pub(crate) min_half_width: f64,
    pub(crate) half_width: f64,
    pub(crate) training_pairs: usize,
    pub(crate) final_loss: f64,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    format: String,
    version: u32,
    spec: DetectorSpec,
    error_quantile: f64,
    min_half_width: f64,
    half_width: f64,
    training_pairs: usize,
    final_loss: Option<f64>,
}

struct Windows {
    /// The point each window forecasts.
    index: Vec<usize>,
    /// Scaled windows.
    scaled: Vec<Vec<f64>>,
}

impl FittedLstm {
    /// Fits an LSTM spec on a history (unix ms timestamps, values), calling `progress` after
    /// each epoch. Windows with more than a quarter of their points missing (NaN, ±Inf, a gap)
    /// are skipped; fewer missing are filled linearly.
    pub fn fit(
        spec: &DetectorSpec,
        timestamps: &[i64],
        values: &[f64],
        options: &LstmOptions,
        progress: &mut dyn FnMut(EpochDone),
    ) -> Result<Self> {
        spec.validate()?;
        let DetectorSpec::Lstm {
            window,
            hidden,
            epochs,
            learning_rate,
            quantile,
            margin,
        } = *spec
        else {
            return Err(Error::InvalidSpec {
                detector: spec.name(),
                field: "kind",
                problem: "is not the LSTM detector".into(),
                fix: "fit it with DetectorSpec::fit".into(),
            });
        };
        if options.batch_size == Some(0) {
            return Err(Error::InvalidSpec {
                detector: "lstm",
                field: "batch_size",
                problem: "must be at least 1 (got 0)".into(),
                fix: "write e.g. batch_size = 8".into(),
            });
        }
        grid::check(timestamps, values)?;
        require_history(spec, values, spec.min_history())?;
        let step = grid::step(timestamps).expect("min_history is above 1");
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let scaler = fit_scaler(&finite);

        let pairs = windows(&scaler, window, step, timestamps, values);
        if pairs.index.len() < MIN_PAIRS {
            return Err(Error::TooLittleHistory {
                detector: "lstm",
                what: "complete windows (a window without gaps and the value after it)",
                needed: MIN_PAIRS,
                got: pairs.index.len(),
            });
        }
        let targets: Vec<f64> = pairs.index.iter().map(|&i| values[i]).collect();
        let scaled_targets: Vec<Vec<f64>> = scaler
            .transform(&targets)?
            .into_iter()
            .map(|t| vec![t])
            .collect();
        let dataset = Dataset::zip(&pairs.scaled, &scaled_targets)?;
        let batch_size = options
            .batch_size
            .unwrap_or_else(|| pairs.index.len().div_ceil(MAX_STEPS_PER_EPOCH).max(8));

        let config = ModelConfig {
            learning_rate: learning_rate as f32,
            init: Init::Keras { seed: options.seed },
            ..ModelConfig::forecasting(window, hidden)
        };
        debug_assert_eq!(config.target_mode, TargetMode::NextValue);
        let mut model = Forecaster::new(config)?;
        // One thread: deterministic sums, and a service's other work keeps its cores.
        model.set_threads(1);
        let mut final_loss = f64::NAN;
        for epoch in 1..=epochs {
            let batches = dataset
                .shuffle(options.seed.wrapping_add(epoch as u64))
                .batch(batch_size)?;
            let history = model.fit(
                &batches,
                &FitOptions {
                    epochs: 1,
                    steps_per_epoch: None,
                },
            )?;
            final_loss = history.epoch_losses[0];
            progress(EpochDone {
                epoch,
                epochs,
                loss: final_loss,
            });
        }
        model.set_scaler(scaler);

        let mut fitted = Self {
            spec: spec.clone(),
            model,
            scaler,
            error_quantile: 0.0,
            min_half_width: History::of(&finite).min_half_width(CHANGE_FLOOR),
            half_width: 0.0,
            training_pairs: pairs.index.len(),
            final_loss,
        };
        let predictions = fitted.predict(&pairs)?;
        let errors: Vec<f64> = predictions
            .iter()
            .zip(&targets)
            .map(|(p, t)| (p - t).abs())
            .collect();
        fitted.error_quantile = grid::quantile(&errors, quantile);
        if !fitted.error_quantile.is_finite() {
            fitted.error_quantile = 0.0;
        }
        fitted.half_width = (margin * fitted.error_quantile).max(fitted.min_half_width);
        Ok(fitted)
    }

    /// Forecasts for prepared windows, in series units: the one prediction path of this
    /// detector (promlearn-model's `Forecaster::predict` on scaled windows).
    fn predict(&self, windows: &Windows) -> Result<Vec<f64>> {
        if windows.scaled.is_empty() {
            return Ok(Vec::new());
        }
        let scaled = self.model.predict(&windows.scaled)?;
        Ok(self.scaler.inverse_transform(&scaled))
    }

    /// The band's half-width around each forecast (series units).
    pub fn half_width(&self) -> f64 {
        self.half_width
    }

    /// The `quantile` of the absolute forecast errors on the history (series units).
    pub fn error_quantile(&self) -> f64 {
        self.error_quantile
    }

    /// The smallest half-width the band may have, learned from the history (series units).
    pub fn min_half_width(&self) -> f64 {
        self.min_half_width
    }

    /// How many forecasts it learned from.
    pub fn training_pairs(&self) -> usize {
        self.training_pairs
    }

    /// The last epoch's mean training loss (MAE on the scaled series); NaN for a model saved
    /// before this crate existed.
    pub fn final_loss(&self) -> f64 {
        self.final_loss
    }

    /// The scaler fitted on the history.
    pub fn scaler(&self) -> &Scaler {
        &self.scaler
    }

    /// The forecaster.
    pub fn forecaster(&self) -> &Forecaster {
        &self.model
    }

    /// Writes the forecaster (`model.safetensors`, `model.json` with the scaler) and
    /// [`DETECTOR_FILE`] (the spec and the band) into `dir`, creating it.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        self.model.save(dir)?;
        let saved = Saved {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            spec: self.spec.clone(),
            error_quantile: self.error_quantile,
            min_half_width: self.min_half_width,
            half_width: self.half_width,
            training_pairs: self.training_pairs,
            final_loss: self.final_loss.is_finite().then_some(self.final_loss),
        };
        let path = dir.join(DETECTOR_FILE);
        let text = serde_json::to_string_pretty(&saved).expect("plain data serialises") + "\n";
        std::fs::write(&path, text).map_err(|source| Error::Io {
            action: "write",
            path,
            source,
        })
    }

    /// Loads what [`save`](Self::save) wrote. A directory saved by an older `promlearn train`
    /// (a forecaster with its threshold, no [`DETECTOR_FILE`]) loads too: its band is the
    /// saved threshold (margin 1).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let model = Forecaster::load(dir)?;
        let format_error = |reason: String| Error::Format {
            path: dir.join(DETECTOR_FILE),
            reason,
        };
        let config = model.config().clone();
        if config.target_mode != TargetMode::NextValue {
            return Err(format_error(
                "its forecaster predicts the tutorial's next window, not the next value; \
                 retrain it with `promlearn train`"
                    .into(),
            ));
        }
        let scaler = *model.scaler().ok_or_else(|| {
            format_error("its forecaster has no scaler; retrain it with `promlearn train`".into())
        })?;
        let path = dir.join(DETECTOR_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(Error::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        let Some(text) = text else {
            return Self::legacy(model, scaler, format_error);
        };
        let saved: Saved = serde_json::from_str(&text).map_err(|e| format_error(format!("{e}")))?;
        if saved.format != FORMAT || saved.version != FORMAT_VERSION {
            return Err(format_error(format!(
                "it is {} version {}, this promlearn reads {FORMAT} version {FORMAT_VERSION}",
                saved.format, saved.version
            )));
        }
        match saved.spec {
            DetectorSpec::Lstm { window, hidden, .. }
                if window == config.n_steps && hidden == config.hidden => {}
            _ => {
                return Err(format_error(format!(
                    "its spec {:?} does not match the saved forecaster (window {}, hidden {})",
                    saved.spec, config.n_steps, config.hidden
                )));
            }
        }
        if !(saved.half_width.is_finite() && saved.half_width > 0.0) {
            return Err(format_error(format!(
                "its half_width must be a positive number (got {})",
                saved.half_width
            )));
        }
        Ok(Self {
            spec: saved.spec,
            model,
            scaler,
            error_quantile: saved.error_quantile,
            min_half_width: saved.min_half_width,
            half_width: saved.half_width,
            training_pairs: saved.training_pairs,
            final_loss: saved.final_loss.unwrap_or(f64::NAN),
        })
    }

    fn legacy(
        model: Forecaster,
        scaler: Scaler,
        format_error: impl Fn(String) -> Error,
    ) -> Result<Self> {
        let threshold = *model.threshold().ok_or_else(|| {
            format_error(format!(
                "there is no {DETECTOR_FILE} and the forecaster has no anomaly threshold; \
                 retrain it with `promlearn train`"
            ))
        })?;
        let span = match scaler.kind {
            ScaleKind::Max => scaler.max,
            ScaleKind::MinMax => scaler.max - scaler.min,
        };
        let error_quantile = threshold.value * span.abs();
        let config = model.config();
        let DetectorSpec::Lstm {
            epochs,
            learning_rate,
            ..
        } = DetectorSpec::from_name("lstm")?
        else {
            unreachable!("from_name(\"lstm\") is the LSTM spec")
        };
        let spec = DetectorSpec::Lstm {
            window: config.n_steps,
            hidden: config.hidden,
            epochs,
            learning_rate,
            quantile: threshold.quantile,
            margin: 1.0,
        };
        let half_width = if error_quantile > 0.0 {
            error_quantile
        } else {
            1e-3
        };
        Ok(Self {
            spec,
            model,
            scaler,
            error_quantile,
            min_half_width: 0.0,
            half_width,
            training_pairs: 0,
            final_loss: f64::NAN,
        })
    }
}

impl Fitted for FittedLstm {
    fn spec(&self) -> &DetectorSpec {
        &self.spec
    }

    fn to_saved(&self) -> Option<crate::SavedModel> {
        Some(self.saved())
    }

    fn analyse(&self, timestamps: &[i64], values: &[f64]) -> Result<Analysis> {
        grid::check(timestamps, values)?;
        let mut out = Analysis::unjudged("lstm", timestamps, values);
        let Some(step) = grid::step(timestamps) else {
            return Ok(out);
        };
        let w = windows(&self.scaler, self.spec.window(), step, timestamps, values);
        let predictions = self.predict(&w)?;
        for (&i, &yhat) in w.index.iter().zip(&predictions) {
            out.judge(i, yhat, yhat - self.half_width, yhat + self.half_width);
        }
        Ok(out)
    }
}

/// The min-max scaler of the finite history; a constant history gets a span of its own size
/// (at least 1) centred on it, so it scales to 0.5 and a later change stays in a sane range.
fn fit_scaler(finite: &[f64]) -> Scaler {
    match Scaler::fit(finite, ScaleKind::MinMax) {
        Ok(s) if (s.max - s.min).is_finite() => s,
        _ => {
            let c = finite.first().copied().unwrap_or(0.0);
            let span = c.abs().max(1.0);
            Scaler {
                kind: ScaleKind::MinMax,
                min: c - span / 2.0,
                max: c + span / 2.0,
            }
        }
    }
}

/// The windows of the `window` grid steps before each point with a finite value, scaled; a
/// window with up to a quarter of its points missing is filled linearly, one with more (or
/// one that scales to a non-finite number) is skipped.
fn windows(
    scaler: &Scaler,
    window: usize,
    step: i64,
    timestamps: &[i64],
    values: &[f64],
) -> Windows {
    let mut out = Windows {
        index: Vec::new(),
        scaled: Vec::new(),
    };
    for i in 0..values.len() {
        if !values[i].is_finite() {
            continue;
        }
        let Some(mut w) = grid::grid_window(timestamps, values, i, window, step) else {
            continue;
        };
        if !grid::fill(&mut w, window / 4) {
            continue;
        }
        let Ok(scaled) = scaler.transform(&w) else {
            continue;
        };
        if scaled.iter().all(|v| v.is_finite()) {
            out.index.push(i);
            out.scaled.push(scaled);
        }
    }
    out
}
