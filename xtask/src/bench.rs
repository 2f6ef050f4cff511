//! `cargo xtask bench [detect|dns|loader|train|watch]`: each benchmark measures ours and its peer
//! in one run.
//!
//! The Python peers (Keras; prometheus-api-client and tensorflow-io; pandas for NAB's own scorer)
//! are installed first when missing (`peers.rs`), and their Python is handed to the benchmarks in
//! `PROMLEARN_PEER_PYTHON`.

use anyhow::{Context, bail};

use crate::{compile, peers, setup, steps::Ui};

/// Keras, for the train benchmark (TensorFlow 2.16: the newest tensorflow-io 0.37.1 works with).
const KERAS: &[&str] = &["tensorflow-cpu==2.16.2", "keras==3.3.3", "numpy<2"];
/// The loader's Python peers, beside the same TensorFlow.
const LOADER_PEERS: &[&str] = &["tensorflow-io==0.37.1", "prometheus-api-client==0.7.2"];
/// What NAB's own Python scorer (`fixtures/nab/scorer`) needs, for the detect benchmark's
/// independent check of its figures.
const NAB_SCORER: &[&str] = &["pandas", "simplejson"];
/// Every benchmark, in the order `cargo xtask bench` runs them.
const ALL: [&str; 5] = ["detect", "dns", "loader", "train", "watch"];

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Which benchmarks to run (all when none is named)
    #[arg(value_parser = ALL)]
    which: Vec<String>,
    /// For `detect`: score only this detector (repeat for several; all when none is named)
    #[arg(long = "detector", value_name = "NAME")]
    detectors: Vec<String>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let which = if args.which.is_empty() {
        ALL.map(str::to_owned).to_vec()
    } else {
        args.which.clone()
    };
    let wants = |name: &str| which.iter().any(|w| w == name);
    // The peers first: without them no ratio can be measured, so a failure should come early.
    let mut packages = Vec::new();
    if wants("train") || wants("loader") {
        packages.extend_from_slice(KERAS);
    }
    if wants("loader") {
        packages.extend_from_slice(LOADER_PEERS);
    }
    if wants("detect") {
        packages.extend_from_slice(NAB_SCORER);
    }
    let python = if packages.is_empty() {
        None
    } else {
        Some(peers::ensure_python_peers(&packages)?)
    };
    // Servers only for the benchmarks that start them (train needs none).
    let provisioned = if wants("dns") || wants("loader") || wants("watch") {
        let ui = Ui::new(false)?;
        Some(setup::run(
            &ui,
            &setup::SetupArgs {
                no_docker: true,
                ..Default::default()
            },
        )?)
    } else {
        None
    };
    for name in which {
        let package = match name.as_str() {
            "dns" => "promlearn-dns",
            "loader" => "promlearn-loader",
            "watch" | "detect" => "promlearn-watch",
            _ => "promlearn-model",
        };
        let mut command = compile::cargo();
        command.args(["bench", "--package", package, "--bench", &name]);
        if name == "detect" {
            // The detection benchmark measures quality, not speed: the test build's profile
            // (whose numeric crates are optimised, `Cargo.toml`) saves a release build of the
            // whole service for figures that do not depend on it.
            command.args(["--profile", "dev"]);
            if !args.detectors.is_empty() {
                command.arg("--").args(&args.detectors);
            }
        }
        if let Some(provisioned) = &provisioned {
            provisioned.apply_env(&mut command);
        }
        if let Some(python) = &python {
            command.env(peers::PEER_PYTHON_ENV, python);
        }
        // The figures are the point: the bench's output goes to the screen as it comes.
        eprintln!("==> bench {name}");
        let status = command
            .status()
            .with_context(|| format!("starting cargo bench for {name}"))?;
        if !status.success() {
            bail!("bench {name} failed ({status})");
        }
    }
    Ok(())
}
