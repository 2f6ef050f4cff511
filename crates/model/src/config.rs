//! What defines a model and its training: architecture and loss ([`ModelConfig`]), weights in
//! Keras's layout, the training options and what training reports.

use serde::{Deserialize, Serialize};

use crate::data::TargetMode;
use crate::error::{Error, Result};

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

    pub(crate) fn validate(&self) -> Result<()> {
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
    /// candle_nn's LSTM and candle's autograd. Slow at small sizes; kept as a reference (the
    /// `candle` feature, on by default).
    #[cfg(feature = "candle")]
    CandleAutograd,
}

/// Options for [`Forecaster::fit`](crate::Forecaster::fit).
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// Number of epochs.
    pub epochs: usize,
    /// Steps per epoch; `None` means one pass over the batches. When set, batches are taken
    /// in order and cycled, continuing across epochs as Keras's iterator does.
    pub steps_per_epoch: Option<usize>,
}

/// What [`Forecaster::fit_with_progress`](crate::Forecaster::fit_with_progress) reports while it trains, for a caller to show (the
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

/// Losses recorded by [`Forecaster::fit`](crate::Forecaster::fit).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Per epoch, the mean step loss weighted by batch size (what Keras's History shows).
    pub epoch_losses: Vec<f64>,
    /// The loss of every step, before that step's update.
    pub step_losses: Vec<f64>,
}
