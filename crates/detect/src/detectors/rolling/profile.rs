//! The rolling detectors' time of day: how far each part of the day lies from the day's level,
//! learned from a fit window that holds days, so that a nightly job is no news and a nightly job
//! that does not come is.
//!
//! A rolling band sees only the hours before a point: a job that adds 30 % CPU every night at
//! 02:00 is, to it, a spike every night. Without a profile the history's floor had to make room
//! for it (twice the 99 % quantile of its points' distances from their rolling centre), which
//! hid every incident smaller than twice the job. With one, each point is judged less its time
//! of day's offset, and so is the history the floor is learned from.

use serde::{Deserialize, Serialize};

use crate::grid;

/// A day in milliseconds.
const DAY_MS: i64 = 86_400_000;
/// The profile's resolution (never finer than the series' step): a 30-minute nightly job fills
/// 6 slots at 5-minute steps. 15 and 30 minutes moved each figure by about a point, either way.
const SLOT_MS: i64 = 5 * 60_000;
/// Each slot's offset is the median over the slots within this distance either side of it, on
/// every day of the history (35 points over 7 days at 5-minute steps): a slot's own 7 are noisy
/// (NAB 53.76 for `mad` but `quantile` 44.92 alone; within 15 minutes about the same as 10).
const POOL_MS: i64 = 10 * 60_000;
/// Days the history must hold: the offsets are medians over days, and a day's level is a
/// centred median over a day, which the history's first and last half days do not have.
const MIN_DAYS: usize = 3;
/// The profile is kept only where it explains at least this share of the history's squared
/// distances from the day's level: on a series without a daily rhythm it would only add its own
/// noise (at 0.3 NAB gained 0.1 to 1.2 over no such rule, at 0.5 about the same).
const MIN_EXPLAINED: f64 = 0.3;

/// Each slot of the day's offset from the day's level (a centred rolling median over a day), in
/// the series' units; f32, at 288 slots 1.1 KB a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DayProfile {
    slot_ms: i64,
    offsets: Vec<f32>,
}

impl DayProfile {
    /// The offset at unix ms `t`.
    pub(crate) fn at(&self, t: i64) -> f64 {
        let slot = (t.rem_euclid(DAY_MS) / self.slot_ms) as usize;
        self.offsets.get(slot).copied().map_or(0.0, f64::from)
    }

    /// Whether a saved profile's parts fit together: the error says what is wrong.
    pub(crate) fn check(&self) -> Result<(), String> {
        if !(SLOT_MS..=DAY_MS).contains(&self.slot_ms) {
            return Err(format!("its profile's slot is {} ms", self.slot_ms));
        }
        let slots = slots(self.slot_ms);
        if self.offsets.len() != slots {
            return Err(format!(
                "its profile has {} offsets for {slots} slots of {} ms",
                self.offsets.len(),
                self.slot_ms
            ));
        }
        if self.offsets.iter().any(|o| !o.is_finite()) {
            return Err("its profile holds a non-finite offset".into());
        }
        Ok(())
    }

