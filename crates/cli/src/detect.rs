//! `promlearn detect`: runs a detector from promlearn-detect over a query's series and reports the
//! points outside its band, once over a range or live. The detector is a model saved by
//! `promlearn train`, or one fitted here on the data itself.

use std::{
    io::Write,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use promlearn_detect::{
    Analysis, DetectorSpec, Direction, DomainKnowledge, Fitted, FittedLstm, MinDeviation,
};
use serde_json::json;

use crate::{
    RangeArgs,
    conn::ConnArgs,
    output::{self, Format, csv_field, json_number},
    plot, promapi, series,
    timeutil::{format_duration, from_ms, parse_duration, rfc3339},
    train::TrainedOn,
};

#[derive(Args, Debug)]
pub struct DetectArgs {
    /// Directory of a model saved by `promlearn train`: its LSTM forecaster and band judge the
    /// series. Without --model, the --detector is fitted here on the data (see --fit-window).
    #[arg(long, short = 'm', value_name = "DIR")]
    pub model: Option<PathBuf>,

    /// The detector to fit when there is no --model: zscore, mad, quantile or lstm with their
    /// defaults, or a JSON spec with any settings changed, e.g. '{"kind":"mad","threshold":6}'
    /// or '{"kind":"zscore","window":120}'. Defaults: zscore window 60 threshold 4; mad window
    /// 60 threshold 5; quantile window 120 lower 0.01 upper 0.99 margin 1; lstm window 8 hidden
    /// 16 epochs 40 learning_rate 0.01 quantile 0.99 margin 2 [default: mad].
    #[arg(long, short = 'd', value_name = "NAME|JSON", conflicts_with = "model", value_parser = parse_spec)]
    pub detector: Option<DetectorSpec>,

    /// Without --model: learn from this much data just before the range (or, with --live, before
    /// the first check's range) instead of from the range itself. By default the detector learns
    /// from the range it judges: the rolling detectors learn only the smallest band worth drawing,
    /// which a few anomalies barely move; an LSTM learns better from a --fit-window known to be
    /// normal (or from `promlearn train`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "model")]
    pub fit_window: Option<Duration>,

    /// PromQL selecting the series to check [default: the query the model was trained on].
    #[arg(long, short = 'q')]
    pub query: Option<String>,

    #[command(flatten)]
    pub range: RangeArgs,

    /// What you know about the metric: only deviations on this side of the prediction are
    /// anomalies (`up` for latency or errors, `down` for free space) [default: both].
    #[arg(long, value_name = "both|up|down", value_parser = parse_direction, help_heading = "What you know")]
    pub direction: Option<Direction>,

    /// The smallest deviation from the prediction that is an anomaly: ABS in the metric's unit,
    /// REL% of the prediction, or both (`5`, `10%`, `5,10%`: at least 5 and 10 %).
    #[arg(long, value_name = "ABS,REL%", value_parser = parse_min_deviation, help_heading = "What you know")]
    pub min_deviation: Option<MinDeviation>,

    /// The values the metric can take, LOW:HIGH (`0:100` for a percentage, `0:inf` for a value
    /// never negative): a value outside is an anomaly whatever the detector says.
    #[arg(long, value_name = "LOW:HIGH", value_parser = parse_data_range, help_heading = "What you know")]
    pub data_range: Option<[f64; 2]>,

    /// Resolution [default: the model's training step, else 15s].
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

    /// Draw the series, the prediction, the band and the anomalies to a PNG (redrawn at every
    /// check in --live mode).
    #[arg(long, value_name = "PNG")]
    pub plot: Option<PathBuf>,

    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `--detector`: a name or a JSON spec.
fn parse_spec(text: &str) -> Result<DetectorSpec, String> {
    let spec = if text.trim_start().starts_with('{') {
        serde_json::from_str::<DetectorSpec>(text)
            .map_err(|e| format!("`{text}` is not a detector spec: {e}"))?
    } else {
        DetectorSpec::from_name(text).map_err(|e| e.to_string())?
    };
    spec.validate().map_err(|e| e.to_string())?;
    Ok(spec)
}

/// `--direction`.
fn parse_direction(text: &str) -> Result<Direction, String> {
    serde_json::from_value(json!(text.trim().to_ascii_lowercase()))
        .map_err(|_| format!("`{text}` is not a direction: write both, up or down"))
}

/// `--min-deviation`: `5`, `10%` or `5,10%`.
fn parse_min_deviation(text: &str) -> Result<MinDeviation, String> {
    let mut out = MinDeviation::default();
    for part in text.split(',').map(str::trim) {
        let bad = || format!("`{text}` is not a deviation: write e.g. 5, 10% or 5,10%");
        match part.strip_suffix('%') {
            Some(percent) => {
                out.relative = percent.trim().parse::<f64>().map_err(|_| bad())? / 100.0
            }
            None => out.absolute = part.parse().map_err(|_| bad())?,
        }
    }
    knowledge_check(DomainKnowledge {
        min_deviation: out,
        ..DomainKnowledge::default()
    })?;
    Ok(out)
}

/// `--data-range`: `LOW:HIGH`.
fn parse_data_range(text: &str) -> Result<[f64; 2], String> {
    let (lo, hi) = text
        .split_once(':')
        .and_then(|(lo, hi)| Some((lo.trim().parse().ok()?, hi.trim().parse().ok()?)))
        .ok_or_else(|| format!("`{text}` is not a range: write LOW:HIGH, e.g. 0:100 or 0:inf"))?;
    knowledge_check(DomainKnowledge {
        data_range: Some([lo, hi]),
        ..DomainKnowledge::default()
    })?;
    Ok([lo, hi])
}

fn knowledge_check(knowledge: DomainKnowledge) -> Result<(), String> {
    knowledge.validate().map_err(|e| e.to_string())
}

impl DetectArgs {
    /// What the flags say is known about the metric.
    fn knowledge(&self) -> DomainKnowledge {
        DomainKnowledge {
            direction: self.direction.unwrap_or_default(),
            min_deviation: self.min_deviation.unwrap_or_default(),
            data_range: self.data_range,
        }
    }
}

/// One flagged point.
#[derive(Debug, Clone)]
struct Found {
    /// Unix milliseconds, as detect gives it.
    t_ms: i64,
    value: f64,
    yhat: f64,
    yhat_lower: f64,
    yhat_upper: f64,
    error: f64,
    score: f64,
}

/// A detector's view of one range.
struct Checked {
    /// The analysis of the points inside the range.
    analysis: Analysis,
    anomalies: Vec<Found>,
}

impl Checked {
    fn new(analysis: Analysis) -> Self {
        let anomalies = analysis
            .flagged()
            .map(|i| Found {
                t_ms: analysis.timestamps[i],
                value: analysis.values[i],
                yhat: analysis.yhat[i],
                yhat_lower: analysis.yhat_lower[i],
                yhat_upper: analysis.yhat_upper[i],
                error: (analysis.values[i] - analysis.yhat[i]).abs(),
                score: analysis.score[i],
            })
            .collect();
        Self {
            analysis,
            anomalies,
        }
    }

    fn missing(&self) -> usize {
        self.analysis
            .values
            .iter()
            .filter(|v| !v.is_finite())
            .count()
    }
}

/// The saved LSTM's band, reported as its half-width (what model.json calls the threshold).
#[derive(Debug, Clone, Copy)]
struct Band {
    half_width: f64,
    quantile: f64,
}

struct Detector {
    fitted: Arc<dyn Fitted>,
    knowledge: DomainKnowledge,
    band: Option<Band>,
    query: String,
    step: Duration,
}

/// Loads `query` over `range` as unix-ms timestamps and values (NaN and gaps as they come: the
/// detector skips them).
async fn load(
    http: &promlearn_loader::Client,
    query: &str,
    range: &promapi::Range,
) -> Result<(Vec<i64>, Vec<f64>)> {
    let loaded = promapi::load_series(http, query, range).await?;
    let one = series::single(&loaded, query)?;
    Ok((one.timestamps_ms.clone(), one.values.clone()))
}

/// `range` started `by` earlier.
fn widened(range: &promapi::Range, by: Duration) -> Result<promapi::Range> {
    Ok(promapi::Range {
        start: range.start - chrono::Duration::from_std(by).context("the window is too long")?,
        ..*range
    })
}

impl Detector {
    /// The points the detector needs before a range to judge its first point.
    fn context(&self) -> Duration {
        self.step * self.fitted.spec().context() as u32
    }

    /// Loads `range` with the detector's context before it and judges it.
    async fn check(
        &self,
        http: &promlearn_loader::Client,
        range: &promapi::Range,
    ) -> Result<Checked> {
        let (timestamps, values) =
            load(http, &self.query, &widened(range, self.context())?).await?;
        self.judge(&timestamps, &values, range)
    }

    /// The analysis of the points of `range` (the points before it are context).
    fn judge(&self, timestamps: &[i64], values: &[f64], range: &promapi::Range) -> Result<Checked> {
        let mut analysis = self.fitted.analyse(timestamps, values)?;
        self.knowledge.apply(&mut analysis);
        let from = timestamps.partition_point(|t| *t < range.start.timestamp_millis());
        Ok(Checked::new(analysis.slice(from..analysis.len())))
    }

    fn describe(&self) -> String {
        let spec = self.fitted.spec();
        match (spec, self.band) {
            (DetectorSpec::Lstm { margin, .. }, Some(band)) => format!(
                "LSTM band ±{:.5} ({margin} × the {} quantile of its training errors)",
                band.half_width, band.quantile
            ),
            _ => format!(
                "detector {}",
                serde_json::to_string(spec).unwrap_or_else(|_| spec.name().to_owned())
            ),
        }
    }

    fn plot(&self, path: &std::path::Path, c: &Checked) -> Result<()> {
        let title = format!("{}  ({})", self.query, self.describe());
        plot::draw(path, &title, &c.analysis)
    }
}

pub async fn run(args: DetectArgs) -> Result<()> {
    let format = Format::choose(
        args.format,
        args.output.as_deref(),
        &[Format::Text, Format::Json, Format::Csv],
    )?;
    let http = promapi::client(&args.conn)?;
    let detector = match &args.model {
        Some(dir) => from_model(&args, dir)?,
        None => fitted_here(&args, &http).await?,
    };
    if args.live {
        live(&args, &detector, &http, format).await
    } else {
        let range = args
            .range
            .resolve(Some(detector.step), Duration::from_secs(3600))?;
        let checked = detector.check(&http, &range).await?;
        if let Some(path) = &args.plot {
            detector.plot(path, &checked)?;
            tracing::info!("plot written to {}", path.display());
        }
        let mut out = output::open(args.output.as_deref())?;
        write_report(&mut out, format, &detector, &range, &checked)
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
                checked.anomalies.len(),
                checked.analysis.len(),
                path.display()
            );
        }
        Ok(())
    }
}

