//! The labels a series is exported with on `/metrics`: ours (`query`, `detector`) first, then
//! its own, renamed where they would clash as Prometheus renames a scraped label that clashes
//! with a target label, and made unique within a query, so that every page is one Prometheus
//! accepts. A series' label text is made once, when it is first tracked (`series.rs`).

use std::{collections::HashSet, sync::Arc};

use promlearn_loader::Labels;

/// The labels written before a series' own on every per-series family. A series label of the
/// same name is renamed (see [`exported_labels`]).
pub(crate) const OUR_LABELS: [&str; 2] = ["query", "detector"];

/// A series' own labels as exported: renamed where they would clash, the way Prometheus renames
/// a scraped label that clashes with a target label (`honor_labels: false`): `exported_<name>`,
/// prefixed again until unique. Clashing are: a label named as one of [`OUR_LABELS`],
/// `__name__` (our family names replace it; exported from `name`, so as `exported_name`), and a
/// name the text format cannot carry (Prometheus 3's UTF-8 names: every other character becomes
/// `_`, as Prometheus's own `underscores` escaping does) that then meets a name already taken.
/// Labels whose names are fine keep them, so `exported_query` of the series stays and its
/// `query` becomes `exported_exported_query`. Order: the series' own.
pub(crate) fn exported_labels(labels: &Labels) -> Vec<(String, String)> {
    let mut taken: HashSet<String> = OUR_LABELS.iter().map(|n| (*n).to_owned()).collect();
    for (name, _) in labels.iter() {
        if is_label_name(name) && !OUR_LABELS.contains(&name) && name != "__name__" {
            taken.insert(name.to_owned());
        }
    }
    labels
        .iter()
        .map(|(name, value)| {
            let renamed = if name == "__name__" {
                prefixed_until_free("name", &mut taken)
            } else if OUR_LABELS.contains(&name) {
                prefixed_until_free(name, &mut taken)
            } else if is_label_name(name) {
                name.to_owned()
            } else {
                let plain = legal_label_name(name);
                if taken.insert(plain.clone()) {
                    plain
                } else {
                    prefixed_until_free(&plain, &mut taken)
                }
            };
            (renamed, value.to_owned())
        })
        .collect()
}

/// `exported_<name>`, `exported_exported_<name>`, ... : the first that is not taken (now it is).
fn prefixed_until_free(name: &str, taken: &mut HashSet<String>) -> String {
    let mut candidate = format!("exported_{name}");
    while !taken.insert(candidate.clone()) {
        candidate.insert_str(0, "exported_");
    }
    candidate
}

/// A label name the text format 0.0.4 can carry: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `name` with every character the format cannot carry replaced by `_` (and `_` before a
/// leading digit).
pub(crate) fn legal_label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

/// The label set written with every value of a series, escaped, without braces:
/// `query="…",detector="…"` and then the series' [`exported_labels`].
pub(crate) fn label_text(query: &str, detector: &str, labels: &Labels) -> Arc<str> {
    let exported = exported_labels(labels);
    let ours = [(OUR_LABELS[0], query), (OUR_LABELS[1], detector)];
    let theirs = exported.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    promlearn_loader::exposition::label_text(ours.into_iter().chain(theirs)).into()
}

/// [`label_text`], unless another series of the query already exports that text (`taken`): two
/// label sets that differ only where names had to be made legal, such as `a.b` and `a_b`, would
/// be one line on the page, and Prometheus would keep one and drop the other without a trace.
/// Then the later series' names that were made legal (or, if it has none, those that making a
/// name legal could give, the ones with a `_`) get `exported_` before them, again until the
/// text is free and the names are unique, as a clash with one of [`OUR_LABELS`] is resolved.
pub(crate) fn unique_label_text(
    query: &str,
    detector: &str,
    labels: &Labels,
    taken: &HashSet<Arc<str>>,
) -> Arc<str> {
    let text = label_text(query, detector, labels);
    if !taken.contains(&text) {
        return text;
    }
    let mut exported = exported_labels(labels);
    let made_legal: Vec<bool> = labels.iter().map(|(n, _)| !is_label_name(n)).collect();
    let renamed: Vec<bool> = if made_legal.contains(&true) {
        made_legal
    } else {
        exported.iter().map(|(n, _)| n.contains('_')).collect()
    };
    let renamed = if renamed.contains(&true) {
        renamed
    } else {
        vec![true; exported.len()]
    };
    loop {
        for ((name, _), rename) in exported.iter_mut().zip(&renamed) {
            if *rename {
                name.insert_str(0, "exported_");
            }
        }
        let mut names: HashSet<&str> = OUR_LABELS.into_iter().collect();
        if !exported.iter().all(|(n, _)| names.insert(n)) {
            continue;
        }
        let ours = [(OUR_LABELS[0], query), (OUR_LABELS[1], detector)];
        let theirs = exported.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let text: Arc<str> =
            promlearn_loader::exposition::label_text(ours.into_iter().chain(theirs)).into();
        if !taken.contains(&text) {
            return text;
        }
    }
}
