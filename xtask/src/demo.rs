//! `cargo xtask demo`: the tutorial, end to end (filled in with the loader and model crates).

#[derive(clap::Args)]
pub struct DemoArgs {}

pub async fn run(_args: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("the demo is not written yet")
}
