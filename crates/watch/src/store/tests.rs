//! Saved state: what a fit writes, what a new engine reads back, and every kind of bad file
//! skipped (with the reason) without a panic, the good files beside it still read; the streams
//! file that keeps a restarted engine from judging a point twice.

use std::sync::Arc;

use promlearn_loader::Labels;

use super::*;
use crate::{
    clock::{Clock, Exec},
    engine::{Engine, detector_fit},
    schedule,
    source::{MemorySource, Source},
};

const STEP: i64 = 1_000;
const START: i64 = 1_700_000_000_000;

fn config(dir: &Path, detector: &str) -> Config {
    Config::from_toml(
        &format!(
            r#"
endpoint = "http://localhost:9090"
state_dir = "{}"
[[query]]
name = "dns rate/1"
expr = "x"
step = "1s"
infer_every = "1s"
fit_every = "1h"
fit_window = "5m"
detector = {detector}
"#,
            dir.display()
        ),
        "test.toml",
    )
    .unwrap()
}

fn labels(i: usize) -> Labels {
    Labels::from_pairs([("type", format!("t{i}"))])
}

/// Two series of 400 points at 1 s, a rhythm with jitter.
fn source() -> MemorySource {
    let t: Vec<i64> = (0..400).map(|i| START + i * STEP).collect();
    let series = (0..2)
        .map(|s| {
            let v = (0..400)
                .map(|i| 100.0 + 10.0 * (i as f64 / 30.0).sin() + ((i * (s + 3)) % 5) as f64)
                .collect();
            (labels(s as usize), t.clone(), v)
        })
        .collect();
    MemorySource::new(series).unwrap()
}

/// An engine at `now_ms` on the memory source, with its store opened: a process of the service.
fn engine(config: &Config, now_ms: i64) -> Arc<Engine> {
    let mut shared = Engine::new(
        config.clone(),
        Clock::simulated(now_ms),
        Source::Memory(source()),
        Exec::Inline,
        detector_fit(),
        1,
    );
    shared.store = Some(Store::open(config.state_dir.as_deref().unwrap()).unwrap());
    Arc::new(shared)
}

async fn infer(shared: &Arc<Engine>) -> usize {
    let mut judged = 0;
    schedule::infer_once(shared, 0, &mut |p| {
        judged += usize::from(!p.score.is_nan());
        Ok(())
    })
    .await
    .unwrap();
    judged
}

