//! `--web.config.file`: TLS and basic auth on the watch's HTTP endpoints, in the format of
//! Prometheus's exporter-toolkit (its docs/web-configuration.md), so that the file written for
//! node_exporter or Prometheus itself works here unchanged.
//!
//! What is read: `tls_server_config` (`cert_file`/`key_file` or inline `cert`/`key`,
//! `client_auth_type` with `client_ca_file`/`client_ca`, `min_version`/`max_version`,
//! `prefer_server_cipher_suites`), `http_server_config` (`http2`, `headers`) and
//! `basic_auth_users` (user name to bcrypt hash). A key the format does not have is an error
//! naming it, as exporter-toolkit's strict reading does; a key it has but this server cannot honour
//! (`cipher_suites`, `curve_preferences`, `client_allowed_sans`, `rate_limit`, the client
//! auth types that accept unverified certificates) is an error too, never silently dropped: a
//! security setting that does nothing would be worse than a refusal.
//!
//! Everything is checked when the file is read: the certificate and key are parsed and matched,
//! every hash is parsed as bcrypt; at start a mistake stops the service. While serving, the file
//! is read again when it changes on disk (users, hashes and headers change without a restart, as
//! exporter-toolkit reads its file for every request), and the certificate and key files at the
//! first handshake after either changes (a renewed certificate needs no restart). A version that
//! does not load, or that would turn TLS on or off, is logged and the last good one kept.
//!
//! Every path needs the credentials except `/healthz` and `/-/healthy`, which tell only that the
//! process answers: probes (kubelet, load balancers) rarely carry credentials, and liveness
//! leaks nothing. Wrong or missing credentials get 401 with `WWW-Authenticate: Basic`. A bcrypt
//! check costs tens of milliseconds by design: checks run one at a time, successes and
//! failures are remembered, and checks waiting are bounded per client and overall (429 beyond),
//! so that wrong passwords never starve a right one (`web/auth.rs`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode,
    header::{self, HeaderName, HeaderValue},
};
use rustls::ServerConfig;
use serde::{Deserialize, de::IgnoredAny};
use tokio::io::AsyncWriteExt;

use crate::{Error, Result};

/// How long a successful basic-auth check is remembered (per user, password and hash).
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(600);
/// How long a client may take to open a TLS session before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Paths served without credentials (see the module's documentation).
const OPEN_PATHS: [&str; 2] = ["/healthz", "/-/healthy"];

/// A checked web configuration file: TLS, basic-auth users and extra response headers.
///
/// ```
/// use promlearn_watch::WebConfig;
///
/// let hash = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG";
/// let web = WebConfig::from_yaml(&format!("basic_auth_users:\n  alice: '{hash}'\n"), "web.yml".as_ref())?;
/// assert!(!web.tls() && web.users().eq(["alice"]));
///
/// // A key exporter-toolkit does not know is an error that names it.
/// let err = WebConfig::from_yaml("basic_auth_user:\n  alice: x\n", "web.yml".as_ref()).unwrap_err();
/// assert!(err.to_string().contains("basic_auth_user"), "{err}");
/// # Ok::<(), promlearn_watch::Error>(())
/// ```
#[derive(Clone)]
pub struct WebConfig {
    path: PathBuf,
    tls: Option<Arc<ServerConfig>>,
    users: BTreeMap<String, String>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hashes stay out of logs.
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl WebConfig {
    /// Reads and checks the file at `path`; relative paths in it are taken relative to its
    /// directory, as exporter-toolkit takes them.
    pub fn load(path: &Path) -> Result<WebConfig> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadSecret {
            what: "the web config file",
            path: path.to_owned(),
            source,
        })?;
        WebConfig::from_yaml(&text, path)
    }

    /// Parses and checks a web configuration; `path` names it in messages, and its directory
    /// is where relative file names in it are looked up.
    pub fn from_yaml(text: &str, path: &Path) -> Result<WebConfig> {
        let fail = |problem: String| Error::WebConfig {
            path: path.to_owned(),
            problem,
        };
        // An empty file is an empty configuration: plain HTTP, no auth.
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| {
                // One line (the CLI prints errors on one): the position, not the snippet.
                let message = e.without_snippet().to_string();
                fail(message.trim_start_matches("error: ").to_owned())
            })?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        if raw.rate_limit.is_some() {
            return Err(fail(unsupported(
                "rate_limit",
                "put a proxy in front for rate limits",
            )));
        }
        let tls = match &raw.tls_server_config {
            Some(tls) => tls.build(base).map_err(fail)?,
            None => None,
        };
        let mut users = BTreeMap::new();
        for (user, hash) in raw.basic_auth_users.unwrap_or_default() {
            if user.contains(':') {
                return Err(fail(format!(
                    "basic_auth_users: user name `{user}` contains ':', which basic auth cannot \
                     carry (the header splits user and password at the first ':')"
                )));
            }
            hash.parse::<bcrypt::HashParts>().map_err(|e| {
                fail(format!(
                    "basic_auth_users: the password hash of user `{user}` is not a bcrypt hash \
                     ({e}); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                ))
            })?;
            users.insert(user, hash);
        }
        let http = raw.http_server_config.unwrap_or_default();
        let headers = response_headers(http.headers.unwrap_or_default()).map_err(fail)?;
        Ok(WebConfig {
            path: path.to_owned(),
            tls,
            users,
            headers,
        })
    }

    /// Whether `/metrics` is served over TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The users basic auth accepts (none: no auth).
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn unsupported(key: &str, instead: &str) -> String {
    format!(
        "`{key}` is an exporter-toolkit setting promlearn watch cannot honour (it serves with \
         rustls's defaults); remove it, or {instead}"
    )
}

// ---- the file as written -------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    #[serde(default)]
    tls_server_config: Option<tls::RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
    #[serde(default)]
    rate_limit: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    /// HTTP/2 is offered by exporter-toolkit; this server speaks HTTP/1.1, which every scraper
    /// falls back to, so either value is accepted.
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "accepted for compatibility; HTTP/1.1 is always served"
    )]
    http2: Option<bool>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
}

