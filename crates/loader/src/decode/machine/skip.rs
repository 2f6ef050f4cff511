//! Skipping a value the decoder does not read (unknown keys, VictoriaMetrics' `stats`, native
//! histograms) without buffering it: resumable at any byte, so a value of any size costs no
//! memory.

use super::{Decoder, Obj, St, Step};
use crate::decode::Sink;

/// How far a skip has come: whether it has seen the value's first byte, is in a scalar, how
/// deep in brackets, inside a string, after a backslash.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct Skip {
    started: bool,
    scalar: bool,
    depth: u32,
    in_str: bool,
    escaped: bool,
}

impl<S: Sink> Decoder<S> {
    pub(super) fn skip(&mut self, b: &[u8], mut p: usize, obj: Obj, mut s: Skip) -> Step {
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
}
