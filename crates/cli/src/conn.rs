//! Connection flags shared by the sub-commands that speak HTTP, and the client they build.
//!
//! Secrets (passwords, tokens, header values) are kept in [`Secret`], whose `Debug` and
//! `Display` print `***`, and no error message built here quotes them.

use std::{fmt, path::PathBuf, time::Duration};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use reqwest::{
    RequestBuilder, Url,
    header::{HeaderMap, HeaderName, HeaderValue},
};

use crate::timeutil::{format_duration, parse_duration};

/// The environment variable read for `USER:PASSWORD` when no auth flag is given.
pub const BASIC_AUTH_ENV: &str = "PROMLEARN_BASIC_AUTH";

/// Where Prometheus (or anything speaking its HTTP API) is, and how to talk to it.
#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// Base URL of the Prometheus HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics, ...).
    #[arg(long, value_name = "URL", default_value = "http://localhost:9090")]
    pub endpoint: String,

    #[command(flatten)]
    pub http: HttpArgs,
}

/// Authentication, TLS and time-out flags.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Connection")]
pub struct HttpArgs {
    /// HTTP basic auth as USER:PASSWORD [default: $PROMLEARN_BASIC_AUTH].
    #[arg(long, value_name = "USER:PASS")]
    pub basic_auth: Option<Secret>,

    /// Read USER:PASSWORD for basic auth from a file (first line).
    #[arg(long, value_name = "FILE", conflicts_with = "basic_auth")]
    pub basic_auth_file: Option<PathBuf>,

    /// Send `Authorization: Bearer <token>` with the token read from a file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["basic_auth", "basic_auth_file"])]
    pub bearer_token_file: Option<PathBuf>,

    /// An extra request header, e.g. 'X-Scope-OrgID: tenant1' (repeatable).
    #[arg(long = "header", short = 'H', value_name = "'NAME: VALUE'")]
    pub headers: Vec<Secret>,

    /// Trust the CA certificate(s) in this PEM file (for a private CA or a self-signed server).
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,

    /// Do not verify the server's TLS certificate (testing only).
    #[arg(long)]
    pub insecure: bool,

    /// Give up on a request after this long.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// A string that never prints.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How requests authenticate.
#[derive(Clone, Debug)]
pub enum Auth {
    Basic { user: String, password: Secret },
    Bearer(Secret),
}

impl Auth {
    /// `Authorization` header value.
    pub fn header_value(&self) -> HeaderValue {
        let text = match self {
            Auth::Basic { user, password } => {
                format!(
                    "Basic {}",
                    base64(format!("{user}:{}", password.expose()).as_bytes())
                )
            }
            Auth::Bearer(token) => format!("Bearer {}", token.expose()),
        };
        let mut value = HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }
}

/// An HTTP client with the flags applied, and the base URL without credentials.
#[derive(Clone, Debug)]
pub struct Http {
    pub client: reqwest::Client,
    pub auth: Option<Auth>,
    pub headers: HeaderMap,
    pub timeout: Duration,
    /// Set by the caller for messages: the URL, free of credentials.
    pub base: Url,
}

impl HttpArgs {
    /// The client these flags ask for, talking to `url` (credentials in the URL are moved to
    /// basic auth so that they never appear in messages).
    pub fn build(&self, url: &str) -> Result<Http> {
        let (base, url_auth) = parse_url(url)?;
        let mut auth = self.auth()?;
        if auth.is_none() {
            auth = url_auth;
        }
        let mut headers = HeaderMap::new();
        for (name, value) in self.header_pairs()? {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| anyhow!("--header has an invalid header name `{name}`"))?;
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
                anyhow!("--header {name}: the value has characters HTTP headers cannot carry")
            })?;
            // Custom headers often carry tenants' tokens: keep them out of any debug output.
            value.set_sensitive(true);
            headers.append(name, value);
        }
        promlearn_loader::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("promlearn/", env!("CARGO_PKG_VERSION")))
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(10)));
        if let Some(path) = &self.ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    anyhow!(
                        "--ca-cert {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                        path.display()
                    )
                })?;
            builder = builder.tls_certs_merge(certs);
        }
        if self.insecure {
            tracing::warn!("--insecure: the server's TLS certificate is not verified");
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let client = builder
            .build()
            .map_err(|e| anyhow!("cannot set up the HTTP client: {}", chain(&e)))?;
        Ok(Http {
            client,
            auth,
            headers,
            timeout: self.timeout,
            base,
        })
    }

    /// The `--header` flags as (name, value) pairs.
    pub fn header_pairs(&self) -> Result<Vec<(String, Secret)>> {
        self.headers
            .iter()
            .enumerate()
            .map(|(i, header)| {
                let (name, value) = header.expose().split_once(':').ok_or_else(|| {
                    anyhow!("--header number {} needs the form 'Name: value'", i + 1)
                })?;
                Ok((name.trim().to_owned(), Secret(value.trim().to_owned())))
            })
            .collect()
    }

    /// The credentials from the flags, the file or the environment (in that order).
    pub fn auth(&self) -> Result<Option<Auth>> {
        if let Some(path) = &self.bearer_token_file {
            let token = read_secret_file(path, "--bearer-token-file")?;
            return Ok(Some(Auth::Bearer(Secret(token))));
        }
        let (text, source) = if let Some(s) = &self.basic_auth {
            (s.expose().to_owned(), "--basic-auth")
        } else if let Some(path) = &self.basic_auth_file {
            (
                read_secret_file(path, "--basic-auth-file")?,
                "--basic-auth-file",
            )
        } else if let Ok(s) = std::env::var(BASIC_AUTH_ENV) {
            if s.is_empty() {
                return Ok(None);
            }
            (s, BASIC_AUTH_ENV)
        } else {
            return Ok(None);
        };
        let Some((user, password)) = text.split_once(':') else {
            bail!("{source} needs USER:PASSWORD (no `:` found)");
        };
        if user.is_empty() {
            bail!("{source} needs USER:PASSWORD (the user is empty)");
        }
        Ok(Some(Auth::Basic {
            user: user.to_owned(),
            password: Secret(password.to_owned()),
        }))
    }
}

