//! Times and durations as people type them: `1h30m`, `15s`, `2024-05-01T12:00:00Z`, `1714564800`.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

/// A duration in promlearn's one grammar (`500ms`, `15s`, `1h30m`, `1.5h`, `2d`, plain seconds),
/// as clap's value parser wants it.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    promlearn_duration::parse(text).map_err(|e| e.to_string())
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

/// `1h30m`-style text for a duration, for messages (the shared grammar's format).
pub fn format_duration(d: Duration) -> String {
    promlearn_duration::format(d)
}

/// Unix milliseconds (the libraries' timestamps) to a UTC time.
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
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
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
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
