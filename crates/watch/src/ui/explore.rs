//! Explore: backtest an expr with one or several detectors over a past range, from the page.
//!
//! The form becomes the `[[query]]` blocks the configuration file would hold (one per detector)
//! and is read by the file's own reader, [`Config::from_toml`], then [`Config::check_queries`]:
//! a setting out of range or an expr the PromQL parser refuses gets exactly the message the file
//! would, and every setting a query block takes is taken here too (the form's "more settings"
//! lines go into each block as they are). "Copy as TOML" gives those blocks. The replay is
//! [`backtest::load`] and [`backtest::run`], what `promlearn watch --backtest` runs, so the
//! counts are the CLI's.
//!
//! A job runs on a thread of its own at the lowest CPU priority (nice 19: the inference loop,
//! the fits and Prometheus always come first), with its own single-threaded runtime for the
//! load; at most [`MAX_RUNNING`] at once, and a request beyond gets 429. The limits
//! [`MAX_DETECTORS`], [`MAX_STEPS`], [`MAX_SERIES`] and [`MAX_POINTS`] bound what one job
//! holds; the newest [`KEPT_JOBS`] are kept for the page to draw. A job is cancelled from the
//! page, and its progress (loading, then how far the replay's clock has come) polled.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering},
    },
    time::Instant,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use promlearn_detect::{DetectorSpec, Direction};
use promlearn_loader::Labels;
use serde::{Deserialize, Serialize};

use super::{error, json};
use crate::{Config, QueryConfig, backtest, engine::Engine};

/// Explore jobs that may run at once; one more gets 429.
pub const MAX_RUNNING: usize = 5;
/// Detectors one job compares.
pub const MAX_DETECTORS: usize = 4;
/// Steps of the range per series: 7 days at 30 s (2,016 at 5 minutes).
pub const MAX_STEPS: i64 = 20_160;
/// Series the expr may return.
pub const MAX_SERIES: usize = 100;
/// Points one job judges and keeps (series × steps × detectors): 100 series over 7 days at 5
/// minutes with 4 detectors fit; ~50 MB at most.
pub const MAX_POINTS: usize = 1_000_000;
/// Finished jobs kept for the page.
const KEPT_JOBS: usize = 8;

/// The limits, for the page to show.
#[derive(Serialize)]
pub(crate) struct Limits {
    running: usize,
    detectors: usize,
    steps: i64,
    series: usize,
    points: usize,
}

impl Limits {
    pub(crate) const NOW: Limits = Limits {
        running: MAX_RUNNING,
        detectors: MAX_DETECTORS,
        steps: MAX_STEPS,
        series: MAX_SERIES,
        points: MAX_POINTS,
    };
}

/// A query's settings as the form holds them (durations as the file writes them, the detector
/// as an inline table); empty fields take the file's defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct QueryForm {
    pub name: String,
    pub expr: String,
    pub step: String,
    pub fit_window: String,
    pub fit_every: String,
    pub infer_every: String,
    pub detector: String,
    /// What the team knows (`both`, `up`, `down`; empty: both).
    pub direction: String,
    /// `min_deviation`'s two parts as typed; empty: 0.
    pub min_deviation_absolute: String,
    pub min_deviation_relative: String,
    /// `data_range`'s ends as typed; an empty end is unbounded.
    pub data_range_low: String,
    pub data_range_high: String,
    /// Further `key = value` lines of the query block, as the file would hold them.
    pub extra: String,
}

impl QueryForm {
    /// The form of a query of the file.
    pub(crate) fn of(q: &QueryConfig) -> QueryForm {
        let format = |d| promlearn_duration::format(d);
        QueryForm {
            name: q.name.clone(),
            expr: q.expr.clone(),
            step: format(q.step),
            fit_window: format(q.fit_window),
            fit_every: format(q.fit_every),
            infer_every: if q.infer_every == q.step {
                String::new()
            } else {
                format(q.infer_every)
            },
            detector: detector_toml(&q.detector),
            direction: match q.knowledge.direction {
                Direction::Both => String::new(),
                Direction::Up => "up".into(),
                Direction::Down => "down".into(),
            },
            min_deviation_absolute: nonzero(q.knowledge.min_deviation.absolute),
            min_deviation_relative: nonzero(q.knowledge.min_deviation.relative),
            data_range_low: q
                .knowledge
                .data_range
                .map_or(String::new(), |r| bound(r[0])),
            data_range_high: q
                .knowledge
                .data_range
                .map_or(String::new(), |r| bound(r[1])),
            extra: String::new(),
        }
    }

