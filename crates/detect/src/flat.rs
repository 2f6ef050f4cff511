//! A series that stops changing: a stuck exporter or a frozen gauge repeats its last value for
//! hours, and each repeat looks ordinary to a detector that judges values or their patterns
//! (a flat stretch at a usual level is close to the history's quiet hours). What gives it away
//! is the run itself: a model records the longest run of equal values its fit window held
//! ([`longest_run`]), the series' stream state counts the current run ([`FlatRun`]), and the
//! point at which the run outgrows the history's longest by [`FLAT_FACTOR`] (and is at least
//! [`MIN_FLAT_POINTS`] long and has lasted [`MIN_FLAT_SPAN_MS`]) scores [`FLAT_SCORE`]: one
//! alert per run, through the alerting stage like any other.
//!
//! Only the streaming path ([`Fitted::advance`](crate::Fitted::advance)) counts runs: it is the
//! one that knows how long a run has lasted across calls.

use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;

/// A run must outgrow the fit window's longest by this factor: a week's longest quiet stretch
/// is a sample of its kind, and the next one may be longer without anything stuck (at 2 NAB's
/// count series lose more to first-time ties; every stuck exporter of the DevOps corpus is far
/// beyond 6).
pub(crate) const FLAT_FACTOR: f64 = 3.0;
/// ... and be at least this many points: at NAB's 5-minute steps an hour, at a 15 s scrape
/// interval 3 minutes (a gauge refreshed each minute repeats 4 times there).
pub(crate) const MIN_FLAT_POINTS: u32 = 12;

/// ... and have lasted this long (from its first point to the one judged): a stuck exporter is
/// stuck for hours, while a steady 1 s rate of synthetic traffic repeats its value for minutes
/// (the calm DNS run of the watch's end-to-end tests did). 55 minutes is 12 points at NAB's
/// 5-minute steps, so the figures measured there do not move.
pub(crate) const MIN_FLAT_SPAN_MS: i64 = 55 * 60 * 1000;
/// The score of the point where a run becomes too long: above 1, so it alerts, and above the
/// alerting stage's new-incident score, so it is news after another incident's alert too.
pub(crate) const FLAT_SCORE: f64 = 3.0;

/// The longest run of consecutive equal finite values in `values` (a non-finite value ends a
/// run), in points; 1 for a series that always changes, 0 for one with no finite value.
pub(crate) fn longest_run(values: &[f64]) -> u32 {
    let (mut longest, mut run, mut last) = (0u32, 0u32, f64::NAN);
    for &v in values {
        if !v.is_finite() {
            run = 0;
        } else if v == last && run > 0 {
            run = run.saturating_add(1);
        } else {
            run = 1;
        }
        last = v;
        longest = longest.max(run);
    }
    longest
}

/// The run length that alerts for a history whose longest run was `longest`.
pub(crate) fn limit(longest: u32) -> u32 {
    ((f64::from(longest) * FLAT_FACTOR).ceil() as u32).max(MIN_FLAT_POINTS)
}

/// The current run of equal values of a series: its value and length (12 bytes of the stream
/// state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct FlatRun {
    value: f64,
    run: u32,
    /// Unix ms of the run's first point.
    #[serde(default)]
    since_ms: i64,
    /// Whether this run has alerted (once per run).
    #[serde(default)]
    alerted: bool,
}

