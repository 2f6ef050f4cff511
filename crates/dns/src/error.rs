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
    /// A query name is empty, not valid DNS syntax, or longer than 255 bytes on the wire;
    /// found before anything is sent. Fix the name.
    #[error("bad domain name `{name}`: {reason}")]
    BadName {
        /// The name as the caller gave it.
        name: String,
        /// Why it was refused (hickory's parse error, or its wire length).
        reason: String,
    },

    /// A record type that is neither a known mnemonic nor `TYPE<number>` (the text as given).
    #[error("unknown record type `{0}` (try A, AAAA, MX, TXT, SRV, ... or TYPE65280)")]
    BadRecordType(String),

    /// A DNS class name that hickory does not know (the text as given).
    #[error("unknown DNS class `{0}` (try IN, CH or HS)")]
    BadClass(String),

    /// A load profile that does not parse or is out of range; see [`ProfileError`].
    #[error("bad load profile: {0}")]
    Profile(#[from] ProfileError),

    /// A load configuration or option that cannot run (a zero bound, an empty or bad name or
    /// type mix, an unknown transport); the text says which value and what to use instead.
    #[error("bad load configuration: {0}")]
    BadConfig(String),

    /// No answer came before the query's time-out. The server may be down, overloaded or
    /// dropping packets; retry, or raise the time-out.
    #[error("no answer from {server} over {transport} within {timeout:?}")]
    Timeout {
        /// The server that did not answer.
        server: SocketAddr,
        /// `"UDP"` or `"TCP"`.
        transport: &'static str,
        /// The query's time-out ([`Query::timeout`](crate::Query::timeout)), which ran out.
        timeout: Duration,
    },

    /// The connection was refused or reset (for UDP: an ICMP port unreachable): nothing
    /// listens on that address and port. Check the server is running and the port is right.
    #[error("{server} refused {transport} ({source}): is a DNS server listening there?")]
    Unreachable {
        /// The address that refused.
        server: SocketAddr,
        /// `"UDP"` or `"TCP"`.
        transport: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// Any other I/O failure (binding a socket, a broken connection).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `binding a UDP socket`.
        context: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The server sent bytes that are not a DNS answer (too short, undecodable, or a query
    /// rather than a response).
    #[error("malformed answer from {server}: {reason}")]
    Malformed {
        /// The server that sent it.
        server: SocketAddr,
        /// What is wrong with it.
        reason: String,
    },
}

impl DnsError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> DnsError {
        move |source| DnsError::Io {
            context: context.into(),
            source,
        }
    }
}