    /// The `[[query]]` block the file would hold.
    pub(crate) fn block(&self) -> String {
        let string = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let mut out = format!(
            "[[query]]\nname = {}\nexpr = {}\n",
            string(&self.name),
            string(&self.expr)
        );
        for (key, value) in [
            ("step", &self.step),
            ("fit_window", &self.fit_window),
            ("fit_every", &self.fit_every),
            ("infer_every", &self.infer_every),
        ] {
            if !value.trim().is_empty() {
                out += &format!("{key} = {}\n", string(value.trim()));
            }
        }
        out += &format!("detector = {}\n", self.detector.trim());
        let direction = self.direction.trim();
        if !direction.is_empty() {
            out += &format!("direction = {}\n", string(direction));
        }
        let parts: Vec<String> = [
            ("absolute", &self.min_deviation_absolute),
            ("relative", &self.min_deviation_relative),
        ]
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k} = {}", v.trim()))
        .collect();
        if !parts.is_empty() {
            out += &format!("min_deviation = {{ {} }}\n", parts.join(", "));
        }
        let (low, high) = (self.data_range_low.trim(), self.data_range_high.trim());
        if !low.is_empty() || !high.is_empty() {
            let end = |v: &str, open: &str| {
                if v.is_empty() {
                    open.to_owned()
                } else {
                    v.to_owned()
                }
            };
            out += &format!(
                "data_range = [{}, {}]\n",
                end(low, "-inf"),
                end(high, "inf")
            );
        }
        for line in self.extra.lines().map(str::trim).filter(|l| !l.is_empty()) {
            out += line;
            out.push('\n');
        }
        out
    }
}

/// A setting of 0 (its default) as an empty field, another as the file would write it.
fn nonzero(value: f64) -> String {
    if value == 0.0 {
        String::new()
    } else {
        toml_float(value)
    }
}

/// A range's end as the file writes it; an infinite end (no bound) as an empty field.
fn bound(value: f64) -> String {
    if value.is_finite() {
        toml_float(value)
    } else {
        String::new()
    }
}

/// A finite float as TOML reads it back exactly: the project's one float writer, whose
/// exponent form (`1e+21`) TOML takes, where Rust's `Display` writes 1e21 as a 22-digit
/// integer TOML refuses.
fn toml_float(value: f64) -> String {
    promlearn_loader::exposition::format_value(value)
}

/// A detector's settings as an inline TOML table, as the file writes them.
pub(crate) fn detector_toml(spec: &DetectorSpec) -> String {
    fn inline(value: &toml::Value) -> String {
        match value {
            toml::Value::Table(table) => {
                let fields: Vec<String> = table
                    .iter()
                    .map(|(k, v)| format!("{k} = {}", inline(v)))
                    .collect();
                format!("{{ {} }}", fields.join(", "))
            }
            toml::Value::Array(items) => {
                format!(
                    "[{}]",
                    items.iter().map(inline).collect::<Vec<_>>().join(", ")
                )
            }
            other => other.to_string(),
        }
    }
    match toml::Value::try_from(spec) {
        // `kind` first, as people write it.
        Ok(toml::Value::Table(mut table)) => {
            let kind = table.remove("kind");
            let mut text = kind.map_or(String::new(), |k| format!("kind = {}", inline(&k)));
            for (k, v) in &table {
                text += &format!(", {k} = {}", inline(v));
            }
            format!("{{ {text} }}")
        }
        _ => format!("{{ kind = \"{}\" }}", spec.name()),
    }
}

/// What the page sends to start a job.
#[derive(Debug, Deserialize)]
pub(crate) struct Request {
    /// The query's settings; one block per detector of `detectors`.
    #[serde(default)]
    form: QueryForm,
    /// Detector settings (inline tables), one block each; empty: the form's `detector`.
    #[serde(default)]
    detectors: Vec<String>,
    from_ms: i64,
    to_ms: i64,
    /// Replay one series of the watch's query `query` with its settings as they run.
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    series: Option<BTreeMap<String, String>>,
}

