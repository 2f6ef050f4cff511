//! Shards against a real Thanos Query (promlearn-testbed's Thanos set-up: two Prometheus 3
//! replicas with sidecars, deduplicated): two watches, `--shard 0/2` and `1/2`, export disjoint
//! series whose union is what one unsharded watch exports.
//!
//! `cargo xtask e2e` runs it; alone: `cargo test -p promlearn-watch --test shard -- --include-ignored`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests show what they compare; cargo prints it when one fails"
)]

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use promlearn_testbed::thanos::{ThanosConfig, ThanosQuery};
use promlearn_watch::{Config, Handle, Shard, Watch};

mod common;

use common::start;

fn config(endpoint: &str, shard: Shard) -> Config {
    let mut config = common::config(
        endpoint,
        r#"
[[query]]
name = "q"
expr = '{__name__=~"go_.*|process_.*|prometheus_build_info|up"}'
step = "1s"
detector = { kind = "zscore", window = 5 }
infer_every = "1s"
fit_every = "10s"
fit_window = "30s"
"#,
        "shard.toml",
    );
    config.shard = shard;
    config
}

/// The label sets a watch exports a value for now (its `promlearn_value` lines, labels only).
fn exported(handle: &Handle) -> BTreeSet<String> {
    handle
        .render_metrics()
        .lines()
        .filter_map(|l| l.strip_prefix("promlearn_value{"))
        .map(|l| l.rsplit_once("} ").unwrap().0.to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn two_shards_over_thanos_query_are_disjoint_and_together_the_unsharded_watch() {
    let thanos = ThanosQuery::start(ThanosConfig::default()).await.unwrap();
    let watches: Vec<_> = [Shard::ALL, "0/2".parse().unwrap(), "1/2".parse().unwrap()]
        .into_iter()
        .map(|shard| start(Watch::new(config(&thanos.url(), shard)).unwrap()))
        .collect();
    let handles: Vec<Handle> = watches.iter().map(|w| w.handle.clone()).collect();
    // Series appear as the replicas scrape; the three watches read at slightly different
    // moments, so the union is compared until it settles (the disjointness, every time).
    let deadline = Instant::now() + Duration::from_secs(90);
    let (all, zero, one) = loop {
        let (all, zero, one) = (
            exported(&handles[0]),
            exported(&handles[1]),
            exported(&handles[2]),
        );
        let overlap: Vec<_> = zero.intersection(&one).collect();
        assert!(overlap.is_empty(), "both shards export {overlap:?}");
        let union: BTreeSet<String> = zero.union(&one).cloned().collect();
        if all.len() >= 20 && !zero.is_empty() && !one.is_empty() && union == all {
            break (all, zero, one);
        }
        assert!(
            Instant::now() < deadline,
            "the shards never made up the whole: {} unsharded, {} + {} sharded; missing {:?}, extra {:?}",
            all.len(),
            zero.len(),
            one.len(),
            all.difference(&union).take(5).collect::<Vec<_>>(),
            union.difference(&all).take(5).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!(
        "{} series unsharded = {} (shard 0/2) + {} (shard 1/2)",
        all.len(),
        zero.len(),
        one.len()
    );
    let page = handles[2].render_metrics();
    assert!(
        page.contains("promlearn_watch_shard_info{index=\"1\",total=\"2\"} 1\n"),
        "{page}"
    );
    for running in watches {
        running.stop().await;
    }
    thanos.stop().await.unwrap();
}
