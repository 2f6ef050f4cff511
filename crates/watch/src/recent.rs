//! What an inference asks Prometheus for: only the steps it has not read yet, while each series
//! keeps the samples of its detector's context from the reads before ([`Recent`]).
//!
//! The detector is given the same window as before: the context and a few more points before
//! the steps that are new since the last read ([`GridRead::window_from`] on). The server is
//! asked only from [`GridRead::read_from`] on: [`REREAD_STEPS`] before the newest sample any
//! series of the query had at the last read (a sample that arrives a little late, such as
//! VictoriaMetrics' last 30 s or a remote-write delay, is read again, not taken for missing),
//! and the series' own samples before that come from what it kept. At 100,000 series and a
//! 30-point context this is a quarter of the points: the answer, its decoding and the server's
//! work shrink with it.
//!
//! A read asks for the whole window instead whenever a series is not known that far back: the
//! first read, a series that entered at the last read, and any series whose samples were not
//! kept (a backtest's memory source keeps none and reads the whole window anyway). A series
//! that is not in an answer had no sample at any step read, and exports nothing, as when it
//! leaves the window (a stopped series now leaves it after the steps read, not the whole
//! window); if it comes back, what it kept before is its context as the whole window's answer
//! would have held it.

use promlearn_loader::{MISSING, is_missing};

use crate::{INFER_EXTRA_POINTS, QueryConfig};

/// Steps read again before the newest sample the query had at the last read.
pub(crate) const REREAD_STEPS: i64 = INFER_EXTRA_POINTS as i64;

/// An inference's read on the query's step grid (unix ms, multiples of `step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GridRead {
    /// The first step of the window the detector is given.
    pub window_from: i64,
    /// The first step asked of the server (`window_from` when the whole window is read).
    pub read_from: i64,
    /// The last step, the newest at or before the inference's time.
    pub end: i64,
    pub step: i64,
}

impl GridRead {
    /// The read of an inference of `query` at `now_ms`, the last one at `after_ms`, when the
    /// newest sample the query had then was `newest_ms`: `points` steps of window (see
    /// `source::infer_points_since`), read from a little before `newest_ms`.
    pub(crate) fn plan(
        query: &QueryConfig,
        now_ms: i64,
        points: usize,
        after_ms: Option<i64>,
        newest_ms: Option<i64>,
    ) -> GridRead {
        let step = query.step_ms();
        let end = now_ms.div_euclid(step) * step;
        let window_from = end - (points.max(1) as i64 - 1) * step;
        let read_from = match (after_ms, newest_ms) {
            (Some(after), Some(newest)) => {
                let known = after.min(newest).div_euclid(step) * step;
                (known - REREAD_STEPS * step).clamp(window_from, end)
            }
            _ => window_from,
        };
        GridRead {
            window_from,
            read_from,
            end,
            step,
        }
    }

    /// The same read over the whole window.
    pub(crate) fn whole(self) -> GridRead {
        GridRead {
            read_from: self.window_from,
            ..self
        }
    }

    /// Steps asked of the server.
    pub(crate) fn points(&self) -> usize {
        ((self.end - self.read_from) / self.step) as usize + 1
    }

    /// Whether part of the window comes from what the series kept.
    fn reuses(&self) -> bool {
        self.read_from > self.window_from
    }
}

/// A series' samples over the last steps read: a ring of one cell per step (the query's
/// `infer_points`), a cell holding the sample or [`MISSING`] where the server had none. Empty
/// until the first read and for a memory source.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    /// The oldest step held.
    from_ms: i64,
    /// The newest step held.
    to_ms: i64,
    cells: Box<[f64]>,
}

impl Recent {
    fn slot(&self, t: i64, step: i64) -> usize {
        t.div_euclid(step).rem_euclid(self.cells.len() as i64) as usize
    }

    /// The samples it holds, oldest first, on the query's `step` (the web page's sparkline).
    pub(crate) fn samples(&self, step: i64) -> Vec<(i64, f64)> {
        if self.cells.is_empty() || step <= 0 {
            return Vec::new();
        }
        let oldest = self.to_ms - (self.cells.len() as i64 - 1) * step;
        (self.from_ms.max(oldest)..=self.to_ms)
            .step_by(step as usize)
            .map(|t| (t, self.cells[self.slot(t, step)]))
            .filter(|(_, v)| !is_missing(*v))
            .collect()
    }

    /// Whether the series holds every step of `read`'s window before what is read.
    pub(crate) fn covers(&self, read: &GridRead) -> bool {
        !self.cells.is_empty()
            && self.from_ms <= read.window_from
            && self.to_ms + read.step >= read.read_from
    }

    /// The series' samples over `read`'s window: those it holds before `read_from`, then the
    /// answer's (`timestamps`, `values`: ascending, from `read_from` on); the answer's steps are
    /// kept for the next reads, `cells` of them.
    pub(crate) fn complete(
        &mut self,
        read: &GridRead,
        cells: usize,
        timestamps: Vec<i64>,
        values: Vec<f64>,
    ) -> (Vec<i64>, Vec<f64>) {
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        if read.reuses() && self.covers(read) {
            let held = ((read.read_from - read.window_from) / read.step) as usize;
            ts.reserve(held + timestamps.len());
            vs.reserve(held + values.len());
            for t in (read.window_from..read.read_from).step_by(read.step as usize) {
                let v = self.cells[self.slot(t, read.step)];
                if !is_missing(v) {
                    ts.push(t);
                    vs.push(v);
                }
            }
        }
        self.record(read, cells, &timestamps, &values);
        if ts.is_empty() {
            return (timestamps, values);
        }
        ts.extend(timestamps);
        vs.extend(values);
        (ts, vs)
    }

