//! Writing the text format: the one writer of metrics pages and import files in the workspace
//! (the watch's `/metrics`, the test data loaded into Prometheus and VictoriaMetrics), with the
//! one rule for writing a float, so that what one part writes another reads back bit for bit.

use std::fmt::Write as _;

use super::MetricType;

/// The Content-Type of a page in the text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which text format a [`Writer`] writes: they differ in the timestamp's unit and the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Flavour {
    /// Prometheus text 0.0.4: timestamps in milliseconds (what `/metrics` serves and
    /// VictoriaMetrics's `/api/v1/import/prometheus` takes).
    #[default]
    Prometheus,
    /// OpenMetrics text: timestamps in seconds, and `# EOF` at the end (what
    /// `promtool tsdb create-blocks-from openmetrics` backfills).
    OpenMetrics,
}

/// Writes an exposition, one family at a time, into one growing string.
///
/// A metric or label name the classic format cannot carry (`a.b`, Prometheus 3's UTF-8 names)
/// is written quoted, as Prometheus 3 reads it: `{"a.b","x.y"="1"} 2`.
///
/// ```
/// use promlearn_loader::exposition::{MetricType, Writer, parse};
///
/// let mut page = Writer::new();
/// page.family("jobs", MetricType::Gauge, "Jobs waiting.");
/// page.sample("jobs", [("queue", "a\"b")], 0.1);
/// let text = page.finish();
/// assert_eq!(text, "# HELP jobs Jobs waiting.\n# TYPE jobs gauge\njobs{queue=\"a\\\"b\"} 0.1\n");
/// assert_eq!(parse(&text)?[0].value, 0.1);
/// # Ok::<(), promlearn_loader::exposition::ParseError>(())
/// ```
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    flavour: Flavour,
}

impl Writer {
    /// An empty page in the text format 0.0.4.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// An empty page in the text format 0.0.4 with room for `bytes` of text, for a writer that
    /// knows about how long its page will be (the one it wrote last time): a page of a hundred
    /// megabytes then does not grow by doubling, nor keep up to twice its length.
    pub fn with_capacity(bytes: usize) -> Writer {
        Writer {
            out: String::with_capacity(bytes),
            ..Writer::default()
        }
    }

    /// An empty page in `flavour`.
    pub fn with_flavour(flavour: Flavour) -> Writer {
        Writer {
            out: String::new(),
            flavour,
        }
    }

    /// Starts a family: its HELP line (none when `help` is empty) and its TYPE line. Written
    /// even when no sample follows, so that a page always says what it may carry.
    pub fn family(&mut self, name: &str, kind: MetricType, help: &str) {
        if !help.is_empty() {
            self.out.push_str("# HELP ");
            self.push_name(name);
            self.out.push(' ');
            for c in help.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('\n');
        }
        self.out.push_str("# TYPE ");
        self.push_name(name);
        self.out.push(' ');
        self.out.push_str(kind.as_str());
        self.out.push('\n');
    }

