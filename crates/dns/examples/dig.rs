//! A tiny dig: `cargo run -p promlearn-dns --example dig -- 127.0.0.1:9053 demo1.example.org [TYPE] [+tcp]`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program prints its answers"
)]

use promlearn_dns::{Query, Transport, parse_record_type};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Errors print with Display: they are written to be read as they are.
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [server, name, rest @ ..] = args.as_slice() else {
        return Err("usage: dig SERVER:PORT NAME [TYPE] [+tcp]".into());
    };
    let mut query = Query::new(server.parse()?, name)?;
    for arg in rest {
        query = match arg.as_str() {
            "+tcp" => query.with_transport(Transport::Tcp),
            "+noedns" => query.with_edns(None),
            rtype => query.with_type(parse_record_type(rtype)?),
        };
    }
    print!("{}", query.send().await?);
    Ok(())
}
