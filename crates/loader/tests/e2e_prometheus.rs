//! End to end against real engines whose TSDB promtool backfilled with known data: Prometheus
//! 2.42, Prometheus 3 and Thanos Query over two Prometheus 3 replicas. Each test runs once per
//! engine (`prometheus_2::…`, `prometheus_3::…`, `thanos::…`); where the engines differ, the
//! test says which semantics each has ([`Engine`]), never skips.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use promlearn_loader::{
    Client, Error, Matrix, MissingPolicy, RangeQuery, is_missing,
    tutorial::{Dataset, KeyMode},
};
use support::{BackfilledPrometheus, Engine, KNOWN_POINTS, Known, value_a, value_b};

/// Each named test, once per engine, as `#[ignore]`d tests (run by `cargo xtask e2e`).
macro_rules! on_every_engine {
    ($($test:ident),* $(,)?) => {
        on_every_engine!(@engine prometheus_2, Prometheus2, $($test),*);
        on_every_engine!(@engine prometheus_3, Prometheus3, $($test),*);
        on_every_engine!(@engine thanos, Thanos, $($test),*);
    };
    (@engine $module:ident, $engine:ident, $($test:ident),*) => {
        mod $module {
            $(
                #[tokio::test]
                #[ignore = "needs real servers: run cargo xtask e2e"]
                async fn $test() {
                    super::$test(super::Engine::$engine).await
                }
            )*
        }
    };
}

on_every_engine!(
    every_value_and_timestamp_reads_back_exactly,
    chunked_equals_unchunked,
    a_gap_comes_back_as_the_policy_says,
    the_tutorial_dataset_over_known_data,
    prometheus_errors_are_typed_with_its_own_words,
    utf8_names_in_selectors_and_column_names,
    native_histograms_and_infos_leave_the_rest_of_the_answer_whole,
);

async fn start(engine: Engine, known: &Known) -> BackfilledPrometheus {
    BackfilledPrometheus::start_on(engine, &known.for_engine(engine)).await
}

fn client(url: &str) -> promlearn_loader::ClientBuilder {
    Client::builder(url).no_proxy()
}

fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn assert_same(a: &Matrix, b: &Matrix) {
    assert_eq!(a.timestamps(), b.timestamps());
    assert_eq!(a.series(), b.series());
    assert!(same_bits(a.values(), b.values()), "values differ");
}

async fn every_value_and_timestamp_reads_back_exactly(engine: Engine) {
    let known = Known::new();
    let prometheus = start(engine, &known).await;
    let last = known.base + (KNOWN_POINTS - 1) * 1000;
    let query = RangeQuery::new("known_gauge", known.base, last, Duration::from_secs(1)).unwrap();
    let c = client(&prometheus.url).build().unwrap();
    assert_eq!(c.plan(&query).len(), 4, "25,000 points need chunks");
    let m = c.query_range(&query).await.unwrap();
    assert_eq!(m.n_rows(), KNOWN_POINTS as usize);
    assert_eq!(m.timestamps()[0], known.base);
    assert_eq!(m.timestamps()[m.n_rows() - 1], last);
    assert_eq!(m.n_series(), 2);
    let a = m.position(&known.a.label_set()).expect("series a");
    let b = m.position(&known.b.label_set()).expect("series b");
    for i in 0..KNOWN_POINTS as usize {
        let got = m.column(a)[i];
        assert_eq!(got.to_bits(), value_a(i as i64).to_bits(), "a[{i}]: {got}");
    }
    // b's samples sit 250 ms after each second: the row at second i shows sample i - 1.
    assert!(is_missing(m.column(b)[0]));
    for i in 1..KNOWN_POINTS as usize {
        assert_eq!(m.column(b)[i], value_b(i as i64 - 1), "b[{i}]");
    }
    assert!(m.warnings().is_empty());

    // Raw mode: every stored sample with its own timestamp, across 1 h windows.
    let raw = client(&prometheus.url)
        .raw_chunk(Duration::from_secs(3600))
        .build()
        .unwrap()
        .query_raw("known_gauge", known.base, last + 250)
        .await
        .unwrap();
    assert_eq!(raw.series.len(), 2);
    for s in &raw.series {
        let expected = if s.labels == known.a.label_set() {
            &known.a
        } else {
            &known.b
        };
        assert_eq!(s.labels, expected.label_set());
        let times: Vec<i64> = expected.samples.iter().map(|(t, _)| *t).collect();
        let values: Vec<f64> = expected.samples.iter().map(|(_, v)| *v).collect();
        assert_eq!(s.timestamps, times, "{}", s.labels);
        assert!(same_bits(&s.values, &values), "{}", s.labels);
    }
}

