//! Load Prometheus-API query results as aligned, ML-ready data: the one HTTP client of promlearn
//! for Prometheus, Thanos Query and VictoriaMetrics (and Mimir under its path prefix, untested), and for the
//! metrics pages they scrape.
//!
//! A [`Client`] (built by [`ClientBuilder`]: endpoint, basic auth or bearer token, extra headers,
//! a CA that replaces the system's roots, time-outs, retries, concurrency) answers three kinds of
//! request, each in one place:
//!
//! - **Ranges** ([`Client::query_range`]): a [`RangeQuery`] is planned into chunks that stay under
//!   the server's 11,000-points-per-series limit ([`PROMETHEUS_MAX_POINTS`]) and, when the range is
//!   long enough, into at least one chunk per concurrent fetch, so that decoding one chunk overlaps
//!   the server's work on the next ([`Client::plan`] shows the plan). Chunks are fetched with
//!   bounded concurrency and assembled into one [`Matrix`]: a column per series, a row per step of
//!   the grid, a missing sample as the [`MISSING`] NaN (distinguishable from a NaN the server
//!   sent) until a [`MissingPolicy`] says otherwise. [`Client::query_range_chunks`] streams them.
//! - **Raw samples** ([`Client::load_raw`], module [`raw_path`]): by the fastest path the server
//!   offers — remote read (module [`remote_read`]: a snappy protobuf request, and Prometheus's own
//!   XOR chunks decoded here as the frames arrive), VictoriaMetrics' `/api/v1/export`, else the
//!   JSON API's `selector[range]` — all giving the same samples (the decisions are in
//!   [`raw_path`]).
//! - **Metrics pages** ([`Client::scrape`], module [`exposition`]): the text exposition format,
//!   with the same credentials and error kinds.
//!
//! Answers are read as they arrive: the JSON decoder (module [`decode`]) is a hand-written
//! streaming state machine that hands each series to a sink as soon as it is complete, without a
//! JSON tree, timestamps decoded exactly into integer milliseconds. Every request is retried
//! where a retry can help (502/503/504/429, time-outs, refused or reset connections, answers cut
//! short; never a 400 or 422), and every failure is a typed [`Error`] that names the endpoint
//! (never a credential), quotes the server's own words, and says what to do; callers match its
//! kinds, never its text.
//!
//! The fast paths are checked against slow, obviously right references in every test run: the
//! decoder against serde_json on recorded answers (`fixtures/loader`) and 100,000 generated ones
//! (plus a fuzz target, `crates/loader/fuzz`); the XOR chunk decoder and frame reader against
//! Prometheus's own `SAMPLES` answer of the same query and a mirror of its chunk encoder (plus
//! two fuzz targets); and, end to end, every path against the JSON API on real Prometheus 2 and
//! 3, Thanos Query and VictoriaMetrics started by promlearn-testbed. On top sit CSV and Parquet
//! files (`Matrix::write_csv` and `write_parquet`, cargo feature `export`) and the TensorFlow-IO tutorial's dataset
//! ([`tutorial::Dataset`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use promlearn_loader::{Client, RangeQuery};
//!
//! // A stand-in for Prometheus that answers any request with one recorded `query_range` answer.
//! # use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let endpoint = format!("http://{}", server.local_addr()?);
//! # tokio::spawn(async move {
//! #     let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
//! #         {"metric":{"__name__":"up","job":"coredns"},"values":[[0,"1"],[2,"1"]]}]}}"#;
//! #     loop {
//! #         let (mut socket, _) = server.accept().await.unwrap();
//! #         let mut head = Vec::new();
//! #         let mut byte = [0u8; 1];
//! #         while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).await.unwrap() == 1 {
//! #             head.push(byte[0]);
//! #         }
//! #         let answer = format!(
//! #             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
//! #              Connection: close\r\n\r\n{body}",
//! #             body.len()
//! #         );
//! #         socket.write_all(answer.as_bytes()).await.unwrap();
//! #     }
//! # });
//!
//! promlearn_loader::install_crypto_provider();
//! let client = Client::builder(endpoint).no_proxy().build()?;
//! let query = RangeQuery::new("up", 0, 2_000, Duration::from_secs(1))?;
//! let matrix = client.query_range(&query).await?;
//! assert_eq!(matrix.timestamps(), [0, 1_000, 2_000]);
//! assert_eq!(matrix.series()[0].get("job"), Some("coredns"));
//! assert_eq!(matrix.column(0)[0], 1.0);
//! assert!(promlearn_loader::is_missing(matrix.column(0)[1]), "no sample at 1 s.");
//! # Ok(())
//! # }
//! ```

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
