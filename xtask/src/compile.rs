//! Building the workspace's programs from xtask, as one step on screen.
//!
//! xtask itself depends on no library of the workspace, so `cargo xtask` starts in seconds and
//! can provision the machine while cargo compiles the program it will run.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

use crate::steps::Ui;

/// `cargo` as this xtask was run by, so the same toolchain builds everything.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// A binary to build: its package, its name, the cargo features to turn on.
pub struct Program<'a> {
    pub package: &'a str,
    pub bin: &'a str,
    pub features: Vec<&'a str>,
    pub release: bool,
}

/// Builds `program`, showing how many crates are compiled and which came last; cargo's own
/// output goes to the step's log (and its last lines on screen if the build fails).
pub fn build(ui: &Ui, program: &Program<'_>) -> anyhow::Result<PathBuf> {
    let step = ui.step("build")?;
    let mut command = cargo();
    command.args([
        "build",
        "--package",
        program.package,
        "--bin",
        program.bin,
        "--message-format=json-render-diagnostics",
    ]);
    if program.release {
        command.arg("--release");
    }
    if !program.features.is_empty() {
        command.args(["--features", &program.features.join(",")]);
    }
    let log = std::fs::File::create(ui.log_dir().join("build-cargo.log"))?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    let mut child = command.spawn().context("starting cargo build")?;
    let stdout = child.stdout.take().expect("piped");
    let mut compiled = 0usize;
    let mut executable = None;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact" {
            if message["fresh"] == false {
                compiled += 1;
            }
            let name = message["target"]["name"].as_str().unwrap_or("?");
            step.message(&format!("compiled {compiled} crates; last: {name}"));
            if let Some(path) = message["executable"].as_str()
                && message["target"]["name"] == program.bin
            {
                executable = Some(PathBuf::from(path));
            }
        }
    }
    let status = child.wait().context("waiting for cargo build")?;
    if !status.success() {
        let log_path = ui.log_dir().join("build-cargo.log");
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        step.abandon();
        bail!(
            "cargo build of {} failed ({status}); its last lines:\n{}\n  whole log: {}",
            program.bin,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            log_path.display()
        );
    }
    let executable = executable.context("cargo built nothing executable")?;
    step.done(&if compiled == 0 {
        format!("{} is up to date", program.bin)
    } else {
        format!("{} ({compiled} crates compiled)", program.bin)
    });
    Ok(executable)
}
