//! Finding the server binaries the testbed is given: an environment variable, else PATH, else
//! the tool cache's `bin/` where `cargo xtask setup` puts what it builds. This crate never
//! installs anything; provisioning is xtask's (`xtask/src/provision.rs`).

use std::{
    env,
    path::{Path, PathBuf},
};

use crate::{Result, TestbedError};

/// Environment variables that override where things come from.
/// This one: the path of the `coredns` binary, instead of PATH and the tool cache.
pub const COREDNS_BIN_ENV: &str = "COREDNS_BIN";
/// The path of the Prometheus 2.x binary, instead of PATH and the tool cache.
pub const PROMETHEUS_BIN_ENV: &str = "PROMETHEUS_BIN";
/// The CoreDNS image for the container runtime (e.g. one `cargo xtask setup` built), instead of upstream's.
pub const COREDNS_IMAGE_ENV: &str = "COREDNS_IMAGE";
/// The Prometheus 2.x image for the container runtime, instead of upstream's.
pub const PROMETHEUS_IMAGE_ENV: &str = "PROMETHEUS_IMAGE";
/// Prometheus 3, beside Debian's 2.x (`cargo xtask setup` fetches Debian sid's into the tool cache).
pub const PROMETHEUS3_BIN_ENV: &str = "PROMETHEUS3_BIN";
/// The Prometheus 3.x image for the container runtime, instead of upstream's.
pub const PROMETHEUS3_IMAGE_ENV: &str = "PROMETHEUS3_IMAGE";
/// Thanos (`cargo xtask setup` builds it from `xtask/tools/thanos` into the tool cache).
pub const THANOS_BIN_ENV: &str = "THANOS_BIN";
/// The VictoriaMetrics single-node binary ([`victoria_metrics`]).
pub const VICTORIA_METRICS_BIN_ENV: &str = "VICTORIA_METRICS_BIN";
/// The node_exporter binary ([`node_exporter`]).
pub const NODE_EXPORTER_BIN_ENV: &str = "NODE_EXPORTER_BIN";
/// The tool cache's directory, instead of `$XDG_CACHE_HOME/promlearn` (see [`cache_dir`]).
pub const CACHE_DIR_ENV: &str = "PROMLEARN_CACHE_DIR";

/// A sink for progress lines, so a caller can show them in a spinner, a log, or not at all.
pub type Progress<'a> = &'a mut (dyn FnMut(&str) + Send);

/// Where built tools live: `$PROMLEARN_CACHE_DIR`, else `$XDG_CACHE_HOME/promlearn`, else `~/.cache/promlearn`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = env::var_os(CACHE_DIR_ENV) {
        return dir.into();
    }
    let base = env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .unwrap_or_else(env::temp_dir);
    base.join("promlearn")
}

fn cached_coredns() -> PathBuf {
    cache_dir().join("bin").join("coredns")
}

/// `$COREDNS_BIN`, else `coredns` on PATH, else the tool cache.
pub fn coredns() -> Result<PathBuf> {
    locate(COREDNS_BIN_ENV, "coredns", Some(cached_coredns())).ok_or_else(|| TestbedError::BinaryMissing {
        what: "the coredns binary",
        advice: format!(
            "{}run `cargo xtask setup` (it builds CoreDNS from its Go tool module into the tool cache, {}), \
             put `coredns` on PATH, or set {COREDNS_BIN_ENV}",
            named_but_missing(COREDNS_BIN_ENV),
            cached_coredns().display()
        ),
    })
}

/// `$PROMETHEUS_BIN`, else `prometheus` on PATH.
pub fn prometheus() -> Result<PathBuf> {
    locate(PROMETHEUS_BIN_ENV, "prometheus", None).ok_or_else(|| TestbedError::BinaryMissing {
        what: "the prometheus binary",
        advice: format!(
            "{}run `cargo xtask setup` (it installs Debian's `prometheus` package), install Prometheus \
             another way and put it on PATH, or set {PROMETHEUS_BIN_ENV}",
            named_but_missing(PROMETHEUS_BIN_ENV)
        ),
    })
}

/// Where `cargo xtask setup` unpacks Debian sid's Prometheus 3: `<cache>/prometheus3/usr/bin/prometheus`.
fn cached_prometheus3() -> PathBuf {
    cache_dir()
        .join("prometheus3")
        .join("usr")
        .join("bin")
        .join("prometheus")
}

