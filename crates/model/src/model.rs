//! The forecaster: LSTM(H) + Dense(1), trained with Keras's Adam on MAE or MSE.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::rnn::{LSTMConfig, RNN};
use candle_nn::{Module, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::anomaly::{Anomaly, PointError, Threshold};
use crate::data::{Batch, Scaler, TargetMode};
use crate::error::{Error, Result, check_finite};
use crate::fused::{self, Adam, Layout, Workspace};
use crate::rng::SeededRng;

/// Training loss. Both compare the one prediction per window with every target value and
/// average, as Keras does after broadcasting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Loss {
    /// Mean absolute error (`loss='mae'`, the tutorial's).
    Mae,
    /// Mean squared error (`loss='mse'`).
    Mse,
}

/// How the initial weights are drawn. Both are seeded by this crate's own RNG (candle's CPU
/// RNG cannot be seeded), so the same seed gives the same model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Init {
    /// Keras's LSTM defaults: glorot-uniform kernel, orthogonal recurrent kernel, zero bias
    /// except 1 for the forget gate (`unit_forget_bias=True`); glorot-uniform Dense kernel,
    /// zero Dense bias.
    Keras {
        /// RNG seed.
        seed: u64,
    },
    /// PyTorch's `nn.LSTM`/`nn.Linear` defaults: uniform in ±1/sqrt(fan), biases included.
    PyTorch {
        /// RNG seed.
        seed: u64,
    },
}

/// Everything that defines a model; saved next to its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Input window length (time steps per sample).
    pub n_steps: usize,
    /// LSTM units.
    pub hidden: usize,
    /// What the targets are; decides the target width the model expects.
    pub target_mode: TargetMode,
    /// Training loss.
    pub loss: Loss,
    /// Adam learning rate (Keras default 0.001).
    pub learning_rate: f32,
    /// Initial weights.
    pub init: Init,
}

impl ModelConfig {
    /// The tutorial's model: `LSTM(8, input_shape=(2, 1))`, `Dense(1)`, Adam, MAE, next-window
    /// targets.
    pub fn tutorial() -> Self {
        Self {
            n_steps: 2,
            hidden: 8,
            target_mode: TargetMode::TutorialNextWindow,
            loss: Loss::Mae,
            learning_rate: 0.001,
            init: Init::Keras { seed: 0 },
        }
    }

    /// A next-value forecaster over windows of `n_steps` with `hidden` units, MAE, Keras init.
    pub fn forecasting(n_steps: usize, hidden: usize) -> Self {
        Self {
            n_steps,
            hidden,
            target_mode: TargetMode::NextValue,
            ..Self::tutorial()
        }
    }

    fn validate(&self) -> Result<()> {
        if self.n_steps == 0 || self.hidden == 0 {
            return Err(Error::InvalidConfig(format!(
                "n_steps and hidden must be at least 1 (got {} and {})",
                self.n_steps, self.hidden
            )));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::InvalidConfig(format!(
                "learning_rate must be a positive number (got {})",
                self.learning_rate
            )));
        }
        Ok(())
    }
}

/// Weights in Keras's layout (what `layer.get_weights()` returns, flattened row-major):
/// LSTM `kernel [1, 4H]`, `recurrent_kernel [H, 4H]`, `bias [4H]` with gates i, f, c, o;
/// Dense `dense_kernel [H, 1]`, `dense_bias [1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KerasWeights {
    /// `[1, 4H]`.
    pub kernel: Vec<f32>,
    /// `[H, 4H]`.
    pub recurrent_kernel: Vec<f32>,
    /// `[4H]`.
    pub bias: Vec<f32>,
    /// `[H, 1]`.
    pub dense_kernel: Vec<f32>,
    /// `[1]`.
    pub dense_bias: Vec<f32>,
}

/// Which implementation computes gradients during training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Hand-written forward/backward over flat buffers with fused gate GEMMs. Fast.
    #[default]
    Fused,
    /// candle_nn's LSTM and candle's autograd. Slow at small sizes; kept as a reference.
    CandleAutograd,
}

/// Options for [`Forecaster::fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// Number of epochs.
    pub epochs: usize,
    /// Steps per epoch; `None` means one pass over the batches. When set, batches are taken
    /// in order and cycled, continuing across epochs as Keras's iterator does.
    pub steps_per_epoch: Option<usize>,
}

/// What [`Forecaster::fit_with_progress`] reports while it trains, for a caller to show (the
/// demo prints Keras's `Epoch 1/5` lines from these); the library itself never prints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FitEvent {
    /// An epoch begins (epochs count from 1).
    EpochStarted {
        /// This epoch.
        epoch: usize,
        /// All epochs.
        epochs: usize,
        /// Steps in each epoch.
        steps: usize,
    },
    /// A step is done.
    StepDone {
        /// The step within its epoch, from 1.
        step: usize,
        /// The epoch's mean loss so far, weighted by batch size.
        running_loss: f64,
    },
    /// An epoch is done.
    EpochDone {
        /// This epoch.
        epoch: usize,
        /// Its mean loss, weighted by batch size (what Keras's History shows).
        loss: f64,
        /// How long it took.
        elapsed: std::time::Duration,
    },
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            epochs: 1,
            steps_per_epoch: None,
        }
    }
}

