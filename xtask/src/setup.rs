//! `cargo xtask setup`: everything a fresh machine needs before the tests or the demo can run,
//! one step per line on screen, the commands' output in `target/xtask/logs/`.

use std::{path::PathBuf, process::Command, thread};

use anyhow::Context;

use crate::{
    engines,
    provision::{self, COREDNS_IMAGE_ENV, PROMETHEUS_IMAGE_ENV},
    steps::Ui,
};

#[derive(clap::Args, Clone, Default)]
pub struct SetupArgs {
    /// Skip Docker (the tests then run on the process runtime only)
    #[arg(long)]
    pub no_docker: bool,
    /// Only what the demo needs (Prometheus and CoreDNS), not the tests' tools and engines
    #[arg(long)]
    pub demo_only: bool,
}

/// The engines besides Prometheus 2 that the loader's end-to-end tests run against, with the
/// versions their binaries report.
#[derive(Debug, Clone)]
pub struct Engines {
    pub prometheus3: (PathBuf, String),
    pub thanos: (PathBuf, String),
    pub victoria_metrics: PathBuf,
    /// Debian's node_exporter, which the node preset's end-to-end test scrapes.
    pub node_exporter: PathBuf,
}

/// What set-up found or made, to hand to the commands that follow.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub coredns: PathBuf,
    pub prometheus: PathBuf,
    /// Prometheus 3 and Thanos; `None` with `--demo-only`.
    pub engines: Option<Engines>,
    /// `(variable, image)` pairs naming locally built images.
    pub image_env: Vec<(&'static str, String)>,
}

impl Provisioned {
    /// Names the binaries and images in `command`'s environment, where the testbed looks.
    pub fn apply_env(&self, command: &mut Command) {
        command.env(provision::COREDNS_BIN_ENV, &self.coredns);
        command.env(provision::PROMETHEUS_BIN_ENV, &self.prometheus);
        if let Some(engines) = &self.engines {
            command.env(engines::PROMETHEUS3_BIN_ENV, &engines.prometheus3.0);
            command.env(engines::THANOS_BIN_ENV, &engines.thanos.0);
            command.env(engines::VICTORIA_METRICS_BIN_ENV, &engines.victoria_metrics);
            command.env(engines::NODE_EXPORTER_BIN_ENV, &engines.node_exporter);
        }
        for (name, value) in &self.image_env {
            command.env(name, value);
        }
        for (env, binary) in [
            (CHROMIUM_BIN_ENV, "chromium"),
            (CHROMEDRIVER_BIN_ENV, "chromedriver"),
        ] {
            if let Ok(path) = which::which(binary) {
                command.env(env, path);
            }
        }
    }
}

/// Debian packages the tests and benchmarks call besides Prometheus: `dig` to compare our
/// dig-like print with, `dnsperf` as the DNS load peer, VictoriaMetrics as a second query API,
/// `openssl` to make a throw-away CA for the TLS tests, node_exporter for the watch's node
/// preset, headless Chromium and its WebDriver for the web page's browser test.
const TOOL_PACKAGES: &[(&str, &str)] = &[
    ("dig", "dnsutils"),
    ("dnsperf", "dnsperf"),
    ("victoria-metrics", "victoria-metrics"),
    ("openssl", "openssl"),
    ("prometheus-node-exporter", "prometheus-node-exporter"),
    ("chromium", "chromium"),
    ("chromedriver", "chromium-driver"),
];

/// Where the browser test finds Chromium and its WebDriver.
pub const CHROMIUM_BIN_ENV: &str = "PROMLEARN_CHROMIUM_BIN";
pub const CHROMEDRIVER_BIN_ENV: &str = "PROMLEARN_CHROMEDRIVER_BIN";

/// Prometheus 3 (binary, version), VictoriaMetrics and node_exporter, from the apt thread.
type AptEngines = ((PathBuf, String), PathBuf, PathBuf);