#[tokio::test]
async fn a_restarted_engine_scores_with_the_saved_models_before_any_fit() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "{ kind = \"knn\" }");
    // The first process: sees the series, fits both, judges.
    let first = engine(&config, START + 360 * STEP);
    infer(&first).await;
    schedule::fit_once(&first, 0).await;
    assert_eq!(first.lock().queries[0].fits, 2);
    first.clock.set(START + 361 * STEP);
    assert!(infer(&first).await > 0, "the first process judges");
    let files: Vec<_> = fs::read_dir(first.store.as_ref().unwrap().query_dir("dns rate/1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2, "one file per series: {files:?}");
    assert!(
        files[0]
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("dns_rate_1-"),
        "{files:?}"
    );
    let size = fs::metadata(&files[0]).unwrap().len();
    eprintln!("knn (window 8, 360 points fitted): {size} bytes per series");

    // The second process, 10 s later: models and stream marks back, no fit due, scores at once.
    let second = engine(&config, START + 371 * STEP);
    let restored = second.restore();
    assert_eq!(
        restored,
        Restored {
            models: 2,
            skipped: 0,
            streams: 0
        }
    );
    {
        let state = second.lock();
        let q = &state.queries[0];
        let series = &q.series[&labels(0)];
        assert!(series.model.is_some());
        // No streams file (only the service's inference loop writes one): the mark is the one
        // at the fit, and the points judged after it are judged again, once.
        assert_eq!(series.stream.through_ms, Some(START + 360 * STEP));
        assert!(
            series.next_fit_ms > START + 3000 * STEP,
            "next fit an hour after the saved one"
        );
        assert_eq!(state.total_series, 2);
    }
    assert!(infer(&second).await > 0, "scores at the first inference");
    schedule::fit_once(&second, 0).await;
    assert_eq!(second.lock().queries[0].fits, 0, "no fit was needed");
    assert!(second.lock().queries[0].series[&labels(1)].last.is_some());
}

/// Judges at the engine's time; returns each judged point's series and time.
async fn judged(shared: &Arc<Engine>) -> Vec<(Labels, i64)> {
    let mut out = Vec::new();
    schedule::infer_once(shared, 0, &mut |p| {
        if !p.score.is_nan() {
            out.push((p.labels.clone(), p.timestamp_ms));
        }
        Ok(())
    })
    .await
    .unwrap();
    out
}

#[tokio::test]
async fn a_restarted_engine_judges_no_point_twice() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "{ kind = \"zscore\", window = 10 }");
    // The first process: fits at 360 s, judges up to 370 s, writes its streams after the
    // round (as the service's inference loop does), and dies.
    let first = engine(&config, START + 360 * STEP);
    infer(&first).await;
    schedule::fit_once(&first, 0).await;
    let mut seen = Vec::new();
    for at in [361, 365, 370] {
        first.clock.set(START + at * STEP);
        seen.extend(judged(&first).await);
    }
    first.save_streams(0);
    drop(first);

    // The second, at 375 s: both marks moved to 370 s, so it judges 371..=375 only.
    let second = engine(&config, START + 375 * STEP);
    assert_eq!(
        second.restore(),
        Restored {
            models: 2,
            skipped: 0,
            streams: 2
        }
    );
    assert_eq!(
        second.lock().queries[0].series[&labels(0)]
            .stream
            .through_ms,
        Some(START + 370 * STEP)
    );
    seen.extend(judged(&second).await);
    for s in 0..2 {
        let times: Vec<i64> = seen
            .iter()
            .filter(|(l, _)| *l == labels(s))
            .map(|(_, t)| (t - START) / STEP)
            .collect();
        assert_eq!(times, (361..=375).collect::<Vec<_>>(), "series {s}");
    }
}

#[tokio::test]
async fn a_bad_or_older_streams_file_costs_only_the_marks() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "{ kind = \"zscore\", window = 10 }");
    let first = engine(&config, START + 360 * STEP);
    infer(&first).await;
    schedule::fit_once(&first, 0).await;
    first.clock.set(START + 365 * STEP);
    infer(&first).await;
    first.save_streams(0);
    let path = first.store.as_ref().unwrap().streams_path("dns rate/1");
    let good = fs::read(&path).unwrap();
    let key = ModelKey::of(&config.queries[0]);
    assert_eq!(decode_streams(&good, &key).unwrap().streams.len(), 2);
    // A model file is not a streams file, nor the other way round.
    assert!(matches!(decode(&good, &key), Err(Skip::NotState)));

    let restarted = |bytes: &[u8]| {
        fs::write(&path, bytes).unwrap();
        let shared = engine(&config, START + 370 * STEP);
        let restored = shared.restore();
        let through = shared.lock().queries[0].series[&labels(1)]
            .stream
            .through_ms;
        (restored, through.map(|t| (t - START) / STEP))
    };
    let moved = |streams| Restored {
        models: 2,
        skipped: 0,
        streams,
    };
    assert_eq!(restarted(&good), (moved(2), Some(365)));
    let mut damaged = good.clone();
    let last = damaged.len() - 2;
    damaged[last] ^= 0x01;
    // Damaged, cut or not ours: the models are read all the same, with their fit's marks.
    for bad in [
        damaged,
        good[..good.len() / 2].to_vec(),
        b"garbage".to_vec(),
    ] {
        assert_eq!(restarted(&bad), (moved(0), Some(360)));
    }
    // Other settings: the streams are not this query's.
    let other = config_with_window(dir.path(), 12);
    let shared = engine(&other, START + 360 * STEP);
    infer(&shared).await;
    schedule::fit_once(&shared, 0).await;
    shared.clock.set(START + 368 * STEP);
    infer(&shared).await;
    shared.save_streams(0);
    let others = fs::read(&path).unwrap();
    assert!(matches!(
        decode_streams(&others, &key),
        Err(Skip::OtherSettings)
    ));
    // Refitted after the streams were written: the model file's marks are the newer ones.
    fs::write(&path, &good).unwrap();
    let refit = engine(&config, START + 380 * STEP);
    infer(&refit).await;
    schedule::fit_once(&refit, 0).await;
    drop(refit);
    fs::write(&path, &good).unwrap();
    let shared = engine(&config, START + 385 * STEP);
    assert_eq!(shared.restore(), moved(0));
    assert_eq!(
        shared.lock().queries[0].series[&labels(1)]
            .stream
            .through_ms,
        Some(START + 380 * STEP)
    );
}

