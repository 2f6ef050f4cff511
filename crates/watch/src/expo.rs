//! Prometheus text exposition format 0.0.4: families with HELP and TYPE, escaped label values,
//! and the histogram the service keeps for fit and inference durations.

use std::fmt::Write;

/// The Content-Type of `/metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the duration histograms' buckets.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A cumulative histogram over [`DURATION_BUCKETS`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    counts: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    /// Records one observation (seconds).
    pub fn observe(&mut self, seconds: f64) {
        for (bound, count) in DURATION_BUCKETS.iter().zip(&mut self.counts) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// Escapes a label value: backslash, double quote and line feed.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes HELP text: backslash and line feed.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as the format writes it (`NaN`, `+Inf`, `-Inf`, or the shortest exact decimal).
pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value}")
    } else {
        // `{:?}` is the shortest representation that reads back exactly (1e-7, 1e300, 0.1).
        format!("{value:?}")
    }
}

/// Builds an exposition, one family at a time.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family: its HELP and TYPE lines. Every family is written, even without samples,
    /// so that its HELP and TYPE are always there.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample line; `labels` are name/value pairs, written in the order given.
    pub fn sample<'a>(
        &mut self,
        name: &str,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        value: f64,
    ) {
        self.out.push_str(name);
        let mut first = true;
        for (label, value) in labels {
            self.out.push(if first { '{' } else { ',' });
            first = false;
            let _ = write!(self.out, "{label}=\"{}\"", escape_label_value(value));
        }
        if !first {
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&format_value(value));
        self.out.push('\n');
    }

    /// One sample line whose label set is already written out and escaped (`a="x",b="y"`,
    /// without braces; empty for none).
    pub fn sample_with_label_text(&mut self, name: &str, label_text: &str, value: f64) {
        self.out.push_str(name);
        if !label_text.is_empty() {
            self.out.push('{');
            self.out.push_str(label_text);
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&format_value(value));
        self.out.push('\n');
    }

    /// A histogram's `_bucket`, `_sum` and `_count` lines for one label set.
    pub fn histogram<'a>(
        &mut self,
        name: &str,
        labels: &[(&'a str, &'a str)],
        histogram: &Histogram,
    ) {
        // A fresh, shorter lifetime, so that the `le` label (a local) can join them.
        let labels: &[(&str, &str)] = labels;
        let bucket = format!("{name}_bucket");
        for (bound, count) in DURATION_BUCKETS.iter().zip(histogram.counts) {
            let le = format_value(*bound);
            self.sample(
                &bucket,
                labels.iter().copied().chain([("le", le.as_str())]),
                count as f64,
            );
        }
        self.sample(
            &bucket,
            labels.iter().copied().chain([("le", "+Inf")]),
            histogram.count as f64,
        );
        self.sample(
            &format!("{name}_sum"),
            labels.iter().copied(),
            histogram.sum,
        );
        self.sample(
            &format!("{name}_count"),
            labels.iter().copied(),
            histogram.count as f64,
        );
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("x\ny"), "x\\ny");
        assert_eq!(escape_label_value("ünïcode"), "ünïcode");
        let mut e = Exposition::new();
        e.family("m", "gauge", "help with \\ and\nnewline");
        e.sample("m", [("a", "q\"uote"), ("b", "back\\slash\n")], 1.5);
        e.sample("m", [], f64::NAN);
        assert_eq!(
            e.finish(),
            "# HELP m help with \\\\ and\\nnewline\n# TYPE m gauge\n\
             m{a=\"q\\\"uote\",b=\"back\\\\slash\\n\"} 1.5\nm NaN\n"
        );
    }

    #[test]
    fn values_read_back() {
        for v in [0.0, 1.0, -2.5, 1e-7, 1e300, 0.1, 123456789.125] {
            assert_eq!(format_value(v).parse::<f64>().unwrap(), v);
        }
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(-0.5), "-0.5");
    }

    #[test]
    fn histograms_are_cumulative() {
        let mut h = Histogram::default();
        h.observe(0.003);
        h.observe(0.2);
        h.observe(100.0);
        let mut e = Exposition::new();
        e.histogram("d_seconds", &[("query", "q")], &h);
        let text = e.finish();
        assert!(
            text.contains("d_seconds_bucket{query=\"q\",le=\"0.001\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{query=\"q\",le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{query=\"q\",le=\"0.25\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{query=\"q\",le=\"30\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{query=\"q\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("d_seconds_count{query=\"q\"} 3\n"), "{text}");
        assert!(
            text.contains("d_seconds_sum{query=\"q\"} 100.203"),
            "{text}"
        );
    }
}
