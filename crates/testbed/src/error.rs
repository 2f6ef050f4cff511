//! The testbed's errors, written for someone who just typed `cargo xtask demo` on a new machine.

use std::{io, path::PathBuf, time::Duration};

/// Everything that can go wrong while starting or querying the testbed.
///
/// Each message names the thing that failed and what to do about it, because the reader is usually
/// someone who just typed `cargo xtask demo` on a new machine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestbedError {
    /// A port the testbed was told to use is already bound on 127.0.0.1 by another process;
    /// from [`Ports::ensure_free`](crate::Ports::ensure_free). Free it, or pick other ports.
    #[error(
        "port {port}/{proto} for {purpose} is already in use on 127.0.0.1; stop whatever holds it \
         (`ss -lntup | grep :{port}` shows it) or choose another port"
    )]
    PortInUse {
        /// The port number.
        port: u16,
        /// `"udp"` or `"tcp"`.
        proto: &'static str,
        /// What the testbed wanted it for (`CoreDNS DNS`, `CoreDNS metrics`, `Prometheus`).
        purpose: &'static str,
    },

    /// A server binary is neither where an environment variable names it nor in the places
    /// [`locate`](crate::locate) looks; `cargo xtask setup` installs them.
    #[error("{what} was not found: {advice}")]
    BinaryMissing {
        /// Which binary (`the coredns binary`, `promtool`, ...).
        what: &'static str,
        /// Where it was looked for and how to provide it.
        advice: String,
    },

    /// The container runtime was chosen, but no Docker daemon answers. Start one, or use the
    /// process runtime.
    #[error(
        "the container runtime needs a Docker daemon, but none answers: {reason}. Start one \
         (`cargo xtask setup` starts dockerd where it is installed) or use the process runtime \
         (`--runtime processes`)"
    )]
    DockerUnavailable {
        /// Why the daemon could not be reached, as the Docker client says it.
        reason: String,
    },

    /// A server image is not in the local Docker store and could not be pulled (no network
    /// here); `cargo xtask setup` builds them from the local binaries.
    #[error(
        "image {image} is not present and could not be pulled: {reason}. Build it locally \
         (`cargo xtask setup` does, from the local binaries) and name it with {env_var}, or use \
         the process runtime"
    )]
    ImageUnavailable {
        /// The image reference (name and tag).
        image: String,
        /// The environment variable that names a locally built image instead.
        env_var: &'static str,
        /// Why pulling failed.
        reason: String,
    },

    /// A server process or container stopped before it was ready (a bad flag or configuration,
    /// a port taken meanwhile); its log says why.
    #[error("{server} exited during start-up ({status}); its last log lines:\n{log}")]
    ServerExited {
        /// Which server (`CoreDNS`, `Prometheus`, `thanos query`, ...).
        server: &'static str,
        /// Its exit status, as printed.
        status: String,
        /// Its last log lines (about 20).
        log: String,
    },

    /// A server started but did not become ready in time (Prometheus not scraping CoreDNS, an
    /// expected answer not appearing); the server's log is attached.
    #[error(
        "{what} did not happen within {timeout:?} ({detail}); last log lines of {server}:\n{log}"
    )]
    NotReady {
        /// The readiness condition awaited (e.g. Prometheus scraping CoreDNS).
        what: String,
        /// How long it was awaited.
        timeout: Duration,
        /// What was last seen instead (the last probe's answer or error).
        detail: String,
        /// The server whose log is shown.
        server: &'static str,
        /// That server's last log lines.
        log: String,
    },

    /// A configuration file (`Corefile`, `prometheus.yml`) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },

    /// A configuration file lacks what the testbed rewrites or needs (a port line, a plain
    /// rule-file name).
    #[error("{} is not the {kind} the testbed expects: {problem}", path.display())]
    ConfigShape {
        /// The file.
        path: PathBuf,
        /// Which kind of file it should be (`prometheus.yml`, `Corefile`).
        kind: &'static str,
        /// What is missing or unexpected in it.
        problem: String,
    },

    /// Any other I/O failure (spawning a process, writing a temporary file, ...).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The operating system's error.
        source: io::Error,
    },

    /// Starting, inspecting or stopping a container failed (feature `containers`).
    #[cfg(feature = "containers")]
    #[error("{context}: {source}")]
    Container {
        /// What was being done with the container.
        context: String,
        /// testcontainers' error.
        source: testcontainers::TestcontainersError,
    },

    /// A query to the testbed's Prometheus failed (no connection, an API error, an answer of
    /// an unexpected shape).
    #[error("Prometheus query `{query}` failed: {detail}")]
    Query {
        /// The PromQL sent.
        query: String,
        /// What went wrong.
        detail: String,
    },

    /// A set-up choice is not usable: a bad `$PROMLEARN_RUNTIME` or `$PROMLEARN_PROMETHEUS`
    /// value, a Thanos set-up without replicas, a scrape job with a client certificate but no
    /// HTTPS.
    #[error("provisioning {what} failed: {detail}")]
    Provision {
        /// Which choice (`the runtime choice`, `the Thanos set-up`, ...).
        what: &'static str,
        /// What is wrong with it and what to give instead.
        detail: String,
    },
}

impl TestbedError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |source| TestbedError::Io { context, source }
    }
}

/// `Result` with [`TestbedError`] as the default error.
pub type Result<T, E = TestbedError> = std::result::Result<T, E>;
