//! [`ClientBuilder`]: every setting of a [`Client`] with its default, checked once in `build`.

use std::{sync::Arc, time::Duration};

use backon::ExponentialBuilder;
use reqwest::{
    Url,
    header::{HeaderName, HeaderValue},
};

use super::{Auth, Client, Inner, Secret};
use crate::{Error, Result, query::PROMETHEUS_MAX_POINTS};

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
    /// The defaults, for `endpoint` ([`Client::builder`]).
    pub(super) fn new(endpoint: String) -> Self {
        ClientBuilder {
            endpoint,
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
