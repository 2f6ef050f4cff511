//! The few Prometheus calls the testbed itself needs (instant queries, CoreDNS's metrics page),
//! made through the loader's [`Client`]: the loader is the only code that speaks HTTP to a
//! Prometheus API or a metrics page (ARCHITECTURE.md), so time-outs, proxies and error kinds are
//! one rule here too.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use promlearn_loader::Client;

use crate::{Result, ServerProcess, TestbedError};

/// One series of an instant-query answer: its labels and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels, `__name__` included when the result kept it; empty for a scalar.
    pub labels: BTreeMap<String, String>,
    /// The value at the query's evaluation time; `NaN` and infinities as Prometheus sent them.
    pub value: f64,
}

/// A client for a server the testbed started on the loopback interface: no proxy, no retries
/// (the testbed polls, and its next poll is the retry), a short time-out. `params` go with every
/// request (Thanos's `dedup=false`).
pub(crate) fn local_client(
    base_url: &str,
    timeout: Duration,
    params: &[(&str, &str)],
) -> Result<Client> {
    promlearn_loader::install_crypto_provider();
    let mut builder = Client::builder(base_url)
        .no_proxy()
        .retries(0)
        .timeout(timeout);
    for (name, value) in params {
        builder = builder.query_param(*name, *value);
    }
    builder.build().map_err(|e| TestbedError::Query {
        query: String::new(),
        detail: format!("no client for {base_url}: {e}"),
    })
}

/// Runs an instant query (at `time_ms`, or the server's now) and returns the vector it answers
/// (a scalar answers as one unlabelled sample).
pub(crate) async fn instant_query(
    client: &Client,
    query: &str,
    time_ms: Option<i64>,
) -> Result<Vec<Sample>> {
    let fail = |detail: String| TestbedError::Query {
        query: query.to_owned(),
        detail,
    };
    let answer = client
        .query(query, time_ms)
        .await
        .map_err(|e| fail(e.to_string()))?;
    match answer.result_type.as_str() {
        "vector" => Ok(answer
            .series
            .into_iter()
            .map(|series| Sample {
                labels: series
                    .labels
                    .iter()
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .collect(),
                value: series.values.first().copied().unwrap_or(f64::NAN),
            })
            .collect()),
        "scalar" => Ok(answer
            .scalar
            .map(|(_, value)| Sample {
                labels: BTreeMap::new(),
                value,
            })
            .into_iter()
            .collect()),
        other => Err(fail(format!("expected a vector or scalar, got {other}"))),
    }
}

/// Polls the query API of `process` (on loopback `port`) until it answers an instant query
/// (Prometheus refuses queries with 503 until it is ready, as `/-/ready` does), the process
/// exits, or `deadline` passes; `what` names the wait in the error.
pub(crate) async fn wait_until_answering(
    process: &mut ServerProcess,
    port: u16,
    what: &str,
    deadline: Instant,
) -> Result<()> {
    let started = Instant::now();
    let client = local_client(
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(10),
        &[],
    )?;
    loop {
        if let Some(status) = process.exit_status() {
            return Err(TestbedError::ServerExited {
                server: process.name(),
                status,
                log: process.last_log_lines(20),
            });
        }
        let detail = match instant_query(&client, "vector(1)", None).await {
            Ok(_) => return Ok(()),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(TestbedError::NotReady {
                what: what.to_owned(),
                timeout: started.elapsed(),
                detail,
                server: process.name(),
                log: process.last_log_lines(20),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