/// Losses recorded by [`Forecaster::fit`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Per epoch, the mean step loss weighted by batch size (what Keras's History shows).
    pub epoch_losses: Vec<f64>,
    /// The loss of every step, before that step's update.
    pub step_losses: Vec<f64>,
}

/// An LSTM(H) + Dense(1) forecaster, numerically matching Keras's
/// `Sequential([LSTM(H), Dense(1)])` with Adam.
///
/// Window- and batch-level methods ([`fit`](Self::fit), [`evaluate`](Self::evaluate),
/// [`predict`](Self::predict)) work on already-scaled values. Series-level methods
/// ([`forecast`](Self::forecast), [`prediction_errors`](Self::prediction_errors),
/// [`fit_threshold`](Self::fit_threshold), [`detect`](Self::detect)) take values in original
/// units and apply the attached [`Scaler`], if any.
///
/// The tutorial, end to end:
///
/// ```
/// use promlearn_model::{Dataset, FitOptions, Forecaster, ModelConfig, ScaleKind, Scaler};
///
/// let series: Vec<f64> = (0..12).map(|i| 7.0e7 + 2.6e5 * (i / 2) as f64).collect();
/// let scaler = Scaler::fit(&series, ScaleKind::Max)?;
/// let ds = Dataset::from_series(&scaler.transform(&series)?, 2, ModelConfig::tutorial().target_mode)?;
/// let batches = ds.repeat(10).batch(1)?; // the tutorial's .batch(1).repeat(10)
///
/// let mut model = Forecaster::new(ModelConfig::tutorial())?;
/// let opts = FitOptions { epochs: 5, steps_per_epoch: Some(10) };
/// let history = model.fit(&batches, &opts)?;
/// assert_eq!(history.step_losses.len(), 50);
/// assert!(history.epoch_losses[4] < history.epoch_losses[0]);
/// # Ok::<(), promlearn_model::Error>(())
/// ```
pub struct Forecaster {
    config: ModelConfig,
    layout: Layout,
    params: Vec<f32>,
    grads: Vec<f32>,
    adam: Adam,
    backend: Backend,
    /// One workspace per thread, reused across steps.
    workspaces: Vec<Workspace>,
    /// Gradients of the batch parts run on extra threads, summed into `grads`.
    part_grads: Vec<Vec<f32>>,
    threads: usize,
    scaler: Option<Scaler>,
    threshold: Option<Threshold>,
}

impl std::fmt::Debug for Forecaster {
    // The weights and scratch buffers would drown everything else.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forecaster")
            .field("config", &self.config)
            .field("parameters", &self.params.len())
            .field("adam_steps", &self.adam.iterations)
            .field("backend", &self.backend)
            .field("threads", &self.threads)
            .field("scaler", &self.scaler)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

const WEIGHTS_FILE: &str = "model.safetensors";
const SETTINGS_FILE: &str = "model.json";
const FORMAT: &str = "promlearn-model";
const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Settings {
    format: String,
    version: u32,
    config: ModelConfig,
    scaler: Option<Scaler>,
    threshold: Option<Threshold>,
}

impl Forecaster {
    /// A new model with initial weights drawn as `config.init` says.
    pub fn new(config: ModelConfig) -> Result<Self> {
        config.validate()?;
        let layout = Layout {
            n_in: 1,
            hidden: config.hidden,
        };
        let params = initial_weights(layout, config.init);
        Ok(Self::with_params(config, layout, params))
    }

