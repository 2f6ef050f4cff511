//! `promlearn load`: a PromQL query over a time range, through the loader crate, summarised or
//! written as CSV, Parquet or JSON.

use std::{io::Write, path::PathBuf, time::Duration};

use anyhow::{Result, anyhow, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use promlearn_loader::{Matrix, RangeQuery, Via, is_missing};
use serde::Serialize;

use crate::{
    RangeArgs,
    conn::ConnArgs,
    output::{self, Format, json_number},
    promapi::{self, explain},
    timeutil::{parse_duration, rfc3339},
};

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The PromQL expression to load (a plain series selector for raw samples).
    pub query: String,

    #[command(flatten)]
    pub range: RangeArgs,

    /// Resolution; without it, raw samples as stored (the query must be a series selector).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub step: Option<Duration>,

    /// Write to FILE (.csv, .parquet or .json) instead of printing a summary.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Output format [default: from --output's extension, else a text summary].
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// How raw samples (no --step) are fetched: `auto` picks the fastest the server offers
    /// (remote read on Prometheus, export on VictoriaMetrics, else the JSON API).
    #[arg(long, value_enum, default_value = "auto")]
    pub via: ViaArg,

    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `--via`: the loader's raw-sample paths.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViaArg {
    /// The fastest path the server offers.
    Auto,
    /// Remote read, streamed XOR chunks (Prometheus).
    RemoteRead,
    /// Remote read, SAMPLES (decoded by the server; also loads series beside native histograms).
    RemoteReadSamples,
    /// The JSON query API (any Prometheus-compatible server).
    #[value(alias = "query-range")]
    Json,
    /// VictoriaMetrics' /api/v1/export.
    Export,
}

impl From<ViaArg> for Via {
    fn from(v: ViaArg) -> Via {
        match v {
            ViaArg::Auto => Via::Auto,
            ViaArg::RemoteRead => Via::RemoteRead,
            ViaArg::RemoteReadSamples => Via::RemoteReadSamples,
            ViaArg::Json => Via::Json,
            ViaArg::Export => Via::Export,
        }
    }
}

