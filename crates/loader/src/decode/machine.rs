//! The push decoder's state machine: which JSON object and key it is in, what it skips, and when a
//! series is complete. Values themselves are read by the lexer ([`super::lex`]).

use super::lex::{
    fast_point, make_string, parse_labels, parse_point, parse_time, parse_value, scan_str, ws,
};
use super::{Envelope, Sink};
use crate::{
    Labels,
    error::{Attempts, DecodeError, Error, Result},
};

mod skip;

use skip::Skip;

/// Bytes of one unfinished JSON value (a string, a label set, a point) the decoder will hold.
const MAX_UNIT: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Obj {
    Top,
    Data,
    Series,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Key {
    Status,
    ErrorType,
    Error,
    Warnings,
    Infos,
    IsPartial,
    Data,
    ResultType,
    Result,
    Metric,
    Values,
    Value,
    /// Prometheus 3's native histogram samples: `histogram` (instant) or `histograms` (range).
    Histograms,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Strings {
    Warnings,
    Infos,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum St {
    Start,
    ObjKey { obj: Obj, first: bool },
    ObjNext { obj: Obj },
    Value { obj: Obj, key: Key },
    Skip { obj: Obj, skip: Skip },
    StrArr { which: Strings, first: bool },
    StrArrNext { which: Strings },
    ResultFirst,
    ResultElem,
    ResultNext,
    ValuesFirst { single: bool },
    ValuesNext,
    End,
}

/// A series object's progress: its labels may come after its values. The sink hears of a series
/// at its first float sample (or at its end), so that a series of native histograms alone can be
/// left out whole.
#[derive(Debug, Default)]
struct SeriesState {
    begun: bool,
    labels_seen: bool,
    pending: Vec<(i64, f64)>,
    /// Labels read, held until the first float sample or the series' end.
    labels: Option<Labels>,
    /// The series has a `histogram`/`histograms` key (native histogram samples, not read).
    histograms: bool,
}

/// The warning for a series whose native histogram samples were left out.
fn histogram_warning(labels: Option<&Labels>, whole: bool) -> String {
    let which = labels.map_or_else(|| "a series".to_owned(), |l| format!("series {l}"));
    let what = if whole {
        "it was left out of the answer"
    } else {
        "its float samples were kept, its histogram samples left out"
    };
    format!(
        "{which} holds native histogram samples, which the loader does not read ({what}); \
         ask for floats instead, e.g. histogram_count(...), histogram_sum(...) or \
         histogram_quantile(0.9, ...)"
    )
}

/// The push decoder: [`Decoder::feed`] it body pieces, then [`Decoder::finish`].
#[derive(Debug)]
pub struct Decoder<S> {
    sink: S,
    buf: Vec<u8>,
    consumed: u64,
    state: St,
    env: Envelope,
    series: SeriesState,
    /// Scratch space for the label set being read.
    pairs: Vec<(String, String)>,
}

type Step = std::result::Result<Option<usize>, Error>;

impl<S: Sink> Decoder<S> {
    /// A decoder at the start of a body, handing series and points to `sink`.
    pub fn new(sink: S) -> Decoder<S> {
        Decoder {
            sink,
            buf: Vec::new(),
            consumed: 0,
            state: St::Start,
            env: Envelope::default(),
            series: SeriesState::default(),
            pairs: Vec::new(),
        }
    }

    /// The envelope as decoded so far (its `status` is known early; `warnings` come last).
    pub fn envelope(&self) -> &Envelope {
        &self.env
    }

    /// Bytes fed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.consumed + self.buf.len() as u64
    }

    /// Decodes as much of `bytes` as completes; keeps the unfinished tail for the next call.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<()> {
        // The last piece's unfinished value is completed with as few of these bytes as it needs
        // (a sample is a few dozen; twice as many each try), so that the rest of the piece is
        // read where it lies instead of being copied behind it. `bytes[..at]` are in `buf`.
        let mut at = 0;
        let mut take = 64;
        while !self.buf.is_empty() && at < bytes.len() {
            let k = take.min(bytes.len() - at);
            take *= 2;
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(&bytes[at..at + k]);
            at += k;
            let used = match self.run(&buf) {
                Ok(used) => used,
                Err(e) => {
                    self.buf = buf;
                    return Err(e);
                }
            };
            self.consumed += used as u64;
            let left = buf.len() - used;
            if left <= at {
                // Only bytes of this piece are left: they are read in place below.
                at -= left;
                buf.clear();
            } else {
                buf.drain(..used);
            }
            self.buf = buf;
        }
        if self.buf.is_empty() {
            let rest = &bytes[at..];
            let used = self.run(rest)?;
            self.consumed += used as u64;
            self.buf.extend_from_slice(&rest[used..]);
        }
        if self.buf.len() > MAX_UNIT {
            return Err(self.malformed(0, "a single JSON value is larger than 64 MiB"));
        }
        Ok(())
    }

    /// Ends the body: the document must be complete. Returns the envelope and the sink.
    pub fn finish(self) -> Result<(Envelope, S)> {
        if self.state != St::End {
            if self.bytes_seen() == 0 {
                return Err(Error::Decode {
                    url: "the answer".into(),
                    source: DecodeError {
                        offset: 0,
                        message: "the body is empty".into(),
                    },
                });
            }
            return Err(Error::Truncated {
                endpoint: "the server".into(),
                attempts: Attempts(1),
            });
        }
        Ok((self.env, self.sink))
    }

    fn malformed(&self, at: usize, message: impl Into<String>) -> Error {
        Error::Decode {
            url: "the answer".into(),
            source: DecodeError {
                offset: self.consumed + at as u64,
                message: message.into(),
            },
        }
    }

    /// Runs the state machine over `b`; returns how many bytes were fully used.
    fn run(&mut self, b: &[u8]) -> Result<usize> {
        let mut p = 0;
        loop {
            let step = match self.state {
                St::Start => self.start(b, p),
                St::ObjKey { obj, first } => self.obj_key(b, p, obj, first),
                St::ObjNext { obj } => self.obj_next(b, p, obj),
                St::Value { obj, key } => self.value(b, p, obj, key),
                St::Skip { obj, skip } => self.skip(b, p, obj, skip),
                St::StrArr { which, first } => self.str_arr(b, p, which, first),
                St::StrArrNext { which } => self.str_arr_next(b, p, which),
                St::ResultFirst => self.result_first(b, p),
                St::ResultElem => self.result_elem(b, p),
                St::ResultNext => self.result_next(b, p),
                St::ValuesFirst { single } => self.values_first(b, p, single),
                St::ValuesNext => self.values_next(b, p),
                St::End => {
                    let q = ws(b, p);
                    if q < b.len() {
                        return Err(self.malformed(q, "data after the end of the JSON document"));
                    }
                    return Ok(q);
                }
            }?;
            match step {
                Some(next) => p = next,
                None => return Ok(p),
            }
        }
    }

    /// Peeks the next non-space byte; `None` when the buffer ends first.
    #[inline]
    fn peek(b: &[u8], p: usize) -> Option<(usize, u8)> {
        let q = ws(b, p);
        b.get(q).map(|&c| (q, c))
    }

    fn start(&mut self, b: &[u8], p: usize) -> Step {
        let Some((q, c)) = Self::peek(b, p) else {
            return Ok(None);
        };
        if c != b'{' {
            return Err(self.malformed(q, "expected a JSON object"));
        }
        self.state = St::ObjKey {
            obj: Obj::Top,
            first: true,
        };
        Ok(Some(q + 1))
    }

    fn obj_key(&mut self, b: &[u8], p: usize, obj: Obj, first: bool) -> Step {
        let Some((q, c)) = Self::peek(b, p) else {
            return Ok(None);
        };
        if c == b'}' && first {
            return self.close_obj(obj).map(|()| Some(q + 1));
        }
        if c != b'"' {
            return Err(self.malformed(q, "expected an object key"));
        }
        let Some(s) = scan_str(b, q).map_err(|(at, m)| self.malformed(at, m))? else {
            return Ok(None);
        };
        let Some((colon, c)) = Self::peek(b, s.next) else {
            return Ok(None);
        };
        if c != b':' {
            return Err(self.malformed(colon, "expected `:` after an object key"));
        }
        let raw = &b[s.start..s.end];
        let key = match (obj, raw) {
            (Obj::Top, b"status") => Key::Status,
            (Obj::Top, b"errorType") => Key::ErrorType,
            (Obj::Top, b"error") => Key::Error,
            (Obj::Top, b"warnings") => Key::Warnings,
            (Obj::Top, b"infos") => Key::Infos,
            (Obj::Top, b"isPartial") => Key::IsPartial,
            (Obj::Top, b"data") => Key::Data,
            (Obj::Data, b"resultType") => Key::ResultType,
            (Obj::Data, b"result") => Key::Result,
            (Obj::Series, b"metric") => Key::Metric,
            (Obj::Series, b"values") => Key::Values,
            (Obj::Series, b"value") => Key::Value,
            (Obj::Series, b"histogram" | b"histograms") => Key::Histograms,
            _ => Key::Other,
        };
        self.state = St::Value { obj, key };
        Ok(Some(colon + 1))
    }

    fn close_obj(&mut self, obj: Obj) -> Result<()> {
        self.state = match obj {
            Obj::Top => St::End,
            Obj::Data => St::ObjNext { obj: Obj::Top },
            Obj::Series => {
                let labels = self.series.labels.take();
                if !self.series.begun && self.series.histograms && self.series.pending.is_empty() {
                    // Native histograms and no float sample: refused whole, with a warning.
                    self.env
                        .warnings
                        .push(histogram_warning(labels.as_ref(), true));
                } else {
                    if !self.series.begun {
                        self.begin_series(labels.unwrap_or_default())?;
                    } else if self.series.histograms {
                        self.env
                            .warnings
                            .push(histogram_warning(labels.as_ref(), false));
                    }
                    self.sink.end_series()?;
                }
                self.series = SeriesState {
                    pending: std::mem::take(&mut self.series.pending),
                    ..SeriesState::default()
                };
                St::ResultNext
            }
        };
        Ok(())
    }

    fn obj_next(&mut self, b: &[u8], p: usize, obj: Obj) -> Step {
        let Some((q, c)) = Self::peek(b, p) else {
            return Ok(None);
        };
        match c {
            b',' => {
                self.state = St::ObjKey { obj, first: false };
                Ok(Some(q + 1))
            }
            b'}' => self.close_obj(obj).map(|()| Some(q + 1)),
            _ => Err(self.malformed(q, "expected `,` or `}` in an object")),
        }
    }

    fn string_value(
        &mut self,
        b: &[u8],
        q: usize,
    ) -> std::result::Result<Option<(String, usize)>, Error> {
        let Some(s) = scan_str(b, q).map_err(|(at, m)| self.malformed(at, m))? else {
            return Ok(None);
        };
        let text = make_string(&b[s.start..s.end], s.escaped).map_err(|m| self.malformed(q, m))?;
        Ok(Some((text, s.next)))
    }

    fn value(&mut self, b: &[u8], p: usize, obj: Obj, key: Key) -> Step {
        let Some((q, c)) = Self::peek(b, p) else {
            return Ok(None);
        };
        let next_in = |obj| St::ObjNext { obj };
        let skip = St::Skip {
            obj,
            skip: Skip::default(),
        };
        match key {
            Key::Status | Key::ErrorType | Key::Error | Key::ResultType => {
                if c != b'"' {
                    self.state = skip;
                    return Ok(Some(q));
                }
                let Some((text, next)) = self.string_value(b, q)? else {
                    return Ok(None);
                };
                let slot = match key {
                    Key::Status => &mut self.env.status,
                    Key::ErrorType => &mut self.env.error_type,
                    Key::Error => &mut self.env.error,
                    _ => &mut self.env.result_type,
                };
                *slot = Some(text);
                self.state = next_in(obj);
                Ok(Some(next))
            }
            Key::Warnings | Key::Infos => {
                if c != b'[' {
                    self.state = skip;
                    return Ok(Some(q));
                }
                let which = if key == Key::Warnings {
                    Strings::Warnings
                } else {
                    Strings::Infos
                };
                self.state = St::StrArr { which, first: true };
                Ok(Some(q + 1))
            }
            Key::IsPartial => {
                if b.len() < q + 4 {
                    return Ok(None);
                }
                if &b[q..q + 4] == b"true" {
                    self.env.warnings.push(
                        "the server marked this answer partial (isPartial: true): some of its \
                         storage did not answer, so series or samples may be missing"
                            .into(),
                    );
                }
                self.state = skip;
                Ok(Some(q))
            }
            Key::Data if c == b'{' => {
                self.state = St::ObjKey {
                    obj: Obj::Data,
                    first: true,
                };
                Ok(Some(q + 1))
            }
            Key::Result if c == b'[' => {
                self.state = St::ResultFirst;
                Ok(Some(q + 1))
            }
            Key::Metric => {
                if c != b'{' {
                    return Err(self.malformed(q, "a series' `metric` must be an object"));
                }
                let Some((labels, next)) =
                    parse_labels(b, q, &mut self.pairs).map_err(|(at, m)| self.malformed(at, m))?
                else {
                    return Ok(None);
                };
                if self.series.labels_seen {
                    return Err(self.malformed(q, "a series has two `metric` objects"));
                }
                self.series.labels_seen = true;
                if self.series.pending.is_empty() {
                    self.series.labels = Some(labels);
                } else {
                    self.begin_series(labels)?;
                }
                self.state = next_in(obj);
                Ok(Some(next))
            }
            Key::Values if c == b'[' => {
                self.state = St::ValuesFirst { single: false };
                Ok(Some(q + 1))
            }
            Key::Value if c == b'[' => {
                self.state = St::ValuesFirst { single: true };
                Ok(Some(q))
            }
            Key::Values | Key::Value => {
                Err(self.malformed(q, "a series' samples must be an array"))
            }
            Key::Histograms => {
                self.series.histograms = true;
                self.state = skip;
                Ok(Some(q))
            }
            Key::Data | Key::Result | Key::Other => {
                self.state = skip;
                Ok(Some(q))
            }
        }
    }

    fn begin_series(&mut self, labels: Labels) -> Result<()> {
        self.series.begun = true;
        self.env.series += 1;
        self.sink.begin_series(labels)?;
        for (t, v) in std::mem::take(&mut self.series.pending) {
            self.sink.point(t, v)?;
        }
        Ok(())
    }

    #[inline]
    fn emit(&mut self, t: i64, v: f64) -> Result<()> {
        self.env.points += 1;
        if self.series.begun {
            self.sink.point(t, v)
        } else if let Some(labels) = self.series.labels.take() {
            self.begin_series(labels)?;
            self.sink.point(t, v)
        } else {
            self.series.pending.push((t, v));
            Ok(())
        }
    }

    fn str_arr(&mut self, b: &[u8], p: usize, which: Strings, first: bool) -> Step {
        let Some((q, c)) = Self::peek(b, p) else {
            return Ok(None);
        };
        if c == b']' && first {
            self.state = St::ObjNext { obj: Obj::Top };
            return Ok(Some(q + 1));
        }
        if c != b'"' {
            return Err(self.malformed(q, "expected a string in `warnings`/`infos`"));
        }
        let Some((text, next)) = self.string_value(b, q)? else {
            return Ok(None);
        };
        match which {
            Strings::Warnings => self.env.warnings.push(text),
            Strings::Infos => self.env.infos.push(text),
        }
        self.state = St::StrArrNext { which };
        Ok(Some(next))
    }

    fn str_arr_next(&mut self, b: &[u8], p: usize, which: Strings) -> Step {
        let Some((q, c)) = Self::peek(b, p) else {
            return Ok(None);
        };
        match c {
            b',' => {
                self.state = St::StrArr {
                    which,
                    first: false,
                };
                Ok(Some(q + 1))
            }
            b']' => {
                self.state = St::ObjNext { obj: Obj::Top };
                Ok(Some(q + 1))
            }
            _ => Err(self.malformed(q, "expected `,` or `]` in a string array")),
        }
    }

    fn open_series(&mut self, q: usize) -> Step {
        self.series.begun = false;
        self.series.labels_seen = false;
        self.series.pending.clear();
        self.series.labels = None;
        self.series.histograms = false;
        self.state = St::ObjKey {
            obj: Obj::Series,
            first: true,
        };
        Ok(Some(q + 1))
    }

    fn result_first(&mut self, b: &[u8], p: usize) -> Step {
        let Some((q, c)) = Self::peek(b, p) else {
            return Ok(None);
        };
        match c {
            b']' => {
                self.state = St::ObjNext { obj: Obj::Data };
                Ok(Some(q + 1))
            }
            b'{' => self.open_series(q),
            b'-' | b'0'..=b'9' => {
                // A scalar or string result: `[<time>, "<value>"]`, whose `[` is already used.
                let Some((t, after_t)) =
                    parse_time(b, q).map_err(|(at, m)| self.malformed(at, m))?
                else {
                    return Ok(None);
                };
                let Some((comma, c)) = Self::peek(b, after_t) else {
                    return Ok(None);
                };
                if c != b',' {
                    return Err(self.malformed(comma, "expected `,` in a scalar result"));
                }
                let Some((vq, c)) = Self::peek(b, comma + 1) else {
                    return Ok(None);
                };
                if c != b'"' {
                    return Err(self.malformed(vq, "a scalar's value must be a string"));
                }
                let Some((text, after_v)) = self.string_value(b, vq)? else {
                    return Ok(None);
                };
                let Some((close, c)) = Self::peek(b, after_v) else {
                    return Ok(None);
                };
                if c != b']' {
                    return Err(self.malformed(close, "expected `]` after a scalar result"));
                }
                if self.env.result_type.as_deref() == Some("string") {
                    self.env.string = Some((t, text));
                } else {
                    let v = parse_value(text.as_bytes())
                        .ok_or_else(|| self.malformed(vq, format!("`{text}` is not a number")))?;
                    self.env.scalar = Some((t, v));
                }
                self.state = St::ObjNext { obj: Obj::Data };
                Ok(Some(close + 1))
            }
            _ => Err(self.malformed(q, "expected a series object in `result`")),
        }
    }

    fn result_elem(&mut self, b: &[u8], p: usize) -> Step {
        let Some((q, c)) = Self::peek(b, p) else {
            return Ok(None);
        };
        if c != b'{' {
            return Err(self.malformed(q, "expected a series object in `result`"));
        }
        self.open_series(q)
    }

    fn result_next(&mut self, b: &[u8], p: usize) -> Step {
        let Some((q, c)) = Self::peek(b, p) else {
            return Ok(None);
        };
        match c {
            b',' => {
                self.state = St::ResultElem;
                Ok(Some(q + 1))
            }
            b']' => {
                self.state = St::ObjNext { obj: Obj::Data };
                Ok(Some(q + 1))
            }
            _ => Err(self.malformed(q, "expected `,` or `]` after a series")),
        }
    }

    fn values_first(&mut self, b: &[u8], p: usize, single: bool) -> Step {
        let Some((q, c)) = Self::peek(b, p) else {
            return Ok(None);
        };
        if c == b']' && !single {
            self.state = St::ObjNext { obj: Obj::Series };
            return Ok(Some(q + 1));
        }
        let point = match fast_point(b, q) {
            Some(point) => point,
            None => match parse_point(b, q).map_err(|(at, m)| self.malformed(at, m))? {
                Some(point) => point,
                None => return Ok(None),
            },
        };
        let (t, v, next) = point;
        self.emit(t, v)?;
        self.state = if single {
            St::ObjNext { obj: Obj::Series }
        } else {
            St::ValuesNext
        };
        Ok(Some(next))
    }

    /// The hot loop: `,[t,"v"]` repeated, then `]`.
    fn values_next(&mut self, b: &[u8], start: usize) -> Step {
        let mut p = start;
        loop {
            // Samples as Prometheus writes them, read in one pass.
            while b.get(p) == Some(&b',') {
                let Some((t, v, next)) = fast_point(b, p + 1) else {
                    break;
                };
                self.emit(t, v)?;
                p = next;
            }
            let Some((q, c)) = Self::peek(b, p) else {
                return Ok((p > start).then_some(p));
            };
            match c {
                b',' => {
                    let at = ws(b, q + 1);
                    let Some((t, v, next)) =
                        parse_point(b, at).map_err(|(at, m)| self.malformed(at, m))?
                    else {
                        // Keep from the comma on: it is read again with the rest of the sample.
                        return Ok((q > start).then_some(q));
                    };
                    self.emit(t, v)?;
                    p = next;
                }
                b']' => {
                    self.state = St::ObjNext { obj: Obj::Series };
                    return Ok(Some(q + 1));
                }
                _ => return Err(self.malformed(q, "expected `,` or `]` between samples")),
            }
        }
    }
}
