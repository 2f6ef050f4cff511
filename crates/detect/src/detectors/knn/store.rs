//! How `knn` keeps a pattern set: the series its patterns are windows of, stored once, instead
//! of every pattern.
//!
//! A history's patterns overlap (a pattern at every point, each sharing all but one of its
//! values with the one before), so storing each of them stores each value `window` times over,
//! with its time context beside it. A set here is the series of its elements (a fine set's
//! finite values, a coarse set's block means) scaled by the model's centre and scale and held as
//! half-precision floats, a bit per element saying whether a pattern ends there (the fit decided
//! which: enough values, no gap, no empty block), and the elements' times: a regular grid as its
//! first time and step, anything else as each element's time of day. A pattern is the `window`
//! elements that end at its bit, its newest value is the last of them, and its time context is
//! that element's. Half precision keeps about three decimal digits of a scaled value, far finer
//! than the distances a unit is made of; what it changes in the figures is in
//! `docs/detection.md`.
//!
//! Judging decodes a set once per call ([`PatternSet::decode`]) into single-precision values and
//! time contexts, which the comparisons then read as they read the stored patterns before.

use half::f16;
use serde::{Deserialize, Serialize};

use super::{DAY_WEIGHT, time_dims};

/// A day in milliseconds: the time context's circle.
const DAY_MS: i64 = 86_400_000;
/// The steps of a day an irregular element's time of day is kept in (`u16`): about 1.3 s.
const DAY_STEPS: i64 = 1 << 16;

/// The history's patterns at one time scale, kept as the series they are windows of, and the
/// distances that score 1 there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PatternSet {
    /// The elements' values, scaled by the model's centre and scale, as `f16` bits.
    #[serde(with = "as_bytes")]
    values: Vec<f16>,
    /// Bit `e` (of byte `e / 8`, lowest first) is set when a pattern ends at element `e`.
    ends: Vec<u8>,
    times: Times,
    /// The distance (scaled units) that scores 1.
    pub(crate) unit: f64,
    /// How far (series units) a newest value may lie from its neighbours' newest values.
    pub(crate) dev_unit: f64,
}

/// The elements' times, as far as judging needs them: their place on the day's circle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Times {
    /// Element `e` is at `first_ms + e * step_ms`: a series scraped without a miss.
    Grid { first_ms: i64, step_ms: i64 },
    /// Each element's time of day in [`DAY_STEPS`] of a day: a series with holes or its own
    /// spacing.
    Day(#[serde(with = "day_bytes")] Vec<u16>),
}

/// A set decoded for judging: its values and time contexts in single precision, and where its
/// patterns end.
pub(crate) struct Decoded {
    window: usize,
    values: Vec<f32>,
    day: Vec<[f32; 2]>,
    ends: Vec<u32>,
}

/// The half-precision value of a scaled value: beyond `f16`'s range it is held at the range's
/// edge (a value 65,504 scales from the centre), not infinite, so that distances stay finite.
fn half(v: f64) -> f16 {
    let max = f64::from(f16::MAX.to_f32());
    f16::from_f64(v.clamp(-max, max))
}

impl PatternSet {
    /// A set of `elements` (time in unix ms, scaled value; non-finite values only where no
    /// pattern reaches) whose patterns end at `ends` (ascending element indices, each at least
    /// `window - 1`). Its units are 1 until calibrated.
    pub(crate) fn new(elements: &[(i64, f64)], ends: &[usize]) -> Self {
        let values = elements
            .iter()
            .map(|(_, v)| if v.is_finite() { half(*v) } else { f16::NAN })
            .collect();
        let mut bits = vec![0u8; elements.len().div_ceil(8)];
        for e in ends {
            bits[e / 8] |= 1 << (e % 8);
        }
        let first_ms = elements.first().map_or(0, |e| e.0);
        let step_ms = elements.get(1).map_or(1, |e| e.0 - first_ms);
        let on_grid = step_ms > 0
            && elements
                .iter()
                .enumerate()
                .all(|(i, (t, _))| *t == first_ms + i as i64 * step_ms);
        let times = if on_grid {
            Times::Grid { first_ms, step_ms }
        } else {
            Times::Day(
                elements
                    .iter()
                    .map(|(t, _)| {
                        let steps = (t.rem_euclid(DAY_MS) * DAY_STEPS + DAY_MS / 2) / DAY_MS;
                        (steps % DAY_STEPS) as u16
                    })
                    .collect(),
            )
        };
        Self {
            values,
            ends: bits,
            times,
            unit: 1.0,
            dev_unit: 1.0,
        }
    }

