//! The one place series come from for `train` and `detect`: [`load_series`].
//!
//! It speaks to the Prometheus HTTP API directly: the loader crate has no query client yet
//! (see the report of issue 7). When it has, only this function changes.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Result, anyhow, bail};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::conn::Http;
use crate::timeutil::format_duration;

/// One labelled series: sample times (unix seconds) and values, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub timestamps: Vec<f64>,
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
            .map(|(k, v)| format!("{k}=\"{}\"", crate::expo::escape(v)))
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

#[derive(Deserialize)]
struct Envelope {
    status: String,
    data: Option<Data>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct MatrixItem {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// Loads the series `query` selects over `range`.
pub async fn load_series(http: &Http, query: &str, range: &Range) -> Result<Vec<Series>> {
    if range.end <= range.start {
        bail!(
            "the range is empty: --start {} is not before --end {}",
            range.start.to_rfc3339(),
            range.end.to_rfc3339()
        );
    }
    let secs = |t: DateTime<Utc>| format!("{:.3}", t.timestamp_millis() as f64 / 1000.0);
    let (path, params) = match range.step {
        Some(step) => {
            if step.is_zero() {
                bail!("--step must be longer than 0s");
            }
            (
                "api/v1/query_range",
                vec![
                    ("query", query.to_owned()),
                    ("start", secs(range.start)),
                    ("end", secs(range.end)),
                    ("step", format!("{:.3}", step.as_secs_f64())),
                ],
            )
        }
        None => {
            let ms = (range.end - range.start).num_milliseconds().max(1);
            (
                "api/v1/query",
                vec![
                    ("query", format!("({query})[{ms}ms]")),
                    ("time", secs(range.end)),
                ],
            )
        }
    };
    let what = format!("Prometheus at {}", http.base);
    let url = http.url(path);
    tracing::info!(%url, query, ?range, "querying");
    let response = http
        .get(url)
        .query(&params)
        .send()
        .await
        .map_err(|e| http.describe(&what, &e))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| http.describe(&what, &e))?;
    let envelope = check_answer(&what, status, &body)?;
    for warning in &envelope.warnings {
        tracing::warn!("Prometheus warns: {warning}");
    }
    let data = envelope
        .data
        .ok_or_else(|| anyhow!("{what} answered success without data"))?;
    if data.result_type != "matrix" {
        bail!(
            "the query gives a {}, not series over time: give a PromQL expression that \
             selects series (e.g. rate(coredns_dns_requests_total[1m]))",
            data.result_type
        );
    }
    let items: Vec<MatrixItem> = serde_json::from_value(data.result)
        .map_err(|e| anyhow!("{what} answered a matrix this tool cannot read: {e}"))?;
    items
        .into_iter()
        .map(|item| {
            let mut timestamps = Vec::with_capacity(item.values.len());
            let mut values = Vec::with_capacity(item.values.len());
            for (t, v) in item.values {
                timestamps.push(t);
                values.push(
                    crate::expo::parse_value(&v)
                        .ok_or_else(|| anyhow!("{what} sent `{v}` as a sample value"))?,
                );
            }
            Ok(Series {
                labels: item.metric,
                timestamps,
                values,
            })
        })
        .collect()
}

/// Turns a Prometheus API answer into its envelope, or one line saying what went wrong.
fn check_answer(what: &str, status: reqwest::StatusCode, body: &[u8]) -> Result<Envelope> {
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        bail!(
            "{what} refused the request: HTTP {status}; check the credentials \
             (--basic-auth, --basic-auth-file, $PROMLEARN_BASIC_AUTH or --bearer-token-file)"
        );
    }
    let envelope: Option<Envelope> = serde_json::from_slice(body).ok();
    match envelope {
        Some(e) if e.status == "success" && status.is_success() => Ok(e),
        Some(e) => {
            let kind = e.error_type.unwrap_or_else(|| "error".into());
            let message = e.error.unwrap_or_default().replace('\n', " ");
            if kind == "bad_data" {
                bail!("Prometheus rejected the query: {message}");
            }
            bail!("{what} answered HTTP {status} ({kind}): {message}")
        }
        None => {
            let snippet: String = String::from_utf8_lossy(&body[..body.len().min(120)])
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            bail!(
                "{what} answered HTTP {status} with something that is not a Prometheus API \
                 answer ({snippet}); is --endpoint the Prometheus base URL?"
            )
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