/// The saved LSTM detector in `dir`.
fn from_model(args: &DetectArgs, dir: &std::path::Path) -> Result<Detector> {
    let fitted = FittedLstm::load(dir)
        .map_err(|e| anyhow!("cannot load the model from {}: {e}", dir.display()))?;
    let meta = TrainedOn::read(dir)?;
    let query = match (&args.query, &meta) {
        (Some(q), _) => q.clone(),
        (None, Some(meta)) => meta.query.clone(),
        (None, None) => bail!(
            "give --query: {} has no {} saying what the model was trained on",
            dir.display(),
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
    let quantile = match fitted.spec() {
        DetectorSpec::Lstm { quantile, .. } => *quantile,
        _ => f64::NAN,
    };
    let band = Band {
        half_width: fitted.half_width(),
        quantile,
    };
    Ok(Detector {
        fitted: Arc::new(fitted),
        knowledge: args.knowledge(),
        band: Some(band),
        query,
        step,
    })
}

/// The --detector fitted on the data: the range itself (with its context), or --fit-window
/// before it.
async fn fitted_here(args: &DetectArgs, http: &promlearn_loader::Client) -> Result<Detector> {
    let Some(query) = args.query.clone() else {
        bail!(
            "give --query (the PromQL to check), or --model with a model saved by `promlearn train`"
        );
    };
    let spec = args
        .detector
        .clone()
        .unwrap_or_else(|| DetectorSpec::from_name("mad").expect("a detector name"));
    let step = args.step.unwrap_or(Duration::from_secs(15));
    let first = if args.live {
        let end = chrono::Utc::now();
        let last = args.range.last.unwrap_or(Duration::from_secs(3600));
        promapi::Range {
            start: end - chrono::Duration::from_std(last).context("--last is too long")?,
            end,
            step: Some(step),
        }
    } else {
        args.range.resolve(Some(step), Duration::from_secs(3600))?
    };
    let context = step * spec.context() as u32;
    let fit_range = match args.fit_window {
        Some(window) => {
            if window.is_zero() {
                bail!("--fit-window must be longer than 0s");
            }
            promapi::Range {
                start: first.start
                    - chrono::Duration::from_std(window).context("--fit-window is too long")?,
                end: first.start - chrono::Duration::from_std(step).unwrap_or_default(),
                step: Some(step),
            }
        }
        None => widened(&first, context)?,
    };
    let (timestamps, values) = load(http, &query, &fit_range).await?;
    let started = Instant::now();
    let fitted = spec.fit(&timestamps, &values).map_err(|e| {
        anyhow!(
            "cannot fit the {} detector on {} ({}): {e}",
            spec.name(),
            query,
            promapi::describe_range(&fit_range)
        )
    })?;
    tracing::info!(
        detector = spec.name(),
        points = values.len(),
        seconds = started.elapsed().as_secs_f64(),
        "fitted on {}",
        promapi::describe_range(&fit_range)
    );
    if args.fit_window.is_none() && spec.name() == "lstm" {
        tracing::warn!(
            "the LSTM learned from the range it judges ({}): give --fit-window to learn from \
             normal data before it, or train one with `promlearn train`",
            format_duration((first.end - first.start).to_std().unwrap_or_default() + context)
        );
    }
    Ok(Detector {
        fitted,
        knowledge: args.knowledge(),
        band: None,
        query,
        step,
    })
}

fn write_report(
    out: &mut dyn Write,
    format: Format,
    d: &Detector,
    range: &promapi::Range,
    c: &Checked,
) -> Result<()> {
    match format {
        Format::Json => {
            let doc = json!({
                "query": d.query,
                "detector": d.fitted.spec(),
                "start": rfc3339(range.start),
                "end": rfc3339(range.end),
                "step_seconds": d.step.as_secs_f64(),
                "points": c.analysis.len(),
                "judged": c.analysis.judged(),
                "missing": c.missing(),
                "band_half_width": d.band.map(|b| json_number(b.half_width)),
                "quantile": d.band.map(|b| json_number(b.quantile)),
                "anomalies": c.anomalies.iter().map(found_json).collect::<Vec<_>>(),
            });
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            writeln!(out)?;
        }
        Format::Csv => {
            writeln!(out, "{CSV_HEADER}")?;
            for f in &c.anomalies {
                writeln!(out, "{}", found_csv(f))?;
            }
        }
        _ => {
            writeln!(
                out,
                "{} anomalies in {} points of {} ({}); {}",
                c.anomalies.len(),
                c.analysis.len(),
                d.query,
                promapi::describe_range(range),
                d.describe()
            )?;
            for f in &c.anomalies {
                writeln!(out, "{}", found_text(f))?;
            }
        }
    }
    Ok(())
}

/// The names of detect's `Analysis` (and of the watch's backtest CSV and `/metrics`).
const CSV_HEADER: &str = "timestamp,unix_seconds,value,yhat,error,score,yhat_lower,yhat_upper";

fn found_json(f: &Found) -> serde_json::Value {
    json!({
        "timestamp": rfc3339(from_ms(f.t_ms)),
        "unix_seconds": f.t_ms as f64 / 1000.0,
        "value": json_number(f.value),
        "yhat": json_number(f.yhat),
        "yhat_lower": json_number(f.yhat_lower),
        "yhat_upper": json_number(f.yhat_upper),
        "error": json_number(f.error),
        "score": json_number(f.score),
    })
}

fn found_csv(f: &Found) -> String {
    format!(
        "{},{},{},{},{},{},{},{}",
        csv_field(&rfc3339(from_ms(f.t_ms))),
        f.t_ms as f64 / 1000.0,
        f.value,
        f.yhat,
        f.error,
        f.score,
        f.yhat_lower,
        f.yhat_upper
    )
}

fn found_text(f: &Found) -> String {
    format!(
        "{}  value {}  yhat {:.6}  band [{:.6}, {:.6}]  score {:.2}",
        rfc3339(from_ms(f.t_ms)),
        f.value,
        f.yhat,
        f.yhat_lower,
        f.yhat_upper,
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
    let mut last_reported = i64::MIN;
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
        let checked = match d.check(http, &range).await {
            Ok(c) => c,
            // A hiccup while watching is reported, not fatal; the first check must work.
            Err(e) if checks > 1 => {
                tracing::warn!("check {checks} failed: {}", crate::one_line(&e));
                continue;
            }
            Err(e) => return Err(e),
        };
        let new: Vec<&Found> = checked
            .anomalies
            .iter()
            .filter(|f| f.t_ms > last_reported)
            .collect();
        tracing::info!(
            check = checks,
            points = checked.analysis.len(),
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
            last_reported = f.t_ms;
        }
        if let Some(path) = &args.plot {
            d.plot(path, &checked)?;
        }
    }
    Ok(())
}
