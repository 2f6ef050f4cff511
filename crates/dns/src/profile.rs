//! Query rate over time: a base [`Shape`] with [`Event`]s laid on top.

use std::{f64::consts::TAU, fmt, str::FromStr, time::Duration};

/// How the query rate evolves, before events.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// The same rate throughout.
    Constant { qps: f64 },
    /// Linear from `from` to `to` over `over`, then holds `to`.
    Ramp { from: f64, to: f64, over: Duration },
    /// `base + amplitude * sin(2π (t / period + phase))`; `phase` is a fraction of the period.
    Sine {
        base: f64,
        amplitude: f64,
        period: Duration,
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
        at: Duration,
        len: Duration,
        factor: f64,
    },
    /// Adds `qps` to the shape during `[at, at + len)`.
    Burst {
        at: Duration,
        len: Duration,
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
    #[error("empty profile: {EXAMPLES}")]
    Empty,
    #[error("unknown shape `{0}`: {EXAMPLES}")]
    UnknownShape(String),
    #[error(
        "`{0}` changes a base rate, so it cannot come first: start with a shape, e.g. constant:100+{0}:..."
    )]
    EventFirst(String),
    #[error("`{0}` is a shape; after `+` come only events (spike, burst)")]
    ShapeAfterShape(String),
    #[error("unknown event `{0}`: use spike:at=30s,len=5s,x=5 or burst:at=30s,len=5s,qps=500")]
    UnknownEvent(String),
    #[error("`{part}` needs `{param}` (e.g. {example})")]
    MissingParam {
        part: &'static str,
        param: &'static str,
        example: &'static str,
    },
    #[error("`{part}` takes no `{param}` (e.g. {example})")]
    UnknownParam {
        part: &'static str,
        param: String,
        example: &'static str,
    },
    #[error("`{part}` has `{param}` twice")]
    DuplicateParam { part: &'static str, param: String },
    #[error("`{param}={value}` is not a number")]
    BadNumber { param: String, value: String },
    #[error("`{param}={value}` is not a duration (e.g. 30s, 500ms, 2m, 1h)")]
    BadDuration { param: String, value: String },
    #[error("{0}")]
    Invalid(String),
    #[error("profile JSON: {0}")]
    Json(String),
}

const EXAMPLES: &str = "use constant:200, ramp:from=10,to=200,over=60s, sine:base=100,amp=80,period=60s, \
     day:base=100,amp=80,period=60s or max, optionally followed by +spike:at=30s,len=5s,x=5 \
     or +burst:at=30s,len=5s,qps=500";

impl Profile {
    pub fn new(shape: Shape) -> Profile {
        Profile {
            shape,
            events: Vec::new(),
        }
    }

    pub fn constant(qps: f64) -> Profile {
        Profile::new(Shape::Constant { qps })
    }

    pub fn ramp(from: f64, to: f64, over: Duration) -> Profile {
        Profile::new(Shape::Ramp { from, to, over })
    }

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

    pub fn unlimited() -> Profile {
        Profile::new(Shape::Unlimited)
    }

    pub fn with_spike(mut self, at: Duration, len: Duration, factor: f64) -> Profile {
        self.events.push(Event::Spike { at, len, factor });
        self
    }

    pub fn with_burst(mut self, at: Duration, len: Duration, qps: f64) -> Profile {
        self.events.push(Event::Burst { at, len, qps });
        self
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

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

    /// Parses the short form (`constant:200`, `sine:base=100,amp=80,period=60s+spike:...`) or,
    /// when the text starts with `{`, the JSON form.
    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        let text = text.trim();
        if text.starts_with('{') {
            return Profile::from_json(text);
        }
        let mut parts = text.split('+').map(str::trim);
        let first = parts.next().filter(|part| !part.is_empty());
        let (name, params) = split_part(first.ok_or(ProfileError::Empty)?)?;
        let mut profile = Profile::new(shape_from(&name, params)?);
        for part in parts {
            let (name, params) = split_part(part)?;
            profile.events.push(event_from(&name, params)?);
        }
        profile.validate()?;
        Ok(profile)
    }

