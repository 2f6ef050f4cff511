//! Provisioning a fresh machine that has only package registries: Debian's packages with apt,
//! CoreDNS built from the Go tool module in `xtask/tools/coredns/` into the tool cache, `dockerd` and local images made with
//! `docker import` (no image registry is reachable here).
//!
//! The testbed library only starts servers from binaries and images it is given; this module is
//! what gives them. Everything here is idempotent and quick when done: a found binary is used.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, bail};

use crate::steps::Step;

/// The CoreDNS release we build and test; the tool module `xtask/tools/coredns/` pins it. The
/// testbed's upstream image tag (`crates/testbed/src/containers.rs`) names the same release; the
/// tidy test keeps the three equal.
pub const COREDNS_VERSION: &str = "v1.15.0";
/// Tags of the images built here from the local binaries.
pub const COREDNS_LOCAL_IMAGE: &str = "promlearn-local/coredns:1.15.0";
pub const PROMETHEUS_LOCAL_IMAGE: &str = "promlearn-local/prometheus:local";
pub const PROMETHEUS3_LOCAL_IMAGE: &str = "promlearn-local/prometheus:3";

/// The variables the testbed reads (see `promlearn_testbed::locate`).
pub const COREDNS_BIN_ENV: &str = "COREDNS_BIN";
pub const PROMETHEUS_BIN_ENV: &str = "PROMETHEUS_BIN";
pub const COREDNS_IMAGE_ENV: &str = "COREDNS_IMAGE";
pub const PROMETHEUS_IMAGE_ENV: &str = "PROMETHEUS_IMAGE";
pub const PROMETHEUS3_IMAGE_ENV: &str = "PROMETHEUS3_IMAGE";

/// The tool cache: `$PROMLEARN_CACHE_DIR`, else `$XDG_CACHE_HOME/promlearn`, else
/// `~/.cache/promlearn` (the testbed looks for binaries in its `bin/`).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = env::var_os("PROMLEARN_CACHE_DIR") {
        return dir.into();
    }
    env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .unwrap_or_else(env::temp_dir)
        .join("promlearn")
}

/// `$VAR` (which must exist), else `name` on PATH, else `fallback` where it is a file.
pub fn locate(
    env_var: &str,
    name: &str,
    fallback: Option<PathBuf>,
) -> anyhow::Result<Option<PathBuf>> {
    if let Some(path) = env::var_os(env_var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "{env_var} names {}, but no file is there: unset it or point it at the {name} binary",
                path.display()
            );
        }
        return Ok(Some(path));
    }
    Ok(which::which(name)
        .ok()
        .or_else(|| fallback.filter(|p| p.is_file())))
}

fn cached_coredns() -> PathBuf {
    cache_dir().join("bin").join("coredns")
}

/// Debian's `prometheus` (it brings promtool), unless a binary is found.
pub fn ensure_prometheus(step: &Step) -> anyhow::Result<PathBuf> {
    if let Some(path) = locate(PROMETHEUS_BIN_ENV, "prometheus", None)? {
        return Ok(path);
    }
    apt_install(step, &["prometheus"])?;
    locate(PROMETHEUS_BIN_ENV, "prometheus", None)?
        .context("apt installed prometheus, but no `prometheus` binary is on PATH")
}

/// Installs the packages whose `binary` is missing; `(binary, package)` pairs.
pub fn ensure_packages(step: &Step, wanted: &[(&str, &str)]) -> anyhow::Result<Vec<String>> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(binary, _)| which::which(binary).is_err())
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        apt_install(step, &missing)?;
    }
    Ok(missing.iter().map(|p| p.to_string()).collect())
}

/// `apt-get update` then `apt-get install -y --no-install-recommends PACKAGES`, as root.
pub fn apt_install(step: &Step, packages: &[&str]) -> anyhow::Result<()> {
    if which::which("apt-get").is_err() {
        bail!(
            "apt-get is not available here: install {} with your system's package manager, \
             or name the binaries in PROMETHEUS_BIN / COREDNS_BIN",
            packages.join(", ")
        );
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "installing {} needs root: run `sudo apt-get install -y {}` once",
            packages.join(", "),
            packages.join(" ")
        );
    }
    let mut update = Command::new("apt-get");
    update.args(["update", "-q"]);
    step.run("apt-get update", update)?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    step.run(&format!("apt-get install {}", packages.join(" ")), install)
}

/// The Go tool module that pins CoreDNS with the tutorial's plugins only.
fn coredns_module() -> PathBuf {
    crate::repository_root()
        .join("xtask")
        .join("tools")
        .join("coredns")
}