impl FlatRun {
    /// Counts the new points of `out` (oldest first) and raises the score of the point where
    /// the run reaches the limit for a history whose longest run was `longest` to
    /// [`FLAT_SCORE`] (a point the detector could not judge too: a stuck series is news
    /// whatever the detector makes of it).
    pub(crate) fn count(&mut self, longest: u32, out: &mut Analysis) {
        let limit = limit(longest);
        for i in 0..out.len() {
            let v = out.values[i];
            if !v.is_finite() {
                self.run = 0;
                continue;
            }
            let t = out.timestamps[i];
            if self.run > 0 && v == self.value {
                self.run = self.run.saturating_add(1);
            } else {
                *self = FlatRun {
                    value: v,
                    run: 1,
                    since_ms: t,
                    alerted: false,
                };
            }
            if !self.alerted && self.run >= limit && t - self.since_ms >= MIN_FLAT_SPAN_MS {
                self.alerted = true;
                let s = out.score[i];
                out.score[i] = if s.is_nan() {
                    FLAT_SCORE
                } else {
                    s.max(FLAT_SCORE)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_run_counts_equal_neighbours_and_a_gap_ends_it() {
        assert_eq!(longest_run(&[]), 0);
        assert_eq!(longest_run(&[1.0, 2.0, 3.0]), 1);
        assert_eq!(longest_run(&[1.0, 1.0, 2.0, 2.0, 2.0, 1.0]), 3);
        assert_eq!(longest_run(&[5.0, 5.0, f64::NAN, 5.0, 5.0]), 2);
        assert_eq!(limit(1), MIN_FLAT_POINTS);
        assert_eq!(limit(10), 30);
    }

    #[test]
    fn a_run_past_the_limit_scores_once_across_calls() {
        let mut run = FlatRun::default();
        let n = 30;
        let mut values: Vec<f64> = (0..10).map(f64::from).collect();
        values.extend(std::iter::repeat_n(7.5, n));
        let mut scores = Vec::new();
        // Fed in slices of 7, as a stream's calls come.
        for (c, chunk) in values.chunks(7).enumerate() {
            // 5-minute steps: the run's span reaches the least one with its 12th point.
            let ts: Vec<i64> = (0..chunk.len())
                .map(|i| (c * 7 + i) as i64 * 300_000)
                .collect();
            let mut out = Analysis::unjudged("knn", &ts, chunk);
            for s in &mut out.score {
                *s = 0.2;
            }
            run.count(5, &mut out);
            scores.extend(out.score);
        }
        // 9.0 then 7.5 thirty times: the run of 7.5 reaches the limit (12) at its 12th point.
        let hit: Vec<usize> = (0..scores.len())
            .filter(|&i| scores[i] == FLAT_SCORE)
            .collect();
        assert_eq!(hit, vec![10 + limit(5) as usize - 1]);
    }
}

#[cfg(test)]
mod span_tests {
    use super::*;

    #[test]
    fn a_steady_second_by_second_value_is_no_stuck_series_before_the_least_span() {
        let mut run = FlatRun::default();
        // 30 minutes of the same value at 1 s steps: far past the points' limit, not the span.
        let ts: Vec<i64> = (0..1_800).map(|i| i * 1_000).collect();
        let mut out = Analysis::unjudged("knn", &ts, &vec![40.0; ts.len()]);
        out.score.fill(0.2);
        run.count(5, &mut out);
        assert!(out.score.iter().all(|&s| s == 0.2));
        // An hour of it: one alert, at the span's end.
        let ts: Vec<i64> = (1_800..3_600).map(|i| i * 1_000).collect();
        let mut out = Analysis::unjudged("knn", &ts, &vec![40.0; ts.len()]);
        out.score.fill(0.2);
        run.count(5, &mut out);
        let hit: Vec<i64> = (0..out.len())
            .filter(|&i| out.score[i] == FLAT_SCORE)
            .map(|i| out.timestamps[i])
            .collect();
        assert_eq!(hit, vec![MIN_FLAT_SPAN_MS]);
    }
}

#[cfg(test)]
mod stream_tests {
    use crate::DetectorSpec;
    use crate::stream::StreamState;

    /// A noisy 5-minute series with a daily rhythm whose exporter gets stuck for 6 hours: every
    /// detector that knows its history's runs alerts once in the run, and not before it.
    #[test]
    fn a_stuck_series_alerts_once_for_knn_and_the_rolling_detectors() {
        let day = 288;
        let n = 9 * day;
        let ts: Vec<i64> = (0..n as i64)
            .map(|i| 1_767_571_200_000 + i * 300_000)
            .collect();
        let mut seed = 7u64;
        let mut v: Vec<f64> = (0..n)
            .map(|i| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let noise = (seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5;
                let phase = std::f64::consts::TAU * (i % day) as f64 / day as f64;
                (100.0 + 40.0 * phase.sin() + 4.0 * noise).round()
            })
            .collect();
        let stuck = 8 * day + 100;
        let held = v[stuck - 1];
        for x in &mut v[stuck..stuck + 72] {
            *x = held;
        }
        for name in ["knn", "mad", "zscore", "quantile"] {
            let spec = DetectorSpec::from_name(name).unwrap();
            let fit_end = 7 * day;
            let fitted = spec.fit(&ts[..fit_end], &v[..fit_end]).unwrap();
            let longest = fitted.longest_flat_run().unwrap();
            assert!(longest < 6, "{name}: {longest}");
            let ctx = spec.context();
            let mut state = StreamState::new();
            let mut alerts = Vec::new();
            for end in fit_end + 1..=n {
                let a = fitted
                    .advance(&mut state, &ts[end - 1 - ctx..end], &v[end - 1 - ctx..end])
                    .unwrap();
                alerts.extend(a.flagged().map(|_| end - 1));
            }
            let in_run: Vec<usize> = alerts
                .iter()
                .copied()
                .filter(|i| (stuck..stuck + 72).contains(i))
                .collect();
            assert_eq!(
                in_run,
                // The run starts at the last value before it stuck.
                vec![stuck + super::limit(longest) as usize - 2],
                "{name}: alerts {alerts:?}"
            );
        }
    }
}
