//! `cargo xtask demo`: provisions the servers while cargo compiles the demo program, then runs
//! it. On a fresh machine the two take minutes each; side by side they take the longer of the two.

use std::{process::ExitCode, thread, time::Instant};

use anyhow::Context;

use crate::{
    compile::{self, Program},
    provision,
    setup::{self, SetupArgs},
    steps::{Ui, format_elapsed},
};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Arguments for the demo program (`--anomaly`, `--runtime processes`, `--json`, `--help`, ...)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

impl DemoArgs {
    fn has(&self, flag: &str) -> bool {
        self.args.iter().any(|a| a == flag)
    }

    /// The value of `--name VALUE` or `--name=VALUE`.
    fn value(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}=");
        self.args.iter().enumerate().find_map(|(i, a)| {
            if a == name {
                self.args.get(i + 1).map(String::as_str)
            } else {
                a.strip_prefix(&prefix)
            }
        })
    }
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let quiet = args.has("--quiet") || args.has("--json");
    let ui = Ui::new(quiet)?;
    let program = demo_program(&args);
    let needs_servers =
        !(args.has("--help") || args.has("-h") || args.value("--endpoint").is_some());
    let runtime = args.value("--runtime").unwrap_or("auto").to_owned();
    ui.println(format!(
        "promlearn demo: building `{}`{} while setting up the servers (logs in {})",
        program.bin,
        if program.features.is_empty() {
            String::new()
        } else {
            format!(" with {}", program.features.join(", "))
        },
        ui.log_dir().display()
    ));

    let setup_ui = ui.clone();
    let provisioning = needs_servers.then(|| {
        thread::spawn(move || {
            setup::run(
                &setup_ui,
                &SetupArgs {
                    // The demo never installs Docker by itself; it uses it where it runs (auto)
                    // or when asked for.
                    no_docker: runtime != "containers",
                    demo_only: true,
                },
            )
        })
    });
    let built = compile::build(&ui, &program);
    let provisioned = match provisioning {
        Some(handle) => Some(
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("the set-up thread panicked"))??,
        ),
        None => None,
    };
    let executable = built?;
    ui.println(format!(
        "ready after {}; the tutorial starts",
        format_elapsed(started.elapsed())
    ));
    let mut command = std::process::Command::new(&executable);
    command.args(&args.args);
    if let Some(provisioned) = &provisioned {
        provisioned.apply_env(&mut command);
    }
    let status = command
        .status()
        .with_context(|| format!("running {}", executable.display()))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(status.code().unwrap_or(1).clamp(1, 255) as u8)
    })
}

/// The demo program, with the container runtime only where a Docker daemon answers: elsewhere
/// the first build skips the Docker client entirely.
fn demo_program(args: &DemoArgs) -> Program<'static> {
    let mut features = Vec::new();
    let runtime = args.value("--runtime").unwrap_or("auto");
    if runtime == "containers" || (runtime == "auto" && provision::docker_ping().is_ok()) {
        features.push("containers");
    }
    Program {
        package: "promlearn-demo",
        bin: "promlearn-demo",
        features,
        release: false,
    }
}