    /// How many patterns the set holds.
    pub(crate) fn len(&self) -> usize {
        self.ends.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// The element indices patterns end at, ascending.
    fn end_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.ends.iter().enumerate().flat_map(|(byte, bits)| {
            (0..8)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| byte * 8 + b)
        })
    }

    /// Why a set read back cannot be judged with patterns of `window` values; `None` when it
    /// can.
    pub(crate) fn problem(&self, window: usize) -> Option<String> {
        let n = self.values.len();
        if self.ends.len() != n.div_ceil(8) {
            return Some(format!(
                "{} bytes of pattern ends for {n} values",
                self.ends.len()
            ));
        }
        if self.len() == 0 {
            return Some("no pattern".into());
        }
        if let Some(e) = self.end_indices().find(|e| *e + 1 < window || *e >= n) {
            return Some(format!(
                "a pattern ends at value {e} of {n}, with fewer than {window} values"
            ));
        }
        match &self.times {
            Times::Grid { step_ms, .. } if *step_ms <= 0 => {
                Some(format!("its times step by {step_ms} ms"))
            }
            Times::Day(day) if day.len() != n => {
                Some(format!("{} times of day for {n} values", day.len()))
            }
            _ => None,
        }
    }

    /// Loses the newest value, as a damaged file might.
    #[cfg(test)]
    pub(crate) fn drop_last_value(&mut self) {
        self.values.pop();
    }

    /// The set in single precision, for comparisons.
    pub(crate) fn decode(&self, window: usize) -> Decoded {
        // Element by element: `to_f32` is inlined here, where it is optimised, while half's
        // slice conversion is not, in the test build the detection benchmark runs.
        let values: Vec<f32> = self.values.iter().map(|h| h.to_f32()).collect();
        let mut day = Vec::new();
        if time_dims() > 0 {
            day.reserve_exact(self.values.len());
            match &self.times {
                Times::Grid { first_ms, step_ms } => {
                    // One turn per element instead of a sine and a cosine each: the rounding
                    // this adds over a capped history is far below `f32`'s.
                    let angle = |ms: i64| {
                        std::f64::consts::TAU * ms.rem_euclid(DAY_MS) as f64 / DAY_MS as f64
                    };
                    let (mut sin, mut cos) = angle(*first_ms).sin_cos();
                    let (turn_sin, turn_cos) = angle(*step_ms).sin_cos();
                    for _ in 0..self.values.len() {
                        day.push([(DAY_WEIGHT * sin) as f32, (DAY_WEIGHT * cos) as f32]);
                        (sin, cos) = (
                            sin * turn_cos + cos * turn_sin,
                            cos * turn_cos - sin * turn_sin,
                        );
                    }
                }
                Times::Day(steps) => {
                    for s in steps {
                        let angle = std::f64::consts::TAU * f64::from(*s) / DAY_STEPS as f64;
                        let (sin, cos) = angle.sin_cos();
                        day.push([(DAY_WEIGHT * sin) as f32, (DAY_WEIGHT * cos) as f32]);
                    }
                }
            }
        }
        Decoded {
            window,
            values,
            day,
            ends: self.end_indices().map(|e| e as u32).collect(),
        }
    }
}

impl Decoded {
    /// The RMS distance of `q` to the `k` nearest patterns (skipping those `skip` says, by their
    /// order in the set), the mean of their newest values (scaled), and how many there were
    /// (fewer than `k` in a short history).
    pub(crate) fn nearest(
        &self,
        k: usize,
        q: &[f32],
        skip: impl Fn(usize) -> bool,
    ) -> (f64, f64, usize) {
        let window = self.window;
        let (q_values, q_day) = q.split_at(window);
        let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
        for (j, &e) in self.ends.iter().enumerate() {
            let e = e as usize;
            let worst = if best.len() == k {
                best[k - 1].0
            } else {
                f32::INFINITY
            };
            // A sum of squares only grows: once it reaches the k-th nearest's, the pattern is
            // out whatever the rest of it holds, and most patterns are out after a few values.
            let mut d = 0f32;
            let mut out = false;
            for (m, (a, b)) in self.values[e + 1 - window..=e]
                .iter()
                .zip(q_values)
                .enumerate()
            {
                d += (a - b) * (a - b);
                if m % 4 == 3 && d >= worst {
                    out = true;
                    break;
                }
            }
            if out {
                continue;
            }
            if let Some(day) = self.day.get(e) {
                for (a, b) in day.iter().zip(q_day) {
                    d += (a - b) * (a - b);
                }
            }
            if best.len() == k && d >= best[k - 1].0 {
                continue;
            }
            if skip(j) {
                continue;
            }
            let pos = best.partition_point(|(bd, _)| *bd <= d);
            best.insert(pos, (d, e));
            best.truncate(k);
        }
        if best.is_empty() {
            return (f64::NAN, f64::NAN, 0);
        }
        let d = best
            .iter()
            .map(|(d, _)| (*d as f64 / window as f64).sqrt())
            .sum::<f64>()
            / best.len() as f64;
        let y = best
            .iter()
            .map(|(_, e)| f64::from(self.values[*e]))
            .sum::<f64>()
            / best.len() as f64;
        (d, y, best.len())
    }
}

