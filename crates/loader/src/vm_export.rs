//! VictoriaMetrics' `/api/v1/export`: raw samples as JSON lines, its fast path.
//!
//! Each line is `{"metric":{...},"values":[...],"timestamps":[...]}`; a series may come in
//! several lines. VictoriaMetrics writes infinities as bare `+Inf`/`-Inf` (not JSON), so values
//! and timestamps are read by this module, exactly (Rust's float parsing is correctly rounded),
//! and the `metric` object by serde_json. Lines are decoded as they arrive: memory holds one
//! line besides the samples.

use std::collections::{BTreeMap, HashMap};

use serde::de::IgnoredAny;

use crate::{
    Client, DecodeError, Error, Labels, Result, decode::Series, error::Attempts, query::seconds,
};

/// Gathers export lines into series, keeping samples in `[lo, hi]`.
#[derive(Debug)]
pub struct ExportCollector {
    lo: i64,
    hi: i64,
    pending: Vec<u8>,
    /// Body offset of `pending[0]`.
    offset: u64,
    by_labels: HashMap<Labels, Series>,
}

impl ExportCollector {
    /// A collector keeping samples in `[lo, hi]`.
    pub fn new(lo: i64, hi: i64) -> ExportCollector {
        ExportCollector {
            lo,
            hi,
            pending: Vec::new(),
            offset: 0,
            by_labels: HashMap::new(),
        }
    }

    /// The next bytes of the body, in any pieces.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(n) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let line = self.pending[start..start + n].to_vec();
            self.line(&line, self.offset + start as u64)?;
            start += n + 1;
        }
        self.pending.drain(..start);
        self.offset += start as u64;
        Ok(())
    }

    fn line(&mut self, line: &[u8], at: u64) -> Result<(), DecodeError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let (labels, timestamps, values) =
            parse_line(line).map_err(|(offset, message)| DecodeError {
                offset: at + offset as u64,
                message,
            })?;
        let series = self
            .by_labels
            .entry(labels.clone())
            .or_insert_with(|| Series {
                labels,
                ..Series::default()
            });
        for (t, v) in timestamps.into_iter().zip(values) {
            if (self.lo..=self.hi).contains(&t) {
                series.timestamps.push(t);
                series.values.push(v);
            }
        }
        Ok(())
    }

    /// The series with samples, sorted by labels, each sorted by time with every timestamp once.
    pub fn finish(mut self) -> Result<Vec<Series>, DecodeError> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.line(&line, self.offset)?;
        }
        let mut series: Vec<Series> = self
            .by_labels
            .into_values()
            .filter(|s| !s.timestamps.is_empty())
            .map(|mut s| {
                s.sort_by_time();
                s
            })
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(series)
    }
}

type LineError = (usize, String);

/// One export line: labels, timestamps, values (as many as timestamps).
fn parse_line(line: &[u8]) -> Result<(Labels, Vec<i64>, Vec<f64>), LineError> {
    let mut i = skip_space(line, 0);
    expect(line, &mut i, b'{')?;
    let (mut labels, mut timestamps, mut values) = (None, None, None);
    loop {
        i = skip_space(line, i);
        if line.get(i) == Some(&b'}') {
            i += 1;
            break;
        }
        let key: String = json_value(line, &mut i)?;
        i = skip_space(line, i);
        expect(line, &mut i, b':')?;
        i = skip_space(line, i);
        match key.as_str() {
            "metric" => {
                let map: BTreeMap<String, String> = json_value(line, &mut i)?;
                labels = Some(Labels::from_pairs(map));
            }
            "values" => values = Some(numbers(line, &mut i, |t| t.parse::<f64>().ok())?),
            "timestamps" => timestamps = Some(numbers(line, &mut i, |t| t.parse::<i64>().ok())?),
            _ => {
                json_value::<IgnoredAny>(line, &mut i)?;
            }
        }
        i = skip_space(line, i);
        match line.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {}
            _ => return Err((i, "expected `,` or `}` in an export line".into())),
        }
    }
    if skip_space(line, i) != line.len() {
        return Err((i, "text after an export line's object".into()));
    }
    let (Some(labels), Some(timestamps), Some(values)) = (labels, timestamps, values) else {
        return Err((
            0,
            "an export line lacks `metric`, `values` or `timestamps`".into(),
        ));
    };
    if timestamps.len() != values.len() {
        return Err((
            0,
            format!(
                "an export line has {} timestamps but {} values",
                timestamps.len(),
                values.len()
            ),
        ));
    }
    Ok((labels, timestamps, values))
}

