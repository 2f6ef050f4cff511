//! NAB's timestamps (`YYYY-MM-DD HH:MM:SS`, optionally `.ffffff`, no zone) to unix
//! milliseconds and back, read as UTC.

/// Parses `YYYY-MM-DD HH:MM:SS` with an optional fraction of a second (NAB's windows are written
/// `2014-04-10 07:15:00.000000`), as UTC, into unix milliseconds. A fraction is cut to whole
/// milliseconds. `None` when the text is not in that form or names no real date and time.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || (b[10] != b' ' && b[10] != b'T') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = &text[range];
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut millis = 0;
    if b.len() > 19 {
        let frac = &text[19..];
        let digits = frac.strip_prefix('.')?;
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        for (i, c) in digits.bytes().take(3).enumerate() {
            millis += i64::from(c - b'0') * [100, 10, 1][i];
        }
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Formats unix milliseconds as NAB writes timestamps: `YYYY-MM-DD HH:MM:SS` (UTC; milliseconds,
/// which NAB's files never have, are dropped).
pub fn format_timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60
    )
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nab_timestamps_are_utc_unix_milliseconds() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Some(0));
        // `date -u -d '2014-04-10 07:15:00' +%s` = 1397114100
        assert_eq!(
            parse_timestamp("2014-04-10 07:15:00"),
            Some(1_397_114_100_000)
        );
        assert_eq!(
            parse_timestamp("2014-04-10 07:15:00.000000"),
            Some(1_397_114_100_000)
        );
        assert_eq!(
            parse_timestamp("2016-02-29 23:59:59.5"),
            Some(1_456_790_399_500)
        );
        assert_eq!(parse_timestamp("2015-02-29 00:00:00"), None);
        assert_eq!(parse_timestamp("2014-04-10 24:00:00"), None);
        assert_eq!(parse_timestamp("2014-04-10"), None);
        assert_eq!(parse_timestamp("2014-04-10 07:15:00Z"), None);
    }

    #[test]
    fn formatting_inverts_parsing() {
        for text in [
            "1970-01-01 00:00:00",
            "2013-12-31 23:55:00",
            "2014-03-09 03:00:00",
            "2016-02-29 12:34:56",
            "1969-12-31 23:59:59",
        ] {
            let ms = parse_timestamp(text).expect("a valid timestamp");
            assert_eq!(format_timestamp(ms), text);
        }
    }
}
