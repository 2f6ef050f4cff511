//! A program, not library code (it prints): re-scores NAB's published results with the Rust
//! scorer and writes them, with the null detector's, as a NAB results directory, so that NAB's
//! own Python scorer can be run on the very same files (fixtures/nab/README.md says how).
//!
//! `cargo run -p promlearn-nab --example rescore -- /tmp/nab-results`
//!
//! Besides the published detectors it writes `numentaFlag`: numenta's score turned into a 0/1
//! flag at 0.6, scored here both at the optimised threshold and "as deployed" (threshold 0.5).

#![allow(clippy::print_stdout, reason = "a program that prints its figures")]

use std::{path::PathBuf, time::Instant};

use promlearn_nab::{Corpus, Results, Sweep, read_published, write_results};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: rescore RESULTS_DIR (a directory to write NAB's results files into)")?,
    );
    let nab = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/nab");
    let corpus = Corpus::load(&nab)?;
    for repair in corpus.repairs() {
        println!("warning: {repair}");
    }
    let mut all = vec![Results::constant(&corpus, "null", 0.5)];
    for detector in ["windowedGaussian", "numenta", "ARTime"] {
        all.push(read_published(
            &nab.join("published").join(format!("{detector}.csv.gz")),
        )?);
    }
    let mut flag = Results::new("numentaFlag");
    for (file, r) in all[2].files() {
        let flags = r
            .scores
            .iter()
            .map(|&s| if s >= 0.6 { 1.0 } else { 0.0 })
            .collect();
        flag.insert(file, r.timestamps.clone(), flags)?;
    }
    all.push(flag);
    for results in &all {
        let started = Instant::now();
        let sweep = Sweep::new(&corpus, results)?;
        let scores: Vec<String> = corpus
            .profiles()
            .iter()
            .map(|p| {
                let s = sweep.score(p);
                format!("{} {:.2} (threshold {})", p.name, s.normalized, s.threshold)
            })
            .collect();
        let deployed = sweep.score_at(corpus.profile("standard")?, 0.5).normalized;
        println!(
            "{}: {}; at 0.5 (standard) {deployed:.2}; scored in {:?}",
            results.detector(),
            scores.join(", "),
            started.elapsed()
        );
        write_results(&out, &corpus, results)?;
    }
    println!("results written under {}", out.display());
    Ok(())
}
