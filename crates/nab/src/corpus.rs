//! NAB's corpus: the data files with their rows as NAB has them, each file's anomaly windows
//! (`labels/combined_windows.json`), the cleaned series for detectors, and the cost profiles
//! (`config/profiles.json`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::{
    Error,
    clean::{Cleaned, Repair, clean},
    sweep::{RowSweep, probation_len, sweep_rows},
    text::{Table, read_text},
    time::parse_timestamp,
};

/// An anomaly window: the rows from `start` to `end`, both included (unix milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The timestamp of the window's first row.
    pub start: i64,
    /// The timestamp of the window's last row.
    pub end: i64,
}

/// A cost profile (NAB's `CostMatrix`): how much a detection in a window earns and what a false
/// positive and a missed window cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// NAB's name: `standard`, `reward_low_FP_rate` or `reward_low_FN_rate`.
    pub name: String,
    /// The reward of the best-placed detection in a window (NAB's `tpWeight`).
    pub tp_weight: f64,
    /// The cost of a detection outside every window, scaled by the sigmoid (`fpWeight`).
    pub fp_weight: f64,
    /// The cost of a window without any detection (`fnWeight`).
    pub fn_weight: f64,
    /// NAB's `tnWeight`; NAB's scorer does not use it.
    pub tn_weight: f64,
}

impl Profile {
    fn new(name: &str, fp_weight: f64, fn_weight: f64) -> Self {
        Profile {
            name: name.to_owned(),
            tp_weight: 1.0,
            fp_weight,
            fn_weight,
            tn_weight: 1.0,
        }
    }

    /// NAB's `standard` profile: TP 1, FP 0.11, FN 1.
    pub fn standard() -> Self {
        Profile::new("standard", 0.11, 1.0)
    }

    /// NAB's `reward_low_FP_rate` profile: TP 1, FP 0.22, FN 1.
    pub fn reward_low_fp_rate() -> Self {
        Profile::new("reward_low_FP_rate", 0.22, 1.0)
    }

    /// NAB's `reward_low_FN_rate` profile: TP 1, FP 0.11, FN 2.
    pub fn reward_low_fn_rate() -> Self {
        Profile::new("reward_low_FN_rate", 0.11, 2.0)
    }

    /// NAB's three profiles in NAB's order (standard, low FP, low FN).
    pub fn nab() -> Vec<Profile> {
        vec![
            Profile::standard(),
            Profile::reward_low_fp_rate(),
            Profile::reward_low_fn_rate(),
        ]
    }
}

/// One data file: its rows as NAB has them, its windows, and the cleaned series for detectors.
#[derive(Clone, Debug)]
pub struct DataFile {
    name: String,
    timestamps: Vec<i64>,
    values: Vec<f64>,
    windows: Vec<Window>,
    cleaned: Cleaned,
    repairs: Vec<Repair>,
    pub(crate) sweep: Vec<RowSweep>,
}

impl DataFile {
    /// A data file from its rows in file order (unix milliseconds, values) and its windows in
    /// time order. Refuses windows that NAB's scorer refuses: a start or end timestamp that is
    /// not exactly one row's. Repeated or backward timestamps are accepted (see [`Cleaned`]).
    pub fn new(
        name: impl Into<String>,
        timestamps: Vec<i64>,
        values: Vec<f64>,
        windows: Vec<Window>,
    ) -> Result<Self, Error> {
        let name = name.into();
        if timestamps.len() != values.len() {
            return Err(Error::Data {
                file: name,
                problem: format!(
                    "{} timestamps but {} values: give one value per row",
                    timestamps.len(),
                    values.len()
                ),
            });
        }
        for w in &windows {
            for t in [w.start, w.end] {
                let n = timestamps.iter().filter(|&&x| x == t).count();
                if n != 1 {
                    return Err(Error::Windows {
                        file: name,
                        problem: format!(
                            "the window limit {} is the timestamp of {n} rows, NAB needs exactly \
                             one",
                            crate::time::format_timestamp(t)
                        ),
                    });
                }
            }
        }
        let (cleaned, repairs) = clean(&name, &timestamps, &values);
        let sweep = sweep_rows(&timestamps, &windows);
        Ok(DataFile {
            name,
            timestamps,
            values,
            windows,
            cleaned,
            repairs,
            sweep,
        })
    }

