//! NAB's scorer, ported from `nab/sweeper.py` (`calcScoreByThreshold`, `scoreDataSet`),
//! `nab/optimizer.py`, `nab/scorer.py` and `nab/runner.py` (`normalize`).
//!
//! A row is a detection when its anomaly score is at or above the threshold. A file's score is
//! the sum, over its windows, of the best detection's weighted reward in each (or minus the FN
//! weight when a window has none), plus the weighted (negative) scores of the detections outside
//! every window; probation rows never count. The threshold is optimised once per profile across
//! the corpus: like NAB, every distinct anomaly score is tried as a threshold (plus 1.1, never
//! alert) and the best corpus total wins, ties going to the highest threshold. The scores are
//! sorted once ([`Sweep::new`]); each threshold then costs the rows whose score it adds. The
//! normalised score is `100 * (raw - null) / (perfect - null)`.
//!
//! Sums are taken in NAB's order (NAB's dict of window parts, in order of first appearance in
//! the sorted rows), so ties between thresholds break as in NAB.

use crate::{
    Corpus, Error, Profile, Results,
    sweep::{Place, scaled_sigmoid},
};

/// The threshold NAB's sweep starts from: above every score, so nothing is detected.
pub const NEVER: f64 = 1.1;

/// One file's score at a threshold, as a line of NAB's `<detector>_<profile>_scores.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct FileScore {
    /// The data file (`realKnownCause/nyc_taxi.csv`).
    pub file: String,
    /// The file's raw NAB score.
    pub score: f64,
    /// Scored rows inside a window that are detections.
    pub tp: usize,
    /// Scored rows outside every window that are not detections.
    pub tn: usize,
    /// Scored rows outside every window that are detections.
    pub fp: usize,
    /// Scored rows inside a window that are not detections.
    pub fn_: usize,
    /// Scored rows (the file's rows after probation).
    pub total: usize,
}

/// A detector's NAB score under one profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    /// The detector's name.
    pub detector: String,
    /// The profile's name.
    pub profile: String,
    /// The threshold on the anomaly score: optimised by [`score`], given to [`score_at`].
    pub threshold: f64,
    /// The sum of the files' raw scores (NAB's `Totals` line).
    pub raw: f64,
    /// The null detector's raw score (never alerting): normalised 0.
    pub null: f64,
    /// The perfect detector's raw score: normalised 100.
    pub perfect: f64,
    /// NAB's score: `100 * (raw - null) / (perfect - null)`, the scoreboard's figure.
    pub normalized: f64,
    /// Every file's score, in the corpus's name order.
    pub per_file: Vec<FileScore>,
}

impl Scored {
    /// The files' scores and counts summed (NAB's `Totals` line; `file` is `Totals`).
    pub fn totals(&self) -> FileScore {
        let mut t = FileScore {
            file: "Totals".to_owned(),
            score: 0.0,
            tp: 0,
            tn: 0,
            fp: 0,
            fn_: 0,
            total: 0,
        };
        for f in &self.per_file {
            t.score += f.score;
            t.tp += f.tp;
            t.tn += f.tn;
            t.fp += f.fp;
            t.fn_ += f.fn_;
            t.total += f.total;
        }
        t
    }
}

/// A scored row: its anomaly score, file, window (`u32::MAX` outside) and unweighted reward.
#[derive(Clone, Copy, Debug)]
struct Point {
    score: f64,
    unweighted: f64,
    file: u32,
    window: u32,
}

const OUTSIDE: u32 = u32::MAX;

/// A detector's results prepared for scoring: the scored rows of every file, sorted once by
/// anomaly score. Score it under any number of profiles and thresholds.
#[derive(Clone, Debug)]
pub struct Sweep<'a> {
    corpus: &'a Corpus,
    detector: String,
    /// Scored rows, highest anomaly score first (ties in corpus and file order).
    points: Vec<Point>,
    /// Every window with a scored row, in order of its first row in `points` (NAB's dict order).
    window_order: Vec<u32>,
    /// The file of each window.
    window_file: Vec<u32>,
    /// Per file: its windows in the order of `window_order`.
    file_windows: Vec<Vec<u32>>,
    /// Per file: scored rows inside windows, and outside.
    file_rows: Vec<(usize, usize)>,
}

