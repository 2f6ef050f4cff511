//! The web page: look at what the watch sees and try detectors on one's own queries before
//! deploying them. Served by the same process, on the same listener, behind the same TLS and
//! basic auth as `/metrics` (`web.rs` checks every request before it gets here).
//!
//! - `/ui/` the overview (`overview.rs`): every query with its series count and its alerts of the
//!   last hour and day; its series ranked by their newest score, paged and searched by label on
//!   the server, each with a sparkline of its recent samples.
//! - `/ui/series` one series (`series.rs`): its newest judged point (what `/metrics` shows) over
//!   its recent samples, its detector, the query's last fit and why it alerts; and a replay of a
//!   chosen range with the backtest code, drawn with its band and flags.
//! - `/ui/explore` (`explore.rs`): an expr (or a query of the file), a range, a step and one or
//!   several detectors, backtested with the code `promlearn watch --backtest` runs, on at most
//!   [`MAX_RUNNING`] threads of their own at the lowest CPU priority, so that exploring never
//!   slows inference; a sixth request gets 429.
//!
//! The page is three small hand-written files and uPlot (MIT, from the npm registry, vendored
//! under `assets/` with its licence), all built into the binary: users run air-gapped, and no
//! Node toolchain is needed to build. uPlot is what Prometheus 3's and VictoriaMetrics' own
//! pages draw with: 50 KB, canvas, zoom and hover built in.
//!
//! `promlearn ui --endpoint URL` serves the explore page alone, without a watch ([`serve_explore`]).

mod explore;
mod overview;
mod series;

use std::{collections::BTreeMap, convert::Infallible, future::Future, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;

use crate::{Config, Error, Result, engine::Engine};

pub use explore::{MAX_DETECTORS, MAX_RUNNING, MAX_SERIES, MAX_STEPS};

/// What the page's handlers share for the life of the process (across reloads).
pub(crate) struct Ui {
    explorer: Arc<explore::Explorer>,
    ranking: overview::RankingCache,
}

impl Ui {
    /// For a watch whose Prometheus settings (endpoint, auth) explore jobs use.
    pub(crate) fn new(base: Config) -> Ui {
        Ui {
            explorer: Arc::new(explore::Explorer::new(base)),
            ranking: overview::RankingCache::default(),
        }
    }

    /// The service stops: running explore jobs are cancelled.
    pub(crate) fn stop(&self) {
        self.explorer.cancel_all();
    }
}

/// Whether `path` is the page's.
pub(crate) fn is_request<B>(request: &Request<B>) -> bool {
    let path = request.uri().path();
    path == "/" || path == "/ui" || path.starts_with("/ui/") || path.starts_with("/api/")
}

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const UPLOT_JS: &str = include_str!("assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("assets/LICENSE-uPlot");

/// The largest request body the page sends (an explore form).
const MAX_BODY: usize = 64 * 1024;

/// Answers one request of the page; `live` is the watch's engine now (none for `promlearn ui`).
pub(crate) async fn answer(
    ui: &Arc<Ui>,
    live: Option<Arc<Engine>>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let query = parse_query(request.uri().query().unwrap_or(""));
    let method = request.method().clone();
    let head = method == Method::HEAD;
    let mut response = match (method, path.as_str()) {
        (Method::GET | Method::HEAD, "/" | "/ui") => {
            let to = if live.is_some() {
                "/ui/"
            } else {
                "/ui/explore"
            };
            Response::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, to)
                .body(Full::new(Bytes::new()))
                .expect("a static response builds")
        }
        (Method::GET | Method::HEAD, "/ui/" | "/ui/series" | "/ui/explore") => {
            static_file("text/html; charset=utf-8", INDEX_HTML)
        }
        (Method::GET | Method::HEAD, "/ui/assets/app.js") => {
            static_file("text/javascript; charset=utf-8", APP_JS)
        }
        (Method::GET | Method::HEAD, "/ui/assets/app.css") => {
            static_file("text/css; charset=utf-8", APP_CSS)
        }
        (Method::GET | Method::HEAD, "/ui/assets/uPlot.iife.min.js") => {
            static_file("text/javascript; charset=utf-8", UPLOT_JS)
        }
        (Method::GET | Method::HEAD, "/ui/assets/uPlot.min.css") => {
            static_file("text/css; charset=utf-8", UPLOT_CSS)
        }
        (Method::GET | Method::HEAD, "/ui/assets/LICENSE-uPlot") => {
            static_file("text/plain; charset=utf-8", UPLOT_LICENSE)
        }
        (Method::GET | Method::HEAD, "/api/info") => json(StatusCode::OK, &info(ui, &live)),
        (Method::GET | Method::HEAD, "/api/overview") => match &live {
            Some(engine) => {
                let (ui, engine) = (ui.clone(), engine.clone());
                // Ranking 100,000 series is CPU work: off the async threads.
                let page = tokio::task::spawn_blocking(move || {
                    overview::page(&ui.ranking, &engine, &query)
                })
                .await
                .unwrap_or_else(|e| {
                    Err((
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the overview failed: {e}"),
                    ))
                });
                reply_result(page)
            }
            None => no_watch(),
        },
        (Method::GET | Method::HEAD, "/api/series") => match &live {
            Some(engine) => reply_result(series::view(engine, &query)),
            None => no_watch(),
        },
        (Method::POST, "/api/explore") => match read_json(request).await {
            Ok(form) => {
                let (status, body) = ui.explorer.submit(live.as_deref(), form);
                json(status, &body)
            }
            Err(message) => error(StatusCode::BAD_REQUEST, message),
        },
        (method, path) if path.starts_with("/api/explore/") => {
            explore::job_request(&ui.explorer, &method, &path["/api/explore/".len()..])
        }
        (_, path) if path.starts_with("/api/") || path.starts_with("/ui/") => error(
            StatusCode::NOT_FOUND,
            format!("no such page: {path} (the page is at /ui/)"),
        ),
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET for pages, POST for /api/explore".into(),
        ),
    };
    if head {
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

fn static_file(content_type: &'static str, text: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Full::new(Bytes::from_static(text.as_bytes())))
        .expect("a static response builds")
}

pub(crate) fn json(status: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    let text = serde_json::to_vec(body).unwrap_or_else(|e| {
        format!("{{\"error\":\"the answer did not serialise: {e}\"}}").into_bytes()
    });
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(text)))
        .expect("a static response builds")
}

