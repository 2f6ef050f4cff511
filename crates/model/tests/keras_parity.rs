//! Parity with real Keras, from fixtures/model/keras_reference.json (written by
//! fixtures/model/generate_keras_reference.py; no TensorFlow needed here).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests show what they compare; cargo prints it when one fails"
)]

use promlearn_model::{
    Backend, Batch, Dataset, FitOptions, Forecaster, KerasWeights, Loss, ModelConfig, ScaleKind,
    Scaler, TargetMode,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    tutorial: Tutorial,
    wide: Wide,
}

#[derive(Deserialize)]
struct Tutorial {
    n_steps: usize,
    hidden: usize,
    series: Vec<f64>,
    scaled_inputs: Vec<f64>,
    scaled_targets: Vec<f64>,
    initial_weights: KerasWeights,
    lstm_output: Vec<f32>,
    dense_output: Vec<f32>,
    mae_step_losses: Vec<f64>,
    mae_final_weights: KerasWeights,
    fit_epoch_losses: Vec<f64>,
}

#[derive(Deserialize)]
struct Wide {
    n_steps: usize,
    hidden: usize,
    batch_size: usize,
    series: Vec<f64>,
    initial_weights: KerasWeights,
    first_batch_lstm_output: Vec<f32>,
    first_batch_dense_output: Vec<f32>,
    mae_step_losses: Vec<f64>,
    mae_final_weights: KerasWeights,
    mse_step_losses: Vec<f64>,
}

fn reference() -> Reference {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/model/keras_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture present"))
        .expect("fixture parses")
}

