//! `cargo xtask demo --anomaly`: the DevOps use the tutorial promised. A generator drives CoreDNS
//! with a daily rhythm (compressed to 30 s) and, unannounced, a five-fold spike and a drop to a
//! tenth; a forecaster learns the rhythm from the request rate and flags what it cannot explain.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use promlearn_dns::{LoadConfig, Profile};
use promlearn_loader::RangeQuery;
use promlearn_model::{
    Dataset, FitOptions, Forecaster, ModelConfig, ScaleKind, Scaler, TargetMode, Threshold,
};

use crate::ui::Status;

/// The run's shape, in seconds from its start.
const BASELINE_S: u64 = 90;
const TOTAL_S: u64 = 150;
const EVENTS: [Injected; 2] = [
    Injected {
        name: "spike x5",
        at_s: 100,
        len_s: 8,
        factor: 5.0,
    },
    Injected {
        name: "drop to 1/10",
        at_s: 125,
        len_s: 8,
        factor: 0.1,
    },
];
/// The rate query looks back this far, so an event shows in the series this much after it ends.
const RATE_WINDOW_S: i64 = 3;
const WINDOW: usize = 8;

struct Injected {
    name: &'static str,
    at_s: u64,
    len_s: u64,
    factor: f64,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct AnomalyOutcome {
    pub queries_sent: u64,
    pub flagged: usize,
    pub true_flags: usize,
    pub false_flags: usize,
    pub events_found: Vec<(String, bool)>,
    pub precision: f64,
    pub recall: f64,
    pub threshold: f64,
    pub plot: PathBuf,
}

pub async fn run(
    endpoint: &str,
    dns_server: std::net::SocketAddr,
    verbose: bool,
) -> anyhow::Result<AnomalyOutcome> {
    let mut profile = String::from("sine:base=80,amp=40,period=30s");
    for event in &EVENTS {
        profile.push_str(&format!(
            "+spike:at={}s,len={}s,x={}",
            event.at_s, event.len_s, event.factor
        ));
    }
    let profile: Profile = profile.parse()?;
    let mut load = LoadConfig::new(dns_server, profile, 100_000, Duration::from_secs(TOTAL_S));
    load.concurrency = 16;
    load.seed = Some(7);

    if verbose {
        println!(
            "\nAnomaly run: {TOTAL_S} s of DNS traffic, a 30 s rhythm around 80 qps; learning from the first \
             {BASELINE_S} s, then {} events the model is not told about",
            EVENTS.len()
        );
    }
    let start_ms = now_ms();
    let status = Status::new("traffic", !verbose);
    let report = load
        .run_with_progress(Duration::from_secs(1), |p| {
            status.message(&format!(
                "{:>3}/{TOTAL_S} s  sent {}  answered {}  target {:.0} qps",
                p.elapsed.as_secs(),
                p.sent,
                p.answered,
                p.target_qps
            ))
        })
        .await?;
    status.finish(&format!(
        "sent {} queries at {:.0} qps on average",
        report.sent,
        report.qps()
    ));

    let query = format!("sum(rate(coredns_dns_requests_total[{RATE_WINDOW_S}s]))");
    let end_ms = start_ms + TOTAL_S as i64 * 1000;
    let client = promlearn_loader::Client::new(endpoint)?;
    // Wait for the scrape that covers the end of the run.
    let mut points = Vec::new();
    for _ in 0..40 {
        let range = RangeQuery::new(
            query.clone(),
            start_ms + 1000,
            end_ms,
            Duration::from_secs(1),
        )?;
        let matrix = client.query_range(&range).await?;
        anyhow::ensure!(
            matrix.n_series() == 1,
            "`{query}` should answer one series, not {}",
            matrix.n_series()
        );
        points = matrix
            .timestamps()
            .iter()
            .copied()
            .zip(matrix.column(0).iter().copied())
            .collect();
        if points.last().is_some_and(|(t, _)| *t >= end_ms - 1000) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (times, rates): (Vec<i64>, Vec<f64>) = points.into_iter().unzip();
    let baseline_end = times.partition_point(|t| *t < start_ms + BASELINE_S as i64 * 1000);
    anyhow::ensure!(
        baseline_end > 4 * WINDOW,
        "too little baseline data ({baseline_end} points) to learn from"
    );

    let train = &rates[..baseline_end];
    let scaler = Scaler::fit(train, ScaleKind::MinMax)?;
    let dataset = Dataset::from_series(&scaler.transform(train)?, WINDOW, TargetMode::NextValue)?;
    let mut config = ModelConfig::forecasting(WINDOW, 16);
    config.learning_rate = 0.01;
    let mut model = Forecaster::new(config)?;
    model.set_scaler(scaler);
    let batches = dataset.shuffle(1).repeat(40).batch(8)?;
    model.fit(
        &batches,
        &FitOptions {
            epochs: 1,
            steps_per_epoch: None,
        },
    )?;
    // The band: a fifth wider than the worst error on normal traffic, so the baseline's own
    // noise is not flagged.
    let learned = model.fit_threshold(train, 1.0)?;
    let threshold = Threshold {
        quantile: 1.0,
        value: learned.value * 1.2,
    };
    let errors = model.prediction_errors(&rates)?;
    let flags = threshold.flag(&errors);

    // A flag belongs to an event from its start until the event has left both the rate query's
    // look-back and the model's input window: predictions made from event data are the event's echo.
    let in_event = |index: usize| {
        let t = times[index];
        EVENTS.iter().position(|e| {
            let from = start_ms + e.at_s as i64 * 1000;
            let to = from + (e.len_s as i64 + RATE_WINDOW_S + 1 + WINDOW as i64) * 1000;
            (from..to).contains(&t)
        })
    };
    let true_flags = flags.iter().filter(|a| in_event(a.index).is_some()).count();
    let events_found: Vec<(String, bool)> = EVENTS
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                e.name.to_owned(),
                flags.iter().any(|a| in_event(a.index) == Some(i)),
            )
        })
        .collect();
    let found = events_found.iter().filter(|(_, f)| *f).count();
    let outcome = AnomalyOutcome {
        queries_sent: report.sent,
        flagged: flags.len(),
        true_flags,
        false_flags: flags.len() - true_flags,
        precision: if flags.is_empty() {
            0.0
        } else {
            true_flags as f64 / flags.len() as f64
        },
        recall: found as f64 / EVENTS.len() as f64,
        events_found,
        threshold: threshold.value,
        plot: plot_path(),
    };

    let predictions = model.predict(
        &(WINDOW..rates.len())
            .map(|i| {
                model
                    .scaler()
                    .expect("set above")
                    .transform(&rates[i - WINDOW..i])
            })
            .collect::<Result<Vec<_>, _>>()?,
    )?;
    let predictions = model
        .scaler()
        .expect("set above")
        .inverse_transform(&predictions);
    plot(
        &outcome.plot,
        start_ms,
        &times,
        &rates,
        &predictions,
        &flags.iter().map(|a| a.index).collect::<Vec<_>>(),
        &threshold,
        &model,
    )
    .context("drawing the anomaly plot")?;

    if verbose {
        for (name, found) in &outcome.events_found {
            println!("  {name:<14} {}", if *found { "flagged" } else { "MISSED" });
        }
        println!(
            "  flags: {} ({} during an event or while it is in the model's {WINDOW} s input, {} on normal \
             traffic); precision {:.2}, recall {:.2}",
            outcome.flagged,
            outcome.true_flags,
            outcome.false_flags,
            outcome.precision,
            outcome.recall
        );
        println!("  plot: {}", outcome.plot.display());
    }
    Ok(outcome)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

