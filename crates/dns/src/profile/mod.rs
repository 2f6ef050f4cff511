//! Query rate over time: a base [`Shape`] with [`Event`]s laid on top. The rates and their
//! integrals are here; the two written forms (short and JSON) are read and printed in
//! [`parse`](self::parse).

mod parse;

use std::{f64::consts::TAU, time::Duration};

/// How the query rate evolves, before events.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// The same rate throughout.
    Constant {
        /// Queries per second (>= 0).
        qps: f64,
    },
    /// Linear from `from` to `to` over `over`, then holds `to`.
    Ramp {
        /// Queries per second at the start (>= 0).
        from: f64,
        /// Queries per second at `over` and after (>= 0).
        to: f64,
        /// How long the ramp takes; zero jumps straight to `to`.
        over: Duration,
    },
    /// `base + amplitude * sin(2π (t / period + phase))`; `phase` is a fraction of the period.
    Sine {
        /// The midline, in queries per second (>= `amplitude`, so the rate never goes negative).
        base: f64,
        /// How far the rate swings above and below `base`, in queries per second (>= 0).
        amplitude: f64,
        /// One full cycle (> 0).
        period: Duration,
        /// Where in the cycle t = 0 falls, as a fraction of the period (0.75 starts at the trough).
        phase: f64,
    },
    /// As fast as the concurrency allows: for throughput measurements.
    Unlimited,
}

/// A change laid over the shape for a while, to give a model something to find.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Multiplies the whole rate by `factor` during `[at, at + len)`. A factor below 1 is a dip;
    /// 0 is an outage of traffic.
    Spike {
        /// When it starts, from the run's start.
        at: Duration,
        /// How long it lasts (> 0).
        len: Duration,
        /// The multiplier (>= 0); the short form's `x`.
        factor: f64,
    },
    /// Adds `qps` to the shape during `[at, at + len)`.
    Burst {
        /// When it starts, from the run's start.
        at: Duration,
        /// How long it lasts (> 0).
        len: Duration,
        /// Extra queries per second on top of the shape (>= 0).
        qps: f64,
    },
}

impl Event {
    fn window(&self) -> (Duration, Duration) {
        match *self {
            Event::Spike { at, len, .. } | Event::Burst { at, len, .. } => (at, at + len),
        }
    }
}

/// A query rate over time: `(shape(t) + active bursts) * product of active spike factors`.
///
/// Build one in code or parse the short form that CLIs take: a shape, then `+`-joined events.
///
/// ```
/// use std::time::Duration;
/// use promlearn_dns::Profile;
///
/// let profile: Profile = "sine:base=100,amp=80,period=60s+spike:at=30s,len=5s,x=5".parse()?;
/// assert_eq!(profile.rate_at(Duration::from_secs(15)).round(), 180.0); // the sine's crest
/// assert_eq!(profile.rate_at(Duration::from_secs(30)).round(), 500.0); // 5 x the sine's midline
///
/// let same = Profile::sine(100.0, 80.0, Duration::from_secs(60))
///     .with_spike(Duration::from_secs(30), Duration::from_secs(5), 5.0);
/// assert_eq!(profile, same);
/// assert_eq!(same.to_string(), "sine:base=100,amp=80,period=1m+spike:at=30s,len=5s,x=5");
///
/// // A constant rate sends rate * time queries.
/// let steady = Profile::constant(200.0);
/// assert_eq!(steady.expected_queries(Duration::from_secs(3)), 600.0);
///
/// // Mistakes are typed errors that say what to write instead.
/// let err = "sine:base=100,period=60s".parse::<Profile>().unwrap_err();
/// assert_eq!(err.to_string(), "`sine` needs `amp` (e.g. sine:base=100,amp=80,period=60s)");
/// # Ok::<(), promlearn_dns::ProfileError>(())
/// ```
///
/// The same profile as JSON, for configuration files:
///
/// ```
/// # use promlearn_dns::Profile;
/// let json = r#"{"shape": "sine", "base": 100, "amp": 80, "period": "60s",
///                "events": [{"event": "spike", "at": "30s", "len": "5s", "x": 5}]}"#;
/// assert_eq!(Profile::from_json(json)?, "sine:base=100,amp=80,period=60s+spike:at=30s,len=5s,x=5".parse()?);
/// # Ok::<(), promlearn_dns::ProfileError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    shape: Shape,
    events: Vec<Event>,
}

