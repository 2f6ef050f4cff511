//! Prometheus's XOR chunk encoding (Gorilla-style), decoded.
//!
//! The layout is that of `tsdb/chunkenc/xor.go` (prometheus/prometheus v2.42.0): two bytes of
//! sample count (big-endian), then a bit stream, most significant bit first. The first sample is
//! a signed varint timestamp and the value's 64 bits; the second a uvarint timestamp delta and
//! the value XOR-encoded against the first; every later one a delta-of-delta timestamp (`0`,
//! `10`+14 bits, `110`+17, `1110`+20 or `1111`+64) and an XOR-encoded value (`0`: unchanged;
//! `10`: the meaningful bits in the previous window; `11`: 5 bits of leading zeros, 6 of
//! meaningful-bit count, 0 meaning 64, then the bits).
//!
//! Every read is bounds-checked: a chunk cut short, or one whose timestamps do not increase, is
//! an error, never a panic and never a made-up sample.
//!
//! ```
//! use promlearn_loader::remote_read::decode_xor_chunk;
//!
//! // One sample: count 1, timestamp 1000 as a zig-zag varint (0xd0 0x0f), value 2.5's bits.
//! let mut chunk = vec![0, 1, 0xd0, 0x0f];
//! chunk.extend_from_slice(&2.5f64.to_bits().to_be_bytes());
//! let mut samples = Vec::new();
//! decode_xor_chunk(&chunk, |t, v| samples.push((t, v)))?;
//! assert_eq!(samples, [(1000, 2.5)]);
//! # Ok::<(), promlearn_loader::remote_read::ChunkError>(())
//! ```

/// Why a chunk could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// The chunk ended before the samples its header counts.
    #[error("the XOR chunk ends after {decoded} of its {count} samples")]
    Truncated {
        /// Samples the header counts.
        count: u16,
        /// Samples decoded before the end.
        decoded: u16,
    },
    /// The chunk has no room for its two-byte header.
    #[error("the XOR chunk is {0} bytes long, shorter than its 2-byte header")]
    NoHeader(usize),
    /// A varint ran past 64 bits.
    #[error("the XOR chunk holds a malformed varint at sample {0}")]
    BadVarint(u16),
    /// Timestamps within a chunk must increase (the TSDB appends them so).
    #[error(
        "the XOR chunk's timestamps do not increase at sample {index} ({previous} ms, then {timestamp} ms)"
    )]
    Disorder {
        /// The sample's index in the chunk.
        index: u16,
        /// The timestamp before it.
        previous: i64,
        /// Its own timestamp.
        timestamp: i64,
    },
}

/// Reads bits most significant first, never past the end of its bytes.
struct Bits<'a> {
    data: &'a [u8],
    /// The next bit to read, counted from the start of `data`.
    pos: usize,
}

impl<'a> Bits<'a> {
    #[inline]
    fn remaining(&self) -> usize {
        self.data.len() * 8 - self.pos
    }

    #[inline]
    fn bit(&mut self) -> Option<bool> {
        let byte = *self.data.get(self.pos >> 3)?;
        let bit = byte >> (7 - (self.pos & 7)) & 1;
        self.pos += 1;
        Some(bit == 1)
    }

    /// `n` bits (0..=64) as the low bits of a u64.
    #[inline]
    fn bits(&mut self, n: u32) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        if self.remaining() < n as usize {
            return None;
        }
        let byte = self.pos >> 3;
        let skip = (self.pos & 7) as u32;
        // Up to 9 bytes cover any 64 bits at any offset; read 8 with a fast path where they exist.
        let word = match self.data.get(byte..byte + 8) {
            Some(eight) => u64::from_be_bytes(eight.try_into().expect("8 bytes")),
            None => {
                let mut buf = [0u8; 8];
                let tail = &self.data[byte..];
                buf[..tail.len()].copy_from_slice(tail);
                u64::from_be_bytes(buf)
            }
        };
        let have = 64 - skip;
        let value = if n <= have {
            (word << skip) >> (64 - n)
        } else {
            // n > 56 at an unaligned offset: the last bits come from a ninth byte.
            let extra = n - have;
            let next = u64::from(self.data[byte + 8]);
            ((word << skip) >> (64 - have) << extra) | (next >> (8 - extra))
        };
        self.pos += n as usize;
        Some(value)
    }

    #[inline]
    fn byte(&mut self) -> Option<u8> {
        self.bits(8).map(|b| b as u8)
    }

    fn uvarint(&mut self) -> Option<Result<u64, ()>> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Some(Err(()));
            }
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(Ok(value));
            }
        }
        Some(Err(()))
    }
}

