//! `promlearn detect`: runs a saved model over a query's series and reports the points whose
//! prediction error passes the model's threshold, once over a range or live.

use std::{
    io::Write,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use promlearn_model::{Forecaster, ScaleKind, TargetMode, Threshold};
use serde_json::json;

use crate::{
    RangeArgs,
    conn::ConnArgs,
    output::{self, Format, csv_field, json_number},
    plot, promapi,
    series::{self, Regular},
    timeutil::{from_unix, parse_duration, rfc3339},
    train::TrainedOn,
};

#[derive(Args, Debug)]
pub struct DetectArgs {
    /// Directory of a model saved by `promlearn train`.
    #[arg(long, short = 'm', value_name = "DIR")]
    pub model: PathBuf,

    /// PromQL selecting the series to check [default: the query the model was trained on].
    #[arg(long, short = 'q')]
    pub query: Option<String>,

    #[command(flatten)]
    pub range: RangeArgs,

    /// Resolution [default: the model's training step].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub step: Option<Duration>,

    /// Keep watching: re-query the last --last every --interval and report new anomalies.
    #[arg(long, conflicts_with_all = ["start", "end"])]
    pub live: bool,

    /// How often to re-query in --live mode [default: --step].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "live")]
    pub interval: Option<Duration>,

    /// Stop --live after this many checks.
    #[arg(long, value_name = "N", requires = "live")]
    pub count: Option<u64>,

    /// Stop --live after this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "live")]
    pub duration: Option<Duration>,

    /// Write the anomalies to FILE (.json or .csv) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Output format [default: from --output's extension, else text].
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Draw the series, the prediction, the threshold band and the anomalies to a PNG
    /// (redrawn at every check in --live mode).
    #[arg(long, value_name = "PNG")]
    pub plot: Option<PathBuf>,

    #[command(flatten)]
    pub conn: ConnArgs,
}

/// One flagged point.
#[derive(Debug, Clone)]
struct Found {
    t: f64,
    value: f64,
    predicted: f64,
    error: f64,
    score: f64,
}

/// A model's view of one series.
struct Analysis {
    regular: Regular,
    /// Predictions in the series' units, for `regular` from index `offset` on.
    predicted: Vec<f64>,
    offset: usize,
    anomalies: Vec<Found>,
    /// The threshold as a half-width around the prediction, in the series' units.
    band: f64,
}

struct Detector {
    model: Forecaster,
    threshold: Threshold,
    query: String,
    step: Duration,
}

impl Detector {
    fn analyse(&self, regular: Regular) -> Result<Analysis> {
        let n = self.model.config().n_steps;
        if regular.values.len() < n + 1 {
            bail!(
                "the series has {} points but the model's window of {n} needs at least {}: \
                 widen the range (--last)",
                regular.values.len(),
                n + 1
            );
        }
        let scaled = match self.model.scaler() {
            Some(s) => s.transform(&regular.values)?,
            None => regular.values.clone(),
        };
        let windows: Vec<Vec<f64>> = (0..scaled.len() - n)
            .map(|i| scaled[i..i + n].to_vec())
            .collect();
        let raw = self.model.predict(&windows)?;
        let (predicted, span) = match self.model.scaler() {
            Some(s) => {
                let span = match s.kind {
                    ScaleKind::Max => s.max,
                    ScaleKind::MinMax => s.max - s.min,
                };
                (s.inverse_transform(&raw), span)
            }
            None => (raw, 1.0),
        };
        let errors = self.model.prediction_errors(&regular.values)?;
        let anomalies = self
            .threshold
            .flag(&errors)
            .into_iter()
            .filter(|a| !regular.filled[a.index])
            .map(|a| Found {
                t: regular.timestamps[a.index],
                value: regular.values[a.index],
                predicted: predicted[a.index - n],
                error: a.error,
                score: a.score,
            })
            .collect();
        Ok(Analysis {
            regular,
            predicted,
            offset: n,
            anomalies,
            band: self.threshold.value * span,
        })
    }

    async fn check(
        &self,
        http: &promlearn_loader::Client,
        range: &promapi::Range,
    ) -> Result<Analysis> {
        let loaded = promapi::load_series(http, &self.query, range).await?;
        let one = series::single(&loaded, &self.query)?;
        let regular = series::regularize(one, Some(self.step.as_secs_f64()));
        self.analyse(regular)
    }

    fn plot(&self, path: &std::path::Path, a: &Analysis) -> Result<()> {
        let points: Vec<(f64, f64)> = a.anomalies.iter().map(|f| (f.t, f.value)).collect();
        let title = format!(
            "{}  (threshold quantile {})",
            self.query, self.threshold.quantile
        );
        plot::draw(
            path,
            &plot::PlotData {
                title: &title,
                timestamps: &a.regular.timestamps,
                values: &a.regular.values,
                predicted: &a.predicted,
                offset: a.offset,
                band: a.band,
                anomalies: &points,
            },
        )
    }
}

pub async fn run(args: DetectArgs) -> Result<()> {
    let model = Forecaster::load(&args.model)
        .map_err(|e| anyhow!("cannot load the model from {}: {e}", args.model.display()))?;
    let meta = TrainedOn::read(&args.model)?;
    let threshold = *model.threshold().ok_or_else(|| {
        anyhow!(
            "the model in {} has no anomaly threshold: train it with `promlearn train`",
            args.model.display()
        )
    })?;
    if model.config().target_mode != TargetMode::NextValue {
        tracing::warn!(
            "the model predicts the next window's mean (tutorial mode): the band is approximate"
        );
    }
    let query = match (&args.query, &meta) {
        (Some(q), _) => q.clone(),
        (None, Some(meta)) => meta.query.clone(),
        (None, None) => bail!(
            "give --query: {} has no {} saying what the model was trained on",
            args.model.display(),
            crate::train::META_FILE
        ),
    };
    let step = args
        .step
        .or_else(|| {
            meta.as_ref()
                .map(|m| Duration::from_secs_f64(m.step_seconds))
        })
        .unwrap_or(Duration::from_secs(15));
    let format = Format::choose(
        args.format,
        args.output.as_deref(),
        &[Format::Text, Format::Json, Format::Csv],
    )?;
    let http = promapi::client(&args.conn)?;
    let detector = Detector {
        model,
        threshold,
        query,
        step,
    };
    if args.live {
        live(&args, &detector, &http, format).await
    } else {
        let range = args.range.resolve(Some(step), Duration::from_secs(3600))?;
        let analysis = detector.check(&http, &range).await?;
        if let Some(path) = &args.plot {
            detector.plot(path, &analysis)?;
            tracing::info!("plot written to {}", path.display());
        }
        let mut out = output::open(args.output.as_deref())?;
        write_report(&mut out, format, &detector, &range, &analysis)
            .and_then(|()| out.flush().map_err(Into::into))
            .or_else(|e| {
                if output::is_broken_pipe(&e) {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
        if let Some(path) = &args.output {
            eprintln!(
                "{} anomalies in {} points written to {}",
                analysis.anomalies.len(),
                analysis.regular.values.len(),
                path.display()
            );
        }
        Ok(())
    }
}

fn write_report(
    out: &mut dyn Write,
    format: Format,
    d: &Detector,
    range: &promapi::Range,
    a: &Analysis,
) -> Result<()> {
    match format {
        Format::Json => {
            let doc = json!({
                "query": d.query,
                "start": rfc3339(range.start),
                "end": rfc3339(range.end),
                "step_seconds": d.step.as_secs_f64(),
                "points": a.regular.values.len(),
                "filled": a.regular.filled_count(),
                "threshold": d.threshold.value,
                "quantile": d.threshold.quantile,
                "anomalies": a.anomalies.iter().map(found_json).collect::<Vec<_>>(),
            });
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            writeln!(out)?;
        }
        Format::Csv => {
            writeln!(out, "{CSV_HEADER}")?;
            for f in &a.anomalies {
                writeln!(out, "{}", found_csv(f))?;
            }
        }
        _ => {
            writeln!(
                out,
                "{} anomalies in {} points of {} ({}); threshold {:.5} (quantile {})",
                a.anomalies.len(),
                a.regular.values.len(),
                d.query,
                promapi::describe_range(range),
                d.threshold.value,
                d.threshold.quantile
            )?;
            for f in &a.anomalies {
                writeln!(out, "{}", found_text(f))?;
            }
        }
    }
    Ok(())
}

const CSV_HEADER: &str = "timestamp,unix_seconds,value,predicted,error,score";

fn found_json(f: &Found) -> serde_json::Value {
    json!({
        "timestamp": rfc3339(from_unix(f.t)),
        "unix_seconds": f.t,
        "value": json_number(f.value),
        "predicted": json_number(f.predicted),
        "error": json_number(f.error),
        "score": json_number(f.score),
    })
}

fn found_csv(f: &Found) -> String {
    format!(
        "{},{},{},{},{},{}",
        csv_field(&rfc3339(from_unix(f.t))),
        f.t,
        f.value,
        f.predicted,
        f.error,
        f.score
    )
}

fn found_text(f: &Found) -> String {
    format!(
        "{}  value {}  predicted {:.6}  score {:.2}",
        rfc3339(from_unix(f.t)),
        f.value,
        f.predicted,
        f.score
    )
}

async fn live(
    args: &DetectArgs,
    d: &Detector,
    http: &promlearn_loader::Client,
    format: Format,
) -> Result<()> {
    let interval = args.interval.unwrap_or(d.step);
    if interval.is_zero() {
        bail!("--interval must be longer than 0s");
    }
    let lookback = args.range.last.unwrap_or(Duration::from_secs(3600));
    let started = Instant::now();
    let mut out = output::open(args.output.as_deref())?;
    if format == Format::Csv {
        writeln!(out, "{CSV_HEADER}")?;
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_reported = f64::NEG_INFINITY;
    let mut checks = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if args.count.is_some_and(|n| checks >= n)
            || args.duration.is_some_and(|d| started.elapsed() >= d)
        {
            break;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut ctrl_c => break,
        }
        checks += 1;
        let end = chrono::Utc::now();
        let range = promapi::Range {
            start: end - chrono::Duration::from_std(lookback).context("--last is too long")?,
            end,
            step: Some(d.step),
        };
        let analysis = match d.check(http, &range).await {
            Ok(a) => a,
            // A hiccup while watching is reported, not fatal; the first check must work.
            Err(e) if checks > 1 => {
                tracing::warn!("check {checks} failed: {}", crate::one_line(&e));
                continue;
            }
            Err(e) => return Err(e),
        };
        let new: Vec<&Found> = analysis
            .anomalies
            .iter()
            .filter(|f| f.t > last_reported)
            .collect();
        tracing::info!(
            check = checks,
            points = analysis.regular.values.len(),
            new = new.len(),
            "checked"
        );
        let written = (|| -> Result<()> {
            for f in &new {
                match format {
                    Format::Json => {
                        let mut v = found_json(f);
                        v["query"] = json!(d.query);
                        writeln!(out, "{v}")?;
                    }
                    Format::Csv => writeln!(out, "{}", found_csv(f))?,
                    _ => writeln!(out, "{}", found_text(f))?,
                }
            }
            out.flush()?;
            Ok(())
        })();
        match written {
            Err(e) if output::is_broken_pipe(&e) => return Ok(()),
            other => other?,
        }
        if let Some(f) = new.last() {
            last_reported = f.t;
        }
        if let Some(path) = &args.plot {
            d.plot(path, &analysis)?;
        }
    }
    Ok(())
}