/// The explore jobs of a process.
pub(crate) struct Explorer {
    /// The Prometheus settings jobs read with (the watch's file; its queries are not used).
    base: Config,
    jobs: Mutex<VecDeque<Arc<Job>>>,
    running: Arc<AtomicUsize>,
    next_id: AtomicU64,
}

struct Job {
    id: u64,
    toml: String,
    from_ms: i64,
    to_ms: i64,
    cancel: AtomicBool,
    /// The newest timestamp the replay handed on (progress).
    reached_ms: AtomicI64,
    started: Instant,
    phase: Mutex<Phase>,
}

#[derive(Clone)]
enum Phase {
    Loading,
    Replaying,
    Done(Arc<Outcome>),
    Failed(String),
    Cancelled,
}

/// A finished job: per detector its counts, per series its points.
struct Outcome {
    detectors: Vec<Counts>,
    series: Vec<SeriesPoints>,
    wall_s: f64,
}

#[derive(Serialize, Clone)]
struct Counts {
    query: String,
    detector: String,
    settings: String,
    series: u64,
    points: u64,
    judged: u64,
    flagged: u64,
    /// Runs of flagged points (an alert may flag a few points in a row).
    alerts: u64,
    fits: u64,
    wall_s: f64,
}

struct SeriesPoints {
    labels: Labels,
    /// One per detector.
    columns: Vec<Columns>,
}

#[derive(Serialize, Default)]
struct Columns {
    t: Vec<i64>,
    value: Vec<f64>,
    yhat: Vec<f64>,
    lower: Vec<f64>,
    upper: Vec<f64>,
    score: Vec<f64>,
    anomalous: Vec<bool>,
}

impl Explorer {
    pub(crate) fn new(mut base: Config) -> Explorer {
        base.queries.clear();
        Explorer {
            base,
            jobs: Mutex::new(VecDeque::new()),
            running: Arc::new(AtomicUsize::new(0)),
            next_id: AtomicU64::new(1),
        }
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.base.endpoint
    }

