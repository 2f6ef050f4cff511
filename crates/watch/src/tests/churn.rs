//! Series whose label sets churn, replayed on a simulated clock through the service's schedule:
//! a stopped series is forgotten `stale_after` after its last sample (not when the query's range
//! stops returning it), and a live series is never refused because stopped ones hold the slots.

use std::sync::{Arc, atomic::AtomicUsize};

use promlearn_loader::Labels;

use super::fake_fit;
use crate::{
    Config,
    backtest::JudgedPoint,
    clock::{Clock, Exec},
    engine::Engine,
    schedule::{fit_once, infer_once},
    series::ErrorKind,
    source::{MemorySource, Source},
};

const T0: i64 = 1_700_000_000_000;
const STEP: i64 = 1_000;
/// A generation of series starts every `EVERY` and lives `LIFE`: two overlap for 10 s.
const EVERY: i64 = 20_000;
const LIFE: i64 = 30_000;
const PER_GENERATION: usize = 100;
const GENERATIONS: i64 = 8;

fn labels(generation: i64, i: usize) -> Labels {
    Labels::from_pairs([("gen", generation.to_string()), ("i", i.to_string())])
}

/// The real last sample at or before `now` of generation `g`'s series (`None` before it starts).
fn last_sample(g: i64, now: i64) -> Option<i64> {
    let (start, end) = (T0 + g * EVERY, T0 + g * EVERY + LIFE);
    (now >= start).then(|| now.min(end).div_euclid(STEP) * STEP)
}

