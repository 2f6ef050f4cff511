//! The knn detector's own behaviour: new extremes and the range they widen, the live tail,
//! the coarse scale, and its settings checked.

use super::*;

#[path = "../../../tests/common/mod.rs"]
mod common;

/// A quiet series between 0 and 1 with a spike to 3 every 50 points: spikes are part of
/// its normal patterns, so a pattern holding a spike is no news.
fn spiky(n: usize) -> (Vec<i64>, Vec<f64>) {
    let ts = (0..n as i64)
        .map(|i| 1_700_000_000_000 + i * 60_000)
        .collect();
    let v = (0..n)
        .map(|i| {
            if i % 50 == 25 {
                3.0
            } else {
                (i % 7) as f64 / 7.0
            }
        })
        .collect();
    (ts, v)
}

fn knn(extreme: f64) -> DetectorSpec {
    DetectorSpec::Knn {
        window: 8,
        neighbours: 8,
        confirm: 0.9,
        extreme,
    }
}

#[test]
fn a_value_beyond_the_history_s_range_scores_above_1_at_once() {
    let (ts, mut v) = spiky(1000);
    let at = 930; // between two ordinary spikes (925 and 975)
    v[at] = 10.0;
    // 10 is 7 above a range of 3: 7 / (0.1 * 3) units beyond it, far more than its
    // patterns score (the coarse scale's block means see it too, less sharply).
    let beyond = 7.0 / 0.3;
    for (extreme, by_range) in [(0.1, true), (0.0, false)] {
        let fitted = FittedKnn::fit(&knn(extreme), &ts[..900], &v[..900]).unwrap();
        let a = fitted.analyse(&ts, &v).unwrap();
        assert!(a.score[at] > 1.0, "{extreme}: {}", a.score[at]);
        assert_eq!(
            (a.score[at] - beyond).abs() < 1e-9,
            by_range,
            "extreme = {extreme}: the spike to 10 scored {}",
            a.score[at]
        );
        // The history's own spikes to 3 are inside its range: never flagged.
        assert!(a.score[925] <= 1.0 && a.score[975] <= 1.0, "{extreme}");
    }
    let fitted = FittedKnn::fit(&knn(0.1), &ts[..900], &v[..900]).unwrap();
    assert!((fitted.extremity(10.0, [fitted.low, fitted.high]) - beyond).abs() < 1e-9);
    assert_eq!(fitted.extremity(3.0, [fitted.low, fitted.high]), 0.0);
    assert!((fitted.extremity(-0.3, [fitted.low, fitted.high]) - 1.0).abs() < 1e-9);
}

#[test]
fn a_new_extreme_widens_the_range_the_next_one_must_leave() {
    let (ts, mut v) = spiky(1000);
    let fitted = FittedKnn::fit(&knn(0.1), &ts[..900], &v[..900]).unwrap();
    let fit = [fitted.low, fitted.high];
    assert_eq!(fit, [0.0, 3.0]);
    // A step to 3.2 (inside a tenth of the range beyond it: no extreme), then a drift to
    // 10 and 10.5: 10 is a new extreme, 10.5 is not (0.5 beyond 10, a tenth of 10 is 1).
    v[910] = 3.2;
    v[930] = 10.0;
    v[960] = 10.5;
    let mut range = fit;
    let mut tail = LiveTail::new(fitted.fingerprint());
    let a = fitted.judge(&ts, &v, 900, &mut range, &mut tail).unwrap();
    assert_eq!(range, [0.0, 10.0]);
    assert!(a.score[930] > 1.0);
    assert!(fitted.extremity(v[960], range) < 1.0);
    // Not before `from`: the context only.
    let mut range = fit;
    fitted.judge(&ts, &v, 1000, &mut range, &mut tail).unwrap();
    assert_eq!(range, fit);
    // Through advance, the series' state keeps the widened range from call to call, so
    // a new high after the quiet period that is inside it does not alert again, while
    // against the fit window's range alone it would.
    let (ts, mut v) = spiky(1100);
    v[930] = 10.0;
    v[1040] = 10.4; // between two ordinary spikes (1025 and 1075), after the quiet period
    let ctx = knn(0.1).context();
    let mut state = StreamState::new();
    let mut alerts = Vec::new();
    for end in 901..=1100 {
        let from = end - 1 - ctx;
        let a = fitted
            .advance(&mut state, &ts[from..end], &v[from..end])
            .unwrap();
        alerts.extend(a.flagged().map(|_| end - 1));
    }
    assert_eq!(state.range(fit), [0.0, 10.0]);
    assert!(alerts.contains(&930), "{alerts:?}");
    assert!(!alerts.contains(&1040), "{alerts:?}");
    let mut fresh = StreamState::new();
    let from = 1040 - ctx;
    let a = fitted
        .advance(&mut fresh, &ts[from..1041], &v[from..1041])
        .unwrap();
    assert!(
        a.anomalous[a.len() - 1],
        "against the fit's range 10.4 is news"
    );
}