    /// Parses `{"shape": "sine", "base": 100, ..., "events": [{"event": "spike", "at": "30s", ...}]}`.
    /// Numbers may be JSON numbers or strings; durations are strings like `"30s"` or seconds.
    /// A JSON string holding the short form is accepted too.
    pub fn from_json(json: &str) -> Result<Profile, ProfileError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| ProfileError::Json(e.to_string()))?;
        let object = match value {
            serde_json::Value::String(short) => return Profile::parse(&short),
            serde_json::Value::Object(object) => object,
            other => {
                return Err(ProfileError::Json(format!(
                    "expected an object or a string, found {other}"
                )));
            }
        };
        let (name, params, events) = json_part(object, "shape")?;
        let mut profile = Profile::new(shape_from(&name, params)?);
        for event in events {
            let serde_json::Value::Object(object) = event else {
                return Err(ProfileError::Json(format!(
                    "each event must be an object, found {event}"
                )));
            };
            let (name, params, nested) = json_part(object, "event")?;
            if !nested.is_empty() {
                return Err(ProfileError::Json("events cannot have events".into()));
            }
            profile.events.push(event_from(&name, params)?);
        }
        profile.validate()?;
        Ok(profile)
    }
}

/// `phase` that puts the sine's trough at t = 0: sin(2π · 0.75) = -1.
const DAY_PHASE: f64 = 0.75;

impl FromStr for Profile {
    type Err = ProfileError;

    fn from_str(text: &str) -> Result<Profile, ProfileError> {
        Profile::parse(text)
    }
}

impl fmt::Display for Profile {
    /// The short form, which [`Profile::parse`] reads back to an equal profile.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.shape {
            Shape::Constant { qps } => write!(f, "constant:{qps}")?,
            Shape::Ramp { from, to, over } => {
                write!(f, "ramp:from={from},to={to},over={}", Secs(over))?
            }
            Shape::Sine {
                base,
                amplitude,
                period,
                phase,
            } if phase == DAY_PHASE => {
                write!(f, "day:base={base},amp={amplitude},period={}", Secs(period))?
            }
            Shape::Sine {
                base,
                amplitude,
                period,
                phase,
            } => {
                write!(
                    f,
                    "sine:base={base},amp={amplitude},period={}",
                    Secs(period)
                )?;
                if phase != 0.0 {
                    write!(f, ",phase={phase}")?;
                }
            }
            Shape::Unlimited => f.write_str("max")?,
        }
        for event in &self.events {
            match *event {
                Event::Spike { at, len, factor } => {
                    write!(f, "+spike:at={},len={},x={factor}", Secs(at), Secs(len))?
                }
                Event::Burst { at, len, qps } => {
                    write!(f, "+burst:at={},len={},qps={qps}", Secs(at), Secs(len))?
                }
            }
        }
        Ok(())
    }
}

/// Prints a duration the way the parser reads it back exactly (the shared grammar's format).
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&promlearn_duration::format(self.0))
    }
}

/// `key=value` pairs of one part, consumed by name so that leftovers can be reported.
struct Params {
    part: &'static str,
    example: &'static str,
    pairs: Vec<(String, String)>,
}

