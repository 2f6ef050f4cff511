//! The case `cargo xtask demo --anomaly` runs, replayed as the watch service runs it: CoreDNS's
//! request rate as `rate(x[5s])` at 1 s steps, 150 s of traffic with a 30 s rhythm (80 ± 15
//! qps), a drop to a tenth at 100 s and a five-fold spike at 125 s (8 s each); the service
//! starts 20 s into the traffic, fits on the last minute then and 75 s later, and judges each
//! new point through `Fitted::advance`. Every detector must alert on both events and mostly
//! there (the demo's own check, on its own data), for every seed of the simulated traffic.

mod common;

use common::*;
use promlearn_detect::{DetectorSpec, StreamState};

/// The traffic starts this many seconds into the simulated series (before it, an idle counter:
/// rate 0, as in the demo, whose Prometheus started a minute or two before the traffic).
const LEAD_S: usize = 90;
const TRAFFIC_S: usize = 150;
const WATCH_AFTER_S: usize = 20;
/// The drop (x0.1) and the spike (x5), seconds into the traffic, 8 s each.
const EVENTS: [(usize, f64); 2] = [(100, 0.1), (125, 5.0)];
const EVENT_LEN_S: usize = 8;
/// As the demo counts it: a flag up to the rate's look-back, 8 points and 2 s after an event's
/// end is the event's echo.
const ECHO_S: usize = 5 + 8 + 2;

/// `rate(x[range_s])` at 1 s steps (Prometheus 3: samples in `(t - range, t]`, the slope from
/// the first to the last) of a counter fed by Poisson requests at `qps(second)`, scraped every
/// second with ±100 ms of jitter.
fn rate_over(n: usize, range_s: f64, seed: u64, qps: impl Fn(f64) -> f64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let buckets = (n + 1) * 10;
    let mut counter = vec![0u64];
    let mut total = 0u64;
    for b in 0..buckets {
        total += rng.poisson(qps(b as f64 / 10.0) * 0.1);
        counter.push(total);
    }
    let scrapes: Vec<(f64, f64)> = (0..=n)
        .map(|s| {
            let t = (s as f64 + (rng.uniform() - 0.5) * 0.2).max(0.0);
            let b = ((t * 10.0).floor() as usize).min(buckets);
            (t, counter[b] as f64)
        })
        .collect();
    (0..n)
        .map(|i| {
            let end = i as f64;
            let inside: Vec<&(f64, f64)> = scrapes
                .iter()
                .filter(|(t, _)| *t > end - range_s && *t <= end)
                .collect();
            match (inside.first(), inside.last()) {
                (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) / (b.0 - a.0),
                _ => f64::NAN,
            }
        })
        .collect()
}

/// The demo's traffic: requests per second at second `t` of the series.
fn demo_qps(t: f64) -> f64 {
    let t = t - LEAD_S as f64;
    if t < 0.0 || t >= TRAFFIC_S as f64 {
        return 0.0;
    }
    let mut q = 80.0 + 15.0 * (std::f64::consts::TAU * t / 30.0).sin();
    for (at, factor) in EVENTS {
        if (at as f64..(at + EVENT_LEN_S) as f64).contains(&t) {
            q *= factor;
        }
    }
    q
}

/// What the watch flagged: indices (seconds into the traffic) of the alerts.
fn watch(
    spec: &DetectorSpec,
    ts: &[i64],
    series: &[f64],
    fit_every: usize,
    fit_window: usize,
) -> Vec<usize> {
    let start = LEAD_S + WATCH_AFTER_S;
    let end = LEAD_S + TRAFFIC_S;
    let ctx = spec.context();
    let mut state = StreamState::new();
    let mut fitted = None;
    let mut next_fit = start;
    let mut alerts = Vec::new();
    for now in start..end {
        if now >= next_fit {
            let from = (now + 1).saturating_sub(fit_window);
            fitted = Some(spec.fit(&ts[from..=now], &series[from..=now]).unwrap());
            next_fit = now + fit_every;
        }
        let model = fitted.as_ref().unwrap();
        let a = model
            .advance(&mut state, &ts[now - ctx..=now], &series[now - ctx..=now])
            .unwrap();
        alerts.extend(a.flagged().map(|_| now - LEAD_S));
    }
    alerts
}

/// What failed, if anything: both events caught, with at least half the alerts on them.
fn judge(alerts: &[usize]) -> Option<String> {
    let on = |i: &usize, (at, _): (usize, f64)| (at..at + EVENT_LEN_S + ECHO_S).contains(i);
    let caught: Vec<bool> = EVENTS
        .iter()
        .map(|&e| alerts.iter().any(|i| on(i, e)))
        .collect();
    let true_flags = alerts
        .iter()
        .filter(|i| EVENTS.iter().any(|&e| on(i, e)))
        .count();
    let precision = if alerts.is_empty() {
        1.0
    } else {
        true_flags as f64 / alerts.len() as f64
    };
    let ok = caught.iter().all(|c| *c) && precision >= 0.5;
    (!ok).then(|| {
        format!(
            "alerts at {alerts:?}: drop {}, spike {}, precision {precision:.2}",
            caught[0], caught[1]
        )
    })
}

/// The seeds whose run failed, each with what failed.
fn run(
    spec: &DetectorSpec,
    seeds: std::ops::Range<u64>,
    fit_every: usize,
    fit_window: usize,
) -> Vec<String> {
    let n = LEAD_S + TRAFFIC_S;
    let ts = timestamps(n);
    seeds
        .filter_map(|seed| {
            let series: Vec<f64> = rate_over(n, 5.0, seed, demo_qps);
            let failed = judge(&watch(spec, &ts, &series, fit_every, fit_window))?;
            Some(format!("{} seed {seed}: {failed}", spec.name()))
        })
        .collect()
}

#[test]
fn rolling_detectors_catch_the_demos_drop_and_spike() {
    let mut failed = Vec::new();
    for name in ["zscore", "mad", "quantile"] {
        let spec: DetectorSpec =
            serde_json::from_value(serde_json::json!({ "kind": name, "window": 10 })).unwrap();
        failed.extend(run(&spec, 0..20, 75, 60));
    }
    assert!(failed.is_empty(), "failed runs of 20 each: {failed:#?}");
}

#[test]
fn knn_catches_the_demos_drop_and_spike() {
    let spec = DetectorSpec::from_name("knn").unwrap();
    let failed = run(&spec, 0..20, 75, 60);
    assert!(failed.is_empty(), "failed runs of 20: {failed:#?}");
}

#[test]
fn lstm_catches_the_demos_drop_and_spike() {
    // The demo refits every query as its first one (the last minute, 75 s apart): fitted once,
    // 20 s into the traffic, on the idle counter and the ramp up to the traffic (the example's
    // own LSTM schedule, every 10 minutes on 15), the LSTM has not seen one period of the
    // rhythm and its band is as wide as that ramp's forecast errors: it then missed the drop
    // in 14 of 40 seeds.
    let spec: DetectorSpec = serde_json::from_value(serde_json::json!({
        "kind": "lstm", "window": 8, "hidden": 16, "epochs": 40, "quantile": 0.99, "margin": 2
    }))
    .unwrap();
    let failed = run(&spec, 0..20, 75, 60);
    assert!(failed.is_empty(), "failed runs of 20: {failed:#?}");
}
