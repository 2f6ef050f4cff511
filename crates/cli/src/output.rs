//! Output formats, chosen by `--format` or the output file's extension, and small writers.

use std::{
    io::{self, Write},
    path::Path,
};

use anyhow::{Result, bail};
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable lines.
    Text,
    /// JSON (one document; JSON Lines where the output is a stream).
    Json,
    /// CSV with a header row.
    Csv,
    /// Apache Parquet (load only).
    Parquet,
}

impl Format {
    /// `--format` if given, else the extension of `--output`, else text.
    pub fn choose(
        flag: Option<Format>,
        output: Option<&Path>,
        allowed: &[Format],
    ) -> Result<Format> {
        let format = match (flag, output) {
            (Some(f), _) => f,
            (None, Some(path)) => {
                match path
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    Some("json" | "jsonl" | "ndjson") => Format::Json,
                    Some("csv") => Format::Csv,
                    Some("parquet" | "pq") => Format::Parquet,
                    Some("txt" | "log") => Format::Text,
                    _ => bail!(
                        "cannot tell the format from the name {}: end it in {} or give --format",
                        path.display(),
                        allowed
                            .iter()
                            .filter_map(|f| f.extension())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            }
            (None, None) => Format::Text,
        };
        if !allowed.contains(&format) {
            bail!(
                "this command writes {}, not {}",
                allowed
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                format.name()
            );
        }
        Ok(format)
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }

    fn extension(self) -> Option<&'static str> {
        match self {
            Format::Text => None,
            Format::Json => Some(".json"),
            Format::Csv => Some(".csv"),
            Format::Parquet => Some(".parquet"),
        }
    }
}

/// A CSV field, quoted when it needs to be (RFC 4180).
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// A float as JSON: a number when finite, else the string Prometheus uses (`NaN`, `+Inf`, `-Inf`).
pub fn json_number(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v)
        .map(serde_json::Value::Number)
        .unwrap_or_else(|| serde_json::Value::String(promlearn_loader::exposition::format_value(v)))
}

/// Writes `text` to stdout and flushes. A reader that went away (`| head`) comes back as an
/// error that `main` ends on quietly and with success, as Unix tools do.
pub fn print(text: impl std::fmt::Display) -> Result<()> {
    let mut out = io::stdout().lock();
    write!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// True for a write error that means the reader went away (`| head`): stop quietly.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Stdout, or a file created at `path`.
pub fn open(path: Option<&Path>) -> Result<Box<dyn Write + Send>> {
    Ok(match path {
        None => Box::new(io::BufWriter::new(io::stdout())),
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {}", path.display(), e.kind()))?;
            Box::new(io::BufWriter::new(file))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_the_extension() {
        let all = [Format::Text, Format::Json, Format::Csv, Format::Parquet];
        let pick = |name: &str| Format::choose(None, Some(Path::new(name)), &all);
        assert_eq!(pick("a.parquet").unwrap(), Format::Parquet);
        assert_eq!(pick("a.CSV").unwrap(), Format::Csv);
        assert!(pick("a.xlsx").is_err());
        assert_eq!(
            Format::choose(Some(Format::Json), Some(Path::new("a.csv")), &all).unwrap(),
            Format::Json
        );
        assert!(Format::choose(Some(Format::Parquet), None, &[Format::Text]).is_err());
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(json_number(f64::NAN), serde_json::json!("NaN"));
    }
}