    /// The file's name relative to `data/`, as NAB names it: `realKnownCause/nyc_taxi.csv`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The category folder: `realKnownCause`.
    pub fn category(&self) -> &str {
        self.name.rsplit_once('/').map_or("", |(c, _)| c)
    }

    /// The file name without its folder: `nyc_taxi.csv`.
    pub fn file_name(&self) -> &str {
        self.name.rsplit_once('/').map_or(&self.name, |(_, f)| f)
    }

    /// Every row's timestamp in file order (unix milliseconds; may repeat or step back).
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamps
    }

    /// Every row's value in file order.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The anomaly windows, in time order.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// NAB's label of each row: `1` if its timestamp is inside a window (limits included), else
    /// `0` (the `label` column of a results file).
    pub fn labels(&self) -> Vec<u8> {
        self.timestamps
            .iter()
            .map(|&t| u8::from(self.windows.iter().any(|w| (w.start..=w.end).contains(&t))))
            .collect()
    }

    /// How many rows at the start are probation, never scored.
    pub fn probation_len(&self) -> usize {
        probation_len(self.timestamps.len())
    }

    /// The series for detectors: sorted by time, one point per timestamp.
    pub fn cleaned(&self) -> &Cleaned {
        &self.cleaned
    }

    /// What making [`DataFile::cleaned`] repaired (empty for most files).
    pub fn repairs(&self) -> &[Repair] {
        &self.repairs
    }
}

/// NAB's corpus: the data files in name order and the cost profiles.
#[derive(Clone, Debug)]
pub struct Corpus {
    files: Vec<DataFile>,
    profiles: Vec<Profile>,
    window_count: usize,
}

#[derive(Deserialize)]
struct ProfileJson {
    #[serde(rename = "CostMatrix")]
    cost: CostJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CostJson {
    tp_weight: f64,
    fp_weight: f64,
    fn_weight: f64,
    tn_weight: f64,
}

impl Corpus {
    /// Loads NAB from its directory (`fixtures/nab` in this repository): every `*.csv` under
    /// `data/<category>/`, `labels/combined_windows.json` and `config/profiles.json`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Corpus, Error> {
        let dir = dir.as_ref();
        let windows_path = dir.join("labels").join("combined_windows.json");
        let all_windows: BTreeMap<String, Vec<[String; 2]>> =
            serde_json::from_str(&read_text(&windows_path)?).map_err(|source| Error::Json {
                path: windows_path.clone(),
                what: "anomaly windows",
                source,
            })?;
        let window_count = all_windows.values().map(Vec::len).sum();
        let mut files = Vec::new();
        for (name, path) in data_files(&dir.join("data"))? {
            let limits = all_windows.get(&name).ok_or_else(|| Error::Windows {
                file: name.clone(),
                problem: format!(
                    "{} has no entry for it; add `\"{name}\": []` if it has no anomaly",
                    windows_path.display()
                ),
            })?;
            let mut windows = Vec::with_capacity(limits.len());
            for [start, end] in limits {
                let parse = |t: &str| {
                    parse_timestamp(t).ok_or_else(|| Error::Windows {
                        file: name.clone(),
                        problem: format!("{t:?} is not a timestamp `YYYY-MM-DD HH:MM:SS`"),
                    })
                };
                windows.push(Window {
                    start: parse(start)?,
                    end: parse(end)?,
                });
            }
            let (timestamps, values) = read_data(&path)?;
            files.push(DataFile::new(name, timestamps, values, windows)?);
        }
        if let Some(name) = all_windows
            .keys()
            .find(|n| !files.iter().any(|f| &f.name == *n))
        {
            return Err(Error::Windows {
                file: name.clone(),
                problem: format!(
                    "{} names it but there is no data/{name}",
                    windows_path.display()
                ),
            });
        }
        let profiles_path = dir.join("config").join("profiles.json");
        let raw: BTreeMap<String, ProfileJson> = serde_json::from_str(&read_text(&profiles_path)?)
            .map_err(|source| Error::Json {
                path: profiles_path.clone(),
                what: "cost profiles",
                source,
            })?;
        let mut profiles: Vec<Profile> = raw
            .into_iter()
            .map(|(name, p)| Profile {
                name,
                tp_weight: p.cost.tp_weight,
                fp_weight: p.cost.fp_weight,
                fn_weight: p.cost.fn_weight,
                tn_weight: p.cost.tn_weight,
            })
            .collect();
        let nab_order = |p: &Profile| {
            Profile::nab()
                .iter()
                .position(|n| n.name == p.name)
                .unwrap_or(usize::MAX)
        };
        profiles.sort_by_key(|p| (nab_order(p), p.name.clone()));
        Ok(Corpus {
            files,
            profiles,
            window_count,
        })
    }

