//! `cargo bench -p promlearn-model --bench train`: the tutorial fit and LSTM(64) training, ours
//! and Keras's side by side in one run on the same data, and the closing `train ratio:` line.
//!
//! Keras runs in benches/keras_peer.py with `$PROMLEARN_PEER_PYTHON` (`cargo xtask bench train`
//! installs TensorFlow and Keras into the tool cache and sets it), else `python3`. Without Keras
//! the bench fails: no stored figure ever stands in for a measurement.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use promlearn_testbed::peer::{median, run_python_peer};
use std::path::Path;
use std::time::Instant;

use promlearn_model::{
    Backend, Dataset, FitOptions, Forecaster, ModelConfig, ScaleKind, Scaler, TargetMode,
};

const N_POINTS: usize = 100_000;
const WINDOW: usize = 32;
const HIDDEN: usize = 64;
const BATCH: usize = 64;
const STEPS: usize = 1_000;
/// Timed tutorial fits after the first: ours are quick, Keras's take about a second each.
const OURS_REPEATS: usize = 20;
const KERAS_REPEATS: usize = 5;

fn main() {
    if let Err(why) = run() {
        eprintln!("error: {why}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let series = tutorial_series();
    let series_long = noisy_sine(N_POINTS);
    eprintln!("measuring ours, then Keras on the same data (about a minute)");
    let (ours_first, ours_median, ours_losses) = tutorial_fit(&series);
    let lstm = lstm64(&series_long);
    let keras = keras(&series, &series_long)?;

    let numbers = |key: &str| -> Vec<f64> {
        keras[key]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
            .unwrap_or_default()
    };
    let keras_first = keras["tutorial_first_ms"].as_f64().unwrap_or(f64::NAN);
    let keras_median = median(numbers("tutorial_ms"));
    let keras_ms = keras["ms_per_step"]
        .as_f64()
        .ok_or("keras_peer.py gave no ms_per_step")?;
    println!(
        "Keras: TensorFlow {}, Keras {}",
        keras["tensorflow"].as_str().unwrap_or("?"),
        keras["keras"].as_str().unwrap_or("?")
    );
    println!(
        "tutorial fit (LSTM(8)+Dense(1), Adam, MAE, 5 epochs x 10 steps, 2-step windows of {} \
         points, batch 1, data preparation included):",
        series.len()
    );
    println!(
        "  ours  {ours_first:>9.2} ms first, {ours_median:>9.2} ms median of {OURS_REPEATS:<2} \
         (target <= 100 ms); epoch losses {}",
        losses_text(&ours_losses)
    );
    println!(
        "  Keras {keras_first:>9.2} ms first, {keras_median:>9.2} ms median of {KERAS_REPEATS:<2} \
         ({:.0}x ours);        epoch losses {}",
        keras_median / ours_median,
        losses_text(&numbers("tutorial_losses"))
    );
    println!("LSTM({HIDDEN}), window {WINDOW}, batch {BATCH}, {STEPS} steps on {N_POINTS} points:");
    for (what, ms, loss) in &lstm.lines {
        println!("  {what:<26} {ms:>8.3} ms/step  {loss}");
    }
    println!(
        "  {:<26} {keras_ms:>8.3} ms/step  (loss -> {:.4})",
        "Keras",
        keras["lstm_loss"].as_f64().unwrap_or(f64::NAN)
    );
    println!("train ratio: {:.2} (target >= 1.00)", keras_ms / lstm.ms);
    Ok(())
}

fn losses_text(losses: &[f64]) -> String {
    losses
        .iter()
        .map(|l| format!("{l:.4}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tutorial's data: 12 points shaped like go_memstats_sys_bytes of a small Go server.
fn tutorial_series() -> Vec<f64> {
    (0..12)
        .map(|i| 70_337_544.0 + 262_144.0 * ((i * 2 + 1) / 3) as f64)
        .collect()
}

/// The tutorial: LSTM(8), windows of 2, next-window targets, 5 epochs x 10 steps.
/// Returns the first fit's ms, the median ms of the next ones, and the first fit's epoch losses.
fn tutorial_fit(series: &[f64]) -> (f64, f64, Vec<f64>) {
    let run = || {
        let start = Instant::now();
        let scaler = Scaler::fit(series, ScaleKind::Max).unwrap();
        let ds = Dataset::from_series(
            &scaler.transform(series).unwrap(),
            2,
            TargetMode::TutorialNextWindow,
        )
        .unwrap();
        let batches = ds.repeat(10).batch(1).unwrap();
        let mut model = Forecaster::new(ModelConfig::tutorial()).unwrap();
        let options = FitOptions {
            epochs: 5,
            steps_per_epoch: Some(10),
        };
        let history = model.fit(&batches, &options).unwrap();
        (start.elapsed().as_secs_f64() * 1e3, history.epoch_losses)
    };
    let (first, losses) = run();
    let times: Vec<f64> = (0..OURS_REPEATS).map(|_| run().0).collect();
    (first, median(times), losses)
}

/// A deterministic noisy sine (xorshift noise, so the bench needs no RNG crate).
fn noisy_sine(n: usize) -> Vec<f64> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|i| {
            // Sum of 4 uniforms: roughly normal noise with sd 0.1.
            let noise = ((0..4).map(|_| uniform()).sum::<f64>() - 2.0) * 0.173;
            (i as f64 * 2.0 * std::f64::consts::PI / 500.0).sin() + noise
        })
        .collect()
}

/// Our LSTM(64) figures: the ms/step that goes into the ratio, and lines to print.
struct Lstm {
    ms: f64,
    lines: Vec<(String, f64, String)>,
}

/// LSTM(64), window 32, batch 64, 1,000 Adam steps on a 100,000-point series: ms per step.
fn lstm64(series: &[f64]) -> Lstm {
    let scaler = Scaler::fit(series, ScaleKind::MinMax).unwrap();
    let ds = Dataset::from_series(
        &scaler.transform(series).unwrap(),
        WINDOW,
        TargetMode::NextValue,
    )
    .unwrap();
    let batches = ds.batch(BATCH).unwrap();
    let config = ModelConfig::forecasting(WINDOW, HIDDEN);

    let quiet = |steps| FitOptions {
        epochs: 1,
        steps_per_epoch: Some(steps),
    };
    let mut lines = Vec::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut run = |threads: usize| {
        let mut model = Forecaster::new(config.clone()).unwrap();
        model.set_threads(threads);
        model.fit(&batches[..20], &quiet(20)).unwrap(); // warm-up, as Keras's traced first fit
        let start = Instant::now();
        let history = model.fit(&batches, &quiet(STEPS)).unwrap();
        let ms = start.elapsed().as_secs_f64() * 1e3 / STEPS as f64;
        lines.push((
            format!("ours, {threads} thread(s)"),
            ms,
            format!(
                "(loss {:.4} -> {:.4})",
                history.step_losses[0],
                history.step_losses[STEPS - 1]
            ),
        ));
        ms
    };
    let single = run(1);
    // The default uses every core, as TensorFlow does; that figure goes into the ratio.
    let ms = if cores > 1 { run(cores) } else { single };

    let mut reference = Forecaster::new(config).unwrap();
    reference.set_backend(Backend::CandleAutograd);
    let probe = 10;
    let start = Instant::now();
    reference.fit(&batches, &quiet(probe)).unwrap();
    let candle_ms = start.elapsed().as_secs_f64() * 1e3 / probe as f64;
    lines.push((
        "candle_nn LSTM + autograd".into(),
        candle_ms,
        format!("({probe} steps; a reference, not a peer)"),
    ));
    Lstm { ms, lines }
}

/// Keras on both workloads, on the same data (benches/keras_peer.py): its one JSON line.
fn keras(tutorial: &[f64], long: &[f64]) -> Result<serde_json::Value, String> {
    let data =
        std::env::temp_dir().join(format!("promlearn-train-bench-{}.f64", std::process::id()));
    let bytes: Vec<u8> = long.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&data, bytes).map_err(|e| format!("writing {}: {e}", data.display()))?;
    let config = serde_json::json!({
        "tutorial_series": tutorial,
        "tutorial_repeats": KERAS_REPEATS,
        "series_file": data,
        "window": WINDOW,
        "hidden": HIDDEN,
        "batch": BATCH,
        "steps": STEPS,
    });
    let answer = run_python_peer(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/keras_peer.py"),
        &config,
        "Keras (so there is no train ratio)",
        "`cargo xtask bench train` installs TensorFlow and Keras into the tool cache; or set \
         PROMLEARN_PEER_PYTHON to a Python that has them",
    );
    let _ = std::fs::remove_file(&data);
    answer
}
