//! `cargo xtask bench detect`: every shipped detector, at its defaults, on every file of the
//! Numenta Anomaly Benchmark (NAB), replayed through the watch's own backtest (the live service's
//! schedule with a simulated clock), scored by NAB's rules with `promlearn-nab`'s port of NAB's
//! scorer, and checked by NAB's own Python scorer where a Python with pandas is given.
//!
//! How NAB's rules are kept:
//! - streaming: the backtest refits every `fit_every` on the `fit_window` before the tick and
//!   judges each sample when the simulated clock reaches it; nothing sees a later sample;
//! - probation: the detector sees the first 15% of each file, the scorer does not score it;
//! - one setting: one configuration ([`NAB_SCHEDULE`] and each detector's defaults) for all 58
//!   files; no label is read before scoring;
//! - the threshold is optimised once per profile across the corpus (NAB's sweep), and "as
//!   deployed" is the detector's own 0/1 flag, scored at no optimised threshold.
//!
//! Output: one `published NAME: ...` line per scoreboard detector, re-scored in the same run; one
//! `detector NAME: ...` line per shipped detector; NAB's own scorer's figures when it ran; last,
//! `nab score: ...`. The results directories (NAB's format, so NAB's scorer can check any
//! figure) are written to `target/nab-results/`.
//!
//! To measure what a team's knowledge of its metrics does (`direction`, `min_deviation`,
//! `data_range`), two variables narrow the run, both unset by default: `PROMLEARN_NAB_FILES`
//! keeps the files whose names contain one of its comma-separated parts (NAB's sweep and
//! normalisation then run over those files alone; the scoreboard and NAB's own scorer are left
//! out; results go to `target/nab-results-subset/`), and `PROMLEARN_NAB_KNOWLEDGE` adds its
//! TOML keys (`;` between them) to every detector's query, e.g.
//! `PROMLEARN_NAB_FILES=latency,TravelTime PROMLEARN_NAB_KNOWLEDGE='direction = "up"'
//! cargo bench -p promlearn-watch --bench detect --profile dev -- knn`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
    time::Instant,
};

use anyhow::{Context, bail};
use promlearn_detect::DETECTOR_NAMES;
use promlearn_loader::Labels;
use promlearn_nab::{
    Corpus, DataFile, Profile, Results, Scored, Sweep, devops::Incident, score, write_results,
};
use promlearn_watch::{
    Config,
    backtest::{self, MemorySource},
};

/// The schedule every file is replayed with, the same for the whole corpus: NAB's data is mostly
/// 5-minute samples, so the watch infers every 5 minutes; refits come daily on a week of history
/// (long enough for a daily profile, short enough to follow a new normal). A series is forgotten
/// (model and alerting state) only after a week without samples: NAB's hourly and irregular
/// files have gaps of hours that a live 5-minute series would not.
const NAB_SCHEDULE: &str = r#"
step = "5m"
infer_every = "5m"
fit_every = "1d"
fit_window = "7d"
"#;
/// Top-level settings of the same configuration.
const NAB_SERVICE: &str = r#"stale_after = "7d""#;

/// Comma-separated parts of file names: only the files whose names hold one are replayed.
const FILES_ENV: &str = "PROMLEARN_NAB_FILES";
/// TOML keys (`;` between them) added to every detector's query: what a team knows.
const KNOWLEDGE_ENV: &str = "PROMLEARN_NAB_KNOWLEDGE";

