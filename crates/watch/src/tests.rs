//! Engine tests against a tiny in-test Prometheus API (HTTP, `query_range` only) and stand-in
//! detectors whose fit speed the tests choose.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use promlearn_detect::{Analysis, DetectorSpec, Fitted, StreamState};

use crate::{Config, Handle, Watch, engine::FitFn};

mod churn;
// The harness the integration tests use too (`Running`, `wait_for`, `value`): one copy.
#[path = "../tests/common/harness.rs"]
mod harness;
mod reload;
mod shutdown;
mod spread;

use harness::{Running, value, wait_for};

/// How the fake Prometheus answers.
#[derive(Debug, Clone)]
enum Mode {
    /// A matrix with these series (label sets); every value is `value`.
    Series(Vec<BTreeMap<String, String>>, f64),
    /// HTTP 503 with an API error.
    Unavailable,
    /// No answer for a long time.
    Hang,
}

struct FakeProm {
    url: String,
    mode: Arc<Mutex<Mode>>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeProm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn param(query: &str, name: &str) -> Option<f64> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

async fn fake_prometheus(mode: Mode) -> FakeProm {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mode = Arc::new(Mutex::new(mode));
    let requests = Arc::new(AtomicUsize::new(0));
    let (m, r) = (mode.clone(), requests.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (m, r) = (m.clone(), r.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (m, r) = (m.clone(), r.clone());
                    async move {
                        r.fetch_add(1, Ordering::SeqCst);
                        let mode = m.lock().unwrap().clone();
                        let q = req.uri().query().unwrap_or("").to_owned();
                        let (status, body) = match mode {
                            Mode::Hang => {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                                (503, String::new())
                            }
                            Mode::Unavailable => (
                                503,
                                r#"{"status":"error","errorType":"unavailable","error":"down for a test"}"#.to_owned(),
                            ),
                            Mode::Series(series, value) => {
                                let (start, end, step) = (
                                    param(&q, "start").unwrap(),
                                    param(&q, "end").unwrap(),
                                    param(&q, "step").unwrap(),
                                );
                                let (start, end, step) = (
                                    (start * 1000.0).round() as i64,
                                    (end * 1000.0).round() as i64,
                                    (step * 1000.0).round() as i64,
                                );
                                let values: Vec<String> = (0..)
                                    .map(|i| start + i * step)
                                    .take_while(|t| *t <= end)
                                    .map(|t| format!("[{}.{:03},\"{value}\"]", t / 1000, t % 1000))
                                    .collect();
                                let result: Vec<String> = series
                                    .iter()
                                    .map(|l| {
                                        format!(
                                            "{{\"metric\":{},\"values\":[{}]}}",
                                            serde_json::to_string(l).unwrap(),
                                            values.join(",")
                                        )
                                    })
                                    .collect();
                                (
                                    200,
                                    format!(
                                        "{{\"status\":\"success\",\"data\":{{\"resultType\":\"matrix\",\"result\":[{}]}}}}",
                                        result.join(",")
                                    ),
                                )
                            }
                        };
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    FakeProm {
        url,
        mode,
        requests,
        task,
    }
}

/// A stand-in model: its `analyse` is the test's own function of everything it is given, and so
/// is `advance`, whatever the detector crate's stream stage does: these tests are about the
/// schedule, which keeps to the new points by its own mark. The unit tests' one stand-in (the
/// backtest's tests use it with their own function).
#[derive(Debug)]
pub(crate) struct StandIn {
    pub(crate) spec: DetectorSpec,
    pub(crate) analyse: fn(&DetectorSpec, &[i64], &[f64]) -> Analysis,
}

impl Fitted for StandIn {
    fn spec(&self) -> &DetectorSpec {
        &self.spec
    }

    fn advance(
        &self,
        _state: &mut StreamState,
        timestamps: &[i64],
        values: &[f64],
    ) -> promlearn_detect::Result<Analysis> {
        self.analyse(timestamps, values)
    }

    fn analyse(&self, timestamps: &[i64], values: &[f64]) -> promlearn_detect::Result<Analysis> {
        let analysis = (self.analyse)(&self.spec, timestamps, values);
        assert_eq!(analysis.len(), values.len(), "one judgement a point");
        Ok(analysis)
    }
}

/// Predicts 10 with a band of ±5 and judges every finite point.
fn ten_plus_minus_five(spec: &DetectorSpec, timestamps: &[i64], values: &[f64]) -> Analysis {
    let judged = |v: f64| v.is_finite();
    let yhat: Vec<f64> = values
        .iter()
        .map(|v| if judged(*v) { 10.0 } else { f64::NAN })
        .collect();
    let score: Vec<f64> = values
        .iter()
        .map(|v| {
            if judged(*v) {
                (v - 10.0).abs() / 5.0
            } else {
                f64::NAN
            }
        })
        .collect();
    Analysis {
        detector: spec.name().to_owned(),
        timestamps: timestamps.to_vec(),
        values: values.to_vec(),
        yhat_lower: yhat.iter().map(|y| y - 5.0).collect(),
        yhat_upper: yhat.iter().map(|y| y + 5.0).collect(),
        yhat,
        anomalous: score.iter().map(|s| *s > 1.0).collect(),
        score,
    }
}

/// A fit that takes `delay` and counts its calls.
fn fake_fit(delay: Duration, calls: Arc<AtomicUsize>) -> FitFn {
    fake_fit_with_peak(delay, calls, Arc::default())
}

/// [`fake_fit`] that also keeps in `peak` the most fits that ever ran at the same time.
fn fake_fit_with_peak(delay: Duration, calls: Arc<AtomicUsize>, peak: Arc<AtomicUsize>) -> FitFn {
    let running = Arc::new(AtomicUsize::new(0));
    Arc::new(move |spec: &DetectorSpec, _t: &[i64], _v: &[f64]| {
        calls.fetch_add(1, Ordering::SeqCst);
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(delay);
        running.fetch_sub(1, Ordering::SeqCst);
        Ok(Arc::new(StandIn {
            spec: spec.clone(),
            analyse: ten_plus_minus_five,
        }) as Arc<dyn Fitted>)
    })
}

/// A stand-in fit that returns at once the first time and, from its second call on, holds
/// until `release` is set: a fit in flight for as long as the test needs, however slowly the
/// machine runs. Counts its calls, and in `peak` the most that ran at once.
fn fake_fit_held(
    calls: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    release: Arc<AtomicBool>,
) -> FitFn {
    let running = Arc::new(AtomicUsize::new(0));
    Arc::new(move |spec: &DetectorSpec, _t: &[i64], _v: &[f64]| {
        let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        while call > 1 && !release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        running.fetch_sub(1, Ordering::SeqCst);
        Ok(Arc::new(StandIn {
            spec: spec.clone(),
            analyse: ten_plus_minus_five,
        }) as Arc<dyn Fitted>)
    })
}

fn config(url: &str, extra: &str, query_extra: &str) -> Config {
    let text = format!(
        r#"
endpoint = "{url}"
listen = "127.0.0.1:0"
{extra}

[[query]]
name = "q1"
expr = "sum by (type) (rate(x[5s]))"
step = "100ms"
detector = {{ kind = "zscore", window = 5 }}
infer_every = "200ms"
fit_every = "1s"
fit_window = "30s"
{query_extra}
"#
    );
    Config::from_toml(&text, "test.toml").unwrap()
}

/// Serves a watch with `fit` as its fitting function (the shared harness's `start`, for the
/// stand-in models of these tests).
fn start(config: Config, fit: FitFn) -> Running {
    harness::start(Watch::with_fit_fn(config, fit).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_are_exported_per_series_with_renamed_and_escaped_labels() {
    let prom = fake_prometheus(Mode::Series(
        vec![
            labels(&[("type", "A")]),
            labels(&[
                ("type", "AAAA"),
                ("query", "clash"),
                ("zone", "we\"ird\\zone"),
            ]),
        ],
        20.0,
    ))
    .await;
    let calls = Arc::new(AtomicUsize::new(0));
    let running = start(
        config(&prom.url, "", ""),
        fake_fit(Duration::ZERO, calls.clone()),
    );
    let text = wait_for(
        &running.handle,
        "two scored series",
        Duration::from_secs(10),
        |t| t.matches("\npromlearn_anomaly_score{").count() == 2,
    )
    .await;
    assert!(
        text.contains("promlearn_anomaly_score{query=\"q1\",detector=\"zscore\",type=\"A\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "promlearn_anomalous{query=\"q1\",detector=\"zscore\",exported_query=\"clash\",type=\"AAAA\",zone=\"we\\\"ird\\\\zone\"} 1\n"
        ),
        "{text}"
    );
    // Every judged point of this series scores 2 (flagged), so each one counts as an alert.
    let alerts = value(
        &text,
        "promlearn_anomalies_total{query=\"q1\",detector=\"zscore\",type=\"A\"}",
    );
    assert!(alerts.is_some_and(|n| n >= 1.0), "{text}");
    assert!(
        text.contains("# TYPE promlearn_anomalies_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("promlearn_yhat{query=\"q1\",detector=\"zscore\",type=\"A\"} 10\n"),
        "{text}"
    );
    assert!(
        text.contains("promlearn_yhat_lower{query=\"q1\",detector=\"zscore\",type=\"A\"} 5\n"),
        "{text}"
    );
    assert!(
        text.contains("promlearn_yhat_upper{query=\"q1\",detector=\"zscore\",type=\"A\"} 15\n"),
        "{text}"
    );
    assert!(
        text.contains("promlearn_value{query=\"q1\",detector=\"zscore\",type=\"A\"} 20\n"),
        "{text}"
    );
    assert!(
        text.contains("promlearn_watch_up{query=\"q1\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("promlearn_watch_series{query=\"q1\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("promlearn_watch_models{query=\"q1\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("promlearn_watch_errors_total{query=\"q1\",kind=\"series_limit\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("promlearn_watch_last_fit_timestamp_seconds{query=\"q1\"} "),
        "{text}"
    );
    assert!(
        text.contains("promlearn_watch_infer_duration_seconds_count{query=\"q1\"} "),
        "{text}"
    );
    assert!(
        text.contains("promlearn_watch_fit_duration_seconds_bucket{query=\"q1\",le=\"+Inf\"} "),
        "{text}"
    );
    // Every family has HELP and TYPE, once, before its samples.
    let mut seen = std::collections::HashSet::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            current = rest.split(' ').next().unwrap().to_owned();
            assert!(seen.insert(current.clone()), "family {current} twice");
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(
            name.starts_with(&current),
            "{name} outside its family {current}"
        );
    }
    assert_eq!(seen.len(), 21, "{seen:?}");
    assert!(
        text.contains("\npromlearn_watch_shard_info{index=\"0\",total=\"1\"} 1\n"),
        "{text}"
    );
    // As Prometheus: the start counts as a successful load of the configuration.
    assert!(
        text.contains("\npromlearn_watch_config_last_reload_successful 1\n"),
        "{text}"
    );
    // Both series were fitted (one call each at least; fit_every is 1 s, so refits may follow),
    // and the page counts no more fits than were made.
    let fits = calls.load(Ordering::SeqCst);
    assert!(fits >= 2, "{fits} fit calls for two series");
    let counted = value(&text, "promlearn_watch_fits_total{query=\"q1\"}").unwrap();
    assert!(
        (2.0..=fits as f64).contains(&counted),
        "{counted} counted, {fits} made"
    );

    // Over HTTP: content type, /healthz, 404.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = http
        .get(format!("http://{}/metrics", running.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("# TYPE promlearn_anomaly_score gauge")
    );
    let health = http
        .get(format!("http://{}/healthz", running.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok\n");
    let missing = http
        .get(format!("http://{}/nope", running.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_fits_are_skipped_and_never_block_inference() {
    let prom = fake_prometheus(Mode::Series(vec![labels(&[("type", "A")])], 12.0)).await;
    let (calls, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let release = Arc::new(AtomicBool::new(false));
    // The second fit holds until released while a fit falls due every 300 ms: fits pile up
    // unless skipped.
    let running = start(
        config(&prom.url, "", "").tap(|c| c.queries[0].fit_every = Duration::from_millis(300)),
        fake_fit_held(calls.clone(), peak.clone(), release.clone()),
    );
    wait_for(
        &running.handle,
        "the first model's score",
        Duration::from_secs(10),
        |t| t.contains("promlearn_anomaly_score{query=\"q1\""),
    )
    .await;
    let text = wait_for(
        &running.handle,
        "the second fit to begin",
        Duration::from_secs(10),
        |_| calls.load(Ordering::SeqCst) >= 2,
    )
    .await;
    let count = "promlearn_watch_infer_duration_seconds_count";
    let inferences_before = value(&text, count).unwrap();
    // While the second fit runs, inference goes on (every 200 ms) with the first model.
    let text = wait_for(
        &running.handle,
        "three inferences during the second fit",
        Duration::from_secs(10),
        |t| value(t, count).is_some_and(|n| n >= inferences_before + 3.0),
    )
    .await;
    assert!(
        text.contains("promlearn_anomaly_score{query=\"q1\""),
        "{text}"
    );
    let fits_total = "promlearn_watch_fits_total{query=\"q1\"}";
    assert_eq!(value(&text, fits_total), Some(1.0), "{text}");
    wait_for(
        &running.handle,
        "skipped fits",
        Duration::from_secs(10),
        |t| value(t, "promlearn_watch_fits_skipped_total{query=\"q1\"}").unwrap_or(0.0) >= 2.0,
    )
    .await;
    release.store(true, Ordering::SeqCst);
    let text = wait_for(
        &running.handle,
        "the second fit done",
        Duration::from_secs(10),
        |t| value(t, fits_total).is_some_and(|n| n >= 2.0),
    )
    .await;
    // Never two fits of the one series at once, though a fit fell due again and again.
    let (fits, peak) = (calls.load(Ordering::SeqCst), peak.load(Ordering::SeqCst));
    assert!(fits >= 2, "{fits} fits\n{text}");
    assert_eq!(peak, 1, "{peak} fits of one series ran at once");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_series_are_dropped_after_stale_after() {
    let prom = fake_prometheus(Mode::Series(
        vec![labels(&[("type", "A")]), labels(&[("type", "B")])],
        10.0,
    ))
    .await;
    let running = start(
        config(&prom.url, "stale_after = \"1s\"", ""),
        fake_fit(Duration::ZERO, Arc::new(AtomicUsize::new(0))),
    );
    wait_for(
        &running.handle,
        "two scored series",
        Duration::from_secs(10),
        |t| t.matches("\npromlearn_anomaly_score{").count() == 2,
    )
    .await;
    *prom.mode.lock().unwrap() = Mode::Series(vec![labels(&[("type", "A")])], 10.0);
    // B stops being exported at once (no alert on old data) ...
    let text = wait_for(
        &running.handle,
        "B's score to go",
        Duration::from_secs(2),
        |t| t.matches("\npromlearn_anomaly_score{").count() == 1,
    )
    .await;
    assert!(text.contains("type=\"A\""), "{text}");
    // Only its alert counter stays while it is tracked (a counter, so no alert fires on it).
    assert!(
        text.lines()
            .filter(|l| l.contains("type=\"B\""))
            .all(|l| l.starts_with("promlearn_anomalies_total{")),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.contains("type=\"B\"")).count(),
        1,
        "{text}"
    );
    assert_eq!(
        running.handle.series_count("q1"),
        Some(2),
        "B's model is kept for a while"
    );
    // ... and is forgotten, model and all, after stale_after.
    let started = Instant::now();
    wait_for(
        &running.handle,
        "B to be dropped",
        Duration::from_secs(5),
        |t| t.contains("promlearn_watch_series{query=\"q1\"} 1\n"),
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "dropped too early"
    );
    assert_eq!(running.handle.series_count("q1"), Some(1));
    // B comes back: a new series, fitted again.
    *prom.mode.lock().unwrap() = Mode::Series(
        vec![labels(&[("type", "A")]), labels(&[("type", "B")])],
        10.0,
    );
    wait_for(&running.handle, "B back", Duration::from_secs(5), |t| {
        t.matches("\npromlearn_anomaly_score{").count() == 2
    })
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_errors_hide_scores_count_by_kind_and_recover() {
    let prom = fake_prometheus(Mode::Series(vec![labels(&[("type", "A")])], 10.0)).await;
    let running = start(
        config(&prom.url, "", ""),
        fake_fit(Duration::ZERO, Arc::new(AtomicUsize::new(0))),
    );
    wait_for(&running.handle, "a score", Duration::from_secs(10), |t| {
        t.contains("\npromlearn_anomaly_score{")
    })
    .await;

    *prom.mode.lock().unwrap() = Mode::Unavailable;
    let text = wait_for(&running.handle, "up 0", Duration::from_secs(5), |t| {
        t.contains("promlearn_watch_up{query=\"q1\"} 0\n")
    })
    .await;
    assert!(
        !text.contains("\npromlearn_anomaly_score{"),
        "scores of a failing query are not exported\n{text}"
    );
    assert!(!text.contains("\npromlearn_value{"), "{text}");
    assert!(
        value(
            &text,
            "promlearn_watch_errors_total{query=\"q1\",kind=\"query_failed\"}"
        )
        .unwrap()
            >= 1.0
    );
    // Still served: health metrics, and the series (with its model) is kept.
    assert_eq!(running.handle.series_count("q1"), Some(1));

    *prom.mode.lock().unwrap() = Mode::Hang;
    let text = wait_for(&running.handle, "a timeout", Duration::from_secs(5), |t| {
        value(
            t,
            "promlearn_watch_errors_total{query=\"q1\",kind=\"timeout\"}",
        )
        .unwrap_or(0.0)
            >= 1.0
    })
    .await;
    assert!(
        text.contains("promlearn_watch_up{query=\"q1\"} 0\n"),
        "{text}"
    );

    let errors_before = prom.requests.load(Ordering::SeqCst);
    *prom.mode.lock().unwrap() = Mode::Series(vec![labels(&[("type", "A")])], 30.0);
    let text = wait_for(&running.handle, "recovery", Duration::from_secs(5), |t| {
        t.contains("promlearn_watch_up{query=\"q1\"} 1\n")
            && t.contains("promlearn_value{query=\"q1\",detector=\"zscore\",type=\"A\"} 30\n")
    })
    .await;
    assert!(
        text.contains("promlearn_anomalous{query=\"q1\",detector=\"zscore\",type=\"A\"} 1\n"),
        "{text}"
    );
    assert!(prom.requests.load(Ordering::SeqCst) > errors_before);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_beyond_max_series_are_refused_and_counted() {
    let prom = fake_prometheus(Mode::Series(
        vec![
            labels(&[("type", "A")]),
            labels(&[("type", "B")]),
            labels(&[("type", "C")]),
        ],
        10.0,
    ))
    .await;
    let running = start(
        config(&prom.url, "max_series = 2", ""),
        fake_fit(Duration::ZERO, Arc::new(AtomicUsize::new(0))),
    );
    let text = wait_for(
        &running.handle,
        "series_limit errors",
        Duration::from_secs(10),
        |t| {
            value(
                t,
                "promlearn_watch_errors_total{query=\"q1\",kind=\"series_limit\"}",
            )
            .unwrap_or(0.0)
                >= 2.0
                && t.matches("\npromlearn_anomaly_score{").count() == 2
        },
    )
    .await;
    assert!(
        text.contains("promlearn_watch_series{query=\"q1\"} 2\n"),
        "{text}"
    );
    assert!(!text.contains("type=\"C\""), "{text}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_answer_is_no_error() {
    let prom = fake_prometheus(Mode::Series(vec![], 0.0)).await;
    let running = start(
        config(&prom.url, "", ""),
        fake_fit(Duration::ZERO, Arc::new(AtomicUsize::new(0))),
    );
    // Three empty answers judged (inference counts each), however slowly they come.
    let text = wait_for(
        &running.handle,
        "three inferences",
        Duration::from_secs(10),
        |t| value(t, "promlearn_watch_infer_duration_seconds_count").is_some_and(|n| n >= 3.0),
    )
    .await;
    assert!(
        text.contains("promlearn_watch_up{query=\"q1\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("promlearn_watch_series{query=\"q1\"} 0\n"),
        "{text}"
    );
    for kind in crate::ERROR_KINDS {
        assert!(
            text.contains(&format!(
                "promlearn_watch_errors_total{{query=\"q1\",kind=\"{kind}\"}} 0\n"
            )),
            "{text}"
        );
    }
    running.stop().await;
}

trait Tap: Sized {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

impl Tap for Config {}
