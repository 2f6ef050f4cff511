//! Series whose label sets churn, replayed on a simulated clock through the service's schedule:
//! a stopped series is forgotten `stale_after` after its last sample (not when the query's range
//! stops returning it), and a live series is never refused because stopped ones hold the slots.

use std::sync::{Arc, atomic::AtomicUsize};

use promlearn_loader::Labels;

use super::fake_fit;
use crate::{
    Config,
    backtest::JudgedPoint,
    clock::Clock,
    schedule::{Exec, Shared, fit_once, infer_once},
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
    let shared = Arc::new(Shared::new(
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
