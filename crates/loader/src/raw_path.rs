//! Which way raw samples come: remote read, VictoriaMetrics' export, or the JSON query API.
//!
//! [`Client::load_raw`] asks the fastest path the server offers and remembers what it learnt:
//! remote read (streamed XOR chunks) where it answers, as Prometheus does; VictoriaMetrics'
//! `/api/v1/export` where remote read is refused but export answers; else the JSON API
//! ([`Client::query_raw`]), as for Thanos Query. A selector that is not a plain series selector
//! always goes to the JSON API, which judges PromQL. [`Client::load_raw_via`] forces a path.
//!
//! Decisions, so that every path gives the same samples:
//! - all keep `[start, end]` inclusive (streamed chunks reach past it and are cut here);
//! - Prometheus's stale markers are dropped and every NaN is the canonical one, as PromQL and
//!   the JSON API give them (JSON cannot carry a NaN's payload);
//! - a chunk encoding this client does not decode (native histograms, newer kinds) fails a forced
//!   `Via::RemoteRead` with its name; `Via::Auto` asks for `SAMPLES` instead, which loads the float
//!   series and warns about each native-histogram series; `SAMPLES` cannot tell -0 from 0;
//! - the client remembers "remote read", "export" or "JSON" only on a clear answer (a success, or
//!   404/405/501/"unsupported path"), never on a failure that may pass or a refused selector;
//! - `SAMPLES` is asked in [`ClientBuilder::raw_chunk`](crate::ClientBuilder::raw_chunk) spans
//!   (each is one message the server builds whole), streamed remote read in one request (its
//!   frames bound memory on both sides).

use std::{collections::HashMap, fmt, sync::Mutex};

use futures_util::{StreamExt, stream};

use crate::{
    Client, Error, Labels, RawSeries, Result,
    decode::Series,
    remote_read::{self, proto::ResponseType},
};

/// A path for raw samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Via {
    /// The fastest the server offers, found out on the first load and remembered by the client.
    #[default]
    Auto,
    /// Remote read, `STREAMED_XOR_CHUNKS` (Prometheus): fails on a chunk encoding this client
    /// does not decode (native histograms), naming it.
    RemoteRead,
    /// Remote read, `SAMPLES`: every sample decoded by the server; series of native histograms
    /// are skipped with a warning.
    RemoteReadSamples,
    /// VictoriaMetrics' `/api/v1/export` (JSON lines).
    Export,
    /// The JSON query API, `selector[span]` per [`ClientBuilder::raw_chunk`](crate::ClientBuilder::raw_chunk)
    /// (any Prometheus-compatible server; also the only path for PromQL beyond a plain selector).
    Json,
}

impl Via {
    /// The name the CLI uses (`--via`).
    pub fn name(self) -> &'static str {
        match self {
            Via::Auto => "auto",
            Via::RemoteRead => "remote-read",
            Via::RemoteReadSamples => "remote-read-samples",
            Via::Export => "export",
            Via::Json => "json",
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Raw samples and the path that brought them.
#[derive(Debug, Clone, PartialEq)]
pub struct RawLoad {
    /// The samples, as [`Client::query_raw`] returns them.
    pub data: RawSeries,
    /// The path used (never [`Via::Auto`]).
    pub via: Via,
}

/// What the client learnt of its server's raw-sample paths (`Client`'s shared state).
#[derive(Debug, Default)]
pub(crate) struct Known(Mutex<Option<Via>>);

impl Known {
    fn get(&self) -> Option<Via> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, via: Via) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(via);
    }
}

/// Whether an HTTP refusal means "this API is not served here" (rather than "this request is
/// wrong"): 404, 405, 501, or VictoriaMetrics' `unsupported path requested`.
pub(crate) fn unserved(status: u16, message: &str) -> bool {
    matches!(status, 404 | 405 | 501) || message.contains("unsupported path")
}

fn is_unserved(e: &Error) -> bool {
    match e {
        Error::Refused {
            status, message, ..
        } => unserved(*status, message),
        Error::NotPrometheus { .. } => true,
        _ => false,
    }
}