    fn with_params(config: ModelConfig, layout: Layout, params: Vec<f32>) -> Self {
        let n = params.len();
        Self {
            adam: Adam::keras_default(n, config.learning_rate),
            config,
            layout,
            params,
            grads: vec![0.0; n],
            backend: Backend::default(),
            workspaces: vec![Workspace::default()],
            part_grads: Vec::new(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            scaler: None,
            threshold: None,
        }
    }

    /// A model with the given weights in Keras's layout (e.g. from `layer.get_weights()`).
    /// `config.init` is ignored.
    pub fn from_keras_weights(config: ModelConfig, weights: &KerasWeights) -> Result<Self> {
        config.validate()?;
        let layout = Layout {
            n_in: 1,
            hidden: config.hidden,
        };
        let (h, g) = (layout.hidden, layout.gates());
        let parts: [(&str, &[f32], usize); 5] = [
            ("kernel", &weights.kernel, g),
            ("recurrent_kernel", &weights.recurrent_kernel, h * g),
            ("bias", &weights.bias, g),
            ("dense_kernel", &weights.dense_kernel, h),
            ("dense_bias", &weights.dense_bias, 1),
        ];
        let mut params = Vec::with_capacity(layout.len());
        for (name, values, len) in parts {
            if values.len() != len {
                return Err(Error::ShapeMismatch {
                    what: format!("Keras weight {name} for LSTM({h})"),
                    expected: format!("{len} values"),
                    got: format!("{} values", values.len()),
                });
            }
            params.extend_from_slice(values);
        }
        check_finite(
            "the weights",
            &params.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        )?;
        Ok(Self::with_params(config, layout, params))
    }

    /// The weights in Keras's layout.
    pub fn keras_weights(&self) -> KerasWeights {
        let l = self.layout;
        KerasWeights {
            kernel: self.params[l.kernel()].to_vec(),
            recurrent_kernel: self.params[l.recurrent()].to_vec(),
            bias: self.params[l.bias()].to_vec(),
            dense_kernel: self.params[l.dense_kernel()].to_vec(),
            dense_bias: vec![self.params[l.dense_bias()]],
        }
    }

    /// The model's settings.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Chooses how gradients are computed (default [`Backend::Fused`]).
    pub fn set_backend(&mut self, backend: Backend) {
        self.backend = backend;
    }

    /// Threads for the fused training step (default: the machine's cores). A batch is split
    /// by rows, at least 16 per thread, so small batches stay on one thread. Results differ
    /// between thread counts only by float summation order.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// Forward, loss and backward with the fused kernels, the batch split by rows across
    /// threads (data parallel: one join per step). Leaves the summed gradients in
    /// `self.grads`; on a non-finite loss the backward pass is skipped and it is only reported.
    fn fused_loss_and_grads(&mut self, batch: &Batch) -> f64 {
        const MIN_ROWS_PER_THREAD: usize = 16;
        let total = batch.size();
        let parts = self.threads.min(total / MIN_ROWS_PER_THREAD).max(1);
        let rows_per = total.div_ceil(parts);
        let parts = total.div_ceil(rows_per);
        self.workspaces
            .resize_with(parts.max(self.workspaces.len()), Workspace::default);
        self.part_grads
            .resize_with(parts - 1, || vec![0.0; self.grads.len()]);

        let (layout, loss_kind, params) = (self.layout, self.config.loss, &self.params);
        let (n, w) = (batch.n_steps(), batch.target_width());
        let run = |k: usize, ws: &mut Workspace, grads: &mut [f32]| -> f64 {
            let rows = k * rows_per..((k + 1) * rows_per).min(total);
            let inputs = &batch.inputs()[rows.start * n..rows.end * n];
            fused::forward(layout, params, inputs, rows.len(), n, ws);
            let targets = &batch.targets()[rows.start * w..rows.end * w];
            let (loss, d_out) = loss_and_grad(loss_kind, &ws.out, targets, w, total);
            if loss.is_finite() {
                fused::backward(layout, params, &d_out, ws, grads);
            }
            loss
        };
        let (first_ws, other_ws) = self.workspaces.split_first_mut().expect("one workspace");
        if parts == 1 {
            return run(0, first_ws, &mut self.grads);
        }
        let run = &run;
        let loss = std::thread::scope(|s| {
            let handles: Vec<_> = other_ws
                .iter_mut()
                .zip(self.part_grads.iter_mut())
                .enumerate()
                .map(|(i, (ws, g))| s.spawn(move || run(i + 1, ws, g)))
                .collect();
            let mut loss = run(0, first_ws, &mut self.grads);
            for h in handles {
                loss += h.join().expect("a training thread panicked");
            }
            loss
        });
        for part in &self.part_grads {
            for (a, b) in self.grads.iter_mut().zip(part) {
                *a += b;
            }
        }
        loss
    }

    /// Attaches the scaler used on the training data, so it is saved with the model and
    /// applied by the series-level methods.
    pub fn set_scaler(&mut self, scaler: Scaler) {
        self.scaler = Some(scaler);
    }

    /// The attached scaler, if any.
    pub fn scaler(&self) -> Option<&Scaler> {
        self.scaler.as_ref()
    }

    /// The anomaly threshold learned by [`fit_threshold`](Self::fit_threshold), if any.
    pub fn threshold(&self) -> Option<&Threshold> {
        self.threshold.as_ref()
    }

    fn check_batch(&self, batch: &Batch) -> Result<()> {
        let width = self.config.target_mode.target_width(self.config.n_steps);
        if batch.n_steps() != self.config.n_steps || batch.target_width() != width {
            return Err(Error::ShapeMismatch {
                what: "batch against the model".into(),
                expected: format!(
                    "windows of {} and targets of {width} ({:?})",
                    self.config.n_steps, self.config.target_mode
                ),
                got: format!(
                    "windows of {} and targets of {}; build the dataset with the model's n_steps and target_mode",
                    batch.n_steps(),
                    batch.target_width()
                ),
            });
        }
        Ok(())
    }

    /// One Adam step on `batch`; returns the loss before the update. Leaves the weights
    /// untouched and errors if the loss or a gradient is not finite.
    pub fn train_step(&mut self, batch: &Batch) -> Result<f64> {
        self.check_batch(batch)?;
        self.train_step_unchecked(batch, 1, 1)
    }

    fn train_step_unchecked(&mut self, batch: &Batch, epoch: usize, step: usize) -> Result<f64> {
        let loss = match self.backend {
            Backend::Fused => self.fused_loss_and_grads(batch),
            Backend::CandleAutograd => {
                let (loss, grads) = self.candle_loss_and_grads(batch)?;
                self.grads = grads;
                loss
            }
        };
        if !loss.is_finite() {
            return Err(Error::Diverged {
                epoch,
                step,
                what: "loss",
                value: loss,
            });
        }
        if let Some(bad) = self.grads.iter().find(|g| !g.is_finite()) {
            return Err(Error::Diverged {
                epoch,
                step,
                what: "gradient",
                value: *bad as f64,
            });
        }
        self.adam.step(&mut self.params, &self.grads);
        Ok(loss)
    }

    /// Trains on `batches` (see [`FitOptions`] for how epochs walk through them). Stops with
    /// [`Error::Diverged`] on a non-finite loss.
    pub fn fit(&mut self, batches: &[Batch], options: &FitOptions) -> Result<History> {
        self.fit_with_progress(batches, options, &mut |_| {})
    }

    /// As [`Forecaster::fit`], reporting each epoch and step to `progress`.
    pub fn fit_with_progress(
        &mut self,
        batches: &[Batch],
        options: &FitOptions,
        progress: &mut dyn FnMut(FitEvent),
    ) -> Result<History> {
        if batches.is_empty() {
            return Err(Error::TooFewSamples {
                what: "fit".into(),
                needed: 1,
                got: 0,
            });
        }
        if options.epochs == 0 || options.steps_per_epoch == Some(0) {
            return Err(Error::InvalidConfig(
                "epochs and steps_per_epoch must be at least 1".into(),
            ));
        }
        for batch in batches {
            self.check_batch(batch)?;
        }
        let steps = options.steps_per_epoch.unwrap_or(batches.len());
        let mut history = History::default();
        let mut next = 0usize;
        for epoch in 1..=options.epochs {
            let started = std::time::Instant::now();
            progress(FitEvent::EpochStarted {
                epoch,
                epochs: options.epochs,
                steps,
            });
            let (mut weighted, mut seen) = (0.0f64, 0usize);
            for step in 1..=steps {
                let batch = &batches[next % batches.len()];
                next += 1;
                let loss = self.train_step_unchecked(batch, epoch, step)?;
                history.step_losses.push(loss);
                weighted += loss * batch.size() as f64;
                seen += batch.size();
                progress(FitEvent::StepDone {
                    step,
                    running_loss: weighted / seen as f64,
                });
            }
            let epoch_loss = weighted / seen as f64;
            progress(FitEvent::EpochDone {
                epoch,
                loss: epoch_loss,
                elapsed: started.elapsed(),
            });
            history.epoch_losses.push(epoch_loss);
        }
        Ok(history)
    }

    /// Mean loss over `batches`, weighted by batch size (Keras's `evaluate`).
    pub fn evaluate(&self, batches: &[Batch]) -> Result<f64> {
        let mut ws = Workspace::default();
        let (mut weighted, mut seen) = (0.0, 0usize);
        for batch in batches {
            self.check_batch(batch)?;
            fused::forward(
                self.layout,
                &self.params,
                batch.inputs(),
                batch.size(),
                batch.n_steps(),
                &mut ws,
            );
            let (loss, _) = loss_and_grad(
                self.config.loss,
                &ws.out,
                batch.targets(),
                batch.target_width(),
                batch.size(),
            );
            weighted += loss * batch.size() as f64;
            seen += batch.size();
        }
        if seen == 0 {
            return Err(Error::TooFewSamples {
                what: "evaluate".into(),
                needed: 1,
                got: 0,
            });
        }
        Ok(weighted / seen as f64)
    }

    /// One prediction per scaled input window, computed with candle_nn's LSTM.
    ///
    /// ```
    /// use promlearn_model::{Forecaster, ModelConfig};
    ///
    /// let model = Forecaster::new(ModelConfig::forecasting(3, 4))?;
    /// let preds = model.predict(&[vec![0.1, 0.2, 0.3], vec![0.2, 0.3, 0.4]])?;
    /// assert_eq!(preds.len(), 2);
    /// assert!(model.predict(&[vec![0.1, 0.2]]).is_err()); // wrong window length
    /// # Ok::<(), promlearn_model::Error>(())
    /// ```
    pub fn predict(&self, windows: &[Vec<f64>]) -> Result<Vec<f64>> {
        let n = self.config.n_steps;
        let mut flat = Vec::with_capacity(windows.len() * n);
        for (i, w) in windows.iter().enumerate() {
            if w.len() != n {
                return Err(Error::ShapeMismatch {
                    what: format!("input window {i}"),
                    expected: format!("{n} values (the model's n_steps)"),
                    got: format!("{} values", w.len()),
                });
            }
            check_finite(&format!("input window {i}"), w)?;
            flat.extend(w.iter().map(|&v| v as f32));
        }
        self.predict_flat(&flat)
    }

    fn predict_flat(&self, flat: &[f32]) -> Result<Vec<f64>> {
        let n = self.config.n_steps;
        let (_, lstm, dense) = self.candle_modules()?;
        let mut out = Vec::with_capacity(flat.len() / n);
        // Bounded chunks keep the per-timestep tensors small for long series.
        for chunk in flat.chunks(4096 * n) {
            let x = Tensor::from_slice(chunk, (chunk.len() / n, n, 1), &Device::Cpu)?;
            let states = lstm.seq(&x)?;
            let last = states.last().expect("n_steps >= 1").h();
            let y = dense.forward(last)?.flatten_all()?.to_vec1::<f32>()?;
            out.extend(y.into_iter().map(f64::from));
        }
        Ok(out)
    }

    /// Outputs of both layers for scaled windows `[N, n_steps]`: the LSTM's last hidden state
    /// `[N, H]` and the Dense output `[N]`, via candle_nn. For checking against Keras.
    pub fn layer_outputs(&self, windows: &[Vec<f64>]) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
        let n = self.config.n_steps;
        let flat: Vec<f32> = windows.iter().flatten().map(|&v| v as f32).collect();
        if windows.iter().any(|w| w.len() != n) {
            return Err(Error::ShapeMismatch {
                what: "input windows".into(),
                expected: format!("{n} values each"),
                got: "windows of another length".into(),
            });
        }
        let (_, lstm, dense) = self.candle_modules()?;
        let x = Tensor::from_slice(&flat, (windows.len(), n, 1), &Device::Cpu)?;
        let states = lstm.seq(&x)?;
        let h = states.last().expect("n_steps >= 1").h().clone();
        let y = dense.forward(&h)?.flatten_all()?.to_vec1::<f32>()?;
        Ok((h.to_vec2::<f32>()?, y))
    }

