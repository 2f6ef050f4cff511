//! What can go wrong in this crate, by kind: each message says what was attempted, on what, and
//! what to do.

use std::{net::SocketAddr, path::PathBuf};

/// What can stop the service or a backtest from starting or running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file could not be read.
    #[error("cannot read the watch configuration {}: {source}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is not valid: where, and what is wrong.
    #[error("{origin}:{line}: {message}")]
    Config {
        /// The file (or the name given to [`Config::from_toml`](crate::Config::from_toml)).
        origin: String,
        /// The 1-based line.
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A password or token file the configuration names gave no secret (read by the loader's
    /// one rule, [`promlearn_loader::read_secret_file`]: trimmed, one line).
    #[error("{what}: {source}")]
    Secret {
        /// Which setting names it.
        what: &'static str,
        /// Why (naming the file, never its content).
        #[source]
        source: promlearn_loader::SecretFileError,
    },
    /// A file the configuration names (the CA certificate) could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    ReadSecret {
        /// Which setting names it.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The web configuration file (`--web.config.file`, TLS and basic auth) is not valid.
    #[error("web config {}: {problem}", path.display())]
    WebConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        problem: String,
    },
    /// The Prometheus client could not be built from the configuration.
    #[error("the Prometheus client: {0}")]
    Client(#[from] promlearn_loader::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("serving /metrics: {0}")]
    Serve(#[source] std::io::Error),
    /// A backtest was asked for an empty or reversed range.
    #[error(
        "the backtest range is empty: from ({from_ms} ms) must be before to ({to_ms} ms); swap them or widen the range"
    )]
    EmptyRange {
        /// Start, unix ms.
        from_ms: i64,
        /// End, unix ms.
        to_ms: i64,
    },
    /// A backtest's history could not be read from Prometheus.
    #[error("reading the history of query `{query}` for the backtest: {source}")]
    Load {
        /// The query's name.
        query: String,
        /// Why.
        #[source]
        source: Box<promlearn_loader::Error>,
    },
    /// An in-memory series has not one value per timestamp.
    #[error(
        "series {labels}: {timestamps} timestamps but {values} values; give one value per timestamp"
    )]
    SeriesLength {
        /// The series.
        labels: String,
        /// How many timestamps.
        timestamps: usize,
        /// How many values.
        values: usize,
    },
    /// An in-memory source holds series for a query the configuration does not have.
    #[error(
        "the in-memory source has series for query `{query}`, which the configuration does not name; queries are: {known}"
    )]
    UnknownQuery {
        /// The name the source used.
        query: String,
        /// The configuration's query names, comma-separated.
        known: String,
    },
    /// A shard (`--shard I/N`) that cannot be.
    #[error("invalid shard `{text}`: {why}; write I/N with 0 <= I < N, e.g. 0/2 and 1/2 for two")]
    Shard {
        /// What was given.
        text: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The state directory (`state_dir`) cannot be created or written to.
    #[error(
        "the state directory {} cannot be used: {source}; create it writable for this user, or remove state_dir to run without saved state",
        path.display()
    )]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A reload changed a setting that only a restart can change.
    #[error(
        "`{setting}` cannot change while the watch runs (running: {running}, the file now: {new}); put it back, or restart the watch to apply it"
    )]
    NotReloadable {
        /// The setting.
        setting: &'static str,
        /// Its running value.
        running: String,
        /// The value the file now has.
        new: String,
    },
    /// A reload was asked of a watch built from a `Config` value, with no file to read again.
    #[error(
        "this watch has no configuration file to read again; build it with Watch::reload_with (the CLI does)"
    )]
    NothingToReload,
    /// A reload was asked of a watch that is not serving (not started, or stopped).
    #[error("the watch is not serving, so it cannot reload; start it with Watch::serve first")]
    NotServing,
    /// The backtest's sink (the caller's writer) failed; the backtest stopped there.
    #[error("writing a backtest point failed: {0}")]
    Sink(#[source] std::io::Error),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
