//! `plot_png`: analyses drawn as a PNG, one panel each: the series, `yhat`, the band, the flagged
//! points and the injected events' spans. Text uses an embedded DejaVu Sans, so plots render
//! the same on machines without fonts.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::analysis::{Analysis, Injected};
use crate::error::{Error, Result};

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

const WIDTH: u32 = 1280;
const PANEL_HEIGHT: u32 = 420;
const TITLE_HEIGHT: u32 = 40;

/// Draws `analyses` into a PNG at `path`, one panel per analysis stacked top to bottom under
/// `title`: the series (blue), `yhat` (orange), the band (shaded), the flagged points (red) and
/// the spans of `events` (light red, labelled), on a UTC time axis.
///
/// ```
/// use promlearn_detect::{DetectorSpec, Injected, plot_png};
///
/// let ts: Vec<i64> = (0..200).map(|i| i * 1000).collect();
/// let mut vs: Vec<f64> = (0..200).map(|i| 10.0 + (i as f64 / 9.0).sin()).collect();
/// let fitted = DetectorSpec::from_name("mad")?.fit(&ts, &vs)?;
/// vs[150] = 30.0;
/// let analysis = fitted.analyse(&ts, &vs)?;
/// let events = [Injected { name: "spike".into(), from_ms: 150_000, to_ms: 152_000 }];
/// let dir = tempfile::tempdir()?;
/// let png = dir.path().join("a.png");
/// plot_png(&png, "example", &[&analysis], &events)?;
/// assert_eq!(&std::fs::read(&png)?[..4], b"\x89PNG");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn plot_png(
    path: &Path,
    title: &str,
    analyses: &[&Analysis],
    events: &[Injected],
) -> Result<()> {
    register_font();
    let fail = |e: &dyn std::fmt::Display| Error::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if analyses.is_empty() {
        return Err(fail(&"there is no analysis to draw"));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    }
    let height = TITLE_HEIGHT + PANEL_HEIGHT * analyses.len() as u32;
    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let body = root
        .titled(title, ("sans-serif", 24))
        .map_err(|e| fail(&e))?;
    let panels = body.split_evenly((analyses.len(), 1));
    for (panel, analysis) in panels.iter().zip(analyses) {
        draw_panel(panel, analysis, events).map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

type PanelResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    a: &Analysis,
    events: &[Injected],
) -> PanelResult {
    let flags: Vec<usize> = a.flagged().collect();
    let caption = format!(
        "{}: {} flagged of {} judged ({} points)",
        a.detector,
        flags.len(),
        a.judged(),
        a.len()
    );
    let secs = |t: i64| t as f64 / 1000.0;
    let (Some(&first), Some(&last)) = (a.timestamps.first(), a.timestamps.last()) else {
        area.titled(&caption, ("sans-serif", 18))?.draw_text(
            "no data",
            &("sans-serif", 18).into(),
            (20, 20),
        )?;
        return Ok(());
    };
    let (mut x0, mut x1) = (secs(first), secs(last));
    if x1 <= x0 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in a.values.iter().chain(&a.yhat_lower).chain(&a.yhat_upper) {
        if v.is_finite() {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9 * hi.abs().max(1.0));
    let (lo, hi) = (lo - pad, hi + pad);

    let span = x1 - x0;
    let time_label = move |x: &f64| utc_label(*x, span);
    let mut chart = ChartBuilder::on(area)
        .caption(&caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, lo..hi)?;
    chart
        .configure_mesh()
        .x_labels(8)
        .y_labels(6)
        .x_label_formatter(&time_label)
        .x_desc("time (UTC)")
        .label_style(("sans-serif", 13))
        .draw()?;

    let event_colour = RGBColor(255, 120, 120).mix(0.18);
    let mut event_legend = false;
    for e in events {
        let (from, to) = (secs(e.from_ms).max(x0), secs(e.to_ms).min(x1));
        if from >= to {
            continue;
        }
        let drawn = chart.draw_series(std::iter::once(Rectangle::new(
            [(from, lo), (to, hi)],
            event_colour.filled(),
        )))?;
        if !event_legend {
            drawn.label("injected events").legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], event_colour.filled())
            });
            event_legend = true;
        }
        chart.draw_series(std::iter::once(Text::new(
            e.name.clone(),
            (from, hi),
            ("sans-serif", 13).into_font().color(&RGBColor(160, 40, 40)),
        )))?;
    }

    let judged = |i: usize| a.yhat[i].is_finite();
    let band_colour = RGBColor(255, 190, 100).mix(0.35);
    let mut band_legend = false;
    for run in runs(a.len(), judged) {
        let mut outline: Vec<(f64, f64)> = run
            .clone()
            .map(|i| (secs(a.timestamps[i]), a.yhat_upper[i]))
            .collect();
        outline.extend(
            run.clone()
                .rev()
                .map(|i| (secs(a.timestamps[i]), a.yhat_lower[i])),
        );
        let drawn =
            chart.draw_series(std::iter::once(Polygon::new(outline, band_colour.filled())))?;
        if !band_legend {
            drawn.label("band").legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], band_colour.filled())
            });
            band_legend = true;
        }
    }

    let mut series_legend = false;
    for run in runs(a.len(), |i| a.values[i].is_finite()) {
        let drawn = chart.draw_series(LineSeries::new(
            run.map(|i| (secs(a.timestamps[i]), a.values[i])),
            BLUE.stroke_width(2),
        ))?;
        if !series_legend {
            drawn
                .label("series")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
            series_legend = true;
        }
    }
    let orange = RGBColor(230, 120, 0);
    let mut yhat_legend = false;
    for run in runs(a.len(), judged) {
        let drawn = chart.draw_series(LineSeries::new(
            run.map(|i| (secs(a.timestamps[i]), a.yhat[i])),
            orange.stroke_width(1),
        ))?;
        if !yhat_legend {
            drawn.label("yhat").legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], orange.stroke_width(2))
            });
            yhat_legend = true;
        }
    }
    chart
        .draw_series(
            flags
                .iter()
                .map(|&i| Circle::new((secs(a.timestamps[i]), a.values[i]), 4, RED.filled())),
        )?
        .label(format!("flagged ({})", flags.len()))
        .legend(|(x, y)| Circle::new((x + 10, y), 4, RED.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;
    Ok(())
}

/// Maximal runs of consecutive indices below `n` for which `keep` holds.
fn runs(n: usize, keep: impl Fn(usize) -> bool) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for i in 0..=n {
        match (i < n && keep(i), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// `HH:MM:SS` (with the date, `MM-DD HH:MM`, for spans over two days) of unix seconds, UTC.
fn utc_label(unix_seconds: f64, span_seconds: f64) -> String {
    let secs = unix_seconds.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if span_seconds > 2.0 * 86_400.0 {
        let (_, month, day) = civil_from_days(days);
        format!("{month:02}-{day:02} {h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_runs() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
        assert_eq!(utc_label(3661.5, 60.0), "01:01:01");
        assert_eq!(utc_label(86_400.0 * 3.0, 86_400.0 * 3.0), "01-04 00:00");
        let r = runs(6, |i| i != 2 && i != 3);
        assert_eq!(r, vec![0..2, 4..6]);
    }
}
