//! Turns a univariate metric series into training data and trains a Keras-compatible
//! LSTM forecaster on CPU, rebuilding TensorFlow-IO's Prometheus tutorial in Rust.
//!
//! * [`data`]: scaling ([`Scaler`]), sliding [`windows`], input/target pairs ([`Dataset`]),
//!   shuffle, repeat, batch.
//! * [`Forecaster`]: `LSTM(H)` + `Dense(1)`, Keras-exact initialisation, Adam and MAE/MSE;
//!   `fit`, `evaluate`, `predict`, `forecast`, safetensors `save`/`load`. Its readable
//!   definition in candle_nn is `src/model/spec.rs`, the specification that the fused training
//!   kernels (`src/fused.rs`) and Keras's numbers are tested against.
//!
//! Anomaly thresholds are promlearn-detect's: this crate forecasts, it does not judge.
//!
//! Targets come in two modes, see [`TargetMode`]: the tutorial's quirky next-*window* target
//! (reproduces its numbers) and a plain next-value forecast.

mod config;
pub mod data;
mod error;
mod fused;
mod model;
mod rng;

pub use config::{Backend, FitEvent, FitOptions, History, Init, KerasWeights, Loss, ModelConfig};
pub use data::{Batch, Dataset, ScaleKind, Scaler, TargetMode, windows};
pub use error::{Error, Result};
pub use model::{Forecaster, SavedThreshold};
