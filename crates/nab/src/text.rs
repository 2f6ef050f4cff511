//! Reading NAB's comma-separated files: a header naming the columns, then plain fields (NAB's
//! files have no quoting, and pandas writes none for numbers and timestamps). Errors name the file
//! and line.

use std::path::{Path, PathBuf};

use crate::{Error, time::parse_timestamp};

/// A CSV text with its header's columns.
pub(crate) struct Table<'a> {
    path: PathBuf,
    columns: Vec<&'a str>,
    lines: std::iter::Enumerate<std::str::Lines<'a>>,
}

/// One data line: its 1-based line number and its fields.
pub(crate) struct Row<'a> {
    pub line: usize,
    pub fields: Vec<&'a str>,
}

impl<'a> Table<'a> {
    /// Reads the header of `text` (the contents of `path`).
    pub fn new(path: &Path, text: &'a str) -> Self {
        let mut lines = text.lines().enumerate();
        let header = lines.next().map(|(_, l)| l).unwrap_or("");
        let columns = header.split(',').map(str::trim).collect();
        Table {
            path: path.to_owned(),
            columns,
            lines,
        }
    }

    /// The index of the column named `name`, or an error saying which columns there are.
    pub fn column(&self, name: &str) -> Result<usize, Error> {
        self.columns
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| Error::Csv {
                path: self.path.clone(),
                line: 1,
                problem: format!(
                    "no column {name:?} in the header (it has {:?})",
                    self.columns
                ),
            })
    }

    /// The next non-empty line split into fields, `None` at the end.
    pub fn next_row(&mut self) -> Option<Row<'a>> {
        for (i, line) in self.lines.by_ref() {
            let line = line.trim_end_matches('\r');
            if !line.trim().is_empty() {
                return Some(Row {
                    line: i + 1,
                    fields: line.split(',').collect(),
                });
            }
        }
        None
    }

    /// An error about line `line`.
    pub fn error(&self, line: usize, problem: impl Into<String>) -> Error {
        Error::Csv {
            path: self.path.clone(),
            line,
            problem: problem.into(),
        }
    }

    /// Field `column` of `row`, or an error naming the line.
    pub fn field(&self, row: &Row<'a>, column: usize) -> Result<&'a str, Error> {
        row.fields
            .get(column)
            .map(|f| f.trim())
            .ok_or_else(|| self.error(row.line, format!("fewer than {} fields", column + 1)))
    }

    /// Field `column` of `row` as NAB's timestamp, in unix milliseconds.
    pub fn timestamp(&self, row: &Row<'a>, column: usize) -> Result<i64, Error> {
        let text = self.field(row, column)?;
        parse_timestamp(text).ok_or_else(|| {
            self.error(
                row.line,
                format!("{text:?} is not a timestamp `YYYY-MM-DD HH:MM:SS`"),
            )
        })
    }

    /// Field `column` of `row` as a number.
    pub fn number(&self, row: &Row<'a>, column: usize) -> Result<f64, Error> {
        let text = self.field(row, column)?;
        text.parse()
            .map_err(|_| self.error(row.line, format!("{text:?} is not a number")))
    }
}

/// The whole of a text file, or an [`Error::Io`].
pub(crate) fn read_text(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))
}