/// The scoreboard detectors whose published results are re-scored in the same run.
const PUBLISHED: [&str; 3] = ["windowedGaussian", "numenta", "ARTime"];
/// The scoreboard's best, for the last line.
const ARTIME_STANDARD: f64 = 74.85;
/// What the best shipped detector must reach (HTM's level).
const TARGET: f64 = 70.0;
/// What the best shipped detector must reach on the DevOps corpus.
const DEVOPS_TARGET: f64 = 75.0;
/// The largest difference allowed between our scorer and NAB's own on the same results files.
const SCORER_TOLERANCE: f64 = 0.01;

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .context("finding the repository's root")?;
    let nab_dir = root.join("fixtures/nab");
    let only = std::env::var(FILES_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty());
    let devops_dir = root.join("fixtures/devops");
    let devops_out = root.join("target/devops-results");
    let out_dir = root.join(match only {
        Some(_) => "target/nab-results-subset",
        None => "target/nab-results",
    });
    let corpus = Corpus::load(&nab_dir).context("reading NAB from fixtures/nab")?;
    let corpus = match &only {
        Some(parts) => subset(&corpus, parts)?,
        None => corpus,
    };
    for repair in corpus.repairs() {
        eprintln!("warning: {repair}");
    }
    let devops =
        Corpus::load(&devops_dir).context("reading the DevOps corpus from fixtures/devops")?;
    let kinds = incident_kinds(&devops)?;
    eprintln!(
        "NAB: {} files, {} rows, {} windows; results in {}",
        corpus.files().len(),
        corpus.row_count(),
        corpus.window_count(),
        out_dir.display()
    );
    eprintln!(
        "DevOps: {} files, {} rows, {} windows; results in {}",
        devops.files().len(),
        devops.row_count(),
        devops.window_count(),
        devops_out.display()
    );
    let profiles = [
        Profile::standard(),
        Profile::reward_low_fp_rate(),
        Profile::reward_low_fn_rate(),
    ];

    for name in PUBLISHED.into_iter().filter(|_| only.is_none()) {
        let results = promlearn_nab::read_published(
            &nab_dir.join("published").join(format!("{name}.csv.gz")),
        )?;
        let sweep = Sweep::new(&corpus, &results)?;
        let [s, f, n] = profiles.each_ref().map(|p| sweep.score(p).normalized);
        println!("published {name}: standard {s:.2}, low-FP {f:.2}, low-FN {n:.2}");
    }

    for (dir, c) in [(&out_dir, &corpus), (&devops_out, &devops)] {
        std::fs::create_dir_all(dir)?;
        write_results(dir, c, &Results::constant(c, "null", 0.5))?;
    }
    // `cargo bench ... -- knn mad` runs only those (cargo adds `--bench` itself).
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if let Some(unknown) = chosen
        .iter()
        .find(|c| !DETECTOR_NAMES.contains(&c.as_str()))
    {
        bail!(
            "no detector is called `{unknown}`: name some of {}",
            DETECTOR_NAMES.join(", ")
        );
    }
    let mut best: Option<(String, f64)> = None;
    let mut best_devops: Option<(String, f64)> = None;
    for kind in DETECTOR_NAMES
        .into_iter()
        .filter(|k| chosen.is_empty() || chosen.iter().any(|c| c == k))
    {
        let config = nab_config(kind)?;
        if let Ok(knowledge) = std::env::var(KNOWLEDGE_ENV) {
            println!("knowledge for {kind}: {knowledge}");
        }
        let mut standards = [0.0; 2];
        for (at, (c, dir, label)) in [
            (&corpus, &out_dir, "detector"),
            (&devops, &devops_out, "devops"),
        ]
        .into_iter()
        .enumerate()
        {
            let started = Instant::now();
            let replayed = replay(c, &config, kind)?;
            let wall = started.elapsed();
            let sweep = Sweep::new(c, &replayed.scores)?;
            let [standard, low_fp, low_fn] = profiles.each_ref().map(|p| sweep.score(p));
            let [s, f, n] = [&standard, &low_fp, &low_fn].map(|scored| scored.normalized);
            write_per_file(dir, &standard)?;
            let deployed = score_at_flag(c, &replayed.flags)?;
            let caught = if label == "devops" {
                format!("; {}", caught_by_flag(c, &replayed.flags, &kinds))
            } else {
                String::new()
            };
            println!(
                "{label} {kind}: standard {s:.2}, low-FP {f:.2}, low-FN {n:.2}; as deployed {:.2}; \
                 corpus {:.1} s{caught}",
                deployed.normalized,
                wall.as_secs_f64()
            );
            write_results(dir, c, &replayed.scores)?;
            write_results(dir, c, &replayed.flags)?;
            standards[at] = s;
        }
        if best.as_ref().is_none_or(|(_, b)| standards[0] > *b) {
            best = Some((kind.to_owned(), standards[0]));
        }
        if best_devops.as_ref().is_none_or(|(_, b)| standards[1] > *b) {
            best_devops = Some((kind.to_owned(), standards[1]));
        }
    }
    let (best_name, best_standard) = best.context("no detector was run")?;
    let (devops_name, devops_standard) = best_devops.context("no detector was run")?;

    match std::env::var_os("PROMLEARN_PEER_PYTHON").filter(|_| only.is_none()) {
        Some(python) => {
            for (dir, c, out, name) in [
                (&nab_dir, &corpus, &out_dir, &best_name),
                (&devops_dir, &devops, &devops_out, &devops_name),
            ] {
                check_with_nab_scorer(
                    Path::new(&python),
                    dir,
                    &nab_dir,
                    out,
                    c,
                    &detector_name(name),
                )?;
            }
        }
        None => eprintln!(
            "NAB's own scorer: not run (no PROMLEARN_PEER_PYTHON; `cargo xtask bench detect` \
             installs pandas and sets it)"
        ),
    }
    println!(
        "nab score: {best_standard:.2} (standard, detector {best_name}; target >= {TARGET:.1}; \
         ARTime {ARTIME_STANDARD})"
    );
    println!(
        "devops score: {devops_standard:.2} (standard, detector {devops_name}; target >= \
         {DEVOPS_TARGET:.1})"
    );
    Ok(())
}

