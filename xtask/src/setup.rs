//! `cargo xtask setup`: everything a fresh machine needs before the tests or the demo can run,
//! one step per line on screen, the commands' output in `target/xtask/logs/`.

use std::{path::PathBuf, process::Command, thread};

use crate::{
    provision::{self, COREDNS_IMAGE_ENV, PROMETHEUS_IMAGE_ENV},
    steps::Ui,
};

#[derive(clap::Args, Clone, Default)]
pub struct SetupArgs {
    /// Skip Docker (the tests then run on the process runtime only)
    #[arg(long)]
    pub no_docker: bool,
    /// Only what the demo needs (Prometheus and CoreDNS), not the tests' tools
    #[arg(long)]
    pub demo_only: bool,
}

/// What set-up found or made, to hand to the commands that follow.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub coredns: PathBuf,
    pub prometheus: PathBuf,
    /// `(variable, image)` pairs naming locally built images.
    pub image_env: Vec<(&'static str, String)>,
}

impl Provisioned {
    /// Names the binaries and images in `command`'s environment, where the testbed looks.
    pub fn apply_env(&self, command: &mut Command) {
        command.env(provision::COREDNS_BIN_ENV, &self.coredns);
        command.env(provision::PROMETHEUS_BIN_ENV, &self.prometheus);
        for (name, value) in &self.image_env {
            command.env(name, value);
        }
    }
}

/// Debian packages the tests and benchmarks call besides Prometheus: `dig` to compare our
/// dig-like print with, `dnsperf` as the DNS load peer, VictoriaMetrics as a second query API,
/// `openssl` to make a throw-away CA for the TLS tests.
const TOOL_PACKAGES: &[(&str, &str)] = &[
    ("dig", "dnsutils"),
    ("dnsperf", "dnsperf"),
    ("victoria-metrics", "victoria-metrics"),
    ("openssl", "openssl"),
];

/// Runs the set-up. apt (Debian packages) and `go install` (CoreDNS) run side by side: one
/// waits on the network, the other mostly on the CPU.
pub fn run(ui: &Ui, args: &SetupArgs) -> anyhow::Result<Provisioned> {
    let apt_ui = ui.clone();
    let demo_only = args.demo_only;
    let packages = thread::spawn(move || -> anyhow::Result<PathBuf> {
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
                            "dig, dnsperf, victoria-metrics, openssl: present".to_owned()
                        } else {
                            format!("installed {}", installed.join(", "))
                        };
                        Ok(((), summary))
                    })?;
                }
                Ok(prometheus)
            })
    });
    let coredns = ui.step("coredns")?.finish_with(|step| {
        let path = provision::ensure_coredns(step)?;
        Ok((path.clone(), path.display().to_string()))
    });
    let prometheus = packages
        .join()
        .map_err(|_| anyhow::anyhow!("the apt step panicked"))?;
    let (coredns, prometheus) = (coredns?, prometheus?);

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
            Ok((
                (),
                format!(
                    "daemon up; images {} and {}",
                    provision::COREDNS_LOCAL_IMAGE,
                    provision::PROMETHEUS_LOCAL_IMAGE
                ),
            ))
        })?;
        image_env.extend(local_images);
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
        image_env,
    })
}