/// The bytes of a good file for series 0 of `config`'s query.
async fn good_file(config: &Config) -> (PathBuf, Vec<u8>) {
    let shared = engine(config, START + 360 * STEP);
    infer(&shared).await;
    schedule::fit_once(&shared, 0).await;
    let path = shared
        .store
        .as_ref()
        .unwrap()
        .series_path("dns rate/1", &labels(0));
    let bytes = fs::read(&path).unwrap();
    (path, bytes)
}

#[tokio::test]
async fn bad_files_are_skipped_with_their_reason_and_the_good_ones_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "{ kind = \"zscore\", window = 10 }");
    let (path, good) = good_file(&config).await;
    let key = ModelKey::of(&config.queries[0]);
    assert!(decode(&good, &key).is_ok());
    let mut damaged = good.clone();
    let last = damaged.len() - 3;
    damaged[last] ^= 0x40;
    let mut older = good.clone();
    // Version 3: rolling models without a time of day, knn models with every pattern stored.
    older[8..12].copy_from_slice(&3u32.to_le_bytes());
    let mut undecodable = good[..HEADER].to_vec();
    undecodable.extend_from_slice(&[0xff; 7]);
    let crc = crc32fast::hash(&undecodable[HEADER..]).to_le_bytes();
    undecodable[12..16].copy_from_slice(&crc);
    let cases: [(&str, Vec<u8>, &str); 6] = [
        ("empty", Vec::new(), "truncated (0 bytes"),
        ("header cut", good[..11].to_vec(), "truncated (11 bytes"),
        ("body cut", good[..good.len() - 5].to_vec(), "checksum"),
        ("a flipped bit", damaged, "checksum"),
        (
            "older format",
            older,
            "format version 3; this promlearn reads version 4",
        ),
        (
            "not ours",
            b"{\"json\": true, \"padding\": 1}".to_vec(),
            "not a promlearn watch state file",
        ),
    ];
    for (what, bytes, reason) in &cases {
        let err = decode(bytes, &key)
            .err()
            .unwrap_or_else(|| panic!("{what} decodes"));
        assert!(err.to_string().contains(reason), "{what}: {err}");
    }
    let err = decode(&undecodable, &key).err().unwrap();
    assert!(matches!(err, Skip::Decode(_)), "{err}");
    let other = config_with_window(dir.path(), 12);
    assert!(matches!(
        decode(&good, &ModelKey::of(&other.queries[0])),
        Err(Skip::OtherSettings)
    ));

    // All of them in the directory at once, beside the good files (both series were fitted):
    // restore skips each.
    let query_dir = path.parent().unwrap();
    for (i, (_, bytes, _)) in cases.iter().enumerate() {
        fs::write(query_dir.join(format!("{i:016x}.model")), bytes).unwrap();
    }
    fs::write(query_dir.join("undecodable.model"), &undecodable).unwrap();
    fs::write(query_dir.join("notes.txt"), "not a state file, not read").unwrap();
    let shared = engine(&config, START + 370 * STEP);
    let restored = shared.restore();
    assert_eq!(
        restored,
        Restored {
            models: 2,
            skipped: 7,
            streams: 0
        }
    );
    assert!(shared.lock().queries[0].series[&labels(0)].model.is_some());
    // Another detector's window: the good file too is skipped, and the series fitted anew.
    let shared = engine(&other, START + 370 * STEP);
    assert_eq!(shared.restore().models, 0);
}

