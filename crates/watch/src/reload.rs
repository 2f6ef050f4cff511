//! Reload, as Prometheus does it: on SIGHUP (the CLI's) or `POST /-/reload`, the configuration
//! file is read again. A query whose model settings ([`ModelKey`]) and name are unchanged,
//! against an unchanged source (endpoint, credentials, shard, query language), keeps its
//! series: models, stream positions, alerting state, counters and the scores on the page, with
//! no gap; a changed or new query starts fresh (from `state_dir` if it has matching files), a
//! removed one goes. A configuration that does not load or check is refused with its
//! `file:line` error and the running one goes on. What cannot change while running (the listen
//! address, the web configuration file) is refused with a message saying to restart.
//!
//! Mechanics: the engine of one configuration is an [`Engine`] and its loops. A reload builds a
//! new engine, stops the old loops, moves the kept queries' state across, and starts the new
//! loops. What outlives every generation lives in the [`Hub`]: which engine serves now, the
//! reload requests, and the served [`Page`] (which shows their outcome); the engines know
//! nothing of it, so a connection or a [`Handle`](crate::Handle) made before a reload serves
//! the new page and reaches the new state.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
};

use tokio::{
    sync::{mpsc, oneshot},
    task::JoinSet,
};

use crate::{
    Config, Error, Result,
    clock::{Clock, Exec},
    engine::{Engine, FitFn, fit_concurrency},
    export::Page,
    loops,
    source::{self, Source},
    store::{ModelKey, Store},
};

/// Re-reads the configuration: what the CLI gives [`Watch::reload_with`](crate::Watch::reload_with)
/// (the file, with its command-line overrides applied again).
pub(crate) type Loader = Arc<dyn Fn() -> Result<Config> + Send + Sync>;

/// A reload asked for, and where its outcome goes.
type Request = oneshot::Sender<Result<ReloadSummary>>;

/// What a reload did, per query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Queries that kept their series, models and scores.
    pub kept: Vec<String>,
    /// Queries started fresh: new, or with changed settings.
    pub fresh: Vec<String>,
    /// Queries no longer in the configuration.
    pub removed: Vec<String>,
}

/// What every generation of the engine shares: which one serves now, the reload requests, and
/// the page `/metrics` serves.
pub(crate) struct Hub {
    current: RwLock<Arc<Engine>>,
    /// What `/metrics` serves, whichever engine rendered it.
    pub(crate) page: Arc<Page>,
    requests: mpsc::UnboundedSender<Request>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Request>>>,
}

impl Hub {
    /// The hub of a watch whose first engine is `first`, serving `page`.
    pub(crate) fn new(first: Arc<Engine>, page: Arc<Page>) -> Hub {
        let (requests, receiver) = mpsc::unbounded_channel();
        Hub {
            current: RwLock::new(first),
            page,
            requests,
            receiver: Mutex::new(Some(receiver)),
        }
    }

    /// The engine serving now.
    pub(crate) fn current(&self) -> Arc<Engine> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_current(&self, engine: Arc<Engine>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = engine;
    }

