//! The two written forms of a profile: the short form CLIs take
//! (`sine:base=100,amp=80,period=60s+spike:at=30s,len=5s,x=5`), which `Display` prints back
//! exactly, and the JSON form of configuration files.

use std::{fmt, str::FromStr, time::Duration};

use super::{DAY_PHASE, Event, Profile, ProfileError, Shape};

impl Profile {
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
