//! What must hold for any bytes handed to the remote-read decoders, well-formed or not:
//!
//! 1. they never panic;
//! 2. the network's cut does not matter: a streamed body fed in pieces gives what it gives whole;
//! 3. what they accept is sound: every series' timestamps increase, no stale marker or NaN
//!    payload comes out, and a chunk gives exactly the samples its header counts;
//! 4. the XOR chunk decoder reads back, to the bit, whatever Prometheus's encoder (mirrored here
//!    as [`encode_xor`], from `tsdb/chunkenc/xor.go` v2.42.0) writes, for any samples.
//!
//! The fuzz targets `remote_read_frames` and `xor_chunk` call [`frames`] and [`chunk`]; a stable
//! test (tests/remote_read_properties.rs) runs them over recorded answers and their mutations.

use promlearn_loader::{
    Series,
    remote_read::{
        FrameReader, MAX_FRAME_BYTES, RemoteReadError, STALE_NAN_BITS, SeriesCollector,
        decode_xor_chunk,
    },
};

/// A streamed body decoded into series, fed in pieces cut at `cuts` (ascending, may exceed the
/// body), keeping samples in `[lo, hi]`.
pub fn streamed(
    body: &[u8],
    cuts: &[usize],
    lo: i64,
    hi: i64,
) -> Result<Vec<Series>, RemoteReadError> {
    let mut frames = FrameReader::new(MAX_FRAME_BYTES);
    let mut collector = SeriesCollector::new(lo, hi);
    let mut from = 0;
    for &cut in cuts.iter().chain([&body.len()]) {
        let to = cut.clamp(from, body.len());
        frames.push(&body[from..to]);
        from = to;
        while let Some(frame) = frames.next_frame()? {
            collector.frame(frame)?;
        }
    }
    frames.finish()?;
    Ok(collector.finish().0)
}

/// A frame around `payload`, as Prometheus writes it: uvarint length, CRC32C big-endian, payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut n = payload.len() as u64;
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Series compared with values to the bit (NaN equal to NaN).
pub fn same(a: &[Series], b: &[Series]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.labels == y.labels
                && x.timestamps == y.timestamps
                && x.values.len() == y.values.len()
                && x.values
                    .iter()
                    .zip(&y.values)
                    .all(|(p, q)| p.to_bits() == q.to_bits())
        })
}

/// Properties 1–3 on a streamed body. The first byte chooses the mode: odd, the rest is split
/// at `0xff` bytes into payloads that are framed with valid checksums (so that the protobuf and
/// chunk decoders are reached); even, the rest is the body as it is.
pub fn frames(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let body: Vec<u8> = if mode & 1 == 1 {
        rest.split(|&b| b == 0xff).flat_map(frame).collect()
    } else {
        rest.to_vec()
    };
    let cut = usize::from(mode >> 1) % (body.len() + 1);
    let whole = streamed(&body, &[], i64::MIN, i64::MAX);
    let pieces = streamed(
        &body,
        &[cut, cut + 1, cut + 1 + (body.len() - cut) / 2],
        i64::MIN,
        i64::MAX,
    );
    match (&whole, &pieces) {
        (Ok(a), Ok(b)) => assert!(same(a, b), "fed in pieces at {cut}, the series differ"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("fed whole: {a:?}; fed in pieces at {cut}: {b:?}"),
    }
    if let Ok(series) = whole {
        sound(&series);
    }
}

/// Property 3 on decoded series.
pub fn sound(series: &[Series]) {
    for s in series {
        assert_eq!(s.timestamps.len(), s.values.len());
        assert!(
            !s.timestamps.is_empty(),
            "{}: an empty series is returned",
            s.labels
        );
        assert!(
            s.timestamps.windows(2).all(|w| w[0] < w[1]),
            "{}: timestamps do not increase",
            s.labels
        );
        for v in &s.values {
            assert_ne!(
                v.to_bits(),
                STALE_NAN_BITS,
                "{}: a stale marker came out",
                s.labels
            );
            assert!(
                !v.is_nan() || v.to_bits() == f64::NAN.to_bits(),
                "{}: a NaN payload came out",
                s.labels
            );
        }
    }
}

/// Properties 1, 3 and 4 on arbitrary chunk bytes: what decodes is sound and reads back the
/// same after Prometheus's encoder writes it again; and the samples the bytes spell (see
/// [`samples_from`]) make a chunk that decodes to exactly them.
pub fn chunk(data: &[u8]) {
    let mut got = Vec::new();
    match decode_xor_chunk(data, |t, v| got.push((t, v))) {
        Ok(n) => {
            assert_eq!(
                usize::from(n),
                got.len(),
                "the header's count and the samples differ"
            );
            assert!(
                got.windows(2).all(|w| w[0].0 < w[1].0),
                "timestamps do not increase"
            );
            assert_eq!(
                roundtrip(&got),
                bits(&got),
                "re-encoded, the samples differ"
            );
        }
        Err(_) => {
            let count = data
                .get(..2)
                .map_or(0, |h| usize::from(u16::from_be_bytes([h[0], h[1]])));
            assert!(got.len() <= count, "more samples than the header counts");
        }
    }
    let samples = samples_from(data);
    assert_eq!(
        roundtrip(&samples),
        bits(&samples),
        "encoded samples do not read back"
    );
}

fn bits(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
    samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

/// `samples` written by [`encode_xor`] and read back by the decoder.
pub fn roundtrip(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
    let chunk = encode_xor(samples);
    let mut out = Vec::new();
    let n = decode_xor_chunk(&chunk, |t, v| out.push((t, v.to_bits())));
    assert_eq!(
        n,
        Ok(samples.len() as u16),
        "a well-formed chunk fails to decode"
    );
    out
}

/// Increasing samples spelt by arbitrary bytes: 9 bytes each, a timestamp step (from 1 ms to
/// far beyond 20 bits, so every delta-of-delta width is used) and a value drawn from values
/// that share bits with their neighbours, special ones, and raw bit patterns.
pub fn samples_from(data: &[u8]) -> Vec<(i64, f64)> {
    let mut t: i64 = i64::from(*data.first().unwrap_or(&0)) * 1_000_000_007 - 300_000_000_000;
    let mut previous = 0.0f64;
    let mut out = Vec::new();
    for piece in data.chunks_exact(9).take(u16::MAX as usize) {
        let step = u64::from(piece[0]);
        t += match step % 6 {
            0 => 15_000,
            1 => 1 + (step as i64),
            2 => 15_000 + (step as i64 - 128) * 7,
            3 => 1 << (step % 40),
            4 => 60_000 + (step as i64) * 70_000,
            _ => 1 + (step as i64) * 1_000_003_001,
        };
        let raw = u64::from_be_bytes(piece[1..9].try_into().unwrap());
        let v = match raw % 7 {
            0 => previous,
            1 => previous + (raw >> 40) as f64,
            2 => f64::from_bits(raw),
            3 => [
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                -0.0,
                0.0,
                f64::MAX,
                5e-324,
                f64::from_bits(STALE_NAN_BITS),
            ][(raw >> 8) as usize % 8],
            4 => (raw >> 20) as f64 / 8.0,
            5 => f64::from_bits(previous.to_bits() ^ (raw >> 30)),
            _ => -((raw >> 11) as f64) * 1e-3,
        };
        previous = v;
        out.push((t, v));
    }
    out
}

/// Bits written most significant first, as Prometheus's `bstream`.
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits still free in the last byte.
    free: u32,
}

impl BitWriter {
    fn bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        if bit {
            *self.bytes.last_mut().unwrap() |= 1 << (self.free - 1);
        }
        self.free -= 1;
    }

    /// The low `n` bits of `value`.
    fn bits(&mut self, value: u64, n: u32) {
        for i in (0..n).rev() {
            self.bit(value >> i & 1 == 1);
        }
    }

    fn uvarint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.bits(n & 0x7f | 0x80, 8);
            n >>= 7;
        }
        self.bits(n, 8);
    }
}

