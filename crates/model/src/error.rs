//! The model crate's errors, each saying what was wrong and what to do.

use std::path::PathBuf;

/// Everything that can go wrong in this crate. Each message says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The series is too short for the requested windows.
    #[error(
        "too few samples: {what} needs at least {needed} values but the series has {got}; \
         query a longer time range or use a smaller window"
    )]
    TooFewSamples {
        /// What needed the samples.
        what: String,
        /// How many values would have been enough.
        needed: usize,
        /// How many values there were.
        got: usize,
    },

    /// The series cannot be scaled: it is constant, or max scaling met a maximum <= 0.
    #[error(
        "cannot scale the series: {reason} (min {min}, max {max}); check the query, use \
         ScaleKind::Max for a constant positive series, or ScaleKind::MinMax for data that is not positive"
    )]
    Unscalable {
        /// Why the scale would divide by zero or flip the sign.
        reason: &'static str,
        /// Smallest value seen.
        min: f64,
        /// Largest value seen.
        max: f64,
    },

    /// A NaN or infinite value in the input.
    #[error(
        "{what} holds a non-finite value ({value}) at index {index}; drop or fill gaps \
         (e.g. interpolate) before training"
    )]
    NonFinite {
        /// Which input held it.
        what: String,
        /// Where.
        index: usize,
        /// The value (NaN, inf or -inf).
        value: f64,
    },

    /// Inputs whose lengths or shapes disagree.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// What was being checked.
        what: String,
        /// The shape that would have fitted.
        expected: String,
        /// The shape that came in.
        got: String,
    },

    /// A setting that cannot work (zero sizes, a quantile outside [0, 1], ...).
    #[error("invalid setting: {0}")]
    InvalidConfig(String),

    /// Training diverged: the loss or a gradient stopped being finite.
    #[error(
        "training stopped at epoch {epoch}, step {step}: the {what} is not finite ({value}); \
         lower the learning rate and check the input scaling"
    )]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// "loss" or "gradient".
        what: &'static str,
        /// The offending value.
        value: f64,
    },

    /// A saved model that this version cannot read.
    #[error("cannot load the model from {path}: {reason}")]
    BadModelFile {
        /// The file that was read.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },

    /// Reading or writing a model file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The settings JSON could not be read or written.
    #[error("settings JSON: {0}")]
    Json(#[from] serde_json::Error),

    /// An error from candle (tensor shapes), in the reference definition.
    #[cfg(feature = "candle")]
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Rejects NaN and infinities up front, so nothing downstream ever trains on them.
pub(crate) fn check_finite(what: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite {
            what: what.to_string(),
            index,
            value: values[index],
        }),
    }
}
