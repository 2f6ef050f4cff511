//! The HTTP client: authentication, TLS, time-outs, retries, chunked and concurrent loading.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use backon::{ExponentialBuilder, Retryable};
use futures_util::{Stream, StreamExt, future, stream};
use reqwest::{
    Url,
    header::{CONTENT_TYPE, HeaderName, HeaderValue},
};

use crate::{
    Error, Labels, Matrix, RangeQuery, Result,
    decode::{Answer, Collect, Context, Decoder, Envelope, Series, Sink},
    error::Attempts,
    matrix::{Assembler, RangeSink},
    query::{PROMETHEUS_MAX_POINTS, plan_parts, seconds},
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

/// Raw samples as stored, per series (from [`Client::query_raw`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawSeries {
    /// Series sorted by labels, samples ascending in time.
    pub series: Vec<Series>,
    /// The servers' warnings over all requests, each once, in the order first seen.
    pub warnings: Vec<String>,
}

impl RawSeries {
    /// Aligns the series on the union of their timestamps; a series without a sample at one of
    /// them has a missing cell there.
    pub fn to_matrix(&self) -> Matrix {
        let mut timestamps: Vec<i64> = self
            .series
            .iter()
            .flat_map(|s| s.timestamps.iter().copied())
            .collect();
        timestamps.sort_unstable();
        timestamps.dedup();
        let columns = self
            .series
            .iter()
            .map(|s| {
                let mut column = vec![None; timestamps.len()];
                let mut row = 0;
                for (t, v) in s.timestamps.iter().zip(&s.values) {
                    while timestamps[row] < *t {
                        row += 1;
                    }
                    column[row] = Some(*v);
                }
                column
            })
            .collect();
        let mut m = Matrix::from_columns(
            timestamps,
            self.series.iter().map(|s| s.labels.clone()).collect(),
            columns,
        );
        m.push_warnings(self.warnings.iter().cloned());
        m
    }

    /// Samples in all series.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.values.len()).sum()
    }
}

/// Configures a [`Client`]. Every setting has a default; see each method.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoint: String,
    auth: Auth,
    headers: Vec<(String, Secret)>,
    ca_pem: Vec<Vec<u8>>,
    timeout: Duration,
    connect_timeout: Duration,
    retries: usize,
    retry_min: Duration,
    retry_max: Duration,
    concurrency: usize,
    max_points: usize,
    min_points: usize,
    raw_chunk: Duration,
    params: Vec<(String, String)>,
    no_proxy: bool,
    accept_invalid_certs: bool,
}

