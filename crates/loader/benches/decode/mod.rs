//! Decode only, on one core: the same recorded `query_range` bodies decoded by ours
//! (`promlearn_loader::decode`) and by the fastest general-purpose Rust JSON parsers — serde_json,
//! simd-json and sonic-rs — into the same result (labels, and per series its millisecond
//! timestamps and f64 values). Each peer's result is checked equal to ours, every series, label,
//! timestamp and value (floats bit for bit), before its speed counts: a parser that reads less
//! proves nothing. Ends with the `decode ratio:` line.
//!
//! The peers get their fastest way of working: a typed serde target that streams points straight
//! into the columns (no tree, borrowed strings) for all three, plus simd-json's borrowed DOM; the
//! faster of simd-json's two counts. Values are read by `str::parse::<f64>` (which takes `NaN`
//! and `+Inf`), timestamps as the f64 each parser reads, times 1000, rounded.

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

mod peers;

use promlearn_loader::decode::{Series, decode};

use super::{median, rate};

/// A recorded body to decode, and what to call it.
pub struct Body {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A parser under test: its name and how it decodes a body into series.
struct Parser {
    name: &'static str,
    /// Which library: the ratio compares ours with the fastest library.
    library: &'static str,
    decode: fn(&[u8]) -> Result<Vec<Series>, String>,
}

const OURS: &str = "promlearn";

fn ours(body: &[u8]) -> Result<Vec<Series>, String> {
    decode(body).map(|a| a.series).map_err(|e| e.to_string())
}

const PARSERS: &[Parser] = &[
    Parser {
        name: OURS,
        library: OURS,
        decode: ours,
    },
    Parser {
        name: "serde_json (typed)",
        library: "serde_json",
        decode: peers::serde_json_typed,
    },
    Parser {
        name: "simd-json (typed)",
        library: "simd-json",
        decode: peers::simd_json_typed,
    },
    Parser {
        name: "simd-json (DOM)",
        library: "simd-json",
        decode: peers::simd_json_dom,
    },
    Parser {
        name: "sonic-rs (typed)",
        library: "sonic-rs",
        decode: peers::sonic_rs_typed,
    },
];

/// This thread's CPU time, in seconds.
pub fn thread_cpu() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Whether two decodes are the same result: every series, label, timestamp and value (bits).
fn same(a: &[Series], b: &[Series]) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{} series, ours {}", a.len(), b.len()));
    }
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x.labels != y.labels {
            return Err(format!(
                "series {i}: labels {} vs ours {}",
                x.labels, y.labels
            ));
        }
        if x.timestamps != y.timestamps {
            return Err(format!("series {i} ({}): timestamps differ", y.labels));
        }
        let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        if bits(&x.values) != bits(&y.values) {
            return Err(format!("series {i} ({}): values differ", y.labels));
        }
    }
    Ok(())
}

/// One body's figures: per parser, CPU seconds per decode (median), or why it did not count.
struct Measured {
    seconds: Vec<Result<f64, String>>,
    samples: usize,
}

fn measure(body: &Body, rounds: usize) -> Measured {
    let reference = ours(&body.bytes).expect("ours decodes the recorded body");
    let samples: usize = reference.iter().map(|s| s.values.len()).sum();
    let checked: Vec<Result<(), String>> = PARSERS
        .iter()
        .map(|p| (p.decode)(&body.bytes).and_then(|got| same(&got, &reference)))
        .collect();
    // Enough repetitions that one measurement takes about 50 ms of CPU.
    let t = thread_cpu();
    drop(ours(&body.bytes));
    let once = (thread_cpu() - t).max(1e-6);
    let reps = ((0.05 / once) as usize).clamp(1, 10_000);
    let mut times = vec![Vec::new(); PARSERS.len()];
    for round in 0..rounds {
        for k in 0..PARSERS.len() {
            // Each round starts with another parser, so that none always follows the same one.
            let p = (k + round) % PARSERS.len();
            if checked[p].is_err() {
                continue;
            }
            let t = thread_cpu();
            for _ in 0..reps {
                std::hint::black_box((PARSERS[p].decode)(std::hint::black_box(&body.bytes)))
                    .expect("decoded once already");
            }
            times[p].push((thread_cpu() - t) / reps as f64);
        }
    }
    Measured {
        seconds: checked
            .into_iter()
            .zip(times)
            .map(|(ok, t)| ok.map(|()| median(t)))
            .collect(),
        samples,
    }
}

/// Mega (10^6) per second, short.
fn mb(per_s: f64) -> String {
    format!("{:.0} MB", per_s / 1e6)
}

/// Decodes every body with every parser; prints a table, returns the `decode ratio:` line and
/// our CPU seconds per sample on the first (largest) body.
pub fn run(bodies: &[Body], rounds: usize) -> (String, f64) {
    println!();
    println!(
        "{:<28} {:>10} {:>8} {:<20} {:>9} {:>11} {:>7}",
        "decode only, one core", "bytes", "samples", "parser", "bytes/s", "samples/s", "ours/it"
    );
    let mut ratios = Vec::new();
    let mut ours_per_sample = f64::NAN;
    for (b, body) in bodies.iter().enumerate() {
        let m = measure(body, rounds);
        let ours_s = *m.seconds[0].as_ref().expect("ours always counts");
        if b == 0 {
            ours_per_sample = ours_s / m.samples as f64;
        }
        let mut best_peer: Option<(f64, &str)> = None;
        for (p, parser) in PARSERS.iter().enumerate() {
            match &m.seconds[p] {
                Ok(s) => {
                    println!(
                        "{:<28} {:>10} {:>8} {:<20} {:>9} {:>11} {:>7.2}",
                        body.name,
                        body.bytes.len(),
                        m.samples,
                        parser.name,
                        mb(body.bytes.len() as f64 / s),
                        rate(m.samples as f64 / s),
                        s / ours_s
                    );
                    if parser.library != OURS && best_peer.is_none_or(|(best, _)| *s < best) {
                        best_peer = Some((*s, parser.name));
                    }
                }
                Err(why) => println!(
                    "{:<28} {:>10} {:>8} {:<20} not counted: its result differs from ours ({why})",
                    body.name,
                    body.bytes.len(),
                    m.samples,
                    parser.name
                ),
            }
        }
        if let Some((best, name)) = best_peer {
            ratios.push((best / ours_s, name, body.name.as_str()));
        }
    }
    println!(
        "(thread CPU time per decode, medians of {rounds} rounds in rotating order; every peer's \
         result checked equal to ours before it counts; ours/it: the peer's time / ours, above 1 \
         means ours is faster)"
    );
    let (ratio, peer, body) = ratios
        .iter()
        .copied()
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap_or((f64::NAN, "none", "none"));
    println!("(the decode ratio is the lowest over the bodies: here {body}, against {peer})");
    (
        format!(
            "decode ratio: {ratio:.2} (target >= 1.00, vs the fastest of serde_json, simd-json, \
             sonic-rs)"
        ),
        ours_per_sample,
    )
}
