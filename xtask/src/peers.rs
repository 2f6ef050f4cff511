//! The benchmarks' Python peers (Keras, prometheus-api-client, tensorflow-io): one virtual
//! environment in the tool cache, filled from PyPI with pip the first time a benchmark needs it.
//!
//! The first install says so on screen and writes pip's output to a log file whose path it prints
//! (TensorFlow takes a few minutes and about 1.5 GB); a stamp file in the venv lists the
//! requirements installed, so later calls return at once. Only `std::process` is used.

use std::{
    env,
    fs::{self, File},
    io::{BufRead, BufReader, IsTerminal},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

/// The variable through which the benchmarks receive the peers' Python.
pub const PEER_PYTHON_ENV: &str = "PROMLEARN_PEER_PYTHON";
/// Names the Python that creates the venv, where the one found on PATH will not do.
pub const BASE_PYTHON_ENV: &str = "PROMLEARN_BASE_PYTHON";
/// The requirements installed so far, one per line, written only after pip succeeded.
const STAMP: &str = "promlearn-requirements.txt";
/// Pythons for which tensorflow-cpu 2.16 has wheels (3.9 to 3.12).
const PYTHON_MINORS: std::ops::RangeInclusive<u32> = 9..=12;

/// Makes sure the peers' venv holds `packages` (pip requirement specifiers such as
/// `tensorflow-cpu==2.16.2`) and returns its Python. Idempotent; fast when nothing is missing.
pub fn ensure_python_peers(packages: &[&str]) -> anyhow::Result<PathBuf> {
    let cache = crate::provision::cache_dir();
    let venv = cache.join("peers-venv");
    let python = venv.join("bin").join("python");
    if python.exists() && missing(&venv, packages).is_empty() {
        return Ok(python);
    }
    fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    // One installer at a time: a second `cargo xtask bench` waits here, then finds all installed.
    let lock_path = cache.join("peers-venv.lock");
    let lock =
        File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    if !python.exists() {
        let _ = fs::remove_file(venv.join(STAMP));
    }
    let missing = missing(&venv, packages);
    if python.exists() && missing.is_empty() {
        return Ok(python);
    }

    let log_path = cache.join("peers-venv.log");
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    eprintln!(
        "peers: installing {} from PyPI into {} (once: a few minutes, and about 1.5 GB with TensorFlow); \
         log: {}",
        missing.join(" "),
        venv.display(),
        log_path.display()
    );
    let started = Instant::now();
    let spinner = Spinner::start("peers");

    if !python.exists() {
        let base = base_python()?;
        let mut command = Command::new(&base);
        command.args(["-m", "venv", "--clear"]).arg(&venv);
        run_logged(command, &log, &log_path, "creating the venv", &spinner)?;
    }
    // Everything asked for so far goes to pip together, so that its resolver keeps them compatible.
    let mut wanted = installed(&venv);
    wanted.extend(missing.iter().map(|p| p.to_string()));
    let mut command = Command::new(&python);
    command
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .args(&wanted);
    run_logged(command, &log, &log_path, "pip install", &spinner)?;
    fs::write(venv.join(STAMP), wanted.join("\n") + "\n")
        .with_context(|| format!("writing {}", venv.join(STAMP).display()))?;

    spinner.stop();
    eprintln!(
        "peers: ready in {:.0} s; the venv holds {:.2} GB",
        started.elapsed().as_secs_f64(),
        dir_size(&venv) as f64 / 1e9
    );
    Ok(python)
}

fn installed(venv: &Path) -> Vec<String> {
    fs::read_to_string(venv.join(STAMP))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn missing<'a>(venv: &Path, packages: &[&'a str]) -> Vec<&'a str> {
    let installed = installed(venv);
    packages
        .iter()
        .copied()
        .filter(|p| !installed.iter().any(|i| i == p))
        .collect()
}

/// `$PROMLEARN_BASE_PYTHON`, else the first of python3, python3.12 ... python3.9 on PATH whose
/// version TensorFlow has wheels for.
fn base_python() -> anyhow::Result<PathBuf> {
    if let Some(named) = env::var_os(BASE_PYTHON_ENV) {
        return Ok(named.into());
    }
    let mut seen = Vec::new();
    let candidates = std::iter::once("python3".to_owned())
        .chain(PYTHON_MINORS.rev().map(|m| format!("python3.{m}")));
    for name in candidates {
        let Ok(out) = Command::new(&name)
            .args(["-c", "import sys; print(sys.version_info[1])"])
            .stderr(Stdio::null())
            .output()
        else {
            continue;
        };
        let minor = String::from_utf8_lossy(&out.stdout).trim().parse::<u32>();
        match minor {
            Ok(m) if out.status.success() && PYTHON_MINORS.contains(&m) => return Ok(name.into()),
            Ok(m) => seen.push(format!("{name} is 3.{m}")),
            Err(_) => {}
        }
    }
    bail!(
        "the benchmarks' Python peers need Python 3.{}-3.{} (tensorflow-cpu 2.16 has wheels for \
         those only), and none is on PATH{}; install one, or name it in {BASE_PYTHON_ENV}",
        PYTHON_MINORS.start(),
        PYTHON_MINORS.end(),
        if seen.is_empty() {
            String::new()
        } else {
            format!(" ({})", seen.join(", "))
        }
    )
}

/// Runs `command` with its output appended to the log; on failure shows the log's last lines.
fn run_logged(
    mut command: Command,
    log: &File,
    log_path: &Path,
    what: &str,
    spinner: &Spinner,
) -> anyhow::Result<()> {
    spinner.message(what);
    let status = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .status()
        .with_context(|| format!("starting {what} ({:?})", command.get_program()))?;
    if status.success() {
        return Ok(());
    }
    spinner.stop();
    let lines: Vec<String> = File::open(log_path)
        .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect())
        .unwrap_or_default();
    let tail = &lines[lines.len().saturating_sub(15)..];
    eprintln!("peers: {what} failed ({status}); the last lines of its log:");
    for line in tail {
        eprintln!("    {line}");
    }
    bail!(
        "installing the benchmarks' Python peers failed at {what}; full log: {}",
        log_path.display()
    )
}

/// Bytes under `dir` (files and symlinks themselves, not what links point to).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// A spinner with elapsed time on a terminal; nothing on a log (the start line says enough).
struct Spinner(Option<ProgressBar>);

impl Spinner {
    fn start(prefix: &'static str) -> Spinner {
        Spinner(std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix}: {wide_msg} [{elapsed}]")
                    .expect("valid template"),
            );
            bar.set_prefix(prefix);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        }))
    }

    fn message(&self, line: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(line.to_owned());
        }
    }

    fn stop(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
