//! The PNG that `detect --plot` draws: promlearn-detect's plot of one analysis.

use std::path::Path;

use anyhow::Result;
use promlearn_detect::Analysis;

pub fn draw(path: &Path, title: &str, analysis: &Analysis) -> Result<()> {
    Ok(promlearn_detect::plot_png(path, title, &[analysis], &[])?)
}
