//! End to end against a real Prometheus whose TSDB promtool backfilled with known data.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use promlearn_loader::{
    Client, Error, Matrix, MissingPolicy, RangeQuery, is_missing,
    tutorial::{Dataset, KeyMode},
};
use support::{BackfilledPrometheus, KNOWN_POINTS, Known, value_a, value_b};

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

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn every_value_and_timestamp_reads_back_exactly() {
    let known = Known::new();
    let prometheus = BackfilledPrometheus::start(&known.all()).await;
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

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn chunked_equals_unchunked() {
    let known = Known::new();
    let prometheus = BackfilledPrometheus::start(&known.all()).await;
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

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn a_gap_comes_back_as_the_policy_says() {
    let known = Known::new();
    let prometheus = BackfilledPrometheus::start(&known.all()).await;
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
    // Samples at seconds 0..100 and 1300..1400. Prometheus's 5-minute look-back carries sample
    // 99 up to second 399 inclusive; from 400 to 1299 there is nothing: missing cells (NaN).
    let column = m.column(0);
    for (i, v) in column.iter().enumerate() {
        match i {
            0..100 | 1300..1400 => assert_eq!(*v, i as f64, "row {i}"),
            100..400 => assert_eq!(*v, 99.0, "row {i}"),
            _ => assert!(
                v.is_nan() && is_missing(*v) && m.get(i, 0).is_none(),
                "row {i}: {v}"
            ),
        }
    }

    let mut skipped = m.clone();
    skipped.apply(MissingPolicy::Skip);
    assert_eq!(skipped.n_rows(), 500);
    assert!(skipped.timestamps().iter().all(|t| {
        let s = (t - known.base) / 1000;
        !(400..1300).contains(&s)
    }));

    let mut filled = m.clone();
    filled.apply(MissingPolicy::ForwardFill {
        max_gap: Duration::from_secs(600),
    });
    for (i, v) in filled.column(0).iter().enumerate() {
        match i {
            400..=999 => assert_eq!(*v, 99.0, "row {i}"),
            1000..1300 => assert!(is_missing(*v), "row {i}"),
            _ => assert_eq!(*v, column[i]),
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
    let nan = ds(MissingPolicy::Nan).await.unwrap();
    let values: Vec<f64> = nan.iter().map(|(_, v)| v[""][""]["known_gap"]).collect();
    assert_eq!(values[..5], [99.0; 5]);
    assert!(values[5..].iter().all(|v| v.is_nan()));
    assert_eq!(ds(MissingPolicy::Skip).await.unwrap().len(), 5);
    let filled = ds(MissingPolicy::ForwardFill {
        max_gap: Duration::from_secs(3),
    })
    .await
    .unwrap();
    // Seconds 395..=404: samples to 399, carried 3 s to 402, then missing.
    assert_eq!(filled.get("", "", "known_gap").unwrap()[..8], [99.0; 8]);
    assert!(
        filled.get("", "", "known_gap").unwrap()[8..]
            .iter()
            .all(|v| v.is_nan())
    );
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn the_tutorial_dataset_over_known_data() {
    let known = Known::new();
    let prometheus = BackfilledPrometheus::start(&known.all()).await;
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

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn prometheus_errors_are_typed_with_its_own_words() {
    let known = Known::new();
    let prometheus = BackfilledPrometheus::start(&known.all()).await;
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
