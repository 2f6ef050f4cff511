//! The HTTP client: authentication, TLS, time-outs, retries, chunked and concurrent loading.
//! Its configuration is [`builder`]; raw samples by instant queries, [`raw`].

mod builder;
mod raw;
#[cfg(test)]
mod tests;

pub use builder::{ClientBuilder, install_crypto_provider};
pub use raw::RawSeries;

use std::{fmt, sync::Arc, time::Duration};

use backon::ExponentialBuilder;
use futures_util::{Stream, StreamExt, future, stream};
use reqwest::{
    Url,
    header::{HeaderName, HeaderValue},
};

use crate::{
    Error, Matrix, RangeQuery, Result,
    decode::{Answer, Collect, Context, Decoder, Envelope, Sink},
    error::Attempts,
    matrix::{Assembler, RangeSink},
    query::{plan_parts, seconds},
};

/// A credential kept out of `Debug` output and error messages.
#[derive(Clone)]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Auth {
    None,
    Basic {
        user: String,
        password: Option<Secret>,
    },
    Bearer(Secret),
}

/// How a load is going, reported after each chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Requests (chunks of the range) answered and decoded so far.
    pub chunks_done: usize,
    /// Requests the load is split into (see [`Client::plan`]); fixed for one load.
    pub chunks_total: usize,
    /// Samples decoded so far.
    pub samples: u64,
}

