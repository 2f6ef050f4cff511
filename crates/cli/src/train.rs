//! `promlearn train`: fits promlearn-detect's LSTM detector on one series and saves it (the
//! forecaster, its scaler and its anomaly band), for `promlearn detect --model`.

use std::{
    path::{Path, PathBuf},
    sync::LazyLock,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use promlearn_detect::{DetectorSpec, EpochDone, FittedLstm, LstmOptions};
use serde::{Deserialize, Serialize};

use crate::{
    RangeArgs,
    conn::ConnArgs,
    promapi, series,
    timeutil::{parse_duration, rfc3339},
};

/// The file next to the model's own files that says what it was trained on.
pub const META_FILE: &str = "promlearn.json";

/// promlearn-detect's LSTM defaults, the flags' defaults: detect owns them, the CLI shows them.
struct LstmDefaults {
    window: usize,
    hidden: usize,
    epochs: usize,
    learning_rate: f64,
    quantile: f64,
    margin: f64,
}

static LSTM: LazyLock<LstmDefaults> = LazyLock::new(lstm_defaults);

fn lstm_defaults() -> LstmDefaults {
    match DetectorSpec::from_name("lstm") {
        Ok(DetectorSpec::Lstm {
            window,
            hidden,
            epochs,
            learning_rate,
            quantile,
            margin,
        }) => LstmDefaults {
            window,
            hidden,
            epochs,
            learning_rate,
            quantile,
            margin,
        },
        other => unreachable!("detect names its LSTM `lstm`: {other:?}"),
    }
}

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
    #[arg(long, default_value_t = LSTM.window, value_parser = crate::positive)]
    pub window: usize,

    /// LSTM units.
    #[arg(long, default_value_t = LSTM.hidden, value_parser = crate::positive)]
    pub hidden: usize,

    /// Passes over the training windows.
    #[arg(long, default_value_t = LSTM.epochs, value_parser = crate::positive)]
    pub epochs: usize,

    /// Windows per training step [default: 8, more for a long series so that an epoch is at
    /// most 16 steps].
    #[arg(long, value_parser = crate::positive)]
    pub batch_size: Option<usize>,

    /// Adam's learning rate.
    #[arg(long, default_value_t = LSTM.learning_rate)]
    pub learning_rate: f64,

    /// The band is built on this quantile of the absolute training errors (0 to 1).
    #[arg(long, default_value_t = LSTM.quantile, value_parser = crate::unit_interval)]
    pub quantile: f64,

    /// The band's half-width around the forecast, as a multiple of that quantile: a point
    /// further from the forecast is an anomaly.
    #[arg(long, default_value_t = LSTM.margin)]
    pub margin: f64,

    /// Seed for the initial weights and the shuffling: the same seed and data give the same model.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    #[command(flatten)]
    pub conn: ConnArgs,
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
    /// `None`: chosen from the series' length.
    #[serde(default)]
    pub batch_size: Option<usize>,
    pub final_loss: f64,
    /// The band's half-width around the forecast, in the series' units (older models: the
    /// threshold on the scaled error).
    pub threshold: f64,
    pub quantile: f64,
    /// The band's half-width as a multiple of the error quantile (absent in older models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
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
    let spec = DetectorSpec::Lstm {
        window: args.window,
        hidden: args.hidden,
        epochs: args.epochs,
        learning_rate: args.learning_rate,
        quantile: args.quantile,
        margin: args.margin,
    };
    spec.validate()?;
    let http = promapi::client(&args.conn)?;
    let range = args
        .range
        .resolve(Some(args.step), Duration::from_secs(3600))?;
    let loaded = promapi::load_series(&http, &args.query, &range).await?;
    let one = series::single(&loaded, &args.query)?;
    let missing = series::missing_steps(one, args.step);
    if missing > 0 {
        tracing::warn!(
            "{missing} steps had no finite value; windows with more than a quarter of their \
             points missing are left out of training, fewer are filled linearly"
        );
    }
    let timestamps = one.timestamps_ms.clone();

    let bar = ProgressBar::with_draw_target(
        Some(args.epochs as u64),
        ProgressDrawTarget::stderr_with_hz(10),
    );
    bar.set_style(
        ProgressStyle::with_template("training {bar:30} epoch {pos}/{len} {elapsed} {msg}")
            .expect("a valid template"),
    );
    let started = Instant::now();
    let fitted = FittedLstm::fit(
        &spec,
        &timestamps,
        &one.values,
        &LstmOptions {
            batch_size: args.batch_size,
            seed: args.seed,
        },
        &mut |e: EpochDone| {
            bar.set_message(format!("loss {:.5}", e.loss));
            bar.inc(1);
            tracing::debug!(epoch = e.epoch, loss = e.loss, "epoch done");
        },
    )
    .map_err(|e| {
        anyhow!(
            "cannot train on {} ({}): {e}; widen the range (--last), shorten --step or use a \
             smaller --window",
            args.query,
            promapi::describe_range(&range)
        )
    });
    bar.finish_and_clear();
    let fitted = fitted?;
    let took = started.elapsed();
    fitted
        .save(&args.model)
        .with_context(|| format!("cannot save the model in {}", args.model.display()))?;
    let meta = TrainedOn {
        query: args.query.clone(),
        step_seconds: args.step.as_secs_f64(),
        labels: one.labels.clone(),
        start: rfc3339(range.start),
        end: rfc3339(range.end),
        samples: one.values.len(),
        filled: missing,
        epochs: args.epochs,
        batch_size: args.batch_size,
        final_loss: fitted.final_loss(),
        threshold: fitted.half_width(),
        quantile: args.quantile,
        margin: Some(args.margin),
    };
    let meta_path = args.model.join(META_FILE);
    std::fs::write(&meta_path, serde_json::to_string_pretty(&meta)? + "\n")
        .with_context(|| format!("cannot write {}", meta_path.display()))?;

    println!(
        "trained LSTM({}) on {} points of {} ({})",
        args.hidden,
        one.values.len(),
        args.query,
        promapi::describe_range(&range)
    );
    println!(
        "{} epochs in {:.1}s, final loss (MAE, scaled) {:.5}",
        args.epochs,
        took.as_secs_f64(),
        fitted.final_loss()
    );
    println!(
        "anomaly band ±{:.5} around the forecast ({} × {:.5}, the {} quantile of the training errors)",
        fitted.half_width(),
        args.margin,
        fitted.error_quantile(),
        args.quantile
    );
    println!("saved to {}", args.model.display());
    Ok(())
}
