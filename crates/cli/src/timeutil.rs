//! Times and durations as people type them: `1h30m`, `15s`, `2024-05-01T12:00:00Z`, `1714564800`.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

/// A Prometheus-style duration (`500ms`, `15s`, `5m`, `1h30m`, `2d`, `1w`, `1y`) or plain seconds
/// (`15`, `0.5`), as Prometheus accepts for `step`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || {
        format!("`{text}` is not a duration: use e.g. 500ms, 15s, 5m, 1h30m, 2d or plain seconds")
    };
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<f64>() {
        return if secs.is_finite() && secs >= 0.0 {
            Ok(Duration::from_secs_f64(secs))
        } else {
            Err(bad())
        };
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "w" => 7.0 * 86_400.0,
            "y" => 365.0 * 86_400.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += Duration::from_secs_f64(number * unit);
    }
    Ok(total)
}

/// A point in time: RFC 3339 (`2024-05-01T12:00:00Z`), unix seconds (`1714564800`, `1714564800.5`)
/// or `now`.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(Utc::now());
    }
    if let Ok(secs) = text.parse::<f64>()
        && secs.is_finite()
    {
        let millis = (secs * 1000.0).round() as i64;
        if let Some(t) = Utc.timestamp_millis_opt(millis).single() {
            return Ok(t);
        }
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!(
                "`{text}` is not a time: use RFC 3339 (2024-05-01T12:00:00Z), unix seconds or `now`"
            )
        })
}

/// `1h30m`-style text for a duration, for messages.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{}s", d.as_secs_f64());
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    out
}

/// Unix seconds (with fraction) to a UTC time.
pub fn from_unix(secs: f64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt((secs * 1000.0).round() as i64)
        .single()
        .unwrap_or_default()
}

/// RFC 3339 with milliseconds only when there are some.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    let fmt = if t.timestamp_subsec_millis() == 0 {
        chrono::SecondsFormat::Secs
    } else {
        chrono::SecondsFormat::Millis
    };
    t.to_rfc3339_opts(fmt, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "h", "5x", "-1", "1h-", "s5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn times() {
        let t = parse_time("2024-05-01T12:00:00Z").unwrap();
        assert_eq!(t.timestamp(), 1_714_564_800);
        assert_eq!(parse_time("1714564800").unwrap(), t);
        assert_eq!(
            parse_time("1714564800.25").unwrap().timestamp_millis(),
            1_714_564_800_250
        );
        assert_eq!(
            parse_time("2024-05-01T14:00:00+02:00").unwrap().timestamp(),
            1_714_564_800
        );
        assert!(parse_time("yesterday").is_err());
        assert_eq!(rfc3339(t), "2024-05-01T12:00:00Z");
    }
}