    fn scale(&self, series: &[f64]) -> Result<Vec<f64>> {
        match &self.scaler {
            Some(s) => s.transform(series),
            None => {
                check_finite("the series", series)?;
                Ok(series.to_vec())
            }
        }
    }

    /// Forecasts `horizon` values after `history` (original units), feeding each prediction
    /// back as the newest input. Meaningful for [`TargetMode::NextValue`] models; a
    /// tutorial-mode model predicts something like the next window's mean instead.
    ///
    /// ```
    /// use promlearn_model::{Forecaster, ModelConfig};
    ///
    /// let model = Forecaster::new(ModelConfig::forecasting(4, 8))?;
    /// let next = model.forecast(&[0.1, 0.2, 0.3, 0.4, 0.5], 3)?;
    /// assert_eq!(next.len(), 3);
    /// # Ok::<(), promlearn_model::Error>(())
    /// ```
    pub fn forecast(&self, history: &[f64], horizon: usize) -> Result<Vec<f64>> {
        let n = self.config.n_steps;
        if history.len() < n {
            return Err(Error::TooFewSamples {
                what: "a forecast".into(),
                needed: n,
                got: history.len(),
            });
        }
        let mut window: Vec<f64> = self.scale(&history[history.len() - n..])?;
        let mut out = Vec::with_capacity(horizon);
        for _ in 0..horizon {
            let next = self.predict_flat(&window.iter().map(|&v| v as f32).collect::<Vec<_>>())?[0];
            out.push(next);
            window.remove(0);
            window.push(next);
        }
        Ok(match &self.scaler {
            Some(s) => s.inverse_transform(&out),
            None => out,
        })
    }

