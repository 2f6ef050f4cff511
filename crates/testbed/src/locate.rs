//! Finding the server binaries the testbed is given: an environment variable, else PATH, else
//! the tool cache's `bin/` where `cargo xtask setup` puts what it builds. This crate never
//! installs anything; provisioning is xtask's (`xtask/src/provision.rs`).

use std::{
    env,
    path::{Path, PathBuf},
};

use crate::{Result, TestbedError};

/// Environment variables that override where things come from.
pub const COREDNS_BIN_ENV: &str = "COREDNS_BIN";
pub const PROMETHEUS_BIN_ENV: &str = "PROMETHEUS_BIN";
pub const COREDNS_IMAGE_ENV: &str = "COREDNS_IMAGE";
pub const PROMETHEUS_IMAGE_ENV: &str = "PROMETHEUS_IMAGE";
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
            "{}run `cargo xtask setup` (it builds CoreDNS with `go install` into the tool cache, {}), \
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

/// `promtool`, from beside the located prometheus binary or PATH.
pub fn promtool() -> Result<PathBuf> {
    let beside = prometheus()
        .ok()
        .and_then(|p| p.parent().map(|dir| dir.join("promtool")));
    locate("PROMTOOL_BIN", "promtool", beside).ok_or_else(|| TestbedError::BinaryMissing {
        what: "promtool",
        advice:
            "it ships with Prometheus: run `cargo xtask setup` or install Debian's `prometheus`"
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
