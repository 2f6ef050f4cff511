//! Reload against the in-test Prometheus: an unchanged query keeps its models and scores, a new
//! one starts, a changed one starts fresh, a bad file and a new listen address are refused
//! while the running configuration goes on, and `POST /-/reload` answers as Prometheus's does.

use super::*;

/// The file's text: `q1` (fit once an hour, so any fit after the first is a refit) and `extra`.
fn text(url: &str, extra: &str) -> String {
    format!(
        r#"
endpoint = "{url}"
listen = "127.0.0.1:0"

[[query]]
name = "q1"
expr = "sum by (type) (rate(x[5s]))"
step = "100ms"
detector = {{ kind = "zscore", window = 5 }}
infer_every = "200ms"
fit_every = "1h"
fit_window = "30s"
{extra}
"#
    )
}

const Q2: &str = r#"
[[query]]
name = "q2"
expr = "sum(rate(x[5s]))"
step = "100ms"
detector = { kind = "zscore", window = 5 }
infer_every = "200ms"
fit_every = "1h"
fit_window = "30s"
"#;

/// A POST over a fresh connection: the status line and the body.
async fn post(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer.lines().next().unwrap_or("").to_owned();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_unchanged_queries_and_refuses_bad_files() {
    let prom = fake_prometheus(Mode::Series(vec![labels(&[("type", "A")])], 20.0)).await;
    let file: Arc<Mutex<String>> = Arc::new(Mutex::new(text(&prom.url, "")));
    let calls = Arc::new(AtomicUsize::new(0));
    let reading = file.clone();
    let watch = Watch::with_fit_fn(
        Config::from_toml(&file.lock().unwrap(), "watch.toml").unwrap(),
        fake_fit(Duration::ZERO, calls.clone()),
    )
    .unwrap()
    .reload_with(move || Config::from_toml(&reading.lock().unwrap(), "watch.toml"));
    let running = harness::start(watch);
    let score = "promlearn_anomaly_score{query=\"q1\",detector=\"zscore\",type=\"A\"}";
    wait_for(&running.handle, "q1 scored", Duration::from_secs(10), |t| {
        t.contains(score)
    })
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A second query: q1 keeps its model (no second fit) and its score, q2 starts.
    *file.lock().unwrap() = text(&prom.url, Q2);
    let summary = running.handle.reload().await.unwrap();
    assert_eq!(summary.kept, ["q1"]);
    assert_eq!(summary.fresh, ["q2"]);
    let page = running.handle.served_metrics();
    let page = std::str::from_utf8(&page).unwrap();
    assert!(
        page.contains(score),
        "the score is on the page at once:\n{page}"
    );
    let text_now = wait_for(&running.handle, "q2 scored", Duration::from_secs(10), |t| {
        t.contains("promlearn_anomaly_score{query=\"q2\"")
    })
    .await;
    assert!(text_now.contains(score), "{text_now}");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "q2's one fit, none for q1");
    assert_eq!(
        value(&text_now, "promlearn_watch_fits_total{query=\"q1\"}"),
        Some(1.0),
        "q1's counters go on"
    );

    // A bad file: refused with its line, the gauge says 0, scoring goes on.
    *file.lock().unwrap() = text(&prom.url, "[[query]]\nname = \"q3\"\n");
    let err = running.handle.reload().await.unwrap_err().to_string();
    assert!(err.starts_with("watch.toml:"), "{err}");
    let (status, body) = post(running.addr, "/-/reload").await;
    assert!(status.contains(" 500 "), "{status}");
    assert!(
        body.starts_with("failed to reload config: watch.toml:"),
        "{body}"
    );
    let text_now = running.handle.render_metrics();
    assert_eq!(
        value(&text_now, "promlearn_watch_config_last_reload_successful"),
        Some(0.0)
    );
    assert!(text_now.contains(score) && text_now.contains("query=\"q2\""));

    // The listen address cannot change while running.
    *file.lock().unwrap() = text(&prom.url, Q2).replace("127.0.0.1:0", "127.0.0.1:1");
    let err = running.handle.reload().await.unwrap_err().to_string();
    assert!(
        err.contains("`listen` cannot change") && err.contains("restart"),
        "{err}"
    );

    // Fixed, over HTTP: q2 removed, q1's detector changed so it starts fresh; the gauge is 1.
    let before = value(
        &text_now,
        "promlearn_watch_config_last_reload_success_timestamp_seconds",
    )
    .unwrap();
    *file.lock().unwrap() = text(&prom.url, "").replace("window = 5", "window = 6");
    let (status, body) = post(running.addr, "/-/reload").await;
    assert!(status.contains(" 200 "), "{status} {body}");
    assert!(
        body.contains("started fresh [\"q1\"], removed [\"q2\"]"),
        "{body}"
    );
    let text_now = wait_for(
        &running.handle,
        "q1 refitted",
        Duration::from_secs(10),
        |t| t.contains(score),
    )
    .await;
    assert!(!text_now.contains("query=\"q2\""), "{text_now}");
    assert_eq!(
        value(&text_now, "promlearn_watch_config_last_reload_successful"),
        Some(1.0)
    );
    let after = value(
        &text_now,
        "promlearn_watch_config_last_reload_success_timestamp_seconds",
    )
    .unwrap();
    assert!(after >= before, "{after} < {before}");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "q1 fitted anew");

    // GET is not a reload.
    let mut stream = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /-/reload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    running.stop().await;
}