impl<'a> Sweep<'a> {
    /// Prepares `results` for scoring on `corpus`; they must cover it exactly (every file,
    /// every original row, the data files' timestamps).
    pub fn new(corpus: &'a Corpus, results: &Results) -> Result<Self, Error> {
        results.check(corpus)?;
        let mut points = Vec::new();
        let mut window_file = Vec::new();
        let mut file_rows = Vec::with_capacity(corpus.files().len());
        for (f, file) in corpus.files().iter().enumerate() {
            let scores = &results
                .get(file.name())
                .expect("checked: results cover the corpus")
                .scores;
            let base = window_file.len() as u32;
            let local_windows = file.windows().len() as u32;
            window_file.extend(std::iter::repeat_n(f as u32, local_windows as usize));
            let (mut inside, mut outside) = (0, 0);
            for (row, &score) in file.sweep.iter().zip(scores) {
                let window = match row.place {
                    Place::Probation => continue,
                    Place::Outside => {
                        outside += 1;
                        OUTSIDE
                    }
                    Place::Window(w) => {
                        inside += 1;
                        base + w
                    }
                };
                points.push(Point {
                    score,
                    unweighted: row.unweighted,
                    file: f as u32,
                    window,
                });
            }
            file_rows.push((inside, outside));
        }
        // Stable, as Python's sorted(..., reverse=True): ties keep corpus and file order.
        // (Results refuse NaN; -0.0 and 0.0 tie, as in Python.)
        points.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut seen = vec![false; window_file.len()];
        let mut window_order = Vec::new();
        let mut file_windows = vec![Vec::new(); corpus.files().len()];
        for p in &points {
            if p.window != OUTSIDE && !seen[p.window as usize] {
                seen[p.window as usize] = true;
                window_order.push(p.window);
                file_windows[p.file as usize].push(p.window);
            }
        }
        Ok(Sweep {
            corpus,
            detector: results.detector().to_owned(),
            points,
            window_order,
            window_file,
            file_windows,
            file_rows,
        })
    }

    /// A point's weighted reward under `profile` (NAB's `sweepScore`).
    fn weighted(p: &Point, profile: &Profile, max_tp: f64) -> f64 {
        if p.window == OUTSIDE {
            p.unweighted * profile.fp_weight
        } else {
            p.unweighted * profile.tp_weight / max_tp
        }
    }

    /// The threshold NAB's optimiser picks for `profile`: the one with the best corpus total,
    /// the highest of equal ones; [`NEVER`] when never alerting is best.
    pub fn optimal_threshold(&self, profile: &Profile) -> f64 {
        let max_tp = scaled_sigmoid(-1.0);
        let mut parts = vec![-profile.fn_weight; self.window_file.len()];
        let mut fp = 0.0;
        let total = |fp: f64, parts: &[f64]| {
            self.window_order
                .iter()
                .fold(fp, |s, &w| s + parts[w as usize])
        };
        let mut current = NEVER;
        let (mut best_threshold, mut best) = (NEVER, f64::NEG_INFINITY);
        for p in &self.points {
            if p.score != current {
                let s = total(fp, &parts);
                if s > best {
                    (best_threshold, best) = (current, s);
                }
                current = p.score;
            }
            let w = Self::weighted(p, profile, max_tp);
            if p.window == OUTSIDE {
                fp += w;
            } else {
                let part = &mut parts[p.window as usize];
                *part = part.max(w);
            }
        }
        if total(fp, &parts) > best {
            best_threshold = current;
        }
        best_threshold
    }

    /// NAB's score under `profile` at the optimised threshold (NAB's `--optimize --score
    /// --normalize`).
    pub fn score(&self, profile: &Profile) -> Scored {
        self.score_at(profile, self.optimal_threshold(profile))
    }

    /// NAB's score under `profile` with detections at anomaly scores `>= threshold`: 0.5 scores
    /// a detector's own 0/1 flag as deployed; [`NEVER`] never alerts.
    pub fn score_at(&self, profile: &Profile, threshold: f64) -> Scored {
        let max_tp = scaled_sigmoid(-1.0);
        let files = self.corpus.files();
        let mut parts = vec![-profile.fn_weight; self.window_file.len()];
        let mut fp_sum = vec![0.0; files.len()];
        let mut tp = vec![0usize; files.len()];
        let mut fp = vec![0usize; files.len()];
        for p in self.points.iter().take_while(|p| p.score >= threshold) {
            let f = p.file as usize;
            let w = Self::weighted(p, profile, max_tp);
            if p.window == OUTSIDE {
                fp_sum[f] += w;
                fp[f] += 1;
            } else {
                tp[f] += 1;
                let part = &mut parts[p.window as usize];
                *part = part.max(w);
            }
        }
        let per_file: Vec<FileScore> = files
            .iter()
            .enumerate()
            .map(|(f, file)| {
                let score = self.file_windows[f]
                    .iter()
                    .fold(fp_sum[f], |s, &w| s + parts[w as usize]);
                let (inside, outside) = self.file_rows[f];
                FileScore {
                    file: file.name().to_owned(),
                    score,
                    tp: tp[f],
                    tn: outside - fp[f],
                    fp: fp[f],
                    fn_: inside - tp[f],
                    total: inside + outside,
                }
            })
            .collect();
        let raw = per_file.iter().fold(0.0, |s, f| s + f.score);
        let null = self.corpus.null_score(profile);
        let perfect = self.corpus.perfect_score(profile);
        Scored {
            detector: self.detector.clone(),
            profile: profile.name.clone(),
            threshold,
            raw,
            null,
            perfect,
            normalized: 100.0 * (raw - null) / (perfect - null),
            per_file,
        }
    }
}

