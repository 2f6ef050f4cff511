//! The remote-read protobuf messages, written by hand with prost's derive (no protoc needed).
//!
//! They mirror `prompb/types.proto` and `prompb/remote.proto` of prometheus/prometheus at tag
//! v2.42.0 (the Prometheus our tests run against; the messages used here are unchanged in 3.x),
//! and only the messages and fields a remote-read client needs. Field numbers and types must stay
//! those of the upstream files: they are the wire format. Fields we do not model are skipped by
//! prost when decoding, as protobuf requires; native-histogram samples (`TimeSeries.histograms`)
//! are kept as raw bytes, only to count and report them.

/// `prometheus.ReadRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadRequest {
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
    /// `ReadRequest.ResponseType` values, in order of preference.
    #[prost(enumeration = "ResponseType", repeated, tag = "2")]
    pub accepted_response_types: Vec<i32>,
}

/// `prometheus.ReadRequest.ResponseType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ResponseType {
    /// One `ReadResponse` with every sample, snappy-compressed.
    Samples = 0,
    /// Frames of `ChunkedReadResponse` carrying the TSDB's own XOR chunks.
    StreamedXorChunks = 1,
}

/// `prometheus.Query`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Query {
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
    #[prost(message, optional, tag = "4")]
    pub hints: Option<ReadHints>,
}

/// `prometheus.LabelMatcher`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LabelMatcher {
    #[prost(enumeration = "MatchType", tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub value: String,
}

/// `prometheus.LabelMatcher.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MatchType {
    Eq = 0,
    Neq = 1,
    Re = 2,
    Nre = 3,
}

/// `prometheus.ReadHints` (only the time range; the rest is for PromQL-aware storages).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadHints {
    #[prost(int64, tag = "1")]
    pub step_ms: i64,
    #[prost(int64, tag = "3")]
    pub start_ms: i64,
    #[prost(int64, tag = "4")]
    pub end_ms: i64,
}

/// `prometheus.ReadResponse`: the `SAMPLES` answer, one per request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadResponse {
    /// In the order of the request's queries.
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}

/// `prometheus.QueryResult`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryResult {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Ordered by time.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// `repeated Histogram histograms = 4`, undecoded: native histograms are not loaded.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub histograms: Vec<Vec<u8>>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.ChunkedReadResponse`: one frame of the `STREAMED_XOR_CHUNKS` answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkedReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub chunked_series: Vec<ChunkedSeries>,
    /// Which of the request's queries this frame answers.
    #[prost(int64, tag = "2")]
    pub query_index: i64,
}

/// `prometheus.ChunkedSeries`: a series, or a part of one (a series may span frames).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkedSeries {
    /// Sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// In start time order; they may overlap.
    #[prost(message, repeated, tag = "2")]
    pub chunks: Vec<Chunk>,
}

/// `prometheus.Chunk`: one TSDB chunk; `[min_time_ms, max_time_ms]` is inclusive.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Chunk {
    #[prost(int64, tag = "1")]
    pub min_time_ms: i64,
    #[prost(int64, tag = "2")]
    pub max_time_ms: i64,
    /// `Chunk.Encoding`: 1 XOR, 2 histogram, 3 float histogram (kept as a number, so that an
    /// encoding newer than this file is reported as what it is, not as "unknown").
    #[prost(int32, tag = "3")]
    pub r#type: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
}

/// `Chunk.Encoding.XOR`, the one encoding this client decodes.
pub const ENCODING_XOR: i32 = 1;

/// The name of a `Chunk.Encoding` value, for messages.
pub fn encoding_name(encoding: i32) -> &'static str {
    match encoding {
        0 => "UNKNOWN",
        1 => "XOR",
        2 => "HISTOGRAM",
        3 => "FLOAT_HISTOGRAM",
        _ => "an encoding newer than this client",
    }
}
