//! State that survives a restart (`state_dir`): after each fit, the series' model, its stream
//! position and its alerting state go to one file; at start every file that fits the
//! configuration is read back, so a restarted watch scores at once instead of waiting for
//! `min_history` and a fit.
//!
//! Layout: `<state_dir>/<query>-<hash>/<label-hash>.model`, where `<query>` is the query's
//! name with anything but `[A-Za-z0-9_-]` turned into `_`, `<hash>` the low 8 hex digits of the
//! [`label_hash`] of `{query="<name>"}` (two names that sanitise alike stay apart), and `<label-hash>` the 16 hex digits
//! of the series' [`label_hash`] (the shards' hash, stable across machines and versions). A file
//! is `MAGIC`, the format version (u32 LE), the CRC-32 of the body (u32 LE) and the body:
//! [`Saved`] in postcard. It is written to a temporary file in the same directory, fsynced,
//! renamed over the old one and the directory fsynced, so a crash leaves the old file or the
//! new one, never half of one. Reading checks all of it: a file that is truncated, damaged
//! (checksum), of another format version or undecodable is skipped with a warning, and the
//! series is fitted as if new; a file whose query settings differ ([`ModelKey`]) is skipped
//! quietly, and overwritten at the series' next fit.
//!
//! Beside the models, each query's directory holds one `streams` file (the same header, the
//! body [`SavedStreams`]): where each fitted series has been judged up to and its detector's
//! stream state (alerting state included), rewritten after every inference round and when the
//! service stops. A file read back moves a restored series' mark past the points it judged
//! after its fit, so a restarted watch judges no point twice (an alert of the minutes before a
//! crash does not fire again); without it (damaged, other settings) the fit's marks are used.
//!
//! The schedule (`schedule.rs`) stays the one copy for the service and the backtest: through the
//! engine it calls [`Store::after_fit`] on the blocking pool right after a fit and
//! [`Store::save_streams`] after an inference round, neither of which happens without a store
//! (a backtest has none). This module is given the configuration, the state's lock and the
//! time, never the engine.

use std::{
    collections::HashMap,
    fs,
    io::{self, Write},
    ops::Bound,
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, SystemTime},
};

use promlearn_detect::{DetectorSpec, Fitted, SavedModel, StreamState};
use promlearn_loader::Labels;
use serde::{Deserialize, Serialize};

use crate::{
    Config, Error, QueryConfig, Result,
    series::{SeriesState, StateLock, Stream},
    shard::label_hash,
};

/// The first bytes of every model file.
const MAGIC: &[u8; 8] = b"PLWSTATE";
/// The first bytes of a query's streams file.
const STREAMS_MAGIC: &[u8; 8] = b"PLWSTRMS";
/// The streams file's name in a query's directory (no `.model`: it is not one series' model).
const STREAMS_FILE: &str = "streams";
/// Series whose streams are copied per take of the state's lock.
const STREAMS_CHUNK: usize = 1024;
/// The format this version writes and reads; older or newer files are skipped and refitted.
/// Raise it whenever [`Saved`] or promlearn-detect's `SavedModel` changes shape (a file of the
/// old shape would otherwise be reported as undecodable rather than as an older format).
/// Version 2: a `knn` model holds its coarse patterns beside its fine ones. (The `streams`
/// file came later under the same version: a directory without one reads as before.)
/// Version 3: every model but the LSTM holds the longest run of equal values of its history.
/// Version 4: a rolling model holds its history's time of day, where it had a daily rhythm, and
/// a `knn` model the series its patterns are windows of, not every pattern.
pub(crate) const FORMAT_VERSION: u32 = 4;
/// Magic, version and checksum.
const HEADER: usize = 16;
/// A state file's extension.
const EXTENSION: &str = "model";

/// The settings a model depends on: a saved model is used only for a query whose key is equal
/// (and a reload keeps a query's state only then). `infer_every` and `fit_every` are not in it:
/// changing them changes when the model is used and refitted, not what it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ModelKey {
    expr: String,
    step_ms: u64,
    fit_window_ms: u64,
    /// The detector as its JSON text (postcard cannot carry an internally tagged enum).
    detector: String,
}

impl ModelKey {
    pub(crate) fn of(query: &QueryConfig) -> ModelKey {
        ModelKey {
            expr: query.expr.clone(),
            step_ms: query.step.as_millis() as u64,
            fit_window_ms: query.fit_window.as_millis() as u64,
            detector: detector_text(&query.detector),
        }
    }
}

fn detector_text(spec: &DetectorSpec) -> String {
    serde_json::to_string(spec).expect("a detector spec serialises")
}

