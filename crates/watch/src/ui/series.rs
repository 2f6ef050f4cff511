//! One series of the running watch: its newest judged point (the one `/metrics` shows, to the
//! bit), the samples it keeps for its next read, its detector and settings, the query's last fit,
//! when its own next fit is due, and why it alerted when its newest point is flagged. A range is
//! drawn with its band and flags by replaying it with the backtest code (an explore job,
//! `explore.rs`), which the page starts on opening: the watch keeps no judged points besides the
//! newest, so the page costs no memory per series.

use std::{collections::BTreeMap, sync::Arc};

use hyper::StatusCode;
use promlearn_loader::Labels;
use serde::Serialize;

use super::Params;
use crate::engine::Engine;

#[derive(Serialize)]
pub(crate) struct SeriesView {
    query: String,
    labels: BTreeMap<String, String>,
    /// The detector's settings, as the file writes them (`{ kind = "knn", … }`).
    detector: String,
    detector_name: &'static str,
    /// The query's TOML block, as explore's "copy as TOML" writes it.
    block: String,
    has_model: bool,
    /// When the query last finished a fit (unix seconds).
    query_last_fit_unix: Option<f64>,
    /// When this series' next fit is due (unix ms).
    next_fit_ms: i64,
    /// Points flagged since the watch began tracking it (`promlearn_anomalies_total`).
    anomalies_total: u64,
    /// Its newest judged point, as `/metrics` shows it (none while there is none).
    point: Option<PointRow>,
    /// Its samples over the detector's window, oldest first: `[unix ms, value]`.
    recent: Vec<(i64, f64)>,
    /// Why it alerts, if its newest point is flagged.
    why: Option<Why>,
}

/// A judged point: `[unix ms, value, yhat, lower, upper, score, anomalous]` in an object.
#[derive(Serialize)]
pub(crate) struct PointRow {
    pub t: i64,
    pub value: f64,
    pub yhat: f64,
    pub lower: f64,
    pub upper: f64,
    pub score: f64,
    pub anomalous: bool,
}

#[derive(Serialize)]
struct Why {
    t: i64,
    score: f64,
    /// `above` or `below` the band.
    side: &'static str,
    value: f64,
    lower: f64,
    upper: f64,
}

/// The view of the series `labels` (a JSON object) of `query`.
pub(crate) fn view(
    engine: &Arc<Engine>,
    params: &Params,
) -> Result<SeriesView, (StatusCode, String)> {
    let bad = |message: String| (StatusCode::BAD_REQUEST, message);
    let name = params
        .get("query")
        .ok_or_else(|| bad("name the series' query: ?query=NAME".into()))?;
    let index = engine
        .config
        .queries
        .iter()
        .position(|q| &q.name == name)
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no query named `{name}`")))?;
    let text = params
        .get("labels")
        .ok_or_else(|| bad("name the series: ?labels={\"name\":\"value\",…}".into()))?;
    let pairs: BTreeMap<String, String> = serde_json::from_str(text).map_err(|e| {
        bad(format!(
            "labels `{text}` is not a JSON object of strings: {e}"
        ))
    })?;
    let labels = Labels::from_pairs(pairs);
    let query = &engine.config.queries[index];
    let state = engine.lock();
    let q = &state.queries[index];
    let series = q.series.get(&labels).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!("query `{name}` does not track {labels} now (stale, or another shard's)"),
        )
    })?;
    let point = series.last.map(|p| PointRow {
        t: p.timestamp_ms,
        value: p.value,
        yhat: p.yhat,
        lower: p.yhat_lower,
        upper: p.yhat_upper,
        score: p.score,
        anomalous: p.anomalous,
    });
    let why = point.as_ref().filter(|p| p.anomalous).map(|p| Why {
        t: p.t,
        score: p.score,
        side: if p.value > p.upper { "above" } else { "below" },
        value: p.value,
        lower: p.lower,
        upper: p.upper,
    });
    Ok(SeriesView {
        query: name.clone(),
        labels: super::label_map(&labels),
        detector: super::explore::detector_toml(&query.detector),
        detector_name: query.detector.name(),
        block: super::explore::QueryForm::of(query).block(),
        has_model: series.model.is_some(),
        query_last_fit_unix: q.last_fit_unix,
        next_fit_ms: series.next_fit_ms,
        anomalies_total: series.anomalies,
        point,
        recent: series.recent.samples(query.step_ms()),
        why,
    })
}