impl Client {
    /// Raw samples as stored, between `start_ms` and `end_ms` inclusive, of the series
    /// `selector` picks, by the fastest path the server offers (see the [module](crate::raw_path)
    /// documentation): equal, sample for sample, to what [`Client::query_raw`] returns.
    ///
    /// ```no_run
    /// # async fn demo() -> promlearn_loader::Result<()> {
    /// use promlearn_loader::{Client, Via};
    ///
    /// let client = Client::new("http://localhost:9090")?;
    /// let now = chrono::Utc::now().timestamp_millis();
    /// let load = client.load_raw(r#"up{job="node"}"#, now - 3_600_000, now).await?;
    /// println!("{} samples via {}", load.data.sample_count(), load.via); // "via remote-read"
    /// let json = client.load_raw_via("up", now - 60_000, now, Via::Json).await?;
    /// # Ok(()) }
    /// ```
    pub async fn load_raw(&self, selector: &str, start_ms: i64, end_ms: i64) -> Result<RawLoad> {
        self.load_raw_via(selector, start_ms, end_ms, Via::Auto)
            .await
    }

    /// As [`Client::load_raw`], by the path `via`. A forced path the server does not serve
    /// fails with [`Error::Refused`]; remote read and export need a plain series selector.
    pub async fn load_raw_via(
        &self,
        selector: &str,
        start_ms: i64,
        end_ms: i64,
        via: Via,
    ) -> Result<RawLoad> {
        if end_ms < start_ms {
            return Err(Error::InvalidArgument(format!(
                "the range ends ({end_ms} ms) before it starts ({start_ms} ms)"
            )));
        }
        let matchers = remote_read::parse_selector(selector);
        let Some(matchers) = matchers else {
            if matches!(via, Via::Auto | Via::Json) {
                return self.json_load(selector, start_ms, end_ms).await;
            }
            return Err(Error::InvalidArgument(format!(
                "`{selector}` is not a plain series selector (such as `name{{label=\"value\"}}`), \
                 which {via} needs; load it with Via::Json (`--via json`)"
            )));
        };
        let (lo, hi) = (start_ms, end_ms);
        match via {
            Via::Json => self.json_load(selector, lo, hi).await,
            Via::Export => self.export_load(selector, lo, hi).await,
            Via::RemoteReadSamples => self.samples_load(selector, &matchers, lo, hi).await,
            Via::RemoteRead => {
                let accept = [ResponseType::StreamedXorChunks];
                let answer = self
                    .remote_read(selector, &matchers, lo, hi, &accept)
                    .await?;
                let via = via_of(answer.streamed);
                Ok(finish(answer, via))
            }
            Via::Auto => match self.inner.raw_path.get() {
                Some(Via::Json) => self.json_load(selector, lo, hi).await,
                Some(Via::Export) => self.export_load(selector, lo, hi).await,
                _ => self.auto_load(selector, &matchers, lo, hi).await,
            },
        }
    }

    /// Remote read if the server answers it; else export, else JSON; remembering what it found.
    async fn auto_load(
        &self,
        selector: &str,
        matchers: &[remote_read::proto::LabelMatcher],
        lo: i64,
        hi: i64,
    ) -> Result<RawLoad> {
        let accept = [ResponseType::StreamedXorChunks, ResponseType::Samples];
        let refusal = match self.remote_read(selector, matchers, lo, hi, &accept).await {
            Ok(answer) => {
                self.inner.raw_path.set(Via::RemoteRead);
                let via = via_of(answer.streamed);
                return Ok(finish(answer, via));
            }
            Err(Error::RemoteRead {
                source: remote_read::RemoteReadError::UnsupportedEncoding { series, name, .. },
                ..
            }) => {
                tracing::info!(%series, "{name} chunks: loading by remote read SAMPLES instead");
                self.inner.raw_path.set(Via::RemoteRead);
                return self.samples_load(selector, matchers, lo, hi).await;
            }
            Err(e) if matches!(e, Error::Refused { .. } | Error::NotPrometheus { .. }) => e,
            Err(e) => return Err(e),
        };
        // No remote read: VictoriaMetrics' export, if it answers.
        match self.export_load(selector, lo, hi).await {
            Ok(load) => {
                tracing::info!(endpoint = %self.inner.shown, "no remote read; export answers: using it");
                self.inner.raw_path.set(Via::Export);
                Ok(load)
            }
            Err(e) if is_unserved(&e) => {
                // Remember only a clear "not served": a refused request of a Prometheus (a bad
                // matcher) goes to the JSON API this once, which explains what is wrong with it.
                if is_unserved(&refusal) {
                    self.inner.raw_path.set(Via::Json);
                }
                tracing::info!(endpoint = %self.inner.shown, "neither remote read nor export: the JSON API ({refusal})");
                self.json_load(selector, lo, hi).await
            }
            Err(e) => Err(e),
        }
    }

