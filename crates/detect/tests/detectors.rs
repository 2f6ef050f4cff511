//! Each detector on synthetic data: events flagged, calm data left alone, bad input survived.

mod common;

use std::sync::Arc;

use common::*;
use promlearn_detect::{
    Analysis, DetectorSpec, Error, Fitted, FittedLstm, Injected, LstmOptions, evaluate,
};

const ROLLING: [&str; 3] = ["zscore", "mad", "quantile"];

fn spec(name: &str) -> DetectorSpec {
    DetectorSpec::from_name(name).unwrap()
}

/// The flags outside `[from, to)` index ranges.
fn flags_outside(a: &Analysis, allowed: &[(usize, usize)]) -> Vec<usize> {
    a.flagged()
        .filter(|i| !allowed.iter().any(|(f, t)| (*f..*t).contains(i)))
        .collect()
}

fn flagged_in(a: &Analysis, from: usize, to: usize) -> usize {
    a.flagged().filter(|i| (from..to).contains(i)).count()
}

#[test]
fn toml_specs_take_defaults_and_reject_typos() {
    #[derive(Debug, serde::Deserialize)]
    struct Config {
        detector: Vec<DetectorSpec>,
    }
    let config: Config = toml::from_str(
        r#"
        [[detector]]
        kind = "zscore"
        [[detector]]
        kind = "mad"
        [[detector]]
        kind = "quantile"
        upper = 0.95
        [[detector]]
        kind = "lstm"
        epochs = 5
        "#,
    )
    .unwrap();
    assert_eq!(
        config.detector,
        vec![
            DetectorSpec::ZScore {
                window: 60,
                threshold: 4.0
            },
            DetectorSpec::Mad {
                window: 60,
                threshold: 5.0
            },
            DetectorSpec::Quantile {
                window: 120,
                lower: 0.01,
                upper: 0.95,
                margin: 1.0
            },
            DetectorSpec::Lstm {
                window: 8,
                hidden: 16,
                epochs: 5,
                learning_rate: 0.01,
                quantile: 0.99,
                margin: 2.0
            },
        ]
    );
    for (name, s) in ["zscore", "mad", "quantile", "lstm"]
        .iter()
        .zip(&config.detector)
    {
        assert_eq!(s.name(), *name);
        if ["zscore", "mad"].contains(name) {
            assert_eq!(&spec(name), s, "from_name gives the serde defaults");
        }
        s.validate().unwrap();
        // What it serialises to reads back.
        let text = serde_json::to_string(s).unwrap();
        assert!(text.contains(&format!("\"kind\":\"{name}\"")), "{text}");
        assert_eq!(&serde_json::from_str::<DetectorSpec>(&text).unwrap(), s);
    }
    let typo = toml::from_str::<Config>("[[detector]]\nkind = \"mad\"\nwindw = 5\n");
    assert!(typo.unwrap_err().to_string().contains("windw"));
    assert!(toml::from_str::<Config>("[[detector]]\nkind = \"prophet\"\n").is_err());
    assert!(DetectorSpec::from_name("prophet").is_err());
}

#[test]
fn validate_names_the_field_and_the_fix() {
    let cases = [
        (
            DetectorSpec::ZScore {
                window: 1,
                threshold: 3.5,
            },
            "window",
        ),
        (
            DetectorSpec::Mad {
                window: 60,
                threshold: -1.0,
            },
            "threshold",
        ),
        (
            DetectorSpec::Quantile {
                window: 60,
                lower: 0.9,
                upper: 0.1,
                margin: 0.5,
            },
            "upper",
        ),
        (
            DetectorSpec::Quantile {
                window: 60,
                lower: 0.01,
                upper: 0.99,
                margin: f64::NAN,
            },
            "margin",
        ),
        (
            DetectorSpec::Lstm {
                window: 8,
                hidden: 16,
                epochs: 0,
                learning_rate: 0.01,
                quantile: 0.99,
                margin: 1.5,
            },
            "epochs",
        ),
        (
            DetectorSpec::Lstm {
                window: 8,
                hidden: 16,
                epochs: 4,
                learning_rate: 0.01,
                quantile: 1.5,
                margin: 1.5,
            },
            "quantile",
        ),
    ];
    for (s, field) in cases {
        let e = s.validate().unwrap_err();
        let text = e.to_string();
        assert!(text.contains(&format!("`{field}`")), "{text}");
        assert!(text.contains("write e.g."), "{text}");
        // fit refuses it too, with the same error.
        let ts = timestamps(200);
        let vs = vec![1.0; 200];
        assert!(matches!(
            s.fit(&ts, &vs).unwrap_err(),
            Error::InvalidSpec { .. }
        ));
    }
}

