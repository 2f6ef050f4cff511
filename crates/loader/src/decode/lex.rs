//! The lexer: JSON strings, label sets, timestamps and sample values read straight from the bytes,
//! each returning `Ok(None)` when the value is not complete yet (the caller waits for more bytes).
//! Samples as Prometheus writes them take a one-pass path ([`fast_point`]: word-at-a-time digits,
//! exact float conversion) checked against the general one ([`parse_point`]) and
//! `str::parse::<f64>` in the tests; strings are scanned eight bytes at a time.

use crate::Labels;

#[inline]
pub(super) fn ws(b: &[u8], mut p: usize) -> usize {
    while p < b.len() && matches!(b[p], b' ' | b'\n' | b'\r' | b'\t') {
        p += 1;
    }
    p
}

pub(super) type Lex<T> = std::result::Result<Option<T>, (usize, String)>;

pub(super) struct StrSpan {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) escaped: bool,
    pub(super) next: usize,
}

/// Each byte of a word, set to `byte`.
const fn splat(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

/// The high bit of each byte of `x` below `n` (`n` <= 0x80) is set, exactly for the lowest such
/// byte (bytes above it may be flagged falsely, by the borrow): enough to find the first.
#[inline(always)]
fn below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(splat(n)) & !x & splat(0x80)
}

/// A mask whose lowest set bit is the high bit of the first `"`, `\` or control character in
/// the 8 bytes of `x` (read little-endian, so the first byte is the lowest); 0 when none.
#[inline(always)]
fn specials(x: u64) -> u64 {
    below(x ^ splat(b'"'), 1) | below(x ^ splat(b'\\'), 1) | below(x, 0x20)
}

/// Finds the end of the JSON string opening at `b[q] == '"'`.
#[inline]
pub(super) fn scan_str(b: &[u8], q: usize) -> Lex<StrSpan> {
    let start = q + 1;
    let mut p = start;
    let mut escaped = false;
    loop {
        // Eight bytes at a time up to the first byte that matters.
        while let Some(word) = b.get(p..p + 8) {
            let found = specials(u64::from_le_bytes(word.try_into().expect("8 bytes")));
            if found != 0 {
                p += (found.trailing_zeros() / 8) as usize;
                break;
            }
            p += 8;
        }
        let Some(&c) = b.get(p) else {
            return Ok(None);
        };
        match c {
            b'"' => {
                return Ok(Some(StrSpan {
                    start,
                    end: p,
                    escaped,
                    next: p + 1,
                }));
            }
            b'\\' => {
                escaped = true;
                p += 2;
                continue;
            }
            c if c < 0x20 => return Err((p, "a control character inside a string".into())),
            _ => {}
        }
        p += 1;
    }
}

pub(super) fn make_string(raw: &[u8], escaped: bool) -> std::result::Result<String, String> {
    if !escaped {
        return std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| "a string is not valid UTF-8".to_owned());
    }
    let text = std::str::from_utf8(raw).map_err(|_| "a string is not valid UTF-8".to_owned())?;
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('/') => out.push('/'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hex = |chars: &mut std::str::Chars| -> std::result::Result<u32, String> {
                    let digits: String = chars.by_ref().take(4).collect();
                    if digits.len() != 4 {
                        return Err("a short \\u escape".into());
                    }
                    u32::from_str_radix(&digits, 16).map_err(|_| "a bad \\u escape".into())
                };
                let first = hex(&mut chars)?;
                let code = if (0xD800..0xDC00).contains(&first) {
                    if chars.next() != Some('\\') || chars.next() != Some('u') {
                        return Err("an unpaired surrogate in a \\u escape".into());
                    }
                    let second = hex(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&second) {
                        return Err("an unpaired surrogate in a \\u escape".into());
                    }
                    0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                } else {
                    first
                };
                out.push(char::from_u32(code).ok_or("a \\u escape that is no character")?);
            }
            _ => return Err("an unknown escape in a string".into()),
        }
    }
    Ok(out)
}

