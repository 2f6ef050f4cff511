//! Finding, building and installing the real servers on a machine that has only package registries.
//!
//! CoreDNS is built with `go install` from the Go module proxy into a cache that outlives the
//! checkout; Prometheus comes from Debian's package. Where Docker is wanted, the same binaries
//! become local images, because no image registry may be reachable.

use std::{
    env,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

use crate::{Result, TestbedError};

/// The CoreDNS release we build and test: the newest whose go.mod lets `go install` work.
pub const COREDNS_VERSION: &str = "v1.15.0";
/// The upstream image used on machines that can pull it.
pub const COREDNS_UPSTREAM_IMAGE: &str = "coredns/coredns:1.15.0";
/// Prometheus as Debian bookworm ships it (and as CI tests it); upstream image of the same release.
pub const PROMETHEUS_UPSTREAM_IMAGE: &str = "prom/prometheus:v2.42.0";
/// Tags for images built here from local binaries by [`build_local_images`].
pub const COREDNS_LOCAL_IMAGE: &str = "promlearn-local/coredns:1.15.0";
pub const PROMETHEUS_LOCAL_IMAGE: &str = "promlearn-local/prometheus:local";

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
    cache_dir()
        .join(format!("coredns-{COREDNS_VERSION}"))
        .join("coredns")
}

/// The image names the container runtime uses: the environment's, else upstream's.
pub fn coredns_image() -> String {
    env::var(COREDNS_IMAGE_ENV).unwrap_or_else(|_| COREDNS_UPSTREAM_IMAGE.into())
}

pub fn prometheus_image() -> String {
    env::var(PROMETHEUS_IMAGE_ENV).unwrap_or_else(|_| PROMETHEUS_UPSTREAM_IMAGE.into())
}

/// `$COREDNS_BIN`, else `coredns` on PATH, else the tool cache.
pub fn locate_coredns() -> Result<PathBuf> {
    locate(COREDNS_BIN_ENV, "coredns", Some(cached_coredns())).ok_or_else(|| TestbedError::BinaryMissing {
        what: "the coredns binary",
        advice: format!(
            "{}run `cargo xtask setup` (it builds CoreDNS {COREDNS_VERSION} with `go install` into {}), \
             put `coredns` on PATH, or set {COREDNS_BIN_ENV}",
            named_but_missing(COREDNS_BIN_ENV),
            cached_coredns().display()
        ),
    })
}