fn plot_path() -> PathBuf {
    promlearn_testbed::repository_root()
        .join("target")
        .join("promlearn-demo")
        .join("anomaly.png")
}

#[allow(clippy::too_many_arguments)]
fn plot(
    path: &Path,
    start_ms: i64,
    times: &[i64],
    rates: &[f64],
    predictions: &[f64],
    flagged: &[usize],
    threshold: &Threshold,
    model: &Forecaster,
) -> anyhow::Result<()> {
    use plotters::prelude::*;

    std::fs::create_dir_all(path.parent().expect("has a parent"))?;
    let fonts = register_font();
    let root = BitMapBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let seconds = |t: i64| (t - start_ms) as f64 / 1000.0;
    let top = rates.iter().chain(predictions).copied().fold(1.0, f64::max) * 1.1;
    let mut builder = ChartBuilder::on(&root);
    builder
        .margin(20)
        .x_label_area_size(if fonts { 40 } else { 0 })
        .y_label_area_size(if fonts { 60 } else { 0 });
    if fonts {
        builder.caption(
            "CoreDNS requests/s: observed, forecast, band, flags",
            ("sans-serif", 22),
        );
    }
    let mut chart = builder.build_cartesian_2d(0.0..(TOTAL_S as f64), 0.0..top)?;
    if fonts {
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("requests/s")
            .draw()?;
    }
    // The band: predictions ± the threshold, converted from scaled units back to requests/s.
    let scale = {
        let s = model.scaler().expect("set");
        let unit = s.inverse_transform(&[1.0])[0] - s.inverse_transform(&[0.0])[0];
        threshold.value * unit
    };
    let predicted_at = |i: usize| (seconds(times[i + WINDOW]), predictions[i]);
    chart.draw_series((0..predictions.len()).map(|i| {
        let (x, p) = predicted_at(i);
        Rectangle::new(
            [(x - 0.5, (p - scale).max(0.0)), (x + 0.5, p + scale)],
            RGBColor(200, 220, 255).filled(),
        )
    }))?;
    for event in &EVENTS {
        let from = event.at_s as f64;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(from, 0.0), (from + event.len_s as f64, top)],
            RGBColor(255, 235, 200).mix(0.6).filled(),
        )))?;
    }
    chart.draw_series(LineSeries::new(
        times.iter().zip(rates).map(|(t, r)| (seconds(*t), *r)),
        BLACK.stroke_width(2),
    ))?;
    chart.draw_series(LineSeries::new(
        (0..predictions.len()).map(predicted_at),
        BLUE.stroke_width(1),
    ))?;
    chart.draw_series(
        flagged
            .iter()
            .map(|&i| Circle::new((seconds(times[i]), rates[i]), 5, RED.filled())),
    )?;
    root.present()?;
    Ok(())
}

/// Text needs a font file; DejaVu Sans is on most Linux machines. Without it the plot has no text.
fn register_font() -> bool {
    const CANDIDATES: [&str; 2] = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    ];
    CANDIDATES.iter().any(|path| match std::fs::read(path) {
        Ok(bytes) => plotters::style::register_font(
            "sans-serif",
            plotters::style::FontStyle::Normal,
            Box::leak(bytes.into_boxed_slice()),
        )
        .is_ok(),
        Err(_) => false,
    })
}

/// The anomaly run's checks, for `--check`.
pub fn checks(outcome: &AnomalyOutcome) -> Vec<(&'static str, bool)> {
    vec![
        (
            "the anomaly run flags both injected events",
            outcome.events_found.iter().all(|(_, found)| *found),
        ),
        (
            "no more than 3 false flags over the baseline",
            outcome.false_flags <= 3,
        ),
    ]
}
