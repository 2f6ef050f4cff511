//! `promlearn watch`: a long-running service that keeps one anomaly detector per series of a set
//! of PromQL queries and serves their scores on `/metrics` for Prometheus to scrape and alert on,
//! as vmanomaly does.
//!
//! Per `[[query]]` of the [`Config`], every `infer_every` the service reads the newest points of
//! every series the expression returns (one `query_range` of the steps it has not read yet; each
//! series keeps its detector's context from the reads before), scores them with that series'
//! fitted model and exports `promlearn_anomaly_score`, `promlearn_anomalous`, `promlearn_yhat`,
//! `promlearn_yhat_lower`, `promlearn_yhat_upper` and `promlearn_value`, labelled with the query's
//! name, the detector and the series' own labels. Models are (re)fitted every `fit_every` on
//! `fit_window` of history, off the inference path: a slow fit never delays a score. A series
//! whose newest sample is older than `stale_after` is forgotten, and `max_series` bounds memory
//! (stopped series make room before a live one is refused). When Prometheus fails to answer,
//! that query's scores disappear (so that no alert fires on old data),
//! `promlearn_watch_up{query}` drops to 0, and the next cycle recovers on its own.
//!
//! `/metrics` serves the page rendered after the last inference round, so a scrape never waits
//! on the engine; a series label that clashes with ours is renamed `exported_…` until unique, as
//! Prometheus renames it. A [`Shard`] keeps only its share of the series (label-set hash modulo
//! the number of shards), and [`Config::check_queries`] parses every `expr` as PromQL offline.
//! A [`WebConfig`] (exporter-toolkit's web config file, the config's `web_config_file`) puts
//! `/metrics` behind TLS and basic auth, as node_exporter's is.
//!
//! One alerting rule then covers every query and detector:
//! `increase(promlearn_anomalies_total[1m]) > 0` (`examples/watch/alerts.yml`), a count no scrape
//! interval can hide, where the newest point's score may be overwritten before a scrape.
//!
//! [`backtest`] replays a past range through the same schedule with a simulated clock (no
//! look-ahead, at the CPU's pace) and hands every point of it to the caller, judged or not: to
//! choose a detector on one's own history before deploying it.
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

// In layers, bottom up: a module imports only the modules of the layers above it here (the
// tidy test `the_modules_inside_each_crate_run_one_way`; ARCHITECTURE.md says what each is for).
mod error;

mod clock;
mod histogram;
mod labels;
mod promql;
mod shard;
mod web;

mod config;

pub mod preset;
mod recent;

mod series;

mod source;

mod export;
mod judge;
mod stopped;
mod store;

mod engine;

mod schedule;

pub mod backtest;
mod loops;

mod reload;
pub mod ui;

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::task::JoinSet;

pub use config::{
    AlertText, Auth, BasicAuth, Config, DEFAULT_FIT_EVERY, DEFAULT_FIT_WINDOW, DEFAULT_LISTEN,
    DEFAULT_MAX_SERIES, DEFAULT_STALE_AFTER, DEFAULT_STEP, INFER_EXTRA_POINTS, MAX_FIT_POINTS,
    QueryConfig,
};
pub use engine::fit_concurrency;
pub use error::{Error, Result};
pub use promql::QueryLanguage;
pub use reload::ReloadSummary;
pub use series::ERROR_KINDS;
pub use shard::{Shard, label_hash};
pub use web::{AUTH_CACHE_TTL, WebConfig};

use engine::Engine;
use export::Page;
use reload::Hub;

