//! Anomaly scores: prediction errors per timestamp against a threshold learned from the
//! training errors.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, check_finite};

/// The prediction error at one timestamp (an index into the series it came from).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PointError {
    /// Index into the series.
    pub index: usize,
    /// Mean absolute prediction error there, in scaled units.
    pub error: f64,
}

/// A timestamp whose error exceeded the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Index into the series.
    pub index: usize,
    /// The prediction error there.
    pub error: f64,
    /// `error / threshold`: above 1 by definition; how far out it is.
    pub score: f64,
}

/// An error threshold: the `quantile` of errors seen on normal (training) data.
///
/// ```
/// use promlearn_model::{PointError, Threshold};
///
/// let train: Vec<f64> = (1..=100).map(|i| i as f64 / 100.0).collect();
/// let t = Threshold::from_errors(&train, 0.95)?;
/// assert!((t.value - 0.9505).abs() < 1e-12);
/// let new = [PointError { index: 7, error: 0.5 }, PointError { index: 8, error: 1.9 }];
/// let flagged = t.flag(&new);
/// assert_eq!(flagged.len(), 1);
/// assert_eq!(flagged[0].index, 8);
/// # Ok::<(), promlearn_model::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// The quantile it was learned at, in [0, 1].
    pub quantile: f64,
    /// Errors above this are anomalies.
    pub value: f64,
}

impl Threshold {
    /// The `quantile` of `errors`, interpolating linearly between order statistics (numpy's
    /// default), so results match `np.quantile`.
    pub fn from_errors(errors: &[f64], quantile: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&quantile) {
            return Err(Error::InvalidConfig(format!(
                "the anomaly quantile must be within [0, 1], e.g. 0.99 (got {quantile})"
            )));
        }
        if errors.is_empty() {
            return Err(Error::TooFewSamples {
                what: "learning an anomaly threshold".into(),
                needed: 1,
                got: 0,
            });
        }
        check_finite("the training errors", errors)?;
        let mut sorted = errors.to_vec();
        sorted.sort_by(f64::total_cmp);
        let pos = quantile * (sorted.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        let value = sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64);
        Ok(Self { quantile, value })
    }

    /// The errors above the threshold, in input order.
    pub fn flag(&self, errors: &[PointError]) -> Vec<Anomaly> {
        errors
            .iter()
            .filter(|e| e.error > self.value)
            .map(|e| Anomaly {
                index: e.index,
                error: e.error,
                score: if self.value > 0.0 {
                    e.error / self.value
                } else {
                    f64::INFINITY
                },
            })
            .collect()
    }
}
