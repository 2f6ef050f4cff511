//! The histogram the service keeps for fit and inference durations, written by the loader's
//! exposition writer (the one writer of the text format).

use promlearn_loader::exposition::Writer;

/// Upper bounds (seconds) of the duration histograms' buckets.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A cumulative histogram over [`DURATION_BUCKETS`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    counts: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    /// Records one observation (seconds).
    pub fn observe(&mut self, seconds: f64) {
        for (bound, count) in DURATION_BUCKETS.iter().zip(&mut self.counts) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// The mean observation (seconds); none before the first.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// Writes its `_bucket`, `_sum` and `_count` lines for one label set.
    pub fn write_to(&self, page: &mut Writer, name: &str, labels: &[(&str, &str)]) {
        let buckets = DURATION_BUCKETS.iter().copied().zip(self.counts);
        page.histogram(name, labels, buckets, self.sum, self.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let mut h = Histogram::default();
        h.observe(0.003);
        h.observe(0.2);
        h.observe(100.0);
        let mut e = Writer::new();
        h.write_to(&mut e, "d_seconds", &[("query", "q")]);
        let text = e.finish();
        assert!(
            text.contains("d_seconds_bucket{query=\"q\",le=\"0.001\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{query=\"q\",le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{query=\"q\",le=\"0.25\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{query=\"q\",le=\"30\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{query=\"q\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("d_seconds_count{query=\"q\"} 3\n"), "{text}");
        assert!(
            text.contains("d_seconds_sum{query=\"q\"} 100.203"),
            "{text}"
        );
    }
}