/// A slow rhythm around 100 with noise; in the analysed run a five-fold spike at 400..408 and
/// a drop to a tenth at 560..568 (far enough apart that no window holds both).
fn rhythm_with_events() -> (Vec<i64>, Vec<f64>, Vec<f64>) {
    let n = 700;
    let history = rhythm(n, 100.0, 10.0, 300.0, 2.0, 1);
    let mut live = rhythm(n, 100.0, 10.0, 300.0, 2.0, 2);
    inject(&mut live, 400, 408, 5.0);
    inject(&mut live, 560, 568, 0.1);
    (timestamps(n), history, live)
}

#[test]
fn rolling_detectors_flag_spike_and_drop_and_nothing_else() {
    let (ts, history, live) = rhythm_with_events();
    for name in ROLLING {
        let s = spec(name);
        let fitted = s.fit(&ts, &history).unwrap();
        let a = fitted.analyse(&ts, &live).unwrap();
        assert_eq!(a.detector, name);
        assert_eq!(a.len(), live.len());
        assert!(flagged_in(&a, 400, 408) >= 1, "{name}: the spike");
        assert!(flagged_in(&a, 560, 568) >= 1, "{name}: the drop");
        assert!(a.score[400] > 3.0, "{name}: score {}", a.score[400]);
        // The first spike point is judged from the points before it only.
        assert!(
            (a.yhat[400] - 100.0).abs() < 15.0,
            "{name}: yhat {}",
            a.yhat[400]
        );
        let stray = flags_outside(&a, &[(400, 408), (560, 568)]);
        assert!(stray.is_empty(), "{name}: false flags at {stray:?}");
        // The warm-up is not judged, everything after it is.
        let w = s.context();
        assert!(a.yhat[..w].iter().all(|y| y.is_nan()), "{name}");
        assert!(a.score[w..].iter().all(|y| y.is_finite()), "{name}");
        assert_eq!(a.last_judged(), Some(live.len() - 1));
        // On the calm history itself: nothing.
        let calm = fitted.analyse(&ts, &history).unwrap();
        assert_eq!(calm.flagged().count(), 0, "{name} on its own history");
    }
}

