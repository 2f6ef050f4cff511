//! Prometheus as the source: the client built from the configuration, one `query_range` per
//! tick on the query's step grid (the live service), or the whole history of a backtest's range
//! in one chunked load.

use std::{path::PathBuf, time::Duration};

use promlearn_loader::{Client, Matrix, RangeQuery};

use super::{FetchError, MemorySource, SeriesData};
use crate::{Config, Error, QueryConfig, Result, series::ErrorKind};

/// The client for the configuration's endpoint, with its credentials read from their files.
pub(crate) fn build_client(config: &Config) -> Result<Client> {
    let read = |what: &'static str, path: &PathBuf| {
        std::fs::read(path).map_err(|source| Error::ReadSecret {
            what,
            path: path.clone(),
            source,
        })
    };
    // Passwords and tokens by the one rule every program reads them with.
    let secret = |what: &'static str, path: &PathBuf| {
        promlearn_loader::read_secret_file(path).map_err(|source| Error::Secret { what, source })
    };
    // Each call is bounded by its own deadline (infer_every, or the fit's); the client's own
    // time-out only has to be the longest of them.
    let longest = config
        .queries
        .iter()
        .map(QueryConfig::fit_deadline)
        .max()
        .unwrap_or(Duration::from_secs(60));
    let mut builder = Client::builder(config.endpoint.clone())
        .timeout(longest)
        .connect_timeout(Duration::from_secs(2))
        .retries(1)
        .retry_delays(Duration::from_millis(50), Duration::from_millis(200));
    let auth = &config.auth;
    if let Some(basic) = &auth.basic_auth {
        let password = secret("basic_auth.password_file", &basic.password_file)?;
        builder = builder.basic_auth(basic.user.clone(), password);
    }
    if let Some(path) = &auth.bearer_token_file {
        builder = builder.bearer_token(secret("bearer_token_file", path)?);
    }
    if let Some(path) = &auth.ca_cert {
        builder = builder.ca_certificate_pem(read("ca_cert", path)?);
    }
    Ok(builder.build()?)
}

fn error_kind(e: &promlearn_loader::Error) -> ErrorKind {
    match e {
        promlearn_loader::Error::Timeout { .. } => ErrorKind::Timeout,
        _ => ErrorKind::QueryFailed,
    }
}

/// The last `points` steps of the query's grid at or before `now_ms`, with a deadline.
pub(super) async fn fetch(
    client: &Client,
    query: &QueryConfig,
    now_ms: i64,
    points: usize,
    deadline: Duration,
) -> Result<Vec<SeriesData>, FetchError> {
    let step = query.step_ms();
    let end = now_ms.div_euclid(step) * step;
    let start = end - (points.max(1) as i64 - 1) * step;
    let range = RangeQuery::new(query.expr.clone(), start, end, query.step)
        .map_err(|e| (ErrorKind::QueryFailed, e.to_string()))?;
    match tokio::time::timeout(deadline, client.query_range(&range)).await {
        Err(_) => Err((
            ErrorKind::Timeout,
            format!("no answer within {}", promlearn_duration::format(deadline)),
        )),
        Ok(Err(e)) => Err((error_kind(&e), e.to_string())),
        // A pass over every sample (100,000 series at a time): not on an async thread.
        Ok(Ok(matrix)) => tokio::task::spawn_blocking(move || series_of(matrix))
            .await
            .map_err(|e| {
                (
                    ErrorKind::QueryFailed,
                    format!("reading the answer failed: {e}"),
                )
            }),
    }
}

/// Every series of `matrix` with the steps it has a sample at, its labels moved, not copied.
fn series_of(matrix: Matrix) -> Vec<SeriesData> {
    matrix
        .into_series()
        .into_iter()
        .map(|s| SeriesData {
            labels: s.labels,
            timestamps: s.timestamps,
            values: s.values,
        })
        .collect()
}

/// What a backtest of `[from_ms, to_ms]` needs from Prometheus, per query: its step grid from a
/// fit window (or the inference's context, if longer) before `from_ms` up to `to_ms`, loaded
/// once (chunked by the loader), so that the replay runs at the CPU's pace. The grid is the one
/// the service reads (multiples of the step), so every tick sees the values it would have seen.
pub(crate) async fn load_history(
    config: &Config,
    from_ms: i64,
    to_ms: i64,
) -> Result<MemorySource> {
    let client = build_client(config)?;
    let mut source = MemorySource::default();
    for query in &config.queries {
        let step = query.step_ms();
        let before =
            (query.fit_window.as_millis() as i64).max((query.infer_points() as i64 + 1) * step);
        let start = (from_ms - before).div_euclid(step) * step;
        let end = to_ms.div_euclid(step) * step;
        let load = |source| Error::Load {
            query: query.name.clone(),
            source: Box::new(source),
        };
        let range =
            RangeQuery::new(query.expr.clone(), start, end.max(start), query.step).map_err(load)?;
        let matrix = client.query_range(&range).await.map_err(load)?;
        let series = series_of(matrix)
            .into_iter()
            .map(|s| (s.labels, s.timestamps, s.values))
            .collect();
        source = source.with_query(&query.name, series)?;
    }
    Ok(source)
}