/// A Prometheus-API client: Prometheus, Thanos, Mimir (with its path prefix), VictoriaMetrics.
/// Cheap to clone; clones share connections.
///
/// ```no_run
/// # async fn demo() -> promlearn_loader::Result<()> {
/// use std::time::Duration;
/// use promlearn_loader::{Client, RangeQuery};
///
/// let client = Client::builder("https://prometheus.example.com")
///     .bearer_token("...")
///     .timeout(Duration::from_secs(30))
///     .build()?;
/// let now = chrono::Utc::now().timestamp_millis();
/// let q = RangeQuery::new("rate(node_cpu_seconds_total[1m])", now - 86_400_000, now, Duration::from_secs(15))?;
/// let matrix = client.query_range(&q).await?; // chunked, fetched concurrently, aligned
/// println!("{} timestamps x {} series", matrix.n_rows(), matrix.n_series());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: Url,
    pub(crate) shown: String,
    pub(crate) auth: Auth,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    pub(crate) backoff: ExponentialBuilder,
    pub(crate) concurrency: usize,
    max_points: usize,
    min_points: usize,
    pub(crate) raw_chunk_ms: i64,
    params: Vec<(String, String)>,
    /// Which raw-sample path this server offers, once a load has found out (`raw_path.rs`).
    pub(crate) raw_path: crate::raw_path::Known,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Client")
            .field("endpoint", &i.shown)
            .field("auth", &i.auth)
            .field(
                "headers",
                &i.headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &i.timeout)
            .field("concurrency", &i.concurrency)
            .field("max_points_per_request", &i.max_points)
            .field("params", &i.params)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client with default settings for the server at `endpoint` (its base URL, e.g.
    /// `http://localhost:9090`; for Mimir or a proxy, include the path prefix).
    pub fn new(endpoint: &str) -> Result<Client> {
        Client::builder(endpoint).build()
    }

    /// A [`ClientBuilder`] for the server at `endpoint` (as for [`Client::new`]), to change
    /// time-outs, retries, auth, TLS or chunking before [`ClientBuilder::build`].
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(endpoint.into())
    }

    /// The endpoint as shown in messages (no credentials).
    pub fn endpoint(&self) -> &str {
        &self.inner.shown
    }

    /// The requests [`Client::query_range`] makes for `query`, in time order.
    pub fn plan(&self, query: &RangeQuery) -> Vec<RangeQuery> {
        let i = &self.inner;
        query.split(plan_parts(
            query.points(),
            i.max_points,
            i.concurrency,
            i.min_points,
        ))
    }

    /// The full URL of one `query_range` request (no credentials: those travel in headers).
    pub fn range_url(&self, query: &RangeQuery) -> Url {
        self.url("api/v1/query_range", &query.params())
    }

    pub(crate) fn url(&self, path: &str, params: &[(&str, String)]) -> Url {
        let mut url = self.inner.base.join(path).expect("a relative path joins");
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in params {
                pairs.append_pair(k, v);
            }
            for (k, v) in &self.inner.params {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    /// Loads a range query into one aligned matrix: cut into requests under the server's point
    /// limit, fetched `concurrency` at a time, decoded as they arrive. On any failure (after
    /// retries) the whole load fails: no partial matrix is returned.
    pub async fn query_range(&self, query: &RangeQuery) -> Result<Matrix> {
        self.query_range_with_progress(query, |_| {}).await
    }

    /// As [`Client::query_range`], calling `on_chunk` after each request's answer is decoded.
    pub async fn query_range_with_progress(
        &self,
        query: &RangeQuery,
        mut on_chunk: impl FnMut(&Progress),
    ) -> Result<Matrix> {
        let plan = self.plan(query);
        let mut progress = Progress {
            chunks_total: plan.len(),
            ..Progress::default()
        };
        let mut assembler = Assembler::new(query.timestamps());
        let step = query.step_ms;
        let origin = query.start_ms;
        // Each request is its own task, so that the runtime's threads read and decode the
        // answers side by side: polled in this one task, a request waits unread while another is
        // decoded, and the server stalls on its full socket. Tasks still running when the load
        // is dropped or fails are aborted.
        let mut fetches = stream::iter(plan)
            .map(|chunk| {
                let client = self.clone();
                let task = Spawned(tokio::spawn(async move {
                    let (envelope, sink) = client.fetch_range(&chunk).await?;
                    let offset = ((chunk.start_ms - origin) / step) as usize;
                    Ok::<_, Error>((offset, envelope, sink))
                }));
                async move { task.join().await }
            })
            .buffer_unordered(self.inner.concurrency);
        let mut infos = Vec::new();
        while let Some(done) = fetches.next().await {
            let (offset, envelope, sink) = done?;
            progress.samples += envelope.points;
            progress.chunks_done += 1;
            assembler.merge(offset, sink, envelope.warnings);
            infos.extend(envelope.infos);
            on_chunk(&progress);
        }
        let mut matrix = assembler.finish();
        matrix.push_infos(infos);
        for warning in matrix.warnings() {
            tracing::warn!(endpoint = %self.inner.shown, query = %query.query, "server warning: {warning}");
        }
        for info in matrix.infos() {
            tracing::info!(endpoint = %self.inner.shown, query = %query.query, "server info: {info}");
        }
        Ok(matrix)
    }

    /// The same requests as [`Client::query_range`], yielded chunk by chunk in time order (each
    /// chunk a matrix of its own rows and series), with at most `concurrency` chunks in memory.
    /// After an error the stream ends.
    pub fn query_range_chunks(
        &self,
        query: &RangeQuery,
    ) -> impl Stream<Item = Result<Matrix>> + Send + '_ {
        stream::iter(self.plan(query))
            .map(move |chunk| async move {
                let (envelope, sink) = self.fetch_range(&chunk).await?;
                let mut matrix = sink.into_matrix(envelope.warnings);
                matrix.push_infos(envelope.infos);
                Ok(matrix)
            })
            .buffered(self.inner.concurrency)
            .scan(false, |failed, item: Result<Matrix>| {
                if *failed {
                    return future::ready(None);
                }
                *failed = item.is_err();
                future::ready(Some(item))
            })
    }

    async fn fetch_range(&self, chunk: &RangeQuery) -> Result<(Envelope, RangeSink)> {
        let (envelope, sink) = self
            .fetch("api/v1/query_range", &chunk.params(), &chunk.query, || {
                RangeSink::new(chunk.start_ms, chunk.step_ms, chunk.points())
            })
            .await?;
        expect_type(&chunk.query, &envelope, "matrix")?;
        Ok((envelope, sink))
    }

    /// One instant query (`/api/v1/query`) at `time_ms` (default: the server's now), any result
    /// type.
    pub async fn query(&self, query: &str, time_ms: Option<i64>) -> Result<Answer> {
        let mut params = vec![("query", query.to_owned())];
        if let Some(t) = time_ms {
            params.push(("time", seconds(t)));
        }
        let (envelope, collect) = self
            .fetch("api/v1/query", &params, query, Collect::default)
            .await?;
        Ok(Answer {
            result_type: envelope.result_type.unwrap_or_default(),
            series: collect.series,
            scalar: envelope.scalar,
            string: envelope.string,
            warnings: envelope.warnings,
            infos: envelope.infos,
        })
    }

    /// One request, retried as configured, its answer decoded into a fresh sink each try.
    async fn fetch<S: Sink>(
        &self,
        path: &str,
        params: &[(&str, String)],
        query: &str,
        mut sink: impl FnMut() -> S,
    ) -> Result<(Envelope, S)> {
        self.retried(|| self.fetch_once(path, params, query, sink()))
            .await
    }

    async fn fetch_once<S: Sink>(
        &self,
        path: &str,
        params: &[(&str, String)],
        query: &str,
        sink: S,
    ) -> Result<(Envelope, S)> {
        {
            let url = self.url(path, params);
            let mut shown_url = url.clone();
            shown_url.set_query(None);
            let request = self.authorize(self.inner.http.get(url));
            let mut response = request.send().await.map_err(|e| self.transport(e))?;
            let http_status = response.status().as_u16();
            let content_type = crate::request::content_type(&response);
            let mut decoder = Decoder::new(sink);
            let mut head = Vec::new();
            let mut failure = None;
            loop {
                match response.chunk().await {
                    Ok(Some(bytes)) => {
                        if head.len() < 512 {
                            head.extend_from_slice(&bytes[..bytes.len().min(512 - head.len())]);
                        }
                        if let Err(e) = decoder.feed(&bytes) {
                            failure = Some(e);
                            break;
                        }
                    }
                    Ok(None) => break,
                    // A body cut off mid-way (server stopped, connection reset): retryable.
                    Err(e) => return Err(self.transport(e)),
                }
            }
            let outcome = match failure {
                Some(e) => Err(e),
                None => decoder.finish(),
            };
            Context {
                endpoint: &self.inner.shown,
                url: shown_url.as_str(),
                query,
                http_status,
                content_type: &content_type,
            }
            .conclude(outcome, &head)
        }
    }

    pub(crate) fn transport(&self, e: reqwest::Error) -> Error {
        let endpoint = self.inner.shown.clone();
        let attempts = Attempts(1);
        if let Some(reason) = certificate_problem(&e) {
            Error::Tls { endpoint, reason }
        } else if e.is_timeout() {
            Error::Timeout {
                endpoint,
                timeout: self.inner.timeout,
                attempts,
            }
        } else if e.is_connect() {
            Error::Connect {
                endpoint,
                attempts,
                source: crate::error::HttpError::new(e),
            }
        } else {
            Error::Transport {
                endpoint,
                attempts,
                source: crate::error::HttpError::new(e),
            }
        }
    }
}

