//! The service's loops around one engine, on real ticks: per query an inference loop and a fit
//! loop (the schedule's steps, `schedule.rs`) and the sweep of its state files; and the render
//! loop that makes the `/metrics` page after each inference round. A backtest runs the same
//! steps without them, tick by tick on its simulated clock.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::task::JoinSet;

use crate::{
    clock,
    engine::Engine,
    export::Page,
    judge::JudgedPoint,
    schedule::{fetch_new, fit_once, judge_new},
    series::{ErrorKind, trim_after_drops},
    store,
};

/// Starts the loops of one engine in `loops`: per query inference, fits and the state files'
/// sweep; the renders of `page`.
pub(crate) fn start(engine: &Arc<Engine>, page: &Arc<Page>, loops: &mut JoinSet<()>) {
    for index in 0..engine.config.queries.len() {
        loops.spawn(infer_loop(engine.clone(), page.clone(), index));
        loops.spawn(fit_loop(engine.clone(), index));
        loops.spawn(sweep_loop(engine.clone(), index));
    }
    loops.spawn(render_loop(engine.clone(), page.clone()));
}

/// The inference loop of query `index`: after each round the state's streams go to the store
/// and a new page is wanted.
async fn infer_loop(engine: Arc<Engine>, page: Arc<Page>, index: usize) {
    let mut ticks = clock::live_ticks(engine.config.queries[index].infer_every);
    loop {
        ticks.tick().await;
        let answer = fetch_new(&engine, index).await;
        // Bookkeeping and judging 100,000 series is CPU work: on the blocking pool, so that it
        // never holds an async thread that /metrics, the timers and the reads need. The service
        // keeps no judged points but the newest, which the state holds: no sink.
        let judging = engine.clone();
        let judged = tokio::task::spawn_blocking(move || {
            let judged = judge_new(&judging, index, answer, &mut |_: &JudgedPoint<'_>| Ok(()));
            trim_after_drops(&judging.state);
            judged
        })
        .await;
        match judged {
            Ok(_) if engine.store.is_some() => {
                let saving = engine.clone();
                let _ = tokio::task::spawn_blocking(move || saving.save_streams(index)).await;
            }
            Ok(_) => {}
            Err(e) if e.is_cancelled() => return, // The runtime shuts down.
            Err(e) => {
                let name = &engine.config.queries[index].name;
                tracing::error!(query = %name, "inference panicked: {e}");
                engine.lock().queries[index].error(ErrorKind::AnalyseFailed);
            }
        }
        page.want_render();
    }
}

/// The fit loop of query `index`: it looks for due series at every inference tick.
async fn fit_loop(engine: Arc<Engine>, index: usize) {
    let mut ticks = clock::live_ticks(engine.config.queries[index].infer_every);
    loop {
        ticks.tick().await;
        fit_once(&engine, index).await;
    }
}

/// Removes the files of series that are no longer refitted (stopped, forgotten, or gone from
/// the query): a tracked series rewrites its file every `fit_every`, so a file untouched for
/// twice that plus `stale_after` belongs to none. Runs every `fit_every` per query.
async fn sweep_loop(engine: Arc<Engine>, index: usize) {
    let Some(store) = &engine.store else {
        return;
    };
    let query = &engine.config.queries[index];
    let keep: Duration = query.fit_every * 2 + engine.config.stale_after;
    let mut ticks = tokio::time::interval(query.fit_every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let dir = store.query_dir(&query.name);
        let removed = tokio::task::spawn_blocking(move || store::sweep(&dir, keep))
            .await
            .unwrap_or(0);
        if removed > 0 {
            tracing::info!(query = %query.name, removed, "saved state of series no longer refitted removed");
        }
    }
}

/// The render loop: after each inference round (any query's), one render of the whole page on
/// the blocking pool, from a snapshot copied under the state lock (pointers and counters, no
/// formatting), then swapped in.
async fn render_loop(engine: Arc<Engine>, page: Arc<Page>) {
    loop {
        page.render_wanted().await;
        let (rendering, for_page) = (engine.clone(), page.clone());
        match tokio::task::spawn_blocking(move || rendering.render(&for_page)).await {
            Ok(text) => page.set(Bytes::from(text)),
            Err(e) if e.is_cancelled() => return,
            Err(e) => tracing::error!("rendering /metrics panicked: {e}"),
        }
    }
}