    /// The prediction error at each timestamp of `series` (original units) that has a full
    /// window before it: for the window ending just before index `i`, the mean absolute
    /// difference between the prediction and its target values, in scaled units, reported at
    /// the index `i` of the newest target value.
    pub fn prediction_errors(&self, series: &[f64]) -> Result<Vec<PointError>> {
        let n = self.config.n_steps;
        let scaled = self.scale(series)?;
        if scaled.len() < n + 1 {
            return Err(Error::TooFewSamples {
                what: format!("prediction errors with windows of {n}"),
                needed: n + 1,
                got: scaled.len(),
            });
        }
        let pairs = scaled.len() - n;
        let flat: Vec<f32> = (0..pairs)
            .flat_map(|i| scaled[i..i + n].iter().map(|&v| v as f32))
            .collect();
        let preds = self.predict_flat(&flat)?;
        Ok(preds
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let targets: &[f64] = match self.config.target_mode {
                    TargetMode::TutorialNextWindow => &scaled[i + 1..i + 1 + n],
                    TargetMode::NextValue => &scaled[i + n..i + n + 1],
                };
                let error =
                    targets.iter().map(|t| (p - t).abs()).sum::<f64>() / targets.len() as f64;
                PointError {
                    index: i + n,
                    error,
                }
            })
            .collect())
    }

    /// Learns the anomaly threshold as the `quantile` (e.g. 0.99) of the prediction errors on
    /// `series` (original units, normally the training data), and keeps it with the model.
    pub fn fit_threshold(&mut self, series: &[f64], quantile: f64) -> Result<Threshold> {
        let errors: Vec<f64> = self
            .prediction_errors(series)?
            .iter()
            .map(|e| e.error)
            .collect();
        let threshold = Threshold::from_errors(&errors, quantile)?;
        self.threshold = Some(threshold);
        Ok(threshold)
    }

    /// Timestamps of `series` (original units) whose prediction error exceeds the learned
    /// threshold. Needs [`fit_threshold`](Self::fit_threshold) (or a loaded model that had it).
    pub fn detect(&self, series: &[f64]) -> Result<Vec<Anomaly>> {
        let threshold = self.threshold.ok_or_else(|| {
            Error::InvalidConfig(
                "no anomaly threshold: call fit_threshold on training data first".into(),
            )
        })?;
        Ok(threshold.flag(&self.prediction_errors(series)?))
    }

    /// Tensors named as candle_nn expects them: `lstm.weight_ih_l0 [4H, 1]`,
    /// `lstm.weight_hh_l0 [4H, H]`, `lstm.bias_ih_l0`, `lstm.bias_hh_l0` (zero: Keras has
    /// one bias), `dense.weight [1, H]`, `dense.bias [1]`.
    pub fn candle_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let l = self.layout;
        let (h, g) = (l.hidden, l.gates());
        let dev = Device::Cpu;
        let p = &self.params;
        let mut map = HashMap::new();
        let kernel = Tensor::from_slice(&p[l.kernel()], (l.n_in, g), &dev)?;
        let recurrent = Tensor::from_slice(&p[l.recurrent()], (h, g), &dev)?;
        map.insert("lstm.weight_ih_l0".into(), kernel.t()?.contiguous()?);
        map.insert("lstm.weight_hh_l0".into(), recurrent.t()?.contiguous()?);
        map.insert(
            "lstm.bias_ih_l0".into(),
            Tensor::from_slice(&p[l.bias()], g, &dev)?,
        );
        map.insert(
            "lstm.bias_hh_l0".into(),
            Tensor::zeros(g, DType::F32, &dev)?,
        );
        map.insert(
            "dense.weight".into(),
            Tensor::from_slice(&p[l.dense_kernel()], (1, h), &dev)?,
        );
        map.insert(
            "dense.bias".into(),
            Tensor::from_slice(&p[l.dense_bias()..], 1, &dev)?,
        );
        Ok(map)
    }

    /// The layers as candle_nn modules over fresh `Var`s holding the current weights; the
    /// `Var`s come back too, to look up their gradients.
    fn candle_modules(&self) -> Result<(HashMap<String, Var>, candle_nn::LSTM, candle_nn::Linear)> {
        let varmap = VarMap::new();
        let mut vars = HashMap::new();
        {
            let mut data = varmap.data().lock().expect("fresh VarMap");
            for (name, t) in self.candle_tensors()? {
                let var = Var::from_tensor(&t)?;
                data.insert(name.clone(), var.clone());
                vars.insert(name, var);
            }
        }
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let h = self.config.hidden;
        let lstm = candle_nn::rnn::lstm(1, h, LSTMConfig::default(), vb.pp("lstm"))?;
        let dense = candle_nn::linear(h, 1, vb.pp("dense"))?;
        Ok((vars, lstm, dense))
    }

    /// Loss and gradients (flat, Keras layout) by candle's autograd through candle_nn's LSTM.
    fn candle_loss_and_grads(&self, batch: &Batch) -> Result<(f64, Vec<f32>)> {
        let (vars, lstm, dense) = self.candle_modules()?;
        let dev = Device::Cpu;
        let (b, n, w) = (batch.size(), batch.n_steps(), batch.target_width());
        let x = Tensor::from_slice(batch.inputs(), (b, n, 1), &dev)?;
        let y = Tensor::from_slice(batch.targets(), (b, w), &dev)?;
        let states = lstm.seq(&x)?;
        let pred = dense.forward(states.last().expect("n_steps >= 1").h())?;
        let diff = pred.broadcast_sub(&y)?;
        let loss = match self.config.loss {
            Loss::Mae => diff.abs()?.mean_all()?,
            Loss::Mse => diff.sqr()?.mean_all()?,
        };
        let store = loss.backward()?;
        let grad = |name: &str| -> Result<Tensor> {
            Ok(match store.get(vars[name].as_tensor()) {
                Some(g) => g.clone(),
                None => vars[name].as_tensor().zeros_like()?,
            })
        };
        let mut flat = Vec::with_capacity(self.layout.len());
        flat.extend(
            grad("lstm.weight_ih_l0")?
                .t()?
                .flatten_all()?
                .to_vec1::<f32>()?,
        );
        flat.extend(
            grad("lstm.weight_hh_l0")?
                .t()?
                .flatten_all()?
                .to_vec1::<f32>()?,
        );
        // Keras has one bias; the forecaster folds both candle biases into bias_ih, so the
        // gradient of that single bias is the one to apply.
        flat.extend(grad("lstm.bias_ih_l0")?.to_vec1::<f32>()?);
        flat.extend(grad("dense.weight")?.flatten_all()?.to_vec1::<f32>()?);
        flat.extend(grad("dense.bias")?.to_vec1::<f32>()?);
        Ok((f64::from(loss.to_scalar::<f32>()?), flat))
    }

    /// Gradients of the loss on `batch` without updating, from the chosen backend. For tests
    /// and gradient checks.
    pub fn gradients(&mut self, batch: &Batch) -> Result<(f64, Vec<f32>)> {
        self.check_batch(batch)?;
        match self.backend {
            Backend::CandleAutograd => self.candle_loss_and_grads(batch),
            Backend::Fused => {
                let loss = self.fused_loss_and_grads(batch);
                Ok((loss, self.grads.clone()))
            }
        }
    }

    /// Writes `model.safetensors` (candle names, see [`candle_tensors`](Self::candle_tensors))
    /// and `model.json` (config, scaler, threshold) into `dir`, creating it. The optimizer
    /// state is not saved: a loaded model predicts and detects; further training restarts Adam.
    ///
    /// ```
    /// use promlearn_model::{Forecaster, ModelConfig};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let model = Forecaster::new(ModelConfig::forecasting(3, 4))?;
    /// model.save(dir.path())?;
    /// let loaded = Forecaster::load(dir.path())?;
    /// assert_eq!(loaded.keras_weights(), model.keras_weights());
    /// # Ok::<(), promlearn_model::Error>(())
    /// ```
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        candle_core::safetensors::save(&self.candle_tensors()?, dir.join(WEIGHTS_FILE))?;
        let settings = Settings {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            config: self.config.clone(),
            scaler: self.scaler,
            threshold: self.threshold,
        };
        let path = dir.join(SETTINGS_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(&settings)?)
            .map_err(|source| Error::Io { path, source })
    }

    /// Loads what [`save`](Self::save) wrote. Both biases of the safetensors file are summed,
    /// so weights exported from PyTorch's `nn.LSTM` under the same names load too.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let json_path = dir.join(SETTINGS_FILE);
        let text = std::fs::read_to_string(&json_path).map_err(|source| Error::Io {
            path: json_path.clone(),
            source,
        })?;
        let bad = |path: &PathBuf, reason: String| Error::BadModelFile {
            path: path.clone(),
            reason,
        };
        let settings: Settings =
            serde_json::from_str(&text).map_err(|e| bad(&json_path, e.to_string()))?;
        if settings.format != FORMAT || settings.version != FORMAT_VERSION {
            return Err(bad(
                &json_path,
                format!(
                    "format {} v{} is not {FORMAT} v{FORMAT_VERSION}",
                    settings.format, settings.version
                ),
            ));
        }
        settings.config.validate()?;
        let weights_path = dir.join(WEIGHTS_FILE);
        if !weights_path.exists() {
            return Err(Error::Io {
                path: weights_path,
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        let tensors = candle_core::safetensors::load(&weights_path, &Device::Cpu)?;
        let h = settings.config.hidden;
        let get = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let t = tensors
                .get(name)
                .ok_or_else(|| bad(&weights_path, format!("tensor {name} is missing")))?;
            if t.dims() != shape {
                return Err(bad(
                    &weights_path,
                    format!(
                        "tensor {name} has shape {:?}, expected {shape:?} for LSTM({h})",
                        t.dims()
                    ),
                ));
            }
            Ok(t.to_dtype(DType::F32)?)
        };
        let flat = |t: Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
        let weights = KerasWeights {
            kernel: flat(get("lstm.weight_ih_l0", &[4 * h, 1])?.t()?)?,
            recurrent_kernel: flat(get("lstm.weight_hh_l0", &[4 * h, h])?.t()?)?,
            bias: flat((get("lstm.bias_ih_l0", &[4 * h])? + get("lstm.bias_hh_l0", &[4 * h])?)?)?,
            dense_kernel: flat(get("dense.weight", &[1, h])?)?,
            dense_bias: flat(get("dense.bias", &[1])?)?,
        };
        let mut model = Self::from_keras_weights(settings.config, &weights)?;
        model.scaler = settings.scaler;
        model.threshold = settings.threshold;
        Ok(model)
    }
}

