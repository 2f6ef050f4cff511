//! The schedule's clock: real time for the service, simulated time for a backtest; and where
//! its work runs ([`Exec`]): the two ways a service and a backtest differ, besides the source.
//!
//! The schedule asks the clock what time it is (unix ms) and nothing else, so the same fit and
//! inference code runs live (ticks paced by tokio's timer) and in a backtest (ticks as fast as the
//! CPU goes, the clock set to each tick's time before it runs).

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::time::{Interval, MissedTickBehavior};

/// Real time or simulated time, in unix milliseconds.
#[derive(Debug)]
pub(crate) enum Clock {
    /// Wall time at start, advanced by the monotonic clock: it never steps back, and a stepped
    /// system clock does not make every series look stale or due at once.
    Wall { origin: Instant, origin_ms: i64 },
    /// The time of the tick being run, set by the backtest.
    Simulated(AtomicI64),
}

impl Clock {
    /// Real time.
    pub(crate) fn wall() -> Clock {
        let origin_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Clock::Wall {
            origin: Instant::now(),
            origin_ms,
        }
    }

    /// Simulated time, starting at `start_ms`.
    pub(crate) fn simulated(start_ms: i64) -> Clock {
        Clock::Simulated(AtomicI64::new(start_ms))
    }

    /// Now, in unix ms.
    pub(crate) fn now_ms(&self) -> i64 {
        match self {
            Clock::Wall { origin, origin_ms } => origin_ms + origin.elapsed().as_millis() as i64,
            Clock::Simulated(now) => now.load(Ordering::Relaxed),
        }
    }

    /// Moves a simulated clock to `ms`; real time cannot be set.
    pub(crate) fn set(&self, ms: i64) {
        match self {
            Clock::Simulated(now) => now.store(ms, Ordering::Relaxed),
            Clock::Wall { .. } => debug_assert!(false, "the wall clock cannot be set"),
        }
    }
}

/// Where fits and analyses run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exec {
    /// On tokio's blocking pool; fits are not waited for (the service).
    Pool,
    /// On the calling thread, in order, each fit finished before the schedule goes on (a backtest).
    Inline,
}

/// Real ticks every `period`, the first at once; a late tick delays the next ones rather than
/// bunching them.
pub(crate) fn live_ticks(period: Duration) -> Interval {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
}

/// Simulated ticks over `[from_ms, to_ms]`: `from_ms`, then every `period`, and `to_ms` itself
/// when the range does not end on a tick, so that every sample of the range is reached.
pub(crate) fn simulated_ticks(
    from_ms: i64,
    to_ms: i64,
    period: Duration,
) -> impl Iterator<Item = i64> {
    let period = (period.as_millis() as i64).max(1);
    let mut next = Some(from_ms);
    std::iter::from_fn(move || {
        let t = next?;
        next = if t >= to_ms {
            None
        } else {
            Some((t + period).min(to_ms))
        };
        Some(t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_ticks_cover_the_range_and_end_on_it() {
        let s = Duration::from_millis(10);
        assert_eq!(
            simulated_ticks(0, 30, s).collect::<Vec<_>>(),
            [0, 10, 20, 30]
        );
        assert_eq!(
            simulated_ticks(0, 25, s).collect::<Vec<_>>(),
            [0, 10, 20, 25]
        );
        assert_eq!(simulated_ticks(5, 5, s).collect::<Vec<_>>(), [5]);
    }

    #[test]
    fn a_simulated_clock_shows_what_it_is_set_to() {
        let clock = Clock::simulated(7);
        assert_eq!(clock.now_ms(), 7);
        clock.set(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        let wall = Clock::wall();
        let (a, b) = (wall.now_ms(), wall.now_ms());
        assert!(a > 1_600_000_000_000 && b >= a);
    }
}
