//! The few Prometheus API calls the testbed itself needs: readiness and instant queries.
//! (The full client is the loader crate; the testbed stays free of it.)

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{Result, TestbedError};

/// One series of an instant-query answer: its labels and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels, `__name__` included when the result kept it; empty for a scalar.
    pub labels: BTreeMap<String, String>,
    /// The value at the query's evaluation time; `NaN` and infinities as Prometheus sent them.
    pub value: f64,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    data: Option<Data>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// Runs an instant query and returns the vector it answers (a scalar answers as one unlabelled sample).
pub async fn instant_query(
    client: &reqwest::Client,
    base_url: &str,
    query: &str,
) -> Result<Vec<Sample>> {
    let fail = |detail: String| TestbedError::Query {
        query: query.to_owned(),
        detail,
    };
    let response = client
        .get(format!("{base_url}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .map_err(|e| fail(format!("request to {base_url} failed: {e}")))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| fail(e.to_string()))?;
    let envelope: Envelope = serde_json::from_str(&body).map_err(|e| {
        fail(format!(
            "HTTP {status}, not a Prometheus API answer ({e}): {body:.200}"
        ))
    })?;
    if envelope.status != "success" {
        return Err(fail(envelope.error.unwrap_or(body)));
    }
    let data = envelope
        .data
        .ok_or_else(|| fail("answer has no data".into()))?;
    let parse = |s: &str| {
        s.parse::<f64>()
            .map_err(|e| fail(format!("value {s:?}: {e}")))
    };
    match data.result_type.as_str() {
        "vector" => {
            let items: Vec<VectorItem> =
                serde_json::from_value(data.result).map_err(|e| fail(e.to_string()))?;
            items
                .into_iter()
                .map(|item| {
                    Ok(Sample {
                        labels: item.metric,
                        value: parse(&item.value.1)?,
                    })
                })
                .collect()
        }
        "scalar" => {
            let (_, value): (f64, String) =
                serde_json::from_value(data.result).map_err(|e| fail(e.to_string()))?;
            Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: parse(&value)?,
            }])
        }
        other => Err(fail(format!("expected a vector or scalar, got {other}"))),
    }
}
