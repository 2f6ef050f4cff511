//! What `/metrics` shows: the table of exported families (each row naming its family and how its
//! value is read from a series' newest judged point) and the page rendered from the state in the
//! exposition format of `expo.rs`.

use crate::{
    expo::Exposition,
    schedule::Shared,
    series::{ERROR_KINDS, Point, QueryState},
};

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
        value: |p| p.lower,
    },
    SeriesFamily {
        name: "promlearn_yhat_upper",
        help: "Upper edge of the detector's band at the series' newest judged point.",
        value: |p| p.upper,
    },
    SeriesFamily {
        name: "promlearn_value",
        help: "The series' value at its newest judged point.",
        value: |p| p.value,
    },
];

/// Renders every family, HELP and TYPE included, even when there is nothing to report yet.
pub(crate) fn render(shared: &Shared) -> String {
    let state = shared.lock();
    let config = &shared.config;
    let mut e = Exposition::new();
    for family in &SERIES_FAMILIES {
        e.family(family.name, "gauge", family.help);
        for (qc, q) in config.queries.iter().zip(&state.queries) {
            if !q.up {
                continue;
            }
            for series in q.series.values() {
                let Some(p) = series.last else { continue };
                let labels = [
                    ("query", qc.name.as_str()),
                    ("detector", qc.detector.name()),
                ]
                .into_iter()
                .chain(
                    series
                        .exported
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str())),
                );
                e.sample(family.name, labels, (family.value)(&p));
            }
        }
    }
    let per_query = |e: &mut Exposition,
                     name: &str,
                     kind: &str,
                     help: &str,
                     value: &dyn Fn(&QueryState) -> Option<f64>| {
        e.family(name, kind, help);
        for (qc, q) in config.queries.iter().zip(&state.queries) {
            if let Some(v) = value(q) {
                e.sample(name, [("query", qc.name.as_str())], v);
            }
        }
    };
    per_query(
        &mut e,
        "promlearn_watch_up",
        "gauge",
        "1 if the query's last inference query answered, else 0 (its series are then not exported).",
        &|q| Some(f64::from(u8::from(q.up))),
    );
    per_query(
        &mut e,
        "promlearn_watch_series",
        "gauge",
        "Series the query currently tracks.",
        &|q| Some(q.series.len() as f64),
    );
    per_query(
        &mut e,
        "promlearn_watch_models",
        "gauge",
        "Series of the query that have a fitted model.",
        &|q| Some(q.series.values().filter(|s| s.model.is_some()).count() as f64),
    );
    per_query(
        &mut e,
        "promlearn_watch_fits_total",
        "counter",
        "Fits completed successfully.",
        &|q| Some(q.fits as f64),
    );
    per_query(
        &mut e,
        "promlearn_watch_fits_skipped_total",
        "counter",
        "Fits skipped because the series' previous fit was still running.",
        &|q| Some(q.fits_skipped as f64),
    );
    per_query(
        &mut e,
        "promlearn_watch_last_fit_timestamp_seconds",
        "gauge",
        "Unix time of the query's last successful fit.",
        &|q| q.last_fit_unix,
    );

    e.family(
        "promlearn_watch_errors_total",
        "counter",
        "Errors by kind: query_failed, timeout, fit_failed, analyse_failed, series_limit.",
    );
    for (qc, q) in config.queries.iter().zip(&state.queries) {
        for (kind, count) in ERROR_KINDS.iter().zip(q.errors) {
            e.sample(
                "promlearn_watch_errors_total",
                [("query", qc.name.as_str()), ("kind", kind)],
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
        e.family(name, "histogram", help);
        for (qc, q) in config.queries.iter().zip(&state.queries) {
            let histogram = if fits {
                &q.fit_durations
            } else {
                &q.infer_durations
            };
            e.histogram(name, &[("query", qc.name.as_str())], histogram);
        }
    }
    e.finish()
}