/// `$PROMETHEUS3_BIN`, else the tool cache. Not PATH: `prometheus` there is usually Debian's 2.x.
pub fn prometheus3() -> Result<PathBuf> {
    locate(
        PROMETHEUS3_BIN_ENV,
        "prometheus3",
        Some(cached_prometheus3()),
    )
    .ok_or_else(|| TestbedError::BinaryMissing {
        what: "the Prometheus 3 binary",
        advice: format!(
            "{}run `cargo xtask setup` (it fetches Debian sid's `prometheus` and `promtool` \
                 into {}), or set {PROMETHEUS3_BIN_ENV} to a Prometheus 3 binary",
            named_but_missing(PROMETHEUS3_BIN_ENV),
            cached_prometheus3().display()
        ),
    })
}

/// The Prometheus binary of `release`: [`prometheus`] or [`prometheus3`].
pub fn prometheus_of(release: crate::PrometheusRelease) -> Result<PathBuf> {
    match release {
        crate::PrometheusRelease::V2 => prometheus(),
        crate::PrometheusRelease::V3 => prometheus3(),
    }
}

fn cached_thanos() -> PathBuf {
    cache_dir().join("bin").join("thanos")
}

/// `$THANOS_BIN`, else `thanos` on PATH, else the tool cache.
pub fn thanos() -> Result<PathBuf> {
    locate(THANOS_BIN_ENV, "thanos", Some(cached_thanos())).ok_or_else(|| {
        TestbedError::BinaryMissing {
            what: "the thanos binary",
            advice: format!(
                "{}run `cargo xtask setup` (it builds Thanos from xtask/tools/thanos into {}), \
                 or set {THANOS_BIN_ENV}",
                named_but_missing(THANOS_BIN_ENV),
                cached_thanos().display()
            ),
        }
    })
}

/// `$VICTORIA_METRICS_BIN`, else `victoria-metrics` on PATH (Debian's package).
pub fn victoria_metrics() -> Result<PathBuf> {
    locate(VICTORIA_METRICS_BIN_ENV, "victoria-metrics", None).ok_or_else(|| {
        TestbedError::BinaryMissing {
            what: "the victoria-metrics binary",
            advice: format!(
                "{}run `cargo xtask setup` (it installs Debian's `victoria-metrics`), or set \
                 {VICTORIA_METRICS_BIN_ENV}",
                named_but_missing(VICTORIA_METRICS_BIN_ENV)
            ),
        }
    })
}

/// `$NODE_EXPORTER_BIN`, else `prometheus-node-exporter` (Debian's name) or `node_exporter` on PATH.
pub fn node_exporter() -> Result<PathBuf> {
    locate(NODE_EXPORTER_BIN_ENV, "prometheus-node-exporter", None)
        .or_else(|| {
            env::var_os(NODE_EXPORTER_BIN_ENV)
                .is_none()
                .then(|| which::which("node_exporter").ok())
                .flatten()
        })
        .ok_or_else(|| TestbedError::BinaryMissing {
            what: "the node_exporter binary",
            advice: format!(
                "{}run `cargo xtask setup` (it installs Debian's `prometheus-node-exporter`), or set \
                 {NODE_EXPORTER_BIN_ENV}",
                named_but_missing(NODE_EXPORTER_BIN_ENV)
            ),
        })
}

/// `promtool`, from beside the located prometheus binary or PATH.
pub fn promtool() -> Result<PathBuf> {
    promtool_of(crate::PrometheusRelease::V2)
}

/// The `promtool` of `release`: beside its prometheus binary (`$PROMTOOL_BIN` or PATH for 2.x).
pub fn promtool_of(release: crate::PrometheusRelease) -> Result<PathBuf> {
    let beside = prometheus_of(release)
        .ok()
        .and_then(|p| p.parent().map(|dir| dir.join("promtool")));
    let found = match release {
        crate::PrometheusRelease::V2 => locate("PROMTOOL_BIN", "promtool", beside),
        crate::PrometheusRelease::V3 => beside.filter(|p| p.is_file()),
    };
    found.ok_or_else(|| TestbedError::BinaryMissing {
        what: "promtool",
        advice: "it ships with Prometheus (Debian sid packages it apart, as `promtool`): run \
                 `cargo xtask setup` or install Debian's `prometheus`"
            .into(),
    })
}

fn named_but_missing(env_var: &str) -> String {
    match env::var_os(env_var).filter(|p| !p.is_empty()) {
        Some(path) => format!(
            "{env_var} names {}, but no file is there; ",
            Path::new(&path).display()
        ),
        None => String::new(),
    }
}

fn locate(env_var: &str, name: &str, fallback: Option<PathBuf>) -> Option<PathBuf> {
    // A variable that names a missing file finds nothing: silently using another binary than
    // the one asked for would be worse than the error.
    if let Some(path) = env::var_os(env_var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    which::which(name)
        .ok()
        .or_else(|| fallback.filter(|path| path.is_file()))
}