/// `{"name":"value",...}` starting at `b[q] == '{'`. `pairs` is scratch space, kept between
/// label sets so that each set costs one allocation of its exact size besides its strings.
pub(super) fn parse_labels(
    b: &[u8],
    q: usize,
    pairs: &mut Vec<(String, String)>,
) -> Lex<(Labels, usize)> {
    pairs.clear();
    let mut p = ws(b, q + 1);
    if p >= b.len() {
        return Ok(None);
    }
    if b[p] == b'}' {
        return Ok(Some((Labels::default(), p + 1)));
    }
    loop {
        if p >= b.len() {
            return Ok(None);
        }
        if b[p] != b'"' {
            return Err((p, "expected a label name".into()));
        }
        let Some(name) = scan_str(b, p)? else {
            return Ok(None);
        };
        p = ws(b, name.next);
        if p >= b.len() {
            return Ok(None);
        }
        if b[p] != b':' {
            return Err((p, "expected `:` after a label name".into()));
        }
        p = ws(b, p + 1);
        if p >= b.len() {
            return Ok(None);
        }
        if b[p] != b'"' {
            return Err((p, "a label value must be a string".into()));
        }
        let Some(value) = scan_str(b, p)? else {
            return Ok(None);
        };
        let at = p;
        pairs.push((
            make_string(&b[name.start..name.end], name.escaped).map_err(|m| (at, m))?,
            make_string(&b[value.start..value.end], value.escaped).map_err(|m| (at, m))?,
        ));
        p = ws(b, value.next);
        if p >= b.len() {
            return Ok(None);
        }
        match b[p] {
            b',' => p = ws(b, p + 1),
            b'}' => {
                // Moved out into a vector of the exact size; the scratch keeps its capacity.
                let mut set = Vec::with_capacity(pairs.len());
                set.append(pairs);
                return Ok(Some((Labels::from_decoded(set), p + 1)));
            }
            _ => return Err((p, "expected `,` or `}` in a label set".into())),
        }
    }
}

/// A timestamp in seconds (`1435781451.781`) as exact integer milliseconds.
#[inline]
pub(super) fn parse_time(b: &[u8], q: usize) -> Lex<(i64, usize)> {
    let mut p = q;
    let negative = b.get(p) == Some(&b'-');
    if negative {
        p += 1;
    }
    let digits_start = p;
    let mut secs: i64 = 0;
    while p < b.len() && b[p].is_ascii_digit() {
        secs = secs
            .checked_mul(10)
            .and_then(|s| s.checked_add(i64::from(b[p] - b'0')))
            .ok_or_else(|| (q, "a timestamp out of range".to_owned()))?;
        p += 1;
    }
    if p == b.len() {
        return Ok(None);
    }
    if p == digits_start {
        return Err((q, "expected a timestamp".into()));
    }
    let mut millis: i64 = 0;
    if b[p] == b'.' {
        p += 1;
        let frac_start = p;
        let mut round_up = false;
        while p < b.len() && b[p].is_ascii_digit() {
            let i = p - frac_start;
            if i < 3 {
                millis = millis * 10 + i64::from(b[p] - b'0');
            } else if i == 3 {
                round_up = b[p] >= b'5';
            }
            p += 1;
        }
        if p == b.len() {
            return Ok(None);
        }
        let n = p - frac_start;
        if n == 0 {
            return Err((p, "a timestamp with an empty fraction".into()));
        }
        for _ in n..3 {
            millis *= 10;
        }
        if round_up {
            millis += 1;
        }
    }
    if matches!(b[p], b'e' | b'E') {
        // Exponent form: not what Prometheus sends, but valid JSON. Parse it as a float.
        p += 1;
        while p < b.len() && matches!(b[p], b'0'..=b'9' | b'+' | b'-') {
            p += 1;
        }
        if p == b.len() {
            return Ok(None);
        }
        let text = std::str::from_utf8(&b[q..p]).expect("ASCII");
        let seconds: f64 = text
            .parse()
            .map_err(|_| (q, format!("`{text}` is not a timestamp")))?;
        let ms = (seconds * 1000.0).round();
        if !ms.is_finite() || ms.abs() > 9.0e18 {
            return Err((q, "a timestamp out of range".into()));
        }
        return Ok(Some((ms as i64, p)));
    }
    let ms = secs
        .checked_mul(1000)
        .and_then(|s| s.checked_add(millis))
        .ok_or_else(|| (q, "a timestamp out of range".to_owned()))?;
    Ok(Some((if negative { -ms } else { ms }, p)))
}

