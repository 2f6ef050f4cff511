//! Load Prometheus-API query results as aligned, ML-ready data.

mod client;
pub mod decode;
mod error;
pub mod exposition;
#[cfg(feature = "export")]
mod files;
mod labels;
mod matrix;
mod query;
pub mod raw_path;
pub mod remote_read;
mod request;
mod scrape;
mod secret_file;
pub mod tutorial;
mod vm_export;

pub use client::{Client, ClientBuilder, Progress, RawSeries, install_crypto_provider};
pub use decode::Series;
pub use error::{Attempts, DecodeError, Error, HttpError, Result};
pub use labels::Labels;
pub use matrix::{MISSING, MISSING_BITS, Matrix, MissingPolicy, is_missing};
pub use query::{PROMETHEUS_MAX_POINTS, RangeQuery};
pub use raw_path::{RawLoad, Via};
pub use scrape::Scrape;
pub use secret_file::{SecretFileError, read_secret_file};