    /// Keeps an answer's steps: every step read holds the answer's sample or none.
    pub(crate) fn record(
        &mut self,
        read: &GridRead,
        cells: usize,
        timestamps: &[i64],
        values: &[f64],
    ) {
        let step = read.step;
        let empty = self.cells.is_empty();
        if self.cells.len() != cells {
            self.cells = vec![MISSING; cells].into_boxed_slice();
        }
        let joins = !empty && read.read_from <= self.to_ms + step && read.read_from >= self.from_ms;
        let from = if joins { self.from_ms } else { read.read_from };
        let oldest = read.end - (cells as i64 - 1) * step;
        let first = read.read_from.max(oldest);
        for t in (first..=read.end).step_by(step as usize) {
            let slot = self.slot(t, step);
            self.cells[slot] = MISSING;
        }
        for (&t, &v) in timestamps.iter().zip(values) {
            if t >= first && t <= read.end {
                let slot = self.slot(t, step);
                self.cells[slot] = v;
            }
        }
        self.to_ms = read.end;
        self.from_ms = from.max(oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(window_from: i64, read_from: i64, end: i64) -> GridRead {
        GridRead {
            window_from,
            read_from,
            end,
            step: 10,
        }
    }

    /// The samples of `ts` on steps `from..=to`, valued as their time (`gaps` left out).
    fn answer(from: i64, to: i64, gaps: &[i64]) -> (Vec<i64>, Vec<f64>) {
        let ts: Vec<i64> = (from..=to)
            .step_by(10)
            .filter(|t| !gaps.contains(t))
            .collect();
        let vs = ts.iter().map(|t| *t as f64).collect();
        (ts, vs)
    }

    #[test]
    fn a_short_read_gives_the_whole_windows_samples() {
        let cells = 8;
        let mut r = Recent::default();
        let gaps = [30, 90, 120];
        // The first read: the whole window.
        let first = read(0, 0, 70);
        assert!(!r.covers(&first));
        let (ts, vs) = answer(0, 70, &gaps);
        assert_eq!(
            r.complete(&first, cells, ts.clone(), vs),
            (ts, answer(0, 70, &gaps).1)
        );
        // Then windows of 8 steps, read from 3 steps before the last end.
        for end in [100, 130, 160, 170, 200] {
            let next = read(end - 70, end - 60, end);
            assert!(r.covers(&next), "{end}");
            let (ts, vs) = answer(next.read_from, end, &gaps);
            let got = r.complete(&next, cells, ts, vs);
            assert_eq!(got, answer(end - 70, end, &gaps), "{end}");
        }
    }

    #[test]
    fn what_was_not_read_is_not_held() {
        let cells = 8;
        let mut r = Recent::default();
        let (ts, vs) = answer(0, 70, &[]);
        r.complete(&read(0, 0, 70), cells, ts, vs);
        // A read that starts after the newest step held leaves a hole: not covered, and the
        // answer alone is given.
        let later = read(50, 90, 120);
        assert!(!r.covers(&later));
        let (ts, vs) = answer(90, 120, &[]);
        assert_eq!(r.complete(&later, cells, ts.clone(), vs.clone()), (ts, vs));
        assert!(!r.covers(&read(60, 110, 130)), "held from 90 only");
        assert!(r.covers(&read(90, 110, 130)));
        // Absent from an answer: nothing at the steps read, what was held before still counts.
        r.record(&read(90, 110, 130), cells, &[], &[]);
        let back = read(90, 140, 150);
        assert!(r.covers(&back));
        let (ts, _) = r.complete(&back, cells, vec![150], vec![1.0]);
        assert_eq!(ts, [90, 100, 150]);
    }

    #[test]
    fn plans_read_from_a_little_before_the_newest_sample() {
        let config = crate::Config::from_toml(
            r#"
endpoint = "http://localhost:9090"
[[query]]
name = "q"
expr = "x"
step = "10s"
infer_every = "30s"
detector = { kind = "zscore", window = 20 }
"#,
            "t.toml",
        )
        .unwrap();
        let q = &config.queries[0];
        let p = GridRead::plan(q, 1_000_005, 39, None, None);
        assert_eq!(
            (p.window_from, p.read_from, p.end),
            (620_000, 620_000, 1_000_000)
        );
        assert_eq!(p.points(), 39);
        // The newest sample 30 s behind the last read: read from 5 steps before it.
        let p = GridRead::plan(q, 1_000_005, 39, Some(970_005), Some(940_000));
        assert_eq!(p.read_from, 940_000 - REREAD_STEPS * 10_000);
        assert_eq!(p.points(), 12);
        assert_eq!(p.whole().points(), 39);
    }
}
