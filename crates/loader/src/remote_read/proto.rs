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
    /// The queries, answered in this order.
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
    /// The first millisecond asked (inclusive).
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    /// The last millisecond asked (inclusive).
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    /// The series selector, as matchers.
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
    /// Hints for the storage.
    #[prost(message, optional, tag = "4")]
    pub hints: Option<ReadHints>,
}

/// `prometheus.LabelMatcher`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LabelMatcher {
    /// The kind (see the enum beside it).
    #[prost(enumeration = "MatchType", tag = "1")]
    pub r#type: i32,
    /// The label name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// The label value (for a matcher, the string or regex matched).
    #[prost(string, tag = "3")]
    pub value: String,
}

/// `prometheus.LabelMatcher.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MatchType {
    /// `=`: the label's value equals the string (an absent label counts as empty).
    Eq = 0,
    /// `!=`: the label's value differs from the string.
    Neq = 1,
    /// `=~`: the label's value matches the regex, anchored at both ends.
    Re = 2,
    /// `!~`: the label's value does not match the regex, anchored at both ends.
    Nre = 3,
}

/// `prometheus.ReadHints` (only the time range; the rest is for PromQL-aware storages).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadHints {
    /// The query step (0: raw samples).
    #[prost(int64, tag = "1")]
    pub step_ms: i64,
    /// The range's start.
    #[prost(int64, tag = "3")]
    pub start_ms: i64,
    /// The range's end.
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
    /// The series found.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// The labels, sorted by name.
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
    /// The label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The label value (for a matcher, the string or regex matched).
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.ChunkedReadResponse`: one frame of the `STREAMED_XOR_CHUNKS` answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkedReadResponse {
    /// Series, or parts of series, with their chunks.
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
    /// The chunk's first sample time.
    #[prost(int64, tag = "1")]
    pub min_time_ms: i64,
    /// The chunk's last sample time.
    #[prost(int64, tag = "2")]
    pub max_time_ms: i64,
    /// `Chunk.Encoding`: 1 XOR, 2 histogram, 3 float histogram (kept as a number, so that an
    /// encoding newer than this file is reported as what it is, not as "unknown").
    #[prost(int32, tag = "3")]
    pub r#type: i32,
    /// The chunk's bytes, in its encoding.
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
