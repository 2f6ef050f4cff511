//! A streaming decoder for Prometheus HTTP API answers (`/api/v1/query`, `/api/v1/query_range`).
//!
//! It is fed the body in whatever pieces the network delivers and hands each series' labels and
//! points to a [`Sink`] as soon as they are complete, without building a JSON tree: memory stays
//! bounded by the sink's own storage plus one unfinished JSON value. It follows the API's format:
//! timestamps are seconds with a millisecond fraction (`1435781451.781`), decoded exactly into
//! integer milliseconds; values are strings (`"1"`, `"1e-07"`, `"NaN"`, `"+Inf"`, `"-Inf"`);
//! `status: "error"` carries `errorType` and `error`; `warnings` (and Prometheus 3's `infos`) are
//! kept. Keys may come in any order; unknown keys (VictoriaMetrics' `stats`, native-histogram
//! `histograms`, ...) are skipped without being buffered.
//!
//! ```
//! use promlearn_loader::decode::decode;
//!
//! let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
//!     {"metric":{"__name__":"up","job":"prometheus"},"values":[[1700000000,"1"],[1700000001.5,"NaN"]]}]},
//!     "warnings":["careful"]}"#;
//! let answer = decode(body)?;
//! assert_eq!(answer.result_type, "matrix");
//! assert_eq!(answer.series[0].labels.get("job"), Some("prometheus"));
//! assert_eq!(answer.series[0].timestamps, [1_700_000_000_000, 1_700_000_001_500]);
//! assert!(answer.series[0].values[1].is_nan());
//! assert_eq!(answer.warnings, ["careful"]);
//! # Ok::<(), promlearn_loader::Error>(())
//! ```

use crate::{
    Labels,
    error::{Attempts, DecodeError, Error, Result},
};

