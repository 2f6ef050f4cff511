//! The fuzz target's properties (crates/loader/fuzz/check.rs) on stable Rust, in every test run:
//! over each recorded fixture, and over seeded mutations of them (bytes flipped, cut, repeated,
//! spliced), so that the decoder's promises are checked without nightly or libFuzzer.

#[path = "../fuzz/check.rs"]
#[allow(dead_code)]
// `body`, the fuzz target's entry point, picks its cut from the data: unused here.
mod check;

use std::path::PathBuf;

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/loader");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "txt"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 10,
        "the recorded answers are in fixtures/loader"
    );
    out
}

#[test]
fn every_fixture_satisfies_the_decoder_properties() {
    for (name, body) in fixtures() {
        // A recorded success answer must count as well-formed, so that property 4 (accepted)
        // and 3 (read as serde_json reads it) are checked on it, not skipped.
        if name.contains(".200.") {
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(
                check::is_well_formed(&json),
                "{name} is a recorded success answer, yet not well-formed by the check"
            );
        }
        // Small answers at every cut; large ones at a few hundred spread over the body.
        let stride = (body.len() / 300).max(1);
        for cut in (0..=body.len()).step_by(stride).chain([body.len()]) {
            check::body_cut_at(&body, cut);
        }
        eprintln!("{name}: ok");
    }
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

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\"NaN\"",
    b"\"+Inf\"",
    b"\"-Inf\"",
    b"\"1e-07\"",
    b"1435781451.781",
    b"-1",
    b"\\u0000",
    b"\"",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"null",
    b"1e309",
    b"0.0001",
    b"\"status\"",
    b"\"error\"",
    b"\"values\"",
    b"\"value\"",
    b"\"metric\"",
    b"\xff",
];

fn mutate(rng: &mut Rng, body: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = body.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] ^= 1 << rng.below(8);
            }
            1 => data.truncate(at),
            2 => {
                let len = rng.below(16).min(data.len() - at);
                data.drain(at..at + len);
            }
            3 => {
                let token = INTERESTING[rng.below(INTERESTING.len())];
                data.splice(at..at, token.iter().copied());
            }
            4 if !other.is_empty() => {
                let from = rng.below(other.len());
                let len = rng.below(64).min(other.len() - from);
                data.splice(at..at, other[from..from + len].iter().copied());
            }
            _ => {
                let len = rng.below(32).min(data.len() - at);
                let copy = data[at..at + len].to_vec();
                data.splice(at..at, copy);
            }
        }
    }
    data
}

#[test]
fn mutated_fixtures_satisfy_the_decoder_properties() {
    let fixtures = fixtures();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Large fixtures make each iteration slow in a debug build; most bugs live in small ones.
    let small: Vec<&[u8]> = fixtures
        .iter()
        .map(|(_, b)| b.as_slice())
        .filter(|b| b.len() < 64 * 1024)
        .collect();
    let mut well_formed = 0;
    for i in 0..100_000 {
        let body = small[rng.below(small.len())];
        let other = small[rng.below(small.len())];
        let data = mutate(&mut rng, body, other);
        let cut = rng.below(data.len() + 1);
        well_formed +=
            serde_json::from_slice(&data).is_ok_and(|j| check::is_well_formed(&j)) as u32;
        let outcome = std::panic::catch_unwind(|| check::body_cut_at(&data, cut));
        if outcome.is_err() {
            panic!(
                "iteration {i} broke a property on this body, cut at {cut}:\n{}",
                String::from_utf8_lossy(&data)
            );
        }
    }
    // The mutations must still leave many bodies well-formed, or the acceptance and agreement
    // properties would only ever be checked on the unmutated fixtures.
    assert!(
        well_formed >= 2_000,
        "only {well_formed} of 100000 mutated bodies were well-formed answers"
    );
}
