//! The query engines the loader is tested against besides Debian's Prometheus 2.42: Prometheus 3
//! from Debian's unstable suite (sid), fetched into the tool cache without touching the machine's
//! apt set-up, and Thanos built from the Go tool module in `xtask/tools/thanos/`. Also reads each
//! engine's version from its binary, for the line `cargo xtask e2e` ends with.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

use crate::{
    provision::{cache_dir, locate},
    steps::Step,
};

/// The variables the testbed and the loader's end-to-end tests read.
pub const PROMETHEUS3_BIN_ENV: &str = "PROMETHEUS3_BIN";
pub const THANOS_BIN_ENV: &str = "THANOS_BIN";
pub const VICTORIA_METRICS_BIN_ENV: &str = "VICTORIA_METRICS_BIN";
pub const NODE_EXPORTER_BIN_ENV: &str = "NODE_EXPORTER_BIN";

/// The Thanos release the tool module pins (its go.mod requires this version; the tidy test
/// keeps the two equal).
pub const THANOS_VERSION: &str = "0.40.1";
/// Build tags from Thanos's own `.promu.yml`. `slicelabels` is not optional: without it the
/// sidecar panics at the querier's first gRPC call (`makeslice: len out of range`), because Thanos
/// casts Prometheus's label sets in place and expects the slice layout.
const THANOS_TAGS: &str = "netgo,slicelabels";

/// The sid packages; `promtool` is its own package there (in bookworm it comes with prometheus).
const PROMETHEUS3_PACKAGES: &[&str] = &["prometheus", "promtool"];

/// Where Prometheus 3's packages are unpacked: `<cache>/prometheus3/usr/bin/{prometheus,promtool}`
/// (the testbed looks there too).
pub fn prometheus3_root() -> PathBuf {
    cache_dir().join("prometheus3")
}

fn cached_prometheus3() -> PathBuf {
    prometheus3_root()
        .join("usr")
        .join("bin")
        .join("prometheus")
}

fn cached_thanos() -> PathBuf {
    cache_dir()
        .join(format!("thanos-v{THANOS_VERSION}"))
        .join("thanos")
}

/// Prometheus 3 (`$PROMETHEUS3_BIN`, else the tool cache), fetched from Debian sid if missing.
/// Returns the binary and its version.
pub fn ensure_prometheus3(step: &Step) -> anyhow::Result<(PathBuf, String)> {
    let found = locate(
        PROMETHEUS3_BIN_ENV,
        "prometheus3",
        Some(cached_prometheus3()),
    )?;
    let binary = match found {
        Some(path) => path,
        None => {
            fetch_from_sid(step, PROMETHEUS3_PACKAGES, &prometheus3_root())?;
            cached_prometheus3()
        }
    };
    let version = binary_version(&binary)?;
    if !version.starts_with("3.") {
        bail!(
            "{} is Prometheus {version}, not 3.x: point {PROMETHEUS3_BIN_ENV} at a Prometheus 3 \
             binary, or remove {} so that set-up fetches Debian sid's again",
            binary.display(),
            prometheus3_root().display()
        );
    }
    Ok((binary, version))
}

/// A Debian archive the machine's apt already trusts: its URI and the keyring it is signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub uri: String,
    pub signed_by: Option<String>,
}

/// The Debian archive named in the machine's apt sources (deb822 `.sources` files or one-line
/// `.list` files), else Debian's own mirror with Debian's archive keyring.
fn machine_archive() -> Archive {
    let mut texts = Vec::new();
    let dir = Path::new("/etc/apt/sources.list.d");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files.insert(0, PathBuf::from("/etc/apt/sources.list"));
    for file in files {
        let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if (name.ends_with(".sources") || name.ends_with(".list"))
            && let Ok(text) = std::fs::read_to_string(&file)
        {
            texts.push((name.ends_with(".sources"), text));
        }
    }
    find_debian_archive(&texts).unwrap_or_else(|| Archive {
        uri: "http://deb.debian.org/debian".into(),
        signed_by: Some("/usr/share/keyrings/debian-archive-keyring.gpg".into())
            .filter(|k: &String| Path::new(k).is_file()),
    })
}