/// The loss contribution of some batch rows and its gradient w.r.t. each of their
/// predictions. Each prediction is compared with all `width` values of its target (Keras's
/// broadcast); dividing by the whole batch's `total_rows * width` makes the contributions of
/// row blocks add up to the batch mean.
fn loss_and_grad(
    loss: Loss,
    out: &[f32],
    targets: &[f32],
    width: usize,
    total_rows: usize,
) -> (f64, Vec<f32>) {
    let scale = 1.0 / (total_rows * width) as f32;
    let mut total = 0.0f64;
    let mut d_out = vec![0.0f32; out.len()];
    for ((&y, targets), d) in out.iter().zip(targets.chunks_exact(width)).zip(&mut d_out) {
        for &t in targets {
            let diff = y - t;
            match loss {
                Loss::Mae => {
                    total += f64::from(diff.abs());
                    // d|x|/dx as TensorFlow takes it: sign(x), 0 at 0.
                    *d += scale
                        * if diff > 0.0 {
                            1.0
                        } else if diff < 0.0 {
                            -1.0
                        } else {
                            0.0
                        };
                }
                Loss::Mse => {
                    total += f64::from(diff * diff);
                    *d += scale * 2.0 * diff;
                }
            }
        }
    }
    (total * f64::from(scale), d_out)
}

