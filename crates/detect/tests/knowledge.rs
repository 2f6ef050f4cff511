//! What a team knows about a metric, applied in the alerting stage of every detector through
//! `Fitted::advance_knowing`: the side that matters, the smallest deviation worth an alert,
//! the range of possible values.

mod common;

use common::*;
use promlearn_detect::{
    Analysis, DetectorSpec, Direction, DomainKnowledge, MinDeviation, StreamState,
};

const DETECTORS: [&str; 4] = ["zscore", "mad", "quantile", "knn"];

/// Each detector fitted on `history`, advanced point by point over `live` with `knowledge`:
/// the judged points, one analysis of each.
fn stream(name: &str, history: &[f64], live: &[f64], knowledge: &DomainKnowledge) -> Analysis {
    let ts = timestamps(live.len());
    let spec = DetectorSpec::from_name(name).unwrap();
    let fitted = spec.fit(&ts, history).unwrap();
    let mut state = StreamState::new();
    let ctx = spec.context();
    let mut all = fitted.advance(&mut state, &[], &[]).unwrap();
    for end in 1..=live.len() {
        let from = (end - 1).saturating_sub(ctx);
        let a = fitted
            .advance_knowing(&mut state, knowledge, &ts[from..end], &live[from..end])
            .unwrap();
        assert_eq!(a.len(), 1);
        for (column, new) in [
            (&mut all.yhat, &a.yhat),
            (&mut all.yhat_lower, &a.yhat_lower),
            (&mut all.yhat_upper, &a.yhat_upper),
            (&mut all.score, &a.score),
            (&mut all.values, &a.values),
        ] {
            column.extend_from_slice(new);
        }
        all.timestamps.extend_from_slice(&a.timestamps);
        all.anomalous.extend_from_slice(&a.anomalous);
    }
    // Nothing of the knowledge stays in the series' state, and the state still reads back.
    let text = serde_json::to_string(&state).unwrap();
    assert!(
        !text.contains("knowledge") && !text.contains("direction"),
        "{text}"
    );
    serde_json::from_str::<StreamState>(&text).unwrap();
    all
}

fn alerts(a: &Analysis) -> Vec<usize> {
    a.flagged().collect()
}

fn calm(n: usize, seed: u64) -> Vec<f64> {
    rhythm(n, 100.0, 10.0, 300.0, 2.0, seed)
}

#[test]
fn unset_knowledge_changes_nothing() {
    let n = 900;
    let history = calm(n, 1);
    let mut live = calm(n, 2);
    inject(&mut live, 500, 530, 0.1);
    for name in DETECTORS {
        let ts = timestamps(n);
        let spec = DetectorSpec::from_name(name).unwrap();
        let fitted = spec.fit(&ts, &history).unwrap();
        let mut state = StreamState::new();
        let plain = fitted.advance(&mut state, &ts, &live).unwrap();
        let mut state = StreamState::new();
        let knowing = fitted
            .advance_knowing(&mut state, &DomainKnowledge::default(), &ts, &live)
            .unwrap();
        assert_eq!(
            format!("{plain:?}"),
            format!("{knowing:?}"),
            "{name}: NaN-aware equality"
        );
    }
}

#[test]
fn direction_lets_only_its_side_alert_and_caps_the_other_at_1() {
    // A drop to a tenth, back to normal, then a three-fold rise 150 points later.
    let n = 900;
    let history = calm(n, 1);
    let mut live = calm(n, 2);
    inject(&mut live, 500, 510, 0.1);
    inject(&mut live, 660, 670, 3.0);
    let up = DomainKnowledge {
        direction: Direction::Up,
        ..DomainKnowledge::default()
    };
    let down = DomainKnowledge {
        direction: Direction::Down,
        ..DomainKnowledge::default()
    };
    for name in DETECTORS {
        let both = alerts(&stream(name, &history, &live, &DomainKnowledge::default()));
        assert!(
            both.iter().any(|i| (500..503).contains(i)),
            "{name}: {both:?}"
        );
        assert!(
            both.iter().any(|i| (660..663).contains(i)),
            "{name}: {both:?}"
        );

        let only_up = stream(name, &history, &live, &up);
        let alerts_up = alerts(&only_up);
        assert!(
            !alerts_up.iter().any(|i| (500..600).contains(i)),
            "{name}: {alerts_up:?}"
        );
        assert!(
            alerts_up.iter().any(|i| (660..663).contains(i)),
            "{name}: {alerts_up:?}"
        );
        for i in 500..510 {
            assert!(
                only_up.score[i] <= 1.0,
                "{name}: the drop's score capped at 1"
            );
        }
        let alerts_down = alerts(&stream(name, &history, &live, &down));
        assert!(
            alerts_down.iter().any(|i| (500..503).contains(i)),
            "{name}: {alerts_down:?}"
        );
        assert!(
            !alerts_down.iter().any(|i| (660..760).contains(i)),
            "{name}: {alerts_down:?}"
        );
    }
}

#[test]
fn a_deviation_below_the_minimum_never_alerts() {
    // A rise by 25 % for ten points: far out for every detector, small for a team that only
    // cares from 50 % (or 30 requests) up.
    let n = 900;
    let history = calm(n, 1);
    let mut live = calm(n, 2);
    inject(&mut live, 600, 610, 1.25);
    for name in DETECTORS {
        let plain = alerts(&stream(name, &history, &live, &DomainKnowledge::default()));
        assert!(
            plain.iter().any(|i| (600..603).contains(i)),
            "{name}: {plain:?}"
        );
        for min_deviation in [
            MinDeviation {
                absolute: 0.0,
                relative: 0.5,
            },
            MinDeviation {
                absolute: 60.0,
                relative: 0.0,
            },
        ] {
            let knowing = DomainKnowledge {
                min_deviation,
                ..DomainKnowledge::default()
            };
            let a = stream(name, &history, &live, &knowing);
            assert!(
                !alerts(&a).iter().any(|i| (600..700).contains(i)),
                "{name}: {:?}",
                alerts(&a)
            );
            assert!(a.score[600..610].iter().all(|&s| s <= 1.0), "{name}");
        }
    }
}

#[test]
fn leaving_the_data_range_alerts_at_once_even_in_a_quiet_period_and_once() {
    // A rise to 1.3 times (an alert), and five points later, still within its quiet period,
    // values above 150, which the range says are impossible: a second alert at the first,
    // none for the rest of the stretch outside.
    let n = 900;
    let history = calm(n, 1);
    let mut live = calm(n, 2);
    inject(&mut live, 600, 605, 1.3);
    for v in &mut live[605..640] {
        *v = 160.0;
    }
    let range = DomainKnowledge {
        data_range: Some([0.0, 150.0]),
        ..DomainKnowledge::default()
    };
    for name in DETECTORS {
        let plain = alerts(&stream(name, &history, &live, &DomainKnowledge::default()));
        assert!(
            plain.iter().any(|i| (600..603).contains(i)),
            "{name}: {plain:?}"
        );
        let knowing = stream(name, &history, &live, &range);
        let with_range = alerts(&knowing);
        assert!(with_range.contains(&605), "{name}: {with_range:?}");
        assert!(
            !with_range.iter().any(|i| (606..640).contains(i)),
            "{name}: {with_range:?}"
        );
        assert!(knowing.score[605..640].iter().all(|&s| s >= 1.0), "{name}");
        assert!(
            knowing
                .yhat_upper
                .iter()
                .filter(|v| !v.is_nan())
                .all(|&v| v <= 150.0),
            "{name}: the band clipped"
        );
    }
}