    /// One sample line; `labels` are name/value pairs, written in the order given.
    pub fn sample<'a>(
        &mut self,
        name: &str,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        value: f64,
    ) {
        self.sample_inner(name, labels, value, None);
    }

    /// One sample line with its own timestamp (unix milliseconds; written in the flavour's
    /// unit).
    pub fn sample_at<'a>(
        &mut self,
        name: &str,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        value: f64,
        timestamp_ms: i64,
    ) {
        self.sample_inner(name, labels, value, Some(timestamp_ms));
    }

    /// One sample line whose label set was written before by [`label_text`] (for a label set
    /// written on many lines, escaped once).
    pub fn sample_with_label_text(&mut self, name: &str, label_text: &str, value: f64) {
        self.out.push_str(name);
        if !label_text.is_empty() {
            self.out.push('{');
            self.out.push_str(label_text);
            self.out.push('}');
        }
        self.out.push(' ');
        push_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// A histogram's `_bucket` lines (one per `(upper bound, cumulative count)`, then `+Inf`
    /// with `count`), its `_sum` and its `_count`, for one label set.
    pub fn histogram<'a>(
        &mut self,
        name: &str,
        labels: &[(&'a str, &'a str)],
        buckets: impl IntoIterator<Item = (f64, u64)>,
        sum: f64,
        count: u64,
    ) {
        // A fresh, shorter lifetime, so that the `le` label (a local) can join them.
        let labels: &[(&str, &str)] = labels;
        let bucket = format!("{name}_bucket");
        for (bound, cumulative) in buckets {
            let le = format_value(bound);
            self.sample(
                &bucket,
                labels.iter().copied().chain([("le", le.as_str())]),
                cumulative as f64,
            );
        }
        self.sample(
            &bucket,
            labels.iter().copied().chain([("le", "+Inf")]),
            count as f64,
        );
        self.sample(&format!("{name}_sum"), labels.iter().copied(), sum);
        self.sample(
            &format!("{name}_count"),
            labels.iter().copied(),
            count as f64,
        );
    }

    /// The text (OpenMetrics's ends with `# EOF`).
    pub fn finish(mut self) -> String {
        if self.flavour == Flavour::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }

    fn sample_inner<'a>(
        &mut self,
        name: &str,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        value: f64,
        timestamp_ms: Option<i64>,
    ) {
        let quoted = !is_metric_name(name);
        if quoted {
            self.out.push('{');
            push_quoted(&mut self.out, name);
        } else {
            self.out.push_str(name);
        }
        let mut open = quoted;
        for (label, value) in labels {
            self.out.push(if open { ',' } else { '{' });
            open = true;
            push_label(&mut self.out, label, value);
        }
        if open {
            self.out.push('}');
        }
        self.out.push(' ');
        push_value(&mut self.out, value);
        if let Some(ms) = timestamp_ms {
            self.out.push(' ');
            match self.flavour {
                Flavour::Prometheus => {
                    let _ = write!(self.out, "{ms}");
                }
                Flavour::OpenMetrics => {
                    let sign = if ms < 0 { "-" } else { "" };
                    let ms = ms.unsigned_abs();
                    let _ = write!(self.out, "{sign}{}.{:03}", ms / 1000, ms % 1000);
                }
            }
        }
        self.out.push('\n');
    }

    fn push_name(&mut self, name: &str) {
        if is_metric_name(name) {
            self.out.push_str(name);
        } else {
            push_quoted(&mut self.out, name);
        }
    }
}

/// A label set as [`Writer::sample_with_label_text`] takes it: `a="x",b="y"`, escaped, without
/// braces (names the classic format cannot carry quoted).
pub fn label_text<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (i, (name, value)) in labels.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_label(&mut out, name, value);
    }
    out
}

/// A sample value as the text format is written everywhere here: `NaN`, `+Inf`, `-Inf`, or
/// the shortest decimal that reads back to the same `f64`, written plainly from 1e-7 up to 1e21
/// (so counters stay whole numbers) and with an exponent outside that (`1e-8`, `1e+21`): the
/// rule of ECMAScript's Number-to-String, which Go's and Rust's parsers read back exactly.
pub fn format_value(value: f64) -> String {
    let mut out = String::new();
    push_value(&mut out, value);
    out
}

/// A label value escaped for the text format: backslash, double quote and line feed.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    push_escaped(&mut out, value);
    out
}

fn push_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if value == 0.0 || (1e-7..1e21).contains(&value.abs()) {
        // Display is the shortest exact decimal, never in exponent form.
        let _ = write!(out, "{value}");
    } else {
        // LowerExp is the shortest exact mantissa: `1e-8`, `1.5e21`; the exponent's sign is
        // written either way, as ECMAScript does.
        let start = out.len();
        let _ = write!(out, "{value:e}");
        if let Some(e) = out[start..].find('e')
            && !out[start + e + 1..].starts_with('-')
        {
            out.insert(start + e + 1, '+');
        }
    }
}

fn push_escaped(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn push_quoted(out: &mut String, text: &str) {
    out.push('"');
    push_escaped(out, text);
    out.push('"');
}

fn push_label(out: &mut String, name: &str, value: &str) {
    if is_label_name(name) {
        out.push_str(name);
    } else {
        push_quoted(out, name);
    }
    out.push('=');
    push_quoted(out, value);
}

/// A metric name the classic format carries bare: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(super) fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A label name the classic format carries bare: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;
