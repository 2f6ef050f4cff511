//! `cargo xtask e2e`: set-up, then every test suite, the doctests and the demo's checks on each
//! runtime. Every step runs even when one fails, so that one CI run shows every failure.

use std::process::Command;

use anyhow::{Context, bail};

use crate::{
    compile::{self, Program},
    engines,
    setup::{self, Provisioned, SetupArgs},
    steps::Ui,
};

#[derive(clap::Args)]
pub struct E2eArgs {
    /// Runtimes to run the end-to-end tests on, comma-separated
    #[arg(long, default_value = "processes,containers", value_delimiter = ',')]
    runtimes: Vec<String>,
    /// Skip running the demo's checks after the test suites
    #[arg(long)]
    skip_demo: bool,
    /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter
    #[arg(last = true)]
    cargo_test_args: Vec<String>,
}

pub fn run(args: E2eArgs) -> anyhow::Result<()> {
    let ui = Ui::new(false)?;
    let want_docker = args.runtimes.iter().any(|r| r.trim() == "containers");
    let provisioned = setup::run(
        &ui,
        &SetupArgs {
            no_docker: !want_docker,
            demo_only: false,
        },
    )?;
    let mut failed = Vec::new();
    // The browser test writes how many checks it ran; an old count must not stand for this run.
    let browser_checks = browser_checks_file();
    let _ = std::fs::remove_file(&browser_checks);
    let mut tests = compile::cargo();
    tests
        .args([
            "test",
            "--workspace",
            "--lib",
            "--bins",
            "--tests",
            "--no-fail-fast",
            "--",
            "--include-ignored",
        ])
        .args(&args.cargo_test_args)
        .env("PROMLEARN_E2E_RUNTIMES", args.runtimes.join(","));
    provisioned.apply_env(&mut tests);
    if let Err(e) = run_step("cargo test (unit, integration and end-to-end)", tests) {
        failed.push(format!("{e:#}"));
    }
    let browser_line = match browser_line(&browser_checks) {
        Ok(line) => Some(line),
        Err(e) if args.cargo_test_args.is_empty() => {
            failed.push(format!("the browser test: {e:#}"));
            None
        }
        Err(_) => None, // Filtered out.
    };
    if let Some(line) = &browser_line {
        eprintln!("{line}");
    }
    // Benchmarks are left out (they run long, in `cargo xtask bench`); doctests run on their own.
    let mut doc = compile::cargo();
    doc.args(["test", "--workspace", "--doc", "--no-fail-fast"]);
    provisioned.apply_env(&mut doc);
    if let Err(e) = run_step("cargo test --doc", doc) {
        failed.push(format!("{e:#}"));
    }
    if !args.skip_demo
        && let Err(e) = demo_checks(&ui, &provisioned, &args.runtimes)
    {
        failed.push(format!("{e:#}"));
    }
    // The last line: what the loader's end-to-end tests ran against, as the binaries say.
    let engines_line = engines_tested(&provisioned)
        .map_err(|e| failed.push(format!("reading the engines' versions: {e:#}")))
        .ok();
    if failed.is_empty() {
        eprintln!("e2e: every step passed");
        if let Some(line) = browser_line {
            eprintln!("{line}");
        }
        eprintln!("{}", engines_line.unwrap_or_default());
        Ok(())
    } else {
        bail!(
            "{} step(s) failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        )
    }
}

/// `engines tested: prometheus 2.42.0, prometheus 3.5.3, thanos 0.40.1 (query over 2 replicas),
/// victoria-metrics 1.79.5`, each version read from the binary the tests were given.
fn engines_tested(provisioned: &Provisioned) -> anyhow::Result<String> {
    let engines = provisioned
        .engines
        .as_ref()
        .context("set-up provided no Prometheus 3 / Thanos / VictoriaMetrics")?;
    Ok(format!(
        "engines tested: prometheus {}, prometheus {}, thanos {} (query over 2 replicas), \
         victoria-metrics {}",
        engines::binary_version(&provisioned.prometheus)?,
        engines::binary_version(&engines.prometheus3.0)?,
        engines::binary_version(&engines.thanos.0)?,
        engines::binary_version(&engines.victoria_metrics)?,
    ))
}

/// Where the browser test (crates/cli/tests/browser.rs) writes how many checks passed: beside
/// its screenshots.
fn browser_checks_file() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::repository_root().join("target"));
    target.join("browser").join("checks")
}

/// `browser: chromium <version>: <N> checks passed`: N as the test counted the checks that ran,
/// the version as the binary says it.
fn browser_line(checks: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(checks)
        .with_context(|| format!("it wrote no count to {}", checks.display()))?;
    let passed: u64 = text
        .trim()
        .parse()
        .with_context(|| format!("{}: `{}` is not a count", checks.display(), text.trim()))?;
    let chromium = which::which("chromium").context("no `chromium` on PATH")?;
    let out = Command::new(&chromium)
        .arg("--version")
        .output()
        .context("running chromium --version")?;
    // "Chromium 156.0.8078.129 built on Debian GNU/Linux 12 (bookworm)"
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .with_context(|| format!("chromium --version said `{}`", text.trim()))?;
    Ok(format!(
        "browser: chromium {version}: {passed} checks passed"
    ))
}

/// The demo, run as a test on each runtime with `--check` (the facts read back from Prometheus);
/// the anomaly run once, as it does not depend on the runtime.
fn demo_checks(ui: &Ui, provisioned: &Provisioned, runtimes: &[String]) -> anyhow::Result<()> {
    let demo = compile::build(
        ui,
        &Program {
            package: "promlearn-demo",
            bin: "promlearn-demo",
            features: vec!["containers"],
            release: false,
        },
    )?;
    let mut failures = Vec::new();
    for (i, runtime) in runtimes.iter().enumerate() {
        let mut command = Command::new(&demo);
        command.args([
            "--check",
            "--quiet",
            "--ephemeral-ports",
            "--runtime",
            runtime,
        ]);
        if i == 0 {
            command.arg("--anomaly");
        }
        provisioned.apply_env(&mut command);
        let what = format!(
            "demo checks on {runtime}{}",
            if i == 0 {
                " (with the anomaly run)"
            } else {
                ""
            }
        );
        if let Err(e) = run_step(&what, command) {
            failures.push(format!("{e:#}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("{}", failures.join("; "))
    }
}

/// Runs a command with its output on screen (tests print their own progress), failing with its
/// name if it fails.
pub fn run_step(what: &str, mut command: Command) -> anyhow::Result<()> {
    eprintln!("==> {what}");
    let status = command
        .status()
        .map_err(|e| anyhow::anyhow!("starting {what}: {e}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