#[tokio::test]
async fn churning_series_are_forgotten_after_stale_after_and_never_crowd_out_live_ones() {
    let mut series = Vec::new();
    for g in 0..GENERATIONS {
        let start = T0 + g * EVERY;
        let timestamps: Vec<i64> = (start..=start + LIFE).step_by(STEP as usize).collect();
        for i in 0..PER_GENERATION {
            let values = timestamps.iter().map(|t| (t / STEP % 7) as f64).collect();
            series.push((labels(g, i), timestamps.clone(), values));
        }
    }
    // A wide detector context (60 steps): the range an inference reads returns a stopped series
    // for a minute after its last sample, far longer than stale_after.
    let config = Config::from_toml(
        r#"
endpoint = "http://localhost:9090"
stale_after = "10s"
max_series = 250
[[query]]
name = "churn"
expr = "x"
step = "1s"
infer_every = "1s"
detector = { kind = "zscore", window = 60 }
fit_every = "10s"
fit_window = "2m"
"#,
        "churn.toml",
    )
    .unwrap();
    let stale_ms = 10_000;
    let shared = Arc::new(Engine::new(
        config,
        Clock::simulated(T0),
        Source::Memory(MemorySource::new(series).unwrap()),
        Exec::Inline,
        fake_fit(std::time::Duration::ZERO, Arc::new(AtomicUsize::new(0))),
        1,
    ));
    let end = T0 + (GENERATIONS - 1) * EVERY + LIFE + stale_ms + 5 * STEP;
    let mut most = 0;
    for now in (T0..=end).step_by(STEP as usize) {
        shared.clock.set(now);
        infer_once(&shared, 0, &mut |_: &JudgedPoint<'_>| Ok(()))
            .await
            .unwrap();
        fit_once(&shared, 0).await;
        let state = shared.lock();
        let q = &state.queries[0];
        assert_eq!(
            q.errors[ErrorKind::SeriesLimit as usize],
            0,
            "at {}s a live series was refused with {} series held",
            (now - T0) / 1000,
            q.series.len()
        );
        most = most.max(q.series.len());
        for g in 0..GENERATIONS {
            let Some(last) = last_sample(g, now) else {
                continue;
            };
            let held = (0..PER_GENERATION)
                .filter(|i| q.series.contains_key(&labels(g, *i)))
                .count();
            let age = now - last;
            if age == 0 {
                assert_eq!(
                    held,
                    PER_GENERATION,
                    "live generation {g} at {}s",
                    (now - T0) / 1000
                );
            } else if age > stale_ms {
                assert_eq!(
                    held,
                    0,
                    "generation {g} stopped {}s ago is still held at {}s",
                    age / 1000,
                    (now - T0) / 1000
                );
            }
        }
        assert_eq!(state.total_series, q.series.len());
    }
    assert!(most <= 250, "{most} series held");
    assert!(
        most > 200,
        "the limit was never reached ({most}): the test proves nothing"
    );
    assert_eq!(
        shared.lock().queries[0].series.len(),
        0,
        "all stopped, all forgotten"
    );
}

/// Series that can never be scored say so: one all NaN or ±Inf never gets a model and counts
/// as `not_enough_history`; one two-thirds NaN (every context window holds a NaN) gets a model
/// but no score and counts as `no_score`; each is logged once, when it has waited past its
/// fit window; a healthy series counts in neither.
#[tokio::test]
async fn series_that_are_never_scored_are_counted_and_logged_once() {
    const MINUTES: i64 = 4;
    let timestamps: Vec<i64> = (0..=MINUTES * 60).map(|i| T0 + i * STEP).collect();
    let healthy: Vec<f64> = timestamps.iter().map(|t| (t / STEP % 7) as f64).collect();
    let all_bad: Vec<f64> = (0..timestamps.len())
        .map(|i| [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][i % 3])
        .collect();
    let mostly_bad: Vec<f64> = (0..timestamps.len())
        .map(|i| {
            if i % 3 == 0 {
                5.0 + (i % 5) as f64
            } else {
                f64::NAN
            }
        })
        .collect();
    let series = vec![
        (labels(0, 0), timestamps.clone(), healthy),
        (labels(0, 1), timestamps.clone(), all_bad),
        (labels(0, 2), timestamps.clone(), mostly_bad),
    ];
    let config = Config::from_toml(
        r#"
endpoint = "http://localhost:9090"
[[query]]
name = "bad"
expr = "x"
step = "1s"
infer_every = "1s"
detector = { kind = "zscore", window = 10 }
fit_every = "30s"
fit_window = "1m"
"#,
        "bad.toml",
    )
    .unwrap();
    let shared = Arc::new(Engine::new(
        config,
        Clock::simulated(T0),
        Source::Memory(MemorySource::new(series).unwrap()),
        Exec::Inline,
        crate::engine::detector_fit(),
        1,
    ));
    let mut logged_at = [None; 3];
    for now in (T0..=T0 + MINUTES * 60_000).step_by(STEP as usize) {
        shared.clock.set(now);
        infer_once(&shared, 0, &mut |_: &JudgedPoint<'_>| Ok(()))
            .await
            .unwrap();
        fit_once(&shared, 0).await;
        let state = shared.lock();
        for (i, at) in logged_at.iter_mut().enumerate() {
            let series = &state.queries[0].series[&labels(0, i)];
            if series.wait_logged && at.is_none() {
                *at = Some(now - T0);
            }
        }
    }
    let state = shared.lock();
    let q = &state.queries[0];
    let has_model = |i: usize| q.series[&labels(0, i)].model.is_some();
    assert!(has_model(0) && !has_model(1) && has_model(2));
    assert_eq!(
        q.unscored(&shared.config.queries[0], T0 + MINUTES * 60_000),
        [1, 1],
        "not_enough_history, no_score"
    );
    assert_eq!(logged_at[0], None, "the healthy series waits for nothing");
    for i in [1, 2] {
        let at = logged_at[i].unwrap_or_else(|| panic!("series {i}'s wait was never logged"));
        assert!(
            at > 60_000,
            "series {i} logged at {at} ms, before its fit window passed"
        );
    }
    drop(state);
    let page = shared.render(&crate::export::Page::new(String::new()));
    for (reason, count) in [("not_enough_history", 1), ("no_score", 1)] {
        let line =
            format!("promlearn_watch_series_unscored{{query=\"bad\",reason=\"{reason}\"}} {count}");
        assert!(page.contains(&line), "{line}\n{page}");
    }
}