fn initial_weights(l: Layout, init: Init) -> Vec<f32> {
    let (h, g) = (l.hidden, l.gates());
    let mut p = vec![0.0f32; l.len()];
    match init {
        Init::Keras { seed } => {
            let mut rng = SeededRng::new(seed);
            let glorot = |rng: &mut SeededRng, out: &mut [f32], fan_in: usize, fan_out: usize| {
                let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
                for v in out {
                    *v = ((rng.uniform() * 2.0 - 1.0) * limit) as f32;
                }
            };
            glorot(&mut rng, &mut p[l.kernel()], l.n_in, g);
            let q = orthogonal(&mut rng, h, g);
            p[l.recurrent()].copy_from_slice(&q);
            p[l.bias()][h..2 * h].fill(1.0);
            glorot(&mut rng, &mut p[l.dense_kernel()], h, 1);
        }
        Init::PyTorch { seed } => {
            let mut rng = SeededRng::new(seed);
            let mut fill = |out: &mut [f32], bound: f64| {
                for v in out {
                    *v = ((rng.uniform() * 2.0 - 1.0) * bound) as f32;
                }
            };
            let k = 1.0 / (h as f64).sqrt();
            fill(&mut p[l.kernel()], k);
            fill(&mut p[l.recurrent()], k);
            // PyTorch has two LSTM biases; their sum is what acts.
            let mut b2 = vec![0.0; g];
            fill(&mut p[l.bias()], k);
            fill(&mut b2, k);
            for (a, b) in p[l.bias()].iter_mut().zip(b2) {
                *a += b;
            }
            fill(&mut p[l.dense_kernel()], k);
            fill(&mut p[l.dense_bias()..], k);
        }
    }
    p
}

