//! What can go wrong in this crate. Each message says what was wrong and what to do instead.

use std::path::PathBuf;

/// Everything that can go wrong while validating, fitting, analysing, saving or plotting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A detector setting that cannot work.
    #[error("the {detector} detector's `{field}` {problem}; {fix}")]
    InvalidSpec {
        /// The detector's name (`zscore`, `mad`, `quantile`, `knn`, `lstm`).
        detector: &'static str,
        /// The field that is wrong.
        field: &'static str,
        /// What is wrong with it, with the value given.
        problem: String,
        /// What to write instead.
        fix: String,
    },

    /// A setting of what a team knows about a metric ([`DomainKnowledge`](crate::DomainKnowledge))
    /// that cannot work.
    #[error("`{field}` {problem}; {fix}")]
    InvalidKnowledge {
        /// The setting that is wrong (`min_deviation`, `data_range`).
        field: &'static str,
        /// What is wrong with it, with the value given.
        problem: String,
        /// What to write instead.
        fix: String,
    },

    /// The history given to `fit` is too short.
    #[error(
        "too little history to fit the {detector} detector: it needs at least {needed} {what} \
         but the history has {got}; fit on a longer range or use a smaller window"
    )]
    TooLittleHistory {
        /// The detector's name.
        detector: &'static str,
        /// What was counted (e.g. "finite points").
        what: &'static str,
        /// How many would have been enough.
        needed: usize,
        /// How many there were.
        got: usize,
    },

    /// Timestamps and values of different lengths.
    #[error(
        "a series needs one timestamp per value, but there are {timestamps} timestamps and {values} values"
    )]
    LengthMismatch {
        /// Number of timestamps.
        timestamps: usize,
        /// Number of values.
        values: usize,
    },

    /// Timestamps that do not increase.
    #[error(
        "timestamps must increase, but index {index} ({at} ms) is not after the one before it \
         ({before} ms); sort the series and drop duplicate timestamps"
    )]
    Unordered {
        /// Index of the offending timestamp.
        index: usize,
        /// The timestamp before it.
        before: i64,
        /// The offending timestamp.
        at: i64,
    },

    /// The LSTM forecaster failed (promlearn-model's error, which says what to do).
    #[error("LSTM forecaster: {0}")]
    Model(#[from] promlearn_model::Error),

    /// Reading or writing a saved detector failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },

    /// A saved detector that cannot be read back.
    #[error("{} is not a saved promlearn detector: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A [`SavedModel`](crate::SavedModel) that does not make a working model (a file written
    /// by another version, or damaged): refit instead.
    #[error("a saved {detector} model is not usable: {reason}; refit it")]
    Saved {
        /// The detector it claims to be.
        detector: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// Drawing a plot failed.
    #[error("cannot draw the plot {}: {reason}", path.display())]
    Plot {
        /// The PNG being drawn.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
