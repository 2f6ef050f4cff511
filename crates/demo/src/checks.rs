//! `--check`: the demo as an end-to-end test. Each check judges a fact read back from Prometheus
//! after the dataset was built (never the condition the waiting loop already waited for), so each
//! can fail.

use crate::Outcome;

/// Prints one line per check and the closing count; returns how many failed.
pub fn report(outcome: &Outcome) -> usize {
    let mut checks = vec![
        (
            "both DNS queries were answered NOERROR",
            outcome.dns_rcodes.len() == 2 && outcome.dns_rcodes.iter().all(|r| r == "NOERROR"),
        ),
        (
            "read back: the request counter is 2.0 at the dataset's last timestamp",
            outcome.read_back.request_count == Some(2.0),
        ),
        (
            "read back: exactly the coredns and prometheus jobs report go_memstats_gc_sys_bytes",
            outcome.read_back.jobs_with_gc_sys_bytes == ["coredns", "prometheus"],
        ),
        (
            "the dataset holds 5 elements of each series",
            outcome.request_count.len() == 5 && outcome.gc_sys_bytes.len() == 5,
        ),
        (
            "the training loss falls",
            outcome.epoch_losses.len() == 5 && outcome.epoch_losses[4] < outcome.epoch_losses[0],
        ),
    ];
    if let Some(anomaly) = &outcome.anomaly {
        checks.extend(crate::anomaly::checks(anomaly));
    }
    let mut failed = 0;
    for (what, ok) in &checks {
        eprintln!("    [{}] {what}", if *ok { "ok" } else { "FAILED" });
        if !ok {
            failed += 1;
        }
    }
    println!(
        "demo checks: {} passed, {failed} failed",
        checks.len() - failed
    );
    failed
}
