//! What `/metrics` shows: the table of exported families (each row naming its family and how its
//! value is read from a series' newest judged point), the labels a series is exported with (its
//! own, clashes renamed as Prometheus renames them), and the page: rendered from a snapshot of
//! the state after each inference round and swapped in whole, so that a scrape only copies a
//! pointer and never waits on the engine, a fit's bookkeeping or another scrape.

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
};

use bytes::Bytes;
use promlearn_loader::{
    Labels,
    exposition::{MetricType, Writer},
};
use tokio::sync::Notify;

use crate::{
    expo::Histogram,
    schedule::Shared,
    series::{DROP_REASONS, ERROR_KINDS, Point},
};

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
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `name` with every character the format cannot carry replaced by `_` (and `_` before a
/// leading digit).
fn legal_label_name(name: &str) -> String {
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

/// The per-series alert counter's name.
pub(crate) const ANOMALIES_TOTAL: &str = "promlearn_anomalies_total";

/// One per-series family: its name, its HELP text and its value at a judged point.
struct SeriesFamily {
    name: &'static str,
    help: &'static str,
    value: fn(&Point) -> f64,
}

const SERIES_FAMILIES: [SeriesFamily; 6] = [
    SeriesFamily {
        name: "promlearn_anomaly_score",
        help: "Anomaly score of the series' newest judged point: 0 on the prediction, 1 on the band's edge, above 1 outside the band.",
        value: |p| p.score,
    },
    SeriesFamily {
        name: "promlearn_anomalous",
        help: "1 if the series' newest judged point is outside the detector's band (score > 1), else 0.",
        value: |p| f64::from(u8::from(p.anomalous)),
    },
    SeriesFamily {
        name: "promlearn_yhat",
        help: "The detector's prediction for the series' newest judged point.",
        value: |p| p.yhat,
    },
    SeriesFamily {
        name: "promlearn_yhat_lower",
        help: "Lower edge of the detector's band at the series' newest judged point.",
        value: |p| p.yhat_lower,
    },
    SeriesFamily {
        name: "promlearn_yhat_upper",
        help: "Upper edge of the detector's band at the series' newest judged point.",
        value: |p| p.yhat_upper,
    },
    SeriesFamily {
        name: "promlearn_value",
        help: "The series' value at its newest judged point.",
        value: |p| p.value,
    },
];

/// The page served on `/metrics`: the last rendered snapshot, swapped in whole.
pub(crate) struct Page {
    current: RwLock<Bytes>,
    wanted: Notify,
}

impl Page {
    /// A page holding `first` until the first render.
    pub(crate) fn new(first: String) -> Page {
        Page {
            current: RwLock::new(Bytes::from(first)),
            wanted: Notify::new(),
        }
    }

    /// The page now: a reference-counted copy, taken under a lock held for a pointer copy.
    pub(crate) fn get(&self) -> Bytes {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set(&self, page: Bytes) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = page;
    }

    /// Asks the render loop for a new page; requests made while it renders coalesce into one.
    pub(crate) fn want_render(&self) {
        self.wanted.notify_one();
    }
}

/// The service's render loop: after each inference round (any query's), one render of the whole
/// page on the blocking pool, from a snapshot copied under the state lock (pointers and
/// counters, no formatting), then swapped in.
pub(crate) async fn render_loop(shared: Arc<Shared>) {
    loop {
        shared.page.wanted.notified().await;
        let rendering = shared.clone();
        match tokio::task::spawn_blocking(move || render(&rendering)).await {
            Ok(page) => shared.page.set(Bytes::from(page)),
            Err(e) if e.is_cancelled() => return,
            Err(e) => tracing::error!("rendering /metrics panicked: {e}"),
        }
    }
}

/// Renders the page now and serves it (before the first inference round).
pub(crate) fn render_now(shared: &Shared) {
    shared.page.set(Bytes::from(render(shared)));
}

/// What one query shows, copied out of the state.
struct QuerySnapshot {
    up: bool,
    /// Each exported series' label text and newest judged point (empty while the query is down).
    points: Vec<(Arc<str>, Point)>,
    /// Each tracked series' label text and alert count (empty while the query is down).
    anomalies: Vec<(Arc<str>, u64)>,
    series: usize,
    models: usize,
    fits: u64,
    fits_skipped: u64,
    last_fit_unix: Option<f64>,
    errors: [u64; ERROR_KINDS.len()],
    dropped: [u64; DROP_REASONS.len()],
    /// Series that are not scored: too few finite samples to fit, and with a model but no
    /// score over their fit window (`series.rs`'s `Unscored`).
    unscored: [usize; crate::series::UNSCORED_REASONS.len()],
    fit_durations: Histogram,
    infer_durations: Histogram,
}

/// Copies what the page shows; the lock is held for pointer copies and counters only.
fn snapshot(shared: &Shared) -> Vec<QuerySnapshot> {
    let now = shared.clock.now_ms();
    let state = shared.lock();
    state
        .queries
        .iter()
        .zip(&shared.config.queries)
        .map(|(q, config)| QuerySnapshot {
            up: q.up,
            points: if q.up {
                q.series
                    .values()
                    .filter_map(|s| Some((s.label_text.clone(), s.last?)))
                    .collect()
            } else {
                Vec::new()
            },
            anomalies: if q.up {
                q.series
                    .values()
                    .map(|s| (s.label_text.clone(), s.anomalies))
                    .collect()
            } else {
                Vec::new()
            },
            series: q.series.len(),
            models: q.series.values().filter(|s| s.model.is_some()).count(),
            fits: q.fits,
            fits_skipped: q.fits_skipped,
            last_fit_unix: q.last_fit_unix,
            errors: q.errors,
            dropped: q.dropped,
            unscored: q.unscored(config, now),
            fit_durations: q.fit_durations.clone(),
            infer_durations: q.infer_durations.clone(),
        })
        .collect()
}

/// Renders every family, HELP and TYPE included, even when there is nothing to report yet, from
/// a snapshot of the state now (the lock is not held while formatting).
pub(crate) fn render(shared: &Shared) -> String {
    let queries = snapshot(shared);
    let config = &shared.config;
    // The page is about as long as the last one: room for it and a little growth.
    let last = shared.page.get().len();
    let mut e = Writer::with_capacity(last + last / 16);
    for family in &SERIES_FAMILIES {
        e.family(family.name, MetricType::Gauge, family.help);
        for q in &queries {
            for (labels, p) in &q.points {
                e.sample_with_label_text(family.name, labels, (family.value)(p));
            }
        }
    }
    e.family(
        ANOMALIES_TOTAL,
        MetricType::Counter,
        "Points of the series flagged anomalous since the watch began tracking it: one per alert (the detector stays quiet for a while after one). Alert on increase(promlearn_anomalies_total[1m]) > 0: unlike the newest point's flag, no scrape interval can hide an alert.",
    );
    for q in &queries {
        for (labels, count) in &q.anomalies {
            e.sample_with_label_text(ANOMALIES_TOTAL, labels, *count as f64);
        }
    }
    let per_query = |e: &mut Writer,
                     name: &str,
                     kind: MetricType,
                     help: &str,
                     value: &dyn Fn(&QuerySnapshot) -> Option<f64>| {
        e.family(name, kind, help);
        for (qc, q) in config.queries.iter().zip(&queries) {
            if let Some(v) = value(q) {
                e.sample(name, [("query", qc.name.as_str())], v);
            }
        }
    };
    e.family(
        "promlearn_watch_shard_info",
        MetricType::Gauge,
        "Always 1: the shard this watch is (index of total; 0 of 1 unsharded). It owns the series whose label-set hash (FNV-1a 64, then MurmurHash3's fmix64 finaliser) modulo total is index.",
    );
    let (index, total) = (
        config.shard.index().to_string(),
        config.shard.total().to_string(),
    );
    e.sample(
        "promlearn_watch_shard_info",
        [("index", index.as_str()), ("total", total.as_str())],
        1.0,
    );
    // Named and read as Prometheus's own prometheus_config_last_reload_* (reload.rs).
    let (reloaded, reloaded_at) = shared.live.gauges();
    for (name, help, value) in [
        (
            "promlearn_watch_config_last_reload_successful",
            "1 if the last reload of the configuration (SIGHUP or POST /-/reload) succeeded, 0 if it was refused (the running configuration goes on).",
            f64::from(u8::from(reloaded)),
        ),
        (
            "promlearn_watch_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load (the start, or a reload).",
            reloaded_at,
        ),
    ] {
        e.family(name, MetricType::Gauge, help);
        e.sample(name, [], value);
    }
    per_query(
        &mut e,
        "promlearn_watch_up",
        MetricType::Gauge,
        "1 if the query's last inference query answered, else 0 (its series are then not exported).",
        &|q| Some(f64::from(u8::from(q.up))),
    );
    per_query(
        &mut e,
        "promlearn_watch_series",
        MetricType::Gauge,
        "Series the query currently tracks.",
        &|q| Some(q.series as f64),
    );
    per_query(
        &mut e,
        "promlearn_watch_models",
        MetricType::Gauge,
        "Series of the query that have a fitted model.",
        &|q| Some(q.models as f64),
    );
    per_query(
        &mut e,
        "promlearn_watch_fits_total",
        MetricType::Counter,
        "Fits completed successfully.",
        &|q| Some(q.fits as f64),
    );
    per_query(
        &mut e,
        "promlearn_watch_fits_skipped_total",
        MetricType::Counter,
        "Fits skipped because the series' previous fit was still running.",
        &|q| Some(q.fits_skipped as f64),
    );
    per_query(
        &mut e,
        "promlearn_watch_last_fit_timestamp_seconds",
        MetricType::Gauge,
        "Unix time of the query's last successful fit.",
        &|q| q.last_fit_unix,
    );

    e.family(
        "promlearn_watch_errors_total",
        MetricType::Counter,
        "Errors by kind: query_failed, timeout, fit_failed, analyse_failed, series_limit.",
    );
    for (qc, q) in config.queries.iter().zip(&queries) {
        for (kind, count) in ERROR_KINDS.iter().zip(q.errors) {
            e.sample(
                "promlearn_watch_errors_total",
                [("query", qc.name.as_str()), ("kind", kind)],
                count as f64,
            );
        }
    }
    e.family(
        "promlearn_watch_series_dropped_total",
        MetricType::Counter,
        "Series forgotten, by reason: stale (no sample for stale_after), stopped_at_max_series (a stopped series made room for a live one). A forgotten series comes back only with a newer sample.",
    );
    for (qc, q) in config.queries.iter().zip(&queries) {
        for (reason, count) in DROP_REASONS.iter().zip(q.dropped) {
            e.sample(
                "promlearn_watch_series_dropped_total",
                [("query", qc.name.as_str()), ("reason", reason)],
                count as f64,
            );
        }
    }
    e.family(
        "promlearn_watch_series_unscored",
        MetricType::Gauge,
        "Tracked series that get no score, by reason: not_enough_history (fewer finite samples in the fit window than the detector's min_history: all NaN or infinite, or too new), no_score (a model, but no point judged over the fit window: too many NaN or infinite values in the detector's context).",
    );
    for (qc, q) in config.queries.iter().zip(&queries) {
        for (reason, count) in crate::series::UNSCORED_REASONS.iter().zip(q.unscored) {
            e.sample(
                "promlearn_watch_series_unscored",
                [("query", qc.name.as_str()), ("reason", reason)],
                count as f64,
            );
        }
    }
    for (name, help, fits) in [
        (
            "promlearn_watch_fit_duration_seconds",
            "Time one series' fit took (on the blocking pool, not counting the wait for a fit slot).",
            true,
        ),
        (
            "promlearn_watch_infer_duration_seconds",
            "Time one inference cycle of the query took: its range query and the analysis of every series.",
            false,
        ),
    ] {
        e.family(name, MetricType::Histogram, help);
        for (qc, q) in config.queries.iter().zip(&queries) {
            let histogram = if fits {
                &q.fit_durations
            } else {
                &q.infer_durations
            };
            histogram.write_to(&mut e, name, &[("query", qc.name.as_str())]);
        }
    }
    e.finish()
}

#[cfg(test)]
mod tests;