/// Each DevOps window's incident kind, in the corpus's file and window order, from the
/// generator that wrote `fixtures/devops` (checked to be the same files by its test).
fn incident_kinds(devops: &Corpus) -> anyhow::Result<Vec<Vec<Incident>>> {
    let generated = promlearn_nab::devops::scenarios();
    devops
        .files()
        .iter()
        .map(|f| {
            let s = generated
                .iter()
                .find(|s| s.name == f.name())
                .with_context(|| format!("fixtures/devops/data/{} is not generated", f.name()))?;
            if s.incidents.len() != f.windows().len() {
                bail!("fixtures/devops is out of date: regenerate it (crates/nab/src/devops.rs)");
            }
            Ok(s.incidents.iter().map(|&(_, k)| k).collect())
        })
        .collect()
}

/// How many incident windows hold at least one alert of the detector's own 0/1 flag (after
/// probation), and the kinds of those that hold none.
fn caught_by_flag(corpus: &Corpus, flags: &Results, kinds: &[Vec<Incident>]) -> String {
    let (mut caught, mut total, mut missed) = (0, 0, Vec::new());
    for (file, kinds) in corpus.files().iter().zip(kinds) {
        let Some(scores) = flags.get(file.name()).map(|r| &r.scores) else {
            continue;
        };
        let ts = file.timestamps();
        let probation = file.probation_len();
        for (w, kind) in file.windows().iter().zip(kinds) {
            total += 1;
            let hit = (probation..ts.len())
                .any(|i| (w.start..=w.end).contains(&ts[i]) && scores[i] >= 0.5);
            if hit {
                caught += 1;
            } else {
                missed.push(format!("{} in {}", kind.name(), file.file_name()));
            }
        }
    }
    if missed.is_empty() {
        format!("caught {caught} of {total} incidents")
    } else {
        format!(
            "caught {caught} of {total} incidents (missed: {})",
            missed.join(", ")
        )
    }
}