async fn chunked_equals_unchunked(engine: Engine) {
    let known = Known::new();
    let prometheus = start(engine, &known).await;
    // 10,000 points fit one request; cut them every way.
    let start = known.base + 7_000;
    let query = RangeQuery::new(
        "known_gauge",
        start,
        start + 9_999 * 1000,
        Duration::from_secs(1),
    )
    .unwrap();
    let whole = client(&prometheus.url)
        .concurrency(1)
        .min_points_per_request(usize::MAX)
        .build()
        .unwrap();
    assert_eq!(whole.plan(&query).len(), 1);
    let reference = whole.query_range(&query).await.unwrap();
    assert_eq!(reference.sample_count(), 2 * 10_000);
    for (max_points, concurrency) in [(997, 4), (3_001, 2), (5_000, 1), (11_000, 8)] {
        let chunked = client(&prometheus.url)
            .max_points_per_request(max_points)
            .concurrency(concurrency)
            .build()
            .unwrap();
        let m = chunked.query_range(&query).await.unwrap();
        assert_same(&m, &reference);
        // The streaming form yields the same rows, in order, chunk by chunk.
        let parts: Vec<Matrix> = chunked
            .query_range_chunks(&query)
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(parts.len(), chunked.plan(&query).len());
        let times: Vec<i64> = parts.iter().flat_map(|p| p.timestamps().to_vec()).collect();
        assert_eq!(times, reference.timestamps());
        for (s, labels) in reference.series().iter().enumerate() {
            let joined: Vec<f64> = parts
                .iter()
                .flat_map(|p| p.column(p.position(labels).unwrap()).to_vec())
                .collect();
            assert!(same_bits(&joined, reference.column(s)));
        }
    }
    // Past the 11,000-point limit: chunked range rows equal the raw samples of series a.
    let query = RangeQuery::new(
        "known_gauge{series=\"a\"}",
        known.base,
        known.base + (KNOWN_POINTS - 1) * 1000,
        Duration::from_secs(1),
    )
    .unwrap();
    let m = client(&prometheus.url)
        .build()
        .unwrap()
        .query_range(&query)
        .await
        .unwrap();
    let raw = client(&prometheus.url)
        .raw_chunk(Duration::from_secs(86_400))
        .build()
        .unwrap()
        .query_raw("known_gauge{series=\"a\"}", query.start_ms, query.end_ms)
        .await
        .unwrap();
    assert_eq!(raw.series[0].timestamps, m.timestamps());
    assert!(same_bits(&raw.series[0].values, m.column(0)));
}