/// CoreDNS built from the tool module `xtask/tools/coredns` into the tool cache, unless a binary
/// is found.
///
/// Only the plugins the tutorial's Corefile uses (`prometheus`, `whoami`): with an empty Go
/// module cache that is about a minute on 2 cores, where `go install` of the whole of CoreDNS
/// downloads every plugin's modules and takes four and a half.
pub fn ensure_coredns(step: &Step) -> anyhow::Result<PathBuf> {
    if let Some(path) = locate(COREDNS_BIN_ENV, "coredns", Some(cached_coredns()))? {
        return Ok(path);
    }
    let go = which::which("go").map_err(|_| {
        anyhow::anyhow!(
            "building CoreDNS needs the Go toolchain once: install Go 1.26 or newer, \
             or put a coredns binary on PATH (or name it in {COREDNS_BIN_ENV})"
        )
    })?;
    let versioned = cache_dir().join(format!("coredns-{COREDNS_VERSION}"));
    std::fs::create_dir_all(&versioned)
        .with_context(|| format!("creating {}", versioned.display()))?;
    let partial = versioned.join("coredns.partial");
    let mut command = Command::new(go);
    command
        .args(["build", "-v", "-o"])
        .arg(&partial)
        .arg(".")
        .current_dir(coredns_module())
        // A static binary runs in a bare imported image without libc.
        .env("CGO_ENABLED", "0");
    step.run(&format!("go build coredns {COREDNS_VERSION}"), command)?;
    let binary = versioned.join("coredns");
    std::fs::rename(&partial, &binary)
        .with_context(|| format!("moving {} to {}", partial.display(), binary.display()))?;
    let link = cached_coredns();
    std::fs::create_dir_all(link.parent().expect("has a parent"))?;
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&binary, &link)
        .with_context(|| format!("linking {}", link.display()))?;
    Ok(link)
}

/// Whether a Docker daemon answers; `Err` says why not.
pub fn docker_ping() -> Result<(), String> {
    let output = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map_err(|e| format!("the docker command could not run: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

pub fn docker_image_present(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Starts `dockerd` in the background (as root, installing Debian's docker.io if needed) unless
/// a daemon answers. Like a system service, it is left running for later runs.
pub fn ensure_docker_daemon(step: &Step) -> anyhow::Result<()> {
    if docker_ping().is_ok() {
        return Ok(());
    }
    if which::which("dockerd").is_err() {
        apt_install(step, &["docker.io"])?;
    }
    let log_path = cache_dir().join("dockerd.log");
    std::fs::create_dir_all(cache_dir())?;
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    step.message(&format!(
        "starting dockerd (its log: {})",
        log_path.display()
    ));
    let mut command = Command::new("dockerd");
    command
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Detached in its own process group: it must outlive this process, as a service would.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command.spawn().context("starting dockerd")?;
    for _ in 0..120 {
        if docker_ping().is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!(
        "dockerd did not answer within 60 s; see {}",
        log_path.display()
    )
}

/// Builds the local CoreDNS and Prometheus images with `docker import` from the binaries, laid out
/// as the upstream images are (`/coredns`, `/bin/prometheus`), so the container runtime passes the
/// same arguments to either. Skips an image that is present.
pub fn build_local_images(step: &Step, coredns: &Path, prometheus: &Path) -> anyhow::Result<()> {
    for (image, binary, inside, entrypoint) in [
        (
            COREDNS_LOCAL_IMAGE,
            coredns,
            "coredns",
            r#"ENTRYPOINT ["/coredns"]"#,
        ),
        (
            PROMETHEUS_LOCAL_IMAGE,
            prometheus,
            "bin/prometheus",
            r#"ENTRYPOINT ["/bin/prometheus"]"#,
        ),
    ] {
        import_image(step, image, binary, inside, entrypoint)?;
    }
    Ok(())
}

/// A Prometheus image (as upstream's: `/bin/prometheus`) made from `binary`, unless present.
pub fn build_prometheus_image(step: &Step, image: &str, binary: &Path) -> anyhow::Result<()> {
    import_image(
        step,
        image,
        binary,
        "bin/prometheus",
        r#"ENTRYPOINT ["/bin/prometheus"]"#,
    )
}

/// `docker import` of an image holding `binary` at `/inside`, unless the image is present.
fn import_image(
    step: &Step,
    image: &str,
    binary: &Path,
    inside: &str,
    entrypoint: &str,
) -> anyhow::Result<()> {
    if docker_image_present(image) {
        return Ok(());
    }
    step.message(&format!("building {image} from {}", binary.display()));
    let root = std::env::temp_dir().join(format!("promlearn-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    stage_binary_with_libraries(binary, &root, inside)?;
    for dir in ["etc/coredns", "etc/prometheus", "prometheus", "tmp"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    let script = format!(
        "tar -C {root} -c . | docker import --change '{entrypoint}' --change 'WORKDIR /' - {image}",
        root = root.display()
    );
    let mut command = Command::new("sh");
    command.args(["-c", &script]);
    let result = step.run(&format!("docker import {image}"), command);
    let _ = std::fs::remove_dir_all(&root);
    result
}

/// Copies `binary` to `root/inside`, with the shared libraries `ldd` names (a Go binary built with
/// cgo links libc; a static one needs nothing).
fn stage_binary_with_libraries(binary: &Path, root: &Path, inside: &str) -> anyhow::Result<()> {
    let copy = |from: &Path, to: &Path| -> anyhow::Result<()> {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, to)
            .map(|_| ())
            .with_context(|| format!("copying {} into an image", from.display()))
    };
    copy(&std::fs::canonicalize(binary)?, &root.join(inside))?;
    if let Ok(output) = Command::new("ldd").arg(binary).output() {
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
            let path = line
                .split("=>")
                .last()
                .and_then(|rest| rest.split_whitespace().next())
                .filter(|p| p.starts_with('/'));
            if let Some(path) = path {
                copy(Path::new(path), &root.join(path.trim_start_matches('/')))?;
            }
        }
    }
    Ok(())
}
