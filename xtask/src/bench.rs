//! `cargo xtask bench [dns|loader|train]`: each benchmark measures ours and its peer in one run.

use crate::setup;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Which benchmarks to run (all when none is named)
    #[arg(value_parser = ["dns", "loader", "train"])]
    which: Vec<String>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let which = if args.which.is_empty() {
        vec!["dns".to_owned(), "loader".to_owned(), "train".to_owned()]
    } else {
        args.which
    };
    let provisioned = setup::run(&setup::SetupArgs {
        no_docker: true,
        quiet: false,
    })
    .await?;
    for name in which {
        let package = match name.as_str() {
            "dns" => "promlearn-dns",
            "loader" => "promlearn-loader",
            _ => "promlearn-model",
        };
        let bench = if name == "train" {
            "train"
        } else {
            name.as_str()
        };
        let mut command = setup::cargo();
        command.args(["bench", "--package", package, "--bench", bench]);
        provisioned.apply_env(&mut command);
        setup::run_step(&format!("bench {name}"), command)?;
    }
    Ok(())
}