#[tokio::test]
async fn a_watch_without_a_file_refuses_to_reload() {
    let prom = fake_prometheus(Mode::Series(vec![], 0.0)).await;
    let watch = Watch::with_fit_fn(
        Config::from_toml(&text(&prom.url, ""), "watch.toml").unwrap(),
        fake_fit(Duration::ZERO, Arc::default()),
    )
    .unwrap();
    let handle = watch.handle();
    assert!(matches!(
        handle.reload().await,
        Err(crate::Error::NotServing)
    ));
    let running = harness::start(watch);
    // Until the serving task has run, it is not serving yet.
    let deadline = Instant::now() + Duration::from_secs(5);
    let err = loop {
        match running.handle.reload().await {
            Err(crate::Error::NotServing) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => break other.unwrap_err(),
        }
    };
    assert!(matches!(err, crate::Error::NothingToReload), "{err}");
    running.stop().await;
}

/// A stand-in model that counts how many of it are alive, and holds a 64 KiB ballast so that
/// models that are kept show in the resident memory too.
#[derive(Debug)]
struct Counted {
    inner: StandIn,
    live: Arc<AtomicUsize>,
    _ballast: Vec<u8>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Fitted for Counted {
    fn spec(&self) -> &DetectorSpec {
        self.inner.spec()
    }

    fn advance(
        &self,
        state: &mut StreamState,
        timestamps: &[i64],
        values: &[f64],
    ) -> promlearn_detect::Result<Analysis> {
        self.inner.advance(state, timestamps, values)
    }

    fn analyse(&self, timestamps: &[i64], values: &[f64]) -> promlearn_detect::Result<Analysis> {
        self.inner.analyse(timestamps, values)
    }
}

/// The resident memory of this process, from /proc (0 where there is none).
fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_a_query_away_frees_its_models() {
    const SERIES: usize = 200;
    let series: Vec<_> = (0..SERIES)
        .map(|i| labels(&[("type", &format!("t{i}"))]))
        .collect();
    let prom = fake_prometheus(Mode::Series(series, 20.0)).await;
    let big = Q2.replace("name = \"q2\"", "name = \"big\"");
    let file: Arc<Mutex<String>> = Arc::new(Mutex::new(text(&prom.url, &big)));
    let live = Arc::new(AtomicUsize::new(0));
    let counting = live.clone();
    let fit: FitFn = Arc::new(move |spec: &DetectorSpec, _t: &[i64], _v: &[f64]| {
        counting.fetch_add(1, Ordering::SeqCst);
        Ok(Arc::new(Counted {
            inner: StandIn {
                spec: spec.clone(),
                analyse: ten_plus_minus_five,
            },
            live: counting.clone(),
            _ballast: vec![1; 64 << 10],
        }) as Arc<dyn Fitted>)
    });
    let reading = file.clone();
    let watch = Watch::with_fit_fn(
        Config::from_toml(&file.lock().unwrap(), "watch.toml").unwrap(),
        fit,
    )
    .unwrap()
    .reload_with(move || Config::from_toml(&reading.lock().unwrap(), "watch.toml"));
    let running = harness::start(watch);
    let models = |query: &str| format!("promlearn_watch_models{{query=\"{query}\"}} {SERIES}");
    wait_for(
        &running.handle,
        "both queries' models",
        Duration::from_secs(20),
        |t| t.contains(&models("q1")) && t.contains(&models("big")),
    )
    .await;
    // A connection opened now, kept open over every reload.
    let kept_open = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    let mut rss = Vec::new();
    for round in 0..20 {
        // The big query away: only q1's models are left alive.
        *file.lock().unwrap() = text(&prom.url, "");
        let summary = running.handle.reload().await.unwrap();
        assert_eq!(summary.removed, ["big"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while live.load(Ordering::SeqCst) > SERIES {
            assert!(
                Instant::now() < deadline,
                "round {round}: {} models alive after the big query went, {SERIES} in use",
                live.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        rss.push(rss_mb());
        // And back, fitted anew.
        *file.lock().unwrap() = text(&prom.url, &big);
        running.handle.reload().await.unwrap();
        wait_for(
            &running.handle,
            "the big query's models",
            Duration::from_secs(20),
            |t| t.contains(&models("big")),
        )
        .await;
    }
    drop(kept_open);
    eprintln!(
        "20 reloads of {SERIES} models of 64 KiB away: RSS after each (MB): {:?}",
        rss.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>()
    );
    running.stop().await;
}
