//! DNS traffic for test servers, on hickory: dig-like single queries and bounded load with a
//! known shape, so that a model has rhythms to learn and events to find.
//!
//! - [`Query`] sends one query as `dig` does and returns an [`Answer`] that prints as dig prints.
//! - [`LoadConfig`] sends load that follows a [`Profile`] (constant, ramp, sine or compressed
//!   day, with spikes and bursts), over a weighted [`NameMix`] and [`TypeMix`], and returns a
//!   [`LoadReport`] with answers by [`Rcode`], time-outs and latency percentiles.
//!
//! Every load run is bounded by a query count and a duration, and has no cache between it and
//! the server: each query is a fresh packet to the server.
//!
//! ```
//! use std::time::Duration;
//! use promlearn_dns::{LoadConfig, Profile};
//!
//! // A compressed day of 60 s with a five-fold spike at 30 s, at most 20k queries and 70 s.
//! let profile: Profile = "day:base=200,amp=150,period=60s+spike:at=30s,len=3s,x=5".parse()?;
//! assert_eq!(profile.rate_at(Duration::ZERO), 50.0); // midnight
//! let load = LoadConfig::new("127.0.0.1:9053".parse()?, profile, 20_000, Duration::from_secs(70));
//! load.validate()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod dig;
mod error;
mod load;
mod profile;
mod query;
mod rcode;
mod wire;

/// hickory's protocol types (`Message`, `RecordType`, `DNSClass`, `Name`, ...), as used in this API.
pub use hickory_resolver::proto;

pub use error::DnsError;
pub use load::{Latency, LoadConfig, LoadProgress, LoadReport, NameMix, NamePattern, TypeMix};
pub use profile::{Event, Profile, ProfileError, Shape};
pub use query::{
    Answer, DEFAULT_EDNS_PAYLOAD, Query, SectionCounts, Transport, parse_class, parse_name,
    parse_record_type,
};
pub use rcode::Rcode;
