//! The client's credentials, URLs and raw-sample windows, without a server.

use super::raw::Window;
use super::*;
use crate::{
    Labels,
    decode::{Series, Sink},
};

#[test]
fn credentials_never_show() {
    let client = Client::builder("http://alice:hunter2@127.0.0.1:9090/prefix")
        .header("X-Api-Key", "k3y-value")
        .build()
        .unwrap();
    let debug = format!("{client:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("k3y-value"),
        "{debug}"
    );
    assert!(debug.contains("alice"), "{debug}");
    assert_eq!(client.endpoint(), "http://127.0.0.1:9090/prefix/");
    let token = Client::builder("http://h")
        .bearer_token("t0ken")
        .build()
        .unwrap();
    assert!(!format!("{token:?}").contains("t0ken"));
    let bad = Client::builder("http//alice:hunter2@h")
        .build()
        .unwrap_err();
    assert!(!bad.to_string().contains("hunter2"), "{bad}");
    let bad = Client::builder("ftp://alice:hunter2@h")
        .build()
        .unwrap_err();
    assert!(!bad.to_string().contains("hunter2"), "{bad}");
}

#[test]
fn urls_join_the_base_path() {
    let client = Client::new("http://127.0.0.1:9090").unwrap();
    assert_eq!(client.endpoint(), "http://127.0.0.1:9090");
    let q = RangeQuery::new("up{job=\"a b\"}", 1_000, 5_500, Duration::from_millis(500)).unwrap();
    assert_eq!(
        client.range_url(&q).as_str(),
        "http://127.0.0.1:9090/api/v1/query_range?query=up%7Bjob%3D%22a+b%22%7D&start=1&end=5.500&step=0.500&nocache=1"
    );
    let mimir = Client::new("https://mimir.example/prometheus").unwrap();
    assert!(
        mimir
            .range_url(&q)
            .as_str()
            .starts_with("https://mimir.example/prometheus/api/v1/query_range?")
    );
}

#[test]
fn raw_windows_keep_their_own_samples() {
    let mut w = Window {
        lo: 10,
        hi: 20,
        collect: Collect::default(),
    };
    w.begin_series(Labels::default()).unwrap();
    for t in [9, 10, 15, 20, 21] {
        w.point(t, t as f64).unwrap();
    }
    assert_eq!(w.collect.series[0].timestamps, [10, 15, 20]);
}

#[test]
fn raw_series_align_on_their_union() {
    let raw = RawSeries {
        series: vec![
            Series {
                labels: Labels::from_pairs([("k", "a")]),
                timestamps: vec![1, 3],
                values: vec![1.0, 3.0],
            },
            Series {
                labels: Labels::from_pairs([("k", "b")]),
                timestamps: vec![2, 3],
                values: vec![20.0, 30.0],
            },
        ],
        warnings: vec![],
    };
    let m = raw.to_matrix();
    assert_eq!(m.timestamps(), [1, 2, 3]);
    assert_eq!(m.get(0, 0), Some(1.0));
    assert_eq!(m.get(1, 0), None);
    assert_eq!(m.get(2, 1), Some(30.0));
}
