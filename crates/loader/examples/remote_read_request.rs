//! Writes a remote-read request body (snappy-compressed protobuf `ReadRequest`) to stdout, for
//! recording real answers with curl (fixtures/loader/record.sh).
//!
//! `cargo run -q -p promlearn-loader --example remote_read_request -- SELECTOR START_MS END_MS streamed|samples`

#![allow(
    clippy::print_stderr,
    reason = "a command-line tool says what is wrong with its arguments"
)]

use std::io::Write;

use promlearn_loader::remote_read::{parse_selector, proto::ResponseType, read_request_body};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [selector, start, end, kind] = args.as_slice() else {
        eprintln!("usage: remote_read_request SELECTOR START_MS END_MS streamed|samples");
        std::process::exit(2);
    };
    let matchers = parse_selector(selector).unwrap_or_else(|| {
        eprintln!("`{selector}` is not a plain series selector");
        std::process::exit(2);
    });
    let accept = match kind.as_str() {
        "streamed" => ResponseType::StreamedXorChunks,
        "samples" => ResponseType::Samples,
        _ => {
            eprintln!("the answer type is `streamed` or `samples`");
            std::process::exit(2);
        }
    };
    let ms = |s: &str| -> i64 {
        s.parse().unwrap_or_else(|_| {
            eprintln!("`{s}` is not a time in milliseconds");
            std::process::exit(2);
        })
    };
    let body = read_request_body(&matchers, ms(start), ms(end), &[accept]);
    std::io::stdout().write_all(&body).expect("stdout");
}
