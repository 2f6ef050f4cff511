//! The remote-read decoders' properties (crates/loader/fuzz/remote_read_check.rs) on stable Rust,
//! in every test run: over Prometheus 2.42's own answers recorded in fixtures/loader (the
//! streamed chunks checked against the SAMPLES answer of the same query, which Prometheus decoded
//! itself), over corrupted and truncated copies of them, over seeded random samples (written by a
//! mirror of Prometheus's encoder and read back to the bit) and over random bytes.

#[path = "../fuzz/remote_read_check.rs"]
mod check;

use std::path::PathBuf;

use promlearn_loader::{
    Series,
    remote_read::{RemoteReadError, SeriesCollector, proto},
};
use prost::Message;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/loader")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The recorded query's range, from `remote_read.meta`.
fn range() -> (i64, i64) {
    let meta = String::from_utf8(fixture("remote_read.meta")).unwrap();
    let field = |name: &str| -> i64 {
        meta.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("remote_read.meta has no {name}"))
    };
    (field("start_ms"), field("end_ms"))
}

fn samples_reference(lo: i64, hi: i64) -> Vec<Series> {
    let mut c = SeriesCollector::new(lo, hi);
    c.samples_answer(&fixture("remote_read_samples.200.bin"))
        .unwrap();
    c.finish().0
}

/// Where the recorded body's frames end.
fn frame_ends(body: &[u8]) -> Vec<usize> {
    let (mut at, mut ends) = (0, vec![0]);
    while at < body.len() {
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let b = body[at];
            at += 1;
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b < 0x80 {
                break;
            }
        }
        at += 4 + len;
        ends.push(at);
    }
    ends
}

#[test]
fn streamed_chunks_equal_prometheus_s_own_samples() {
    let (lo, hi) = range();
    let body = fixture("remote_read_streamed.200.bin");
    let streamed = check::streamed(&body, &[], lo, hi).unwrap();
    let reference = samples_reference(lo, hi);
    // Not vacuous: the recorded answer holds hundreds of series of several samples each.
    assert!(reference.len() > 100, "{} series", reference.len());
    let samples: usize = reference.iter().map(|s| s.values.len()).sum();
    assert!(samples > 5 * reference.len(), "{samples} samples");
    assert_eq!(streamed.len(), reference.len());
    for (s, r) in streamed.iter().zip(&reference) {
        assert_eq!(s.labels, r.labels);
        assert_eq!(s.timestamps, r.timestamps, "{}", s.labels);
        for (i, (a, b)) in s.values.iter().zip(&r.values).enumerate() {
            // SAMPLES loses the sign of zero (Prometheus's encoder leaves out a 0 value).
            let alike = a.to_bits() == b.to_bits() || (*a == 0.0 && *b == 0.0);
            assert!(
                alike,
                "{} sample {i}: chunks {a:?}, SAMPLES {b:?}",
                s.labels
            );
        }
    }
    check::sound(&streamed);
    // A narrower range keeps exactly the reference's samples in it, wherever it cuts a chunk.
    let (lo2, hi2) = (lo + 3_300, hi - 2_700);
    let narrow = check::streamed(&body, &[], lo2, hi2).unwrap();
    let mut expected = samples_reference(lo, hi);
    for s in &mut expected {
        let keep: Vec<bool> = s
            .timestamps
            .iter()
            .map(|t| (lo2..=hi2).contains(t))
            .collect();
        let mut k = keep.iter();
        s.timestamps.retain(|_| *k.next().unwrap());
        let mut k = keep.iter();
        s.values.retain(|_| *k.next().unwrap());
    }
    expected.retain(|s| !s.timestamps.is_empty());
    assert_eq!(narrow.len(), expected.len());
    for (n, e) in narrow.iter().zip(&expected) {
        assert_eq!((&n.labels, &n.timestamps), (&e.labels, &e.timestamps));
    }
    let kept: usize = narrow.iter().map(|s| s.values.len()).sum();
    assert!(
        kept > 0 && kept < samples,
        "{kept} of {samples} samples in the narrower range"
    );
}

#[test]
fn the_network_s_cut_does_not_matter() {
    let body = fixture("remote_read_streamed.200.bin");
    let whole = check::streamed(&body, &[], i64::MIN, i64::MAX).unwrap();
    let stride = (body.len() / 200).max(1);
    for cut in (0..=body.len()).step_by(stride) {
        let pieces = check::streamed(
            &body,
            &[cut, cut + 1, cut + 7 + (body.len() - cut) / 2],
            i64::MIN,
            i64::MAX,
        )
        .unwrap();
        assert!(check::same(&whole, &pieces), "cut at {cut}");
    }
}

#[test]
fn corrupted_bytes_are_refused_never_read() {
    let body = fixture("remote_read_streamed.200.bin");
    let stride = (body.len() / 400).max(1);
    for at in (0..body.len()).step_by(stride) {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = body.clone();
            bad[at] ^= flip;
            let got = check::streamed(&bad, &[at], i64::MIN, i64::MAX);
            assert!(
                got.is_err(),
                "byte {at} ^ {flip:#x} was read as a valid answer"
            );
        }
    }
}

