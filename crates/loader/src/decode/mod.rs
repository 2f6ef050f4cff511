//! A streaming decoder for Prometheus HTTP API answers (`/api/v1/query`, `/api/v1/query_range`).
//!
//! It is fed the body in whatever pieces the network delivers and hands each series' labels and
//! points to a [`Sink`] as soon as they are complete, without building a JSON tree: memory stays
//! bounded by the sink's own storage plus one unfinished JSON value. It follows the API's format:
//! timestamps are seconds with a millisecond fraction (`1435781451.781`), decoded exactly into
//! integer milliseconds; values are strings (`"1"`, `"1e-07"`, `"NaN"`, `"+Inf"`, `"-Inf"`);
//! `status: "error"` carries `errorType` and `error`; `warnings` (and Prometheus 3's `infos`) are
//! kept. Keys may come in any order; unknown keys (VictoriaMetrics' `stats`, ...) are skipped
//! without being buffered.
//!
//! Native histograms (Prometheus 3's `histogram` / `histograms` beside or instead of `value` /
//! `values`) are not read: a series that holds only histogram samples is left out of the answer,
//! one with float samples too keeps its floats, and each such series adds a warning naming it
//! (where its labels are known) and the float functions to ask for instead (`histogram_count`,
//! `histogram_sum`, `histogram_quantile`). The rest of the answer decodes as usual.
//!
//! ```
//! use promlearn_loader::decode::decode;
//!
//! let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
//!     {"metric":{"__name__":"up","job":"prometheus"},"values":[[1700000000,"1"],[1700000001.5,"NaN"]]}]},
//!     "warnings":["careful"]}"#;
//! let answer = decode(body)?;
//! assert_eq!(answer.result_type, "matrix");
//! assert_eq!(answer.series[0].labels.get("job"), Some("prometheus"));
//! assert_eq!(answer.series[0].timestamps, [1_700_000_000_000, 1_700_000_001_500]);
//! assert!(answer.series[0].values[1].is_nan());
//! assert_eq!(answer.warnings, ["careful"]);
//! # Ok::<(), promlearn_loader::Error>(())
//! ```

mod lex;
mod machine;

pub use machine::Decoder;

use crate::{
    Labels,
    error::{Attempts, Error, Result},
};

/// Where decoded series go. Points of a series arrive in the server's order (ascending time).
pub trait Sink {
    /// A series starts; its points follow until [`Sink::end_series`].
    fn begin_series(&mut self, labels: Labels) -> Result<()>;
    /// One sample of the current series, in integer milliseconds.
    fn point(&mut self, timestamp_ms: i64, value: f64) -> Result<()>;
    /// The current series is complete.
    fn end_series(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The parts of an answer other than its series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    /// `"success"` or `"error"`.
    pub status: Option<String>,
    /// Prometheus's `errorType` (`bad_data`, `execution`, ...); `None` unless the status is `error`.
    pub error_type: Option<String>,
    /// Prometheus's own `error` message; `None` unless the status is `error`.
    pub error: Option<String>,
    /// The server's `warnings` (and VictoriaMetrics' `isPartial: true`, as a warning).
    pub warnings: Vec<String>,
    /// Prometheus 3's `infos`.
    pub infos: Vec<String>,
    /// `matrix`, `vector`, `scalar` or `string`.
    pub result_type: Option<String>,
    /// The value of a `scalar` result.
    pub scalar: Option<(i64, f64)>,
    /// The value of a `string` result.
    pub string: Option<(i64, String)>,
    /// Series seen (handed to the sink).
    pub series: usize,
    /// Points (samples) seen, over all series.
    pub points: u64,
}

/// One decoded series: labels, and its samples as parallel columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// The series' label set (`__name__` included when the server sent it).
    pub labels: Labels,
    /// Milliseconds since the Unix epoch, ascending as the server sent them.
    pub timestamps: Vec<i64>,
    /// The sample values, one per timestamp; `NaN` and infinities as the server sent them.
    pub values: Vec<f64>,
}

impl Series {
    /// Puts the samples in time order and keeps one per timestamp (the first in the order they
    /// came), for paths whose servers may send a series' samples out of order or twice.
    pub(crate) fn sort_by_time(&mut self) {
        if self.timestamps.windows(2).all(|w| w[0] < w[1]) {
            return;
        }
        let mut pairs: Vec<(i64, f64)> = self
            .timestamps
            .iter()
            .copied()
            .zip(self.values.iter().copied())
            .collect();
        pairs.sort_by_key(|p| p.0);
        pairs.dedup_by_key(|p| p.0);
        (self.timestamps, self.values) = pairs.into_iter().unzip();
    }
}

