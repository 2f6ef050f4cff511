//! Prometheus remote read (`POST /api/v1/read`): raw samples without PromQL or JSON.
//!
//! The request is a snappy-compressed protobuf `ReadRequest` ([`proto`]). Prometheus answers
//! `STREAMED_XOR_CHUNKS` as frames of the TSDB's own XOR-compressed chunks, which it neither
//! decodes nor re-encodes: [`FrameReader`] checks each frame's CRC32C as the bytes arrive and
//! [`decode_xor_chunk`] decodes the chunks, so the client's memory holds one frame at a time
//! besides the samples themselves. `SAMPLES` (one snappy protobuf `ReadResponse`) is the
//! fallback, for chunk encodings this client does not decode (native histograms, newer kinds)
//! and for servers without streaming.
//!
//! The samples are those the JSON API gives for `selector[range]`: timestamps in `[start, end]`,
//! Prometheus's stale markers dropped (PromQL drops them too), every NaN made the canonical NaN
//! (the JSON API cannot tell NaN payloads apart either).
//!
//! [`Client::load_raw`](crate::Client::load_raw) picks this path by itself where the server offers it.

mod chunk;
mod frames;
pub mod proto;
mod selector;

pub use chunk::{ChunkError, decode_xor_chunk};
pub use frames::{FrameReader, MAX_FRAME_BYTES, RemoteReadError, STALE_NAN_BITS, SeriesCollector};
pub use selector::parse as parse_selector;

use prost::Message;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};

use crate::{Client, Error, Labels, Result, decode::Series, error::Attempts};
use proto::{LabelMatcher, Query, ReadHints, ReadRequest, ResponseType};

/// The snappy-compressed `ReadRequest` body for one query of `matchers` over `[start_ms,
/// end_ms]`, accepting the answer types in `accept`, in that order of preference.
///
/// ```
/// use promlearn_loader::remote_read::{parse_selector, proto::ResponseType, read_request_body};
///
/// let matchers = parse_selector(r#"up{job="node"}"#).unwrap();
/// let body = read_request_body(&matchers, 0, 60_000, &[ResponseType::StreamedXorChunks]);
/// assert!(snap::raw::Decoder::new().decompress_vec(&body).is_ok());
/// ```
pub fn read_request_body(
    matchers: &[LabelMatcher],
    start_ms: i64,
    end_ms: i64,
    accept: &[ResponseType],
) -> Vec<u8> {
    let request = ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: start_ms,
            end_timestamp_ms: end_ms,
            matchers: matchers.to_vec(),
            hints: Some(ReadHints {
                step_ms: 0,
                start_ms,
                end_ms,
            }),
        }],
        accepted_response_types: accept.iter().map(|t| *t as i32).collect(),
    };
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .expect("snappy compresses any input")
}

/// What one remote read gave.
#[derive(Debug)]
pub(crate) struct ReadAnswer {
    pub series: Vec<Series>,
    /// Series whose samples were native histograms, which are not loaded.
    pub histogram_series: Vec<Labels>,
    /// Whether the answer was streamed chunks (else SAMPLES).
    pub streamed: bool,
}

impl Client {
    /// One remote read of `matchers` over `[lo, hi]`, retried as configured.
    pub(crate) async fn remote_read(
        &self,
        selector: &str,
        matchers: &[LabelMatcher],
        lo: i64,
        hi: i64,
        accept: &[ResponseType],
    ) -> Result<ReadAnswer> {
        let body = read_request_body(matchers, lo, hi, accept);
        self.retried(|| self.remote_read_once(selector, body.clone(), lo, hi))
            .await
    }

    async fn remote_read_once(
        &self,
        selector: &str,
        body: Vec<u8>,
        lo: i64,
        hi: i64,
    ) -> Result<ReadAnswer> {
        let mut url = self.url("api/v1/read", &[]);
        url.set_query(None);
        let shown = url.to_string();
        let request = self
            .inner
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/x-protobuf")
            .header(CONTENT_ENCODING, "snappy")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
            .body(body);
        let mut response = self
            .authorize(request)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let content_type = crate::request::content_type(&response);
        let streamed = content_type.starts_with("application/x-streamed-protobuf");
        if !response.status().is_success()
            || !(streamed || content_type.starts_with("application/x-protobuf"))
        {
            let head = crate::request::error_head(&mut response).await;
            let message = crate::decode::snippet(&head);
            if response.status().is_success() {
                return Err(Error::NotPrometheus {
                    url: shown,
                    status,
                    content_type,
                    snippet: message,
                });
            }
            return Err(Error::Refused {
                url: shown,
                api: "remote read",
                selector: selector.to_owned(),
                status,
                message,
                attempts: Attempts(1),
            });
        }
        let malformed = |source: RemoteReadError| match source {
            RemoteReadError::Truncated { .. } => Error::Truncated {
                endpoint: self.inner.shown.clone(),
                attempts: Attempts(1),
            },
            source => Error::RemoteRead {
                url: shown.clone(),
                source,
            },
        };
        let mut collector = SeriesCollector::new(lo, hi);
        if streamed {
            let mut frames = FrameReader::new(MAX_FRAME_BYTES);
            while let Some(bytes) = response.chunk().await.map_err(|e| self.transport(e))? {
                frames.push(&bytes);
                while let Some(frame) = frames.next_frame().map_err(malformed)? {
                    collector.frame(frame).map_err(malformed)?;
                }
            }
            frames.finish().map_err(malformed)?;
        } else {
            let body = response.bytes().await.map_err(|e| self.transport(e))?;
            collector.samples_answer(&body).map_err(malformed)?;
        }
        let (series, histogram_series) = collector.finish();
        Ok(ReadAnswer {
            series,
            histogram_series,
            streamed,
        })
    }
}
