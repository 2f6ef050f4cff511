//! The forecaster: LSTM(H) + Dense(1), trained with Keras's Adam on MAE or MSE by the fused
//! kernels of [`crate::fused`]. Its readable definition in candle is `spec` (the `candle`
//! feature, on by default); its files are [`persist`]; its initial weights, [`init`].

mod init;
mod persist;

pub use persist::SavedThreshold;
#[cfg(feature = "candle")]
pub(crate) mod spec;

use crate::config::{Backend, FitEvent, FitOptions, History, KerasWeights, Loss, ModelConfig};
use crate::data::{Batch, Scaler};
use crate::error::{Error, Result, check_finite};
use crate::fused::{self, Adam, Layout, Workspace};
use init::initial_weights;

/// An LSTM(H) + Dense(1) forecaster, numerically matching Keras's
/// `Sequential([LSTM(H), Dense(1)])` with Adam.
///
/// Window- and batch-level methods ([`fit`](Self::fit), [`evaluate`](Self::evaluate),
/// [`predict`](Self::predict)) work on already-scaled values. Series-level methods
/// ([`forecast`](Self::forecast)) take values in original units and apply the attached
/// [`Scaler`], if any. Anomaly thresholds are not the model's: promlearn-detect owns them.
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
    threshold: Option<SavedThreshold>,
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

    /// The anomaly threshold an older `promlearn train` saved beside the model, if the loaded
    /// `model.json` had one (read back only: promlearn-detect reads such models).
    pub fn threshold(&self) -> Option<&SavedThreshold> {
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
            #[cfg(feature = "candle")]
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

    /// One prediction per scaled input window, by the fused forward pass that training uses
    /// (checked against the candle definition in `spec.rs`).
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
        Ok(self.predict_flat(&flat))
    }

    fn predict_flat(&self, flat: &[f32]) -> Vec<f64> {
        let n = self.config.n_steps;
        let mut ws = Workspace::default();
        let mut out = Vec::with_capacity(flat.len() / n);
        // Bounded chunks keep the workspace small for long series.
        for chunk in flat.chunks(4096 * n) {
            fused::forward(
                self.layout,
                &self.params,
                chunk,
                chunk.len() / n,
                n,
                &mut ws,
            );
            out.extend(ws.out.iter().map(|&y| f64::from(y)));
        }
        out
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
            let next = self.predict_flat(&window.iter().map(|&v| v as f32).collect::<Vec<_>>())[0];
            out.push(next);
            window.remove(0);
            window.push(next);
        }
        Ok(match &self.scaler {
            Some(s) => s.inverse_transform(&out),
            None => out,
        })
    }

    /// Gradients of the loss on `batch` without updating, from the chosen backend. For tests
    /// and gradient checks.
    pub fn gradients(&mut self, batch: &Batch) -> Result<(f64, Vec<f32>)> {
        self.check_batch(batch)?;
        match self.backend {
            #[cfg(feature = "candle")]
            Backend::CandleAutograd => self.candle_loss_and_grads(batch),
            Backend::Fused => {
                let loss = self.fused_loss_and_grads(batch);
                Ok((loss, self.grads.clone()))
            }
        }
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