/// A `rows x cols` matrix with orthonormal rows or columns (whichever is fewer), as Keras's
/// `Orthogonal` initializer: QR of a normal matrix with the signs of R's diagonal made
/// positive, which is what Gram-Schmidt gives directly.
fn orthogonal(rng: &mut SeededRng, rows: usize, cols: usize) -> Vec<f32> {
    let (tall, short) = (rows.max(cols), rows.min(cols));
    // `short` column vectors of length `tall`.
    let mut q: Vec<Vec<f64>> = (0..short)
        .map(|_| (0..tall).map(|_| rng.normal()).collect())
        .collect();
    for j in 0..short {
        for k in 0..j {
            let dot: f64 = q[j].iter().zip(&q[k]).map(|(a, b)| a * b).sum();
            let (head, tail) = q.split_at_mut(j);
            for (a, b) in tail[0].iter_mut().zip(&head[k]) {
                *a -= dot * b;
            }
        }
        let norm = q[j].iter().map(|a| a * a).sum::<f64>().sqrt();
        for a in &mut q[j] {
            *a /= norm;
        }
    }
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // Columns orthonormal when tall, rows orthonormal when wide (Keras transposes).
            out[r * cols + c] = if rows >= cols { q[c][r] } else { q[r][c] } as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_rows_are_orthonormal() {
        let mut rng = SeededRng::new(3);
        let (h, g) = (8, 32);
        let q = orthogonal(&mut rng, h, g);
        for a in 0..h {
            for b in 0..h {
                let dot: f32 = (0..g).map(|c| q[a * g + c] * q[b * g + c]).sum();
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5, "{a},{b}: {dot}");
            }
        }
    }

    #[test]
    fn keras_init_is_seeded_and_sets_forget_bias() {
        let a = Forecaster::new(ModelConfig::tutorial())
            .unwrap()
            .keras_weights();
        let b = Forecaster::new(ModelConfig::tutorial())
            .unwrap()
            .keras_weights();
        assert_eq!(a, b);
        assert_eq!(&a.bias[8..16], &[1.0; 8]);
        assert!(a.bias[..8].iter().chain(&a.bias[16..]).all(|&v| v == 0.0));
        let limit = (6.0f32 / 33.0).sqrt();
        assert!(a.kernel.iter().all(|v| v.abs() <= limit));
        let mut other = ModelConfig::tutorial();
        other.init = Init::Keras { seed: 1 };
        assert_ne!(Forecaster::new(other).unwrap().keras_weights(), a);
    }
}