    /// Asks the serving watch to reload and waits for the outcome.
    pub(crate) async fn request(&self) -> Result<ReloadSummary> {
        // Not taken yet: `serve` has not started. Once it has returned, the send fails.
        if self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return Err(Error::NotServing);
        }
        let (reply, outcome) = oneshot::channel();
        self.requests.send(reply).map_err(|_| Error::NotServing)?;
        outcome.await.map_err(|_| Error::NotServing)?
    }

    /// The requests, for the one `serve` that answers them.
    pub(crate) fn take_requests(&self) -> Option<mpsc::UnboundedReceiver<Request>> {
        self.receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// One engine for `config`: its expressions checked, its client built, its state directory
/// opened. Also the warnings of [`Config::check_queries`].
pub(crate) fn build(config: Config, fit_fn: FitFn) -> Result<(Engine, Vec<String>)> {
    let warnings = config.check_queries()?;
    let client = source::build_client(&config)?;
    let store = config.state_dir.as_deref().map(Store::open).transpose()?;
    let mut engine = Engine::new(
        config,
        Clock::wall(),
        Source::Prometheus(client),
        Exec::Pool,
        fit_fn,
        fit_concurrency(),
    );
    engine.store = store;
    Ok((engine, warnings))
}

/// Answers one reload request: on success the hub's new engine, its loops running in `loops`;
/// on failure the running one untouched. Logs and records the outcome either way.
pub(crate) async fn reload(
    hub: &Hub,
    loops: &mut JoinSet<()>,
    loader: Option<&Loader>,
) -> Result<ReloadSummary> {
    let running = hub.current();
    let prepared = match prepare(&running, loader) {
        Ok(prepared) => prepared,
        Err(e) => {
            tracing::error!("reloading the configuration failed, the running one goes on: {e}");
            hub.page.record_reload(false);
            // The gauge shows on the next page, rendered now rather than after the next round.
            hub.page.want_render();
            return Err(e);
        }
    };
    let (new, warnings) = prepared;
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    // The old loops end at their next await; fits already on the pool finish into the old
    // state, which no one reads any more.
    loops.shutdown().await;
    running.stop();
    let summary = carry_over(&running, &new);
    let new = Arc::new(new);
    // Reading the fresh queries' saved state is file I/O (100,000 files at scale): on the
    // blocking pool, so the connections being served keep their async threads.
    let (restoring, kept) = (new.clone(), summary.kept.clone());
    let restored = tokio::task::spawn_blocking(move || {
        restoring.restore_where(|index| !kept.contains(&restoring.config.queries[index].name))
    })
    .await
    .unwrap_or_default();
    new.render_now(&hub.page);
    hub.set_current(new.clone());
    loops::start(&new, &hub.page, loops);
    hub.page.record_reload(true);
    tracing::info!(
        kept = ?summary.kept,
        fresh = ?summary.fresh,
        removed = ?summary.removed,
        restored = restored.models,
        "configuration reloaded"
    );
    Ok(summary)
}

/// Loads and checks the new configuration and builds its engine, without touching the running
/// one.
fn prepare(running: &Engine, loader: Option<&Loader>) -> Result<(Engine, Vec<String>)> {
    let loader = loader.ok_or(Error::NothingToReload)?;
    let config = loader()?;
    let old = &running.config;
    if config.listen != old.listen {
        return Err(Error::NotReloadable {
            setting: "listen",
            running: old.listen.to_string(),
            new: config.listen.to_string(),
        });
    }
    if config.web_config_file != old.web_config_file {
        let show = |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .map_or_else(|| "(none)".to_owned(), |p| p.display().to_string())
        };
        return Err(Error::NotReloadable {
            setting: "web_config_file",
            running: show(&old.web_config_file),
            new: show(&config.web_config_file),
        });
    }
    build(config, running.fit_fn())
}

/// Moves the state of every query that may keep it from `old` to `new`.
fn carry_over(old: &Engine, new: &Engine) -> ReloadSummary {
    let (a, b) = (&old.config, &new.config);
    let same_source = a.endpoint == b.endpoint
        && a.auth == b.auth
        && a.shard == b.shard
        && a.query_language == b.query_language;
    let before: HashMap<&str, usize> = a
        .queries
        .iter()
        .enumerate()
        .map(|(i, q)| (q.name.as_str(), i))
        .collect();
    let now = new.clock.now_ms();
    let mut summary = ReloadSummary::default();
    let mut from = old.lock();
    let mut to = new.lock();
    for (index, query) in b.queries.iter().enumerate() {
        let kept = before
            .get(query.name.as_str())
            .filter(|&&i| same_source && ModelKey::of(&a.queries[i]) == ModelKey::of(query));
        let Some(&i) = kept else {
            summary.fresh.push(query.name.clone());
            continue;
        };
        let mut moved = std::mem::take(&mut from.queries[i]);
        for series in moved.series.values_mut() {
            // A fit that ran on the old engine reports there; fit again soon here.
            if series.fitting {
                series.fitting = false;
                series.next_fit_ms = now;
            }
        }
        to.queries[index] = moved;
        summary.kept.push(query.name.clone());
    }
    for q in &a.queries {
        if !b.queries.iter().any(|n| n.name == q.name) {
            summary.removed.push(q.name.clone());
        }
    }
    to.total_series = to.queries.iter().map(|q| q.series.len()).sum();
    // What the old engine still holds (queries removed or changed: their series and models)
    // goes now, not when the last holder of the old engine lets go of it: the `Watch` holds the
    // first one, a request under way the one it began on (handles and connections hold the hub).
    for q in &mut from.queries {
        *q = Default::default();
    }
    from.total_series = 0;
    summary
}

/// Whether `request` is for `/-/reload` (answered by [`answer`], whatever its method).
pub(crate) fn is_request<B>(request: &hyper::Request<B>) -> bool {
    request.uri().path() == "/-/reload"
}

/// `POST /-/reload` (or PUT, as Prometheus takes): 200 once reloaded, 500 with the reason when
/// the configuration was refused; any other method 405.
pub(crate) async fn answer<B>(
    hub: &Hub,
    request: &hyper::Request<B>,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    use hyper::{Method, StatusCode, header};
    let reply = |status: StatusCode, text: String| {
        hyper::Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(http_body_util::Full::new(bytes::Bytes::from(text)))
            .expect("a plain response builds")
    };
    if !matches!(*request.method(), Method::POST | Method::PUT) {
        let mut response = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "only POST or PUT reloads the configuration\n".into(),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST, PUT"));
        return response;
    }
    match hub.request().await {
        Ok(summary) => reply(
            StatusCode::OK,
            format!(
                "configuration reloaded: kept {:?}, started fresh {:?}, removed {:?}\n",
                summary.kept, summary.fresh, summary.removed
            ),
        ),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        ),
    }
}
