//! `promlearn watch`: a long-running service that keeps one anomaly detector per series of a set
//! of PromQL queries and serves their scores on `/metrics` for Prometheus to scrape and alert on,
//! as vmanomaly does.
//!
//! Per `[[query]]` of the [`Config`], every `infer_every` the service reads the newest points of
//! every series the expression returns (one `query_range`), scores them with that series' fitted
//! model and exports `promlearn_anomaly_score`, `promlearn_anomalous`, `promlearn_yhat`,
//! `promlearn_yhat_lower`, `promlearn_yhat_upper` and `promlearn_value`, labelled with the query's
//! name, the detector and the series' own labels. Models are (re)fitted every `fit_every` on
//! `fit_window` of history, off the inference path: a slow fit never delays a score. Series absent
//! for `stale_after` are forgotten, and `max_series` bounds memory. When Prometheus fails to
//! answer, that query's scores disappear (so that no alert fires on old data),
//! `promlearn_watch_up{query}` drops to 0, and the next cycle recovers on its own.
//!
//! One alerting rule then covers every query and detector: `promlearn_anomaly_score > 1`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), promlearn_watch::Error> {
//! use promlearn_watch::{Config, Watch};
//!
//! let config = Config::load("watch.toml")?;
//! let watch = Watch::new(config)?;
//! println!("serving http://{}/metrics", watch.bound_addr());
//! watch.serve(async { tokio::signal::ctrl_c().await.ok(); }).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod config;
mod engine;
mod expo;