impl Params {
    fn take(&mut self, keys: &[&'static str]) -> Option<(String, String)> {
        let index = self
            .pairs
            .iter()
            .position(|(key, _)| keys.contains(&key.as_str()))?;
        Some(self.pairs.remove(index))
    }

    fn number(&mut self, keys: &[&'static str]) -> Result<Option<f64>, ProfileError> {
        let Some((key, value)) = self.take(keys) else {
            return Ok(None);
        };
        value
            .parse::<f64>()
            .ok()
            .filter(|number| number.is_finite())
            .map(Some)
            .ok_or(ProfileError::BadNumber { param: key, value })
    }

    fn required_number(&mut self, keys: &[&'static str]) -> Result<f64, ProfileError> {
        self.number(keys)?.ok_or(ProfileError::MissingParam {
            part: self.part,
            param: keys[0],
            example: self.example,
        })
    }

    fn required_duration(&mut self, key: &'static str) -> Result<Duration, ProfileError> {
        let (key, value) = self.take(&[key]).ok_or(ProfileError::MissingParam {
            part: self.part,
            param: key,
            example: self.example,
        })?;
        promlearn_duration::parse(&value)
            .map_err(|_| ProfileError::BadDuration { param: key, value })
    }

    fn finish(self) -> Result<(), ProfileError> {
        match self.pairs.into_iter().next() {
            None => Ok(()),
            Some((param, _)) => Err(ProfileError::UnknownParam {
                part: self.part,
                param,
                example: self.example,
            }),
        }
    }
}

/// Splits `name:k=v,k=v` (or `constant:200`) into its name and raw pairs.
fn split_part(part: &str) -> Result<(String, Vec<(String, String)>), ProfileError> {
    let (name, rest) = part.split_once(':').unwrap_or((part, ""));
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err(ProfileError::Empty);
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for item in rest
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (key, value) = match item.split_once('=') {
            Some((key, value)) => (key.trim().to_ascii_lowercase(), value.trim().to_owned()),
            // A bare value is the part's main number: `constant:200`.
            None => (String::new(), item.to_owned()),
        };
        pairs.push((key, value));
    }
    Ok((name, pairs))
}

/// Splits a JSON object into its part name (under `name_key`), its pairs and its events.
#[allow(clippy::type_complexity)]
fn json_part(
    object: serde_json::Map<String, serde_json::Value>,
    name_key: &str,
) -> Result<(String, Vec<(String, String)>, Vec<serde_json::Value>), ProfileError> {
    let mut name = None;
    let mut pairs = Vec::new();
    let mut events = Vec::new();
    for (key, value) in object {
        match (key.as_str(), value) {
            (k, serde_json::Value::String(s)) if k == name_key => {
                name = Some(s.to_ascii_lowercase())
            }
            ("events", serde_json::Value::Array(list)) => events = list,
            (_, serde_json::Value::String(s)) => pairs.push((key.to_ascii_lowercase(), s)),
            (_, serde_json::Value::Number(n)) => {
                pairs.push((key.to_ascii_lowercase(), n.to_string()))
            }
            (_, other) => {
                return Err(ProfileError::Json(format!(
                    "`{key}` must be a number or a string, found {other}"
                )));
            }
        }
    }
    let name = name.ok_or_else(|| ProfileError::Json(format!("missing \"{name_key}\"")))?;
    Ok((name, pairs, events))
}

fn check_duplicates(part: &'static str, pairs: &[(String, String)]) -> Result<(), ProfileError> {
    for (i, (key, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(earlier, _)| earlier == key) {
            return Err(ProfileError::DuplicateParam {
                part,
                param: key.clone(),
            });
        }
    }
    Ok(())
}

fn shape_from(name: &str, pairs: Vec<(String, String)>) -> Result<Shape, ProfileError> {
    let (part, example): (&'static str, &'static str) = match name {
        "constant" | "const" => ("constant", "constant:200"),
        "ramp" => ("ramp", "ramp:from=10,to=200,over=60s"),
        "sine" => ("sine", "sine:base=100,amp=80,period=60s"),
        "day" => ("day", "day:base=100,amp=80,period=60s"),
        "max" | "unlimited" => ("max", "max"),
        "spike" | "burst" => return Err(ProfileError::EventFirst(name.to_owned())),
        _ => return Err(ProfileError::UnknownShape(name.to_owned())),
    };
    check_duplicates(part, &pairs)?;
    let mut params = Params {
        part,
        example,
        pairs,
    };
    let shape = match part {
        "constant" => Shape::Constant {
            qps: params.required_number(&["qps", ""])?,
        },
        "ramp" => Shape::Ramp {
            from: params.required_number(&["from"])?,
            to: params.required_number(&["to"])?,
            over: params.required_duration("over")?,
        },
        "sine" | "day" => Shape::Sine {
            base: params.required_number(&["base"])?,
            amplitude: params.required_number(&["amp", "amplitude"])?,
            period: params.required_duration("period")?,
            phase: if part == "day" {
                DAY_PHASE
            } else {
                params.number(&["phase"])?.unwrap_or(0.0)
            },
        },
        _ => Shape::Unlimited,
    };
    params.finish()?;
    Ok(shape)
}

fn event_from(name: &str, pairs: Vec<(String, String)>) -> Result<Event, ProfileError> {
    let (part, example): (&'static str, &'static str) = match name {
        "spike" => ("spike", "spike:at=30s,len=5s,x=5"),
        "burst" => ("burst", "burst:at=30s,len=5s,qps=500"),
        "constant" | "const" | "ramp" | "sine" | "day" | "max" | "unlimited" => {
            return Err(ProfileError::ShapeAfterShape(name.to_owned()));
        }
        _ => return Err(ProfileError::UnknownEvent(name.to_owned())),
    };
    check_duplicates(part, &pairs)?;
    let mut params = Params {
        part,
        example,
        pairs,
    };
    let at = params.required_duration("at")?;
    let len = params.required_duration("len")?;
    let event = if part == "spike" {
        Event::Spike {
            at,
            len,
            factor: params.required_number(&["x", "factor"])?,
        }
    } else {
        Event::Burst {
            at,
            len,
            qps: params.required_number(&["qps"])?,
        }
    };
    params.finish()?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn constant_rate_and_integral() {
        let p = Profile::constant(200.0);
        assert_eq!(p.rate_at(secs(0.0)), 200.0);
        assert_eq!(p.rate_at(secs(1e6)), 200.0);
        assert!(close(p.expected_queries(secs(2.5)), 500.0));
    }

    #[test]
    fn ramp_climbs_then_holds() {
        let p = Profile::ramp(10.0, 110.0, secs(10.0));
        assert_eq!(p.rate_at(secs(0.0)), 10.0);
        assert!(close(p.rate_at(secs(5.0)), 60.0));
        assert_eq!(p.rate_at(secs(10.0)), 110.0);
        assert_eq!(p.rate_at(secs(99.0)), 110.0);
        // Trapezoid over the ramp, then a rectangle.
        assert!(close(p.expected_queries(secs(10.0)), 600.0));
        assert!(close(p.expected_queries(secs(12.0)), 820.0));
        let down = Profile::ramp(100.0, 0.0, secs(4.0));
        assert!(close(down.expected_queries(secs(8.0)), 200.0));
    }

    #[test]
    fn sine_oscillates_around_base() {
        let p = Profile::sine(100.0, 80.0, secs(60.0));
        assert!(close(p.rate_at(secs(0.0)), 100.0));
        assert!(close(p.rate_at(secs(15.0)), 180.0));
        assert!(close(p.rate_at(secs(45.0)), 20.0));
        // Whole periods average to the base.
        assert!(close(p.expected_queries(secs(120.0)), 12_000.0));
        // First quarter: 100*15 + 80*60/(2π).
        assert!(close(
            p.expected_queries(secs(15.0)),
            1500.0 + 80.0 * 60.0 / TAU
        ));
    }

    #[test]
    fn compressed_day_is_quiet_at_midnight_and_busy_at_noon() {
        let day = Profile::compressed_day(100.0, 90.0, secs(24.0));
        assert!(close(day.rate_at(secs(0.0)), 10.0));
        assert!(close(day.rate_at(secs(12.0)), 190.0));
        assert!(close(day.rate_at(secs(24.0)), 10.0));
        assert!(close(day.expected_queries(secs(24.0)), 2400.0));
        assert_eq!(day.to_string(), "day:base=100,amp=90,period=24s");
    }

    #[test]
    fn spikes_multiply_and_bursts_add_inside_their_window_only() {
        let p = Profile::constant(100.0)
            .with_spike(secs(10.0), secs(5.0), 5.0)
            .with_burst(secs(12.0), secs(10.0), 50.0);
        assert_eq!(p.rate_at(secs(9.999)), 100.0);
        assert_eq!(p.rate_at(secs(10.0)), 500.0);
        assert_eq!(p.rate_at(secs(12.0)), 750.0);
        assert_eq!(p.rate_at(secs(15.0)), 150.0);
        assert_eq!(p.rate_at(secs(22.0)), 100.0);
        // 100*30 + 400*5 (spike) + 50*10 (burst) + 50*4*3 (spike) ... computed piecewise:
        // [0,10) 1000, [10,12) 1000, [12,15) 2250, [15,22) 1050, [22,30) 800.
        assert!(close(p.expected_queries(secs(30.0)), 6100.0));
    }

    #[test]
    fn an_outage_spike_silences_even_an_unlimited_shape() {
        let p = Profile::unlimited().with_spike(secs(1.0), secs(1.0), 0.0);
        assert_eq!(p.rate_at(secs(0.5)), f64::INFINITY);
        assert_eq!(p.rate_at(secs(1.5)), 0.0);
        assert_eq!(p.expected_queries(Duration::ZERO), 0.0);
        assert_eq!(p.expected_queries(secs(0.5)), f64::INFINITY);
    }

    #[test]
    fn integral_matches_numeric_sampling() {
        let p: Profile = "sine:base=300,amp=250,period=7s,phase=0.1+spike:at=2s,len=1.5s,x=3\
                          +burst:at=3s,len=2s,qps=90+spike:at=3.2s,len=0.1s,x=0"
            .parse()
            .unwrap();
        let step = 1e-4;
        let mut sampled = 0.0;
        let mut t = step / 2.0;
        while t < 10.0 {
            sampled += p.rate_at(secs(t)) * step;
            t += step;
        }
        let exact = p.expected_queries(secs(10.0));
        assert!((sampled - exact).abs() < 1.0, "{sampled} vs {exact}");
    }

    #[test]
    fn short_forms_parse() {
        assert_eq!("constant:200".parse(), Ok(Profile::constant(200.0)));
        assert_eq!(" Constant : qps = 2.5 ".parse(), Ok(Profile::constant(2.5)));
        assert_eq!(
            "ramp:from=10,to=200,over=1m".parse(),
            Ok(Profile::ramp(10.0, 200.0, secs(60.0)))
        );
        assert_eq!("max".parse(), Ok(Profile::unlimited()));
        assert_eq!(
            "day:base=100,amp=80,period=2h".parse(),
            Ok(Profile::compressed_day(100.0, 80.0, secs(7200.0)))
        );
        assert_eq!(
            "constant:100+spike:at=30s,len=500ms,x=5+burst:at=1m,len=2s,qps=300".parse(),
            Ok(Profile::constant(100.0)
                .with_spike(secs(30.0), secs(0.5), 5.0)
                .with_burst(secs(60.0), secs(2.0), 300.0))
        );
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "constant:200",
            "ramp:from=10,to=200,over=1m",
            "sine:base=100,amp=80,period=1m30s",
            "sine:base=100,amp=80,period=1s500ms,phase=0.25",
            "day:base=50,amp=50,period=1d",
            "max+spike:at=1s,len=1s,x=0",
            "constant:0.5+burst:at=250ms,len=3s,qps=1000+spike:at=5s,len=1s,x=2.5",
        ] {
            let profile: Profile = text.parse().unwrap();
            assert_eq!(profile.to_string(), text);
            assert_eq!(profile.to_string().parse(), Ok(profile));
        }
    }

    #[test]
    fn json_form_parses() {
        let from_json = Profile::from_json(
            r#"{"shape":"ramp","from":1,"to":"9","over":30,
                "events":[{"event":"burst","at":"5s","len":"1s","qps":7}]}"#,
        );
        assert_eq!(
            from_json,
            Ok(Profile::ramp(1.0, 9.0, secs(30.0)).with_burst(secs(5.0), secs(1.0), 7.0))
        );
        assert_eq!(
            Profile::parse(r#"{"shape": "constant", "qps": 5}"#),
            Ok(Profile::constant(5.0))
        );
        assert_eq!(
            Profile::from_json(r#""constant:5""#),
            Ok(Profile::constant(5.0))
        );
    }

    #[test]
    fn bad_profiles_say_what_is_wrong() {
        let err = |text: &str| text.parse::<Profile>().unwrap_err().to_string();
        assert!(err("").starts_with("empty profile: use constant:200"));
        assert!(err("square:100").starts_with("unknown shape `square`"));
        assert_eq!(
            err("spike:at=30s,len=5s,x=5"),
            "`spike` changes a base rate, so it cannot come first: start with a shape, e.g. constant:100+spike:..."
        );
        assert_eq!(
            err("constant:1+constant:2"),
            "`constant` is a shape; after `+` come only events (spike, burst)"
        );
        assert!(err("constant:1+dip:at=1s").starts_with("unknown event `dip`"));
        assert_eq!(
            err("sine:base=100,amp=80"),
            "`sine` needs `period` (e.g. sine:base=100,amp=80,period=60s)"
        );
        assert_eq!(
            err("constant:200,burst=3"),
            "`constant` takes no `burst` (e.g. constant:200)"
        );
        assert_eq!(err("constant:fast"), "`=fast` is not a number");
        assert_eq!(err("constant:qps=fast"), "`qps=fast` is not a number");
        assert_eq!(err("constant:qps=NaN"), "`qps=NaN` is not a number");
        assert_eq!(
            err("ramp:from=1,to=2,over=soon"),
            "`over=soon` is not a duration (e.g. 30s, 500ms, 2m, 1h)"
        );
        assert_eq!(err("ramp:from=1,from=2"), "`ramp` has `from` twice");
        assert_eq!(
            err("constant:-5"),
            "constant rate -5 must be a finite number >= 0"
        );
        assert_eq!(
            err("sine:base=10,amp=20,period=1s"),
            "sine amp 20 exceeds base 10: the rate would go below zero"
        );
        assert_eq!(
            err("sine:base=10,amp=2,period=0s"),
            "sine period must be longer than 0s"
        );
        assert_eq!(
            err("constant:1+spike:at=1s,len=0s,x=2"),
            "spike x=2 must be a finite number >= 0 and its len > 0s"
        );
        assert!(err("{\"shape\": 3}").starts_with("profile JSON: missing \"shape\""));
        assert!(err("{nope").starts_with("profile JSON: "));
        assert!(
            err(r#"{"shape":"constant","qps":[1]}"#)
                .starts_with("profile JSON: `qps` must be a number or a string")
        );
    }
}