/// What is wrong with a profile, as text a CLI can show as is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The text was empty or only whitespace.
    #[error("empty profile: {EXAMPLES}")]
    Empty,
    /// The first part names no shape (`constant`, `ramp`, `sine`, `day`, `max`); the name as given.
    #[error("unknown shape `{0}`: {EXAMPLES}")]
    UnknownShape(String),
    /// The profile starts with an event (`spike`, `burst`) instead of a shape; the event's name.
    #[error(
        "`{0}` changes a base rate, so it cannot come first: start with a shape, e.g. constant:100+{0}:..."
    )]
    EventFirst(String),
    /// A second shape after `+`, where only events may come; the shape's name.
    #[error("`{0}` is a shape; after `+` come only events (spike, burst)")]
    ShapeAfterShape(String),
    /// An event name other than `spike` or `burst`; the name as given.
    #[error("unknown event `{0}`: use spike:at=30s,len=5s,x=5 or burst:at=30s,len=5s,qps=500")]
    UnknownEvent(String),
    /// A required parameter is absent, e.g. `sine` without `amp`.
    #[error("`{part}` needs `{param}` (e.g. {example})")]
    MissingParam {
        /// The shape or event that needs it (`sine`, `spike`, ...).
        part: &'static str,
        /// The parameter's name in the short form (`amp`, `len`, ...).
        param: &'static str,
        /// A correct example of `part`, to show.
        example: &'static str,
    },
    /// A parameter that `part` does not take (a typo, or one from another shape).
    #[error("`{part}` takes no `{param}` (e.g. {example})")]
    UnknownParam {
        /// The shape or event it was given to.
        part: &'static str,
        /// The parameter's name as given.
        param: String,
        /// A correct example of `part`, to show.
        example: &'static str,
    },
    /// The same parameter given twice to one shape or event.
    #[error("`{part}` has `{param}` twice")]
    DuplicateParam {
        /// The shape or event.
        part: &'static str,
        /// The repeated parameter's name.
        param: String,
    },
    /// A parameter that must be a number (a rate, a factor, a phase) does not parse as one.
    #[error("`{param}={value}` is not a number")]
    BadNumber {
        /// The parameter's name.
        param: String,
        /// Its text as given.
        value: String,
    },
    /// A parameter that must be a duration (`at`, `len`, `over`, `period`) does not parse as one
    /// (the grammar of `promlearn-duration`).
    #[error("`{param}={value}` is not a duration (e.g. 30s, 500ms, 2m, 1h)")]
    BadDuration {
        /// The parameter's name.
        param: String,
        /// Its text as given.
        value: String,
    },
    /// The profile parses but cannot run (a negative or non-finite rate, a sine dipping below
    /// zero, a zero period or event length); from [`Profile::validate`].
    #[error("{0}")]
    Invalid(String),
    /// The JSON form is not valid JSON or has the wrong fields; serde's or our message.
    #[error("profile JSON: {0}")]
    Json(String),
}

const EXAMPLES: &str = "use constant:200, ramp:from=10,to=200,over=60s, sine:base=100,amp=80,period=60s, \
     day:base=100,amp=80,period=60s or max, optionally followed by +spike:at=30s,len=5s,x=5 \
     or +burst:at=30s,len=5s,qps=500";

impl Profile {
    /// `shape` with no events.
    pub fn new(shape: Shape) -> Profile {
        Profile {
            shape,
            events: Vec::new(),
        }
    }