#[test]
fn a_cut_answer_is_an_error_unless_cut_between_frames() {
    let body = fixture("remote_read_streamed.200.bin");
    let ends = frame_ends(&body);
    assert!(ends.len() > 2, "several frames");
    let stride = (body.len() / 300).max(1);
    for cut in (0..body.len()).step_by(stride).chain(ends.iter().copied()) {
        match check::streamed(&body[..cut], &[], i64::MIN, i64::MAX) {
            Ok(series) => {
                assert!(ends.contains(&cut), "cut at {cut}, inside a frame, decoded");
                check::sound(&series);
            }
            Err(e) => assert!(
                matches!(e, RemoteReadError::Truncated { .. }),
                "cut at {cut}: {e}"
            ),
        }
    }
}

#[test]
fn other_chunk_encodings_are_refused_by_name() {
    let frame = proto::ChunkedReadResponse {
        chunked_series: vec![proto::ChunkedSeries {
            labels: vec![proto::Label {
                name: "__name__".into(),
                value: "h".into(),
            }],
            chunks: vec![proto::Chunk {
                min_time_ms: 0,
                max_time_ms: 10,
                r#type: 2,
                data: vec![0, 1, 2, 3],
            }],
        }],
        query_index: 0,
    };
    let body = check::frame(&frame.encode_to_vec());
    let e = check::streamed(&body, &[], i64::MIN, i64::MAX).unwrap_err();
    assert!(
        matches!(
            &e,
            RemoteReadError::UnsupportedEncoding {
                encoding: 2,
                name: "HISTOGRAM",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("SAMPLES"), "{e}");
}

/// xorshift64*: a fixed sequence, so a failure is reproducible from its iteration number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `n` increasing samples drawn by `rng`: timestamps a scrape interval apart with jitter, 1 ms
/// apart, or hours apart (every delta-of-delta width of the encoding); values that repeat, count
/// up, move by small steps, jump to raw bit patterns, or are special (NaN, infinities, -0, the
/// stale marker, subnormals).
fn random_samples(rng: &mut Rng, n: usize) -> Vec<(i64, f64)> {
    let mut t = (rng.next() % 2_000_000_000_000) as i64 - 500_000_000_000;
    let mut v = 0.0f64;
    (0..n)
        .map(|_| {
            let r = rng.next();
            t += match r % 5 {
                0 | 1 => 15_000 + (r >> 8) as i64 % 201 - 100,
                2 => 1,
                3 => 1 + (r >> 8) as i64 % 100_000,
                _ => 1 + (r >> 8) as i64 % 100_000_000_000,
            };
            let r = rng.next();
            v = match r % 7 {
                0 => v,
                1 => v + 1.0,
                2 => v + ((r >> 8) % 1_000) as f64 / 64.0,
                3 => f64::from_bits(rng.next()),
                4 => [
                    f64::NAN,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    -0.0,
                    f64::MIN_POSITIVE / 2.0,
                    f64::from_bits(promlearn_loader::remote_read::STALE_NAN_BITS),
                ][(r >> 8) as usize % 6],
                5 => f64::from_bits(v.to_bits() ^ (rng.next() >> ((r >> 8) % 64))),
                _ => -((r >> 11) as f64) * 1e-3,
            };
            (t, v)
        })
        .collect()
}

#[test]
fn random_samples_read_back_to_the_bit() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..400 {
        // Mostly Prometheus-sized chunks (up to 120 samples), some far longer.
        let n = match round % 10 {
            0 => 1 + (rng.next() % 5_000) as usize,
            _ => 1 + (rng.next() % 120) as usize,
        };
        let samples = random_samples(&mut rng, n);
        let written: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(
            check::roundtrip(&samples),
            written,
            "round {round}: {n} samples written by Prometheus's encoder do not read back"
        );
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    for _ in 0..400 {
        let len = (rng.next() % 2_000) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check::chunk(&data);
        let mut framed = vec![1u8];
        framed.extend_from_slice(&data);
        check::frames(&framed);
        check::frames(&data);
    }
}

#[test]
fn mutated_recorded_chunks_decode_soundly_or_not_at_all() {
    // The real chunks of the recorded answer, each mutated: bytes flipped, cut, spliced.
    let body = fixture("remote_read_streamed.200.bin");
    let ends = frame_ends(&body);
    let mut chunks = Vec::new();
    for w in ends.windows(2) {
        let frame = &body[w[0]..w[1]];
        let start = frame.iter().position(|b| *b < 0x80).unwrap() + 5;
        let message = proto::ChunkedReadResponse::decode(&frame[start..]).unwrap();
        chunks.extend(
            message
                .chunked_series
                .into_iter()
                .flat_map(|s| s.chunks)
                .map(|c| c.data),
        );
    }
    assert!(chunks.len() > 100, "{} chunks", chunks.len());
    let mut rng = Rng(7);
    for (i, chunk) in chunks.iter().enumerate() {
        check::chunk(chunk);
        let mut bad = chunk.clone();
        let at = (rng.next() as usize) % bad.len();
        bad[at] ^= 1 << (rng.next() % 8);
        check::chunk(&bad);
        check::chunk(&chunk[..(rng.next() as usize) % chunk.len()]);
        let other = &chunks[(i + 1) % chunks.len()];
        let mut spliced = chunk[..chunk.len() / 2].to_vec();
        spliced.extend_from_slice(&other[other.len() / 2..]);
        check::chunk(&spliced);
    }
}
