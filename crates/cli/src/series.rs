//! From a loaded series to what the model needs: finite values on a regular step grid.

use anyhow::{Result, bail};

use crate::promapi::Series;

/// A series on a regular grid: gaps (missing steps, NaN or infinite values) filled by linear
/// interpolation and marked in `filled`.
#[derive(Debug, Clone, PartialEq)]
pub struct Regular {
    pub timestamps: Vec<f64>,
    pub values: Vec<f64>,
    pub filled: Vec<bool>,
}

impl Regular {
    pub fn filled_count(&self) -> usize {
        self.filled.iter().filter(|f| **f).count()
    }
}

/// Puts `series` on a grid of `step` seconds (or keeps its own times when `step` is `None`),
/// filling gaps linearly.
pub fn regularize(series: &Series, step: Option<f64>) -> Regular {
    let points: Vec<(f64, f64)> = series
        .timestamps
        .iter()
        .zip(&series.values)
        .filter(|(_, v)| v.is_finite())
        .map(|(t, v)| (*t, *v))
        .collect();
    let mut out = Regular {
        timestamps: Vec::with_capacity(points.len()),
        values: Vec::with_capacity(points.len()),
        filled: Vec::with_capacity(points.len()),
    };
    for (i, &(t, v)) in points.iter().enumerate() {
        if let (Some(step), Some(&(t0, v0))) = (step, i.checked_sub(1).map(|j| &points[j])) {
            let missing = ((t - t0) / step).round() as i64 - 1;
            for k in 1..=missing.max(0) {
                let frac = k as f64 / (missing + 1) as f64;
                out.timestamps.push(t0 + k as f64 * step);
                out.values.push(v0 + (v - v0) * frac);
                out.filled.push(true);
            }
        }
        out.timestamps.push(t);
        out.values.push(v);
        out.filled.push(false);
    }
    out
}

/// The one series a model works on; several are an error that says how to pick one.
pub fn single<'a>(series: &'a [Series], query: &str) -> Result<&'a Series> {
    match series {
        [] => bail!(
            "the query `{query}` selects no series in that range: check the metric name and \
             labels, or widen the range"
        ),
        [one] => Ok(one),
        many => {
            let examples: Vec<String> = many.iter().take(3).map(Series::selector).collect();
            bail!(
                "the query `{query}` selects {} series and a model learns one: aggregate them \
                 (e.g. sum(...)) or select one by its labels, such as {}",
                many.len(),
                examples.join(" or ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_filled_linearly() {
        let s = Series {
            labels: Default::default(),
            timestamps: vec![0.0, 10.0, 40.0, 50.0],
            values: vec![1.0, 2.0, 5.0, f64::NAN],
        };
        let r = regularize(&s, Some(10.0));
        assert_eq!(r.timestamps, vec![0.0, 10.0, 20.0, 30.0, 40.0]);
        assert_eq!(r.values, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(r.filled, vec![false, false, true, true, false]);
        let raw = regularize(&s, None);
        assert_eq!(raw.timestamps, vec![0.0, 10.0, 40.0]);
    }
}
