//! Provisioning: everything a fresh machine needs before the tests or the demo can run.

use std::{io::IsTerminal, path::PathBuf, process::Command, time::Duration};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use promlearn_testbed::provision;

#[derive(clap::Args, Default)]
pub struct SetupArgs {
    /// Skip Docker (the tests then run on the process runtime only)
    #[arg(long)]
    pub no_docker: bool,
    /// Print nothing unless something fails
    #[arg(long)]
    pub quiet: bool,
}

/// What set-up found or made, to hand to the commands that follow.
pub struct Provisioned {
    pub coredns: PathBuf,
    pub prometheus: PathBuf,
    /// `(variable, image)` pairs naming locally built images, when no upstream image is present.
    pub image_env: Vec<(&'static str, String)>,
}

impl Provisioned {
    pub fn apply_env(&self, command: &mut Command) {
        command.env(provision::COREDNS_BIN_ENV, &self.coredns);
        command.env(provision::PROMETHEUS_BIN_ENV, &self.prometheus);
        for (name, value) in &self.image_env {
            command.env(name, value);
        }
    }

    /// The same choices for a testbed started in this process.
    pub fn apply_to(&self, config: &mut promlearn_testbed::TestbedConfig) {
        config.coredns_bin = Some(self.coredns.clone());
        config.prometheus_bin = Some(self.prometheus.clone());
        for (name, value) in &self.image_env {
            match *name {
                provision::COREDNS_IMAGE_ENV => config.coredns_image = Some(value.clone()),
                _ => config.prometheus_image = Some(value.clone()),
            }
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

pub async fn run(args: &SetupArgs) -> anyhow::Result<Provisioned> {
    let spinner = Status::new("setup", args.quiet);
    let mut progress = |line: &str| spinner.message(line);

    let prometheus = provision::ensure_prometheus(&mut progress).await?;
    spinner.println(format!("  prometheus   {}", prometheus.display()));
    let missing: Vec<&str> = TOOL_PACKAGES
        .iter()
        .filter(|(binary, _)| which::which(binary).is_err())
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        provision::apt_install(&missing, &mut progress).await?;
    }
    spinner.println("  dig, dnsperf, victoria-metrics, openssl: installed");

    if provision::locate_coredns().is_err() {
        spinner.println(format!(
            "  coredns      building {} with `go install` (first time only, a few minutes on 2 cores; cached in {})",
            provision::COREDNS_VERSION,
            provision::cache_dir().display()
        ));
    }
    let coredns = provision::ensure_coredns(&mut progress).await?;
    spinner.println(format!("  coredns      {}", coredns.display()));

    let mut image_env = Vec::new();
    let upstream_present = || async {
        provision::docker_image_present(provision::COREDNS_UPSTREAM_IMAGE).await
            && provision::docker_image_present(provision::PROMETHEUS_UPSTREAM_IMAGE).await
    };
    let local_images = [
        (
            provision::COREDNS_IMAGE_ENV,
            provision::COREDNS_LOCAL_IMAGE.to_owned(),
        ),
        (
            provision::PROMETHEUS_IMAGE_ENV,
            provision::PROMETHEUS_LOCAL_IMAGE.to_owned(),
        ),
    ];
    let overridden = std::env::var_os(provision::COREDNS_IMAGE_ENV).is_some();
    if !args.no_docker {
        provision::ensure_docker_daemon(&mut progress).await?;
        if !overridden && !upstream_present().await {
            // No registry may be reachable: images made from the binaries above stand in for upstream's.
            provision::build_local_images(&mut progress).await?;
            image_env.extend(local_images);
        }
        spinner.println(format!(
            "  docker       daemon up; images {} and {}",
            image_env
                .first()
                .map_or(provision::coredns_image(), |(_, i)| i.clone()),
            image_env
                .get(1)
                .map_or(provision::prometheus_image(), |(_, i)| i.clone()),
        ));
    } else if !overridden
        && provision::docker_ping().await.is_ok()
        && !upstream_present().await
        && provision::docker_image_present(provision::COREDNS_LOCAL_IMAGE).await
        && provision::docker_image_present(provision::PROMETHEUS_LOCAL_IMAGE).await
    {
        // Docker was not asked for, but where it runs with images built earlier, `auto` may use them.
        image_env.extend(local_images);
    }
    spinner.finish("set-up done");
    Ok(Provisioned {
        coredns,
        prometheus,
        image_env,
    })
}

/// Progress for long steps: a spinner on a terminal; plain lines on a log such as CI's, where a
/// spinner would show nothing at all.
pub struct Status {
    prefix: &'static str,
    spinner: Option<ProgressBar>,
}

impl Status {
    pub fn new(prefix: &'static str, quiet: bool) -> Status {
        if quiet {
            return Status {
                prefix,
                spinner: Some(ProgressBar::hidden()),
            };
        }
        let spinner = std::io::stderr().is_terminal().then(|| {
            let spinner = ProgressBar::new_spinner();
            spinner.set_style(
                ProgressStyle::with_template("{spinner} {prefix}: {wide_msg} [{elapsed}]")
                    .expect("valid template"),
            );
            spinner.set_prefix(prefix);
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner
        });
        Status { prefix, spinner }
    }

    /// A passing detail: the spinner's text, or a log line.
    pub fn message(&self, line: &str) {
        match &self.spinner {
            Some(spinner) => spinner.set_message(line.chars().take(150).collect::<String>()),
            None => eprintln!("{}: {line}", self.prefix),
        }
    }

    /// A line that stays on screen.
    pub fn println(&self, line: impl AsRef<str>) {
        match &self.spinner {
            Some(spinner) => spinner.println(line.as_ref()),
            None => eprintln!("{}", line.as_ref()),
        }
    }

    pub fn finish(&self, line: &str) {
        match &self.spinner {
            Some(spinner) => spinner.finish_with_message(line.to_owned()),
            None => eprintln!("{}: {line}", self.prefix),
        }
    }
}

/// `cargo` as this xtask was run by, so the same toolchain builds everything.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs a command with inherited output, and fails with its name if it fails.
pub fn run_step(what: &str, mut command: Command) -> anyhow::Result<()> {
    eprintln!("==> {what}");
    let status = command
        .status()
        .with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
