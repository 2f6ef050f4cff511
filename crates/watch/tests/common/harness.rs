//! The harness every watch test drives a served watch with: `start` it, `wait_for` its page to
//! show something, read a sample's `value`, `stop` it. One copy for the unit tests (which
//! include this file by path, `src/tests.rs`) and the integration tests (`tests/common/mod.rs`),
//! so it names the crate's items only through its parent module's imports (`Handle`, `Watch`).

#![allow(dead_code, reason = "each test binary uses the part it needs")]

use std::time::{Duration, Instant};

use super::{Handle, Watch};

/// A watch serving in a task of the test's runtime, with what the tests read of it.
pub struct Running {
    /// The engine's handle: its rendered page and state.
    pub handle: Handle,
    /// Where `/metrics` answers (the config's port 0, bound).
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Serves `watch` until [`Running::stop`]; a serve error fails the test at `stop`.
pub fn start(watch: Watch) -> Running {
    let (handle, addr) = (watch.handle(), watch.bound_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let serving = watch.serve(async move {
        let _ = stopped.await;
    });
    let task = tokio::spawn(async move {
        if let Err(e) = serving.await {
            panic!("the watch stopped with an error: {e}");
        }
    });
    Running {
        handle,
        addr,
        stop,
        task,
    }
}

impl Running {
    /// Asks the watch to stop and waits (5 s at most) until `serve` has returned `Ok`.
    pub async fn stop(self) {
        self.stop.send(()).expect("the watch is still serving");
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the watch stops promptly")
            .expect("the watch's serve returns Ok");
    }
}

/// Polls the rendered page until `accept` holds, and returns it; panics with the last page when
/// `timeout` passes first.
pub async fn wait_for(
    handle: &Handle,
    what: &str,
    timeout: Duration,
    accept: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = handle.render_metrics();
        if accept(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; /metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the first sample line of `text` that starts with `prefix` (a metric name and
/// the opening of its labels, written as the watch writes them).
pub fn value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