/// Decodes one XOR chunk, handing each sample `(timestamp ms, value)` to `sample` in order.
/// Returns the number of samples. Values are passed bit for bit as stored (Prometheus's stale
/// markers and NaN payloads included); callers decide what to keep.
pub fn decode_xor_chunk(data: &[u8], mut sample: impl FnMut(i64, f64)) -> Result<u16, ChunkError> {
    let Some(header) = data.get(..2) else {
        return Err(ChunkError::NoHeader(data.len()));
    };
    let count = u16::from_be_bytes([header[0], header[1]]);
    let mut bits = Bits {
        data: &data[2..],
        pos: 0,
    };
    let truncated = |decoded: u16| ChunkError::Truncated { count, decoded };
    let (mut t, mut value, mut delta) = (0i64, 0u64, 0i64);
    let (mut leading, mut trailing) = (0u32, 0u32);
    for i in 0..count {
        if i == 0 {
            // The first timestamp: a zig-zag signed varint.
            let u = match bits.uvarint().ok_or_else(|| truncated(i))? {
                Ok(u) => u,
                Err(()) => return Err(ChunkError::BadVarint(i)),
            };
            t = ((u >> 1) as i64) ^ -((u & 1) as i64);
            value = bits.bits(64).ok_or_else(|| truncated(i))?;
            sample(t, f64::from_bits(value));
            continue;
        }
        let previous = t;
        if i == 1 {
            let u = match bits.uvarint().ok_or_else(|| truncated(i))? {
                Ok(u) => u,
                Err(()) => return Err(ChunkError::BadVarint(i)),
            };
            delta = u as i64;
        } else {
            let mut prefix = 0u32;
            for _ in 0..4 {
                prefix += 1;
                if !bits.bit().ok_or_else(|| truncated(i))? {
                    prefix -= 1;
                    break;
                }
            }
            // `prefix` counts the leading ones: 0 → dod 0; 1 → 14 bits; 2 → 17; 3 → 20; 4 → 64.
            let width = [0, 14, 17, 20, 64][prefix as usize];
            let dod = if width == 0 {
                0
            } else {
                let raw = bits.bits(width).ok_or_else(|| truncated(i))?;
                if width == 64 {
                    raw as i64
                } else if raw > 1 << (width - 1) {
                    // Negative values come back as large unsigned ones (see Prometheus's
                    // docs/bstream.md): `1 << (width - 1)` itself is positive.
                    raw as i64 - (1i64 << width)
                } else {
                    raw as i64
                }
            };
            delta = delta.wrapping_add(dod);
        }
        t = t.wrapping_add(delta);
        if t <= previous {
            return Err(ChunkError::Disorder {
                index: i,
                previous,
                timestamp: t,
            });
        }
        // The value, XOR-encoded against the previous one.
        if bits.bit().ok_or_else(|| truncated(i))? {
            if bits.bit().ok_or_else(|| truncated(i))? {
                leading = bits.bits(5).ok_or_else(|| truncated(i))? as u32;
                let mut significant = bits.bits(6).ok_or_else(|| truncated(i))? as u32;
                if significant == 0 {
                    significant = 64;
                }
                // A corrupt header may claim more bits than fit; the XOR then stays in range.
                trailing = 64u32.saturating_sub(leading + significant);
            }
            let significant = 64 - leading - trailing;
            let xor = bits.bits(significant).ok_or_else(|| truncated(i))?;
            value ^= xor.checked_shl(trailing).unwrap_or(0);
        }
        sample(t, f64::from_bits(value));
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(data: &[u8]) -> Result<Vec<(i64, u64)>, ChunkError> {
        let mut out = Vec::new();
        decode_xor_chunk(data, |t, v| out.push((t, v.to_bits())))?;
        Ok(out)
    }

    #[test]
    fn bits_match_a_bit_by_bit_reading() {
        let data: Vec<u8> = (0..20u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        for start in 0..100 {
            for n in 0..=64u32 {
                let mut fast = Bits {
                    data: &data,
                    pos: start,
                };
                let mut slow = Bits {
                    data: &data,
                    pos: start,
                };
                let expected =
                    (0..n).try_fold(0u64, |acc, _| slow.bit().map(|b| acc << 1 | u64::from(b)));
                assert_eq!(fast.bits(n), expected, "{n} bits at bit {start}");
            }
        }
    }

    #[test]
    fn an_empty_chunk_has_no_samples() {
        assert_eq!(decode(&[0, 0]), Ok(vec![]));
        assert_eq!(decode(&[0]), Err(ChunkError::NoHeader(1)));
    }

    #[test]
    fn a_short_chunk_is_an_error() {
        let mut chunk = vec![0, 2, 0xd0, 0x0f];
        chunk.extend_from_slice(&2.5f64.to_bits().to_be_bytes());
        assert_eq!(
            decode(&chunk),
            Err(ChunkError::Truncated {
                count: 2,
                decoded: 1
            })
        );
    }
}
