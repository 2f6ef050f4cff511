//! A plain PromQL series selector (`name{label="v", other=~"re"}`) read into label matchers.
//!
//! Remote read and VictoriaMetrics' export take matchers, not PromQL. Only the selector grammar
//! is read here: a metric name and/or braces of matchers (`=`, `!=`, `=~`, `!~`), strings in
//! double or single quotes (Go's escapes) or backticks, quoted UTF-8 names as Prometheus 3
//! writes them (`{"a.b", "x.y"="v"}`). Anything else (functions, `offset`, `@`, a range) is not a
//! plain selector: [`parse`] says `None`, and the loader asks the PromQL API, which judges it.

use super::proto::{LabelMatcher, MatchType};

/// The matchers of a plain selector, or `None` if `text` is anything else.
///
/// ```
/// use promlearn_loader::remote_read::{parse_selector, proto::MatchType};
///
/// let m = parse_selector(r#"up{job=~"node|coredns", instance!="a\"b"}"#).unwrap();
/// assert_eq!((m[0].name.as_str(), m[0].value.as_str()), ("__name__", "up"));
/// assert_eq!(m[1].r#type, MatchType::Re as i32);
/// assert_eq!(m[2].value, "a\"b");
/// assert!(parse_selector("rate(up[5m])").is_none());
/// ```
pub fn parse(text: &str) -> Option<Vec<LabelMatcher>> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let mut matchers = Vec::new();
    p.space();
    if let Some(name) = p.identifier(true) {
        matchers.push(eq("__name__", name));
        p.space();
    }
    if p.eat(b'{') {
        loop {
            p.space();
            if p.eat(b'}') {
                break;
            }
            let quoted = matches!(p.peek()?, b'"' | b'\'' | b'`');
            let name = match quoted {
                true => p.string()?,
                false => p.identifier(false)?.to_owned(),
            };
            p.space();
            let op = if p.eat(b'=') {
                if p.eat(b'~') {
                    MatchType::Re
                } else {
                    MatchType::Eq
                }
            } else if p.eat(b'!') {
                if p.eat(b'=') {
                    MatchType::Neq
                } else if p.eat(b'~') {
                    MatchType::Nre
                } else {
                    return None;
                }
            } else if quoted && matches!(p.peek()?, b',' | b'}') {
                // A quoted name alone is the metric name (Prometheus 3).
                matchers.push(eq("__name__", &name));
                p.space();
                if !p.eat(b',') && p.peek()? != b'}' {
                    return None;
                }
                continue;
            } else {
                return None;
            };
            p.space();
            let value = p.string()?;
            matchers.push(LabelMatcher {
                r#type: op as i32,
                name,
                value,
            });
            p.space();
            if !p.eat(b',') && p.peek()? != b'}' {
                return None;
            }
        }
        p.space();
    }
    (p.i == p.s.len() && !matchers.is_empty()).then_some(matchers)
}

fn eq(name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: MatchType::Eq as i32,
        name: name.to_owned(),
        value: value.to_owned(),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        self.i += usize::from(hit);
        hit
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// A metric name (`colons` allowed) or label name, unquoted.
    fn identifier(&mut self, colons: bool) -> Option<&'a str> {
        let start = self.i;
        while let Some(b) = self.peek() {
            let ok = b.is_ascii_alphabetic()
                || b == b'_'
                || (colons && b == b':')
                || (self.i > start && b.is_ascii_digit());
            if !ok {
                break;
            }
            self.i += 1;
        }
        let word = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        // Keywords that make an expression, not a selector.
        let keyword = matches!(
            word,
            "offset" | "by" | "without" | "on" | "ignoring" | "bool" | "and" | "or" | "unless"
        );
        (!(word.is_empty() || colons && keyword)).then_some(word)
    }

    /// A quoted string with Go's escapes, or a raw backtick string.
    fn string(&mut self) -> Option<String> {
        let quote = self.peek()?;
        if !matches!(quote, b'"' | b'\'' | b'`') {
            return None;
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let b = self.peek()?;
            self.i += 1;
            if b == quote {
                return String::from_utf8(out).ok();
            }
            if b != b'\\' || quote == b'`' {
                if b == b'\n' && quote != b'`' {
                    return None;
                }
                out.push(b);
                continue;
            }
            let e = self.peek()?;
            self.i += 1;
            let simple = match e {
                b'a' => Some(7),
                b'b' => Some(8),
                b'f' => Some(12),
                b'n' => Some(b'\n'),
                b'r' => Some(b'\r'),
                b't' => Some(b'\t'),
                b'v' => Some(11),
                b'\\' => Some(b'\\'),
                b'"' if quote == b'"' => Some(b'"'),
                b'\'' if quote == b'\'' => Some(b'\''),
                _ => None,
            };
            if let Some(c) = simple {
                out.push(c);
                continue;
            }
            let (digits, radix) = match e {
                b'x' => (2, 16),
                b'u' => (4, 16),
                b'U' => (8, 16),
                b'0'..=b'7' => {
                    self.i -= 1;
                    (3, 8)
                }
                _ => return None,
            };
            let text = std::str::from_utf8(self.s.get(self.i..self.i + digits)?).ok()?;
            let code = u32::from_str_radix(text, radix).ok()?;
            self.i += digits;
            if e == b'x' || radix == 8 {
                out.push(u8::try_from(code).ok()?);
            } else {
                let mut buf = [0u8; 4];
                out.extend_from_slice(char::from_u32(code)?.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(text: &str) -> Option<Vec<(i32, String, String)>> {
        parse(text).map(|m| m.into_iter().map(|m| (m.r#type, m.name, m.value)).collect())
    }

    #[test]
    fn selectors_become_matchers() {
        let m = show(r#" known_gauge { series = "a" , extra!~'x\'y', } "#).unwrap();
        assert_eq!(
            m,
            [
                (0, "__name__".into(), "known_gauge".into()),
                (0, "series".into(), "a".into()),
                (3, "extra".into(), "x'y".into())
            ]
        );
        let m = show(r#"{__name__=~"a|b",job!=`c\d`}"#).unwrap();
        assert_eq!(m[1], (1, "job".into(), "c\\d".into()));
        let m = show(r#"{"a.b", "x.y"="v\u00e9\x41\101"}"#).unwrap();
        assert_eq!(m[0], (0, "__name__".into(), "a.b".into()));
        assert_eq!(m[1], (0, "x.y".into(), "véAA".into()));
        assert_eq!(show("ns:metric:rate5m").unwrap()[0].2, "ns:metric:rate5m");
    }

    #[test]
    fn expressions_are_not_selectors() {
        for text in [
            "rate(up[5m])",
            "up[5m]",
            "up offset 5m",
            "up @ 100",
            "sum(up)",
            "up + 1",
            "{}",
            "",
            "up{job=\"a\"",
            "up{job=a}",
            "up{job=\"a\" b=\"c\"}",
            "offset",
            "1",
        ] {
            assert!(parse(text).is_none(), "{text}");
        }
    }
}
