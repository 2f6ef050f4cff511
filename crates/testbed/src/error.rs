//! The testbed's errors, written for someone who just typed `cargo xtask demo` on a new machine.

use std::{io, path::PathBuf, time::Duration};

/// Everything that can go wrong while starting or querying the testbed.
///
/// Each message names the thing that failed and what to do about it, because the reader is usually
/// someone who just typed `cargo xtask demo` on a new machine.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error(
        "port {port}/{proto} for {purpose} is already in use on 127.0.0.1; stop whatever holds it \
         (`ss -lntup | grep :{port}` shows it) or choose another port"
    )]
    PortInUse {
        port: u16,
        proto: &'static str,
        purpose: &'static str,
    },

    #[error("{what} was not found: {advice}")]
    BinaryMissing { what: &'static str, advice: String },

    #[error(
        "the container runtime needs a Docker daemon, but none answers: {reason}. Start one \
         (`cargo xtask setup` starts dockerd where it is installed) or use the process runtime \
         (`--runtime processes`)"
    )]
    DockerUnavailable { reason: String },

    #[error(
        "image {image} is not present and could not be pulled: {reason}. Build it locally \
         (`cargo xtask setup` does, from the local binaries) and name it with {env_var}, or use \
         the process runtime"
    )]
    ImageUnavailable {
        image: String,
        env_var: &'static str,
        reason: String,
    },

    #[error("{server} exited during start-up ({status}); its last log lines:\n{log}")]
    ServerExited {
        server: &'static str,
        status: String,
        log: String,
    },

    #[error(
        "{what} did not happen within {timeout:?} ({detail}); last log lines of {server}:\n{log}"
    )]
    NotReady {
        what: String,
        timeout: Duration,
        detail: String,
        server: &'static str,
        log: String,
    },

    #[error("cannot read {}: {source}", path.display())]
    ReadConfig { path: PathBuf, source: io::Error },

    #[error("{} is not the {kind} the testbed expects: {problem}", path.display())]
    ConfigShape {
        path: PathBuf,
        kind: &'static str,
        problem: String,
    },

    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },

    #[cfg(feature = "containers")]
    #[error("{context}: {source}")]
    Container {
        context: String,
        source: testcontainers::TestcontainersError,
    },

    #[error("Prometheus query `{query}` failed: {detail}")]
    Query { query: String, detail: String },

    #[error("provisioning {what} failed: {detail}")]
    Provision { what: &'static str, detail: String },
}

impl TestbedError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |source| TestbedError::Io { context, source }
    }
}

pub type Result<T, E = TestbedError> = std::result::Result<T, E>;