    /// Learns the profile of a history: `None` where it holds fewer than [`MIN_DAYS`] days at
    /// steps of at most 2 hours, or the profile explains less than [`MIN_EXPLAINED`] of it.
    pub(crate) fn learn(timestamps: &[i64], values: &[f64]) -> Option<Self> {
        let step = grid::step(timestamps)?;
        let slot_ms = step.max(SLOT_MS);
        if slot_ms > DAY_MS / 12 {
            return None;
        }
        let day = (DAY_MS / step) as usize;
        let half = day / 2;
        if values.len() <= day * MIN_DAYS {
            return None;
        }
        let slots = slots(slot_ms);
        let slot_of = |t: i64| ((t.rem_euclid(DAY_MS) / slot_ms) as usize).min(slots - 1);
        // Each point's distance from the median of the day centred on it.
        let mut by_slot: Vec<Vec<f64>> = vec![Vec::new(); slots];
        let mut detrended = Vec::new();
        let mut buf = Vec::with_capacity(day + 1);
        for i in half..values.len() - half {
            if !values[i].is_finite() {
                continue;
            }
            buf.clear();
            buf.extend(
                values[i - half..=i + half]
                    .iter()
                    .copied()
                    .filter(|v| v.is_finite()),
            );
            if buf.len() < half {
                continue;
            }
            buf.sort_by(f64::total_cmp);
            let d = values[i] - grid::quantile_sorted(&buf, 0.5);
            let slot = slot_of(timestamps[i]);
            by_slot[slot].push(d);
            detrended.push((slot, d));
        }
        let pool = ((POOL_MS / slot_ms) as usize).min(slots / 2);
        let offsets: Vec<f32> = (0..slots)
            .map(|s| {
                let pooled: Vec<f64> = (s + slots - pool..=s + slots + pool)
                    .flat_map(|k| by_slot[k % slots].iter().copied())
                    .collect();
                // Fewer than 2 days in a slot (a gap) teach nothing about it.
                if pooled.len() < 2 {
                    0.0
                } else {
                    grid::quantile(&pooled, 0.5) as f32
                }
            })
            .collect();
        let before: f64 = detrended.iter().map(|(_, d)| d * d).sum();
        let after: f64 = detrended
            .iter()
            .map(|&(s, d)| (d - f64::from(offsets[s])).powi(2))
            .sum();
        let explained = if before > 0.0 {
            1.0 - after / before
        } else {
            0.0
        };
        (explained >= MIN_EXPLAINED && offsets.iter().all(|o| o.is_finite()))
            .then_some(Self { slot_ms, offsets })
    }
}

/// Slots of `slot_ms` in a day (the last one shorter where it does not divide the day).
fn slots(slot_ms: i64) -> usize {
    (DAY_MS as u64).div_ceil(slot_ms as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 5-minute points of `days` days: a level with jitter, and `job` added at 02:00-02:30.
    fn series(days: usize, job: f64) -> (Vec<i64>, Vec<f64>) {
        let n = days * 288;
        let ts: Vec<i64> = (0..n as i64)
            .map(|i| 1_767_571_200_000 + i * 300_000)
            .collect();
        let vs = (0..n)
            .map(|i| {
                let slot = i % 288;
                let jitter = ((i * 7919) % 13) as f64 * 0.1;
                50.0 + jitter + if (24..30).contains(&slot) { job } else { 0.0 }
            })
            .collect();
        (ts, vs)
    }

    #[test]
    fn a_nightly_job_is_learned_and_a_flat_day_teaches_nothing() {
        let (ts, vs) = series(7, 30.0);
        let p = DayProfile::learn(&ts, &vs).expect("the job is most of the spread");
        p.check().unwrap();
        let at = |h: i64, m: i64| p.at(ts[0] + (h * 60 + m) * 60_000);
        assert!((at(2, 10) - 30.0).abs() < 1.0, "{}", at(2, 10));
        assert!(at(12, 0).abs() < 1.0, "{}", at(12, 0));
        // No rhythm: nothing to learn.
        let (ts, vs) = series(7, 0.0);
        assert_eq!(DayProfile::learn(&ts, &vs), None);
        // Too few days.
        let (ts, vs) = series(3, 30.0);
        assert_eq!(DayProfile::learn(&ts, &vs), None);
    }

    #[test]
    fn a_damaged_profile_is_refused() {
        let (ts, vs) = series(7, 30.0);
        let p = DayProfile::learn(&ts, &vs).unwrap();
        let short = DayProfile {
            offsets: p.offsets[1..].to_vec(),
            ..p.clone()
        };
        assert!(short.check().is_err());
        let mut nan = p.clone();
        nan.offsets[3] = f32::NAN;
        assert!(nan.check().is_err());
        let zero = DayProfile { slot_ms: 0, ..p };
        assert!(zero.check().is_err());
    }
}
