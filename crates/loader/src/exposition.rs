//! The Prometheus text exposition format (0.0.4), and the parts of OpenMetrics text that a
//! `/metrics` endpoint may send anyway: every sample with all its labels (`le` and `quantile`
//! included, as Prometheus stores them), its family's type, its value and its own timestamp;
//! and the one writer of that format ([`Writer`], `write.rs`), whose pages this parser reads
//! back exactly.
//!
//! Our own parser, because the crate there is (`prometheus-parse`) folds histogram buckets into
//! structs and drops the `le` labels and family types that a scrape must keep.
//!
//! ```
//! use promlearn_loader::exposition::{MetricType, parse};
//!
//! let text = "# TYPE rpc_seconds histogram\nrpc_seconds_bucket{le=\"0.5\"} 3 1395066363000\n";
//! let samples = parse(text)?;
//! assert_eq!(samples[0].family, "rpc_seconds");
//! assert_eq!(samples[0].kind, MetricType::Histogram);
//! assert_eq!(samples[0].labels, [("le".to_owned(), "0.5".to_owned())]);
//! assert_eq!(samples[0].timestamp_ms, Some(1_395_066_363_000));
//! # Ok::<(), promlearn_loader::exposition::ParseError>(())
//! ```

use std::collections::HashMap;

use serde::Serialize;

mod write;

pub use write::{CONTENT_TYPE, Flavour, Writer, escape, format_value, label_text};

/// A metric family's type, from its `# TYPE` line (`untyped` without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    /// `counter`: only goes up, except on restarts (`_total`, `_created`).
    Counter,
    /// `gauge`: a value that goes up and down.
    Gauge,
    /// `histogram`: `_bucket` samples with an `le` label, plus `_sum`, `_count`, `_created`.
    Histogram,
    /// OpenMetrics `gaugehistogram`: `_bucket`, `_gsum`, `_gcount`.
    #[serde(rename = "gaugehistogram")]
    GaugeHistogram,
    /// `summary`: samples with a `quantile` label, plus `_sum`, `_count`, `_created`.
    Summary,
    /// OpenMetrics `info`: a `_info` sample of value 1 whose labels are the information.
    Info,
    /// OpenMetrics `stateset`: one 0/1 sample per state, the state in a label named after the family.
    Stateset,
    /// No `# TYPE` line, `untyped`/`unknown`, or a type this parser does not know.
    Untyped,
}

impl MetricType {
    /// The type as a `# TYPE` line writes it (`untyped` for [`MetricType::Untyped`]).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::Stateset => "stateset",
            MetricType::Untyped => "untyped",
        }
    }

    fn parse(text: &str) -> MetricType {
        match text {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::Stateset,
            _ => MetricType::Untyped,
        }
    }

    /// The sample-name suffixes this type's samples may carry after the family name.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            MetricType::Counter => &["_total", "_created"],
            MetricType::Histogram => &["_bucket", "_sum", "_count", "_created"],
            MetricType::GaugeHistogram => &["_bucket", "_gsum", "_gcount"],
            MetricType::Summary => &["_sum", "_count", "_created"],
            MetricType::Info => &["_info"],
            _ => &[],
        }
    }
}

/// One sample of a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's own name (`coredns_dns_request_duration_seconds_bucket`).
    pub name: String,
    /// Its family (`coredns_dns_request_duration_seconds`).
    pub family: String,
    /// The family's type, from its `# TYPE` line.
    pub kind: MetricType,
    /// Labels in the order the endpoint wrote them.
    pub labels: Vec<(String, String)>,
    /// The value as written; `NaN`, `+Inf` and `-Inf` included.
    pub value: f64,
    /// The sample's own timestamp, if the endpoint gave one (milliseconds since the epoch).
    pub timestamp_ms: Option<i64>,
}

/// Where and why a scrape could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line of the scrape.
    pub line: usize,
    /// What was wrong on it.
    pub reason: String,
}

/// Parses a whole scrape.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut types: HashMap<String, MetricType> = HashMap::new();
    let mut samples = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
        let fail = |reason: String| ParseError {
            line: i + 1,
            reason,
        };
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            if words.next() == Some("TYPE") {
                let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                    return Err(fail("a TYPE line needs a metric name and a type".into()));
                };
                types.insert(unquote_name(name), MetricType::parse(kind));
            }
            continue;
        }
        let sample = parse_sample(line).map_err(fail)?;
        let (family, kind) = family_of(&sample.0, &types);
        samples.push(Sample {
            name: sample.0,
            family,
            kind,
            labels: sample.1,
            value: sample.2,
            timestamp_ms: sample.3,
        });
    }
    Ok(samples)
}

