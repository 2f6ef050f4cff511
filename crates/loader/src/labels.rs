//! A series' label set.

use std::fmt;

/// The labels of one series, sorted by name (as Prometheus sends them), `__name__` included.
///
/// `Display` prints the PromQL selector form, `name{a="1", b="2"}`, with UTF-8 names quoted as
/// Prometheus 3 reads them (`{"http.server.duration", "service.name"="api"}`):
///
/// ```
/// use promlearn_loader::Labels;
/// let labels = Labels::from_pairs([("__name__", "up"), ("job", "coredns"), ("instance", "localhost:9153")]);
/// assert_eq!(labels.get("job"), Some("coredns"));
/// assert_eq!(labels.to_string(), r#"up{instance="localhost:9153", job="coredns"}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Builds a label set from name/value pairs, in any order. A repeated name keeps its last value.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Labels {
        let mut pairs: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(n, v)| (n.into(), v.into()))
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        // Keep the last of repeated names, as a JSON object decoder would.
        let mut deduped: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match deduped.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => deduped.push(pair),
            }
        }
        Labels(deduped)
    }

    /// Sorted pairs as decoded; sorts them if the server did not.
    pub(crate) fn from_decoded(mut pairs: Vec<(String, String)>) -> Labels {
        if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            return Labels::from_pairs(pairs);
        }
        pairs.shrink_to_fit();
        Labels(pairs)
    }

    /// The value of label `name`, if the series has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// The metric name (`__name__`), absent after most aggregations and functions.
    pub fn metric_name(&self) -> Option<&str> {
        self.get("__name__")
    }

    /// The pairs, sorted by label name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of labels, `__name__` included.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No labels at all (e.g. the result of `sum(...)`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels other than `__name__`, in PromQL form: `{a="1", b="2"}` (`{}` when there are none).
    pub fn selector_without_name(&self) -> String {
        let mut out = String::new();
        write_braces(
            &mut out,
            None,
            self.iter().filter(|(n, _)| *n != "__name__"),
        )
        .expect("writing to a String cannot fail");
        out
    }
}

/// Whether `name` is a metric name PromQL reads unquoted (`[a-zA-Z_:][a-zA-Z0-9_:]*`); others
/// (Prometheus 3's UTF-8 names, such as `http.server.duration`) must be quoted: `{"a.b"}`.
fn is_legacy_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a label name PromQL reads unquoted (`[a-zA-Z_][a-zA-Z0-9_]*`).
fn is_legacy_label_name(name: &str) -> bool {
    !name.contains(':') && is_legacy_metric_name(name)
}

fn write_quoted(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in text.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '"' => out.write_str("\\\"")?,
            '\n' => out.write_str("\\n")?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

/// `{a="1", b="2"}`, UTF-8 label names quoted (`{"ünit.x"="a"}`); a quoted metric name first
/// when `quoted_name` is given (`{"a.b", x="y"}`).
fn write_braces<'a>(
    out: &mut impl fmt::Write,
    quoted_name: Option<&str>,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> fmt::Result {
    out.write_char('{')?;
    let mut first = true;
    if let Some(name) = quoted_name {
        write_quoted(out, name)?;
        first = false;
    }
    for (name, value) in pairs {
        if !first {
            out.write_str(", ")?;
        }
        first = false;
        if is_legacy_label_name(name) {
            out.write_str(name)?;
        } else {
            write_quoted(out, name)?;
        }
        out.write_char('=')?;
        write_quoted(out, value)?;
    }
    out.write_char('}')
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        let rest = self.iter().filter(|(n, _)| *n != "__name__");
        if let Some(name) = name.filter(|n| !is_legacy_metric_name(n)) {
            // A UTF-8 name goes inside the braces, quoted, as PromQL reads it.
            return write_braces(f, Some(name), rest);
        }
        if let Some(name) = name {
            f.write_str(name)?;
        }
        if name.is_some() && self.len() == 1 {
            return Ok(());
        }
        write_braces(f, None, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_display() {
        let l = Labels::from_pairs([("b", "2"), ("__name__", "m"), ("a", "x\"y")]);
        assert_eq!(l.get("a"), Some("x\"y"));
        assert_eq!(l.get("zz"), None);
        assert_eq!(l.to_string(), r#"m{a="x\"y", b="2"}"#);
        assert_eq!(Labels::from_pairs([("__name__", "m")]).to_string(), "m");
        assert_eq!(Labels::default().to_string(), "{}");
        assert_eq!(l.selector_without_name(), r#"{a="x\"y", b="2"}"#);
    }

    #[test]
    fn utf8_names_are_quoted_as_promql_reads_them() {
        let l = Labels::from_pairs([("__name__", "known.utf8"), ("ünit.x", "a.b"), ("job", "j")]);
        assert_eq!(l.to_string(), r#"{"known.utf8", job="j", "ünit.x"="a.b"}"#);
        let l = Labels::from_pairs([("__name__", "a:b_c"), ("x-y", "1")]);
        assert_eq!(l.to_string(), r#"a:b_c{"x-y"="1"}"#);
        assert_eq!(
            Labels::from_pairs([("__name__", "1up")]).to_string(),
            r#"{"1up"}"#
        );
        assert_eq!(
            Labels::from_pairs([("a:b", "1")]).to_string(),
            r#"{"a:b"="1"}"#
        );
    }

    #[test]
    fn unsorted_input_is_sorted_and_deduplicated() {
        let l = Labels::from_decoded(vec![
            ("z".into(), "1".into()),
            ("a".into(), "1".into()),
            ("a".into(), "2".into()),
        ]);
        assert_eq!(l.iter().collect::<Vec<_>>(), [("a", "2"), ("z", "1")]);
    }
}
