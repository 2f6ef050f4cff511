//! The crate's one error type: what went wrong, on which file and line, and what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong reading NAB's files or scoring results. Match on the variant,
/// never on the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error(
        "cannot {action} {path}: {source}; check the path (NAB's files are in fixtures/nab of the \
         promlearn repository) and its permissions"
    )]
    Io {
        /// What was attempted: `read`, `write`, `create`, `list`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A line of a CSV file (data, results or published scores) is not what NAB writes.
    #[error(
        "{path}, line {line}: {problem}; NAB's files are comma-separated with a header \
         (`timestamp,value` for data, `timestamp,value,anomaly_score,label` for results)"
    )]
    Csv {
        /// The file.
        path: PathBuf,
        /// The 1-based line number (1 is the header).
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// A JSON file (windows or profiles) is not in NAB's shape.
    #[error("{path} is not NAB's {what}: {source}; take it from NAB's repository (fixtures/nab)")]
    Json {
        /// The file.
        path: PathBuf,
        /// Which file it should be: `anomaly windows`, `cost profiles`.
        what: &'static str,
        /// serde_json's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A data file made in memory ([`crate::DataFile::new`]) is not one series.
    #[error("data file {file}: {problem}")]
    Data {
        /// The data file's name.
        file: String,
        /// What is wrong, and what to do.
        problem: String,
    },
    /// The anomaly windows do not fit the data files (NAB's scorer refuses the same).
    #[error("anomaly windows of {file}: {problem}; the windows file must match the data files")]
    Windows {
        /// The data file (`category/name.csv`).
        file: String,
        /// What does not fit.
        problem: String,
    },
    /// A detector's results do not fit the corpus: a file missing or unknown, a row count or
    /// timestamp that differs, an anomaly score that is not in `[0, 1]`.
    #[error("results of detector {detector} for {file}: {problem}")]
    Results {
        /// The detector's name.
        detector: String,
        /// The data file (`category/name.csv`).
        file: String,
        /// What is wrong, and what to do.
        problem: String,
    },
    /// A cost profile that NAB's `config/profiles.json` does not define.
    #[error("no cost profile named {name:?}; NAB's are {known}")]
    UnknownProfile {
        /// The name asked for.
        name: String,
        /// The names the corpus defines, comma-separated.
        known: String,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn results(detector: &str, file: &str, problem: impl Into<String>) -> Self {
        Error::Results {
            detector: detector.to_owned(),
            file: file.to_owned(),
            problem: problem.into(),
        }
    }
}