#[test]
fn a_model_s_scores_since_its_fit_widen_its_unit() {
    // The same odd value (inside the range: no new extreme) five times, 350 points apart
    // (the same place in the series' 7- and 50-point rhythms), under one model: the first
    // alerts, and once the model's own scores since its fit hold more like it than its
    // quantile allows, they are its new normal.
    let at = [930, 1280, 1630, 1980, 2330];
    let (ts, mut v) = spiky(2400);
    let fitted = FittedKnn::fit(&knn(0.1), &ts[..900], &v[..900]).unwrap();
    for i in at {
        v[i] = 2.0;
    }
    let a = fitted.analyse(&ts, &v).unwrap();
    let peak = |i: usize| a.score[i..i + 8].iter().copied().fold(0.0, f64::max);
    let (first, last) = (peak(at[0]), peak(at[4]));
    assert!(first > 1.0, "{first}");
    assert!(last < first / 1.2, "{first} then {last}");
    // Through advance, the tail is the series' state's, kept from call to call.
    let ctx = knn(0.1).context();
    let mut state = StreamState::new();
    let mut streamed = vec![f64::NAN; v.len()];
    for end in 901..=v.len() {
        let from = end - 1 - ctx;
        let out = fitted
            .advance(&mut state, &ts[from..end], &v[from..end])
            .unwrap();
        streamed[end - 1] = out.score[out.len() - 1];
    }
    let peak = |i: usize| streamed[i..i + 8].iter().copied().fold(0.0, f64::max);
    assert!(peak(at[0]) > 1.0 && peak(at[4]) < peak(at[0]) / 1.2);
}

/// Normal noise around 0, the same for the same seed (the integration tests' generator).
fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = common::Rng::new(seed);
    (0..n).map(|_| rng.normal()).collect()
}

#[test]
fn the_coarse_scale_keeps_seeing_a_level_shift_in_noise() {
    let n = 2600;
    let ts: Vec<i64> = (0..n as i64).map(|i| i * 60_000).collect();
    let spec = DetectorSpec::from_name("knn").unwrap();
    let shift = 2300..2600;
    let alerts = |model: &FittedKnn, values: &[f64]| {
        let a = model.analyse(&ts, values).unwrap();
        a.score[shift.clone()].iter().filter(|s| **s > 1.0).count()
    };
    // Summed over ten seeds: one seed's count swings with its noise. The first alert widens
    // the live unit of both models (the shifted level is their new normal after it), so the
    // coarse scale shows in the alerts after the first.
    let (mut with_coarse, mut fine, mut calm_alerts) = (0, 0, 0);
    for seed in 1..=10 {
        let calm = noise(n, seed);
        let mut shifted = calm.clone();
        for v in &mut shifted[shift.clone()] {
            *v += 1.0; // a deviation: inside the range, each pattern still mostly noise
        }
        let both = FittedKnn::fit(&spec, &ts[..2000], &calm[..2000]).unwrap();
        assert!(both.coarse.is_some(), "2,000 points hold coarse patterns");
        if seed == 1 {
            // 100 points hold 17 coarse patterns, but none finds its 8 neighbours outside
            // its own 32 points: fine patterns only, rather than a coarse unit at its floor
            // that would make ordinary data score far above 1.
            let short = FittedKnn::fit(&spec, &ts[..100], &calm[..100]).unwrap();
            assert!(short.coarse.is_none());
        }
        let fine_only = FittedKnn {
            coarse: None,
            ..both.clone()
        };
        with_coarse += alerts(&both, &shifted);
        fine += alerts(&fine_only, &shifted);
        // The same points without the shift: the coarse scale adds no alert there.
        calm_alerts += alerts(&both, &calm);
    }
    // Measured: 42 with the coarse scale, 16 without, 0 calm.
    assert!(
        with_coarse >= 30 && with_coarse >= 2 * fine,
        "{with_coarse} points above 1 with the coarse scale, {fine} without"
    );
    assert_eq!(calm_alerts, 0);
}

#[test]
fn extreme_is_checked() {
    let e = knn(-1.0).validate().unwrap_err().to_string();
    assert!(
        e.contains("`extreme`") && e.contains("extreme = 0.1"),
        "{e}"
    );
    assert!(knn(f64::NAN).validate().is_err());
}

#[test]
fn a_long_history_s_patterns_come_from_its_newest_points() {
    let (ts, v) = spiky(20_000);
    let fitted = FittedKnn::fit(&knn(0.1), &ts, &v).unwrap();
    // Every point of the newest ones ends a pattern but the first `window - 1`, and every
    // block of 4 but the first 7.
    assert_eq!(fitted.fine.len(), MAX_POINTS - 7);
    let coarse = fitted.coarse.as_ref().expect("coarse patterns");
    assert_eq!(coarse.len(), (MAX_POINTS - 1) / COARSE_BLOCK - 7);
    // The range and the flat runs are the whole history's.
    assert_eq!([fitted.low, fitted.high], [0.0, 3.0]);
    let a = fitted.analyse(&ts[19_000..], &v[19_000..]).unwrap();
    assert!(a.score.iter().all(|s| s.is_nan() || *s <= 1.0));
}