/// One series' saved state: the body of a state file.
#[derive(Serialize, Deserialize)]
struct Saved {
    key: ModelKey,
    labels: Vec<(String, String)>,
    /// When the model was fitted (unix ms): the next fit is due `fit_every` after it.
    fitted_at_ms: i64,
    /// The newest sample the series had then (unix ms).
    last_sample_ms: i64,
    /// The stream's mark: samples up to it were judged.
    through_ms: Option<i64>,
    /// The detector's [`StreamState`] as its JSON text: it is promlearn-detect's to evolve, and
    /// a field it leaves out when empty (`skip_serializing_if`) would shift every byte after it
    /// in postcard, which does not describe itself.
    detector_state: String,
    model: SavedModel,
}

/// A query's streams: the body of its `streams` file.
#[derive(Serialize, Deserialize)]
struct SavedStreams {
    key: ModelKey,
    streams: Vec<SavedStream>,
}

/// One fitted series' stream, found again by its label hash (the name of its model file).
#[derive(Serialize, Deserialize)]
struct SavedStream {
    label_hash: u64,
    /// Samples up to it were judged.
    through_ms: Option<i64>,
    /// The detector's [`StreamState`] as its JSON text (see [`Saved`]).
    detector_state: String,
}

/// Why a state file was not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Skip {
    #[error("cannot read it: {0}")]
    Read(#[from] io::Error),
    #[error("it is truncated ({0} bytes, shorter than its header)")]
    Truncated(usize),
    #[error("it is not a promlearn watch state file")]
    NotState,
    #[error("it is format version {0}; this promlearn reads version {FORMAT_VERSION}")]
    Version(u32),
    #[error("it is damaged (checksum mismatch)")]
    Checksum,
    #[error("its body does not decode: {0}")]
    Decode(#[from] postcard::Error),
    #[error("its stream state does not decode: {0}")]
    StreamState(#[from] serde_json::Error),
    #[error("{0}")]
    Model(#[from] promlearn_detect::Error),
    /// Not damage: the query's settings changed since it was written.
    #[error("it was fitted with other query settings")]
    OtherSettings,
}

/// Where the state files are, and the rules for reading and writing them.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    /// Held while a query's streams are copied and written, so that files are written in the
    /// order their copies were taken (the last round's, then the one at stop).
    streams: Mutex<()>,
}

impl Store {
    /// Opens (creates) `dir`; errors when it cannot be created or written to.
    pub(crate) fn open(dir: &Path) -> Result<Store> {
        let fail = |source: io::Error| Error::StateDir {
            path: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(fail)?;
        // Find out now, not at the first fit, that the directory is not writable.
        tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
        Ok(Store {
            dir: dir.to_owned(),
            streams: Mutex::new(()),
        })
    }

    /// The directory of query `name`.
    pub(crate) fn query_dir(&self, name: &str) -> PathBuf {
        let plain: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let hash = label_hash(&Labels::from_pairs([("query", name)]));
        self.dir.join(format!("{plain}-{:08x}", hash as u32))
    }

    /// The file of one series of query `name`.
    pub(crate) fn series_path(&self, name: &str, labels: &Labels) -> PathBuf {
        self.query_dir(name)
            .join(format!("{:016x}.{EXTENSION}", label_hash(labels)))
    }

    /// Writes one series' state atomically; returns the file's size.
    fn save(&self, query: &QueryConfig, labels: &Labels, saved: &Saved) -> io::Result<u64> {
        let bytes = frame(MAGIC, postcard::to_stdvec(saved).map_err(io::Error::other)?);
        write_atomically(
            &self.query_dir(&query.name),
            &self.series_path(&query.name, labels),
            &bytes,
        )?;
        Ok(bytes.len() as u64)
    }

    /// The streams file of query `name`.
    pub(crate) fn streams_path(&self, name: &str) -> PathBuf {
        self.query_dir(name).join(STREAMS_FILE)
    }
}

/// Writes `bytes` to `path` in `dir` so that a crash leaves the old file or the new one: a
/// temporary file, fsynced, renamed over it, and the directory fsynced.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    // The rename itself is durable only once the directory is.
    fs::File::open(dir)?.sync_all()
}

/// A file's bytes: `magic`, the format version, the CRC-32 of `body`, and `body`.
fn frame(magic: &[u8; 8], body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// A file's body, once its magic, version and checksum are checked.
fn unframe<'a>(bytes: &'a [u8], magic: &[u8; 8]) -> Result<&'a [u8], Skip> {
    if bytes.len() < HEADER {
        return Err(if bytes.starts_with(&magic[..bytes.len().min(8)]) {
            Skip::Truncated(bytes.len())
        } else {
            Skip::NotState
        });
    }
    if &bytes[..8] != magic {
        return Err(Skip::NotState);
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let version = word(8);
    if version != FORMAT_VERSION {
        return Err(Skip::Version(version));
    }
    let body = &bytes[HEADER..];
    if crc32fast::hash(body) != word(12) {
        return Err(Skip::Checksum);
    }
    Ok(body)
}

/// Reads a model file's bytes back, checking everything; `key` is the query's now.
fn decode(bytes: &[u8], key: &ModelKey) -> Result<Saved, Skip> {
    let saved: Saved = postcard::from_bytes(unframe(bytes, MAGIC)?)?;
    if &saved.key != key {
        return Err(Skip::OtherSettings);
    }
    serde_json::from_str::<StreamState>(&saved.detector_state)?;
    Ok(saved)
}

/// Reads a streams file's bytes back, checking everything but each stream's detector state
/// (one bad entry does not cost the others theirs).
fn decode_streams(bytes: &[u8], key: &ModelKey) -> Result<SavedStreams, Skip> {
    let saved: SavedStreams = postcard::from_bytes(unframe(bytes, STREAMS_MAGIC)?)?;
    if &saved.key != key {
        return Err(Skip::OtherSettings);
    }
    Ok(saved)
}

impl Store {
    /// After a successful fit at `now_ms` of the series `labels` of query `index` (`query`), on the
    /// blocking pool: writes the series' state. A failed write is a warning; the model is used all
    /// the same.
    pub(crate) fn after_fit(
        &self,
        index: usize,
        query: &QueryConfig,
        state: &StateLock,
        labels: &Labels,
        model: &dyn Fitted,
        now_ms: i64,
    ) {
        let store = self;
        let Some(saved_model) = model.to_saved() else {
            return;
        };
        let (stream, last_sample_ms) = {
            let state = state.lock();
            match state.queries[index].series.get(labels) {
                Some(series) => (series.stream.clone(), series.last_sample_ms),
                None => return, // Dropped while it was fitted.
            }
        };
        let saved = Saved {
            key: ModelKey::of(query),
            labels: labels
                .iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
            fitted_at_ms: now_ms,
            last_sample_ms,
            through_ms: stream.through_ms,
            detector_state: serde_json::to_string(&stream.detector)
                .expect("a stream state serialises"),
            model: saved_model,
        };
        match store.save(query, labels, &saved) {
            Ok(bytes) => {
                tracing::debug!(query = %query.name, series = %labels, bytes, "state saved");
            }
            Err(e) => tracing::warn!(
                query = %query.name,
                series = %labels,
                "saving the model to {} failed: {e}; it is used all the same, and refitted after a restart",
                store.query_dir(&query.name).display()
            ),
        }
    }

    /// After an inference round of query `index` (`query`; and for every query when the service
    /// stops), on the blocking pool: writes where each fitted series has been judged up to. The
    /// streams are copied 1,024 series per take of the lock and encoded outside it. A failed write
    /// is a warning: a restart then judges the points since the fit again.
    pub(crate) fn save_streams(&self, index: usize, query: &QueryConfig, state: &StateLock) {
        let store = self;
        let _order = store.streams.lock().unwrap_or_else(|e| e.into_inner());
        let mut copied = Vec::new();
        let mut after: Option<Labels> = None;
        loop {
            let state = state.lock();
            let series = &state.queries[index].series;
            let range = match &after {
                None => series.range::<Labels, _>(..),
                Some(last) => series.range::<Labels, _>((Bound::Excluded(last), Bound::Unbounded)),
            };
            let mut last = None;
            for (labels, series) in range.take(STREAMS_CHUNK) {
                last = Some(labels);
                if series.model.is_some() {
                    copied.push((label_hash(labels), series.stream.clone()));
                }
            }
            match last {
                Some(last) => after = Some(last.clone()),
                None => break,
            }
        }
        if copied.is_empty() {
            return;
        }
        let saved = SavedStreams {
            key: ModelKey::of(query),
            streams: copied
                .into_iter()
                .map(|(label_hash, stream)| SavedStream {
                    label_hash,
                    through_ms: stream.through_ms,
                    detector_state: serde_json::to_string(&stream.detector)
                        .expect("a stream state serialises"),
                })
                .collect(),
        };
        let written = postcard::to_stdvec(&saved)
            .map_err(io::Error::other)
            .and_then(|body| {
                write_atomically(
                    &store.query_dir(&query.name),
                    &store.streams_path(&query.name),
                    &frame(STREAMS_MAGIC, body),
                )
            });
        if let Err(e) = written {
            tracing::warn!(
                query = %query.name,
                "saving where its series were judged up to in {} failed: {e}; after a restart the points since each fit are judged again",
                store.query_dir(&query.name).display()
            );
        }
    }
}

/// What [`Store::restore_where`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Restored {
    /// Series whose model was read back.
    pub models: usize,
    /// Files skipped: damaged, truncated, of another version, or of other settings.
    pub skipped: usize,
    /// Restored series whose mark the streams file moved past their fit's.
    pub streams: usize,
}

impl Store {
    /// Reads the saved series of `config`'s queries whose index `wanted` says (all of them at
    /// start; a reload restores only the queries it starts fresh) back into the state at `now`
    /// (unix ms), before they are served: each comes back with its model, stream and alerting
    /// state (the newer of its fit's and its query's streams file's), due for its next fit
    /// `fit_every` after the saved one. Series another shard owns, and those beyond `max_series`,
    /// stay out.
    pub(crate) fn restore_where(
        &self,
        config: &Config,
        state: &StateLock,
        now: i64,
        wanted: impl Fn(usize) -> bool,
    ) -> Restored {
        let store = self;
        let mut found = Restored::default();
        let mut state = state.lock();
        for (index, query) in config.queries.iter().enumerate() {
            if !wanted(index) {
                continue;
            }
            let dir = store.query_dir(&query.name);
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::warn!(query = %query.name, "cannot read the saved state in {}: {e}; its series are fitted anew", dir.display());
                    continue;
                }
            };
            let key = ModelKey::of(query);
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == EXTENSION))
                .collect();
            paths.sort();
            let mut restored: HashMap<u64, Labels> = HashMap::new();
            for path in paths {
                let read = fs::read(&path)
                    .map_err(Skip::from)
                    .and_then(|bytes| decode(&bytes, &key));
                let saved = match read {
                    Ok(saved) => saved,
                    Err(Skip::OtherSettings) => {
                        tracing::debug!(query = %query.name, "{} was fitted with other settings; the series is refitted", path.display());
                        found.skipped += 1;
                        continue;
                    }
                    Err(why) => {
                        tracing::warn!(query = %query.name, "saved state {} skipped: {why}; the series is fitted anew", path.display());
                        found.skipped += 1;
                        continue;
                    }
                };
                let labels = Labels::from_pairs(saved.labels);
                if !config.shard.owns(&labels) || state.total_series >= config.max_series {
                    continue;
                }
                let model = match saved.model.into_fitted() {
                    Ok(model) => model,
                    Err(e) => {
                        tracing::warn!(query = %query.name, "saved state {} skipped: {e}", path.display());
                        found.skipped += 1;
                        continue;
                    }
                };
                let q = &mut state.queries[index];
                if q.series.contains_key(&labels) {
                    continue;
                }
                let series = q.track(&query.name, query.detector.name(), labels.clone(), |text| {
                    SeriesState::new(text, now, saved.last_sample_ms, saved.through_ms)
                });
                series.model = Some(model);
                series.stream = Stream {
                    through_ms: saved.through_ms,
                    // Checked by `decode`.
                    detector: serde_json::from_str(&saved.detector_state).unwrap_or_default(),
                };
                series.next_fit_ms = saved.fitted_at_ms + query.fit_every.as_millis() as i64;
                state.total_series += 1;
                found.models += 1;
                restored.insert(label_hash(&labels), labels);
            }
            if restored.is_empty() {
                continue;
            }
            let path = store.streams_path(&query.name);
            let streams = match fs::read(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                read => read
                    .map_err(Skip::from)
                    .and_then(|bytes| decode_streams(&bytes, &key)),
            };
            let streams = match streams {
                Ok(streams) => streams.streams,
                Err(Skip::OtherSettings) => continue,
                Err(why) => {
                    tracing::warn!(query = %query.name, "saved streams {} skipped: {why}; the points judged since each fit are judged again", path.display());
                    continue;
                }
            };
            let q = &mut state.queries[index];
            for saved in streams {
                let Some(series) = restored
                    .get(&saved.label_hash)
                    .and_then(|labels| q.series.get_mut(labels))
                else {
                    continue;
                };
                if saved.through_ms <= series.stream.through_ms {
                    continue; // Refitted since: the model file's marks are the newer.
                }
                let Ok(detector) = serde_json::from_str(&saved.detector_state) else {
                    tracing::warn!(query = %query.name, "a saved stream in {} does not decode; its series keeps its fit's marks", path.display());
                    continue;
                };
                series.stream = Stream {
                    through_ms: saved.through_ms,
                    detector,
                };
                if let Some(through) = saved.through_ms {
                    series.last_sample_ms = series.last_sample_ms.max(through);
                }
                found.streams += 1;
            }
        }
        found
    }
}

/// Removes the state files (and leftover temporary files) in `dir` older than `keep`.
pub(crate) fn sweep(dir: &Path, keep: Duration) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > keep);
        if old && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
#[path = "store/tests.rs"]
mod tests;
