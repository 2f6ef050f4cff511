//! The decoder on answers recorded from real Prometheus and VictoriaMetrics (fixtures/loader).

use std::path::PathBuf;

use promlearn_loader::{
    Error,
    decode::{Collect, Decoder, decode_http},
};

fn fixture(name: &str) -> (u16, Vec<u8>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/loader")
        .join(name);
    let status = name.split('.').nth(1).unwrap().parse().unwrap();
    (
        status,
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
}

#[test]
fn a_range_answer() {
    let (status, body) = fixture("range_success.200.json");
    let a = decode_http(status, &body).unwrap();
    assert_eq!(a.result_type, "matrix");
    assert_eq!(a.series.len(), 1);
    let s = &a.series[0];
    assert_eq!(s.labels.metric_name(), Some("up"));
    assert_eq!(s.labels.get("job"), Some("prometheus"));
    assert_eq!(s.timestamps.len(), 10);
    assert!(s.timestamps.windows(2).all(|w| w[1] - w[0] == 1000));
    assert!(s.values.iter().all(|v| *v == 1.0));
    assert!(a.warnings.is_empty());
}

#[test]
fn special_values() {
    let (status, body) = fixture("range_special_values.200.json");
    let a = decode_http(status, &body).unwrap();
    let value = |v: &str| {
        let s = a
            .series
            .iter()
            .find(|s| s.labels.get("v") == Some(v))
            .unwrap_or_else(|| panic!("series v={v}"));
        assert!(s.labels.metric_name().is_none());
        assert_eq!(s.values.len(), 10);
        s.values[0]
    };
    assert!(value("nan").is_nan());
    assert_eq!(value("+inf"), f64::INFINITY);
    assert_eq!(value("-inf"), f64::NEG_INFINITY);
    assert_eq!(value("tiny"), 1e-7);
    assert_eq!(value("huge"), -2.5e21);
    assert_eq!(value("tenth"), 0.1);
}

#[test]
fn many_series_decode_alike_in_any_pieces() {
    let (status, body) = fixture("range_many_series.200.json");
    let whole = decode_http(status, &body).unwrap();
    assert!(whole.series.len() > 100, "{} series", whole.series.len());
    // Prometheus sorts series by labels; so do we, with the same comparison.
    assert!(whole.series.windows(2).all(|w| w[0].labels < w[1].labels));
    for piece in [1, 2, 3, 10, 100, 1000, 4096] {
        let mut d = Decoder::new(Collect::default());
        for part in body.chunks(piece) {
            d.feed(part).unwrap();
        }
        let (envelope, collect) = d.finish().unwrap();
        assert_eq!(envelope.series, whole.series.len());
        assert_eq!(collect.series.len(), whole.series.len());
        for (a, b) in collect.series.iter().zip(&whole.series) {
            assert_eq!(a.labels, b.labels);
            assert_eq!(a.timestamps, b.timestamps);
            assert_eq!(
                a.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                b.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn empty_and_warnings() {
    let (status, body) = fixture("range_empty.200.json");
    let a = decode_http(status, &body).unwrap();
    assert!(a.series.is_empty() && a.warnings.is_empty());
    let (status, body) = fixture("range_warnings.200.json");
    let a = decode_http(status, &body).unwrap();
    assert_eq!(a.warnings.len(), 1);
    assert!(
        a.warnings[0].starts_with("remote_read: "),
        "{:?}",
        a.warnings
    );
}

fn api_error(name: &str) -> (u16, String, String, Error) {
    let (status, body) = fixture(name);
    let err = decode_http(status, &body).unwrap_err();
    match &err {
        Error::Api {
            status,
            error_type,
            message,
            ..
        } => (*status, error_type.clone(), message.clone(), err),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn errors_carry_prometheus_own_words_and_are_not_retried() {
    let (status, kind, message, err) = api_error("error_bad_data.400.json");
    assert_eq!((status, kind.as_str()), (400, "bad_data"));
    assert_eq!(message, "1:12: parse error: unclosed left parenthesis");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("fix the query"), "{err}");

    let (status, kind, message, err) = api_error("error_too_many_points.400.json");
    assert_eq!((status, kind.as_str()), (400, "bad_data"));
    assert!(message.contains("11,000 points"), "{message}");
    assert!(!err.is_retryable());

    let (status, kind, message, err) = api_error("error_execution.422.json");
    assert_eq!((status, kind.as_str()), (422, "execution"));
    assert!(message.contains("many-to-one"), "{message}");
    assert!(!err.is_retryable());
}

#[test]
fn instant_answers() {
    let (status, body) = fixture("instant_vector.200.json");
    let a = decode_http(status, &body).unwrap();
    assert_eq!(a.result_type, "vector");
    assert_eq!(a.series[0].timestamps.len(), 1);
    assert_eq!(a.series[0].timestamps[0] % 1000, 500);

    let (status, body) = fixture("instant_scalar.200.json");
    let a = decode_http(status, &body).unwrap();
    assert_eq!(a.result_type, "scalar");
    let (t, v) = a.scalar.unwrap();
    assert_eq!((t % 1000, v), (123, 1.5));

    let (status, body) = fixture("instant_raw_matrix.200.json");
    let a = decode_http(status, &body).unwrap();
    assert_eq!(a.result_type, "matrix");
    let ts = &a.series[0].timestamps;
    assert!(ts.len() >= 4, "{ts:?}");
    // Raw samples keep their scrape times, to the millisecond.
    assert!(ts.windows(2).all(|w| w[1] > w[0]));
}

#[test]
fn a_wrong_path_is_not_prometheus() {
    let (status, body) = fixture("not_found.404.txt");
    let err = decode_http(status, &body).unwrap_err();
    match &err {
        Error::NotPrometheus {
            status, snippet, ..
        } => {
            assert_eq!(*status, 404);
            assert_eq!(snippet, "404 page not found");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("base URL"), "{err}");
}

#[test]
fn victoria_metrics_answers_the_same_way() {
    let (status, body) = fixture("vm_range.200.json");
    let a = decode_http(status, &body).unwrap();
    assert_eq!(a.series[0].values, [1.5, 2.5, 3.5]);
    assert_eq!(a.series[0].labels.get("job"), Some("a"));
}
