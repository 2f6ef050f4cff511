//! From a loaded series to what the model needs: one series, and how many of its steps are missing.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::promapi::Series;

/// How many steps of a `step` grid have no finite value in `series`: NaN or infinite values,
/// and steps with no sample between two that have one.
pub fn missing_steps(series: &Series, step: Duration) -> usize {
    let step_ms = (step.as_millis() as i64).max(1);
    let finite: Vec<i64> = series
        .timestamps_ms
        .iter()
        .zip(&series.values)
        .filter(|(_, v)| v.is_finite())
        .map(|(t, _)| *t)
        .collect();
    let not_finite = series.values.len() - finite.len();
    let skipped: i64 = finite
        .windows(2)
        .map(|pair| ((pair[1] - pair[0]) as f64 / step_ms as f64).round() as i64 - 1)
        .map(|gap| gap.max(0))
        .sum();
    // A non-finite value inside a gap is counted once: as the gap's step.
    let inside_gaps = series
        .timestamps_ms
        .iter()
        .zip(&series.values)
        .filter(|(t, v)| {
            !v.is_finite()
                && finite.first().is_some_and(|first| *t > first)
                && finite.last().is_some_and(|last| *t < last)
        })
        .count();
    not_finite - inside_gaps + skipped as usize
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
    fn missing_steps_count_gaps_and_non_finite_values_once() {
        let s = Series {
            labels: Default::default(),
            timestamps_ms: vec![0, 10_000, 20_000, 40_000, 50_000, 60_000],
            values: vec![1.0, 2.0, f64::NAN, 5.0, f64::INFINITY, 7.0],
        };
        // 20 s is NaN and 30 s has no sample: one gap of two steps; 50 s is infinite.
        assert_eq!(missing_steps(&s, Duration::from_secs(10)), 3);
        let whole = Series {
            timestamps_ms: vec![0, 10_000, 20_000],
            values: vec![1.0, 2.0, 3.0],
            ..s.clone()
        };
        assert_eq!(missing_steps(&whole, Duration::from_secs(10)), 0);
        let edges = Series {
            timestamps_ms: vec![0, 10_000, 20_000],
            values: vec![f64::NAN, 2.0, f64::NAN],
            ..s
        };
        assert_eq!(missing_steps(&edges, Duration::from_secs(10)), 2);
    }
}