fn unquote_name(name: &str) -> String {
    name.strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .map(|n| unescape(n).unwrap_or_else(|_| n.to_owned()))
        .unwrap_or_else(|| name.to_owned())
}

fn family_of(name: &str, types: &HashMap<String, MetricType>) -> (String, MetricType) {
    if let Some(kind) = types.get(name) {
        return (name.to_owned(), *kind);
    }
    for (family, kind) in types {
        if let Some(suffix) = name.strip_prefix(family.as_str())
            && kind.suffixes().contains(&suffix)
        {
            return (family.clone(), *kind);
        }
    }
    (name.to_owned(), MetricType::Untyped)
}

type Parsed = (String, Vec<(String, String)>, f64, Option<i64>);

fn parse_sample(line: &str) -> Result<Parsed, String> {
    let bytes = line.as_bytes();
    let mut pos = 0;
    let mut name = String::new();
    if bytes[0] != b'{' {
        let end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        name = line[..end].to_owned();
        if !write::is_metric_name(&name) {
            return Err(format!("`{name}` is not a metric name"));
        }
        pos = end;
    }
    let mut labels = Vec::new();
    if bytes.get(pos) == Some(&b'{') {
        pos += 1;
        loop {
            pos = skip_ws(bytes, pos);
            match bytes.get(pos) {
                Some(b'}') => {
                    pos += 1;
                    break;
                }
                None => return Err("the label set is not closed with `}`".into()),
                _ => {}
            }
            // A label name, bare or quoted; a quoted string alone is the metric's name.
            let label_name = if bytes[pos] == b'"' {
                let (text, next) = quoted(line, pos)?;
                pos = skip_ws(bytes, next);
                if matches!(bytes.get(pos), Some(b',') | Some(b'}')) {
                    if !name.is_empty() {
                        return Err("the metric has two names".into());
                    }
                    name = text;
                    if bytes[pos] == b',' {
                        pos += 1;
                    }
                    continue;
                }
                text
            } else {
                let end = pos
                    + line[pos..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(line.len() - pos);
                let text = line[pos..end].to_owned();
                if text.is_empty() || text.as_bytes()[0].is_ascii_digit() {
                    return Err(format!(
                        "expected a label name at column {}, found `{}`",
                        pos + 1,
                        &line[pos..(pos + 1).min(line.len())]
                    ));
                }
                pos = skip_ws(bytes, end);
                text
            };
            if bytes.get(pos) != Some(&b'=') {
                return Err(format!("label `{label_name}` has no `=`"));
            }
            pos = skip_ws(bytes, pos + 1);
            if bytes.get(pos) != Some(&b'"') {
                return Err(format!("the value of label `{label_name}` is not quoted"));
            }
            let (value, next) = quoted(line, pos)?;
            labels.push((label_name, value));
            pos = skip_ws(bytes, next);
            match bytes.get(pos) {
                Some(b',') => pos += 1,
                Some(b'}') => {}
                _ => return Err("expected `,` or `}` after a label".into()),
            }
        }
    }
    if name.is_empty() {
        return Err("the sample has no metric name".into());
    }
    // Value, optional timestamp, optional OpenMetrics exemplar (`# {...} v [ts]`).
    let rest = &line[pos..];
    let rest = rest.split_once(" #").map_or(rest, |(before, _)| before);
    let mut fields = rest.split_whitespace();
    let value_text = fields
        .next()
        .ok_or_else(|| format!("sample `{name}` has no value"))?;
    let value =
        parse_value(value_text).ok_or_else(|| format!("`{value_text}` is not a sample value"))?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some(ts) => Some(parse_timestamp(ts).ok_or_else(|| format!("`{ts}` is not a timestamp"))?),
    };
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected `{extra}` after the timestamp"));
    }
    Ok((name, labels, value, timestamp_ms))
}

fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while matches!(bytes.get(pos), Some(b' ') | Some(b'\t')) {
        pos += 1;
    }
    pos
}