fn max_abs_diff(a: impl IntoIterator<Item = f64>, b: impl IntoIterator<Item = f64>) -> f64 {
    let (a, b): (Vec<f64>, Vec<f64>) = (a.into_iter().collect(), b.into_iter().collect());
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn flat(w: &KerasWeights) -> Vec<f64> {
    [
        &w.kernel,
        &w.recurrent_kernel,
        &w.bias,
        &w.dense_kernel,
        &w.dense_bias,
    ]
    .into_iter()
    .flatten()
    .map(|&v| v as f64)
    .collect()
}

fn tutorial_config(t: &Tutorial) -> ModelConfig {
    ModelConfig {
        n_steps: t.n_steps,
        hidden: t.hidden,
        ..ModelConfig::tutorial()
    }
}

/// The tutorial's pipeline in Rust: max scaling, windows of 2, y = the next window.
fn tutorial_dataset(t: &Tutorial) -> Dataset {
    let scaler = Scaler::fit(&t.series, ScaleKind::Max).unwrap();
    Dataset::from_series(
        &scaler.transform(&t.series).unwrap(),
        t.n_steps,
        TargetMode::TutorialNextWindow,
    )
    .unwrap()
}

#[test]
fn tutorial_pipeline_builds_the_same_pairs_as_tf_data() {
    let r = reference();
    let t = &r.tutorial;
    let ds = tutorial_dataset(t);
    assert_eq!(ds.len(), 10);
    let inputs = (0..ds.len()).flat_map(|i| ds.input(i).to_vec());
    let targets = (0..ds.len()).flat_map(|i| ds.target(i).to_vec());
    // tf.data scales in f64 and the fixture holds the float32 casts.
    assert!(max_abs_diff(inputs, t.scaled_inputs.clone()) < 1e-7);
    assert!(max_abs_diff(targets, t.scaled_targets.clone()) < 1e-7);
}

#[test]
fn tutorial_layer_outputs_match_keras() {
    let r = reference();
    let t = &r.tutorial;
    let model = Forecaster::from_keras_weights(tutorial_config(t), &t.initial_weights).unwrap();
    let ds = tutorial_dataset(t);
    let windows: Vec<Vec<f64>> = (0..ds.len()).map(|i| ds.input(i).to_vec()).collect();
    let (lstm, dense) = model.layer_outputs(&windows).unwrap();
    let lstm_err = max_abs_diff(
        lstm.iter().flatten().map(|&v| v as f64),
        t.lstm_output.iter().map(|&v| v as f64),
    );
    let dense_err = max_abs_diff(
        dense.iter().map(|&v| v as f64),
        t.dense_output.iter().map(|&v| v as f64),
    );
    eprintln!("tutorial: LSTM output max |diff| {lstm_err:.2e}, Dense output {dense_err:.2e}");
    assert!(lstm_err < 1e-5 && dense_err < 1e-5);
    let preds = model.predict(&windows).unwrap();
    assert!(max_abs_diff(preds, t.dense_output.iter().map(|&v| v as f64)) < 1e-5);
}

fn check_tutorial_training(backend: Backend) {
    let r = reference();
    let t = &r.tutorial;
    let mut model = Forecaster::from_keras_weights(tutorial_config(t), &t.initial_weights).unwrap();
    model.set_backend(backend);
    let batches = tutorial_dataset(t).repeat(10).batch(1).unwrap();
    let options = FitOptions {
        epochs: 5,
        steps_per_epoch: Some(10),
    };
    let history = model.fit(&batches, &options).unwrap();
    let step_err = max_abs_diff(history.step_losses.clone(), t.mae_step_losses.clone());
    let epoch_err = max_abs_diff(history.epoch_losses.clone(), t.fit_epoch_losses.clone());
    let weight_err = max_abs_diff(flat(&model.keras_weights()), flat(&t.mae_final_weights));
    eprintln!(
        "tutorial {backend:?}: 50 step losses max |diff| {step_err:.2e}, epoch losses {epoch_err:.2e}, \
         final weights {weight_err:.2e}"
    );
    assert!(
        step_err < 1e-4,
        "{:?} vs {:?}",
        history.step_losses,
        t.mae_step_losses
    );
    assert!(epoch_err < 1e-4);
    assert!(weight_err < 1e-4);
}

#[test]
fn tutorial_training_matches_keras_step_by_step() {
    check_tutorial_training(Backend::Fused);
}

#[test]
fn tutorial_training_matches_keras_with_candle_autograd() {
    check_tutorial_training(Backend::CandleAutograd);
}

fn wide_batches(w: &Wide) -> Vec<Batch> {
    let scaler = Scaler::fit(&w.series, ScaleKind::MinMax).unwrap();
    let ds = Dataset::from_series(
        &scaler.transform(&w.series).unwrap(),
        w.n_steps,
        TargetMode::NextValue,
    )
    .unwrap();
    let mut batches = ds.batch(w.batch_size).unwrap();
    batches.retain(|b| b.size() == w.batch_size); // the generator drops the short last batch
    batches
}

fn wide_model(w: &Wide, loss: Loss) -> Forecaster {
    let config = ModelConfig {
        loss,
        ..ModelConfig::forecasting(w.n_steps, w.hidden)
    };
    Forecaster::from_keras_weights(config, &w.initial_weights).unwrap()
}

#[test]
fn wide_layer_outputs_match_keras() {
    let r = reference();
    let w = &r.wide;
    let model = wide_model(w, Loss::Mae);
    let first = &wide_batches(w)[0];
    let windows: Vec<Vec<f64>> = first
        .inputs()
        .chunks(w.n_steps)
        .map(|c| c.iter().map(|&v| v as f64).collect())
        .collect();
    let (lstm, dense) = model.layer_outputs(&windows).unwrap();
    let lstm_err = max_abs_diff(
        lstm.iter().flatten().map(|&v| v as f64),
        w.first_batch_lstm_output.iter().map(|&v| v as f64),
    );
    let dense_err = max_abs_diff(
        dense.iter().map(|&v| v as f64),
        w.first_batch_dense_output.iter().map(|&v| v as f64),
    );
    eprintln!("wide: LSTM output max |diff| {lstm_err:.2e}, Dense output {dense_err:.2e}");
    assert!(lstm_err < 1e-5 && dense_err < 1e-5);
}

fn check_wide(
    loss: Loss,
    expected: &[f64],
    final_weights: Option<&KerasWeights>,
    backend: Backend,
) {
    let r = reference();
    let w = &r.wide;
    let mut model = wide_model(w, loss);
    model.set_backend(backend);
    let batches = wide_batches(w);
    let losses: Vec<f64> = batches[..expected.len()]
        .iter()
        .map(|b| model.train_step(b).unwrap())
        .collect();
    let err = max_abs_diff(losses.clone(), expected.to_vec());
    eprintln!(
        "wide {loss:?} {backend:?}: {} step losses max |diff| {err:.2e}",
        expected.len()
    );
    assert!(err < 1e-4, "{losses:?} vs {expected:?}");
    if let Some(fw) = final_weights {
        let werr = max_abs_diff(flat(&model.keras_weights()), flat(fw));
        eprintln!("wide {loss:?} {backend:?}: final weights max |diff| {werr:.2e}");
        assert!(werr < 1e-4);
    }
}

#[test]
fn wide_mae_training_matches_keras() {
    let r = reference();
    check_wide(
        Loss::Mae,
        &r.wide.mae_step_losses,
        Some(&r.wide.mae_final_weights),
        Backend::Fused,
    );
    check_wide(
        Loss::Mae,
        &r.wide.mae_step_losses,
        Some(&r.wide.mae_final_weights),
        Backend::CandleAutograd,
    );
}

#[test]
fn wide_mse_training_matches_keras() {
    let r = reference();
    check_wide(Loss::Mse, &r.wide.mse_step_losses, None, Backend::Fused);
}

#[test]
fn fused_gradients_match_candle_autograd() {
    let r = reference();
    let w = &r.wide;
    for loss in [Loss::Mae, Loss::Mse] {
        let mut model = wide_model(w, loss);
        let batch = &wide_batches(w)[3];
        let (l1, g1) = model.gradients(batch).unwrap();
        model.set_backend(Backend::CandleAutograd);
        let (l2, g2) = model.gradients(batch).unwrap();
        assert!((l1 - l2).abs() < 1e-6);
        let err = max_abs_diff(g1.iter().map(|&v| v as f64), g2.iter().map(|&v| v as f64));
        let scale = g2.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        assert!(
            err < 1e-5 * scale.max(1.0),
            "{loss:?}: {err} (largest gradient {scale})"
        );
    }
}

#[test]
fn batch_split_across_threads_gives_the_same_step() {
    let r = reference();
    let w = &r.wide;
    let scaler = Scaler::fit(&w.series, ScaleKind::MinMax).unwrap();
    let ds = Dataset::from_series(
        &scaler.transform(&w.series).unwrap(),
        w.n_steps,
        TargetMode::NextValue,
    )
    .unwrap();
    let batch = &ds.batch(70).unwrap()[0]; // 70 rows: 4 threads get 18, 18, 18, 16
    let mut model = wide_model(w, Loss::Mae);
    model.set_threads(1);
    let (l1, g1) = model.gradients(batch).unwrap();
    model.set_threads(4);
    let (l4, g4) = model.gradients(batch).unwrap();
    assert!((l1 - l4).abs() < 1e-6);
    assert!(max_abs_diff(g1.iter().map(|&v| v as f64), g4.iter().map(|&v| v as f64)) < 1e-6);
    model.set_backend(Backend::CandleAutograd);
    let (lc, gc) = model.gradients(batch).unwrap();
    assert!((l1 - lc).abs() < 1e-6);
    assert!(max_abs_diff(g4.iter().map(|&v| v as f64), gc.iter().map(|&v| v as f64)) < 1e-5);
}