/// The service: built from a [`Config`] (listening already), run by [`Watch::serve`].
pub struct Watch {
    /// The first engine, of the configuration it was built with.
    engine: Arc<Engine>,
    /// What every engine it runs shares: the current one, the page, reload requests.
    hub: Arc<Hub>,
    listener: std::net::TcpListener,
    addr: SocketAddr,
    /// What [`Config::check_queries`] found allowed but worth saying; logged at start.
    warnings: Vec<String>,
    /// TLS and basic auth from the config's `web_config_file` (none: plain HTTP, no auth).
    web: Arc<web::Web>,
    /// Reads the configuration again on a reload (none: reloads are refused).
    loader: Option<reload::Loader>,
    /// The web page's state: explore jobs, the overview's ranking.
    ui: Arc<ui::Ui>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("addr", &self.addr)
            .field("endpoint", &self.engine.config.endpoint)
            .field("queries", &self.engine.config.queries.len())
            .finish_non_exhaustive()
    }
}

/// A cheap, cloneable view of a running [`Watch`], e.g. to render its metrics from a test.
#[derive(Clone)]
pub struct Handle {
    hub: Arc<Hub>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Handle {
    /// The `/metrics` page rendered now from the state (`/metrics` itself serves the page
    /// rendered after the last inference round, which this one shows after the next).
    pub fn render_metrics(&self) -> String {
        self.hub.current().render(&self.hub.page)
    }

    /// The page `/metrics` serves now.
    pub fn served_metrics(&self) -> Bytes {
        self.hub.page.get()
    }

    /// How many series the query named `query` tracks now (`None` for an unknown name).
    pub fn series_count(&self, query: &str) -> Option<usize> {
        let engine = self.hub.current();
        let index = engine.config.queries.iter().position(|q| q.name == query)?;
        Some(engine.lock().queries[index].series.len())
    }

    /// Reads the configuration again and applies it, as SIGHUP and `POST /-/reload` do (see
    /// [`Watch::reload_with`]); returns what became of each query, or why the new configuration
    /// was refused (the running one then goes on). Errors when the watch is not serving.
    pub async fn reload(&self) -> Result<ReloadSummary> {
        self.hub.request().await
    }
}

impl Watch {
    /// Checks every query's expression ([`Config::check_queries`]), reads the secret files the
    /// configuration names, builds the Prometheus client and binds the listen address (port 0
    /// picks a free one: see [`Watch::bound_addr`]). Needs no runtime.
    pub fn new(config: Config) -> Result<Watch> {
        Watch::with_fit_fn(config, engine::detector_fit())
    }

    pub(crate) fn with_fit_fn(config: Config, fit_fn: engine::FitFn) -> Result<Watch> {
        let web_config = (config.web_config_file.as_deref())
            .map(WebConfig::load)
            .transpose()?;
        let web = Arc::new(web::Web::new(web_config.as_ref()));
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
        let (engine, warnings) = reload::build(config, fit_fn)?;
        let engine = Arc::new(engine);
        let restored = engine.restore();
        if let Some(dir) = &engine.config.state_dir {
            tracing::info!(
                dir = %dir.display(),
                models = restored.models,
                skipped = restored.skipped,
                marks_moved = restored.streams,
                "saved state read back"
            );
        }
        let page = Arc::new(Page::new(String::new()));
        engine.render_now(&page);
        let hub = Arc::new(Hub::new(engine.clone(), page));
        let ui = Arc::new(ui::Ui::new(engine.config.clone()));
        Ok(Watch {
            engine,
            hub,
            listener,
            addr,
            warnings,
            web,
            loader: None,
            ui,
        })
    }

    /// The address `/metrics` is served on.
    pub fn bound_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where Prometheus scrapes it: `http://` or, with TLS in the web config, `https://`.
    pub fn metrics_url(&self) -> String {
        format!("{}://{}/metrics", self.web.scheme(), self.addr)
    }

    /// The web page's overview (`ui`): same scheme, address and credentials as `/metrics`.
    pub fn page_url(&self) -> String {
        format!("{}://{}/ui/", self.web.scheme(), self.addr)
    }

    /// The configuration it runs.
    pub fn config(&self) -> &Config {
        &self.engine.config
    }

