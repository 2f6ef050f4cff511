//! Typed errors that say what was wrong and what to do.

use std::{fmt, time::Duration};

use crate::Labels;

/// The HTTP client's own error behind [`Error::Connect`] and [`Error::Transport`]: its message,
/// and its causes through [`source`](std::error::Error::source). Opaque, so that the HTTP client
/// the loader is built on is not part of its API (an upgrade of it is not a breaking change here).
pub struct HttpError(reqwest::Error);

impl HttpError {
    pub(crate) fn new(e: reqwest::Error) -> HttpError {
        HttpError(e.without_url())
    }
}

impl fmt::Debug for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Everything that can go wrong while loading. Messages name the endpoint (never a credential),
/// quote the server's own words where there are any, and suggest a fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint URL is not usable.
    #[error("invalid endpoint `{endpoint}`: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given, credentials replaced by `<redacted>`.
        endpoint: String,
        /// What is wrong (not a URL, not http or https, ...) and what to give instead.
        reason: String,
    },

    /// A client option is not usable (a malformed header, an unreadable CA certificate, ...).
    #[error("invalid client configuration: {0}")]
    InvalidConfig(String),

    /// A query's arguments are not usable (an empty range, a zero step, ...).
    #[error("invalid query arguments: {0}")]
    InvalidArgument(String),

    /// No connection could be made.
    #[error(
        "could not connect to {endpoint}{attempts}: {source}; is the server running, and is the endpoint URL right?"
    )]
    Connect {
        /// The endpoint's base URL, credentials replaced by `<redacted>`.
        endpoint: String,
        /// How many times a connection was tried, retries included.
        attempts: Attempts,
        /// The HTTP client's error (DNS failure, connection refused, ...).
        #[source]
        source: HttpError,
    },

    /// The server's TLS certificate was not accepted (an unknown CA, another host's name, expired).
    /// Never retried: trying again cannot change the certificate.
    #[error(
        "the TLS certificate of {endpoint} is not trusted: {reason}; give the server's CA \
         certificate (ClientBuilder::ca_certificate_pem)"
    )]
    Tls {
        /// The endpoint's base URL, credentials replaced by `<redacted>`.
        endpoint: String,
        /// Why the certificate was refused, as the TLS library says it.
        reason: String,
    },

    /// The request did not complete within the client's time-out.
    #[error(
        "no complete answer from {endpoint} within {timeout:?}{attempts}; raise the time-out \
         (ClientBuilder::timeout) or load a shorter range or a coarser step"
    )]
    Timeout {
        /// The endpoint's base URL, credentials replaced by `<redacted>`.
        endpoint: String,
        /// The per-request time-out that ran out
        /// ([`ClientBuilder::timeout`](crate::ClientBuilder::timeout), default 60 s).
        timeout: Duration,
        /// How many times the request was tried, retries included.
        attempts: Attempts,
    },

    /// The connection failed after it was made (reset, closed mid-answer, TLS failure, ...).
    #[error("the connection to {endpoint} failed{attempts}: {source}")]
    Transport {
        /// The endpoint's base URL, credentials replaced by `<redacted>`.
        endpoint: String,
        /// How many times the request was tried, retries included.
        attempts: Attempts,
        /// The HTTP client's error.
        #[source]
        source: HttpError,
    },

    /// The answer stopped before its JSON was complete; nothing of it was used.
    #[error(
        "the answer from {endpoint} ended before it was complete{attempts} (the server may have \
         stopped, or a proxy cut the answer off); no partial result is returned"
    )]
    Truncated {
        /// The endpoint's base URL, credentials replaced by `<redacted>`.
        endpoint: String,
        /// How many times the request was tried, retries included.
        attempts: Attempts,
    },

    /// The server answered with a Prometheus API error (`"status": "error"`).
    #[error(
        "{endpoint} rejected `{query}`: {error_type}: {message} (HTTP {status}{attempts}); {}",
        api_hint(.error_type, *.status)
    )]
    Api {
        /// The endpoint's base URL, credentials replaced by `<redacted>`.
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// Prometheus's `errorType` (`bad_data`, `execution`, `timeout`, `unavailable`, ...).
        error_type: String,
        /// Prometheus's own `error` message.
        message: String,
        /// The PromQL sent.
        query: String,
        /// How many times the request was tried, retries included.
        attempts: Attempts,
    },

    /// The server answered, but not as a Prometheus API does (an HTML page, a 404 text, other JSON).
    #[error(
        "{url} answered HTTP {status} ({content_type}), which is not a Prometheus API response: \
         {snippet:?}; check that the endpoint is the base URL of a Prometheus-compatible API \
         (for example http://localhost:9090, or the path prefix of Thanos, Mimir or \
         VictoriaMetrics), without /api/v1"
    )]
    NotPrometheus {
        /// The URL asked, without its query string.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The answer's `Content-Type` header, as sent (empty when there was none).
        content_type: String,
        /// The start of the body.
        snippet: String,
    },

    /// A scraped page answered with an HTTP error status.
    #[error("{url} answered the scrape with HTTP {status}: {snippet:?}; {}", scrape_hint(*.status))]
    ScrapeRefused {
        /// The page asked, without its query string.
        url: String,
        /// The HTTP status code (400 or above).
        status: u16,
        /// The start of the body.
        snippet: String,
    },

    /// A scraped page is not in the Prometheus text exposition format.
    #[error(
        "{url} ({content_type}) is not in the Prometheus text exposition format: {source}; check \
         that the URL is a metrics page (usually /metrics)"
    )]
    Exposition {
        /// The page asked, without its query string.
        url: String,
        /// The answer's `Content-Type` header, as sent (empty when there was none).
        content_type: String,
        /// Which line does not parse, and why.
        #[source]
        source: crate::exposition::ParseError,
    },

    /// The answer looked like Prometheus JSON but could not be decoded.
    #[error("malformed Prometheus API response from {url}: {source}")]
    Decode {
        /// The URL asked, without its query string.
        url: String,
        /// What was wrong, and at which byte of the body.
        #[source]
        source: DecodeError,
    },

    /// The result was of another type than the call expects.
    #[error(
        "`{query}` gave a `{found}` result where a `{expected}` one was expected{}",
        result_type_hint(.expected, .found)
    )]
    UnexpectedResultType {
        /// The PromQL sent.
        query: String,
        /// The `resultType` the call needs (`matrix`, `vector`, ...).
        expected: &'static str,
        /// The `resultType` the server gave.
        found: String,
    },

    /// A sample's timestamp is not on the grid the range query asked for: outside its range
    /// (the message says the server answered what was not asked), or between its points (the
    /// server moved the grid).
    #[error("{}", off_grid_message(series, *timestamp_ms, *start_ms, *step_ms, *rows))]
    OffGrid {
        /// The series the sample belongs to.
        series: Labels,
        /// The sample's timestamp, unix milliseconds.
        timestamp_ms: i64,
        /// The grid's first timestamp, unix milliseconds.
        start_ms: i64,
        /// The grid's step, milliseconds.
        step_ms: i64,
        /// The number of grid points (rows) asked for.
        rows: usize,
    },

    /// One response held the same label set twice.
    #[error("the answer holds series {0} twice; the server's answer is inconsistent")]
    DuplicateSeries(Labels),

    /// Two series would be stored under one tutorial key (job, instance, name).
    #[error(
        "two series share the key {key}: {first} and {second}; they differ in labels the tutorial's \
         key drops. Use KeyMode::AllLabels to keep every label, or aggregate them in the query \
         (e.g. `sum without (...) (...)`)"
    )]
    KeyCollision {
        /// The shared key, as printed: `(job "...", instance "...", name "...")`.
        key: String,
        /// The first series with that key.
        first: Labels,
        /// The series that collided with it.
        second: Labels,
    },

    /// A remote-read answer could not be decoded (a frame's checksum, its protobuf, a chunk);
    /// nothing of it is returned.
    #[error("unusable remote-read answer from {url}: {source}")]
    RemoteRead {
        /// The URL asked.
        url: String,
        /// What is wrong with the answer.
        #[source]
        source: crate::remote_read::RemoteReadError,
    },

    /// The server refused a remote-read or export request, or does not serve that API.
    #[error(
        "{url} answered the {api} request for `{selector}` with HTTP {status}{attempts}: \
         {message:?}; {}",
        refused_hint(*.status, .message)
    )]
    Refused {
        /// The URL asked, without its query string.
        url: String,
        /// `remote read` or `export`.
        api: &'static str,
        /// The series selector asked for.
        selector: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the server's answer.
        message: String,
        /// How many times it was tried.
        attempts: Attempts,
    },

    /// Writing an export failed.
    #[error("writing {what}: {source}")]
    Export {
        /// What was being written (`CSV`, `an Arrow record batch`, ...).
        what: &'static str,
        /// The writer's error (an I/O, Arrow or Parquet error).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// Whether a later try of the same request may succeed: 502/503/504/429, time-outs, failed
    /// connections and answers cut short. Never a 400 or 422: the query itself is at fault.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { .. }
            | Error::Timeout { .. }
            | Error::Transport { .. }
            | Error::Truncated { .. } => true,
            Error::Api { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            Error::NotPrometheus { status, .. } | Error::Refused { status, .. } => {
                matches!(status, 429 | 502 | 503 | 504)
            }
            _ => false,
        }
    }

    pub(crate) fn with_attempts(mut self, n: u32) -> Error {
        match &mut self {
            Error::Connect { attempts, .. }
            | Error::Timeout { attempts, .. }
            | Error::Transport { attempts, .. }
            | Error::Truncated { attempts, .. }
            | Error::Api { attempts, .. }
            | Error::Refused { attempts, .. } => *attempts = Attempts(n),
            _ => {}
        }
        self
    }
}