/// A sample value as Prometheus formats it.
#[inline]
pub(super) fn parse_value(s: &[u8]) -> Option<f64> {
    // Integers (counters, byte counts) are most common: exact below 2^53.
    if !s.is_empty() && s.len() <= 15 && s.iter().all(u8::is_ascii_digit) {
        let mut n: u64 = 0;
        for &c in s {
            n = n * 10 + u64::from(c - b'0');
        }
        return Some(n as f64);
    }
    match s {
        b"NaN" => Some(f64::NAN),
        b"+Inf" | b"Inf" => Some(f64::INFINITY),
        b"-Inf" => Some(f64::NEG_INFINITY),
        _ => {
            // Rust's parser also takes "inf", "infinity" and "nan" in any case; the API never
            // sends those, so their acceptance is harmless.
            let text = std::str::from_utf8(s).ok()?;
            if text.starts_with([
                '+', '-', '.', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
            ]) {
                text.parse().ok()
            } else {
                None
            }
        }
    }
}

/// Powers of ten that are exact in an f64 (Clinger's fast path).
const EXACT_POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Reads at most `max` (at most 19) ASCII digits from `b[p..]` into `acc`: the new position and
/// the digit count.
#[inline(always)]
fn digits(b: &[u8], mut p: usize, acc: &mut u64, max: usize) -> (usize, usize) {
    let start = p;
    while let Some(&c) = b.get(p) {
        let d = c.wrapping_sub(b'0');
        if d > 9 || p - start == max {
            break;
        }
        *acc = *acc * 10 + u64::from(d);
        p += 1;
    }
    (p, p - start)
}

/// Eight ASCII digits at `b[p..p + 8]` as their value, in a few word operations (the first
/// digit is the lowest byte); `None` if any of the eight is not a digit or `b` ends first.
#[inline(always)]
fn eight_digits(b: &[u8], p: usize) -> Option<u64> {
    let x = u64::from_le_bytes(b.get(p..p + 8)?.try_into().expect("8 bytes"));
    // Every byte is 0x30..=0x39: its high nibble is 3, and adding 6 keeps it 3.
    let high = x & splat(0xF0);
    let carried = x.wrapping_add(splat(0x06)) & splat(0xF0);
    if high | (carried >> 4) != splat(0x33) {
        return None;
    }
    // Pairs, then quads, then the eight: 10 * first + second at each level.
    let v = x & splat(0x0F);
    let v = (v.wrapping_mul(10 << 8 | 1)) >> 8;
    let v = ((v & 0x00FF_00FF_00FF_00FF).wrapping_mul(100 << 16 | 1)) >> 16;
    Some(((v & 0x0000_FFFF_0000_FFFF).wrapping_mul(10_000 << 32 | 1)) >> 32)
}

