//! The DNS crate's errors: what failed, against which server, and what to do.

use std::{io, net::SocketAddr, time::Duration};

use crate::profile::ProfileError;

/// Everything that can go wrong before or while talking to a DNS server.
///
/// A load run reports per-query trouble (time-outs, refused packets) in its
/// [`LoadReport`](crate::LoadReport) instead: only problems that stop the whole
/// run come back as a `DnsError`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    #[error("bad domain name `{name}`: {reason}")]
    BadName { name: String, reason: String },

    #[error("unknown record type `{0}` (try A, AAAA, MX, TXT, SRV, ... or TYPE65280)")]
    BadRecordType(String),

    #[error("unknown DNS class `{0}` (try IN, CH or HS)")]
    BadClass(String),

    #[error("bad load profile: {0}")]
    Profile(#[from] ProfileError),

    #[error("bad load configuration: {0}")]
    BadConfig(String),

    #[error("no answer from {server} over {transport} within {timeout:?}")]
    Timeout {
        server: SocketAddr,
        transport: &'static str,
        timeout: Duration,
    },

    #[error("{server} refused {transport} ({source}): is a DNS server listening there?")]
    Unreachable {
        server: SocketAddr,
        transport: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("malformed answer from {server}: {reason}")]
    Malformed { server: SocketAddr, reason: String },
}

impl DnsError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> DnsError {
        move |source| DnsError::Io {
            context: context.into(),
            source,
        }
    }
}
