//! The one place series come from for `train` and `detect`: [`load_series`], on the loader
//! crate's client.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Result, anyhow};
use chrono::{DateTime, Utc};
use promlearn_loader::{Client, Error as LoaderError, RangeQuery};

use crate::conn::{Auth, ConnArgs, HttpArgs};
use crate::timeutil::format_duration;

/// One labelled series: sample times (unix milliseconds, as at every API edge) and values,
/// oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub timestamps_ms: Vec<i64>,
    pub values: Vec<f64>,
}

impl Series {
    /// `name{a="b",...}` as PromQL would select it.
    pub fn selector(&self) -> String {
        let name = self.labels.get("__name__").cloned().unwrap_or_default();
        let rest: Vec<String> = self
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "__name__")
            .map(|(k, v)| format!("{k}=\"{}\"", promlearn_loader::exposition::escape(v)))
            .collect();
        format!("{name}{{{}}}", rest.join(","))
    }
}

/// What to load: a range at a step, or raw samples.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `None`: raw samples as stored (the query must be a series selector).
    pub step: Option<Duration>,
}

/// A loader client for the connection flags (the loader crate's, with its retries, chunking
/// and secret handling).
pub fn client(conn: &ConnArgs) -> Result<Client> {
    client_for(conn.endpoint.trim(), &conn.http)
}

/// A loader client for `endpoint` with the auth, TLS and time-out flags: the one HTTP client of
/// every command, `scrape` included.
pub fn client_for(endpoint: &str, http: &HttpArgs) -> Result<Client> {
    let mut builder = Client::builder(endpoint)
        .danger_accept_invalid_certs(http.insecure)
        .timeout(http.timeout)
        .connect_timeout(http.timeout.min(Duration::from_secs(10)));
    match http.auth()? {
        Some(Auth::Basic { user, password }) => {
            builder = builder.basic_auth(user, password.expose());
        }
        Some(Auth::Bearer(token)) => builder = builder.bearer_token(token.expose()),
        None => {}
    }
    for (name, value) in http.header_pairs()? {
        builder = builder.header(name, value.expose());
    }
    if let Some(path) = &http.ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| anyhow!("cannot read --ca-cert {}: {}", path.display(), e.kind()))?;
        builder = builder.ca_certificate_pem(pem);
    }
    builder.build().map_err(explain)
}

/// One line for a loader error, in the words the rest of the CLI uses.
pub fn explain(e: LoaderError) -> anyhow::Error {
    match &e {
        LoaderError::Connect {
            endpoint, source, ..
        } => anyhow!("cannot connect to {endpoint}: {}", root_cause(source)),
        LoaderError::Transport {
            endpoint, source, ..
        } => anyhow!(
            "the connection to {endpoint} failed: {}",
            root_cause(source)
        ),
        LoaderError::Tls { endpoint, reason } => anyhow!(
            "the TLS certificate of {endpoint} is not trusted: {reason}; trust its CA with \
             --ca-cert FILE (or skip the check with --insecure, for tests only)"
        ),
        LoaderError::NotPrometheus {
            status: status @ (401 | 403),
            url,
            ..
        }
        | LoaderError::ScrapeRefused {
            status: status @ (401 | 403),
            url,
            ..
        } => anyhow!(
            "{url} refused the request: HTTP {status} {}; check the credentials \
             (--basic-auth, --basic-auth-file, $PROMLEARN_BASIC_AUTH or --bearer-token-file)",
            if *status == 401 {
                "Unauthorized"
            } else {
                "Forbidden"
            }
        ),
        _ => anyhow::Error::new(e),
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

fn to_series(labels: &promlearn_loader::Labels, timestamps_ms: &[i64], values: &[f64]) -> Series {
    Series {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        timestamps_ms: timestamps_ms.to_vec(),
        values: values.to_vec(),
    }
}

/// Loads the series `query` selects over `range`, through the loader crate. Missing samples are
/// NaN.
pub async fn load_series(client: &Client, query: &str, range: &Range) -> Result<Vec<Series>> {
    let (start, end) = (range.start.timestamp_millis(), range.end.timestamp_millis());
    tracing::info!(endpoint = client.endpoint(), query, ?range, "loading");
    match range.step {
        Some(step) => {
            let q = RangeQuery::new(query, start, end, step).map_err(explain)?;
            let m = client.query_range(&q).await.map_err(explain)?;
            for warning in m.warnings() {
                tracing::warn!("the server says: {warning}");
            }
            Ok((0..m.n_series())
                .map(|s| to_series(&m.series()[s], m.timestamps(), m.column(s)))
                .collect())
        }
        None => {
            let raw = client.query_raw(query, start, end).await.map_err(explain)?;
            Ok(raw
                .series
                .iter()
                .map(|s| to_series(&s.labels, &s.timestamps, &s.values))
                .collect())
        }
    }
}

/// Describes a range for messages.
pub fn describe_range(range: &Range) -> String {
    let span = (range.end - range.start).to_std().unwrap_or_default();
    match range.step {
        Some(step) => format!(
            "{} at step {} ending {}",
            format_duration(span),
            format_duration(step),
            crate::timeutil::rfc3339(range.end)
        ),
        None => format!(
            "{} of raw samples ending {}",
            format_duration(span),
            crate::timeutil::rfc3339(range.end)
        ),
    }
}
