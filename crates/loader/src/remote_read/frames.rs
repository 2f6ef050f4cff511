//! The `STREAMED_XOR_CHUNKS` answer's frames, and both remote-read answers decoded into series.
//!
//! A frame is a uvarint payload length, the payload's CRC32C (Castagnoli) as 4 big-endian bytes,
//! then the payload: one protobuf `ChunkedReadResponse` (`storage/remote/chunked.go` in
//! prometheus/prometheus). [`FrameReader`] is fed the body as the network delivers it and yields
//! each frame once it is complete and its checksum holds, so memory stays bounded by one frame
//! plus one network read, whatever the answer's size.
//!
//! ```
//! use promlearn_loader::remote_read::FrameReader;
//!
//! let payload = b"a protobuf message";
//! let mut body = vec![payload.len() as u8];
//! body.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
//! body.extend_from_slice(payload);
//! let mut frames = FrameReader::new(1 << 20);
//! frames.push(&body[..7]); // a frame cut anywhere waits for the rest
//! assert_eq!(frames.next_frame()?, None);
//! frames.push(&body[7..]);
//! assert_eq!(frames.next_frame()?, Some(&payload[..]));
//! frames.finish()?; // nothing left over
//! # Ok::<(), promlearn_loader::remote_read::RemoteReadError>(())
//! ```

use prost::Message;

use super::{
    chunk::{ChunkError, decode_xor_chunk},
    proto::{self, ChunkedReadResponse, ENCODING_XOR, ReadResponse},
};
use crate::{Labels, decode::Series};

/// Prometheus's own client refuses frames over 50 MB (`DefaultChunkedReadLimit`); so do we.
pub const MAX_FRAME_BYTES: usize = 50_000_000;

/// Prometheus's stale marker: a NaN with this payload ends a series. PromQL never returns it,
/// and neither does this loader.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Why a remote-read answer could not be used. Nothing of a failed answer is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteReadError {
    /// A frame's CRC32C does not match its payload: the stream was corrupted.
    #[error(
        "frame {frame} (at byte {offset}) fails its CRC32C check (expected {expected:#010x}, computed {computed:#010x})"
    )]
    Checksum {
        /// The frame's index in the answer (from 0).
        frame: u64,
        /// The frame's first byte in the answer.
        offset: u64,
        /// The checksum the frame carries.
        expected: u32,
        /// The checksum of the payload received.
        computed: u32,
    },
    /// A frame announces more bytes than the limit.
    #[error(
        "frame {frame} (at byte {offset}) announces {length} bytes, more than the {limit}-byte limit"
    )]
    FrameTooLarge {
        /// The frame's index in the answer (from 0).
        frame: u64,
        /// The frame's first byte in the answer.
        offset: u64,
        /// The length the frame announces.
        length: u64,
        /// The longest frame accepted.
        limit: usize,
    },
    /// The answer stopped inside a frame.
    #[error(
        "the answer ends inside frame {frame} (at byte {offset}, {pending} bytes of it received)"
    )]
    Truncated {
        /// The frame's index in the answer (from 0).
        frame: u64,
        /// The frame's first byte in the answer.
        offset: u64,
        /// Bytes of the unfinished frame received.
        pending: usize,
    },
    /// A frame length is not a valid varint.
    #[error("frame {frame} (at byte {offset}) starts with a malformed length")]
    BadLength {
        /// The frame's index in the answer (from 0).
        frame: u64,
        /// The frame's first byte in the answer.
        offset: u64,
    },
    /// The snappy block could not be decompressed.
    #[error("the snappy-compressed answer is malformed: {0}")]
    Snappy(String),
    /// A protobuf message could not be decoded.
    #[error("{what} is not a valid protobuf message: {reason}")]
    Protobuf {
        /// Which message (`a ChunkedReadResponse frame`, `the ReadResponse`).
        what: &'static str,
        /// prost's decode error.
        reason: String,
    },
    /// A chunk is of an encoding this client does not decode.
    #[error(
        "series {series} comes in {name} chunks (encoding {encoding}), which this client does not \
         decode; ask for SAMPLES instead (Via::RemoteReadSamples, `--via remote-read-samples`), \
         or use Via::Auto, which does so by itself"
    )]
    UnsupportedEncoding {
        /// The series.
        series: Labels,
        /// The `Chunk.Encoding` number.
        encoding: i32,
        /// Its name.
        name: &'static str,
    },
    /// An XOR chunk could not be decoded.
    #[error("an XOR chunk of series {series} is malformed: {source}")]
    Chunk {
        /// The series.
        series: Labels,
        /// What is wrong with the chunk.
        #[source]
        source: ChunkError,
    },
}