#[test]
fn calm_jittery_rates_flag_nothing() {
    // Requests at a steady 80 qps, at a slow rhythm and at a quiet 5 qps, read as rate(x[3s])
    // from jittery scrapes, several seeds: fitted on one stretch, analysed on the next. (At
    // 0.5 qps, a burst of 7 requests within 2 s is still flagged by zscore now and then.)
    let n = 400;
    let ts = timestamps(n);
    for seed in 0..6u64 {
        for (what, qps) in [
            ("steady", &(|_| 80.0) as &dyn Fn(f64) -> f64),
            ("rhythm", &|t: f64| {
                80.0 + 20.0 * (t / 600.0 * std::f64::consts::TAU).sin()
            }),
            ("quiet", &|_| 5.0),
        ] {
            let history = prometheus_rate(n, seed * 2, qps);
            let live = prometheus_rate(n, seed * 2 + 1, qps);
            for name in ROLLING {
                let a = spec(name)
                    .fit(&ts, &history)
                    .unwrap()
                    .analyse(&ts, &live)
                    .unwrap();
                let flags: Vec<usize> = a.flagged().collect();
                assert!(
                    flags.is_empty(),
                    "{name} on a calm {what} rate (seed {seed}) flagged {flags:?}: {:?}",
                    flags
                        .iter()
                        .map(|&i| (live[i], a.yhat[i], a.score[i]))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
}

#[test]
fn an_integer_rate_that_is_flat_then_steps_by_one_flags_nothing() {
    // An idle counter's rate: exactly 3 for long stretches, now and then 4 or 2 for a while
    // (from 200 on, past the warm-up of every detector's window and recent level).
    let n = 600;
    let ts = timestamps(n);
    let history: Vec<f64> = (0..n)
        .map(|i| match i % 97 {
            40..=49 => 4.0,
            80..=82 => 2.0,
            _ => 3.0,
        })
        .collect();
    let live: Vec<f64> = (0..n)
        .map(|i| match i {
            350..=351 => 4.0,
            400..=460 => 4.0,
            500 => 2.0,
            _ => 3.0,
        })
        .collect();
    for name in ROLLING.iter().copied().chain(["lstm"]) {
        let s = match name {
            "lstm" => DetectorSpec::Lstm {
                window: 8,
                hidden: 8,
                epochs: 5,
                learning_rate: 0.01,
                quantile: 0.99,
                margin: 1.5,
            },
            _ => spec(name),
        };
        let fitted = s.fit(&ts, &history).unwrap();
        let a = fitted.analyse(&ts, &live).unwrap();
        let flags: Vec<usize> = a.flagged().collect();
        assert!(flags.is_empty(), "{name} flagged {flags:?}");
        // The flat window does not make a single step a huge score.
        assert!(a.score[350] <= 1.0, "{name}: score {}", a.score[350]);
        // But a real change of level still is one.
        let mut jump = live.clone();
        jump[550] = 30.0;
        let a = fitted.analyse(&ts, &jump).unwrap();
        assert!(a.anomalous[550], "{name}: a jump from 3 to 30");
    }
}

#[test]
fn a_constant_history_still_gives_a_sane_band() {
    let n = 400;
    let ts = timestamps(n);
    for level in [0.0, 5.0, 1e9] {
        let history = vec![level; n];
        for name in ROLLING {
            let fitted = spec(name).fit(&ts, &history).unwrap();
            let mut live = history.clone();
            live[300] = level * 1.02 + 1e-4;
            live[320] = level * 3.0 + 1.0;
            let a = fitted.analyse(&ts, &live).unwrap();
            assert!(
                a.score[300].is_finite() && a.score[300] < 1.0,
                "{name} {level}"
            );
            assert!(a.anomalous[320], "{name} {level}");
        }
    }
}

#[test]
fn nan_inf_and_gaps_are_skipped_not_poisonous() {
    let n = 1200;
    let ts = timestamps(n);
    let history = rhythm(n, 100.0, 10.0, 300.0, 2.0, 1);
    let mut live = rhythm(n, 100.0, 10.0, 300.0, 2.0, 2);
    inject(&mut live, 400, 408, 5.0);
    inject(&mut live, 560, 568, 0.1);
    let mut bad_history = history.clone();
    for i in (0..n).step_by(17) {
        bad_history[i] = f64::NAN;
    }
    bad_history[33] = f64::INFINITY;
    bad_history[34] = f64::NEG_INFINITY;
    let mut bad_live = live.clone();
    bad_live[300] = f64::NAN;
    bad_live[301] = f64::INFINITY;
    bad_live[302] = f64::NEG_INFINITY;
    // A run of missing values longer than any window...
    for v in &mut bad_live[580..780] {
        *v = f64::NAN;
    }
    // ... and as long a gap in time: points 900..1050 are not there at all.
    let keep: Vec<usize> = (0..n).filter(|i| !(900..1050).contains(i)).collect();
    let gap_ts: Vec<i64> = keep.iter().map(|&i| ts[i]).collect();
    let gap_vs: Vec<f64> = keep.iter().map(|&i| bad_live[i]).collect();

    for name in ["zscore", "mad", "quantile", "lstm"] {
        let s = if name == "lstm" {
            quick_lstm()
        } else {
            spec(name)
        };
        let fitted = s.fit(&ts, &bad_history).unwrap();
        let a = fitted.analyse(&gap_ts, &gap_vs).unwrap();
        assert_eq!(a.len(), gap_ts.len());
        for i in 0..a.len() {
            if !a.values[i].is_finite() {
                assert!(a.yhat[i].is_nan() && a.score[i].is_nan(), "{name} at {i}");
                assert!(!a.anomalous[i], "{name} at {i}");
            }
            if a.score[i].is_nan() {
                assert!(!a.anomalous[i]);
                assert!(a.yhat_lower[i].is_nan() && a.yhat_upper[i].is_nan());
            } else {
                // A judged point is judged from finite numbers only: a finite band around a
                // finite prediction, and the score the band gives (analyse has no quiet period).
                let (v, y) = (a.values[i], a.yhat[i]);
                let (lo, hi) = (a.yhat_lower[i], a.yhat_upper[i]);
                assert!(
                    [v, y, lo, hi].iter().all(|x| x.is_finite()) && lo < y && y < hi,
                    "{name} at {i}: {v} in [{lo}, {y}, {hi}]"
                );
                let half = if v >= y { hi - y } else { y - lo };
                let expected = (v - y).abs() / half;
                assert!(
                    (a.score[i] - expected).abs() <= 1e-9 * expected.max(1.0),
                    "{name} at {i}: score {} for {v} in [{lo}, {y}, {hi}]",
                    a.score[i]
                );
                assert_eq!(a.anomalous[i], a.score[i] > 1.0, "{name} at {i}");
            }
        }
        // Points whose window holds a few bad values are judged from the finite rest (the LSTM
        // fills at most a quarter of its window).
        assert!(a.score[310].is_finite(), "{name}");
        if name != "lstm" {
            assert!(a.score[303].is_finite(), "{name}");
        }
        // Still finds the events, and nothing else.
        assert!(flagged_in(&a, 400, 408) >= 1, "{name}: the spike");
        assert!(flagged_in(&a, 560, 568) >= 1, "{name}: the drop");
        let w = s.context();
        let stray = flags_outside(&a, &[(400, 408 + w), (560, 568 + w)]);
        assert!(stray.is_empty(), "{name}: false flags at {stray:?}");
        // Right after the missing run there is nothing to judge from; once the window has
        // refilled, judging resumes (the recent level, for the rolling detectors, once the
        // window before it has refilled too).
        assert!(a.score[780].is_nan(), "{name}");
        assert!(
            a.score[780 + s.window()..900].iter().all(|s| s.is_finite()),
            "{name}"
        );
        // The same after the gap in time (index 900 of the gapped series is the original 1050).
        assert_eq!(a.timestamps[900], ts[1050]);
        assert!(a.score[900].is_nan(), "{name}");
        assert!(
            a.score[900 + s.window()..].iter().all(|s| s.is_finite()),
            "{name}"
        );
    }
}

#[test]
fn empty_short_and_malformed_input() {
    for name in ["zscore", "mad", "quantile", "lstm"] {
        let s = if name == "lstm" {
            quick_lstm()
        } else {
            spec(name)
        };
        // Too little history: how many were needed and how many there were.
        let few = s.min_history() - 1;
        let e = s.fit(&timestamps(few), &vec![1.0; few]).unwrap_err();
        match &e {
            Error::TooLittleHistory { needed, got, .. } => {
                assert_eq!((*needed, *got), (s.min_history(), few), "{name}");
            }
            other => panic!("{name}: {other}"),
        }
        let text = e.to_string();
        assert!(
            text.contains(&format!("at least {}", s.min_history())),
            "{text}"
        );
        // NaN does not count as history.
        let mut vs = vec![1.0; s.min_history()];
        vs[3] = f64::NAN;
        assert!(s.fit(&timestamps(vs.len()), &vs).is_err(), "{name}");

        let (ts, history, _) = rhythm_with_events();
        let fitted = s.fit(&ts, &history).unwrap();
        let empty = fitted.analyse(&[], &[]).unwrap();
        assert!(empty.is_empty() && empty.last_judged().is_none());
        let one = fitted.analyse(&ts[..1], &history[..1]).unwrap();
        assert_eq!((one.len(), one.judged()), (1, 0));
        let all_nan = fitted.analyse(&ts, &vec![f64::NAN; ts.len()]).unwrap();
        assert_eq!(all_nan.judged(), 0);
        assert!(matches!(
            fitted.analyse(&ts[..3], &history[..2]).unwrap_err(),
            Error::LengthMismatch { .. }
        ));
        assert!(matches!(
            fitted.analyse(&[3, 2, 4], &[1.0, 1.0, 1.0]).unwrap_err(),
            Error::Unordered { index: 1, .. }
        ));
    }
}

#[test]
fn a_point_on_the_band_edge_scores_exactly_one() {
    let (ts, history, live) = rhythm_with_events();
    for name in ["zscore", "mad", "quantile", "lstm"] {
        let s = if name == "lstm" {
            quick_lstm()
        } else {
            spec(name)
        };
        let fitted = s.fit(&ts, &history).unwrap();
        let a = fitted.analyse(&ts, &live).unwrap();
        let i = 250;
        for (edge, expected) in [
            (a.yhat_upper[i], 1.0),
            (a.yhat_lower[i], 1.0),
            (a.yhat[i], 0.0),
            ((a.yhat[i] + a.yhat_upper[i]) / 2.0, 0.5),
        ] {
            let mut moved = live.clone();
            moved[i] = edge;
            let b = fitted.analyse(&ts, &moved).unwrap();
            assert_eq!(
                b.yhat[i], a.yhat[i],
                "{name}: yhat does not see the point itself"
            );
            if expected == 0.5 {
                assert!((b.score[i] - 0.5).abs() < 1e-12, "{name}: {}", b.score[i]);
            } else {
                assert_eq!(b.score[i], expected, "{name}");
            }
            assert!(!b.anomalous[i], "{name}: on the edge is not outside");
        }
        let mut out = live.clone();
        out[i] = a.yhat_upper[i] + (a.yhat_upper[i] - a.yhat[i]);
        let b = fitted.analyse(&ts, &out).unwrap();
        assert!((b.score[i] - 2.0).abs() < 1e-9 && b.anomalous[i], "{name}");
    }
}

fn hand_made(timestamps: Vec<i64>, flags: Vec<bool>) -> Analysis {
    let n = timestamps.len();
    Analysis {
        detector: "zscore".into(),
        timestamps,
        values: vec![0.0; n],
        yhat: vec![0.0; n],
        yhat_lower: vec![-1.0; n],
        yhat_upper: vec![1.0; n],
        score: flags.iter().map(|f| if *f { 2.0 } else { 0.0 }).collect(),
        anomalous: flags,
    }
}

#[test]
fn evaluate_counts_flags_and_events_exactly() {
    let ts: Vec<i64> = (0..10).map(|i| i * 1000).collect();
    let events = vec![
        Injected {
            name: "spike".into(),
            from_ms: 2000,
            to_ms: 4000,
        },
        Injected {
            name: "drop".into(),
            from_ms: 7000,
            to_ms: 8000,
        },
        Injected {
            name: "overlap".into(),
            from_ms: 3000,
            to_ms: 5000,
        },
    ];
    // Flags at 1 (false), 2, 3 (true: 3 is in two events), 4 (true: only the third), 8 (false:
    // to_ms is exclusive), 9 (false).
    let mut flags = vec![false; 10];
    for i in [1, 2, 3, 4, 8, 9] {
        flags[i] = true;
    }
    let s = evaluate(&hand_made(ts.clone(), flags), &events);
    assert_eq!((s.flags, s.true_flags, s.false_flags), (6, 3, 3));
    assert_eq!(
        s.events_found,
        vec![
            ("spike".to_owned(), true),
            ("drop".to_owned(), false),
            ("overlap".to_owned(), true)
        ]
    );
    assert_eq!(s.precision, 0.5);
    assert_eq!(s.recall, 2.0 / 3.0);
    let f1 = 2.0 * 0.5 * (2.0 / 3.0) / (0.5 + 2.0 / 3.0);
    assert!((s.f1 - f1).abs() < 1e-15 && (s.f1 - 4.0 / 7.0).abs() < 1e-12);

    // Every flag true, every event found.
    let mut flags = vec![false; 10];
    flags[2] = true;
    flags[7] = true;
    let s = evaluate(&hand_made(ts.clone(), flags), &events[..2]);
    assert_eq!((s.precision, s.recall, s.f1), (1.0, 1.0, 1.0));

    // Nothing flagged: no wrong flag (precision 1), nothing found (recall 0, f1 0).
    let s = evaluate(&hand_made(ts.clone(), vec![false; 10]), &events);
    assert_eq!((s.flags, s.precision, s.recall, s.f1), (0, 1.0, 0.0, 0.0));
    // No events, one flag: precision 0, recall 1 (nothing to miss).
    let mut flags = vec![false; 10];
    flags[5] = true;
    let s = evaluate(&hand_made(ts.clone(), flags), &[]);
    assert_eq!(
        (s.false_flags, s.precision, s.recall, s.f1),
        (1, 0.0, 1.0, 0.0)
    );
    // The calm case: nothing flagged, nothing injected.
    let s = evaluate(&hand_made(ts, vec![false; 10]), &[]);
    assert_eq!((s.precision, s.recall, s.f1), (1.0, 1.0, 1.0));
}

/// The LSTM spec with few epochs, so the tests stay quick.
fn quick_lstm() -> DetectorSpec {
    DetectorSpec::Lstm {
        window: 8,
        hidden: 8,
        epochs: 8,
        learning_rate: 0.01,
        quantile: 0.99,
        margin: 1.5,
    }
}

#[test]
fn lstm_flags_a_spike_on_a_sine_and_is_deterministic() {
    // A fast rhythm (30 s period around 80, the demo's shape) with a little noise.
    let n = 300;
    let ts = timestamps(n);
    let history = rhythm(n, 80.0, 40.0, 30.0, 2.0, 3);
    let mut live = rhythm(n, 80.0, 40.0, 30.0, 2.0, 4);
    inject(&mut live, 200, 206, 5.0);
    inject(&mut live, 250, 256, 0.1);
    let s = quick_lstm();
    let fitted = s.fit(&ts, &history).unwrap();
    let a = fitted.analyse(&ts, &live).unwrap();
    assert_eq!(a.detector, "lstm");
    assert!(flagged_in(&a, 200, 206) >= 1, "the spike");
    assert!(
        flagged_in(&a, 250, 256) >= 1,
        "the drop, inside the rhythm's own range"
    );
    // Flags only during an event or while it is in the model's input window.
    let w = s.context();
    let stray = flags_outside(&a, &[(200, 206 + w), (250, 256 + w)]);
    assert!(stray.is_empty(), "false flags at {stray:?}");
    let score = evaluate(
        &a,
        &[
            Injected {
                name: "spike".into(),
                from_ms: ts[200],
                to_ms: ts[206 + w],
            },
            Injected {
                name: "drop".into(),
                from_ms: ts[250],
                to_ms: ts[256 + w],
            },
        ],
    );
    assert_eq!((score.precision, score.recall), (1.0, 1.0));
    // The rhythm itself is learned: the forecast follows it closely on calm data.
    let calm = fitted.analyse(&ts, &history).unwrap();
    assert_eq!(calm.flagged().count(), 0);
    let mae = (w..n)
        .map(|i| (calm.yhat[i] - history[i]).abs())
        .sum::<f64>()
        / (n - w) as f64;
    assert!(
        mae < 12.0,
        "mean abs error {mae} on a rhythm of amplitude 40"
    );
    // Seeded: the same history gives the same model.
    let again = s.fit(&ts, &history).unwrap().analyse(&ts, &live).unwrap();
    assert_eq!(again.yhat.len(), a.yhat.len());
    for (x, y) in again.yhat.iter().zip(&a.yhat) {
        assert!(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()));
    }
}

#[test]
fn lstm_saves_and_loads_with_the_same_analysis() {
    let n = 200;
    let ts = timestamps(n);
    let history = rhythm(n, 50.0, 10.0, 20.0, 1.0, 5);
    let mut epochs_seen = Vec::new();
    let fitted = FittedLstm::fit(
        &quick_lstm(),
        &ts,
        &history,
        &LstmOptions {
            batch_size: Some(16),
            seed: 3,
        },
        &mut |e| epochs_seen.push(e.epoch),
    )
    .unwrap();
    assert_eq!(epochs_seen, (1..=8).collect::<Vec<_>>());
    assert!(fitted.final_loss().is_finite());
    assert_eq!(fitted.training_pairs(), n - 8);
    assert!(fitted.half_width() >= fitted.min_half_width());
    assert!(
        (fitted.half_width() - 1.5 * fitted.error_quantile()).abs() < 1e-9
            || fitted.half_width() == fitted.min_half_width()
    );
    let dir = tempfile::tempdir().unwrap();
    fitted.save(dir.path()).unwrap();
    for file in [
        "model.safetensors",
        "model.json",
        promlearn_detect::DETECTOR_FILE,
    ] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
    let loaded = FittedLstm::load(dir.path()).unwrap();
    assert_eq!(loaded.spec(), fitted.spec());
    assert_eq!(loaded.half_width(), fitted.half_width());
    let mut live = history.clone();
    live[150] = 200.0;
    let a = fitted.analyse(&ts, &live).unwrap();
    let b = loaded.analyse(&ts, &live).unwrap();
    assert_eq!(a.anomalous, b.anomalous);
    assert!(b.anomalous[150]);
    for (x, y) in a.yhat.iter().zip(&b.yhat) {
        assert!(
            (x - y).abs() < 1e-4 || (x.is_nan() && y.is_nan()),
            "{x} {y}"
        );
    }
    // Not a model directory.
    let empty = tempfile::tempdir().unwrap();
    assert!(FittedLstm::load(empty.path()).is_err());
}

#[test]
fn lstm_on_a_constant_history() {
    let n = 100;
    let ts = timestamps(n);
    for level in [0.0, 7.0, 3e9] {
        let fitted = quick_lstm().fit(&ts, &vec![level; n]).unwrap();
        let mut live = vec![level; n];
        live[60] = level * 3.0 + 10.0;
        let a = fitted.analyse(&ts, &live).unwrap();
        assert!(a.score[59].is_finite() && !a.anomalous[59], "{level}");
        assert!(a.anomalous[60], "{level}");
    }
}

#[test]
fn fitted_detectors_analyse_from_many_threads_while_another_fits() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Arc<dyn Fitted>>();
    send_sync::<FittedLstm>();
    let (ts, history, live) = rhythm_with_events();
    let fitted: Arc<dyn Fitted> = quick_lstm().fit(&ts, &history).unwrap();
    let expected = fitted.analyse(&ts, &live).unwrap();
    std::thread::scope(|s| {
        let refit = s.spawn(|| quick_lstm().fit(&ts, &live).map(|_| ()));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let f = Arc::clone(&fitted);
                let (ts, live) = (&ts, &live);
                s.spawn(move || f.analyse(ts, live).unwrap())
            })
            .collect();
        for r in readers {
            assert_eq!(r.join().unwrap().anomalous, expected.anomalous);
        }
        refit.join().unwrap().unwrap();
    });
}

#[test]
fn lstm_fits_a_ten_minute_history_quickly() {
    // The default spec on 600 points: what a watch service refits regularly.
    let n = 600;
    let ts = timestamps(n);
    let history = prometheus_rate(n, 9, |t| {
        80.0 + 40.0 * (t / 30.0 * std::f64::consts::TAU).sin()
    });
    let started = std::time::Instant::now();
    let fitted = spec("lstm").fit(&ts, &history).unwrap();
    let took = started.elapsed();
    eprintln!("the default LSTM fitted 600 points in {took:?}");
    // Quick next to how often a watch refits it (fit_every, an hour by default): 0.3-0.9 s here
    // in a test build, on a 2-core box busy with builds; 5 s leaves room for a slower machine
    // and still fails if the fit becomes ten times slower.
    assert!(took.as_secs_f64() < 5.0, "fit took {took:?}");
    assert!(fitted.analyse(&ts, &history).unwrap().judged() > n - 20);
}