/// Writes a detector's per-file scores as NAB's `<detector>_<profile>_scores.csv` (the
/// columns of `fixtures/nab/published/`), so where it wins and loses compares file by file with
/// the scoreboard's detectors.
fn write_per_file(out_dir: &Path, scored: &Scored) -> anyhow::Result<()> {
    let mut text = String::from("Detector,Profile,File,Threshold,Score,TP,TN,FP,FN,Total_Count\n");
    for f in &scored.per_file {
        text.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            scored.detector,
            scored.profile,
            f.file,
            scored.threshold,
            f.score,
            f.tp,
            f.tn,
            f.fp,
            f.fn_,
            f.total
        ));
    }
    let path = out_dir.join(format!("{}_{}_scores.csv", scored.detector, scored.profile));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Keeps the files of `corpus` whose names contain one of the comma-separated `parts`.
fn subset(corpus: &Corpus, parts: &str) -> anyhow::Result<Corpus> {
    let parts: Vec<&str> = parts
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let files: Vec<DataFile> = corpus
        .files()
        .iter()
        .filter(|f| parts.iter().any(|p| f.name().contains(p)))
        .cloned()
        .collect();
    if files.is_empty() {
        bail!("{FILES_ENV}: no NAB file's name contains any of {parts:?}");
    }
    for f in &files {
        println!("file: {}", f.name());
    }
    Ok(Corpus::new(files, corpus.profiles().to_vec()))
}

/// The results directory name of a detector (NAB's scorer keys everything by it).
fn detector_name(kind: &str) -> String {
    format!("promlearn-{kind}")
}

/// One configuration for the whole corpus: the schedule and the detector at its defaults.
fn nab_config(kind: &str) -> anyhow::Result<Config> {
    let toml = format!(
        "endpoint = \"http://127.0.0.1:9\"\n\
         {NAB_SERVICE}\n\
         [[query]]\n\
         name = \"nab\"\n\
         expr = \"unused: the series come from NAB's files\"\n\
         detector = {{ kind = \"{kind}\" }}\n\
         {NAB_SCHEDULE}\n\
         {}",
        std::env::var(KNOWLEDGE_ENV)
            .unwrap_or_default()
            .replace(';', "\n")
    );
    Ok(Config::from_toml(
        &toml,
        "the NAB benchmark's configuration",
    )?)
}

/// A detector's replay of the corpus: its scores mapped to NAB's [0, 1], and its 0/1 flag.
struct Replayed {
    scores: Results,
    flags: Results,
}

/// Replays every file through the backtest, two files at a time (the machine's cores).
fn replay(corpus: &Corpus, config: &Config, kind: &str) -> anyhow::Result<Replayed> {
    let name = detector_name(kind);
    let out = Mutex::new(Replayed {
        scores: Results::new(name.clone()),
        flags: Results::new(format!("{name}-flag")),
    });
    let next = Mutex::new(corpus.files().iter());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let Some(file) = next.lock().expect("not poisoned").next() else {
                            return Ok(());
                        };
                        let (scores, flags) = replay_file(config, file)
                            .with_context(|| format!("replaying {} with {kind}", file.name()))?;
                        let mut out = out.lock().expect("not poisoned");
                        out.scores.insert_cleaned(file, &scores)?;
                        out.flags.insert_cleaned(file, &flags)?;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("a replay thread panicked")?;
        }
        Ok(())
    })?;
    Ok(out.into_inner().expect("not poisoned"))
}

/// One file through the backtest: per cleaned point, the score mapped to [0, 1] by
/// `s / (1 + s)` (monotonic, so the optimised threshold is the same; the flag's edge, score 1,
/// becomes 0.5) and the 0/1 flag. Points the detector did not judge score 0.
fn replay_file(config: &Config, file: &DataFile) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let cleaned = file.cleaned();
    let source = MemorySource::new(vec![(
        Labels::from_pairs([("file", file.name())]),
        cleaned.timestamps.clone(),
        cleaned.values.clone(),
    )])?;
    let n = cleaned.timestamps.len();
    let (mut scores, mut flags) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (first, last) = (cleaned.timestamps[0], cleaned.timestamps[n - 1]);
    backtest::run(config, &source, first, last, &mut |p| {
        let s = if p.score.is_nan() { 0.0 } else { p.score };
        scores.push(if s.is_infinite() { 1.0 } else { s / (1.0 + s) });
        flags.push(if p.anomalous { 1.0 } else { 0.0 });
        Ok(())
    })?;
    if scores.len() != n {
        bail!(
            "the backtest handed on {} of the file's {n} points (each must come exactly once)",
            scores.len()
        );
    }
    Ok((scores, flags))
}

