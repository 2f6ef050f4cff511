//! `promlearn load`: a PromQL query over a time range, summarised or written as CSV, Parquet
//! or JSON.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use crate::{RangeArgs, conn::ConnArgs, output::Format, timeutil::parse_duration};

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The PromQL expression to load.
    pub query: String,

    #[command(flatten)]
    pub range: RangeArgs,

    /// Resolution; without it, raw samples as stored (the query must be a series selector).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub step: Option<std::time::Duration>,

    /// Write to FILE (.csv, .parquet or .json) instead of printing a summary.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Output format [default: from --output's extension, else a text summary].
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    #[command(flatten)]
    pub conn: ConnArgs,
}

pub async fn run(_args: LoadArgs) -> Result<()> {
    bail!("load is not available yet: it waits for the loader crate's query API")
}