    pub(crate) fn cancel_all(&self) {
        for job in self.jobs.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            job.cancel.store(true, Ordering::SeqCst);
        }
    }

    /// Checks a request and starts its job: 202 with its id and TOML, 400 with the message the
    /// file would get, or 429 when [`MAX_RUNNING`] jobs run.
    pub(crate) fn submit(
        &self,
        live: Option<&Engine>,
        request: Request,
    ) -> (StatusCode, serde_json::Value) {
        let bad = |message: String| {
            (
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": message }),
            )
        };
        let (queries, toml, filter) = match self.queries(live, &request) {
            Ok(checked) => checked,
            Err(message) => return bad(message),
        };
        if request.to_ms <= request.from_ms {
            return bad(format!(
                "the range is empty: from ({}) must be before to ({})",
                request.from_ms, request.to_ms
            ));
        }
        for q in &queries {
            let steps = (request.to_ms - request.from_ms) / q.step_ms() + 1;
            if steps > MAX_STEPS {
                return bad(format!(
                    "the range is {steps} steps of {} for query `{}`; explore takes at most {MAX_STEPS} steps per series (MAX_STEPS): shorten the range or coarsen the step",
                    promlearn_duration::format(q.step),
                    q.name
                ));
            }
        }
        // Taken before the thread starts, so that a burst of requests cannot pass the bound.
        if self
            .running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_RUNNING).then_some(n + 1)
            })
            .is_err()
        {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                serde_json::json!({ "error": format!(
                    "{MAX_RUNNING} explore jobs are running, the most at once (MAX_RUNNING); wait for one to finish or cancel one"
                )}),
            );
        }
        let job = Arc::new(Job {
            id: self.next_id.fetch_add(1, Ordering::SeqCst),
            toml: toml.clone(),
            from_ms: request.from_ms,
            to_ms: request.to_ms,
            cancel: AtomicBool::new(false),
            reached_ms: AtomicI64::new(request.from_ms),
            started: Instant::now(),
            phase: Mutex::new(Phase::Loading),
        });
        {
            let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            jobs.push_back(job.clone());
            // The oldest finished jobs go; running ones stay until they end.
            while jobs.len() > KEPT_JOBS + MAX_RUNNING {
                let Some(i) = jobs.iter().position(|j| {
                    !matches!(
                        *j.phase.lock().unwrap_or_else(|e| e.into_inner()),
                        Phase::Loading | Phase::Replaying
                    )
                }) else {
                    break;
                };
                jobs.remove(i);
            }
        }
        let mut config = self.base.clone();
        config.queries = queries;
        let running = self.running.clone();
        let worker = job.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("explore-{}", job.id))
            .spawn(move || {
                lower_priority();
                let phase = match run(&worker, &config, filter.as_ref()) {
                    Ok(outcome) => Phase::Done(Arc::new(outcome)),
                    Err(_) if worker.cancel.load(Ordering::SeqCst) => Phase::Cancelled,
                    Err(message) => Phase::Failed(message),
                };
                *worker.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase;
                running.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            self.running.fetch_sub(1, Ordering::SeqCst);
            *job.phase.lock().unwrap_or_else(|e| e.into_inner()) =
                Phase::Failed(format!("could not start a thread: {e}"));
        }
        (
            StatusCode::ACCEPTED,
            serde_json::json!({ "id": job.id, "toml": toml }),
        )
    }

    /// The checked queries of a request, their TOML, and the one series to keep (a replay).
    fn queries(
        &self,
        live: Option<&Engine>,
        request: &Request,
    ) -> Result<(Vec<QueryConfig>, String, Option<Labels>), String> {
        if let (Some(name), Some(series)) = (&request.query, &request.series) {
            // A series' replay: its query's settings exactly as the watch runs them.
            let query = live
                .and_then(|engine| engine.config.queries.iter().find(|q| &q.name == name))
                .ok_or_else(|| format!("no query named `{name}` runs here"))?;
            let labels = Labels::from_pairs(series.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            return Ok((
                vec![query.clone()],
                QueryForm::of(query).block(),
                Some(labels),
            ));
        }
        let detectors: Vec<String> = if request.detectors.is_empty() {
            vec![request.form.detector.clone()]
        } else {
            request.detectors.clone()
        };
        if detectors.len() > MAX_DETECTORS {
            return Err(format!(
                "{} detectors; explore compares at most {MAX_DETECTORS} (MAX_DETECTORS)",
                detectors.len()
            ));
        }
        let base = if request.form.name.trim().is_empty() {
            "explore"
        } else {
            request.form.name.trim()
        };
        let blocks: Vec<String> = detectors
            .iter()
            .enumerate()
            .map(|(i, detector)| {
                let name = if detectors.len() == 1 {
                    base.to_owned()
                } else {
                    format!("{base}_{}", i + 1)
                };
                QueryForm {
                    name,
                    detector: detector.clone(),
                    ..request.form.clone()
                }
                .block()
            })
            .collect();
        let toml = blocks.join("\n");
        // The file's own reader and checks: the page shows the message the file would get.
        let text = format!(
            "endpoint = {}\n\n{toml}",
            toml::Value::String(self.base.endpoint.clone())
        );
        let mut parsed = Config::from_toml(&text, "explore.toml").map_err(|e| e.to_string())?;
        parsed.query_language = self.base.query_language;
        parsed.check_queries().map_err(|e| e.to_string())?;
        Ok((parsed.queries, toml, None))
    }
}

