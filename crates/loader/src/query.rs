//! Range queries and how they are cut into requests.

use std::time::Duration;

use crate::{Error, Result};

/// Prometheus refuses a `query_range` whose `(end - start) / step` exceeds 11,000, i.e. more than
/// 11,001 points per series. Requests stay at or below this many points.
pub const PROMETHEUS_MAX_POINTS: usize = 11_000;

/// A PromQL expression evaluated at `start`, `start + step`, ... up to `end` (inclusive), as
/// `/api/v1/query_range` does. Times are milliseconds since the Unix epoch.
///
/// ```
/// use std::time::Duration;
/// use promlearn_loader::RangeQuery;
///
/// let q = RangeQuery::new("up", 1_700_000_000_000, 1_700_000_009_000, Duration::from_secs(1))?;
/// assert_eq!(q.points(), 10);
/// // Cut into requests of at most 4 points: no point twice, none lost.
/// let parts = q.split(3);
/// assert_eq!(parts.iter().map(RangeQuery::points).collect::<Vec<_>>(), [4, 3, 3]);
/// assert_eq!(parts[1].start_ms, parts[0].end_ms + 1000);
/// # Ok::<(), promlearn_loader::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeQuery {
    /// The PromQL expression, sent as is.
    pub query: String,
    /// The first instant evaluated, unix milliseconds (sent as seconds with a millisecond fraction).
    pub start_ms: i64,
    /// The last instant evaluated is the last grid point at or before `end_ms`.
    pub end_ms: i64,
    /// Milliseconds between evaluated instants, at least 1.
    pub step_ms: i64,
}

impl RangeQuery {
    /// Checks the arguments: a step of at least 1 ms, `end >= start`.
    pub fn new(
        query: impl Into<String>,
        start_ms: i64,
        end_ms: i64,
        step: Duration,
    ) -> Result<RangeQuery> {
        let step_ms = i64::try_from(step.as_millis()).unwrap_or(0);
        if step_ms <= 0 || !step.as_nanos().is_multiple_of(1_000_000) {
            return Err(Error::InvalidArgument(format!(
                "the step must be a whole number of milliseconds, at least 1 ms (got {step:?})"
            )));
        }
        if end_ms < start_ms {
            return Err(Error::InvalidArgument(format!(
                "the range ends ({end_ms} ms) before it starts ({start_ms} ms)"
            )));
        }
        Ok(RangeQuery {
            query: query.into(),
            start_ms,
            end_ms,
            step_ms,
        })
    }

    /// Evaluation instants (rows of the result).
    pub fn points(&self) -> usize {
        ((self.end_ms - self.start_ms) / self.step_ms) as usize + 1
    }

    /// The instants themselves.
    pub fn timestamps(&self) -> Vec<i64> {
        (0..self.points() as i64)
            .map(|i| self.start_ms + i * self.step_ms)
            .collect()
    }

    /// Cuts the range into `parts` consecutive ranges of near-equal point counts (the first ones
    /// one point longer), each starting one step after the previous one ends.
    pub fn split(&self, parts: usize) -> Vec<RangeQuery> {
        let n = self.points();
        let parts = parts.clamp(1, n);
        let (base, extra) = (n / parts, n % parts);
        let mut first = 0usize;
        (0..parts)
            .map(|i| {
                let len = base + usize::from(i < extra);
                let start_ms = self.start_ms + first as i64 * self.step_ms;
                first += len;
                RangeQuery {
                    query: self.query.clone(),
                    start_ms,
                    end_ms: start_ms + (len as i64 - 1) * self.step_ms,
                    step_ms: self.step_ms,
                }
            })
            .collect()
    }

    /// The query parameters of its `/api/v1/query_range` request (times as seconds with a
    /// millisecond fraction, which Prometheus, Thanos, Mimir and VictoriaMetrics all read).
    pub fn params(&self) -> [(&'static str, String); 4] {
        [
            ("query", self.query.clone()),
            ("start", seconds(self.start_ms)),
            ("end", seconds(self.end_ms)),
            ("step", seconds(self.step_ms)),
        ]
    }
}

/// Milliseconds as the API's seconds: `1700000000.123`.
pub(crate) fn seconds(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let (s, frac) = (ms.unsigned_abs() / 1000, ms.unsigned_abs() % 1000);
    if frac == 0 {
        format!("{sign}{s}")
    } else {
        format!("{sign}{s}.{frac:03}")
    }
}

/// How many requests a range needs: enough to stay under the server's per-series point limit,
/// and, when the range is long enough, at least one per concurrent fetch so that decoding one
/// chunk overlaps the server's work on the next ones.
pub(crate) fn plan_parts(
    points: usize,
    max_points: usize,
    concurrency: usize,
    min_points: usize,
) -> usize {
    let by_limit = points.div_ceil(max_points.max(1));
    let for_overlap = concurrency.min(points / min_points.max(1));
    by_limit.max(for_overlap).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cover_every_point_once() {
        let q = RangeQuery::new("x", 5_000, 5_000 + 25_000 * 1000, Duration::from_secs(1)).unwrap();
        assert_eq!(q.points(), 25_001);
        for parts in [1, 2, 3, 7, 100, 25_001, 99_999] {
            let chunks = q.split(parts);
            let all: Vec<i64> = chunks.iter().flat_map(RangeQuery::timestamps).collect();
            assert_eq!(all, q.timestamps(), "{parts} parts");
        }
    }

    #[test]
    fn the_end_need_not_be_on_the_grid() {
        let q = RangeQuery::new("x", 0, 2_500, Duration::from_secs(1)).unwrap();
        assert_eq!(q.timestamps(), [0, 1000, 2000]);
    }

    #[test]
    fn plans_respect_the_limit_and_overlap() {
        assert_eq!(plan_parts(10_800, 11_000, 4, 1_000), 4);
        assert_eq!(plan_parts(36_000, 11_000, 4, 1_000), 4);
        assert_eq!(plan_parts(100_000, 11_000, 4, 1_000), 10);
        assert_eq!(plan_parts(5, 11_000, 4, 1_000), 1);
        assert_eq!(plan_parts(2_500, 11_000, 4, 1_000), 2);
        assert_eq!(plan_parts(11_001, 11_000, 1, 1_000), 2);
    }

    #[test]
    fn times_are_seconds_with_milliseconds() {
        assert_eq!(seconds(1_700_000_000_000), "1700000000");
        assert_eq!(seconds(1_700_000_000_050), "1700000000.050");
        assert_eq!(seconds(-1_500), "-1.500");
        assert_eq!(seconds(-2_000), "-2");
        assert_eq!(seconds(500), "0.500");
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(RangeQuery::new("x", 10, 0, Duration::from_secs(1)).is_err());
        assert!(RangeQuery::new("x", 0, 10, Duration::ZERO).is_err());
        assert!(RangeQuery::new("x", 0, 10, Duration::from_micros(1500)).is_err());
    }
}
