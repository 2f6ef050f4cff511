//! `promlearn scrape`: reads a `/metrics` endpoint at an interval and streams every sample.

use std::{
    io::Write,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow, bail};
use clap::Args;
use serde::{Serialize, ser::SerializeMap};

use promlearn_loader::{
    Client,
    exposition::{self, Sample},
};

use crate::{
    conn::HttpArgs,
    output::{self, Format, csv_field, json_number},
    promapi::{self, explain},
    timeutil::parse_duration,
};

#[derive(Args, Debug)]
pub struct ScrapeArgs {
    /// The endpoint to read, in the Prometheus text exposition format.
    #[arg(value_name = "URL", default_value = "http://localhost:9153/metrics")]
    pub url: String,

    /// Time between scrapes.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,

    /// Stop after this many scrapes.
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,

    /// Stop after this long (without --count or --duration: until Ctrl-C).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Keep only samples of these metrics: a family (`coredns_dns_request_duration_seconds`)
    /// or a sample name (`..._bucket`); repeatable.
    #[arg(long, short = 'M', value_name = "NAME")]
    pub metric: Vec<String>,

    /// Write to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Output format: text (exposition-like lines with a timestamp), json (one object per
    /// line) or csv [default: from --output's extension, else text].
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    #[command(flatten)]
    pub http: HttpArgs,
}

pub async fn run(args: ScrapeArgs) -> Result<()> {
    let format = Format::choose(
        args.format,
        args.output.as_deref(),
        &[Format::Text, Format::Json, Format::Csv],
    )?;
    if args.interval.is_zero() {
        bail!("--interval must be longer than 0s");
    }
    let (server, page) = split_url(&args.url)?;
    let client = promapi::client_for(server, &args.http)?;
    let mut out = output::open(args.output.as_deref())?;
    if format == Format::Csv {
        writeln!(out, "name,family,type,labels,timestamp_ms,value")?;
    }
    let started = Instant::now();
    let mut ticker = tokio::time::interval(args.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let (mut scrapes, mut failures, mut total) = (0u64, 0u64, 0u64);
    loop {
        if args.count.is_some_and(|n| scrapes + failures >= n)
            || args.duration.is_some_and(|d| started.elapsed() >= d)
        {
            break;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut ctrl_c => break,
        }
        let samples = match scrape_once(&client, page).await {
            Ok(s) => s,
            // Once the endpoint has answered, a failed scrape is reported and skipped, as
            // Prometheus records `up 0` and carries on.
            Err(e) if scrapes > 0 => {
                failures += 1;
                tracing::warn!("scrape failed: {}", crate::one_line(&e));
                continue;
            }
            Err(e) => return Err(e),
        };
        scrapes += 1;
        let written = write_samples(&mut out, format, &samples, &args.metric);
        match written {
            Ok(n) => total += n,
            Err(e) if output::is_broken_pipe(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    tracing::info!(scrapes, failures, samples = total, "scrape done");
    if scrapes > 0 && total == 0 && !args.metric.is_empty() {
        tracing::warn!("no sample matched --metric {}", args.metric.join(", "));
    }
    Ok(())
}

/// The URL as the server (with any credentials, which the loader moves into basic auth) and
/// the page on it (path and query string), which is all the loader's client sends them to.
fn split_url(url: &str) -> Result<(&str, &str)> {
    let url = url.trim();
    let after_scheme = url.find("://").map(|i| i + 3).ok_or_else(|| {
        anyhow!("the URL needs http:// or https:// (e.g. http://localhost:9153/metrics)")
    })?;
    let page = url[after_scheme..]
        .find(['/', '?'])
        .map_or(url.len(), |i| after_scheme + i);
    let (server, page) = url.split_at(page);
    Ok((server, if page.is_empty() { "/" } else { page }))
}

/// One scrape: every sample, stamped with the scrape time where it has no time of its own.
async fn scrape_once(client: &Client, page: &str) -> Result<Vec<(Sample, i64)>> {
    let scrape = client.scrape(page).await.map_err(explain)?;
    Ok(scrape
        .samples
        .into_iter()
        .map(|s| {
            let t = s.timestamp_ms.unwrap_or(scrape.at_ms);
            (s, t)
        })
        .collect())
}

fn write_samples(
    out: &mut dyn Write,
    format: Format,
    samples: &[(Sample, i64)],
    filter: &[String],
) -> Result<u64> {
    let mut n = 0;
    for (s, t) in samples {
        if !filter.is_empty() && !filter.iter().any(|f| *f == s.name || *f == s.family) {
            continue;
        }
        n += 1;
        match format {
            Format::Json => {
                let line = JsonSample {
                    name: &s.name,
                    labels: LabelMap(&s.labels),
                    timestamp_ms: *t,
                    value: json_number(s.value),
                    family: &s.family,
                    kind: s.kind,
                };
                writeln!(out, "{}", serde_json::to_string(&line)?)?;
            }
            Format::Csv => {
                let kind = serde_json::to_value(s.kind)?;
                writeln!(
                    out,
                    "{},{},{},{},{t},{}",
                    csv_field(&s.name),
                    csv_field(&s.family),
                    kind.as_str().unwrap_or("untyped"),
                    csv_field(&label_text(&s.labels)),
                    exposition::format_value(s.value)
                )?;
            }
            _ => writeln!(
                out,
                "{}{} {} {t}",
                s.name,
                label_text(&s.labels),
                exposition::format_value(s.value)
            )?,
        }
    }
    out.flush()?;
    Ok(n)
}

/// `{a="1",b="2"}` (empty for no labels), escaped as the exposition format escapes.
fn label_text(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", exposition::escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// One sample as a JSON line, fields in this order.
#[derive(Serialize)]
struct JsonSample<'a> {
    name: &'a str,
    labels: LabelMap<'a>,
    timestamp_ms: i64,
    value: serde_json::Value,
    family: &'a str,
    #[serde(rename = "type")]
    kind: exposition::MetricType,
}

/// Labels as a JSON object, in the endpoint's order.
struct LabelMap<'a>(&'a [(String, String)]);

impl Serialize for LabelMap<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_splits_into_server_and_page() {
        for (url, server, page) in [
            (
                "http://localhost:9153/metrics",
                "http://localhost:9153",
                "/metrics",
            ),
            ("https://u:p@h:1/a/b?x=1", "https://u:p@h:1", "/a/b?x=1"),
            (
                "http://h:9090/federate?match[]=up",
                "http://h:9090",
                "/federate?match[]=up",
            ),
            ("http://h:9100", "http://h:9100", "/"),
            ("http://h:9100?x", "http://h:9100", "?x"),
        ] {
            assert_eq!(split_url(url).unwrap(), (server, page), "{url}");
        }
        assert!(split_url("localhost:9153/metrics").is_err());
    }
}
