//! `cargo bench -p promlearn-model --bench train`: the tutorial fit, LSTM(64) training against
//! Keras on the same configuration, and the closing `train ratio:` line.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use promlearn_model::{
    Backend, Dataset, FitOptions, Forecaster, ModelConfig, ScaleKind, Scaler, TargetMode,
};

const N_POINTS: usize = 100_000;
const WINDOW: usize = 32;
const HIDDEN: usize = 64;
const BATCH: usize = 64;
const STEPS: usize = 1_000;
/// Keras 3.15 / TensorFlow 2.21 (CPU) on this 2-core machine, for when TF is not importable.
const KERAS_MS_PER_STEP_MEASURED: f64 = 6.3;

fn main() {
    tutorial_fit();
    let ours = lstm64();
    let keras = keras_ms_per_step();
    let line = match keras {
        Ok((ms, versions)) => {
            println!("keras ({versions}): {ms:.2} ms/step");
            format!("train ratio: {:.2} (target >= 1.00)", ms / ours)
        }
        Err(why) => format!(
            "train ratio: {:.2} (target >= 1.00; TensorFlow not importable ({why}), compared with \
             Keras's {KERAS_MS_PER_STEP_MEASURED} ms/step measured on this machine)",
            KERAS_MS_PER_STEP_MEASURED / ours
        ),
    };
    println!("{line}");
}

/// The tutorial: 12 samples, LSTM(8), windows of 2, next-window targets, 5 epochs x 10 steps.
fn tutorial_fit() {
    let series: Vec<f64> = (0..12)
        .map(|i| 70_337_544.0 + 262_144.0 * ((i * 2 + 1) / 3) as f64)
        .collect();
    let run = || {
        let start = Instant::now();
        let scaler = Scaler::fit(&series, ScaleKind::Max).unwrap();
        let ds = Dataset::from_series(
            &scaler.transform(&series).unwrap(),
            2,
            TargetMode::TutorialNextWindow,
        )
        .unwrap();
        let batches = ds.repeat(10).batch(1).unwrap();
        let mut model = Forecaster::new(ModelConfig::tutorial()).unwrap();
        let options = FitOptions {
            epochs: 5,
            steps_per_epoch: Some(10),
            verbose: false,
        };
        let history = model.fit(&batches, &options).unwrap();
        (start.elapsed().as_secs_f64(), history.epoch_losses)
    };
    let (first, losses) = run();
    let mut times: Vec<f64> = (0..20).map(|_| run().0).collect();
    times.sort_by(f64::total_cmp);
    println!(
        "tutorial fit (LSTM(8), 50 steps, batch 1, data prep included): {:.3} ms first run, \
         {:.3} ms median of 20 (target <= 100 ms; Keras 1.0-1.4 s); epoch losses {}",
        first * 1e3,
        times[10] * 1e3,
        losses
            .iter()
            .map(|l| format!("{l:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
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

/// LSTM(64), window 32, batch 64, 1,000 Adam steps on a 100,000-point series: ms per step.
fn lstm64() -> f64 {
    let series = noisy_sine(N_POINTS);
    let scaler = Scaler::fit(&series, ScaleKind::MinMax).unwrap();
    let ds = Dataset::from_series(
        &scaler.transform(&series).unwrap(),
        WINDOW,
        TargetMode::NextValue,
    )
    .unwrap();
    let batches = ds.batch(BATCH).unwrap();
    let config = ModelConfig::forecasting(WINDOW, HIDDEN);

    let quiet = |steps| FitOptions {
        epochs: 1,
        steps_per_epoch: Some(steps),
        verbose: false,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let run = |threads: usize| {
        let mut model = Forecaster::new(config.clone()).unwrap();
        model.set_threads(threads);
        model.fit(&batches[..20], &quiet(20)).unwrap(); // warm-up, as Keras's traced first fit
        let start = Instant::now();
        let history = model.fit(&batches, &quiet(STEPS)).unwrap();
        let ms = start.elapsed().as_secs_f64() * 1e3 / STEPS as f64;
        println!(
            "ours, {threads} thread(s): LSTM({HIDDEN}), window {WINDOW}, batch {BATCH}, {STEPS} steps \
             on {N_POINTS} points: {ms:.3} ms/step (loss {:.4} -> {:.4})",
            history.step_losses[0],
            history.step_losses[STEPS - 1]
        );
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
    println!(
        "candle_nn LSTM + autograd, same configuration: {candle_ms:.2} ms/step over {probe} steps \
         (the fused path is {:.1}x faster)",
        candle_ms / ms
    );
    ms
}

/// Runs benches/keras_train.py with `PROMLEARN_KERAS_PYTHON`, else `python3`, if it has TF.
fn keras_ms_per_step() -> Result<(f64, String), String> {
    let python = std::env::var("PROMLEARN_KERAS_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_tf = Command::new(&python)
        .args(["-c", "import tensorflow"])
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .output()
        .map_err(|e| format!("{python}: {e}"))?;
    if !has_tf.status.success() {
        return Err(format!("`{python} -c 'import tensorflow'` failed"));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/keras_train.py");
    let out = Command::new(&python)
        .arg(&script)
        .args([N_POINTS, WINDOW, HIDDEN, BATCH, STEPS].map(|v| v.to_string()))
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .output()
        .map_err(|e| format!("{python}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| {
            format!(
                "keras_train.py printed no result: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            )
        })?;
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let ms = v["ms_per_step"].as_f64().ok_or("no ms_per_step")?;
    Ok((
        ms,
        format!(
            "TensorFlow {}, Keras {}",
            v["tensorflow"].as_str().unwrap_or("?"),
            v["keras"].as_str().unwrap_or("?")
        ),
    ))
}