/// 16-bit values as their little-endian bytes: postcard writes a `u16` as a variable-length
/// integer, 3 bytes for most `f16` bit patterns, and a byte as itself.
mod day_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(v: &[u16], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        bytes.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
        let bytes = Vec::<u8>::deserialize(d)?;
        if bytes.len() % 2 != 0 {
            return Err(D::Error::custom("an odd number of bytes for 16-bit values"));
        }
        Ok(bytes
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect())
    }
}

/// `f16` values as their bits' little-endian bytes (see [`day_bytes`]).
mod as_bytes {
    use half::f16;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f16], s: S) -> Result<S::Ok, S::Error> {
        let bits: Vec<u16> = v.iter().map(|x| x.to_bits()).collect();
        super::day_bytes::serialize(&bits, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f16>, D::Error> {
        let bits = super::day_bytes::deserialize(d)?;
        Ok(bits.into_iter().map(f16::from_bits).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::knn::time_context;

    /// A week at 5-minute steps from a time that is not midnight.
    fn week() -> Vec<(i64, f64)> {
        (0..2016)
            .map(|i| {
                let t = 1_700_000_123_000 + i * 300_000;
                (t, 3.0 * (i as f64 / 40.0).sin() + (i % 5) as f64 * 0.1)
            })
            .collect()
    }

    /// Each element's time context as decoded, against the one a judged pattern gets.
    fn worst_day_error(set: &PatternSet, elements: &[(i64, f64)]) -> f32 {
        let decoded = set.decode(8);
        let mut worst = 0f32;
        for (e, (t, _)) in elements.iter().enumerate() {
            let mut exact = Vec::new();
            time_context(*t, &mut exact);
            for (a, b) in decoded.day[e].iter().zip(&exact) {
                worst = worst.max((a - b).abs());
            }
        }
        worst
    }

    #[test]
    fn a_regular_series_is_kept_as_its_values_and_its_grid() {
        let elements = week();
        let ends: Vec<usize> = (7..elements.len()).collect();
        let set = PatternSet::new(&elements, &ends);
        assert!(matches!(
            set.times,
            Times::Grid {
                step_ms: 300_000,
                ..
            }
        ));
        assert_eq!(set.len(), ends.len());
        assert_eq!(set.end_indices().collect::<Vec<_>>(), ends);
        assert_eq!(set.problem(8), None);
        let decoded = set.decode(8);
        for (v, (_, exact)) in decoded.values.iter().zip(&elements) {
            assert!(
                (f64::from(*v) - exact).abs() <= exact.abs() / 1024.0,
                "{v} {exact}"
            );
        }
        // The turns add up to the same sines and cosines as each time's own.
        assert!(worst_day_error(&set, &elements) < 1e-5);
    }

    #[test]
    fn an_irregular_series_keeps_each_time_of_day() {
        let mut elements = week();
        elements.remove(500);
        elements[900].0 += 17_000;
        let set = PatternSet::new(&elements, &[7, 8, 1000]);
        assert!(matches!(&set.times, Times::Day(d) if d.len() == elements.len()));
        // A time of day kept to about 1.3 s: 5e-5 of the circle at most.
        assert!(worst_day_error(&set, &elements) < 1e-4);
        let text = serde_json::to_string(&set).unwrap();
        assert_eq!(serde_json::from_str::<PatternSet>(&text).unwrap(), set);
    }

    #[test]
    fn values_beyond_half_precision_are_held_at_its_edge() {
        let elements = [(0, 1e9), (1, -1e9), (2, f64::NAN), (3, 0.5)];
        let decoded = PatternSet::new(&elements, &[3]).decode(2);
        assert_eq!(decoded.values[..2], [65504.0, -65504.0]);
        assert!(decoded.values[2].is_nan());
        assert_eq!(decoded.values[3], 0.5);
        let (d, _, found) = decoded.nearest(1, &[0.0, 0.5, 0.0, 0.0], |_| false);
        assert_eq!(found, 1);
        assert!(d.is_nan(), "the one pattern holds the hole: {d}");
    }
}
