//! Faults: each a clear error, no panic, and never a partial result passed off as complete.
//! The first tests use a scripted loopback server; the last ones a real Prometheus.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use promlearn_loader::{Client, Error, RangeQuery};
use support::{BackfilledPrometheus, FakeServer, Known, Reply, fixture, http_response};

const E2E: &str = "needs real servers: run cargo xtask e2e";

fn quick(url: &str) -> promlearn_loader::ClientBuilder {
    Client::builder(url)
        .no_proxy()
        .retry_delays(Duration::from_millis(5), Duration::from_millis(20))
}

fn range(start_s: i64, points: i64) -> RangeQuery {
    RangeQuery::new(
        "up",
        start_s * 1000,
        (start_s + points - 1) * 1000,
        Duration::from_secs(1),
    )
    .unwrap()
}

/// The recorded 10-point answer, as a server at its own times would give it.
fn success_body() -> (Vec<u8>, i64) {
    let body = fixture("range_success.200.json");
    let answer = promlearn_loader::decode::decode(&body).unwrap();
    (body, answer.series[0].timestamps[0] / 1000)
}

#[tokio::test]
async fn a_503_is_retried_until_it_passes() {
    let (body, start) = success_body();
    let server = FakeServer::start(move |n, _| {
        if n < 2 {
            Reply::Send(http_response(
                503,
                "application/json",
                br#"{"status":"error","errorType":"unavailable","error":"TSDB not ready"}"#,
            ))
        } else {
            Reply::Send(http_response(200, "application/json", &body))
        }
    })
    .await;
    let m = quick(&server.url)
        .build()
        .unwrap()
        .query_range(&range(start, 10))
        .await
        .unwrap();
    assert_eq!(server.count(), 3);
    assert_eq!(m.column(0), [1.0; 10]);
}

