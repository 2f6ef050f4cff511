//! `promlearn watch`: the long-running detection service of `promlearn-watch`, from a TOML file.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Result;
use clap::Args;
use promlearn_watch::{Config, Watch};

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The watch configuration (TOML; see examples/watch/watch.toml).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,

    /// Serve /metrics here instead of the file's `listen` (e.g. 0.0.0.0:9464).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Check the configuration and exit (0 if it is valid), as `promtool check config` does.
    #[arg(long)]
    pub check: bool,
}

pub async fn run(args: WatchArgs) -> Result<()> {
    let mut config = Config::load(&args.config)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if args.check {
        println!("{}", config.summary());
        println!("{}: OK", args.config.display());
        return Ok(());
    }
    let watch = Watch::new(config)?;
    eprintln!(
        "promlearn watch: {} quer{} against {}, serving http://{}/metrics",
        watch.config().queries.len(),
        if watch.config().queries.len() == 1 {
            "y"
        } else {
            "ies"
        },
        watch.config().endpoint,
        watch.bound_addr()
    );
    watch.serve(shutdown_signal()).await?;
    eprintln!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
