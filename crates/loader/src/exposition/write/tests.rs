//! The writer against the parser of the same module: what one writes the other reads back, bit
//! for bit, and the float rule pinned on its edges.

use super::*;
use crate::exposition::{Sample, parse, parse_value};

#[test]
fn values_follow_one_rule_at_its_edges() {
    for (value, text) in [
        (0.0, "0"),
        (-0.0, "-0"),
        (3.0, "3"),
        (-0.5, "-0.5"),
        (0.1, "0.1"),
        (123456789.125, "123456789.125"),
        (1e-7, "0.0000001"),
        (9.9e-8, "9.9e-8"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (5e-324, "5e-324"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
    ] {
        assert_eq!(format_value(value), text, "{value:?}");
    }
}

/// xorshift64*: bit patterns across the whole range of f64, reproducible.
fn bit_patterns(n: usize) -> impl Iterator<Item = f64> {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    (0..n).map(move |_| {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        f64::from_bits(x.wrapping_mul(0x2545_F491_4F6C_DD1D))
    })
}

#[test]
fn every_value_reads_back_to_the_same_bits() {
    for value in bit_patterns(200_000).chain([f64::MIN_POSITIVE, f64::MAX, -f64::MAX]) {
        let text = format_value(value);
        let back = parse_value(&text).unwrap_or_else(|| panic!("{text} does not parse"));
        if value.is_nan() {
            assert!(back.is_nan(), "{text}");
        } else {
            assert_eq!(
                back.to_bits(),
                value.to_bits(),
                "{value:?} written as {text}"
            );
        }
    }
}

#[test]
fn a_page_reads_back_as_written() {
    let mut page = Writer::new();
    page.family("m", MetricType::Gauge, "help with \\ and\nnewline");
    page.sample("m", [("a", "q\"uote"), ("b", "back\\slash\n")], 1.5);
    page.sample("m", [], f64::NAN);
    let labels = label_text([("c", "ünïcode")]);
    page.sample_with_label_text("m", &labels, -2.0);
    let text = page.finish();
    assert_eq!(
        text,
        "# HELP m help with \\\\ and\\nnewline\n# TYPE m gauge\n\
         m{a=\"q\\\"uote\",b=\"back\\\\slash\\n\"} 1.5\nm NaN\nm{c=\"ünïcode\"} -2\n"
    );
    let samples = parse(&text).unwrap();
    assert_eq!(samples.len(), 3);
    assert_eq!(
        samples[0].labels,
        [
            ("a".to_owned(), "q\"uote".to_owned()),
            ("b".to_owned(), "back\\slash\n".to_owned())
        ]
    );
    assert!(samples[1].value.is_nan());
    assert_eq!(samples[2].labels, [("c".to_owned(), "ünïcode".to_owned())]);
}

#[test]
fn names_the_classic_format_cannot_carry_are_quoted() {
    let mut page = Writer::new();
    page.family("a.b", MetricType::Counter, "");
    page.sample("a.b", [("x.y", "1"), ("ok", "2")], 3.0);
    page.sample("plain", [("x-y", "1")], 4.0);
    let text = page.finish();
    assert_eq!(
        text,
        "# TYPE \"a.b\" counter\n{\"a.b\",\"x.y\"=\"1\",ok=\"2\"} 3\nplain{\"x-y\"=\"1\"} 4\n"
    );
    let samples = parse(&text).unwrap();
    assert_eq!(samples[0].name, "a.b");
    assert_eq!(samples[0].kind, MetricType::Counter);
    assert_eq!(samples[0].labels[0], ("x.y".to_owned(), "1".to_owned()));
    assert_eq!(samples[1].labels[0], ("x-y".to_owned(), "1".to_owned()));
}

#[test]
fn timestamps_are_written_in_the_flavours_unit() {
    for (flavour, ending) in [
        (Flavour::Prometheus, "m 1 1700000000123\n"),
        (Flavour::OpenMetrics, "m 1 1700000000.123\n# EOF\n"),
    ] {
        let mut page = Writer::with_flavour(flavour);
        page.sample_at("m", [], 1.0, 1_700_000_000_123);
        let text = page.finish();
        assert!(text.ends_with(ending), "{flavour:?}: {text}");
        let samples: Vec<Sample> = parse(&text).unwrap();
        assert_eq!(
            samples[0].timestamp_ms,
            Some(1_700_000_000_123),
            "{flavour:?}"
        );
    }
    let mut page = Writer::with_flavour(Flavour::OpenMetrics);
    page.sample_at("m", [], 1.0, -1_500);
    assert_eq!(page.finish(), "m 1 -1.500\n# EOF\n");
}

#[test]
fn histograms_are_cumulative_and_end_at_inf() {
    let mut page = Writer::new();
    page.family("d_seconds", MetricType::Histogram, "Durations.");
    page.histogram(
        "d_seconds",
        &[("query", "q")],
        [(0.001, 0), (0.25, 2), (30.0, 2)],
        100.203,
        3,
    );
    let text = page.finish();
    let samples = parse(&text).unwrap();
    let found: Vec<(&str, Option<&str>, f64)> = samples
        .iter()
        .map(|s| {
            assert_eq!(s.family, "d_seconds");
            assert_eq!(s.kind, MetricType::Histogram);
            let le = s
                .labels
                .iter()
                .find(|(n, _)| n == "le")
                .map(|(_, v)| v.as_str());
            (s.name.as_str(), le, s.value)
        })
        .collect();
    assert_eq!(
        found,
        [
            ("d_seconds_bucket", Some("0.001"), 0.0),
            ("d_seconds_bucket", Some("0.25"), 2.0),
            ("d_seconds_bucket", Some("30"), 2.0),
            ("d_seconds_bucket", Some("+Inf"), 3.0),
            ("d_seconds_sum", None, 100.203),
            ("d_seconds_count", None, 3.0),
        ]
    );
}