#[tokio::test]
async fn a_400_or_422_is_never_retried() {
    for (status, name) in [
        (400, "error_bad_data.400.json"),
        (422, "error_execution.422.json"),
    ] {
        let body = fixture(name);
        let server = FakeServer::start(move |_, _| {
            Reply::Send(http_response(status, "application/json", &body))
        })
        .await;
        let err = quick(&server.url)
            .build()
            .unwrap()
            .query_range(&range(1_700_000_000, 10))
            .await
            .unwrap_err();
        assert_eq!(server.count(), 1, "{name}");
        assert!(
            matches!(&err, Error::Api { status: s, .. } if *s == status),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn retries_give_up_with_the_last_error_and_the_count() {
    let server = FakeServer::start(|_, _| {
        Reply::Send(http_response(
            503,
            "text/html",
            b"<html><body>Service Unavailable</body></html>",
        ))
    })
    .await;
    let err = quick(&server.url)
        .retries(2)
        .build()
        .unwrap()
        .query_range(&range(1_700_000_000, 10))
        .await
        .unwrap_err();
    assert_eq!(server.count(), 3);
    assert!(
        matches!(err, Error::NotPrometheus { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("Service Unavailable"), "{err}");
}

#[tokio::test]
async fn an_html_server_is_not_prometheus() {
    let server = FakeServer::start(|_, _| {
        Reply::Send(http_response(
            200,
            "text/html; charset=utf-8",
            b"<!DOCTYPE html>\n<html><head><title>Grafana</title></head><body>login</body></html>",
        ))
    })
    .await;
    let err = quick(&server.url)
        .build()
        .unwrap()
        .query_range(&range(1_700_000_000, 10))
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1, "an HTML page is not retried");
    let text = err.to_string();
    assert!(
        matches!(err, Error::NotPrometheus { status: 200, .. }),
        "{err:?}"
    );
    assert!(
        text.contains("<title>Grafana</title>") && text.contains("text/html"),
        "{text}"
    );
}

#[tokio::test]
async fn a_hanging_server_times_out() {
    let server = FakeServer::start(|_, _| Reply::Hang).await;
    let started = std::time::Instant::now();
    let err = quick(&server.url)
        .timeout(Duration::from_millis(300))
        .retries(1)
        .build()
        .unwrap()
        .query_range(&range(1_700_000_000, 10))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(server.count(), 2);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.to_string().contains("after 2 attempts"), "{err}");
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_not_a_shorter_answer() {
    let (body, start) = success_body();
    let server = FakeServer::start(move |_, _| {
        // Announce the whole body, send half of it, close.
        let mut response = http_response(200, "application/json", &body);
        response.truncate(response.len() - body.len() / 2);
        Reply::Send(response)
    })
    .await;
    let err = quick(&server.url)
        .retries(1)
        .build()
        .unwrap()
        .query_range(&range(start, 10))
        .await
        .unwrap_err();
    assert_eq!(server.count(), 2, "a cut answer is retried");
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
}

/// What `tracing` logs at WARN and above while the returned guard lives (this thread only).
fn warnings() -> (
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    tracing::subscriber::DefaultGuard,
) {
    struct Into(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Into {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let text = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writing = text.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || Into(writing.clone()))
        .finish();
    (text, tracing::subscriber::set_default(subscriber))
}

/// A cut answer every time: the error says it all, no WARN per retry beside it (a service that
/// asks every cycle logged two lines a cycle); a retry that passes is one WARN.
#[tokio::test]
async fn retries_are_not_a_warning_each() {
    let (body, start) = success_body();
    let cut = body[..body.len() - 40].to_vec();
    let server =
        FakeServer::start(move |_, _| Reply::Send(http_response(200, "application/json", &cut)))
            .await;
    let (logged, guard) = warnings();
    let err = quick(&server.url)
        .retries(2)
        .build()
        .unwrap()
        .query_range(&range(start, 10))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
    let text = String::from_utf8(logged.lock().unwrap().clone()).unwrap();
    assert_eq!(text, "", "no warning beside the error");
    drop(guard);

    let (body, start) = success_body();
    let server = FakeServer::start(move |n, _| {
        if n < 1 {
            Reply::Send(http_response(
                503,
                "application/json",
                br#"{"status":"error","errorType":"unavailable","error":"TSDB not ready"}"#,
            ))
        } else {
            Reply::Send(http_response(200, "application/json", &body))
        }
    })
    .await;
    let (logged, _guard) = warnings();
    quick(&server.url)
        .build()
        .unwrap()
        .query_range(&range(start, 10))
        .await
        .unwrap();
    let text = String::from_utf8(logged.lock().unwrap().clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("answered at attempt 2"), "{text}");
}

#[tokio::test]
async fn a_json_answer_that_ends_early_is_truncated() {
    let (body, start) = success_body();
    let cut = body[..body.len() - 40].to_vec();
    let server =
        FakeServer::start(move |_, _| Reply::Send(http_response(200, "application/json", &cut)))
            .await;
    let err = quick(&server.url)
        .retries(0)
        .build()
        .unwrap()
        .query_range(&range(start, 10))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err:?}");
    assert!(err.to_string().contains("no partial result"), "{err}");
}

#[tokio::test]
async fn credentials_travel_in_headers_and_never_in_errors() {
    let server =
        FakeServer::start(|_, _| Reply::Send(http_response(401, "text/plain", b"Unauthorized\n")))
            .await;
    let endpoint = server.url.replace("http://", "http://alice:s3cret@");
    let client = quick(&endpoint)
        .header("X-Scope-OrgID", "tenant-7")
        .build()
        .unwrap();
    let err = client.query("up", None).await.unwrap_err();
    let head = server.heads.lock().unwrap()[0].to_ascii_lowercase();
    // base64("alice:s3cret")
    assert!(
        head.contains("authorization: basic ywxpy2u6cznjcmv0"),
        "{head}"
    );
    assert!(head.contains("x-scope-orgid: tenant-7"), "{head}");
    assert!(!head.contains("accept-encoding: gzip"), "{head}");
    for text in [err.to_string(), format!("{err:?}"), format!("{client:?}")] {
        assert!(
            !text.contains("s3cret") && !text.contains("tenant-7"),
            "{text}"
        );
    }
    let bearer = quick(&server.url).bearer_token("t0k3n").build().unwrap();
    let err = bearer.query("up", None).await.unwrap_err();
    let head = server.heads.lock().unwrap()[1].to_ascii_lowercase();
    assert!(head.contains("authorization: bearer t0k3n"), "{head}");
    assert!(!format!("{err} {err:?} {bearer:?}").contains("t0k3n"));
}

#[tokio::test]
async fn an_endpoint_that_is_down_says_so() {
    let port = promlearn_testbed::Ports::ephemeral().unwrap().prometheus;
    let err = quick(&format!("http://127.0.0.1:{port}"))
        .build()
        .unwrap()
        .query_range(&range(1_700_000_000, 10))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("after 4 attempts"),
        "{text}"
    );
    assert!(text.contains("is the server running"), "{text}");
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn prometheus_killed_in_the_middle_of_a_load() {
    let _ = E2E;
    let known = Known::new();
    let query = RangeQuery::new(
        "known_gauge",
        known.base,
        known.base + (support::KNOWN_POINTS - 1) * 1000,
        Duration::from_secs(1),
    )
    .unwrap();

    // Materialised load: kill the server as soon as the first chunk is in.
    let mut prometheus = BackfilledPrometheus::start(&known.all()).await;
    let client = quick(&prometheus.url)
        .max_points_per_request(500)
        .concurrency(1)
        .build()
        .unwrap();
    let pid = prometheus.pid().unwrap() as i32;
    let mut chunks = 0;
    let err = client
        .query_range_with_progress(&query, |p| {
            chunks = p.chunks_done;
            if p.chunks_done == 1 {
                // SAFETY: kill(2) on the pid of the child this test started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        })
        .await
        .unwrap_err();
    assert_eq!(chunks, 1, "no chunk after the kill");
    assert!(
        matches!(err, Error::Connect { .. } | Error::Transport { .. }),
        "{err:?}"
    );
    prometheus.kill().await;

    // Streaming: the stream yields the chunks it has, then the error, then ends.
    let mut prometheus = BackfilledPrometheus::start(&known.all()).await;
    let client = quick(&prometheus.url)
        .max_points_per_request(500)
        .concurrency(2)
        .build()
        .unwrap();
    let mut stream = std::pin::pin!(client.query_range_chunks(&query));
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.n_rows(), 500);
    prometheus.kill().await;
    let mut saw_error = false;
    let mut after_error = 0;
    while let Some(item) = stream.next().await {
        if saw_error {
            after_error += 1;
        }
        saw_error |= item.is_err();
    }
    assert!(saw_error, "the stream ended without reporting the failure");
    assert_eq!(after_error, 0, "the stream went on after its error");
}