fn skip_space(line: &[u8], mut i: usize) -> usize {
    while line.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

fn expect(line: &[u8], i: &mut usize, b: u8) -> Result<(), LineError> {
    if line.get(*i) != Some(&b) {
        return Err((*i, format!("expected `{}` in an export line", b as char)));
    }
    *i += 1;
    Ok(())
}

/// One JSON value at `i`, read by serde_json.
fn json_value<T: serde::de::DeserializeOwned>(line: &[u8], i: &mut usize) -> Result<T, LineError> {
    let mut values = serde_json::Deserializer::from_slice(&line[*i..]).into_iter::<T>();
    match values.next() {
        Some(Ok(v)) => {
            *i += values.byte_offset();
            Ok(v)
        }
        Some(Err(e)) => Err((*i + e.column().saturating_sub(1), e.to_string())),
        None => Err((*i, "a JSON value was expected".into())),
    }
}

/// `[n, n, ...]` of bare tokens (numbers, and VictoriaMetrics' `+Inf`, `-Inf`, `NaN`).
fn numbers<T>(
    line: &[u8],
    i: &mut usize,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, LineError> {
    expect(line, i, b'[')?;
    let Some(len) = line[*i..].iter().position(|&b| b == b']') else {
        return Err((*i, "an unterminated array in an export line".into()));
    };
    let body = std::str::from_utf8(&line[*i..*i + len]).map_err(|_| (*i, "not UTF-8".into()))?;
    let mut out = Vec::new();
    if !body.trim().is_empty() {
        let mut at = *i;
        for token in body.split(',') {
            let word = token.trim();
            // `parse` accepts what Rust's parsers do; refuse what JSON and VictoriaMetrics never
            // write (`inf` without sign or case, `infinity`, hex, underscores...).
            let plausible = matches!(word, "+Inf" | "-Inf" | "NaN")
                || word
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
            match parse(word).filter(|_| plausible && !word.is_empty()) {
                Some(v) => out.push(v),
                None => return Err((at, format!("`{word}` is not a number"))),
            }
            at += token.len() + 1;
        }
    }
    *i += len + 1;
    Ok(out)
}

impl Client {
    /// VictoriaMetrics' export of `selector` over `[lo, hi]`, retried as configured.
    pub(crate) async fn vm_export(&self, selector: &str, lo: i64, hi: i64) -> Result<Vec<Series>> {
        self.retried(|| self.vm_export_once(selector, lo, hi)).await
    }

    async fn vm_export_once(&self, selector: &str, lo: i64, hi: i64) -> Result<Vec<Series>> {
        // A second wider on each side: the server's own bounds never cut a sample we keep.
        let params = [
            ("match[]", selector.to_owned()),
            ("start", seconds(lo.saturating_sub(1000))),
            ("end", seconds(hi.saturating_add(1000))),
        ];
        let url = self.url("api/v1/export", &params);
        let mut shown = url.clone();
        shown.set_query(None);
        let mut response = self
            .authorize(self.inner.http.get(url))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let content_type = crate::request::content_type(&response);
        if !response.status().is_success() || !content_type.contains("json") {
            let head = crate::request::error_head(&mut response).await;
            return Err(Error::Refused {
                url: shown.to_string(),
                api: "export",
                selector: selector.to_owned(),
                status,
                message: crate::decode::snippet(&head),
                attempts: Attempts(1),
            });
        }
        let decode = |source| Error::Decode {
            url: shown.to_string(),
            source,
        };
        let mut collector = ExportCollector::new(lo, hi);
        while let Some(bytes) = response.chunk().await.map_err(|e| self.transport(e))? {
            collector.push(&bytes).map_err(decode)?;
        }
        collector.finish().map_err(decode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_lines_as_victoria_metrics_writes_them() {
        let body = b"{\"metric\":{\"__name__\":\"vm_x\",\"a\":\"1\"},\"values\":[1.5,+Inf,0.1,-Inf,NaN],\"timestamps\":[1000,2000,3000,4000,5000]}\n{\"metric\":{\"__name__\":\"vm_x\",\"a\":\"1\"},\"values\":[7e-7],\"timestamps\":[500]}\n";
        for cut in 0..body.len() {
            let mut c = ExportCollector::new(0, 4500);
            c.push(&body[..cut]).unwrap();
            c.push(&body[cut..]).unwrap();
            let series = c.finish().unwrap();
            assert_eq!(series.len(), 1);
            assert_eq!(series[0].labels.get("a"), Some("1"));
            assert_eq!(series[0].timestamps, [500, 1000, 2000, 3000, 4000]);
            assert_eq!(
                series[0].values,
                [7e-7, 1.5, f64::INFINITY, 0.1, f64::NEG_INFINITY]
            );
        }
    }

    #[test]
    fn malformed_lines_are_errors_with_their_offset() {
        for bad in [
            &b"{\"metric\":{},\"values\":[1,2],\"timestamps\":[1]}\n"[..],
            b"{\"metric\":{},\"values\":[x],\"timestamps\":[1]}\n",
            b"{\"metric\":{},\"values\":[1],\"timestamps\":[1.5]}\n",
            b"{\"metric\":{},\"values\":[1]}\n",
            b"{\"metric\":{},\"values\":[inf],\"timestamps\":[1]}\n",
            b"not json\n",
        ] {
            let mut c = ExportCollector::new(0, 10);
            assert!(c.push(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let mut c = ExportCollector::new(0, 10);
        c.push(b"{\"metric\":{},\"values\":[1],\"times").unwrap();
        assert!(c.finish().is_err(), "a cut line is an error");
    }
}