/// NAB's score of `results` on `corpus` under `profile`, at the threshold optimised across the
/// corpus. To score several profiles, make one [`Sweep`] and call [`Sweep::score`] on it.
pub fn score(corpus: &Corpus, results: &Results, profile: &Profile) -> Result<Scored, Error> {
    Ok(Sweep::new(corpus, results)?.score(profile))
}

/// NAB's score of `results` on `corpus` under `profile` at a fixed `threshold` (detections at
/// anomaly scores `>= threshold`).
pub fn score_at(
    corpus: &Corpus,
    results: &Results,
    profile: &Profile,
    threshold: f64,
) -> Result<Scored, Error> {
    Ok(Sweep::new(corpus, results)?.score_at(profile, threshold))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataFile, Window};

    /// Twenty rows a minute apart (probation: 3 rows), one window over rows 8..=11, and a
    /// detector that scores row 8 (the window's left edge) 0.9, row 10 0.8 and row 15 (after
    /// the window) 0.7.
    fn one_file() -> (Corpus, Results) {
        let ts: Vec<i64> = (0..20).map(|i| i * 60_000).collect();
        let window = Window {
            start: ts[8],
            end: ts[11],
        };
        let file = DataFile::new("cat/a.csv", ts.clone(), vec![0.0; 20], vec![window])
            .expect("a valid file");
        let corpus = Corpus::new(vec![file], Profile::nab());
        let mut scores = vec![0.0; 20];
        (scores[8], scores[10], scores[15]) = (0.9, 0.8, 0.7);
        let mut results = Results::new("hand");
        results.insert("cat/a.csv", ts, scores).expect("valid");
        (corpus, results)
    }

    #[test]
    fn a_detection_at_a_windows_left_edge_is_perfect() {
        let (corpus, results) = one_file();
        let sweep = Sweep::new(&corpus, &results).expect("fits");
        let standard = Profile::standard();
        let s = sweep.score_at(&standard, 0.9);
        assert_eq!(
            (s.raw, s.null, s.perfect, s.normalized),
            (1.0, -1.0, 1.0, 100.0)
        );
        let f = &s.per_file[0];
        assert_eq!((f.tp, f.tn, f.fp, f.fn_, f.total), (1, 13, 0, 3, 17));
        // Never alerting is the null score.
        assert_eq!(sweep.score_at(&standard, NEVER).normalized, 0.0);
        // Row 15 is an FP 4 rows after a window 4 wide: sigmoid at 4 / 3, times 0.11.
        let s = sweep.score_at(&standard, 0.7);
        assert_eq!(s.raw, 1.0 + scaled_sigmoid(4.0 / 3.0) * 0.11);
        assert_eq!((s.per_file[0].tp, s.per_file[0].fp), (2, 1));
        // At 0: every row detected; the window still counts once, every other row costs.
        let s = sweep.score_at(&Profile::reward_low_fn_rate(), 0.0);
        assert_eq!(s.per_file[0].fp, 13);
        assert!(s.raw < 1.0 - 13.0 * 0.11 * 0.5);
    }

    /// 0.9 and 0.8 detect the same window's best row, so they tie; NAB keeps the first of the
    /// sorted scores, the higher threshold.
    #[test]
    fn the_optimiser_breaks_ties_towards_the_higher_threshold() {
        let (corpus, results) = one_file();
        let sweep = Sweep::new(&corpus, &results).expect("fits");
        let standard = Profile::standard();
        assert_eq!(sweep.score_at(&standard, 0.8).raw, 1.0);
        let s = sweep.score(&standard);
        assert_eq!((s.threshold, s.normalized), (0.9, 100.0));
    }

    /// Rows in probation are never scored, even inside a window: a window wholly in probation
    /// neither rewards nor costs.
    #[test]
    fn probation_rows_never_count() {
        let ts: Vec<i64> = (0..20).map(|i| i * 60_000).collect();
        let early = Window {
            start: ts[0],
            end: ts[2],
        };
        let file = DataFile::new("cat/b.csv", ts.clone(), vec![0.0; 20], vec![early])
            .expect("a valid file");
        let corpus = Corpus::new(vec![file], Profile::nab());
        let mut results = Results::new("early");
        let mut scores = vec![0.0; 20];
        scores[1] = 1.0;
        results.insert("cat/b.csv", ts, scores).expect("valid");
        let s = score_at(&corpus, &results, &Profile::standard(), 0.5).expect("scores");
        assert_eq!((s.raw, s.null, s.perfect), (0.0, 0.0, 1.0));
        assert_eq!((s.per_file[0].tp, s.per_file[0].total), (0, 17));
    }
}