    async fn json_load(&self, selector: &str, lo: i64, hi: i64) -> Result<RawLoad> {
        Ok(RawLoad {
            data: self.query_raw(selector, lo, hi).await?,
            via: Via::Json,
        })
    }

    async fn export_load(&self, selector: &str, lo: i64, hi: i64) -> Result<RawLoad> {
        let series = self.vm_export(selector, lo, hi).await?;
        Ok(RawLoad {
            data: RawSeries {
                series,
                warnings: Vec::new(),
            },
            via: Via::Export,
        })
    }

    /// `SAMPLES` in [`ClientBuilder::raw_chunk`](crate::ClientBuilder::raw_chunk) spans, fetched
    /// `concurrency` at a time: each answer is one message the server builds whole, so spans
    /// bound its memory and ours.
    async fn samples_load(
        &self,
        selector: &str,
        matchers: &[remote_read::proto::LabelMatcher],
        lo: i64,
        hi: i64,
    ) -> Result<RawLoad> {
        let span = self.inner.raw_chunk_ms.max(1);
        let mut windows = Vec::new();
        let mut start = lo;
        loop {
            let end = start.saturating_add(span - 1).min(hi);
            windows.push((start, end));
            if end >= hi {
                break;
            }
            start = end + 1;
        }
        let accept = [ResponseType::Samples];
        let mut answers = stream::iter(windows)
            .map(|(a, b)| self.remote_read(selector, matchers, a, b, &accept))
            .buffered(self.inner.concurrency);
        let mut by_labels: HashMap<Labels, Series> = HashMap::new();
        let mut histograms: Vec<Labels> = Vec::new();
        while let Some(answer) = answers.next().await {
            let answer = answer?;
            for labels in answer.histogram_series {
                if !histograms.contains(&labels) {
                    histograms.push(labels);
                }
            }
            for s in answer.series {
                match by_labels.get_mut(&s.labels) {
                    Some(into) => {
                        into.timestamps.extend_from_slice(&s.timestamps);
                        into.values.extend_from_slice(&s.values);
                    }
                    None => {
                        by_labels.insert(s.labels.clone(), s);
                    }
                }
            }
        }
        let mut series: Vec<Series> = by_labels.into_values().collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let answer = remote_read::ReadAnswer {
            series,
            histogram_series: histograms,
            streamed: false,
        };
        Ok(finish(answer, Via::RemoteReadSamples))
    }
}

fn via_of(streamed: bool) -> Via {
    if streamed {
        Via::RemoteRead
    } else {
        Via::RemoteReadSamples
    }
}

/// The load, with a warning per series whose native-histogram samples were not loaded.
fn finish(answer: remote_read::ReadAnswer, via: Via) -> RawLoad {
    let warnings = answer
        .histogram_series
        .iter()
        .map(|labels| {
            format!(
                "{labels} holds native histogram samples, which this loader does not load \
                 (its float samples, if any, are loaded)"
            )
        })
        .collect();
    RawLoad {
        data: RawSeries {
            series: answer.series,
            warnings,
        },
        via,
    }
}