/// NAB's standard score of alerting exactly on the 0/1 flag: a row is a detection when its flag
/// is 1, which is the threshold 0.5 on a 0/1 score.
fn score_at_flag(corpus: &Corpus, flags: &Results) -> anyhow::Result<Scored> {
    Ok(promlearn_nab::score_at(
        corpus,
        flags,
        &Profile::standard(),
        0.5,
    )?)
}

/// Runs NAB's own Python scorer (`fixtures/nab/scorer`) on the results files of `detector`
/// (scores and flag) and fails when its standard figures differ from ours.
fn check_with_nab_scorer(
    python: &Path,
    corpus_dir: &Path,
    nab_dir: &Path,
    out_dir: &Path,
    corpus: &Corpus,
    detector: &str,
) -> anyhow::Result<()> {
    let flag = format!("{detector}-flag");
    let thresholds = out_dir.join("nab-thresholds.json");
    std::fs::copy(nab_dir.join("config/thresholds.json"), &thresholds)?;
    let started = Instant::now();
    let output = Command::new(python)
        .current_dir(nab_dir.join("scorer"))
        .args(["run.py", "-d", &format!("null,{detector},{flag}")])
        .args(["--optimize", "--score", "--normalize", "--skipConfirmation"])
        .arg("--dataDir")
        .arg(corpus_dir.join("data"))
        .arg("--windowsFile")
        .arg(corpus_dir.join("labels/combined_windows.json"))
        .arg("-p")
        .arg(nab_dir.join("config/profiles.json"))
        .arg("-t")
        .arg(thresholds)
        .arg("--resultsDir")
        .arg(out_dir)
        .output()
        .context("starting NAB's scorer")?;
    if !output.status.success() {
        bail!(
            "NAB's scorer failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = std::fs::read_to_string(out_dir.join("final_results.json"))
        .context("reading NAB's final_results.json")?;
    let theirs: serde_json::Value = serde_json::from_str(&text)?;
    let read = |name: &str| -> anyhow::Result<f64> {
        theirs[name]["standard"]
            .as_f64()
            .with_context(|| format!("final_results.json has no standard score for {name}"))
    };
    let ours_scores = score(
        corpus,
        &promlearn_nab::read_results(out_dir, detector, corpus)?,
        &Profile::standard(),
    )?
    .normalized;
    let ours_flag = score_at_flag(
        corpus,
        &promlearn_nab::read_results(out_dir, &flag, corpus)?,
    )?
    .normalized;
    let (theirs_scores, theirs_flag) = (read(detector)?, read(&flag)?);
    println!(
        "NAB's own scorer on {}: {detector} standard {theirs_scores:.2} (ours {ours_scores:.2}), \
         {flag} {theirs_flag:.2} (ours as deployed {ours_flag:.2}); {:.0} s",
        corpus_dir
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
        started.elapsed().as_secs_f64()
    );
    // NAB optimises the flag's threshold too; on a 0/1 score its best is 1.0 (the flag) unless
    // never alerting scores higher, in which case ours (at the flag) is the lower one.
    if (theirs_scores - ours_scores).abs() > SCORER_TOLERANCE
        || theirs_flag + SCORER_TOLERANCE < ours_flag
    {
        bail!("NAB's own scorer disagrees with promlearn-nab on the same results files");
    }
    Ok(())
}