/// The certificate error inside a failed request, if that is why it failed.
fn certificate_problem(e: &reqwest::Error) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(rustls::Error::InvalidCertificate(reason)) = err.downcast_ref::<rustls::Error>()
        {
            use rustls::CertificateError as C;
            return Some(match reason {
                C::UnknownIssuer => "it is signed by a CA this client does not know".into(),
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "it is issued for another host name".into()
                }
                C::Expired | C::ExpiredContext { .. } => "it has expired".into(),
                C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".into(),
                C::BadSignature => {
                    "its signature does not verify against the trusted CA (a CA of that name, \
                     but not the key that signed it)"
                        .into()
                }
                other => format!("{other:?}"),
            });
        }
        // io::Error's `source` skips the error it wraps (rustls' errors come wrapped in one or
        // two of them), so step into it instead.
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

fn expect_type(query: &str, envelope: &Envelope, expected: &'static str) -> Result<()> {
    match envelope.result_type.as_deref() {
        Some(found) if found != expected => Err(Error::UnexpectedResultType {
            query: query.to_owned(),
            expected,
            found: found.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// A spawned request, aborted when dropped before it finished.
struct Spawned<T>(tokio::task::JoinHandle<T>);

impl<T> Spawned<T> {
    async fn join(mut self) -> T {
        match (&mut self.0).await {
            Ok(done) => done,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a load's request task was cancelled: {e}"),
        }
    }
}

impl<T> Drop for Spawned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
