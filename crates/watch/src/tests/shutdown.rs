//! Stopping the service during a fit round, as `promlearn watch` does on SIGTERM (serve returns,
//! then the runtime shuts down with a short time-out): fits waiting for a slot do not start, and
//! fits the runtime cancels are not counted (nor logged) as failed. (The cancellation itself is a
//! race with the runtime's shutdown that a test cannot force; closing the fit slots when `serve`
//! returns is what keeps the fits queued behind them from ever reaching it.)

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use super::{Mode, config, fake_fit, fake_prometheus, labels, start};
use crate::series::ErrorKind;

#[test]
fn stopping_during_a_fit_round_fails_no_fit() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let (handle, started) = runtime.block_on(async {
        let series = (0..40).map(|i| labels(&[("i", &i.to_string())])).collect();
        let prom = fake_prometheus(Mode::Series(series, 10.0)).await;
        let running = start(
            config(&prom.url, "", ""),
            fake_fit(Duration::from_millis(300), calls.clone()),
        );
        let handle = running.handle.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        while calls.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "no fit started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        running.stop().await;
        let stopped = calls.load(Ordering::SeqCst);
        // The runtime lives on a while: fits that were waiting for a slot must not start.
        tokio::time::sleep(Duration::from_secs(1)).await;
        std::mem::forget(prom); // torn down with the runtime, as the CLI's servers are
        (handle, stopped)
    });
    runtime.shutdown_timeout(Duration::from_millis(200));
    let engine = handle.hub.current();
    let state = engine.lock();
    let q = &state.queries[0];
    assert_eq!(
        q.errors[ErrorKind::FitFailed as usize],
        0,
        "a fit cancelled on shutdown counted as failed"
    );
    let after = calls.load(Ordering::SeqCst);
    // At most the fits already running when it stopped (one per fit slot) are counted after.
    assert!(
        after <= started + crate::fit_concurrency(),
        "{} fits started after the service stopped",
        after - started
    );
}