pub async fn run(args: LoadArgs) -> Result<()> {
    if args.step.is_some() && !matches!(args.via, ViaArg::Auto | ViaArg::Json) {
        bail!("--via chooses how raw samples are fetched: leave out --step to load raw samples");
    }
    let format = Format::choose(
        args.format,
        args.output.as_deref(),
        &[Format::Text, Format::Json, Format::Csv, Format::Parquet],
    )?;
    if format == Format::Parquet
        && args.output.is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stdout())
    {
        bail!("Parquet is binary: give --output FILE.parquet (or redirect stdout)");
    }
    let client = promapi::client(&args.conn)?;
    let range = args.range.resolve(args.step, Duration::from_secs(3600))?;
    let (start, end) = (range.start.timestamp_millis(), range.end.timestamp_millis());
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
    let mut via = None;
    let matrix = match range.step {
        Some(step) => {
            let q = RangeQuery::new(args.query.clone(), start, end, step).map_err(explain)?;
            let chunks = client.plan(&q).len();
            if chunks > 1 {
                bar.set_length(chunks as u64);
                bar.set_style(
                    ProgressStyle::with_template(
                        "loading {bar:30} {pos}/{len} requests {elapsed} {msg}",
                    )
                    .expect("a valid template"),
                );
            } else {
                bar.set_draw_target(ProgressDrawTarget::hidden());
            }
            client
                .query_range_with_progress(&q, |p| {
                    bar.set_position(p.chunks_done as u64);
                    bar.set_message(format!("{} samples", p.samples));
                })
                .await
                .map_err(explain)?
        }
        None => {
            bar.set_style(
                ProgressStyle::with_template("{spinner} loading raw samples {elapsed}")
                    .expect("a valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            let load = client
                .load_raw_via(&args.query, start, end, args.via.into())
                .await
                .map_err(|e| {
                    let bad_query = matches!(&e, promlearn_loader::Error::Api { error_type, .. } if error_type == "bad_data");
                    let e = explain(e);
                    if bad_query {
                        e.context("without --step, load reads raw samples and needs a plain series selector (give --step for an expression)")
                    } else {
                        e
                    }
                })?;
            via = Some(load.via);
            load.data.to_matrix()
        }
    };
    bar.finish_and_clear();
    for warning in matrix.warnings() {
        eprintln!("warning: the server says: {warning}");
    }
    tracing::info!(
        rows = matrix.n_rows(),
        series = matrix.n_series(),
        samples = matrix.sample_count(),
        "loaded"
    );

    let mut out = output::open(args.output.as_deref())?;
    let written = match format {
        Format::Csv => matrix.write_csv(&mut out).map_err(explain),
        Format::Parquet => matrix.write_parquet(&mut out).map_err(explain),
        Format::Json => write_json(&mut out, &args.query, &range, &matrix),
        Format::Text => write_summary(&mut out, &args.query, &range, via, &matrix),
    }
    .and_then(|()| out.flush().map_err(Into::into));
    match written {
        Err(e) if output::is_broken_pipe(&e) => return Ok(()),
        other => other?,
    }
    if let Some(path) = &args.output {
        eprintln!(
            "{} series x {} timestamps ({} samples) written to {}",
            matrix.n_series(),
            matrix.n_rows(),
            matrix.sample_count(),
            path.display()
        );
    }
    Ok(())
}

/// Column-oriented JSON: the timestamps once, then each series' labels and values (null where
/// it has no sample; NaN and infinities as Prometheus writes them).
fn write_json(out: &mut dyn Write, query: &str, range: &promapi::Range, m: &Matrix) -> Result<()> {
    #[derive(Serialize)]
    struct Doc<'a> {
        query: &'a str,
        start: String,
        end: String,
        step_seconds: Option<f64>,
        timestamps_ms: &'a [i64],
        series: Vec<SeriesDoc>,
    }
    #[derive(Serialize)]
    struct SeriesDoc {
        labels: std::collections::BTreeMap<String, String>,
        values: Vec<serde_json::Value>,
    }
    let doc = Doc {
        query,
        start: rfc3339(range.start),
        end: rfc3339(range.end),
        step_seconds: range.step.map(|s| s.as_secs_f64()),
        timestamps_ms: m.timestamps(),
        series: (0..m.n_series())
            .map(|s| SeriesDoc {
                labels: m.series()[s]
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                values: m
                    .column(s)
                    .iter()
                    .map(|&v| {
                        if is_missing(v) {
                            serde_json::Value::Null
                        } else {
                            json_number(v)
                        }
                    })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_writer(&mut *out, &doc).map_err(|e| anyhow!("writing JSON: {e}"))?;
    writeln!(out)?;
    Ok(())
}

const LISTED: usize = 20;

fn write_summary(
    out: &mut dyn Write,
    query: &str,
    range: &promapi::Range,
    via: Option<Via>,
    m: &Matrix,
) -> Result<()> {
    let via = via.map(|v| format!(", via {v}")).unwrap_or_default();
    writeln!(
        out,
        "{query}: {} series x {} timestamps, {} samples ({}{via})",
        m.n_series(),
        m.n_rows(),
        m.sample_count(),
        promapi::describe_range(range)
    )?;
    if let (Some(first), Some(last)) = (m.timestamps().first(), m.timestamps().last()) {
        writeln!(
            out,
            "from {} to {}",
            rfc3339(crate::timeutil::from_ms(*first)),
            rfc3339(crate::timeutil::from_ms(*last))
        )?;
    }
    if m.n_series() == 0 {
        writeln!(
            out,
            "no series: check the metric name and labels, or widen the range"
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>8} {:>14} {:>14} {:>14} {:>14}  series",
        "samples", "min", "mean", "max", "last"
    )?;
    for s in 0..m.n_series().min(LISTED) {
        let present: Vec<f64> = m
            .column(s)
            .iter()
            .copied()
            .filter(|v| !is_missing(*v))
            .collect();
        let finite: Vec<f64> = present.iter().copied().filter(|v| v.is_finite()).collect();
        let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mean = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
        let last = present.last().copied().unwrap_or(f64::NAN);
        let num = |v: f64| {
            if finite.is_empty() {
                "-".to_owned()
            } else {
                format!("{v:.6}")
            }
        };
        writeln!(
            out,
            "{:>8} {:>14} {:>14} {:>14} {:>14}  {}",
            present.len(),
            num(min),
            num(mean),
            num(max),
            promlearn_loader::exposition::format_value(last),
            m.series()[s]
        )?;
    }
    if m.n_series() > LISTED {
        writeln!(
            out,
            "... and {} more series (write them with --output FILE)",
            m.n_series() - LISTED
        )?;
    }
    Ok(())
}