/// Prometheus's XOR chunk encoder (`xorAppender.Append` of tsdb/chunkenc/xor.go, v2.42.0), for
/// increasing timestamps. The reference the decoder is checked against.
pub fn encode_xor(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut w = BitWriter {
        bytes: (samples.len() as u16).to_be_bytes().to_vec(),
        free: 0,
    };
    let (mut t, mut v, mut delta) = (0i64, 0u64, 0u64);
    let (mut leading, mut trailing) = (0xffu32, 0u32);
    for (i, &(ts, value)) in samples.iter().enumerate() {
        let bits = value.to_bits();
        match i {
            0 => {
                w.uvarint(((ts << 1) ^ (ts >> 63)) as u64);
                w.bits(bits, 64);
            }
            1 => {
                delta = ts.wrapping_sub(t) as u64;
                w.uvarint(delta);
            }
            _ => {
                let d = ts.wrapping_sub(t) as u64;
                let dod = d.wrapping_sub(delta) as i64;
                let fits = |n: u32| -((1i64 << (n - 1)) - 1) <= dod && dod <= 1 << (n - 1);
                if dod == 0 {
                    w.bit(false);
                } else if fits(14) {
                    w.bits(0b10, 2);
                    w.bits(dod as u64, 14);
                } else if fits(17) {
                    w.bits(0b110, 3);
                    w.bits(dod as u64, 17);
                } else if fits(20) {
                    w.bits(0b1110, 4);
                    w.bits(dod as u64, 20);
                } else {
                    w.bits(0b1111, 4);
                    w.bits(dod as u64, 64);
                }
                delta = d;
            }
        }
        if i > 0 {
            let x = bits ^ v;
            if x == 0 {
                w.bit(false);
            } else {
                w.bit(true);
                let new_leading = x.leading_zeros().min(31);
                let new_trailing = x.trailing_zeros();
                if leading != 0xff && new_leading >= leading && new_trailing >= trailing {
                    w.bit(false);
                    w.bits(x >> trailing, 64 - leading - trailing);
                } else {
                    leading = new_leading;
                    trailing = new_trailing;
                    w.bit(true);
                    w.bits(u64::from(leading), 5);
                    let significant = 64 - leading - trailing;
                    // 64 does not fit in 6 bits: written as 0, read back as 64.
                    w.bits(u64::from(significant), 6);
                    w.bits(x >> trailing, significant);
                }
            }
        }
        t = ts;
        v = bits;
    }
    w.bytes
}