/// An error the page shows as is: `{"error": message}`.
pub(crate) fn error(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

fn reply_result<T: Serialize>(
    result: std::result::Result<T, (StatusCode, String)>,
) -> Response<Full<Bytes>> {
    match result {
        Ok(body) => json(StatusCode::OK, &body),
        Err((status, message)) => error(status, message),
    }
}

fn no_watch() -> Response<Full<Bytes>> {
    error(
        StatusCode::NOT_FOUND,
        "this page serves explore only (promlearn ui); the overview needs promlearn watch".into(),
    )
}

/// A label set as the page reads it: a JSON object.
pub(crate) fn label_map(labels: &promlearn_loader::Labels) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// A request's query string, decoded.
pub(crate) type Params = BTreeMap<String, String>;

fn parse_query(query: &str) -> Params {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

async fn read_json<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
) -> std::result::Result<T, String> {
    let body = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("the request body could not be read ({e}); at most {MAX_BODY} bytes"))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| format!("the request is not the form's JSON: {e}"))
}

/// What the page needs first: which views exist, and the file's queries (for explore's picker).
#[derive(Serialize)]
struct Info {
    mode: &'static str,
    endpoint: String,
    queries: Vec<explore::QueryForm>,
    limits: explore::Limits,
}

fn info(ui: &Ui, live: &Option<Arc<Engine>>) -> Info {
    Info {
        mode: if live.is_some() { "watch" } else { "explore" },
        endpoint: ui.explorer.endpoint().to_owned(),
        queries: live
            .iter()
            .flat_map(|engine| engine.config.queries.iter().map(explore::QueryForm::of))
            .collect(),
        limits: explore::Limits::NOW,
    }
}

/// `promlearn ui`: the explore page alone, on `listen`, with the Prometheus settings of `base`
/// (its endpoint and auth; its queries are not used), until `shutdown` resolves. `ready` gets
/// the bound address once listening.
pub async fn serve_explore(
    base: Config,
    listen: SocketAddr,
    web_config: Option<crate::WebConfig>,
    ready: impl FnOnce(SocketAddr, &'static str),
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(Error::Serve)?;
    let web = Arc::new(crate::web::Web::new(web_config.as_ref()));
    ready(addr, web.scheme());
    let ui = Arc::new(Ui::new(base));
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let ui = ui.clone();
                    connections.spawn(web.clone().serve_with(stream, move |io, web, peer| serve_http(io, web, ui, peer)));
                }
                Err(e) => {
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    ui.explorer.cancel_all();
    connections.shutdown().await;
    Ok(())
}

/// HTTP on one connection of `promlearn ui`: the page, behind `web`'s credentials.
async fn serve_http(
    stream: Box<dyn crate::web::Io>,
    web: Arc<crate::web::Web>,
    ui: Arc<Ui>,
    peer: std::net::IpAddr,
) {
    let service = service_fn(move |request: Request<Incoming>| {
        let (web, ui) = (web.clone(), ui.clone());
        async move {
            let mut response = match web.refuse(&request, peer).await {
                Some(refused) => refused,
                None if is_request(&request) => answer(&ui, None, request).await,
                None => error(
                    StatusCode::NOT_FOUND,
                    "not found: the page is at /ui/explore".into(),
                ),
            };
            web.decorate(&mut response);
            Ok::<_, Infallible>(response)
        }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = result {
        tracing::debug!("a page connection ended with an error: {e}");
    }
}