    /// `qps` queries per second throughout.
    pub fn constant(qps: f64) -> Profile {
        Profile::new(Shape::Constant { qps })
    }

    /// From `from` to `to` queries per second linearly over `over`, then `to`.
    pub fn ramp(from: f64, to: f64, over: Duration) -> Profile {
        Profile::new(Shape::Ramp { from, to, over })
    }

    /// `base ± amplitude` queries per second with the given period, starting at `base` and rising.
    pub fn sine(base: f64, amplitude: f64, period: Duration) -> Profile {
        Profile::new(Shape::Sine {
            base,
            amplitude,
            period,
            phase: 0.0,
        })
    }

    /// A day compressed into `day`: quietest at the start (midnight) and at the end, busiest
    /// half-way (noon), ranging over `base ± amplitude`.
    pub fn compressed_day(base: f64, amplitude: f64, day: Duration) -> Profile {
        Profile::new(Shape::Sine {
            base,
            amplitude,
            period: day,
            phase: DAY_PHASE,
        })
    }

    /// As fast as the load's concurrency allows (the short form's `max`).
    pub fn unlimited() -> Profile {
        Profile::new(Shape::Unlimited)
    }

    /// Adds an [`Event::Spike`]: the rate times `factor` during `[at, at + len)`.
    pub fn with_spike(mut self, at: Duration, len: Duration, factor: f64) -> Profile {
        self.events.push(Event::Spike { at, len, factor });
        self
    }

    /// Adds an [`Event::Burst`]: `qps` more queries per second during `[at, at + len)`.
    pub fn with_burst(mut self, at: Duration, len: Duration, qps: f64) -> Profile {
        self.events.push(Event::Burst { at, len, qps });
        self
    }

    /// The base shape, before events.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The events, in the order added.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The shape is [`Shape::Unlimited`] (events may still silence it for a while).
    pub fn is_unlimited(&self) -> bool {
        self.shape == Shape::Unlimited
    }

    /// Queries per second wanted at `t` after the start; infinite for [`Shape::Unlimited`].
    pub fn rate_at(&self, t: Duration) -> f64 {
        let mut extra = 0.0;
        let mut factor = 1.0;
        for event in &self.events {
            let (start, end) = event.window();
            if start <= t && t < end {
                match *event {
                    Event::Spike { factor: x, .. } => factor *= x,
                    Event::Burst { qps, .. } => extra += qps,
                }
            }
        }
        if factor == 0.0 {
            return 0.0; // an outage silences even an unlimited shape
        }
        (self.shape_rate(t.as_secs_f64()) + extra) * factor
    }

    fn shape_rate(&self, t: f64) -> f64 {
        match self.shape {
            Shape::Constant { qps } => qps,
            Shape::Ramp { from, to, over } => {
                let over = over.as_secs_f64();
                if over == 0.0 || t >= over {
                    to
                } else {
                    from + (to - from) * t / over
                }
            }
            Shape::Sine {
                base,
                amplitude,
                period,
                phase,
            } => base + amplitude * (TAU * (t / period.as_secs_f64() + phase)).sin(),
            Shape::Unlimited => f64::INFINITY,
        }
    }

    /// The integral of the shape alone from `a` to `b` seconds.
    fn shape_queries_between(&self, a: f64, b: f64) -> f64 {
        match self.shape {
            // Infinity minus infinity would be NaN.
            Shape::Unlimited if b > a => f64::INFINITY,
            Shape::Unlimited => 0.0,
            _ => self.shape_queries(b) - self.shape_queries(a),
        }
    }

