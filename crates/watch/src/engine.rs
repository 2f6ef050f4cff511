//! The engine of one configuration: its clock, its source, where its work runs, its store
//! (`state_dir`), the state of every query behind one lock, and its fit slots. The schedule
//! (`schedule.rs`) runs on it, in the service (`loops.rs`) and in a backtest alike. A reload
//! builds a new engine; what every generation shares (the served page, the reload requests)
//! is not the engine's but the reload hub's (`reload.rs`), which points down at the engine
//! serving now.

use std::sync::{
    Arc, MutexGuard,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use bytes::Bytes;
use promlearn_detect::{DetectorSpec, Fitted};
use promlearn_loader::Labels;
use tokio::sync::Semaphore;

use crate::{
    Config,
    clock::{Clock, Exec},
    export::{self, Page},
    series::{State, StateLock},
    source::Source,
    store::{Restored, Store},
};

/// Fits a detector on a history; the detector crate's `DetectorSpec::fit`, or a stand-in in tests.
pub(crate) type FitFn = Arc<
    dyn Fn(&DetectorSpec, &[i64], &[f64]) -> promlearn_detect::Result<Arc<dyn Fitted>>
        + Send
        + Sync,
>;

/// The detector crate's own fit.
pub(crate) fn detector_fit() -> FitFn {
    Arc::new(|spec: &DetectorSpec, timestamps: &[i64], values: &[f64]| spec.fit(timestamps, values))
}

/// How many fits may run at once: half the cores, at least one, so that fitting never takes the
/// whole machine from inference and from Prometheus.
pub fn fit_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// One configuration's engine: what the schedule, the fits and the renders of `/metrics` share.
pub(crate) struct Engine {
    pub config: Config,
    pub clock: Clock,
    pub source: Source,
    /// Where fitted models are saved (`state_dir`; the service only).
    pub(crate) store: Option<Store>,
    pub(crate) exec: Exec,
    /// Inference rounds judged so far (any query's): what the web page's ranking is as new as.
    pub(crate) rounds: AtomicU64,
    /// Set when the service stops: fits not started yet are not started.
    stopping: AtomicBool,
    pub(crate) state: StateLock,
    pub(crate) fit_permits: Arc<Semaphore>,
    /// How many fits may run at once (the permits' number).
    pub(crate) fit_slots: usize,
    pub(crate) fit_fn: FitFn,
}

thread_local! {
    /// Whether this thread runs a walk of [`Engine::off_async`] on the blocking pool.
    static OFF_ASYNC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Engine {
    pub(crate) fn new(
        config: Config,
        clock: Clock,
        source: Source,
        exec: Exec,
        fit_fn: FitFn,
        fit_concurrency: usize,
    ) -> Engine {
        let state = StateLock::new(config.queries.len());
        Engine {
            config,
            clock,
            source,
            store: None,
            exec,
            rounds: Default::default(),
            stopping: AtomicBool::new(false),
            state,
            fit_permits: Arc::new(Semaphore::new(fit_concurrency.max(1))),
            fit_slots: fit_concurrency.max(1),
            fit_fn,
        }
    }

    /// The service stops: no fit starts any more, and a fit cancelled by the runtime's shutdown
    /// is not an error.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.fit_permits.close();
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// How models are fitted (a reloaded engine fits as the one before it).
    pub(crate) fn fit_fn(&self) -> FitFn {
        self.fit_fn.clone()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Panics (in debug builds: every test) when a walk over a query's series runs on an async
    /// thread of the service, so that moving one back from [`Engine::off_async`] fails a test.
    pub(crate) fn assert_off_async(&self) {
        debug_assert!(
            self.exec == Exec::Inline || OFF_ASYNC.get(),
            "a walk over every series on an async thread: run it in Engine::off_async"
        );
    }

    /// Runs `walk`, work that grows with a query's series (a scan under the lock), where such
    /// work belongs: on the blocking pool in the service, so that no async thread (which
    /// `/metrics`, the timers and the reads need) walks 100,000 series; on the calling thread in
    /// a backtest, which stays in order and never waits.
    pub(crate) async fn off_async<T: Send + 'static>(
        self: &Arc<Self>,
        walk: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> T {
        match self.exec {
            Exec::Inline => walk(self),
            Exec::Pool => {
                let engine = self.clone();
                let on_pool = move || {
                    OFF_ASYNC.set(true);
                    let value = walk(&engine);
                    OFF_ASYNC.set(false);
                    value
                };
                match tokio::task::spawn_blocking(on_pool).await {
                    Ok(value) => value,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            }
        }
    }

    /// The `/metrics` page of the state now, for `page` (see [`export::render`]).
    pub(crate) fn render(&self, page: &Page) -> String {
        export::render(&self.config, self.clock.now_ms(), &self.state, page)
    }

    /// Renders the page now and serves it (before the first inference round).
    pub(crate) fn render_now(&self, page: &Page) {
        page.set(Bytes::from(self.render(page)));
    }

    /// After a successful fit of series `labels` of query `index`: its state to the store, if
    /// there is one (never in a backtest).
    pub(crate) fn after_fit(&self, index: usize, labels: &Labels, model: &dyn Fitted) {
        if let Some(store) = &self.store {
            let query = &self.config.queries[index];
            let now = self.clock.now_ms();
            store.after_fit(index, query, &self.state, labels, model, now);
        }
    }

    /// Where query `index`'s series were judged up to, to the store, if there is one.
    pub(crate) fn save_streams(&self, index: usize) {
        if let Some(store) = &self.store {
            store.save_streams(index, &self.config.queries[index], &self.state);
        }
    }

    /// Reads every query's saved series back (see [`Store::restore_where`]).
    pub(crate) fn restore(&self) -> Restored {
        self.restore_where(|_| true)
    }

    /// Reads back the saved series of the queries whose index `wanted` says.
    pub(crate) fn restore_where(&self, wanted: impl Fn(usize) -> bool) -> Restored {
        let Some(store) = &self.store else {
            return Restored::default();
        };
        store.restore_where(&self.config, &self.state, self.clock.now_ms(), wanted)
    }
}