use std::{
    convert::Infallible, future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use promlearn_loader::Client;
use tokio::task::JoinSet;

pub use config::{
    Auth, BasicAuth, Config, DEFAULT_FIT_EVERY, DEFAULT_FIT_WINDOW, DEFAULT_LISTEN,
    DEFAULT_MAX_SERIES, DEFAULT_STALE_AFTER, DEFAULT_STEP, INFER_EXTRA_POINTS, MAX_FIT_POINTS,
    QueryConfig,
};
pub use engine::ERROR_KINDS;
pub use expo::{CONTENT_TYPE, escape_label_value};

use engine::Shared;

/// What can stop the service from starting or running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file could not be read.
    #[error("cannot read the watch configuration {}: {source}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is not valid: where, and what is wrong.
    #[error("{origin}:{line}: {message}")]
    Config {
        /// The file (or the name given to [`Config::from_toml`]).
        origin: String,
        /// The 1-based line.
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A file the configuration names (password, token, CA certificate) could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    ReadSecret {
        /// Which setting names it.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The Prometheus client could not be built from the configuration.
    #[error("the Prometheus client: {0}")]
    Client(#[from] promlearn_loader::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("serving /metrics: {0}")]
    Serve(#[source] std::io::Error),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The service: built from a [`Config`] (listening already), run by [`Watch::serve`].
pub struct Watch {
    shared: Arc<Shared>,
    client: Client,
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("addr", &self.addr)
            .field("client", &self.client)
            .field("queries", &self.shared.config.queries.len())
            .finish_non_exhaustive()
    }
}

/// A cheap, cloneable view of a running [`Watch`], e.g. to render its metrics from a test.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Handle {
    /// The `/metrics` page as it would be served now.
    pub fn render_metrics(&self) -> String {
        engine::render(&self.shared)
    }

    /// How many series the query named `query` tracks now (`None` for an unknown name).
    pub fn series_count(&self, query: &str) -> Option<usize> {
        let index = self
            .shared
            .config
            .queries
            .iter()
            .position(|q| q.name == query)?;
        Some(self.shared.lock().queries[index].series.len())
    }
}

/// How many fits may run at once: half the cores, at least one, so that fitting never takes the
/// whole machine from inference and from Prometheus.
pub fn fit_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

impl Watch {
    /// Reads the secret files the configuration names, builds the Prometheus client and binds
    /// the listen address (port 0 picks a free one: see [`Watch::bound_addr`]). Needs no runtime.
    pub fn new(config: Config) -> Result<Watch> {
        Watch::with_fit_fn(config, engine::detector_fit())
    }

    pub(crate) fn with_fit_fn(config: Config, fit_fn: engine::FitFn) -> Result<Watch> {
        let client = build_client(&config)?;
        let listener =
            std::net::TcpListener::bind(config.listen).map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let shared = Arc::new(Shared::new(config, fit_fn, fit_concurrency()));
        Ok(Watch {
            shared,
            client,
            listener,
            addr,
        })
    }

    /// The address `/metrics` is served on.
    pub fn bound_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration it runs.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// A handle that stays usable while [`Watch::serve`] runs.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    /// The `/metrics` page as it would be served now.
    pub fn render_metrics(&self) -> String {
        engine::render(&self.shared)
    }

    /// Runs the engine and serves `/metrics` and `/healthz` until `shutdown` resolves; then
    /// stops accepting, ends the query loops and returns. Fits still running on the blocking
    /// pool finish on their own (their results are discarded).
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let listener = tokio::net::TcpListener::from_std(self.listener).map_err(Error::Serve)?;
        let mut loops = JoinSet::new();
        for index in 0..self.shared.config.queries.len() {
            loops.spawn(engine::infer_loop(
                self.shared.clone(),
                self.client.clone(),
                index,
            ));
            loops.spawn(engine::fit_loop(
                self.shared.clone(),
                self.client.clone(),
                index,
            ));
        }
        tracing::info!(
            addr = %self.addr,
            queries = self.shared.config.queries.len(),
            endpoint = self.client.endpoint(),
            "watch serving /metrics"
        );
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let shared = self.shared.clone();
                        connections.spawn(serve_connection(stream, shared));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        loops.shutdown().await;
        connections.shutdown().await;
        tracing::info!("watch stopped");
        Ok(())
    }
}

fn build_client(config: &Config) -> Result<Client> {
    let read = |what: &'static str, path: &PathBuf| {
        std::fs::read(path).map_err(|source| Error::ReadSecret {
            what,
            path: path.clone(),
            source,
        })
    };
    let text = |bytes: Vec<u8>| {
        String::from_utf8_lossy(&bytes)
            .trim_end_matches(['\r', '\n'])
            .to_owned()
    };
    // Each call is bounded by its own deadline (infer_every, or the fit's); the client's own
    // time-out only has to be the longest of them.
    let longest = config
        .queries
        .iter()
        .map(|q| q.fit_every.clamp(q.infer_every, Duration::from_secs(120)))
        .max()
        .unwrap_or(Duration::from_secs(60));
    let mut builder = Client::builder(config.endpoint.clone())
        .timeout(longest)
        .connect_timeout(Duration::from_secs(2))
        .retries(1)
        .retry_delays(Duration::from_millis(50), Duration::from_millis(200));
    let auth = &config.auth;
    if let Some(basic) = &auth.basic_auth {
        let password = text(read("basic_auth.password_file", &basic.password_file)?);
        builder = builder.basic_auth(basic.user.clone(), password);
    }
    if let Some(path) = &auth.bearer_token_file {
        builder = builder.bearer_token(text(read("bearer_token_file", path)?));
    }
    if let Some(path) = &auth.ca_cert {
        builder = builder.ca_certificate_pem(read("ca_cert", path)?);
    }
    Ok(builder.build()?)
}

async fn serve_connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request: Request<Incoming>| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(respond(&shared, &request)) }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = result {
        tracing::debug!("a /metrics connection ended with an error: {e}");
    }
}

fn respond(shared: &Shared, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let body = if request.method() == Method::HEAD {
            Bytes::new()
        } else {
            Bytes::from(body)
        };
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(body))
            .expect("a static response builds")
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET and HEAD\n".into(),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match request.uri().path() {
        "/metrics" => reply(StatusCode::OK, CONTENT_TYPE, engine::render(shared)),
        "/healthz" | "/-/healthy" => {
            reply(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into())
        }
        "/" => reply(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "promlearn watch: /metrics (anomaly scores and health), /healthz\n".into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /metrics or /healthz\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests;
