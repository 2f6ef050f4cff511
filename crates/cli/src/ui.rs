//! `promlearn ui`: the web page's explore view alone, without a watch or its configuration, for
//! a team that only evaluates: backtest detectors on its own Prometheus's history from a browser.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Result;
use clap::Args;
use promlearn_watch::{Config, WebConfig};

#[derive(Args, Debug)]
pub struct UiArgs {
    /// The Prometheus-compatible server whose history explore reads (its base URL).
    #[arg(long, value_name = "URL")]
    pub endpoint: String,

    /// Where to serve the page.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9465")]
    pub listen: SocketAddr,

    /// TLS and basic auth for the page: a web config file in exporter-toolkit's format, as
    /// `promlearn watch --web.config.file` takes.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
}

pub async fn run(args: UiArgs) -> Result<()> {
    // The watch file's own reader checks the endpoint; explore replaces the query.
    let text = format!(
        "endpoint = {}\n[[query]]\nname = \"ui\"\nexpr = \"up\"\ndetector = {{ kind = \"zscore\" }}\n",
        toml_string(&args.endpoint)
    );
    let base = Config::from_toml(&text, "--endpoint")?;
    let web = args
        .web_config_file
        .as_deref()
        .map(WebConfig::load)
        .transpose()?;
    promlearn_watch::ui::serve_explore(
        base,
        args.listen,
        web,
        |addr, scheme| {
            eprintln!(
                "promlearn ui: explore {} at {scheme}://{addr}/ui/explore",
                args.endpoint
            )
        },
        crate::watch::shutdown_signal(),
    )
    .await?;
    eprintln!("stopped");
    Ok(())
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
