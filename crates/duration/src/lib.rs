//! The one duration grammar of promlearn, shared by every command line flag, profile parameter and
//! configuration file: what Prometheus accepts for `step` and range selectors, plus fractions.
//!
//! A duration is one or more `<number><unit>` pairs, largest unit first as people write them
//! (`1h30m`, `2d12h`), with units `ms`, `s`, `m`, `h`, `d`, `w` (7 days) and `y` (365 days), as in
//! Prometheus. Two extensions, both unambiguous: a number may have a fraction (`1.5h`, `0.5s`), and a
//! bare number means seconds (`15`, `0.25`), as Prometheus's `step=` parameter reads it.
//! Nanoseconds (`ns`) and microseconds (`us`, `µs`) are accepted for the DNS load generator's pauses.
//!
//! ```
//! use std::time::Duration;
//!
//! assert_eq!(promlearn_duration::parse("1h30m")?, Duration::from_secs(5400));
//! assert_eq!(promlearn_duration::parse("1.5h")?, Duration::from_secs(5400));
//! assert_eq!(promlearn_duration::parse("90")?, Duration::from_secs(90));
//! assert_eq!(promlearn_duration::format(Duration::from_secs(5400)), "1h30m");
//! assert!(promlearn_duration::parse("5 minutes").is_err());
//! # Ok::<(), promlearn_duration::DurationError>(())
//! ```

use std::time::Duration;

/// A text that is not a duration, with what was wrong in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a duration: {reason} (write e.g. 500ms, 15s, 5m, 1h30m, 1.5h, 2d or plain seconds)"
)]
pub struct DurationError {
    /// The text as given.
    pub text: String,
    /// What was wrong with it.
    pub reason: &'static str,
}

/// Units in the order they must appear, with their length in seconds.
const UNITS: [(&str, f64); 10] = [
    ("y", 365.0 * 86_400.0),
    ("w", 7.0 * 86_400.0),
    ("d", 86_400.0),
    ("h", 3600.0),
    ("m", 60.0),
    ("s", 1.0),
    ("ms", 1e-3),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("ns", 1e-9),
];

/// Parses a duration in the grammar above. Negative, non-finite, empty, unit-less pairs after the
/// first (`1h30`), unknown units and units out of order (`30m1h`) are errors.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    let error = |reason| DurationError {
        text: text.to_owned(),
        reason,
    };
    if trimmed.is_empty() {
        return Err(error("it is empty"));
    }
    if trimmed.starts_with('-') {
        return Err(error("it is negative"));
    }
    if let Ok(seconds) = trimmed.parse::<f64>() {
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(error("it is not a finite, non-negative number"));
        }
        return Ok(Duration::from_secs_f64(seconds));
    }
    let mut total = 0.0_f64;
    let mut rest = trimmed;
    let mut last_unit = None::<usize>;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(error("a unit must follow a number"));
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| error("a number in it is malformed"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(error("a number lacks its unit"));
        }
        let unit = &rest[..unit_len];
        let position = UNITS
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or_else(|| error("it has an unknown unit"))?;
        if last_unit.is_some_and(|last| position <= last) {
            return Err(error(
                "its units must go from the largest to the smallest, each once",
            ));
        }
        last_unit = Some(position);
        total += number * UNITS[position].1;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(error("it is too long"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration so that [`parse`] reads it back exactly: the largest units first
/// (`1h30m`, `1m0.5s` is written `1m500ms`), `0s` for zero.
pub fn format(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut seconds = duration.as_secs();
    for (name, length) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if seconds >= length {
            out.push_str(&format!("{}{name}", seconds / length));
            seconds %= length;
        }
    }
    let nanos = duration.subsec_nanos();
    match (nanos % 1_000_000, nanos % 1000) {
        _ if nanos == 0 => {}
        (0, _) => out.push_str(&format!("{}ms", nanos / 1_000_000)),
        (_, 0) => out.push_str(&format!("{}us", nanos / 1000)),
        _ => out.push_str(&format!("{nanos}ns")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn reads_what_prometheus_accepts() {
        assert_eq!(parse("500ms"), Ok(secs(0.5)));
        assert_eq!(parse("15s"), Ok(secs(15.0)));
        assert_eq!(parse("5m"), Ok(secs(300.0)));
        assert_eq!(parse("1h30m"), Ok(secs(5400.0)));
        assert_eq!(parse("2d12h"), Ok(secs(216_000.0)));
        assert_eq!(parse("1w"), Ok(secs(604_800.0)));
        assert_eq!(parse("1y"), Ok(secs(31_536_000.0)));
        assert_eq!(parse("1m30s500ms"), Ok(secs(90.5)));
    }

    #[test]
    fn reads_fractions_and_plain_seconds() {
        assert_eq!(parse("1.5h"), Ok(secs(5400.0)));
        assert_eq!(parse("0.25"), Ok(secs(0.25)));
        assert_eq!(parse(" 30 "), Ok(secs(30.0)));
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
    }

    #[test]
    fn refuses_with_the_reason() {
        for (text, reason) in [
            ("", "it is empty"),
            ("-1s", "it is negative"),
            ("1 fortnight", "it has an unknown unit"),
            ("1h30", "a number lacks its unit"),
            (
                "30m1h",
                "its units must go from the largest to the smallest, each once",
            ),
            (
                "1m1m",
                "its units must go from the largest to the smallest, each once",
            ),
            ("h", "a unit must follow a number"),
            ("1..5s", "a number in it is malformed"),
            ("inf", "it is not a finite, non-negative number"),
        ] {
            assert_eq!(parse(text).map_err(|e| e.reason), Err(reason), "{text:?}");
        }
        let message = parse("5 minutes").unwrap_err().to_string();
        assert!(
            message.starts_with("`5 minutes` is not a duration"),
            "{message}"
        );
    }

    #[test]
    fn formats_what_it_reads_back() {
        for d in [
            secs(0.0),
            secs(0.5),
            secs(90.0),
            secs(5400.0),
            secs(86_400.0 + 1.0),
            Duration::from_micros(1500),
            Duration::from_nanos(7),
        ] {
            assert_eq!(parse(&format(d)), Ok(d), "{}", format(d));
        }
        assert_eq!(format(secs(5400.0)), "1h30m");
        assert_eq!(format(secs(0.5)), "500ms");
    }
}