async fn a_gap_comes_back_as_the_policy_says(engine: Engine) {
    let known = Known::new();
    let prometheus = start(engine, &known).await;
    let query = RangeQuery::new(
        "known_gap",
        known.base,
        known.base + 1_399_000,
        Duration::from_secs(1),
    )
    .unwrap();
    let c = client(&prometheus.url).build().unwrap();
    let m = c.query_range(&query).await.unwrap();
    assert_eq!(m.n_rows(), 1400);
    // Samples at seconds 0..100 and 1300..1400. The 5-minute look-back carries sample 99 up to
    // second 399 where the window is closed on the left (Prometheus 2: a sample exactly 5 min
    // old counts), to 398 where it is open (Prometheus 3, and Thanos's querier); after that and
    // up to 1299 there is nothing: missing cells (NaN).
    let carried: usize = if engine.lookback_includes_its_start() {
        399
    } else {
        398
    };
    let column = m.column(0);
    for (i, v) in column.iter().enumerate() {
        match i {
            0..100 | 1300..1400 => assert_eq!(*v, i as f64, "row {i}"),
            100.. if i <= carried => assert_eq!(*v, 99.0, "row {i} ({engine:?})"),
            _ => assert!(
                v.is_nan() && is_missing(*v) && m.get(i, 0).is_none(),
                "row {i}: {v}"
            ),
        }
    }

    let mut skipped = m.clone();
    skipped.apply(MissingPolicy::Skip);
    assert_eq!(skipped.n_rows(), carried + 101);
    assert!(skipped.timestamps().iter().all(|t| {
        let s = (t - known.base) as usize / 1000;
        !(carried + 1..1300).contains(&s)
    }));

    let mut filled = m.clone();
    filled.apply(MissingPolicy::ForwardFill {
        max_gap: Duration::from_secs(600),
    });
    // Carried 600 s past the last row that held a value.
    for (i, v) in filled.column(0).iter().enumerate() {
        match i {
            0..1300 if i > carried && i <= carried + 600 => assert_eq!(*v, 99.0, "row {i}"),
            0..1300 if i > carried + 600 => assert!(is_missing(*v), "row {i}"),
            _ => assert_eq!(v.to_bits(), column[i].to_bits(), "row {i}"),
        }
    }

    // The tutorial dataset with each policy.
    let ds = |missing| {
        Dataset::builder("known_gap", 10)
            .client(c.clone())
            .offset(known.base + 405_000)
            .missing(missing)
            .load()
    };
    // Seconds 395..=404: values up to `carried`, then missing.
    let present = carried - 394;
    let nan = ds(MissingPolicy::Nan).await.unwrap();
    let values: Vec<f64> = nan.iter().map(|(_, v)| v[""][""]["known_gap"]).collect();
    assert_eq!(values[..present], vec![99.0; present]);
    assert!(values[present..].iter().all(|v| v.is_nan()), "{values:?}");
    assert_eq!(ds(MissingPolicy::Skip).await.unwrap().len(), present);
    let filled = ds(MissingPolicy::ForwardFill {
        max_gap: Duration::from_secs(3),
    })
    .await
    .unwrap();
    // ... carried 3 s more, then missing.
    let series = filled.get("", "", "known_gap").unwrap();
    assert_eq!(series[..present + 3], vec![99.0; present + 3]);
    assert!(
        series[present + 3..].iter().all(|v| v.is_nan()),
        "{series:?}"
    );
}