/// The first `deb` entry whose URI is a Debian archive (`…/debian`, not `…/debian-security`).
/// `texts` are `(is_deb822, contents)`.
pub fn find_debian_archive(texts: &[(bool, String)]) -> Option<Archive> {
    let is_archive = |uri: &str| uri.trim_end_matches('/').ends_with("/debian");
    for (deb822, text) in texts {
        if *deb822 {
            for stanza in text.split("\n\n") {
                let field = |name: &str| {
                    stanza.lines().find_map(|l| {
                        let (key, value) = l.split_once(':')?;
                        (key.trim().eq_ignore_ascii_case(name)).then(|| value.trim().to_owned())
                    })
                };
                let types = field("Types").unwrap_or_default();
                let enabled = field("Enabled").is_none_or(|v| v != "no");
                if !enabled || !types.split_whitespace().any(|t| t == "deb") {
                    continue;
                }
                let uris = field("URIs").unwrap_or_default();
                if let Some(uri) = uris.split_whitespace().find(|u| is_archive(u)) {
                    return Some(Archive {
                        uri: uri.to_owned(),
                        signed_by: field("Signed-By").filter(|k| k.starts_with('/')),
                    });
                }
            }
        } else {
            for line in text.lines().map(str::trim) {
                let Some(rest) = line.strip_prefix("deb ") else {
                    continue;
                };
                let (options, rest) = match rest.trim_start().strip_prefix('[') {
                    Some(inner) => inner.split_once(']').unwrap_or(("", "")),
                    None => ("", rest),
                };
                if let Some(uri) = rest.split_whitespace().next().filter(|u| is_archive(u)) {
                    let signed_by = options
                        .split_whitespace()
                        .find_map(|o| o.strip_prefix("signed-by="))
                        .map(str::to_owned);
                    return Some(Archive {
                        uri: uri.to_owned(),
                        signed_by,
                    });
                }
            }
        }
    }
    None
}

/// `apt-get download` of `packages` from suite sid through a sources folder, lists and archive
/// cache of the tool cache's own (the machine's sources, lists and installed packages stay as
/// they are), then `dpkg -x` of each into `root` (replaced whole once everything is unpacked).
fn fetch_from_sid(step: &Step, packages: &[&str], root: &Path) -> anyhow::Result<()> {
    for tool in ["apt-get", "dpkg"] {
        if which::which(tool).is_err() {
            bail!(
                "{tool} is not available here: fetching Prometheus 3 needs Debian's tools; \
                 install Prometheus 3 another way and name it in {PROMETHEUS3_BIN_ENV}"
            );
        }
    }
    let apt = cache_dir().join("apt-sid");
    let sources = apt.join("sources");
    let downloads = apt.join("downloads");
    for dir in [
        sources.clone(),
        apt.join("lists").join("partial"),
        apt.join("cache").join("archives").join("partial"),
    ] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let archive = machine_archive();
    let mut stanza = format!(
        "Types: deb\nURIs: {}\nSuites: sid\nComponents: main\n",
        archive.uri
    );
    if let Some(keyring) = &archive.signed_by {
        stanza.push_str(&format!("Signed-By: {keyring}\n"));
    }
    std::fs::write(sources.join("sid.sources"), stanza)?;
    let options = |command: &mut Command| {
        command
            .arg("-o")
            .arg("Dir::Etc::SourceList=/dev/null")
            .arg("-o")
            .arg(format!("Dir::Etc::SourceParts={}", sources.display()))
            .arg("-o")
            .arg(format!("Dir::State::Lists={}", apt.join("lists").display()))
            .arg("-o")
            .arg(format!("Dir::Cache={}", apt.join("cache").display()))
            // The files are ours (root's cache): apt's unprivileged `_apt` user cannot write them.
            .args(["-o", "APT::Sandbox::User=root"]);
    };
    let mut update = Command::new("apt-get");
    options(&mut update);
    update.args(["update", "-q"]);
    step.run(
        &format!("apt-get update (sid from {})", archive.uri),
        update,
    )?;

    let _ = std::fs::remove_dir_all(&downloads);
    std::fs::create_dir_all(&downloads)?;
    let mut download = Command::new("apt-get");
    options(&mut download);
    download
        .arg("download")
        .args(packages)
        .current_dir(&downloads);
    step.run(
        &format!("apt-get download {} (sid)", packages.join(" ")),
        download,
    )?;

    let staging = root.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&downloads)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    debs.sort();
    if debs.len() != packages.len() {
        bail!(
            "apt-get download brought {} .deb file(s) for {} package(s) into {}",
            debs.len(),
            packages.len(),
            downloads.display()
        );
    }
    for deb in &debs {
        let mut extract = Command::new("dpkg");
        extract.arg("-x").arg(deb).arg(&staging);
        step.run(&format!("dpkg -x {}", deb.display()), extract)?;
    }
    let _ = std::fs::remove_dir_all(root);
    std::fs::rename(&staging, root)
        .with_context(|| format!("moving {} to {}", staging.display(), root.display()))?;
    let _ = std::fs::remove_dir_all(&downloads);
    Ok(())
}