fn read_secret_file(path: &std::path::Path, flag: &str) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("cannot read {flag} {}: {}", path.display(), e.kind()))?;
    let line = text.lines().next().unwrap_or("").trim().to_owned();
    if line.is_empty() {
        bail!("{flag} {} is empty", path.display());
    }
    Ok(line)
}

/// Parses a base URL, taking `user:pass@` out of it.
fn parse_url(text: &str) -> Result<(Url, Option<Auth>)> {
    let mut url = Url::parse(text.trim()).map_err(|e| {
        // The text may hold credentials: name the problem, not the text.
        anyhow!("the URL is not valid ({e}): give e.g. http://localhost:9090")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!(
            "the URL must start with http:// or https:// (got {}://)",
            url.scheme()
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        bail!("the URL has no host: give e.g. http://localhost:9090");
    }
    let auth = if !url.username().is_empty() || url.password().is_some() {
        let auth = Auth::Basic {
            user: percent_decode(url.username()),
            password: Secret(url.password().map(percent_decode).unwrap_or_default()),
        };
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Some(auth)
    } else {
        None
    };
    Ok((url, auth))
}

/// `%xx` escapes in a URL's user or password, decoded (invalid UTF-8 replaced).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

impl Http {
    /// A GET of `url` with auth and headers applied.
    pub fn get(&self, url: Url) -> RequestBuilder {
        self.apply(self.client.get(url))
    }

    fn apply(&self, mut request: RequestBuilder) -> RequestBuilder {
        request = request.headers(self.headers.clone());
        if let Some(auth) = &self.auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth.header_value());
        }
        request
    }

    /// One line saying why a request to `what` failed, without URLs' query strings or secrets.
    pub fn describe(&self, what: &str, e: &reqwest::Error) -> anyhow::Error {
        let root = root_cause(e);
        if e.is_timeout() {
            return anyhow!(
                "{what} did not answer within {} (--timeout)",
                format_duration(self.timeout)
            );
        }
        let lower = root.to_ascii_lowercase();
        if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
            return anyhow!(
                "TLS with {what} failed: {root}; trust its CA with --ca-cert FILE (or skip checks with --insecure)"
            );
        }
        if e.is_connect() {
            return anyhow!("cannot connect to {what}: {root}");
        }
        anyhow!("request to {what} failed: {root}")
    }
}

/// The innermost cause's text (e.g. `Connection refused (os error 111)`).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// All of an error's causes on one line, each once.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(cause) = cur {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = cause.source();
    }
    out
}

/// Standard base64 with padding (for the basic auth header).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("user:pass", "dXNlcjpwYXNz"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn url_credentials_move_to_auth() {
        let (url, auth) = parse_url("http://alice:s%40cret@localhost:9090/prom").unwrap();
        assert_eq!(url.as_str(), "http://localhost:9090/prom");
        match auth {
            Some(Auth::Basic { user, password }) => {
                assert_eq!(user, "alice");
                assert_eq!(password.expose(), "s@cret");
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_url("ftp://x").is_err());
        let err = parse_url("http://u:topsecret@").unwrap_err().to_string();
        assert!(!err.contains("topsecret"), "{err}");
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        let args = HttpArgs {
            basic_auth: Some(Secret("u:hunter2".into())),
            ..HttpArgs::default()
        };
        assert!(!format!("{args:?}").contains("hunter2"));
        let args = HttpArgs {
            basic_auth: Some(Secret("hunter2".into())),
            ..HttpArgs::default()
        };
        let err = args.build("http://localhost:9090").unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        let args = HttpArgs {
            headers: vec![Secret("tokenwithoutcolon".into())],
            ..HttpArgs::default()
        };
        let err = args.build("http://localhost:9090").unwrap_err().to_string();
        assert!(!err.contains("tokenwithoutcolon"), "{err}");
    }
}