/// Splits a streamed body into checked frames; see the module's documentation.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out.
    start: usize,
    limit: usize,
    /// Body offset of `buf[0]`.
    offset: u64,
    frames: u64,
}

impl FrameReader {
    /// A reader refusing frames longer than `limit` bytes.
    pub fn new(limit: usize) -> FrameReader {
        FrameReader {
            buf: Vec::new(),
            start: 0,
            limit,
            offset: 0,
            frames: 0,
        }
    }

    /// Adds the next bytes of the body.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.offset += self.start as u64;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame's payload, checked; `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, RemoteReadError> {
        let rest = &self.buf[self.start..];
        let at = self.offset + self.start as u64;
        let mut length = 0u64;
        let mut header = None;
        for (i, &b) in rest.iter().enumerate().take(10) {
            if i == 9 && b > 1 {
                break;
            }
            length |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                header = Some(i + 1);
                break;
            }
        }
        let Some(varint) = header else {
            if rest.len() >= 10 {
                return Err(RemoteReadError::BadLength {
                    frame: self.frames,
                    offset: at,
                });
            }
            return Ok(None);
        };
        if length > self.limit as u64 {
            return Err(RemoteReadError::FrameTooLarge {
                frame: self.frames,
                offset: at,
                length,
                limit: self.limit,
            });
        }
        let end = varint + 4 + length as usize;
        if rest.len() < end {
            return Ok(None);
        }
        let expected = u32::from_be_bytes(rest[varint..varint + 4].try_into().expect("4 bytes"));
        let payload_at = self.start + varint + 4;
        let payload = &self.buf[payload_at..self.start + end];
        let computed = crc32c::crc32c(payload);
        if computed != expected {
            return Err(RemoteReadError::Checksum {
                frame: self.frames,
                offset: at,
                expected,
                computed,
            });
        }
        self.frames += 1;
        self.start += end;
        Ok(Some(&self.buf[payload_at..self.start]))
    }

    /// Checks that the body ended between frames.
    pub fn finish(&self) -> Result<(), RemoteReadError> {
        let pending = self.buf.len() - self.start;
        if pending > 0 {
            return Err(RemoteReadError::Truncated {
                frame: self.frames,
                offset: self.offset + self.start as u64,
                pending,
            });
        }
        Ok(())
    }

    /// Frames read so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }
}

/// Gathers decoded samples into series, keeping those in `[lo, hi]` (streamed chunks are whole
/// TSDB chunks and reach past the asked range), without stale markers, NaN made canonical (as the
/// JSON API reads it), each series sorted by time with every timestamp once.
#[derive(Debug)]
pub struct SeriesCollector {
    lo: i64,
    hi: i64,
    series: Vec<Series>,
    /// Whether the last series needs sorting (overlapping chunks).
    unsorted: bool,
    /// Series skipped because their samples are native histograms.
    histogram_series: Vec<Labels>,
}

impl SeriesCollector {
    /// A collector keeping samples in `[lo, hi]`.
    pub fn new(lo: i64, hi: i64) -> SeriesCollector {
        SeriesCollector {
            lo,
            hi,
            series: Vec::new(),
            unsorted: false,
            histogram_series: Vec::new(),
        }
    }