/// The tool module that pins Thanos and its dependencies.
fn thanos_module() -> PathBuf {
    crate::repository_root()
        .join("xtask")
        .join("tools")
        .join("thanos")
}

/// Thanos (`$THANOS_BIN`, else the tool cache), built from `xtask/tools/thanos` if missing.
/// Returns the binary and its version.
pub fn ensure_thanos(step: &Step) -> anyhow::Result<(PathBuf, String)> {
    let binary = match locate(THANOS_BIN_ENV, "thanos", Some(cached_thanos()))? {
        Some(path) => path,
        None => build_thanos(step)?,
    };
    let version = binary_version(&binary)?;
    Ok((binary, version))
}

fn build_thanos(step: &Step) -> anyhow::Result<PathBuf> {
    let go = which::which("go").map_err(|_| {
        anyhow::anyhow!(
            "building Thanos needs the Go toolchain once: install Go 1.25 or newer, or name a \
             thanos {THANOS_VERSION} binary in {THANOS_BIN_ENV}"
        )
    })?;
    let module = thanos_module();
    let go_sum = std::fs::read_to_string(module.join("go.sum"))
        .with_context(|| format!("reading {}", module.join("go.sum").display()))?;
    // No git checkout to take a revision from: the module hash go.sum pins names the source exactly.
    let revision = go_sum
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "github.com/thanos-io/thanos v{THANOS_VERSION} h1:"
            ))
            .map(|h| format!("h1:{h}"))
        })
        .unwrap_or_else(|| "unknown".into());
    let target = cached_thanos();
    let dir = target.parent().expect("a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let partial = dir.join("thanos.partial");
    // As Thanos's .promu.yml does (its `-a` left out: it would defeat Go's build cache).
    let version_package = "github.com/prometheus/common/version";
    let ldflags = [
        format!("-X {version_package}.Version={THANOS_VERSION}"),
        format!("-X {version_package}.Revision={revision}"),
        format!("-X {version_package}.Branch=v{THANOS_VERSION}"),
        format!("-X {version_package}.BuildUser=promlearn-xtask"),
        format!(
            "-X {version_package}.BuildDate={}",
            utc_build_date().unwrap_or_default()
        ),
    ]
    .join(" ");
    let mut command = Command::new(go);
    command
        .args([
            "build",
            "-v",
            "-tags",
            THANOS_TAGS,
            "-ldflags",
            &ldflags,
            "-o",
        ])
        .arg(&partial)
        .arg("github.com/thanos-io/thanos/cmd/thanos")
        .current_dir(&module)
        // Static (netgo, no cgo), as release binaries are.
        .env("CGO_ENABLED", "0");
    step.run(&format!("go build thanos v{THANOS_VERSION}"), command)?;
    std::fs::rename(&partial, &target)
        .with_context(|| format!("moving {} to {}", partial.display(), target.display()))?;
    let link = cache_dir().join("bin").join("thanos");
    std::fs::create_dir_all(link.parent().expect("a parent"))?;
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link)
        .with_context(|| format!("linking {}", link.display()))?;
    Ok(target)
}