/// `$PROMETHEUS_BIN`, else `prometheus` on PATH.
pub fn locate_prometheus() -> Result<PathBuf> {
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
pub fn locate_promtool() -> Result<PathBuf> {
    let beside = locate_prometheus()
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

/// Builds CoreDNS with `go install` into the tool cache unless a binary is already found.
///
/// The first build downloads and compiles a few hundred modules (minutes); `progress` receives
/// each package as Go builds it.
pub async fn ensure_coredns(progress: Progress<'_>) -> Result<PathBuf> {
    if let Ok(path) = locate_coredns() {
        progress(&format!("CoreDNS: using {}", path.display()));
        return Ok(path);
    }
    let go = which::which("go").map_err(|_| TestbedError::BinaryMissing {
        what: "the Go toolchain (needed once, to build CoreDNS)",
        advice: "install Go 1.26 or newer (https://go.dev/doc/install, or Debian's golang-go if new enough), \
                 or put a coredns binary on PATH"
            .into(),
    })?;
    let target_dir = cached_coredns()
        .parent()
        .expect("cache path has a parent")
        .to_owned();
    progress(&format!(
        "CoreDNS: building {COREDNS_VERSION} with `go install` into {} (first time only; a few minutes)",
        target_dir.display()
    ));
    let mut command = Command::new(go);
    command
        .args([
            "install",
            "-v",
            &format!("github.com/coredns/coredns@{COREDNS_VERSION}"),
        ])
        .env("GOBIN", &target_dir)
        // A static binary runs in a bare imported image without libc.
        .env("CGO_ENABLED", "0");
    run_streaming("go install of CoreDNS", command, progress).await?;
    locate_coredns()
}

/// Installs Debian's `prometheus` package (it brings promtool) unless a binary is already found.
pub async fn ensure_prometheus(progress: Progress<'_>) -> Result<PathBuf> {
    if let Ok(path) = locate_prometheus() {
        progress(&format!("Prometheus: using {}", path.display()));
        return Ok(path);
    }
    apt_install(&["prometheus"], progress).await?;
    locate_prometheus()
}

/// `apt-get update` then `apt-get install -y --no-install-recommends PACKAGES`, as root.
pub async fn apt_install(packages: &[&str], progress: Progress<'_>) -> Result<()> {
    let what = "Debian packages";
    if which::which("apt-get").is_err() {
        return Err(TestbedError::Provision {
            what,
            detail: format!(
                "apt-get is not available here; install {} with your system's package manager",
                packages.join(", ")
            ),
        });
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(TestbedError::Provision {
            what,
            detail: format!(
                "installing {} needs root; run `sudo apt-get install -y {}` once",
                packages.join(", "),
                packages.join(" ")
            ),
        });
    }
    progress(&format!(
        "apt: updating package lists to install {}",
        packages.join(", ")
    ));
    let mut update = Command::new("apt-get");
    update.args(["update", "-q"]);
    run_streaming("apt-get update", update, progress).await?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run_streaming("apt-get install", install, progress).await
}

async fn run_streaming(
    what: &'static str,
    mut command: Command,
    progress: Progress<'_>,
) -> Result<()> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| TestbedError::Provision {
        what,
        detail: format!("could not start it: {e}"),
    })?;
    let mut out = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut err = BufReader::new(child.stderr.take().expect("piped")).lines();
    let mut tail = std::collections::VecDeque::new();
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        let line = tokio::select! {
            line = out.next_line(), if out_open => line.ok().flatten().or_else(|| { out_open = false; None }),
            line = err.next_line(), if err_open => line.ok().flatten().or_else(|| { err_open = false; None }),
        };
        if let Some(line) = line {
            progress(&line);
            if tail.len() == 20 {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
    let status = child.wait().await.map_err(|e| TestbedError::Provision {
        what,
        detail: e.to_string(),
    })?;
    if !status.success() {
        return Err(TestbedError::Provision {
            what,
            detail: format!(
                "{status}; its last lines:\n{}",
                tail.into_iter().collect::<Vec<_>>().join("\n")
            ),
        });
    }
    Ok(())
}

/// Whether a Docker daemon answers; `Err` says why not.
pub async fn docker_ping() -> std::result::Result<(), String> {
    let docker = bollard::Docker::connect_with_local_defaults().map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(3), docker.ping()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the daemon did not answer a ping within 3 s".into()),
    }
}

/// Whether `image` is present in the local Docker image store.
pub async fn docker_image_present(image: &str) -> bool {
    let Ok(docker) = bollard::Docker::connect_with_local_defaults() else {
        return false;
    };
    docker.inspect_image(image).await.is_ok()
}

/// Pulls `image` from its registry, giving up after two minutes.
pub async fn docker_pull(image: &str) -> std::result::Result<(), String> {
    use futures_util::StreamExt;
    let docker = bollard::Docker::connect_with_local_defaults().map_err(|e| e.to_string())?;
    let options = bollard::query_parameters::CreateImageOptions {
        from_image: Some(image.to_owned()),
        ..Default::default()
    };
    let pull = async {
        let mut stream = docker.create_image(Some(options), None, None);
        while let Some(step) = stream.next().await {
            step.map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(120), pull)
        .await
        .map_err(|_| "the pull did not finish within 120 s".to_owned())?
}

/// Starts `dockerd` in the background (as root, where it is installed) unless a daemon answers.
///
/// The daemon is machine set-up, like a system service: it is left running for later runs.
pub async fn ensure_docker_daemon(progress: Progress<'_>) -> Result<()> {
    if docker_ping().await.is_ok() {
        progress("Docker: the daemon answers");
        return Ok(());
    }
    if which::which("dockerd").is_err() {
        apt_install(&["docker.io"], progress).await?;
    }
    let log_path = cache_dir().join("dockerd.log");
    std::fs::create_dir_all(cache_dir()).map_err(TestbedError::io("creating the tool cache"))?;
    let log = std::fs::File::create(&log_path).map_err(TestbedError::io("creating dockerd.log"))?;
    progress(&format!(
        "Docker: starting dockerd (log: {})",
        log_path.display()
    ));
    let mut command = std::process::Command::new("dockerd");
    command
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(TestbedError::io("opening dockerd.log"))?,
        )
        .stderr(log);
    // Detached in its own session: it must outlive this process, as a service would.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command.spawn().map_err(|e| TestbedError::Provision {
        what: "the Docker daemon",
        detail: format!("could not start dockerd: {e}"),
    })?;
    for _ in 0..120 {
        if docker_ping().await.is_ok() {
            progress("Docker: the daemon answers");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(TestbedError::Provision {
        what: "the Docker daemon",
        detail: format!(
            "dockerd did not answer within 60 s; see {}",
            log_path.display()
        ),
    })
}

/// Builds [`COREDNS_LOCAL_IMAGE`] and [`PROMETHEUS_LOCAL_IMAGE`] with `docker import` from the
/// local binaries, laid out as the upstream images are (`/coredns`, `/bin/prometheus`), so the
/// container runtime passes the same arguments to either. Skips an image that is present.
pub async fn build_local_images(progress: Progress<'_>) -> Result<()> {
    let coredns = locate_coredns()?;
    let prometheus = locate_prometheus()?;
    for (image, binary, inside, entrypoint) in [
        (
            COREDNS_LOCAL_IMAGE,
            &coredns,
            "coredns",
            r#"ENTRYPOINT ["/coredns"]"#,
        ),
        (
            PROMETHEUS_LOCAL_IMAGE,
            &prometheus,
            "bin/prometheus",
            r#"ENTRYPOINT ["/bin/prometheus"]"#,
        ),
    ] {
        if docker_image_present(image).await {
            progress(&format!("Docker: image {image} is present"));
            continue;
        }
        progress(&format!(
            "Docker: building {image} from {}",
            binary.display()
        ));
        let root =
            tempfile::tempdir().map_err(TestbedError::io("creating an image staging directory"))?;
        stage_binary_with_libraries(binary, root.path(), inside)?;
        for dir in ["etc/coredns", "etc/prometheus", "prometheus", "tmp"] {
            std::fs::create_dir_all(root.path().join(dir))
                .map_err(TestbedError::io("staging an image"))?;
        }
        let script = format!(
            "tar -C {root} -c . | docker import --change '{entrypoint}' --change 'WORKDIR /' - {image}",
            root = root.path().display()
        );
        let mut command = Command::new("sh");
        command.args(["-c", &script]);
        run_streaming("docker import", command, progress).await?;
    }
    Ok(())
}

/// Copies `binary` to `root/inside`, with the shared libraries `ldd` names (a Go binary built with
/// cgo links libc; a static one needs nothing).
fn stage_binary_with_libraries(binary: &Path, root: &Path, inside: &str) -> Result<()> {
    let copy = |from: &Path, to: &Path| -> Result<()> {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(TestbedError::io("staging an image"))?;
        }
        std::fs::copy(from, to)
            .map(|_| ())
            .map_err(TestbedError::io(format!(
                "copying {} into an image",
                from.display()
            )))
    };
    copy(binary, &root.join(inside))?;
    let ldd = std::process::Command::new("ldd").arg(binary).output();
    if let Ok(output) = ldd {
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