    /// The series to add samples to: the last one if the labels are the same (a series continued
    /// in the next frame), else a new one.
    fn begin(&mut self, labels: Vec<proto::Label>) {
        let labels = Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value)));
        if self.series.last().is_some_and(|s| s.labels == labels) {
            return;
        }
        self.settle_last();
        self.series.push(Series {
            labels,
            ..Series::default()
        });
    }

    #[inline]
    fn add(&mut self, t: i64, v: f64) {
        if t < self.lo || t > self.hi || v.to_bits() == STALE_NAN_BITS {
            return;
        }
        let v = if v.is_nan() { f64::NAN } else { v };
        let s = self.series.last_mut().expect("a series was begun");
        if s.timestamps.last().is_some_and(|&last| last >= t) {
            self.unsorted = true;
        }
        s.timestamps.push(t);
        s.values.push(v);
    }

    /// Sorts and de-duplicates the last series if its chunks overlapped.
    fn settle_last(&mut self) {
        if !std::mem::take(&mut self.unsorted) {
            return;
        }
        self.series
            .last_mut()
            .expect("unsorted implies a series")
            .sort_by_time();
    }

    /// Decodes one streamed frame's payload into the series.
    pub fn frame(&mut self, payload: &[u8]) -> Result<(), RemoteReadError> {
        let message =
            ChunkedReadResponse::decode(payload).map_err(|e| RemoteReadError::Protobuf {
                what: "a ChunkedReadResponse frame",
                reason: e.to_string(),
            })?;
        for chunked in message.chunked_series {
            self.begin(chunked.labels);
            // The chunks' headers count their samples: room for them at once, not by doubling,
            // keeps the result near its own 16 bytes per sample.
            let need: usize = chunked
                .chunks
                .iter()
                .filter(|c| c.max_time_ms >= self.lo && c.min_time_ms <= self.hi)
                .filter_map(|c| c.data.get(..2))
                .map(|h| usize::from(u16::from_be_bytes([h[0], h[1]])))
                .sum();
            let s = self.series.last_mut().expect("begun");
            s.timestamps.reserve_exact(need);
            s.values.reserve_exact(need);
            for chunk in &chunked.chunks {
                if chunk.r#type != ENCODING_XOR {
                    let series = self.series.last().expect("begun").labels.clone();
                    return Err(RemoteReadError::UnsupportedEncoding {
                        series,
                        encoding: chunk.r#type,
                        name: proto::encoding_name(chunk.r#type),
                    });
                }
                // A chunk wholly outside the range adds nothing: skip its decoding.
                if chunk.max_time_ms < self.lo || chunk.min_time_ms > self.hi {
                    continue;
                }
                let mut sink =
                    std::mem::take(&mut self.series.last_mut().expect("begun").timestamps);
                let mut values = std::mem::take(&mut self.series.last_mut().expect("begun").values);
                let before = sink.len();
                let decoded = decode_xor_chunk(&chunk.data, |t, v| {
                    if t >= self.lo && t <= self.hi && v.to_bits() != STALE_NAN_BITS {
                        sink.push(t);
                        values.push(if v.is_nan() { f64::NAN } else { v });
                    }
                });
                if before > 0 && sink.len() > before && sink[before] <= sink[before - 1] {
                    self.unsorted = true;
                }
                let s = self.series.last_mut().expect("begun");
                (s.timestamps, s.values) = (sink, values);
                if let Err(source) = decoded {
                    return Err(RemoteReadError::Chunk {
                        series: s.labels.clone(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Decodes a whole `SAMPLES` answer (snappy-compressed `ReadResponse`) into the series.
    pub fn samples_answer(&mut self, body: &[u8]) -> Result<(), RemoteReadError> {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(body)
            .map_err(|e| RemoteReadError::Snappy(e.to_string()))?;
        let message =
            ReadResponse::decode(raw.as_slice()).map_err(|e| RemoteReadError::Protobuf {
                what: "the ReadResponse",
                reason: e.to_string(),
            })?;
        drop(raw);
        for result in message.results {
            for ts in result.timeseries {
                let has_histograms = !ts.histograms.is_empty();
                self.begin(ts.labels);
                if has_histograms {
                    let labels = self.series.last().expect("begun").labels.clone();
                    if !self.histogram_series.contains(&labels) {
                        self.histogram_series.push(labels);
                    }
                }
                for sample in ts.samples {
                    self.add(sample.timestamp, sample.value);
                }
            }
        }
        Ok(())
    }

    /// The series with at least one sample, sorted by labels; and the series that held native
    /// histogram samples, which are not loaded.
    pub fn finish(mut self) -> (Vec<Series>, Vec<Labels>) {
        self.settle_last();
        let mut series: Vec<Series> = self
            .series
            .into_iter()
            .filter(|s| !s.timestamps.is_empty())
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        (series, self.histogram_series)
    }
}