/// The common case of a sample, `[<seconds>[.<1-3 digits>],"<decimal>"]` with no spaces, no
/// escape, no exponent and at most 19 digits in the value, read in one pass: `None` for
/// anything else (or a sample not complete in `b`), which [`parse_point`] then reads.
///
/// The value is exact: where its digits form an integer `m` up to 2^53 and its fraction has
/// `f <= 22` digits, `m` and `10^f` are exact f64s and one division rounds `m / 10^f` correctly,
/// as `str::parse::<f64>` does (Clinger's fast path); larger mantissas (up to 19 digits) are
/// read by `str::parse::<f64>` itself.
#[inline(always)]
pub(super) fn fast_point(b: &[u8], q: usize) -> Option<(i64, f64, usize)> {
    // `[`, the seconds, an optional fraction of 1 to 3 digits, `,"`.
    if b.get(q) != Some(&b'[') {
        return None;
    }
    // Seconds since 1973 have ten digits: the first eight in one go.
    let (mut secs, first) = match eight_digits(b, q + 1) {
        Some(eight) => (eight, 8),
        None => (0, 0),
    };
    let (mut p, n) = digits(b, q + 1 + first, &mut secs, 16 - first);
    let n = n + first;
    if n == 0 || n > 15 {
        return None;
    }
    let mut ms = secs * 1000;
    if b.get(p) == Some(&b'.') {
        let mut frac = 0;
        let (after, n) = digits(b, p + 1, &mut frac, 4);
        if n == 0 || n > 3 {
            return None;
        }
        ms += frac * [0, 100, 10, 1][n];
        p = after;
    }
    if b.get(p..p + 2) != Some(b",\"") {
        return None;
    }
    p += 2;
    // The value: `-`? digits (`.` digits)?, then `"]`.
    let text_start = p;
    let negative = b.get(p) == Some(&b'-');
    p += usize::from(negative);
    let mut m = 0;
    let (after_int, int_digits) = digits(b, p, &mut m, 19);
    p = after_int;
    let mut frac_digits = 0;
    if b.get(p) == Some(&b'.') {
        let (after, n) = digits(b, p + 1, &mut m, 19 - int_digits);
        frac_digits = n;
        p = after;
    }
    if int_digits + frac_digits == 0 || b.get(p..p + 2) != Some(b"\"]") {
        return None;
    }
    let v = if m <= 1 << 53 && frac_digits < EXACT_POWERS.len() {
        let v = m as f64 / EXACT_POWERS[frac_digits];
        if negative { -v } else { v }
    } else {
        // Full-precision values (`0.30000000000000004`, rates, ratios): the digits are known
        // to form a decimal, so std's parser (Eisel-Lemire) reads them without a second scan.
        std::str::from_utf8(&b[text_start..p]).ok()?.parse().ok()?
    };
    Some((ms as i64, v, p + 2))
}

/// `[<time>,"<value>"]` at `b[q] == '['`.
#[inline]
pub(super) fn parse_point(b: &[u8], q: usize) -> Lex<(i64, f64, usize)> {
    if q >= b.len() {
        return Ok(None);
    }
    if b[q] != b'[' {
        return Err((q, "expected a `[time, \"value\"]` sample".into()));
    }
    let p = ws(b, q + 1);
    if p >= b.len() {
        return Ok(None);
    }
    let Some((t, mut p)) = parse_time(b, p)? else {
        return Ok(None);
    };
    p = ws(b, p);
    if p >= b.len() {
        return Ok(None);
    }
    if b[p] != b',' {
        return Err((p, "expected `,` inside a sample".into()));
    }
    p = ws(b, p + 1);
    if p >= b.len() {
        return Ok(None);
    }
    if b[p] != b'"' {
        return Err((p, "a sample value must be a string".into()));
    }
    let Some(s) = scan_str(b, p)? else {
        return Ok(None);
    };
    let v = if s.escaped {
        let text = make_string(&b[s.start..s.end], true).map_err(|m| (p, m))?;
        parse_value(text.as_bytes())
    } else {
        parse_value(&b[s.start..s.end])
    }
    .ok_or_else(|| {
        (
            p,
            format!(
                "sample value `{}` is not a number",
                String::from_utf8_lossy(&b[s.start..s.end.min(s.start + 40)])
            ),
        )
    })?;
    let p = ws(b, s.next);
    if p >= b.len() {
        return Ok(None);
    }
    if b[p] != b']' {
        return Err((p, "expected `]` after a sample".into()));
    }
    Ok(Some((t, v, p + 1)))
}
