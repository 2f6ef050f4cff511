//! Turns a univariate metric series into training data and trains a Keras-compatible
//! LSTM forecaster on CPU, rebuilding TensorFlow-IO's Prometheus tutorial in Rust.
//!
//! * [`data`]: scaling ([`Scaler`]), sliding [`windows`], input/target pairs ([`Dataset`]),
//!   shuffle, repeat, batch.
//! * [`Forecaster`]: `LSTM(H)` + `Dense(1)` on candle_nn's LSTM layout, Keras-exact
//!   initialisation, Adam and MAE/MSE; `fit`, `evaluate`, `predict`, `forecast`,
//!   safetensors `save`/`load`.
//! * [`anomaly`]: per-timestamp prediction errors against a quantile threshold.
//!
//! Targets come in two modes, see [`TargetMode`]: the tutorial's quirky next-*window* target
//! (reproduces its numbers) and a plain next-value forecast.

pub mod anomaly;
pub mod data;
mod error;
mod fused;
mod model;
mod rng;

pub use anomaly::{Anomaly, PointError, Threshold};
pub use data::{Batch, Dataset, ScaleKind, Scaler, TargetMode, windows};
pub use error::{Error, Result};
pub use model::{
    Backend, FitEvent, FitOptions, Forecaster, History, Init, KerasWeights, Loss, ModelConfig,
};