/// `date -u +%Y%m%d-%H:%M:%S`, the layout promu writes.
fn utc_build_date() -> Option<String> {
    let out = Command::new("date")
        .args(["-u", "+%Y%m%d-%H:%M:%S"])
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The version a server binary reports (`prometheus, version 3.5.3+ds1 (branch: …` → `3.5.3`);
/// where the binary reports none (Debian's VictoriaMetrics prints an empty line), the version of
/// the Debian package that installed it.
pub fn binary_version(binary: &Path) -> anyhow::Result<String> {
    let flag = if binary
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("victoria"))
    {
        "-version"
    } else {
        "--version"
    };
    let output = Command::new(binary)
        .arg(flag)
        .output()
        .with_context(|| format!("running {} {flag}", binary.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if let Some(version) = parse_version(&text) {
        return Ok(version);
    }
    let real = std::fs::canonicalize(binary).unwrap_or_else(|_| binary.to_owned());
    let owner = Command::new("dpkg-query")
        .arg("-S")
        .arg(&real)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split(':').next().map(|p| p.trim().to_owned())
        });
    if let Some(package) = owner {
        let version = Command::new("dpkg-query")
            .args(["-W", "-f", "${Version}", &package])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .and_then(|v| parse_version(&format!("version {v}")));
        if let Some(version) = version {
            return Ok(version);
        }
    }
    bail!(
        "{} reports no version (`{flag}` printed {:?}), and no Debian package owns it",
        binary.display(),
        text.trim()
    )
}

/// The first `X.Y.Z` after the word `version` (or a `-vX.Y.Z`), without Debian's suffixes.
pub fn parse_version(text: &str) -> Option<String> {
    let candidates = text
        .split("version")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .chain(text.split("-v").skip(1));
    for word in candidates {
        let digits: String = word
            .trim_start_matches('v')
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let digits = digits.trim_end_matches('.');
        if digits.split('.').count() >= 2 && digits.split('.').all(|p| !p.is_empty()) {
            return Some(digits.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_as_the_binaries_print_them() {
        assert_eq!(
            parse_version(
                "prometheus, version 3.5.3+ds1 (branch: debian/sid, revision: 3.5.3+ds1-6)"
            )
            .as_deref(),
            Some("3.5.3")
        );
        assert_eq!(
            parse_version("prometheus, version 2.42.0+ds (branch: debian/sid)").as_deref(),
            Some("2.42.0")
        );
        assert_eq!(
            parse_version("thanos, version 0.40.1 (branch: v0.40.1, revision: h1:x)").as_deref(),
            Some("0.40.1")
        );
        assert_eq!(
            parse_version("version 1.79.5+ds1-2+b5").as_deref(),
            Some("1.79.5")
        );
        assert_eq!(
            parse_version("victoria-metrics-20230902-002838-tags-v1.93.4-0-g1").as_deref(),
            Some("1.93.4")
        );
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("version unknown"), None);
    }

    #[test]
    fn the_machines_debian_archive_is_found_in_either_format() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\
                      Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                      Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            find_debian_archive(&[(true, deb822.into())]),
            Some(Archive {
                uri: "http://mirror.example/debian".into(),
                signed_by: Some("/usr/share/keyrings/debian-archive-keyring.gpg".into()),
            })
        );
        let security_only = "Types: deb\nURIs: http://x/debian-security\nSuites: s\n";
        let one_line =
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://y/debian/ trixie main\n";
        assert_eq!(
            find_debian_archive(&[(true, security_only.into()), (false, one_line.into())]),
            Some(Archive {
                uri: "http://y/debian/".into(),
                signed_by: Some("/k.gpg".into()),
            })
        );
        assert_eq!(
            find_debian_archive(&[(false, "deb http://z/ubuntu noble main\n".into())]),
            None
        );
    }

    #[test]
    fn the_thanos_release_is_the_one_the_tool_module_pins() {
        let go_mod = std::fs::read_to_string(thanos_module().join("go.mod")).unwrap();
        assert!(
            go_mod.contains(&format!("github.com/thanos-io/thanos v{THANOS_VERSION}")),
            "xtask/tools/thanos/go.mod pins another Thanos than THANOS_VERSION {THANOS_VERSION}"
        );
        assert!(go_mod.contains("tool github.com/thanos-io/thanos/cmd/thanos"));
        assert!(THANOS_TAGS.contains("slicelabels"));
    }
}