/// A double-quoted string starting at `start`; returns its unescaped text and the position
/// after the closing quote.
fn quoted(line: &str, start: usize) -> Result<(String, usize), String> {
    let bytes = line.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Ok((unescape(&line[start + 1..i])?, i + 1)),
            _ => i += 1,
        }
    }
    Err("a quoted string is not closed".into())
}

fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('n') => out.push('\n'),
            // The format defines only these three; keep anything else as written.
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => return Err("a string ends with a lone `\\`".into()),
        }
    }
    Ok(out)
}

/// Go's float syntax as the format uses it: numbers, `NaN`, `+Inf`, `-Inf`.
pub fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        // Rust also reads `infinity` and friends; the format does not have them.
        _ if text
            .chars()
            .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
        {
            None
        }
        _ => text.parse().ok(),
    }
}

/// Milliseconds (the Prometheus format) or, with a fraction, seconds (OpenMetrics).
fn parse_timestamp(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let secs: f64 = text.parse().ok()?;
    secs.is_finite().then(|| (secs * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Prometheus exposition-format documentation.
    const DOC_EXAMPLE: &str = r#"
# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# Finally a summary, which has a complex representation, too:
# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.01"} 3102
rpc_duration_seconds{quantile="0.99"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
"#;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_the_documentation_example() {
        let samples = parse(DOC_EXAMPLE).unwrap();
        assert_eq!(samples.len(), 14);
        assert_eq!(
            samples[0],
            Sample {
                name: "http_requests_total".into(),
                family: "http_requests_total".into(),
                kind: MetricType::Counter,
                labels: labels(&[("method", "post"), ("code", "200")]),
                value: 1027.0,
                timestamp_ms: Some(1_395_066_363_000),
            }
        );
        assert_eq!(
            samples[2].labels,
            labels(&[
                ("path", r"C:\DIR\FILE.TXT"),
                ("error", "Cannot find file:\n\"FILE.TXT\"")
            ])
        );
        assert_eq!(samples[2].kind, MetricType::Untyped);
        assert_eq!(samples[3].labels, vec![]);
        assert_eq!(samples[4].value, f64::INFINITY);
        assert_eq!(samples[4].timestamp_ms, Some(-3_982_045));
        let bucket = &samples[7];
        assert_eq!(bucket.family, "http_request_duration_seconds");
        assert_eq!(bucket.kind, MetricType::Histogram);
        assert_eq!(bucket.labels, labels(&[("le", "+Inf")]));
        assert_eq!(samples[8].name, "http_request_duration_seconds_sum");
        assert_eq!(samples[9].kind, MetricType::Histogram);
        assert_eq!(samples[10].labels, labels(&[("quantile", "0.01")]));
        assert_eq!(samples[10].kind, MetricType::Summary);
        assert_eq!(samples[12].value, 1.7560473e7);
        assert_eq!(samples[13].family, "rpc_duration_seconds");
    }

    #[test]
    fn commas_equals_and_braces_inside_values_stay() {
        let s = parse(r#"m{a="x,y=z}",b="\"q\""} 1"#).unwrap();
        assert_eq!(s[0].labels, labels(&[("a", "x,y=z}"), ("b", "\"q\"")]));
    }

    #[test]
    fn openmetrics_bits_are_read() {
        let text = r#"# TYPE foo counter
foo_total{a="1"} 17 1520879607.789 # {trace_id="KOO5S4vxi0o"} 0.67
foo_created{a="1"} 1520430000.123
# TYPE "my.dotted" gauge
{"my.dotted",a="1"} NaN
# EOF
"#;
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].family, "foo");
        assert_eq!(s[0].kind, MetricType::Counter);
        assert_eq!(s[0].timestamp_ms, Some(1_520_879_607_789));
        assert_eq!(s[1].kind, MetricType::Counter);
        assert_eq!(s[2].name, "my.dotted");
        assert_eq!(s[2].kind, MetricType::Gauge);
        assert!(s[2].value.is_nan());
    }

    #[test]
    fn malformed_lines_say_where() {
        for (text, line) in [
            ("ok 1\nbad{a=1} 2", 2),
            ("m{a=\"1\" 2", 1),
            ("m 1 2 3", 1),
            ("m abc", 1),
            ("<html>", 1),
            ("m", 1),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text}: {err}");
        }
    }

    #[test]
    fn values_print_back() {
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(1e21), "1e+21");
        assert_eq!(parse_value("1e3"), Some(1000.0));
        assert_eq!(parse_value("infinity"), None);
        assert_eq!(escape("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }
}