/// The response headers exporter-toolkit allows in `http_server_config.headers`, checked as it
/// checks them.
fn response_headers(
    headers: BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    const ALLOWED: [&str; 5] = [
        "Content-Security-Policy",
        "X-Frame-Options",
        "X-Content-Type-Options",
        "X-XSS-Protection",
        "Strict-Transport-Security",
    ];
    let mut out = Vec::new();
    for (name, value) in headers {
        if !ALLOWED.contains(&name.as_str()) {
            return Err(format!(
                "http_server_config.headers: `{name}` is not one of {}",
                ALLOWED.join(", ")
            ));
        }
        let allowed_values: &[&str] = match name.as_str() {
            "X-Frame-Options" => &["deny", "sameorigin"],
            "X-Content-Type-Options" => &["nosniff"],
            _ => &[],
        };
        if !allowed_values.is_empty() && !allowed_values.contains(&value.to_lowercase().as_str()) {
            return Err(format!(
                "http_server_config.headers: {name} `{value}` is not one of {}",
                allowed_values.join(", ")
            ));
        }
        if value.is_empty() {
            continue;
        }
        let value = HeaderValue::from_str(&value).map_err(|_| {
            format!("http_server_config.headers: {name}: `{value}` is not a header value")
        })?;
        out.push((HeaderName::from_static(lowercase(&name)), value));
    }
    Ok(out)
}

/// `HeaderName::from_static` wants lowercase; the allowed names are a fixed set.
fn lowercase(name: &str) -> &'static str {
    match name {
        "Content-Security-Policy" => "content-security-policy",
        "X-Frame-Options" => "x-frame-options",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "strict-transport-security",
    }
}

// ---- serving -------------------------------------------------------------------------------

/// What the server applies to each connection and request, made from an optional
/// [`WebConfig`] (none: plain HTTP, no auth, as before). The file is read again when it changes
/// on disk (one `stat` per connection and request), as exporter-toolkit reads its file for every
/// request: users and headers change without a restart. A new version that does not load, or
/// that turns TLS on or off (the listener's scheme is fixed at start), is logged and the last
/// good one kept.
pub(crate) struct Web {
    /// The file and what it held when last read; `None` without a web config.
    file: Option<(PathBuf, Mutex<Loaded>)>,
    /// Whether connections speak TLS (fixed at start).
    tls: bool,
}

/// The version in force and the file's stamp when it was last looked at.
type Loaded = (Stamp, Arc<Active>);