async fn the_tutorial_dataset_over_known_data(engine: Engine) {
    let known = Known::new();
    let prometheus = start(engine, &known).await;
    let offset = known.base + 10_000_000;
    let ds = Dataset::from_prometheus("known_gauge", 5, Some(offset), Some(&prometheus.url)).await;
    // Both series share (job "", instance "", known_gauge): refused, naming both label sets.
    let err = ds.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::KeyCollision { .. }), "{err:?}");
    assert!(
        text.contains(r#"series="a""#) && text.contains(r#"series="b""#),
        "{text}"
    );

    let ds = Dataset::from_prometheus(
        "known_gauge{series=\"a\"}",
        5,
        Some(offset),
        Some(&prometheus.url),
    )
    .await
    .unwrap();
    assert_eq!(
        ds.element_spec().to_string(),
        "(TensorSpec(shape=(), dtype=tf.int64, name=None), {'': {'': {'known_gauge': \
         TensorSpec(shape=(), dtype=tf.float64, name=None)}}})"
    );
    let elements: Vec<_> = ds.iter().collect();
    assert_eq!(elements.len(), 5);
    for (k, (t, v)) in elements.iter().enumerate() {
        let second = 9_995 + k as i64;
        assert_eq!(*t, known.base + second * 1000);
        assert_eq!(v[""][""]["known_gauge"], value_a(second));
    }

    let all = Dataset::builder("known_gauge", 5)
        .endpoint(&prometheus.url)
        .offset(offset)
        .key_mode(KeyMode::AllLabels)
        .load()
        .await
        .unwrap();
    assert_eq!(
        all.get("", "", r#"known_gauge{extra="x\"y", series="b"}"#)
            .unwrap()[4],
        value_b(9_998)
    );
}

async fn prometheus_errors_are_typed_with_its_own_words(engine: Engine) {
    let known = Known::new();
    let prometheus = start(engine, &known).await;
    let c = client(&prometheus.url).build().unwrap();
    let q = |promql: &str| {
        RangeQuery::new(
            promql,
            known.base,
            known.base + 60_000,
            Duration::from_secs(1),
        )
        .unwrap()
    };

    let err = c.query_range(&q("rate(known_gauge[5m]")).await.unwrap_err();
    match &err {
        Error::Api {
            status,
            error_type,
            message,
            query,
            ..
        } => {
            assert_eq!((*status, error_type.as_str()), (400, "bad_data"));
            assert!(message.contains("parse error"), "{message}");
            assert_eq!(query, "rate(known_gauge[5m]");
        }
        other => panic!("{other:?}"),
    }

    // A server limit: more points per request than Prometheus allows.
    let big = client(&prometheus.url)
        .max_points_per_request(20_000)
        .min_points_per_request(usize::MAX)
        .build()
        .unwrap();
    let err = big
        .query_range(
            &RangeQuery::new(
                "known_gauge",
                known.base,
                known.base + 15_000_000,
                Duration::from_secs(1),
            )
            .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("11,000 points"), "{err}");

    // 11,001 points are the most one request may hold; the client may be told to use them.
    let edge = client(&prometheus.url)
        .max_points_per_request(11_001)
        .min_points_per_request(usize::MAX)
        .build()
        .unwrap();
    let q11001 = RangeQuery::new(
        "known_gauge{series=\"a\"}",
        known.base,
        known.base + 11_000_000,
        Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!(edge.plan(&q11001).len(), 1);
    assert_eq!(edge.query_range(&q11001).await.unwrap().n_rows(), 11_001);

    // A wrong path: Prometheus's 404 text, reported as not a Prometheus API.
    let wrong = client(&format!("{}/nope", prometheus.url)).build().unwrap();
    let err = wrong.query_range(&q("known_gauge")).await.unwrap_err();
    assert!(
        matches!(err, Error::NotPrometheus { status: 404, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("404 page not found"), "{err}");

    // Raw samples need a plain selector: Prometheus says why.
    let err = c
        .query_raw("rate(known_gauge[1m])", known.base, known.base + 60_000)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Api { .. }), "{err:?}");
}

async fn utf8_names_in_selectors_and_column_names(engine: Engine) {
    let known = Known::new();
    let prometheus = start(engine, &known).await;
    let c = client(&prometheus.url).build().unwrap();
    let selector = r#"{"known.utf8","ünit.x"="a.b"}"#;
    let last = known.base + 99_000;
    let query = RangeQuery::new(selector, known.base, last, Duration::from_secs(1)).unwrap();
    if !engine.utf8_names() {
        // Prometheus 2.42 knows no quoted names: its own parse error, typed.
        let err = c.query_range(&query).await.unwrap_err();
        match &err {
            Error::Api {
                status, error_type, ..
            } => assert_eq!((*status, error_type.as_str()), (400, "bad_data"), "{err}"),
            other => panic!("{other:?}"),
        }
        return;
    }
    let m = c.query_range(&query).await.unwrap();
    assert_eq!(m.series(), [known.utf8.label_set()]);
    let expected: Vec<f64> = (0..100).map(f64::from).collect();
    assert_eq!(m.column(0), expected);
    // A column is named by its series in PromQL form, and that name selects it again.
    let name = m.series()[0].to_string();
    assert_eq!(name, r#"{"known.utf8", "ünit.x"="a.b"}"#);
    let again = c
        .query_range(&RangeQuery::new(&name, known.base, last, Duration::from_secs(1)).unwrap())
        .await
        .unwrap();
    assert_eq!(again.series(), m.series());
    #[cfg(feature = "export")]
    {
        let mut csv = Vec::new();
        m.write_csv(&mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(
            csv.starts_with("timestamp_ms,\"{\"\"known.utf8\"\", \"\"ünit.x\"\"=\"\"a.b\"\"}\"\n"),
            "{csv:.200}"
        );
    }
    // Raw samples through a quoted selector.
    let raw = c.query_raw(selector, known.base, last).await.unwrap();
    assert_eq!(raw.series.len(), 1);
    assert_eq!(raw.series[0].values, expected);
}

async fn native_histograms_and_infos_leave_the_rest_of_the_answer_whole(engine: Engine) {
    let known = Known::new();
    let prometheus = start(engine, &known).await;
    let c = client(&prometheus.url).build().unwrap();
    let histogram = "prometheus_http_request_duration_seconds";
    // Prometheus scrapes itself every second; wait until its request-duration histogram has a
    // sample for the /metrics handler (a native histogram on Prometheus 3, classic buckets on 2.42).
    let selector = format!("{{__name__=~\"{histogram}|{histogram}_bucket|up\"}}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let m = loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let from = now - 10_000;
        let query = RangeQuery::new(&selector, from, now, Duration::from_secs(1)).unwrap();
        let m = c.query_range(&query).await.unwrap();
        let warned = m.warnings().iter().any(|w| w.contains(histogram));
        let buckets = m
            .series()
            .iter()
            .any(|l| l.metric_name() == Some(&format!("{histogram}_bucket")));
        if warned || buckets || std::time::Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The float series of the same answer are all there: `up` of each scraped Prometheus.
    let up: Vec<_> = m
        .series()
        .iter()
        .filter(|l| l.metric_name() == Some("up"))
        .collect();
    assert!(!up.is_empty(), "{:?}", m.series());
    assert!(
        m.series()
            .iter()
            .all(|l| l.metric_name() != Some(histogram)),
        "no column for a histogram series: {:?}",
        m.series()
    );
    let histogram_warnings: Vec<&String> = m
        .warnings()
        .iter()
        .filter(|w| w.contains(histogram))
        .collect();
    if engine.native_histograms() {
        assert!(
            !histogram_warnings.is_empty()
                && histogram_warnings
                    .iter()
                    .all(|w| w.contains("left out of the answer")),
            "{:?}",
            m.warnings()
        );
    } else {
        assert!(histogram_warnings.is_empty(), "{:?}", m.warnings());
        assert!(
            m.series()
                .iter()
                .any(|l| l.metric_name() == Some(&format!("{histogram}_bucket"))),
            "2.42 stores the classic buckets: {:?}",
            m.series()
        );
    }

    // `infos` beside the data: Prometheus 3 annotates rate() over a name that is not a
    // counter's; 2.42 has no infos. Either way the answer decodes whole.
    let promql = "rate(known_gauge{series=\"b\"}[1m])";
    let at = known.base + 3_600_000;
    let body = reqwest::Client::new()
        .get(format!("{}/api/v1/query", prometheus.url))
        .query(&[("query", promql), ("time", &format!("{}", at / 1000))])
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let answer = promlearn_loader::decode::decode(&body).unwrap();
    assert_eq!(answer.series.len(), 1, "{answer:?}");
    let annotated = |notes: &[String]| notes.iter().any(|i| i.contains("might not be a counter"));
    match engine {
        Engine::Prometheus2 => {
            assert!(
                answer.infos.is_empty() && answer.warnings.is_empty(),
                "{answer:?}"
            )
        }
        Engine::Prometheus3 => assert!(annotated(&answer.infos), "{answer:?}"),
        // Thanos 0.40's querier hands every annotation out as a warning; it has no `infos`.
        Engine::Thanos => assert!(
            annotated(&answer.warnings) && answer.infos.is_empty(),
            "{answer:?}"
        ),
    }
    let m = c
        .query_range(&RangeQuery::new(promql, at, at + 10_000, Duration::from_secs(1)).unwrap())
        .await
        .unwrap();
    // b rises by 0.25 a second.
    assert!(
        m.column(0).iter().all(|v| (v - 0.25).abs() < 1e-9),
        "{:?}",
        m.column(0)
    );
    // The loader hands the annotation on where the server put it.
    match engine {
        Engine::Prometheus2 => assert!(m.infos().is_empty() && m.warnings().is_empty()),
        Engine::Prometheus3 => assert!(annotated(m.infos()) && m.warnings().is_empty()),
        Engine::Thanos => assert!(annotated(m.warnings()) && m.infos().is_empty()),
    }
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn thanos_deduplicates_replicas_and_warns_of_a_partial_answer() {
    let known = Known::new();
    let mut thanos = start(Engine::Thanos, &known).await;
    let query = RangeQuery::new(
        "known_gauge",
        known.base,
        known.base + 5_999_000,
        Duration::from_secs(1),
    )
    .unwrap();
    let c = client(&thanos.url).build().unwrap();
    let both = c.query_range(&query).await.unwrap();
    // Two replicas hold each series; the querier hands out one of each, without `replica`.
    let mut series = both.series().to_vec();
    series.sort();
    let mut expected = vec![known.a.label_set(), known.b.label_set()];
    expected.sort();
    assert_eq!(series, expected);
    // Every second of a; of b every second but the first (its samples sit 250 ms after).
    assert_eq!(both.sample_count(), 6_000 + 5_999);
    assert!(both.warnings().is_empty(), "{:?}", both.warnings());

    // One sidecar lost: the same data from the other replica, and a warning that says so.
    let setup = thanos.thanos().expect("a Thanos set-up");
    setup.stop_sidecar(0).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let partial = loop {
        let m = c.query_range(&query).await.unwrap();
        if !m.warnings().is_empty() || std::time::Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        partial.warnings().iter().any(|w| w.contains("127.0.0.1")),
        "a warning naming the lost store: {:?}",
        partial.warnings()
    );
    assert_same(&partial, &both);
}