    /// The integral of a finite shape from 0 to `t` seconds, in closed form.
    fn shape_queries(&self, t: f64) -> f64 {
        match self.shape {
            Shape::Constant { qps } => qps * t,
            Shape::Ramp { from, to, over } => {
                let over = over.as_secs_f64();
                let ramping = t.min(over);
                let during = if over == 0.0 {
                    0.0
                } else {
                    from * ramping + (to - from) * ramping * ramping / (2.0 * over)
                };
                during + to * (t - ramping).max(0.0)
            }
            Shape::Sine {
                base,
                amplitude,
                period,
                phase,
            } => {
                let period = period.as_secs_f64();
                let angle = |t: f64| TAU * (t / period + phase);
                base * t - amplitude * period / TAU * (angle(t).cos() - angle(0.0).cos())
            }
            Shape::Unlimited => f64::INFINITY,
        }
    }

    /// How many queries the profile asks for in its first `over`: the integral of
    /// [`rate_at`](Profile::rate_at). Exact (no sampling), so a pacer can release
    /// `expected_queries(elapsed)` without drifting.
    pub fn expected_queries(&self, over: Duration) -> f64 {
        let end = over.as_secs_f64();
        // Between consecutive event edges the events are constant, so each piece is
        // (shape integral + bursts * width) * factors.
        let mut edges = vec![0.0, end];
        for event in &self.events {
            let (start, stop) = event.window();
            edges.extend(
                [start.as_secs_f64(), stop.as_secs_f64()]
                    .into_iter()
                    .filter(|&edge| edge > 0.0 && edge < end),
            );
        }
        edges.sort_by(f64::total_cmp);
        edges.dedup();
        let mut total = 0.0;
        for piece in edges.windows(2) {
            let (a, b) = (piece[0], piece[1]);
            let mid = Duration::from_secs_f64((a + b) / 2.0);
            let (mut extra, mut factor) = (0.0, 1.0);
            for event in &self.events {
                let (start, stop) = event.window();
                if start <= mid && mid < stop {
                    match *event {
                        Event::Spike { factor: x, .. } => factor *= x,
                        Event::Burst { qps, .. } => extra += qps,
                    }
                }
            }
            if factor != 0.0 {
                total += (self.shape_queries_between(a, b) + extra * (b - a)) * factor;
            }
        }
        total
    }

    /// Checks that every rate is finite and never negative, and every period positive.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let invalid = |reason: String| Err(ProfileError::Invalid(reason));
        let rate_ok = |value: f64| value.is_finite() && value >= 0.0;
        match self.shape {
            Shape::Constant { qps } if !rate_ok(qps) => {
                return invalid(format!("constant rate {qps} must be a finite number >= 0"));
            }
            Shape::Ramp { from, to, .. } if !rate_ok(from) || !rate_ok(to) => {
                return invalid(format!(
                    "ramp rates {from} and {to} must be finite numbers >= 0"
                ));
            }
            Shape::Sine {
                base,
                amplitude,
                period,
                phase,
            } => {
                if !rate_ok(base) || !rate_ok(amplitude) || !phase.is_finite() {
                    return invalid(format!(
                        "sine base {base}, amp {amplitude} and phase {phase} must be finite, base and amp >= 0"
                    ));
                }
                if amplitude > base {
                    return invalid(format!(
                        "sine amp {amplitude} exceeds base {base}: the rate would go below zero"
                    ));
                }
                if period.is_zero() {
                    return invalid("sine period must be longer than 0s".into());
                }
            }
            _ => {}
        }
        for event in &self.events {
            match *event {
                Event::Spike { factor, len, .. } if !rate_ok(factor) || len.is_zero() => {
                    return invalid(format!(
                        "spike x={factor} must be a finite number >= 0 and its len > 0s"
                    ));
                }
                Event::Burst { qps, len, .. } if !rate_ok(qps) || len.is_zero() => {
                    return invalid(format!(
                        "burst qps={qps} must be a finite number >= 0 and its len > 0s"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// `phase` that puts the sine's trough at t = 0: sin(2π · 0.75) = -1.
const DAY_PHASE: f64 = 0.75;

#[cfg(test)]
mod tests;