impl ClientBuilder {
    /// HTTP basic authentication. (Credentials in the endpoint URL, `http://user:pass@host`,
    /// are taken as basic authentication too, and removed from the URL shown in messages.)
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Auth::Basic {
            user: user.into(),
            password: Some(Secret(password.into())),
        };
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Bearer(Secret(token.into()));
        self
    }

    /// An extra header on every request (e.g. Mimir's `X-Scope-OrgID`). Its value is treated as
    /// a secret: never shown in `Debug` output or errors.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), Secret(value.into())));
        self
    }

    /// Trust only the CA certificate(s) in this PEM (for a server with a private CA or a
    /// self-signed certificate). May be called more than once.
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem.push(pem.into());
        self
    }

    /// Accepts any TLS certificate, even an expired or self-signed one for another host. For
    /// tests only: it gives up the protection TLS exists for. Prefer
    /// [`ClientBuilder::ca_certificate_pem`] with the server's CA.
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.accept_invalid_certs = accept;
        self
    }

    /// Time-out of each request, from sending it to the end of its answer. Default 60 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time-out for making a connection. Default 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Further tries of a request that failed in a way that may pass (HTTP 502/503/504/429,
    /// time-outs, refused or reset connections, answers cut short). Never on 400 or 422.
    /// Default 3; 0 disables retries.
    pub fn retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }

    /// The exponential back-off between tries (with jitter). Default 100 ms doubling up to 2 s.
    pub fn retry_delays(mut self, first: Duration, max: Duration) -> Self {
        self.retry_min = first;
        self.retry_max = max;
        self
    }

    /// Requests in flight at once while loading a long range. Default 4.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// The most points per series in one `query_range` request. Default 11,000, Prometheus's
    /// limit; lower it for servers with a lower one.
    pub fn max_points_per_request(mut self, points: usize) -> Self {
        self.max_points = points.max(1);
        self
    }

    /// Ranges of at least `concurrency` x this many points are cut into at least `concurrency`
    /// requests, so that the server computes some while others are decoded. Default 1,000.
    pub fn min_points_per_request(mut self, points: usize) -> Self {
        self.min_points = points.max(1);
        self
    }

    /// The time span of each request in [`Client::query_raw`]. Default 1 hour.
    pub fn raw_chunk(mut self, span: Duration) -> Self {
        self.raw_chunk = span.max(Duration::from_millis(1));
        self
    }

    /// An extra query parameter on every query request. `nocache=1` is sent by default:
    /// VictoriaMetrics otherwise moves a range query's grid to cache it; other servers ignore it.
    pub fn query_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// Sends no default query parameters (not even `nocache=1`).
    pub fn without_default_params(mut self) -> Self {
        self.params.clear();
        self
    }

    /// Ignores proxy settings from the environment (`HTTP_PROXY`, ...).
    pub fn no_proxy(mut self) -> Self {
        self.no_proxy = true;
        self
    }

    /// Checks the settings and makes the client; nothing is sent yet. Fails with
    /// [`Error::InvalidEndpoint`] (not an http(s) URL) or [`Error::InvalidConfig`] (a bad
    /// header, unusable CA PEM).
    pub fn build(self) -> Result<Client> {
        let invalid = |reason: String| Error::InvalidEndpoint {
            endpoint: redact_userinfo(&self.endpoint),
            reason,
        };
        let mut base = Url::parse(&self.endpoint).map_err(|e| {
            invalid(format!(
                "{e}; give the server's base URL, e.g. http://localhost:9090"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https".into()));
        }
        let mut auth = self.auth.clone();
        if !base.username().is_empty() {
            if matches!(auth, Auth::None) {
                auth = Auth::Basic {
                    user: percent_decode(base.username()),
                    password: base.password().map(|p| Secret(percent_decode(p))),
                };
            }
            base.set_username("").ok();
            base.set_password(None).ok();
        }
        base.set_query(None);
        base.set_fragment(None);
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| Error::InvalidConfig(format!("header name `{name}`: {e}")))?;
            let mut value = HeaderValue::from_str(&value.0).map_err(|_| {
                Error::InvalidConfig(format!(
                    "the value of header `{name}` has characters a header cannot hold"
                ))
            })?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        install_crypto_provider();
        let mut http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(self.concurrency.max(4))
            .user_agent(concat!("promlearn-loader/", env!("CARGO_PKG_VERSION")));
        if self.no_proxy {
            http = http.no_proxy();
        }
        if self.accept_invalid_certs {
            tracing::warn!("TLS certificates are not verified (danger_accept_invalid_certs)");
            http = http.tls_danger_accept_invalid_certs(true);
        }
        if !self.ca_pem.is_empty() {
            let mut certs = Vec::new();
            for pem in &self.ca_pem {
                certs.extend(reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                    Error::InvalidConfig(format!("the CA certificate is not usable PEM: {e}"))
                })?);
            }
            if certs.is_empty() {
                return Err(Error::InvalidConfig(
                    "the CA certificate PEM holds no certificate".into(),
                ));
            }
            http = http.tls_certs_only(certs);
        }
        let http = http
            .build()
            .map_err(|e| Error::InvalidConfig(format!("the HTTP client: {e}")))?;
        let mut shown = base.to_string();
        if shown.ends_with('/') && base.path() == "/" {
            shown.pop();
        }
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                shown,
                auth,
                headers,
                timeout: self.timeout,
                backoff: ExponentialBuilder::default()
                    .with_min_delay(self.retry_min)
                    .with_max_delay(self.retry_max)
                    .with_max_times(self.retries)
                    .with_jitter(),
                concurrency: self.concurrency,
                max_points: self.max_points,
                min_points: self.min_points,
                raw_chunk_ms: i64::try_from(self.raw_chunk.as_millis()).unwrap_or(i64::MAX),
                params: self.params,
                raw_path: Default::default(),
            }),
        })
    }
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
        ClientBuilder {
            endpoint: endpoint.into(),
            auth: Auth::None,
            headers: Vec::new(),
            ca_pem: Vec::new(),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            retries: 3,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            concurrency: 4,
            max_points: PROMETHEUS_MAX_POINTS,
            min_points: 1_000,
            raw_chunk: Duration::from_secs(3600),
            params: vec![("nocache".into(), "1".into())],
            no_proxy: false,
            accept_invalid_certs: false,
        }
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
        let mut fetches = stream::iter(plan)
            .map(|chunk| async move {
                let (envelope, sink) = self.fetch_range(&chunk).await?;
                let offset = ((chunk.start_ms - origin) / step) as usize;
                Ok::<_, Error>((offset, envelope, sink))
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

    /// Raw samples as stored, between `start_ms` and `end_ms` inclusive, of the series `selector`
    /// picks (a plain selector such as `up{job="coredns"}`): it asks for `selector[<span>]` with
    /// instant queries, one per [`ClientBuilder::raw_chunk`] span, keeping each sample once.
    pub async fn query_raw(&self, selector: &str, start_ms: i64, end_ms: i64) -> Result<RawSeries> {
        if end_ms < start_ms {
            return Err(Error::InvalidArgument(format!(
                "the range ends ({end_ms} ms) before it starts ({start_ms} ms)"
            )));
        }
        let span = self.inner.raw_chunk_ms;
        let mut windows = Vec::new();
        let mut lo = start_ms;
        loop {
            let hi = lo.saturating_add(span - 1).min(end_ms);
            windows.push((lo, hi));
            if hi >= end_ms {
                break;
            }
            lo = hi + 1;
        }
        let mut fetches = stream::iter(windows)
            .map(|(lo, hi)| async move {
                // Prometheus 2 includes both ends of `[d]`, Prometheus 3 and VictoriaMetrics
                // only the right one: ask one millisecond wider and keep [lo, hi].
                let query = format!("{selector}[{}ms]", hi - lo + 1);
                let params = [("query", query.clone()), ("time", seconds(hi))];
                let (envelope, sink) = self
                    .fetch("api/v1/query", &params, &query, || Window {
                        lo,
                        hi,
                        collect: Collect::default(),
                    })
                    .await?;
                expect_type(&query, &envelope, "matrix")?;
                Ok::<_, Error>((envelope, sink.collect))
            })
            .buffered(self.inner.concurrency);
        let mut by_labels: HashMap<Labels, Series> = HashMap::new();
        let mut warnings = Vec::new();
        while let Some(done) = fetches.next().await {
            let (envelope, collect) = done?;
            for w in envelope.warnings {
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
            for s in collect.series {
                let entry = by_labels.entry(s.labels.clone()).or_insert_with(|| Series {
                    labels: s.labels.clone(),
                    ..Series::default()
                });
                entry.timestamps.extend_from_slice(&s.timestamps);
                entry.values.extend_from_slice(&s.values);
            }
        }
        let mut series: Vec<Series> = by_labels
            .into_values()
            .filter(|s| !s.timestamps.is_empty())
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(RawSeries { series, warnings })
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
        let attempts = AtomicU32::new(0);
        let outcome = (|| {
            attempts.fetch_add(1, Ordering::Relaxed);
            self.fetch_once(path, params, query, sink())
        })
        .retry(self.inner.backoff)
        .when(Error::is_retryable)
        .notify(|e, delay| {
            tracing::warn!(endpoint = %self.inner.shown, "retrying in {delay:?}: {e}");
        })
        .await;
        outcome.map_err(|e| e.with_attempts(attempts.load(Ordering::Relaxed)))
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
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("no content type")
                .to_owned();
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
                source: e.without_url(),
            }
        } else {
            Error::Transport {
                endpoint,
                attempts,
                source: e.without_url(),
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

/// Keeps the points of a raw-sample window that fall in `[lo, hi]`.
struct Window {
    lo: i64,
    hi: i64,
    collect: Collect,
}

impl Sink for Window {
    fn begin_series(&mut self, labels: Labels) -> Result<()> {
        self.collect.begin_series(labels)
    }

    fn point(&mut self, t: i64, value: f64) -> Result<()> {
        if (self.lo..=self.hi).contains(&t) {
            self.collect.point(t, value)?;
        }
        Ok(())
    }
}

/// `%xx` escapes in a URL's user or password, decoded (invalid UTF-8 replaced).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `scheme://user:pass@host/...` without `user:pass@`, for messages about unparsable endpoints.
fn redact_userinfo(endpoint: &str) -> String {
    let start = endpoint.find("://").map_or(0, |i| i + 3);
    match endpoint[start..].rfind('@') {
        Some(at) => format!(
            "{}<redacted>@{}",
            &endpoint[..start],
            &endpoint[start + at + 1..]
        ),
        None => endpoint.to_owned(),
    }
}

/// Makes ring rustls's process-wide crypto provider, unless the program chose one already.
///
/// reqwest is built without its default provider (aws-lc-rs, a long C build) and asks for the
/// process default when a client is built. Every client in this workspace that builds a reqwest
/// client directly calls this first; calling it again, or after the program installed its own
/// provider, changes nothing.
pub fn install_crypto_provider() {
    // An Err only says a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        let client = Client::builder("http://alice:hunter2@127.0.0.1:9090/prefix")
            .header("X-Api-Key", "k3y-value")
            .build()
            .unwrap();
        let debug = format!("{client:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("k3y-value"),
            "{debug}"
        );
        assert!(debug.contains("alice"), "{debug}");
        assert_eq!(client.endpoint(), "http://127.0.0.1:9090/prefix/");
        let token = Client::builder("http://h")
            .bearer_token("t0ken")
            .build()
            .unwrap();
        assert!(!format!("{token:?}").contains("t0ken"));
        let bad = Client::builder("http//alice:hunter2@h")
            .build()
            .unwrap_err();
        assert!(!bad.to_string().contains("hunter2"), "{bad}");
        let bad = Client::builder("ftp://alice:hunter2@h")
            .build()
            .unwrap_err();
        assert!(!bad.to_string().contains("hunter2"), "{bad}");
    }

    #[test]
    fn urls_join_the_base_path() {
        let client = Client::new("http://127.0.0.1:9090").unwrap();
        assert_eq!(client.endpoint(), "http://127.0.0.1:9090");
        let q =
            RangeQuery::new("up{job=\"a b\"}", 1_000, 5_500, Duration::from_millis(500)).unwrap();
        assert_eq!(
            client.range_url(&q).as_str(),
            "http://127.0.0.1:9090/api/v1/query_range?query=up%7Bjob%3D%22a+b%22%7D&start=1&end=5.500&step=0.500&nocache=1"
        );
        let mimir = Client::new("https://mimir.example/prometheus").unwrap();
        assert!(
            mimir
                .range_url(&q)
                .as_str()
                .starts_with("https://mimir.example/prometheus/api/v1/query_range?")
        );
    }

    #[test]
    fn raw_windows_keep_their_own_samples() {
        let mut w = Window {
            lo: 10,
            hi: 20,
            collect: Collect::default(),
        };
        w.begin_series(Labels::default()).unwrap();
        for t in [9, 10, 15, 20, 21] {
            w.point(t, t as f64).unwrap();
        }
        assert_eq!(w.collect.series[0].timestamps, [10, 15, 20]);
    }

    #[test]
    fn raw_series_align_on_their_union() {
        let raw = RawSeries {
            series: vec![
                Series {
                    labels: Labels::from_pairs([("k", "a")]),
                    timestamps: vec![1, 3],
                    values: vec![1.0, 3.0],
                },
                Series {
                    labels: Labels::from_pairs([("k", "b")]),
                    timestamps: vec![2, 3],
                    values: vec![20.0, 30.0],
                },
            ],
            warnings: vec![],
        };
        let m = raw.to_matrix();
        assert_eq!(m.timestamps(), [1, 2, 3]);
        assert_eq!(m.get(0, 0), Some(1.0));
        assert_eq!(m.get(1, 0), None);
        assert_eq!(m.get(2, 1), Some(30.0));
    }
}
