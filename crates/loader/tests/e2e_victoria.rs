//! End to end against a real VictoriaMetrics holding the same known data as the Prometheus tests.

mod support;

use std::time::Duration;

use promlearn_loader::{Client, RangeQuery, is_missing};
use support::{KNOWN_POINTS, Known, Victoria, value_a, value_b};

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn victoria_metrics_works_unchanged() {
    let known = Known::new();
    // VictoriaMetrics stores values as decimals with one exponent per block, so the extreme
    // values at seconds 100..=107 (NaN, infinities, f64::MAX, 5e-324, ...) would cost their
    // neighbours precision there; it gets the ordinary ones.
    let mut a = known.a.clone();
    a.samples
        .retain(|(t, _)| !(100..=107).contains(&((t - known.base) / 1000)));
    let vm = Victoria::start(&[a.clone(), known.b.clone()]).await;
    let client = Client::builder(&vm.url).no_proxy().build().unwrap();
    let last = known.base + (KNOWN_POINTS - 1) * 1000;

    // Raw samples: every stored value at its own millisecond.
    let raw = client
        .query_raw("known_gauge", known.base, last + 250)
        .await;
    let raw = raw.unwrap_or_else(|e| panic!("{e}\n{}", vm.log()));
    assert_eq!(raw.series.len(), 2);
    for s in &raw.series {
        let expected = if s.labels == a.label_set() {
            &a
        } else {
            &known.b
        };
        let times: Vec<i64> = expected.samples.iter().map(|(t, _)| *t).collect();
        let values: Vec<f64> = expected.samples.iter().map(|(_, v)| *v).collect();
        assert_eq!(s.timestamps.len(), times.len(), "{}", s.labels);
        let first_difference =
            (0..times.len()).find(|&i| s.timestamps[i] != times[i] || s.values[i] != values[i]);
        assert_eq!(first_difference, None, "{}", s.labels);
    }

    // Range queries on the requested grid (nocache=1 keeps VictoriaMetrics from moving it),
    // chunked past 11,000 points, equal to the data where a sample sits on the grid point.
    let query = RangeQuery::new(
        "known_gauge{series=\"a\"}",
        known.base,
        last,
        Duration::from_secs(1),
    )
    .unwrap();
    let m = client.query_range(&query).await.unwrap();
    assert_eq!(m.timestamps(), query.timestamps());
    for i in 0..KNOWN_POINTS {
        let v = m.column(0)[i as usize];
        let expected = value_a(i);
        if !(100..=107).contains(&i) {
            assert_eq!(v.to_bits(), expected.to_bits(), "a[{i}]");
        }
    }
    // An unaligned start (the tutorial's "now") stays on the requested grid too.
    let shifted = RangeQuery::new(
        "known_gauge{series=\"b\"}",
        known.base + 1_500,
        known.base + 60_500,
        Duration::from_secs(1),
    )
    .unwrap();
    let m = client.query_range(&shifted).await.unwrap();
    assert_eq!(m.timestamps(), shifted.timestamps());
    // Sample i sits at i s + 250 ms, so the row at i s + 500 ms shows it.
    for (row, v) in m.column(0).iter().enumerate() {
        assert!(!is_missing(*v));
        assert_eq!(*v, value_b(row as i64 + 1), "row {row}");
    }
}