    /// A corpus from files made in memory (tests, synthetic benchmarks), scored with `profiles`.
    /// Perfect is the number of windows of these files.
    pub fn new(mut files: Vec<DataFile>, profiles: Vec<Profile>) -> Self {
        files.sort_by(|a, b| a.name.cmp(&b.name));
        let window_count = files.iter().map(|f| f.windows.len()).sum();
        Corpus {
            files,
            profiles,
            window_count,
        }
    }

    /// The data files, in name order.
    pub fn files(&self) -> &[DataFile] {
        &self.files
    }

    /// The data file named `name` (`realKnownCause/nyc_taxi.csv`).
    pub fn file(&self, name: &str) -> Option<&DataFile> {
        self.files.iter().find(|f| f.name == name)
    }

    /// The cost profiles, NAB's three first in NAB's order.
    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    /// The profile named `name`, or an error listing the ones there are.
    pub fn profile(&self, name: &str) -> Result<&Profile, Error> {
        self.profiles
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::UnknownProfile {
                name: name.to_owned(),
                known: self
                    .profiles
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Every repair made to clean the files' series, for a warning.
    pub fn repairs(&self) -> Vec<&Repair> {
        self.files.iter().flat_map(|f| &f.repairs).collect()
    }

    /// The number of anomaly windows in the windows file (116 for NAB): a perfect detector
    /// earns this times the TP weight.
    pub fn window_count(&self) -> usize {
        self.window_count
    }

    /// The number of rows of all files (365,558 for NAB).
    pub fn row_count(&self) -> usize {
        self.files.iter().map(|f| f.timestamps.len()).sum()
    }

    /// NAB's perfect raw score under `profile`: every window detected at its left edge.
    pub fn perfect_score(&self, profile: &Profile) -> f64 {
        self.window_count as f64 * profile.tp_weight
    }

    /// NAB's null raw score under `profile`: never alerting, every scored window missed. NAB
    /// gets it by scoring its null detector (a constant 0.5), whose optimised threshold is to
    /// never alert; the tests check the two agree.
    pub fn null_score(&self, profile: &Profile) -> f64 {
        let mut total = 0.0;
        for file in &self.files {
            let mut seen: Vec<u32> = Vec::new();
            for row in &file.sweep {
                if let crate::sweep::Place::Window(w) = row.place
                    && !seen.contains(&w)
                {
                    seen.push(w);
                }
            }
            total += seen.len() as f64 * -profile.fn_weight;
        }
        total
    }
}

/// `(name relative to data_dir, path)` of every `*.csv` in the category folders of `data_dir`,
/// in name order.
fn data_files(data_dir: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let list = |dir: &Path| -> Result<Vec<PathBuf>, Error> {
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
            paths.push(entry.map_err(|e| Error::io("list", dir, e))?.path());
        }
        paths.sort();
        Ok(paths)
    };
    let mut files = Vec::new();
    for category in list(data_dir)?.into_iter().filter(|p| p.is_dir()) {
        for path in list(&category)? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let cat = category.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_file() && name.ends_with(".csv") && !name.starts_with('.') {
                files.push((format!("{cat}/{name}"), path.clone()));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The rows of a data file: `timestamp,value`.
fn read_data(path: &Path) -> Result<(Vec<i64>, Vec<f64>), Error> {
    let text = read_text(path)?;
    let mut table = Table::new(path, &text);
    let (t_col, v_col) = (table.column("timestamp")?, table.column("value")?);
    let (mut timestamps, mut values) = (Vec::new(), Vec::new());
    while let Some(row) = table.next_row() {
        timestamps.push(table.timestamp(&row, t_col)?);
        values.push(table.number(&row, v_col)?);
    }
    Ok((timestamps, values))
}
