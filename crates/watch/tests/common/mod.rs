//! What the watch's integration tests share: the harness that serves a watch and reads its page
//! (`harness.rs`, which the unit tests include too), a config made from a few TOML lines, and
//! the testbed with DNS traffic in the background.

#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses the part it needs"
)]

use std::time::Duration;

use promlearn_dns::{LoadConfig, Profile};
use promlearn_testbed::{Testbed, TestbedConfig};
use promlearn_watch::{Config, Handle, Watch};

mod harness;

pub use harness::{Running, start, value, wait_for};

/// A config that asks `endpoint` and serves on an ephemeral port, with `rest` (more settings and
/// the `[[query]]` tables) after; `file` names it in errors.
pub fn config(endpoint: &str, rest: &str, file: &str) -> Config {
    let text = format!("endpoint = \"{endpoint}\"\nlisten = \"127.0.0.1:0\"\n{rest}");
    Config::from_toml(&text, file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// CoreDNS and Prometheus as the tests run them (`TestbedConfig::for_tests`), started.
pub async fn testbed() -> Testbed {
    Testbed::start(TestbedConfig::for_tests().unwrap())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// DNS load in the background: `profile` for `duration`, type A for demo1.example.org.
pub fn dns_load(
    testbed: &Testbed,
    profile: &str,
    duration: Duration,
) -> tokio::task::JoinHandle<()> {
    let mut load = LoadConfig::new(
        testbed.dns_addr(),
        profile.parse::<Profile>().unwrap(),
        u64::MAX,
        duration,
    );
    load.concurrency = 8;
    load.connections = 2;
    tokio::spawn(async move {
        let report = load.run().await.expect("the DNS load runs");
        eprintln!("DNS load: {report}");
    })
}
