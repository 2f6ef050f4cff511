//! A detector's results, one anomaly score per original row of every file, and NAB's files for
//! them: results directories (`<dir>/<detector>/<category>/<detector>_<file>.csv`, header
//! `timestamp,value,anomaly_score,label`) written and read, and the published
//! `published/<detector>.csv.gz` (`file,timestamp,anomaly_score`) read.
//!
//! CSV is read and written by hand: NAB's files are unquoted numbers and timestamps, columns are
//! found by header name (NAB's scorer appends `S(t)_<profile>` columns to results files), and a
//! few lines give errors that name the file and line.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use crate::{
    Corpus, Error,
    text::{Table, read_text},
    time::format_timestamp,
};

/// One file's results: the timestamp and anomaly score of every original row, in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct FileResults {
    /// Unix milliseconds, the data file's own (repeats and steps back included).
    pub timestamps: Vec<i64>,
    /// Anomaly scores in `[0, 1]`.
    pub scores: Vec<f64>,
}

/// A detector's results over a corpus: per data file, one anomaly score per original row.
#[derive(Clone, Debug, PartialEq)]
pub struct Results {
    detector: String,
    files: BTreeMap<String, FileResults>,
}

impl Results {
    /// Empty results of the detector `detector` (its name in results directories).
    pub fn new(detector: impl Into<String>) -> Self {
        Results {
            detector: detector.into(),
            files: BTreeMap::new(),
        }
    }

    /// The same `score` (clamped into `[0, 1]`) for every row of every file of `corpus`. With
    /// 0.5 this is NAB's null detector, which normalisation is measured from.
    pub fn constant(corpus: &Corpus, detector: impl Into<String>, score: f64) -> Self {
        let mut results = Results::new(detector);
        for file in corpus.files() {
            let n = file.timestamps().len();
            results.files.insert(
                file.name().to_owned(),
                FileResults {
                    timestamps: file.timestamps().to_vec(),
                    scores: vec![score.clamp(0.0, 1.0); n],
                },
            );
        }
        results
    }

    /// The detector's name.
    pub fn detector(&self) -> &str {
        &self.detector
    }

    /// Adds (or replaces) the results of the data file `file` (`realKnownCause/nyc_taxi.csv`):
    /// one timestamp and score per original row. Refuses lengths that differ and scores that are
    /// not in `[0, 1]` (NAB's scores are; a NaN would break the threshold sweep).
    pub fn insert(
        &mut self,
        file: &str,
        timestamps: Vec<i64>,
        scores: Vec<f64>,
    ) -> Result<(), Error> {
        if timestamps.len() != scores.len() {
            return Err(Error::results(
                &self.detector,
                file,
                format!(
                    "{} timestamps but {} scores: give one score per row",
                    timestamps.len(),
                    scores.len()
                ),
            ));
        }
        if let Some(row) = scores.iter().position(|s| !(0.0..=1.0).contains(s)) {
            return Err(Error::results(
                &self.detector,
                file,
                format!(
                    "row {row} has the anomaly score {}; NAB's scores are in [0, 1]: map the \
                     detector's score into that range (e.g. s / (1 + s) for a score >= 0)",
                    scores[row]
                ),
            ));
        }
        self.files
            .insert(file.to_owned(), FileResults { timestamps, scores });
        Ok(())
    }

    /// Adds (or replaces) the results of `file` from one score per point of its cleaned series
    /// ([`crate::DataFile::cleaned`]), spread back onto every original row
    /// ([`crate::Cleaned::expand`]): the rows of a repeated timestamp share their point's score.
    pub fn insert_cleaned(
        &mut self,
        file: &crate::DataFile,
        per_point: &[f64],
    ) -> Result<(), Error> {
        let points = file.cleaned().timestamps.len();
        if per_point.len() != points {
            return Err(Error::results(
                &self.detector,
                file.name(),
                format!(
                    "{} scores for a cleaned series of {points} points: give one score per \
                     point of DataFile::cleaned",
                    per_point.len()
                ),
            ));
        }
        let scores = file.cleaned().expand(per_point);
        self.insert(file.name(), file.timestamps().to_vec(), scores)
    }

    /// The results of the data file `file`, if there are any.
    pub fn get(&self, file: &str) -> Option<&FileResults> {
        self.files.get(file)
    }