/// Where decoded series go. Points of a series arrive in the server's order (ascending time).
pub trait Sink {
    /// A series starts; its points follow until [`Sink::end_series`].
    fn begin_series(&mut self, labels: Labels) -> Result<()>;
    /// One sample of the current series, in integer milliseconds.
    fn point(&mut self, timestamp_ms: i64, value: f64) -> Result<()>;
    /// The current series is complete.
    fn end_series(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The parts of an answer other than its series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    /// `"success"` or `"error"`.
    pub status: Option<String>,
    pub error_type: Option<String>,
    pub error: Option<String>,
    /// The server's `warnings` (and VictoriaMetrics' `isPartial: true`, as a warning).
    pub warnings: Vec<String>,
    /// Prometheus 3's `infos`.
    pub infos: Vec<String>,
    /// `matrix`, `vector`, `scalar` or `string`.
    pub result_type: Option<String>,
    /// The value of a `scalar` result.
    pub scalar: Option<(i64, f64)>,
    /// The value of a `string` result.
    pub string: Option<(i64, String)>,
    /// Series and points seen.
    pub series: usize,
    pub points: u64,
}

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
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Strings {
    Warnings,
    Infos,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Skip {
    started: bool,
    scalar: bool,
    depth: u32,
    in_str: bool,
    escaped: bool,
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

/// A series object's progress: its labels may come after its values.
#[derive(Debug, Default)]
struct SeriesState {
    begun: bool,
    labels_seen: bool,
    pending: Vec<(i64, f64)>,
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
}

type Step = std::result::Result<Option<usize>, Error>;

impl<S: Sink> Decoder<S> {
    pub fn new(sink: S) -> Decoder<S> {
        Decoder {
            sink,
            buf: Vec::new(),
            consumed: 0,
            state: St::Start,
            env: Envelope::default(),
            series: SeriesState::default(),
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
        if self.buf.is_empty() {
            let used = self.run(bytes)?;
            self.consumed += used as u64;
            self.buf.extend_from_slice(&bytes[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(bytes);
            let used = self.run(&buf);
            let used = match used {
                Ok(used) => used,
                Err(e) => {
                    self.buf = buf;
                    return Err(e);
                }
            };
            self.consumed += used as u64;
            buf.drain(..used);
            self.buf = buf;
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
                if !self.series.begun {
                    self.begin_series(Labels::default())?;
                }
                self.sink.end_series()?;
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
                    parse_labels(b, q).map_err(|(at, m)| self.malformed(at, m))?
                else {
                    return Ok(None);
                };
                if self.series.labels_seen {
                    return Err(self.malformed(q, "a series has two `metric` objects"));
                }
                self.series.labels_seen = true;
                self.begin_series(labels)?;
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
        } else {
            self.series.pending.push((t, v));
            Ok(())
        }
    }

    fn skip(&mut self, b: &[u8], mut p: usize, obj: Obj, mut s: Skip) -> Step {
        let start = p;
        if !s.started {
            let Some((q, c)) = Self::peek(b, p) else {
                return Ok(None);
            };
            s.started = true;
            p = q;
            match c {
                b'{' | b'[' => {
                    s.depth = 1;
                    p += 1;
                }
                b'"' => {
                    s.in_str = true;
                    p += 1;
                }
                b'}' | b']' | b',' => return Err(self.malformed(q, "expected a value")),
                _ => s.scalar = true,
            }
        }
        let done = |this: &mut Self, at: usize| {
            this.state = St::ObjNext { obj };
            Ok(Some(at))
        };
        if s.scalar {
            while p < b.len() {
                if matches!(b[p], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                    return done(self, p);
                }
                p += 1;
            }
        } else {
            while p < b.len() {
                let c = b[p];
                p += 1;
                if s.in_str {
                    if s.escaped {
                        s.escaped = false;
                    } else if c == b'\\' {
                        s.escaped = true;
                    } else if c == b'"' {
                        s.in_str = false;
                        if s.depth == 0 {
                            return done(self, p);
                        }
                    }
                } else {
                    match c {
                        b'"' => s.in_str = true,
                        b'{' | b'[' => s.depth += 1,
                        b'}' | b']' => {
                            s.depth -= 1;
                            if s.depth == 0 {
                                return done(self, p);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        // Skipping is resumable: everything seen is used, and the state remembers where it was.
        self.state = St::Skip { obj, skip: s };
        Ok((p > start).then_some(p))
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
        let Some((t, v, next)) = parse_point(b, q).map_err(|(at, m)| self.malformed(at, m))? else {
            return Ok(None);
        };
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

#[inline]
fn ws(b: &[u8], mut p: usize) -> usize {
    while p < b.len() && matches!(b[p], b' ' | b'\n' | b'\r' | b'\t') {
        p += 1;
    }
    p
}

type Lex<T> = std::result::Result<Option<T>, (usize, String)>;

struct StrSpan {
    start: usize,
    end: usize,
    escaped: bool,
    next: usize,
}

/// Finds the end of the JSON string opening at `b[q] == '"'`.
#[inline]
fn scan_str(b: &[u8], q: usize) -> Lex<StrSpan> {
    let start = q + 1;
    let mut p = start;
    let mut escaped = false;
    while p < b.len() {
        match b[p] {
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
    Ok(None)
}

fn make_string(raw: &[u8], escaped: bool) -> std::result::Result<String, String> {
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

/// `{"name":"value",...}` starting at `b[q] == '{'`.
fn parse_labels(b: &[u8], q: usize) -> Lex<(Labels, usize)> {
    let mut pairs = Vec::new();
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
            b'}' => return Ok(Some((Labels::from_decoded(pairs), p + 1))),
            _ => return Err((p, "expected `,` or `}` in a label set".into())),
        }
    }
}

/// A timestamp in seconds (`1435781451.781`) as exact integer milliseconds.
#[inline]
fn parse_time(b: &[u8], q: usize) -> Lex<(i64, usize)> {
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
pub(crate) fn parse_value(s: &[u8]) -> Option<f64> {
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

/// `[<time>,"<value>"]` at `b[q] == '['`.
#[inline]
fn parse_point(b: &[u8], q: usize) -> Lex<(i64, f64, usize)> {
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

/// One decoded series: labels, and its samples as parallel columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub labels: Labels,
    /// Milliseconds since the Unix epoch, ascending as the server sent them.
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
}

/// A [`Sink`] that keeps every series as sent.
#[derive(Debug, Default)]
pub struct Collect {
    pub series: Vec<Series>,
}

impl Sink for Collect {
    fn begin_series(&mut self, labels: Labels) -> Result<()> {
        self.series.push(Series {
            labels,
            ..Series::default()
        });
        Ok(())
    }

    #[inline]
    fn point(&mut self, timestamp_ms: i64, value: f64) -> Result<()> {
        let series = self.series.last_mut().expect("begin_series comes first");
        series.timestamps.push(timestamp_ms);
        series.values.push(value);
        Ok(())
    }
}

/// A whole decoded answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// `matrix`, `vector`, `scalar` or `string`.
    pub result_type: String,
    /// The series of a `matrix` or `vector` result (a vector's series hold one sample each).
    pub series: Vec<Series>,
    /// The value of a `scalar` result.
    pub scalar: Option<(i64, f64)>,
    /// The value of a `string` result.
    pub string: Option<(i64, String)>,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

/// Decodes a complete body that came with HTTP status 200. See [`decode_http`].
pub fn decode(body: &[u8]) -> Result<Answer> {
    decode_http(200, body)
}

/// Decodes a complete body that came with `http_status`: a `status: "error"` answer becomes
/// [`Error::Api`] with the server's `errorType` and `error`; a body that is not Prometheus JSON
/// becomes [`Error::NotPrometheus`].
pub fn decode_http(http_status: u16, body: &[u8]) -> Result<Answer> {
    let context = Context {
        endpoint: "the server",
        url: "the answer",
        query: "",
        http_status,
        content_type: "unknown content type",
    };
    let mut decoder = Decoder::new(Collect::default());
    let fed = decoder.feed(body);
    let (envelope, collect) = context.conclude(fed.and_then(|()| decoder.finish()), body)?;
    Ok(Answer {
        result_type: envelope.result_type.unwrap_or_default(),
        series: collect.series,
        scalar: envelope.scalar,
        string: envelope.string,
        warnings: envelope.warnings,
        infos: envelope.infos,
    })
}

/// What the caller knows about a response, to turn decoding outcomes into precise errors.
pub(crate) struct Context<'a> {
    pub endpoint: &'a str,
    pub url: &'a str,
    pub query: &'a str,
    pub http_status: u16,
    pub content_type: &'a str,
}

impl Context<'_> {
    /// Turns the decoder's outcome into the answer or the right error. `head` is the start of the
    /// body, quoted when the body is not Prometheus JSON.
    pub(crate) fn conclude<S>(
        &self,
        outcome: Result<(Envelope, S)>,
        head: &[u8],
    ) -> Result<(Envelope, S)> {
        let not_prometheus = || Error::NotPrometheus {
            url: self.url.to_owned(),
            status: self.http_status,
            content_type: self.content_type.to_owned(),
            snippet: snippet(head),
        };
        match outcome {
            Ok((envelope, sink)) => match envelope.status.as_deref() {
                Some("success") if (200..300).contains(&self.http_status) => Ok((envelope, sink)),
                Some("error") => Err(Error::Api {
                    endpoint: self.endpoint.to_owned(),
                    status: self.http_status,
                    error_type: envelope.error_type.unwrap_or_else(|| "unknown".into()),
                    message: envelope
                        .error
                        .unwrap_or_else(|| "(the server gave no message)".into()),
                    query: self.query.to_owned(),
                    attempts: Attempts(1),
                }),
                _ => Err(not_prometheus()),
            },
            Err(Error::Decode { source, .. })
                if source.offset == 0 || !(200..300).contains(&self.http_status) =>
            {
                Err(not_prometheus())
            }
            Err(Error::Decode { source, .. }) => Err(Error::Decode {
                url: self.url.to_owned(),
                source,
            }),
            Err(Error::Truncated { attempts, .. }) => Err(Error::Truncated {
                endpoint: self.endpoint.to_owned(),
                attempts,
            }),
            Err(other) => Err(other),
        }
    }
}

/// The start of a body, as text, for error messages.
pub(crate) fn snippet(head: &[u8]) -> String {
    let text = String::from_utf8_lossy(&head[..head.len().min(300)]);
    let mut text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if head.len() > 300 {
        text.push_str(" ...");
    }
    text
}

#[cfg(test)]
mod tests;