/// A [`Sink`] that keeps every series as sent.
#[derive(Debug, Default)]
pub struct Collect {
    /// Every series decoded so far, in the order the server sent them.
    pub series: Vec<Series>,
}

impl Sink for Collect {
    fn begin_series(&mut self, labels: Labels) -> Result<()> {
        self.series.push(Series {
            labels,
            ..Series::default()
        });
        Ok(())
    }

    #[inline]
    fn point(&mut self, timestamp_ms: i64, value: f64) -> Result<()> {
        let series = self.series.last_mut().expect("begin_series comes first");
        series.timestamps.push(timestamp_ms);
        series.values.push(value);
        Ok(())
    }
}

/// A whole decoded answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// `matrix`, `vector`, `scalar` or `string`.
    pub result_type: String,
    /// The series of a `matrix` or `vector` result (a vector's series hold one sample each).
    pub series: Vec<Series>,
    /// The value of a `scalar` result.
    pub scalar: Option<(i64, f64)>,
    /// The value of a `string` result.
    pub string: Option<(i64, String)>,
    /// The server's `warnings`, plus one for VictoriaMetrics' `isPartial: true` and one per
    /// native-histogram series left out.
    pub warnings: Vec<String>,
    /// Prometheus 3's `infos` (notes that are not warnings); empty for other servers.
    pub infos: Vec<String>,
}

/// Decodes a complete body that came with HTTP status 200. See [`decode_http`].
pub fn decode(body: &[u8]) -> Result<Answer> {
    decode_http(200, body)
}

/// Decodes a complete body that came with `http_status`: a `status: "error"` answer becomes
/// [`Error::Api`] with the server's `errorType` and `error`; a body that is not Prometheus JSON
/// becomes [`Error::NotPrometheus`].
pub fn decode_http(http_status: u16, body: &[u8]) -> Result<Answer> {
    let context = Context {
        endpoint: "the server",
        url: "the answer",
        query: "",
        http_status,
        content_type: "unknown content type",
    };
    let mut decoder = Decoder::new(Collect::default());
    let fed = decoder.feed(body);
    let (envelope, collect) = context.conclude(fed.and_then(|()| decoder.finish()), body)?;
    Ok(Answer {
        result_type: envelope.result_type.unwrap_or_default(),
        series: collect.series,
        scalar: envelope.scalar,
        string: envelope.string,
        warnings: envelope.warnings,
        infos: envelope.infos,
    })
}

/// What the caller knows about a response, to turn decoding outcomes into precise errors.
pub(crate) struct Context<'a> {
    pub endpoint: &'a str,
    pub url: &'a str,
    pub query: &'a str,
    pub http_status: u16,
    pub content_type: &'a str,
}

impl Context<'_> {
    /// Turns the decoder's outcome into the answer or the right error. `head` is the start of the
    /// body, quoted when the body is not Prometheus JSON.
    pub(crate) fn conclude<S>(
        &self,
        outcome: Result<(Envelope, S)>,
        head: &[u8],
    ) -> Result<(Envelope, S)> {
        let not_prometheus = || Error::NotPrometheus {
            url: self.url.to_owned(),
            status: self.http_status,
            content_type: self.content_type.to_owned(),
            snippet: snippet(head),
        };
        match outcome {
            Ok((envelope, sink)) => match envelope.status.as_deref() {
                Some("success") if (200..300).contains(&self.http_status) => Ok((envelope, sink)),
                Some("error") => Err(Error::Api {
                    endpoint: self.endpoint.to_owned(),
                    status: self.http_status,
                    error_type: envelope.error_type.unwrap_or_else(|| "unknown".into()),
                    message: envelope
                        .error
                        .unwrap_or_else(|| "(the server gave no message)".into()),
                    query: self.query.to_owned(),
                    attempts: Attempts(1),
                }),
                _ => Err(not_prometheus()),
            },
            Err(Error::Decode { source, .. })
                if source.offset == 0 || !(200..300).contains(&self.http_status) =>
            {
                Err(not_prometheus())
            }
            Err(Error::Decode { source, .. }) => Err(Error::Decode {
                url: self.url.to_owned(),
                source,
            }),
            Err(Error::Truncated { attempts, .. }) => Err(Error::Truncated {
                endpoint: self.endpoint.to_owned(),
                attempts,
            }),
            Err(other) => Err(other),
        }
    }
}

/// The start of a body, as text, for error messages.
pub(crate) fn snippet(head: &[u8]) -> String {
    let text = String::from_utf8_lossy(&head[..head.len().min(300)]);
    let mut text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if head.len() > 300 {
        text.push_str(" ...");
    }
    text
}

#[cfg(test)]
mod tests;
