//! What `/metrics` shows: the table of exported families (each row naming its family and how its
//! value is read from a series' newest judged point; the labels are `labels.rs`'s), and the
//! page: rendered from a snapshot of the state after each inference round and swapped in whole,
//! so that a scrape only copies a pointer and never waits on the engine, a fit's bookkeeping or
//! another scrape. The page is one for every generation of a reloaded engine, and it shows the
//! last reload's outcome, which it keeps.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use promlearn_loader::exposition::{MetricType, Writer};
use tokio::sync::Notify;

use crate::{
    Config,
    histogram::Histogram,
    series::{DROP_REASONS, ERROR_KINDS, Point, StateLock},
};

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

/// The page served on `/metrics`: the last rendered snapshot, swapped in whole; one for every
/// generation of a reloaded engine, with the last reload's outcome, which it shows.
pub(crate) struct Page {
    current: RwLock<Bytes>,
    wanted: Notify,
    reload_successful: AtomicBool,
    reload_success_unix_ms: AtomicI64,
}

impl Page {
    /// A page holding `first` until the first render. As Prometheus: the start counts as a
    /// successful load.
    pub(crate) fn new(first: String) -> Page {
        Page {
            current: RwLock::new(Bytes::from(first)),
            wanted: Notify::new(),
            reload_successful: AtomicBool::new(true),
            reload_success_unix_ms: AtomicI64::new(unix_ms()),
        }
    }

    /// The page now: a reference-counted copy, taken under a lock held for a pointer copy.
    pub(crate) fn get(&self) -> Bytes {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Serves `page` from now on.
    pub(crate) fn set(&self, page: Bytes) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = page;
    }

    /// Asks the render loop for a new page; requests made while it renders coalesce into one.
    pub(crate) fn want_render(&self) {
        self.wanted.notify_one();
    }

    /// Waits until a new page is wanted (the render loop).
    pub(crate) async fn render_wanted(&self) {
        self.wanted.notified().await;
    }

    /// Records a reload's outcome (`reload.rs`), shown from the next render on.
    pub(crate) fn record_reload(&self, ok: bool) {
        self.reload_successful.store(ok, Ordering::SeqCst);
        if ok {
            self.reload_success_unix_ms
                .store(unix_ms(), Ordering::SeqCst);
        }
    }

    /// `promlearn_watch_config_last_reload_successful` and `..._success_timestamp_seconds`.
    fn reload_gauges(&self) -> (bool, f64) {
        (
            self.reload_successful.load(Ordering::SeqCst),
            self.reload_success_unix_ms.load(Ordering::SeqCst) as f64 / 1000.0,
        )
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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

/// Copies what the page shows at `now` (unix ms); the lock is held for pointer copies and
/// counters only.
fn snapshot(config: &Config, now: i64, state: &StateLock) -> Vec<QuerySnapshot> {
    let state = state.lock();
    state
        .queries
        .iter()
        .zip(&config.queries)
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
/// a snapshot of the state of `config`'s queries at `now` (unix ms; the lock is not held while
/// formatting), for `page` (which shows the last reload's outcome).
pub(crate) fn render(config: &Config, now: i64, state: &StateLock, page: &Page) -> String {
    let queries = snapshot(config, now, state);
    // The page is about as long as the last one: room for it and a little growth.
    let last = page.get().len();
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
    let (reloaded, reloaded_at) = page.reload_gauges();
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
