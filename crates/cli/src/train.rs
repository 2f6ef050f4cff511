//! `promlearn train`: learns a forecaster on one series and saves it with its anomaly threshold.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use promlearn_model::{
    Dataset, FitOptions, Forecaster, Init, Loss, ModelConfig, ScaleKind, Scaler, TargetMode,
};
use serde::{Deserialize, Serialize};

use crate::{
    RangeArgs,
    conn::ConnArgs,
    promapi, series,
    timeutil::{parse_duration, rfc3339},
};

/// The file next to the model's own files that says what it was trained on.
pub const META_FILE: &str = "promlearn.json";

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// PromQL selecting the one series to learn, e.g. 'sum(rate(coredns_dns_requests_total[1m]))'.
    pub query: String,

    /// Directory to save the model in (created if missing; its model files are replaced).
    #[arg(long, short = 'm', value_name = "DIR")]
    pub model: PathBuf,

    #[command(flatten)]
    pub range: RangeArgs,

    /// Resolution of the training series.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub step: Duration,

    /// Input window: how many past steps each prediction sees.
    #[arg(long, default_value_t = 10, value_parser = crate::positive)]
    pub window: usize,

    /// LSTM units.
    #[arg(long, default_value_t = 32, value_parser = crate::positive)]
    pub hidden: usize,

    /// Passes over the training windows.
    #[arg(long, default_value_t = 20, value_parser = crate::positive)]
    pub epochs: usize,

    /// Windows per training step.
    #[arg(long, default_value_t = 32, value_parser = crate::positive)]
    pub batch_size: usize,

    /// Adam's learning rate.
    #[arg(long, default_value_t = 0.001)]
    pub learning_rate: f32,

    /// Errors above this quantile of the training errors are anomalies (0 to 1).
    #[arg(long, default_value_t = 0.99, value_parser = crate::unit_interval)]
    pub quantile: f64,

    /// How values are scaled before training.
    #[arg(long, value_enum, default_value_t = Scale::MinMax)]
    pub scale: Scale,

    /// Seed for the initial weights and the shuffling: the same seed and data give the same model.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Scale {
    /// (v - min) / (max - min): into [0, 1] whatever the data's sign.
    MinMax,
    /// v / max: the tutorial's scaling; needs a positive maximum.
    Max,
}

/// What a model was trained on, saved as `promlearn.json` beside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainedOn {
    pub query: String,
    pub step_seconds: f64,
    pub labels: std::collections::BTreeMap<String, String>,
    pub start: String,
    pub end: String,
    pub samples: usize,
    pub filled: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub final_loss: f64,
    pub threshold: f64,
    pub quantile: f64,
}

impl TrainedOn {
    /// Reads `promlearn.json` from a model directory, if there is one.
    pub fn read(dir: &Path) -> Result<Option<TrainedOn>> {
        let path = dir.join(META_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| anyhow!("{} is not valid: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow!("cannot read {}: {}", path.display(), e.kind())),
        }
    }
}

pub async fn run(args: TrainArgs) -> Result<()> {
    let http = promapi::client(&args.conn)?;
    let range = args
        .range
        .resolve(Some(args.step), Duration::from_secs(3600))?;
    let loaded = promapi::load_series(&http, &args.query, &range).await?;
    let one = series::single(&loaded, &args.query)?;
    let regular = series::regularize(one, Some(args.step.as_secs_f64()));
    if regular.filled_count() > 0 {
        tracing::warn!(
            "{} of {} steps had no finite value and were filled by linear interpolation",
            regular.filled_count(),
            regular.values.len()
        );
    }
    let needed = args.window + 2;
    if regular.values.len() < needed {
        anyhow::bail!(
            "the series has {} points in {} but a window of {} needs at least {needed}: \
             widen the range (--last), shorten --step or use a smaller --window",
            regular.values.len(),
            promapi::describe_range(&range),
            args.window
        );
    }
    let kind = match args.scale {
        Scale::MinMax => ScaleKind::MinMax,
        Scale::Max => ScaleKind::Max,
    };
    let scaler = Scaler::fit(&regular.values, kind)
        .map_err(|e| anyhow!("cannot train on this series: {e}"))?;
    let scaled = scaler.transform(&regular.values)?;
    let config = ModelConfig {
        n_steps: args.window,
        hidden: args.hidden,
        target_mode: TargetMode::NextValue,
        loss: Loss::Mae,
        learning_rate: args.learning_rate,
        init: Init::Keras { seed: args.seed },
    };
    let mut model = Forecaster::new(config)?;
    let dataset = Dataset::from_series(&scaled, args.window, TargetMode::NextValue)?;

    let bar = ProgressBar::with_draw_target(
        Some(args.epochs as u64),
        ProgressDrawTarget::stderr_with_hz(10),
    );
    bar.set_style(
        ProgressStyle::with_template("training {bar:30} epoch {pos}/{len} {elapsed} {msg}")
            .expect("a valid template"),
    );
    let started = Instant::now();
    let mut loss = f64::NAN;
    for epoch in 0..args.epochs {
        // Keras shuffles the windows every epoch; so do we, reproducibly.
        let batches = dataset
            .shuffle(args.seed.wrapping_add(epoch as u64))
            .batch(args.batch_size)?;
        let history = model.fit(
            &batches,
            &FitOptions {
                epochs: 1,
                steps_per_epoch: None,
                verbose: false,
            },
        )?;
        loss = history.epoch_losses[0];
        bar.set_message(format!("loss {loss:.5}"));
        bar.inc(1);
        tracing::debug!(epoch = epoch + 1, loss, "epoch done");
    }
    bar.finish_and_clear();
    model.set_scaler(scaler);
    let threshold = model.fit_threshold(&regular.values, args.quantile)?;
    model
        .save(&args.model)
        .with_context(|| format!("cannot save the model in {}", args.model.display()))?;
    let meta = TrainedOn {
        query: args.query.clone(),
        step_seconds: args.step.as_secs_f64(),
        labels: one.labels.clone(),
        start: rfc3339(range.start),
        end: rfc3339(range.end),
        samples: regular.values.len(),
        filled: regular.filled_count(),
        epochs: args.epochs,
        batch_size: args.batch_size,
        final_loss: loss,
        threshold: threshold.value,
        quantile: threshold.quantile,
    };
    let meta_path = args.model.join(META_FILE);
    std::fs::write(&meta_path, serde_json::to_string_pretty(&meta)? + "\n")
        .with_context(|| format!("cannot write {}", meta_path.display()))?;

    println!(
        "trained LSTM({}) on {} points of {} ({})",
        args.hidden,
        regular.values.len(),
        args.query,
        promapi::describe_range(&range)
    );
    println!(
        "{} epochs in {:.1}s, final loss (MAE, scaled) {loss:.5}",
        args.epochs,
        started.elapsed().as_secs_f64()
    );
    println!(
        "anomaly threshold {:.5} (quantile {} of the training errors)",
        threshold.value, threshold.quantile
    );
    println!("saved to {}", args.model.display());
    Ok(())
}