fn api_hint(error_type: &str, status: u16) -> &'static str {
    match (error_type, status) {
        ("bad_data", _) => "fix the query or its parameters",
        ("timeout", _) => {
            "the server's query time-out fired: load a shorter range or a coarser step, or raise the server's --query.timeout"
        }
        ("canceled", _) => "the server cancelled the query; try again",
        ("unavailable", _) | (_, 503) => "the server is not ready; try again later",
        ("execution", _) | (_, 422) => {
            "the query failed while running (for example too many samples): narrow it, or load a shorter range"
        }
        _ => "see the server's message",
    }
}

fn refused_hint(status: u16, message: &str) -> &'static str {
    if crate::raw_path::unserved(status, message) {
        "this server does not serve it (Thanos Query and VictoriaMetrics have no remote read, \
         only VictoriaMetrics has /api/v1/export): load raw samples with Via::Auto (`--via auto`), \
         which finds the server's path by itself"
    } else if status >= 500 {
        "the server failed; try again later"
    } else {
        "check the selector (remote read and export take a plain series selector)"
    }
}

fn scrape_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => "check the credentials",
        404 => "check the path (metrics pages are usually at /metrics)",
        500.. => "the target failed; try again later",
        _ => "check the URL",
    }
}

/// The message of [`Error::OffGrid`]: a timestamp outside the asked range is the server's (or
/// its data's) doing, and says so; one between the grid's points is a moved grid.
fn off_grid_message(series: &Labels, t: i64, start: i64, step: i64, rows: usize) -> String {
    let end = start + (rows.max(1) as i64 - 1) * step;
    let grid = format!("start {start} ms, end {end} ms, step {step} ms, {rows} rows");
    if t < start || t > end {
        let (side, by) = if t > end {
            ("after the end", t - end)
        } else {
            ("before the start", start - t)
        };
        format!(
            "a sample of {series} at {t} ms is {} {side} of the requested range ({grid}); the \
             server answered a time the query did not ask for: check the server's answer and \
             what wrote that sample's timestamp",
            if by >= 86_400_000 {
                format!("{:.1} days", by as f64 / 86_400_000.0)
            } else {
                format!("{:.3} s", by as f64 / 1000.0)
            }
        )
    } else {
        format!(
            "a sample of {series} at {t} ms falls between the requested grid's points ({grid}); \
             the server moved the query's grid (VictoriaMetrics does when its cache answers, \
             unless `nocache=1` is sent, which this client does by default)"
        )
    }
}

fn result_type_hint(expected: &str, found: &str) -> &'static str {
    match (expected, found) {
        ("matrix", "vector") | ("matrix", "scalar") => {
            "; raw samples need a range selector, such as `metric[5m]`"
        }
        _ => "",
    }
}

/// How many times a request was tried; shown in messages when more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attempts(pub u32);

impl fmt::Display for Attempts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 > 1 {
            write!(f, " (after {} attempts)", self.0)?;
        }
        Ok(())
    }
}

/// Why a response body is not a well-formed Prometheus API answer, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at byte {offset}")]
pub struct DecodeError {
    /// Byte offset into the body.
    pub offset: u64,
    /// What was expected there, or what was wrong.
    pub message: String,
}

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