    /// Every file's results, in name order.
    pub fn files(&self) -> impl Iterator<Item = (&str, &FileResults)> {
        self.files.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Checks that these results cover `corpus` exactly: every file, its row count and each
    /// row's timestamp.
    pub fn check(&self, corpus: &Corpus) -> Result<(), Error> {
        for file in corpus.files() {
            let got = self.files.get(file.name()).ok_or_else(|| {
                Error::results(
                    &self.detector,
                    file.name(),
                    "missing: a NAB score needs results for every file of the corpus",
                )
            })?;
            if got.timestamps.len() != file.timestamps().len() {
                return Err(Error::results(
                    &self.detector,
                    file.name(),
                    format!(
                        "{} rows, the data file has {}: write one row per original data row \
                         (repeated timestamps included; Cleaned::expand spreads a cleaned \
                         series' scores back)",
                        got.timestamps.len(),
                        file.timestamps().len()
                    ),
                ));
            }
            if let Some(row) =
                (0..got.timestamps.len()).find(|&i| got.timestamps[i] != file.timestamps()[i])
            {
                return Err(Error::results(
                    &self.detector,
                    file.name(),
                    format!(
                        "row {row} has the timestamp {}, the data file {}: keep the data file's \
                         rows in file order",
                        format_timestamp(got.timestamps[row]),
                        format_timestamp(file.timestamps()[row])
                    ),
                ));
            }
        }
        if let Some(extra) = self.files.keys().find(|k| corpus.file(k).is_none()) {
            return Err(Error::results(
                &self.detector,
                extra,
                "not a file of the corpus: results must use the data files' names",
            ));
        }
        Ok(())
    }
}

/// The path NAB gives a file's results: `<dir>/<detector>/<category>/<detector>_<file>.csv`.
pub fn results_path(dir: &Path, detector: &str, file: &str) -> PathBuf {
    let (category, name) = file.rsplit_once('/').unwrap_or(("", file));
    dir.join(detector)
        .join(category)
        .join(format!("{detector}_{name}"))
}

/// Writes `results` as NAB's results files under `dir` (see [`results_path`]): header
/// `timestamp,value,anomaly_score,label`, one row per original data row, `label` 1 inside a
/// window and 0 outside, as NAB writes it. NAB's own scorer reads these (fixtures/nab/README.md).
pub fn write_results(dir: &Path, corpus: &Corpus, results: &Results) -> Result<(), Error> {
    results.check(corpus)?;
    for file in corpus.files() {
        let got = &results.files[file.name()];
        let path = results_path(dir, results.detector(), file.name());
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        let out = fs::File::create(&path).map_err(|e| Error::io("create", &path, e))?;
        let mut out = BufWriter::new(out);
        let labels = file.labels();
        let write = |out: &mut BufWriter<fs::File>| -> std::io::Result<()> {
            writeln!(out, "timestamp,value,anomaly_score,label")?;
            for (i, &t) in file.timestamps().iter().enumerate() {
                writeln!(
                    out,
                    "{},{},{},{}",
                    format_timestamp(t),
                    file.values()[i],
                    got.scores[i],
                    labels[i]
                )?;
            }
            out.flush()
        };
        write(&mut out).map_err(|e| Error::io("write", &path, e))?;
    }
    Ok(())
}

/// Reads the results of `detector` for every file of `corpus` from the results directory `dir`
/// (see [`results_path`]), as NAB's scorer does: the `anomaly_score` column, row by row.
pub fn read_results(dir: &Path, detector: &str, corpus: &Corpus) -> Result<Results, Error> {
    let mut results = Results::new(detector);
    for file in corpus.files() {
        let path = results_path(dir, detector, file.name());
        let text = read_text(&path)?;
        let mut table = Table::new(&path, &text);
        let (t_col, s_col) = (table.column("timestamp")?, table.column("anomaly_score")?);
        let (mut timestamps, mut scores) = (Vec::new(), Vec::new());
        while let Some(row) = table.next_row() {
            timestamps.push(table.timestamp(&row, t_col)?);
            scores.push(table.number(&row, s_col)?);
        }
        results.insert(file.name(), timestamps, scores)?;
    }
    Ok(results)
}

/// Reads published scores: a gzipped CSV `file,timestamp,anomaly_score` (NAB's
/// `published/<detector>.csv.gz`), rows of a file in file order. The detector is named after
/// the file (`numenta.csv.gz`: `numenta`).
pub fn read_published(path: &Path) -> Result<Results, Error> {
    let raw = fs::File::open(path).map_err(|e| Error::io("read", path, e))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(raw)
        .read_to_string(&mut text)
        .map_err(|e| Error::io("read", path, e))?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let detector = file_name.split('.').next().unwrap_or(file_name);
    let mut table = Table::new(path, &text);
    let f_col = table.column("file")?;
    let (t_col, s_col) = (table.column("timestamp")?, table.column("anomaly_score")?);
    let mut per_file: BTreeMap<&str, (Vec<i64>, Vec<f64>)> = BTreeMap::new();
    while let Some(row) = table.next_row() {
        let entry = per_file.entry(table.field(&row, f_col)?).or_default();
        entry.0.push(table.timestamp(&row, t_col)?);
        entry.1.push(table.number(&row, s_col)?);
    }
    let mut results = Results::new(detector);
    for (file, (timestamps, scores)) in per_file {
        results.insert(file, timestamps, scores)?;
    }
    Ok(results)
}