/// One version of the web config, ready to serve with.
struct Active {
    tls: Option<tokio_rustls::TlsAcceptor>,
    auth: Option<Authenticator>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Active {
    fn new(config: &WebConfig) -> Active {
        Active {
            tls: config.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            auth: Authenticator::new(&config.users),
            headers: config.headers.clone(),
        }
    }
}

/// What identifies a version of a file on disk: its modification time and length.
pub(super) type Stamp = Option<(SystemTime, u64)>;

/// The [`Stamp`] of `path` now (`None` when it cannot be read).
pub(super) fn file_stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Web {
    pub(crate) fn new(config: Option<&WebConfig>) -> Web {
        let Some(config) = config else {
            return Web {
                file: None,
                tls: false,
            };
        };
        let loaded = (file_stamp(&config.path), Arc::new(Active::new(config)));
        Web {
            file: Some((config.path.clone(), Mutex::new(loaded))),
            tls: config.tls(),
        }
    }

    /// The version to serve with now, read again first if the file changed.
    fn active(&self) -> Option<Arc<Active>> {
        let (path, current) = self.file.as_ref()?;
        let stamp = file_stamp(path);
        let mut current = current.lock().unwrap_or_else(|e| e.into_inner());
        if stamp != current.0 {
            // Remembered either way: a broken version is tried again when it changes again.
            current.0 = stamp;
            match WebConfig::load(path) {
                Ok(config) if config.tls() != self.tls => tracing::warn!(
                    "{} now turns TLS {}; that needs a restart, so the previous web config                      stays in force",
                    path.display(),
                    if config.tls() { "on" } else { "off" }
                ),
                Ok(config) => {
                    current.1 = Arc::new(Active::new(&config));
                    tracing::info!("re-read {} after it changed", path.display());
                }
                Err(e) => tracing::warn!("keeping the previous web config: {e}"),
            }
        }
        Some(current.1.clone())
    }

    /// `https` or `http`, for the line that says where `/metrics` is.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// Serves one accepted connection: the TLS handshake if configured, then HTTP with `http`
    /// (the watch's handler, or `promlearn ui`'s).
    pub(crate) async fn serve_with<F, Fut>(self: Arc<Web>, stream: tokio::net::TcpStream, http: F)
    where
        F: FnOnce(Box<dyn Io>, Arc<Web>, std::net::IpAddr) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let _ = stream.set_nodelay(true);
        let peer = stream
            .peer_addr()
            .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |a| a.ip());
        let Some(acceptor) = self.active().and_then(|active| active.tls.clone()) else {
            return http(Box::new(stream), self, peer).await;
        };
        // Plain HTTP to the TLS port gets a readable answer (as Go's server gives) instead of a
        // dropped connection: a TLS session always opens with a handshake record, 0x16.
        let mut first = [0u8; 1];
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
            Ok(Ok(1)) if first[0] != 0x16 => {
                let mut stream = stream;
                let _ = stream
                    .write_all(
                        b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n\
                          Client sent an HTTP request to an HTTPS server.\n",
                    )
                    .await;
                let _ = stream.shutdown().await;
                return;
            }
            Ok(Ok(1)) => {}
            _ => return,
        }
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => http(Box::new(tls), self, peer).await,
            Ok(Err(e)) => tracing::debug!("a TLS handshake failed: {e}"),
            Err(_) => tracing::debug!("a TLS handshake timed out"),
        }
    }

    /// `Some(401)` when the request (from `peer`) needs credentials and lacks good ones;
    /// `Some(429)` when too many checks of credentials not known yet wait (`web/auth.rs`).
    pub(crate) async fn refuse<B>(
        &self,
        request: &Request<B>,
        peer: std::net::IpAddr,
    ) -> Option<Response<Full<Bytes>>> {
        let active = self.active()?;
        let auth = active.auth.as_ref()?;
        if OPEN_PATHS.contains(&request.uri().path()) {
            return None;
        }
        let verdict = auth
            .check(request.headers().get(header::AUTHORIZATION), peer)
            .await;
        let response =
            Response::builder().header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
        Some(match verdict {
            Verdict::Good => return None,
            Verdict::Wrong => response
                .status(StatusCode::UNAUTHORIZED)
                .header(header::WWW_AUTHENTICATE, "Basic")
                .body(Full::new(Bytes::from_static(b"Unauthorized\n")))
                .expect("a static response builds"),
            Verdict::Busy => response
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header(header::RETRY_AFTER, "1")
                .body(Full::new(Bytes::from_static(
                    b"Too many password checks waiting; try again in a second\n",
                )))
                .expect("a static response builds"),
        })
    }

    /// Adds `http_server_config.headers` to a response.
    pub(crate) fn decorate<B>(&self, response: &mut Response<B>) {
        let Some(active) = self.active() else {
            return;
        };
        for (name, value) in &active.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
}

/// A connection, plain or TLS.
pub(crate) trait Io:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static
{
}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

/// The user and password of an `Authorization: Basic …` header.
fn basic_credentials(header: &HeaderValue) -> Option<(String, String)> {
    let text = header.to_str().ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

mod auth;
mod tls;

use auth::{Authenticator, Verdict};

#[cfg(test)]
mod tests;