    /// Lets SIGHUP and `POST /-/reload` apply a new configuration: `load` reads it again (the
    /// CLI's reads the file and applies its command-line overrides). Without it, a reload is
    /// refused. See [`Handle::reload`] for what a reload keeps.
    pub fn reload_with(
        mut self,
        load: impl Fn() -> Result<Config> + Send + Sync + 'static,
    ) -> Watch {
        self.loader = Some(Arc::new(load));
        self
    }

    /// A handle that stays usable while [`Watch::serve`] runs.
    pub fn handle(&self) -> Handle {
        Handle {
            hub: self.hub.clone(),
        }
    }

    /// The `/metrics` page rendered now from the state (see [`Handle::render_metrics`]).
    pub fn render_metrics(&self) -> String {
        self.handle().render_metrics()
    }

    /// Runs the engine and serves `/metrics` and `/healthz` until `shutdown` resolves; then
    /// stops accepting, ends the query loops, saves where each series was judged up to (with
    /// `state_dir`) and returns. Fits still running on the blocking
    /// pool finish on their own (their results are discarded); fits waiting for a slot do not
    /// start, and neither is logged as an error.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let listener = tokio::net::TcpListener::from_std(self.listener).map_err(Error::Serve)?;
        let mut loops = JoinSet::new();
        loops::start(&self.hub.current(), &self.hub.page, &mut loops);
        // Reloads are answered here, one at a time, between accepts.
        let mut reloads = self.hub.take_requests().ok_or(Error::NotServing)?;
        for warning in &self.warnings {
            tracing::warn!("{warning}");
        }
        tracing::info!(
            addr = %self.addr,
            queries = self.engine.config.queries.len(),
            endpoint = self.engine.config.endpoint,
            "watch serving /metrics"
        );
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        // The hub: each request reaches the engine serving when it comes.
                        let (hub, ui) = (self.hub.clone(), self.ui.clone());
                        connections.spawn(self.web.clone().serve_with(
                            stream,
                            move |io, web, peer| serve_connection(io, hub, web, ui, peer),
                        ));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(reply) = reloads.recv() => {
                    let outcome = reload::reload(&self.hub, &mut loops, self.loader.as_ref()).await;
                    let _ = reply.send(outcome);
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        let current = self.hub.current();
        current.stop();
        self.ui.stop();
        loops.shutdown().await;
        // Where every series was judged up to, as the last rounds left it: a restart after a
        // clean stop judges no point twice.
        let _ = tokio::task::spawn_blocking(move || {
            for index in 0..current.config.queries.len() {
                current.save_streams(index);
            }
        })
        .await;
        connections.shutdown().await;
        tracing::info!("watch stopped");
        Ok(())
    }
}

/// Serves HTTP on one connection, plain or TLS (`web.rs` accepts it and checks each request's
/// credentials before `respond` sees it).
async fn serve_connection(
    stream: Box<dyn web::Io>,
    hub: Arc<Hub>,
    web: Arc<web::Web>,
    ui: Arc<ui::Ui>,
    peer: std::net::IpAddr,
) {
    let service = service_fn(move |request: Request<Incoming>| {
        let (hub, web, ui) = (hub.clone(), web.clone(), ui.clone());
        async move {
            let mut response = match web.refuse(&request, peer).await {
                Some(refused) => refused,
                None if reload::is_request(&request) => reload::answer(&hub, &request).await,
                // The engine serving now: after a reload, the new one.
                None if ui::is_request(&request) => {
                    ui::answer(&ui, Some(hub.current()), request).await
                }
                None => respond(&hub.page, &request),
            };
            web.decorate(&mut response);
            Ok::<_, Infallible>(response)
        }
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

fn respond(page: &Page, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: Bytes| {
        let body = if request.method() == Method::HEAD {
            Bytes::new()
        } else {
            body
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
        "/metrics" => reply(
            StatusCode::OK,
            promlearn_loader::exposition::CONTENT_TYPE,
            page.get(),
        ),
        "/healthz" | "/-/healthy" => {
            reply(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into())
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /metrics, /healthz or the page at /ui/\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests;
