//! `cargo run -p promlearn-model --example spec_vs_fused`: the model's specification
//! (`src/model/spec.rs`: LSTM + Dense in candle_nn, gradients by candle's autograd) and the fused
//! kernels that train it in practice (`src/fused.rs`), trained side by side on one series from one
//! set of initial weights. Both print their loss after every epoch; the two columns agree to
//! float32 rounding, which is what the tests check step by step.
//!
//! The whole model a reader needs is `LstmDense::new` and `LstmDense::forward` in `spec.rs`, as
//! candle's own examples keep theirs (candle-examples/examples/mnist-training).

#![allow(clippy::print_stdout, reason = "an example prints its results")]

use std::time::Instant;

use promlearn_model::{
    Backend, Dataset, FitOptions, Forecaster, Init, ModelConfig, ScaleKind, Scaler, TargetMode,
};

fn main() -> Result<(), promlearn_model::Error> {
    // A daily rhythm with some noise-free harmonics: 2,000 points, scaled to [0, 1].
    let series: Vec<f64> = (0..2_000)
        .map(|i| {
            let t = i as f64 / 96.0 * std::f64::consts::TAU;
            100.0 + 40.0 * t.sin() + 10.0 * (3.0 * t).cos()
        })
        .collect();
    let scaler = Scaler::fit(&series, ScaleKind::MinMax)?;
    let dataset = Dataset::from_series(&scaler.transform(&series)?, 16, TargetMode::NextValue)?;
    let batches = dataset.batch(64)?;

    // One configuration and one seed: both models start from the same weights.
    let mut config = ModelConfig::forecasting(16, 8);
    config.learning_rate = 0.01;
    config.init = Init::Keras { seed: 7 };
    let options = FitOptions {
        epochs: 5,
        steps_per_epoch: None,
    };

    let mut spec = Forecaster::new(config.clone())?;
    spec.set_backend(Backend::CandleAutograd);
    let started = Instant::now();
    let spec_history = spec.fit(&batches, &options)?;
    let spec_time = started.elapsed();

    let mut fused = Forecaster::new(config)?;
    fused.set_backend(Backend::Fused);
    let started = Instant::now();
    let fused_history = fused.fit(&batches, &options)?;
    let fused_time = started.elapsed();

    println!("epoch  spec (candle autograd)  fused kernels");
    for (epoch, (s, f)) in spec_history
        .epoch_losses
        .iter()
        .zip(&fused_history.epoch_losses)
        .enumerate()
    {
        println!("{:>5}  {s:>22.8}  {f:>13.8}", epoch + 1);
    }
    println!(
        "time   {:>21.2}s  {:>12.2}s",
        spec_time.as_secs_f64(),
        fused_time.as_secs_f64()
    );
    Ok(())
}
