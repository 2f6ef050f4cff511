//! Fit rounds in the service: a round whose fits would fill more than `FIT_SHARE` of an
//! inference period on the fit slots is spread over several periods (as many fits each as the
//! query's mean fit time lets in, none while those are still running), and its series stay
//! apart in the rounds after it.

use std::{
    sync::{Arc, atomic::AtomicUsize},
    time::{Duration, Instant},
};

use promlearn_loader::Labels;

use super::fake_fit;
use crate::{
    Config,
    backtest::JudgedPoint,
    clock::{Clock, Exec},
    engine::Engine,
    schedule::{fit_once, infer_once},
    source::{MemorySource, Source},
};

const T0: i64 = 1_700_000_000_000;
const SERIES: usize = 30;
const FIT: Duration = Duration::from_millis(60);

/// Series now being fitted, due for a fit, and fits done.
fn counts(shared: &Engine, now: i64) -> (usize, usize, u64) {
    let state = shared.lock();
    let q = &state.queries[0];
    let fitting = q.series.values().filter(|s| s.fitting).count();
    let due = q
        .series
        .values()
        .filter(|s| !s.fitting && s.next_fit_ms <= now)
        .count();
    (fitting, due, q.fits)
}

async fn until_fitted(shared: &Engine, fits: u64) {
    let started = Instant::now();
    while shared.lock().queries[0].fits < fits {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} of {fits} fits after 20 s",
            shared.lock().queries[0].fits
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_too_large_for_an_inference_period_is_spread_and_stays_spread() {
    let timestamps: Vec<i64> = (0..1200).map(|i| T0 - 600_000 + i * 1000).collect();
    let series = (0..SERIES)
        .map(|i| {
            let values = timestamps.iter().map(|t| ((t / 1000) % 7) as f64).collect();
            (
                Labels::from_pairs([("i", i.to_string())]),
                timestamps.clone(),
                values,
            )
        })
        .collect();
    let config = Config::from_toml(
        r#"
endpoint = "http://localhost:9090"
[[query]]
name = "q"
expr = "x"
step = "1s"
infer_every = "1s"
detector = { kind = "zscore", window = 5 }
fit_every = "1m"
fit_window = "5m"
"#,
        "spread.toml",
    )
    .unwrap();
    let shared = Arc::new(Engine::new(
        config,
        Clock::simulated(T0),
        Source::Memory(MemorySource::new(series).unwrap()),
        Exec::Pool,
        fake_fit(FIT, Arc::new(AtomicUsize::new(0))),
        1,
    ));
    infer_once(&shared, 0, &mut |_: &JudgedPoint<'_>| Ok(()))
        .await
        .unwrap();

    // The first round: no fit time known yet, every series at once.
    fit_once(&shared, 0).await;
    assert_eq!(counts(&shared, T0).0, SERIES);
    until_fitted(&shared, SERIES as u64).await;

    // A minute later all 30 are due again, 1.8 s of fits for half of a 1 s period: spread.
    let round = T0 + 60_000;
    let mut fitted = SERIES as u64;
    let mut groups = Vec::new();
    for tick in 0.. {
        let now = round + tick * 1000;
        shared.clock.set(now);
        let (_, due, _) = counts(&shared, now);
        if due == 0 {
            break;
        }
        let mean = shared.lock().queries[0].fit_durations.mean().unwrap();
        let room = ((0.5 / mean).floor() as usize).max(1);
        fit_once(&shared, 0).await;
        let (fitting, left, _) = counts(&shared, now);
        assert_eq!(
            (fitting, left),
            (room.min(due), due - room.min(due)),
            "tick {tick}: {due} due, mean fit {mean:.3} s"
        );
        // While those run, another look at the same tick lets none in: the period is full.
        fit_once(&shared, 0).await;
        assert_eq!(counts(&shared, now).0, fitting, "tick {tick}");
        fitted += fitting as u64;
        until_fitted(&shared, fitted).await;
        groups.push(fitting);
    }
    assert!(groups.len() >= 3, "one round over {groups:?}");
    assert_eq!(groups.iter().sum::<usize>(), SERIES);

    // The next round: each group is due a minute after its own fit, not all at once.
    let mut cumulative = 0;
    for (tick, group) in groups.iter().enumerate() {
        cumulative += group;
        let now = round + 60_000 + tick as i64 * 1000;
        assert_eq!(
            counts(&shared, now).1,
            cumulative,
            "tick {tick} of {groups:?}"
        );
    }
}
