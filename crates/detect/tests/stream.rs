//! Streaming judgement through `Fitted::advance`: each point judged once, from the points
//! before it, with the state carried from one call to the next and across refits.

mod common;

use common::*;
use promlearn_detect::{DetectorSpec, StreamState};

#[test]
fn advance_judges_each_new_point_once_and_remembers_how_far_it_got() {
    let n = 700;
    let ts = timestamps(n);
    let history = rhythm(n, 100.0, 10.0, 300.0, 2.0, 1);
    let mut live = rhythm(n, 100.0, 10.0, 300.0, 2.0, 2);
    inject(&mut live, 400, 408, 5.0);
    for name in ["zscore", "mad", "quantile"] {
        let spec = DetectorSpec::from_name(name).unwrap();
        let fitted = spec.fit(&ts, &history).unwrap();
        let mut state = StreamState::new();
        assert_eq!(state.judged_through_ms(), None);
        let ctx = spec.context();
        let mut judged = Vec::new();
        let mut scores = Vec::new();
        let mut flagged = Vec::new();
        // Feed the series in uneven chunks, each with its context before it.
        let mut end = 0;
        for chunk in [ctx + 5, 1, 1, 17, 3, 200, 1, 90].iter().cycle() {
            if end == n {
                break;
            }
            let new_end = (end + chunk).min(n);
            let from = end.saturating_sub(ctx);
            let a = fitted
                .advance(&mut state, &ts[from..new_end], &live[from..new_end])
                .unwrap();
            assert_eq!(
                a.timestamps,
                ts[end..new_end],
                "{name}: exactly the new points"
            );
            assert_eq!(state.judged_through_ms(), Some(ts[new_end - 1]));
            judged.extend_from_slice(&a.timestamps);
            scores.extend_from_slice(&a.score);
            flagged.extend(a.flagged().map(|i| i + end));
            end = new_end;
        }
        assert_eq!(judged, ts, "{name}: every point once, oldest first");
        assert!(scores[..ctx].iter().all(|s| s.is_nan()), "{name}: warm-up");
        assert!(scores[ctx..].iter().all(|s| s.is_finite()), "{name}");
        assert!(
            flagged.iter().any(|i| (400..408).contains(i)),
            "{name}: the spike"
        );
        // Nothing new: nothing judged, the state unchanged.
        let before = state.clone();
        let again = fitted.advance(&mut state, &ts, &live).unwrap();
        assert!(again.is_empty());
        assert_eq!(state, before);
        // The state survives a round trip through serde.
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<StreamState>(&text).unwrap(), state);
    }
}