/// Runs the set-up. apt (Debian packages) and `go build` (CoreDNS, from its tool module) run
/// side by side: one waits on the network, the other mostly on the CPU.
pub fn run(ui: &Ui, args: &SetupArgs) -> anyhow::Result<Provisioned> {
    let apt_ui = ui.clone();
    let demo_only = args.demo_only;
    let packages = thread::spawn(move || -> anyhow::Result<(PathBuf, Option<AptEngines>)> {
        apt_ui
            .step("prometheus")?
            .finish_with(|step| {
                let path = provision::ensure_prometheus(step)?;
                let summary = path.display().to_string();
                Ok((path, summary))
            })
            .and_then(|prometheus| {
                if !demo_only {
                    apt_ui.step("tools")?.finish_with(|step| {
                        let installed = provision::ensure_packages(step, TOOL_PACKAGES)?;
                        let summary = if installed.is_empty() {
                            "dig, dnsperf, victoria-metrics, openssl, node_exporter, chromium: \
                             present"
                                .to_owned()
                        } else {
                            format!("installed {}", installed.join(", "))
                        };
                        Ok(((), summary))
                    })?;
                    // After the machine's apt: the network is free, and no two apt-gets overlap.
                    let prometheus3 = apt_ui.step("prometheus3")?.finish_with(|step| {
                        let (path, version) = engines::ensure_prometheus3(step)?;
                        let summary = format!("{} ({version})", path.display());
                        Ok(((path, version), summary))
                    })?;
                    let victoria_metrics = provision::locate(
                        engines::VICTORIA_METRICS_BIN_ENV,
                        "victoria-metrics",
                        None,
                    )?
                    .context("apt installed victoria-metrics, but no `victoria-metrics` binary is on PATH")?;
                    let node_exporter = provision::locate(
                        engines::NODE_EXPORTER_BIN_ENV,
                        "prometheus-node-exporter",
                        None,
                    )?
                    .context("apt installed prometheus-node-exporter, but no `prometheus-node-exporter` binary is on PATH")?;
                    return Ok((
                        prometheus,
                        Some((prometheus3, victoria_metrics, node_exporter)),
                    ));
                }
                Ok((prometheus, None))
            })
    });
    let coredns = ui.step("coredns")?.finish_with(|step| {
        let path = provision::ensure_coredns(step)?;
        Ok((path.clone(), path.display().to_string()))
    });
    // Thanos after CoreDNS: both are Go builds that want every core.
    let thanos = match (&coredns, args.demo_only) {
        (Ok(_), false) => Some(ui.step("thanos")?.finish_with(|step| {
            let (path, version) = engines::ensure_thanos(step)?;
            let summary = format!("{} ({version})", path.display());
            Ok(((path, version), summary))
        })),
        _ => None,
    };
    let packages = packages
        .join()
        .map_err(|_| anyhow::anyhow!("the apt step panicked"))?;
    let (coredns, (prometheus, prometheus3)) = (coredns?, packages?);
    let engines = match (prometheus3, thanos.transpose()?) {
        (Some((prometheus3, victoria_metrics, node_exporter)), Some(thanos)) => Some(Engines {
            prometheus3,
            thanos,
            victoria_metrics,
            node_exporter,
        }),
        _ => None,
    };

    let mut image_env = Vec::new();
    let overridden = std::env::var_os(COREDNS_IMAGE_ENV).is_some()
        || std::env::var_os(PROMETHEUS_IMAGE_ENV).is_some();
    let local_images = [
        (COREDNS_IMAGE_ENV, provision::COREDNS_LOCAL_IMAGE.to_owned()),
        (
            PROMETHEUS_IMAGE_ENV,
            provision::PROMETHEUS_LOCAL_IMAGE.to_owned(),
        ),
    ];
    if !args.no_docker && !overridden {
        ui.step("docker")?.finish_with(|step| {
            provision::ensure_docker_daemon(step)?;
            // No registry may be reachable: images made from the binaries stand in for upstream's.
            provision::build_local_images(step, &coredns, &prometheus)?;
            if let Some(engines) = &engines {
                provision::build_prometheus_image(
                    step,
                    provision::PROMETHEUS3_LOCAL_IMAGE,
                    &engines.prometheus3.0,
                )?;
            }
            Ok((
                (),
                format!(
                    "daemon up; images {}, {}{}",
                    provision::COREDNS_LOCAL_IMAGE,
                    provision::PROMETHEUS_LOCAL_IMAGE,
                    if engines.is_some() {
                        format!(", {}", provision::PROMETHEUS3_LOCAL_IMAGE)
                    } else {
                        String::new()
                    }
                ),
            ))
        })?;
        image_env.extend(local_images);
        if engines.is_some() {
            image_env.push((
                provision::PROMETHEUS3_IMAGE_ENV,
                provision::PROMETHEUS3_LOCAL_IMAGE.to_owned(),
            ));
        }
    } else if !overridden
        && provision::docker_ping().is_ok()
        && provision::docker_image_present(provision::COREDNS_LOCAL_IMAGE)
        && provision::docker_image_present(provision::PROMETHEUS_LOCAL_IMAGE)
    {
        // Docker was not asked for, but where it runs with images built earlier, `auto` may use them.
        image_env.extend(local_images);
    }
    Ok(Provisioned {
        coredns,
        prometheus,
        engines,
        image_env,
    })
}
