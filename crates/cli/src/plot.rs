//! The PNG that `detect --plot` draws: the series, the model's prediction, the threshold band
//! around it and the flagged points.

use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::timeutil::from_unix;

pub struct PlotData<'a> {
    pub title: &'a str,
    /// Unix seconds.
    pub timestamps: &'a [f64],
    pub values: &'a [f64],
    /// Predictions at `timestamps[offset..]`.
    pub predicted: &'a [f64],
    pub offset: usize,
    /// Half-width of the band around the prediction, in the series' units.
    pub band: f64,
    /// (unix seconds, value) of flagged points.
    pub anomalies: &'a [(f64, f64)],
}

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        // Embedded, so plots render the same on machines without fonts installed.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

pub fn draw(path: &Path, data: &PlotData<'_>) -> Result<()> {
    register_font();
    let fail = |e: &dyn std::fmt::Display| anyhow!("cannot draw the plot {}: {e}", path.display());
    if data.timestamps.len() < 2 {
        return Err(fail(&"fewer than two points to plot"));
    }
    let x0 = data.timestamps[0];
    let x1 = *data.timestamps.last().expect("two points");
    let pred_ts = &data.timestamps[data.offset..data.offset + data.predicted.len()];
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for v in data
        .values
        .iter()
        .copied()
        .chain(data.predicted.iter().map(|p| p - data.band))
        .chain(data.predicted.iter().map(|p| p + data.band))
    {
        if v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let (lo, hi) = (lo - pad, hi + pad);

    let root = BitMapBackend::new(path, (1280, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let span = x1 - x0;
    let time_label = move |x: &f64| {
        let t = from_unix(*x);
        if span > 2.0 * 86_400.0 {
            t.format("%m-%d %H:%M").to_string()
        } else {
            t.format("%H:%M:%S").to_string()
        }
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(data.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, lo..hi)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&time_label)
        .x_desc("time (UTC)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| fail(&e))?;

    let band_colour = RGBColor(255, 200, 120).mix(0.35);
    if data.band > 0.0 && !data.predicted.is_empty() {
        let mut outline: Vec<(f64, f64)> = pred_ts
            .iter()
            .zip(data.predicted)
            .map(|(t, p)| (*t, p + data.band))
            .collect();
        outline.extend(
            pred_ts
                .iter()
                .zip(data.predicted)
                .rev()
                .map(|(t, p)| (*t, p - data.band)),
        );
        chart
            .draw_series(std::iter::once(Polygon::new(outline, band_colour.filled())))
            .map_err(|e| fail(&e))?
            .label("threshold band")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], band_colour.filled())
            });
    }
    chart
        .draw_series(LineSeries::new(
            data.timestamps
                .iter()
                .copied()
                .zip(data.values.iter().copied()),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| fail(&e))?
        .label("series")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    let orange = RGBColor(230, 120, 0);
    chart
        .draw_series(LineSeries::new(
            pred_ts.iter().copied().zip(data.predicted.iter().copied()),
            orange.stroke_width(1),
        ))
        .map_err(|e| fail(&e))?
        .label("prediction")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], orange.stroke_width(2)));
    chart
        .draw_series(
            data.anomalies
                .iter()
                .map(|&(t, v)| Circle::new((t, v), 5, RED.filled())),
        )
        .map_err(|e| fail(&e))?
        .label(format!("anomalies ({})", data.anomalies.len()))
        .legend(|(x, y)| Circle::new((x + 10, y), 5, RED.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