fn config_with_window(dir: &Path, window: usize) -> Config {
    config(dir, &format!("{{ kind = \"zscore\", window = {window} }}"))
}

#[test]
fn a_state_dir_that_cannot_be_written_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a file");
    fs::write(&file, "").unwrap();
    let err = Store::open(&file.join("state")).unwrap_err().to_string();
    assert!(
        err.contains("cannot be used") && err.contains("state_dir"),
        "{err}"
    );
}

#[test]
fn the_sweep_removes_only_files_older_than_it_keeps() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.model"), "x").unwrap();
    assert_eq!(sweep(dir.path(), Duration::from_secs(3600)), 0);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(sweep(dir.path(), Duration::from_millis(1)), 1);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// What one series' file costs, per detector (printed, and bounded so that the README's figures
/// stay true): rolling detectors a few hundred bytes, an LSTM(16) about 5 KiB, knn with its
/// patterns' most points (a 1 s series' 20,000 points keep their newest) within 16 KiB.
#[test]
fn a_series_file_costs_what_the_readme_says() {
    let n = 20_000;
    let t: Vec<i64> = (0..n as i64).map(|i| START + i * STEP).collect();
    let v: Vec<f64> = (0..n)
        .map(|i| 100.0 + 10.0 * (i as f64 / 300.0).sin() + (i % 7) as f64)
        .collect();
    let labels = Labels::from_pairs([
        ("instance", "10.0.0.1:9153"),
        ("job", "coredns"),
        ("type", "A"),
    ]);
    for (detector, most) in [
        (r#"{ "kind": "zscore" }"#, 400),
        (r#"{ "kind": "mad" }"#, 400),
        (r#"{ "kind": "quantile" }"#, 400),
        (r#"{ "kind": "lstm", "hidden": 16, "epochs": 1 }"#, 6 * 1024),
        (r#"{ "kind": "knn" }"#, 16 * 1024),
    ] {
        let spec: DetectorSpec = serde_json::from_str(detector).unwrap();
        let history = spec
            .min_history()
            .max(if spec.name() == "lstm" { 600 } else { n });
        let model = spec.fit(&t[..history], &v[..history]).unwrap();
        let saved = Saved {
            key: ModelKey {
                expr: "sum by (instance, job, type) (rate(coredns_dns_requests_total[1m]))".into(),
                step_ms: 1000,
                fit_window_ms: 6 * 3_600_000,
                detector: detector_text(&spec),
            },
            labels: labels
                .iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect(),
            fitted_at_ms: START,
            last_sample_ms: START,
            through_ms: Some(START),
            detector_state: serde_json::to_string(&StreamState::new()).unwrap(),
            model: model.to_saved().unwrap(),
        };
        let bytes = frame(MAGIC, postcard::to_stdvec(&saved).unwrap()).len();
        eprintln!("{}: {bytes} bytes per series", spec.name());
        assert!(
            bytes <= most,
            "{}: {bytes} bytes, more than {most}",
            spec.name()
        );
    }
}

/// What a streams file costs per series (printed, and bounded so that the README's figure stays
/// true): it is rewritten after every inference round.
#[test]
fn a_streams_file_costs_what_the_readme_says() {
    let saved = SavedStreams {
        key: ModelKey::of(&config(Path::new("/tmp"), "{ kind = \"zscore\" }").queries[0]),
        streams: (0..10_000u64)
            .map(|i| SavedStream {
                label_hash: i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                through_ms: Some(START + i as i64),
                detector_state: serde_json::to_string(&StreamState::new()).unwrap(),
            })
            .collect(),
    };
    let per_series = frame(STREAMS_MAGIC, postcard::to_stdvec(&saved).unwrap()).len() / 10_000;
    eprintln!("streams file: {per_series} bytes per series (a rolling detector)");
    // A stream with its alerting state set and a real mark is ~20 bytes more.
    assert!(per_series <= 100, "{per_series} bytes per series");
}