/// Replays the job's range; the error is the page's message.
fn run(job: &Job, config: &Config, only: Option<&Labels>) -> Result<Outcome, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the job's runtime: {e}"))?;
    let source = runtime.block_on(async {
        tokio::select! {
            loaded = backtest::load(config, job.from_ms, job.to_ms) => loaded.map_err(|e| e.to_string()),
            () = async {
                while !job.cancel.load(Ordering::SeqCst) {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            } => Err("cancelled".to_owned()),
        }
    })?;
    let source = match only {
        Some(labels) => source.only(labels),
        None => source,
    };
    let mut points = 0usize;
    for q in &config.queries {
        let series = source.series_count(&q.name);
        if series > MAX_SERIES {
            return Err(format!(
                "the expr of `{}` returns {series} series; explore takes at most {MAX_SERIES} (MAX_SERIES): narrow it with a label matcher",
                q.name
            ));
        }
        points += series * (((job.to_ms - job.from_ms) / q.step_ms()) as usize + 1);
    }
    if points > MAX_POINTS {
        return Err(format!(
            "the job would judge {points} points (series × steps × detectors); explore takes at most {MAX_POINTS} (MAX_POINTS): shorten the range, coarsen the step or narrow the expr"
        ));
    }
    *job.phase.lock().unwrap_or_else(|e| e.into_inner()) = Phase::Replaying;
    replay::on_every_core(job, config, &source)
}

/// The lowest CPU priority for the calling thread (Linux schedules threads on their own nice
/// value): explore never takes CPU the watch's inference needs.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread's own id changes only this thread's nice value.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}

/// `GET /api/explore/{id}` (status, progress, counts), `GET /api/explore/{id}/series/{k}` (a
/// series' points per detector), `DELETE /api/explore/{id}` (cancel).
pub(crate) fn job_request(
    explorer: &Explorer,
    method: &Method,
    rest: &str,
) -> Response<Full<Bytes>> {
    let mut parts = rest.split('/');
    let id: Option<u64> = parts.next().and_then(|id| id.parse().ok());
    let job = id.and_then(|id| {
        explorer
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|j| j.id == id)
            .cloned()
    });
    let Some(job) = job else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no explore job `{rest}` (finished jobs are kept while they are among the newest {KEPT_JOBS})"
            ),
        );
    };
    let phase = job.phase.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match (method, parts.next(), parts.next()) {
        (&Method::DELETE, None, _) => {
            job.cancel.store(true, Ordering::SeqCst);
            json(
                StatusCode::OK,
                &serde_json::json!({ "id": job.id, "cancelling": true }),
            )
        }
        (&Method::GET, None, _) => {
            let span = (job.to_ms - job.from_ms).max(1) as f64;
            let (state, progress, body) = match &phase {
                Phase::Loading => ("loading", 0.0, serde_json::Value::Null),
                Phase::Replaying => (
                    "replaying",
                    ((job.reached_ms.load(Ordering::Relaxed) - job.from_ms) as f64 / span)
                        .clamp(0.0, 1.0),
                    serde_json::Value::Null,
                ),
                Phase::Done(outcome) => (
                    "done",
                    1.0,
                    serde_json::json!({
                        "detectors": outcome.detectors,
                        "series": outcome.series.iter().map(|s| super::label_map(&s.labels)).collect::<Vec<_>>(),
                        "wall_s": outcome.wall_s,
                    }),
                ),
                Phase::Failed(message) => ("failed", 1.0, serde_json::json!({ "error": message })),
                Phase::Cancelled => ("cancelled", 1.0, serde_json::Value::Null),
            };
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "id": job.id, "state": state, "progress": progress, "result": body,
                    "toml": job.toml, "from_ms": job.from_ms, "to_ms": job.to_ms,
                    "elapsed_s": job.started.elapsed().as_secs_f64(),
                }),
            )
        }
        (&Method::GET, Some("series"), Some(k)) => {
            let Phase::Done(outcome) = &phase else {
                return error(StatusCode::CONFLICT, "the job has not finished".into());
            };
            match k.parse::<usize>().ok().and_then(|k| outcome.series.get(k)) {
                Some(s) => json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "labels": super::label_map(&s.labels),
                        "detectors": outcome.detectors.iter().zip(&s.columns)
                            .map(|(d, c)| serde_json::json!({ "query": d.query, "detector": d.detector, "points": c }))
                            .collect::<Vec<_>>(),
                    }),
                ),
                None => error(
                    StatusCode::NOT_FOUND,
                    format!(
                        "the job has {} series; no series `{k}`",
                        outcome.series.len()
                    ),
                ),
            }
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET or DELETE /api/explore/{id}, GET /api/explore/{id}/series/{k}".into(),
        ),
    }
}

mod replay;
#[cfg(test)]
mod tests;
