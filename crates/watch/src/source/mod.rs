//! Where the schedule's samples come from: Prometheus (through promlearn-loader's `Client`, as the
//! service reads it) or series held in memory (a backtest: Prometheus history loaded once, or a
//! caller's own series such as NAB's files).
//!
//! Both answer the same two questions, at the schedule clock's time `now`: what is new for an
//! inference (with the detector's context before it), and what the fit window holds.

mod memory;
mod prometheus;

use std::time::Duration;

use promlearn_loader::{Client, Labels};

pub use memory::MemorySource;
pub(crate) use prometheus::{build_client, load_history};

use crate::{QueryConfig, series::ErrorKind};

/// One series of an answer: ascending timestamps (unix ms) and their values; a sample the server
/// did not have is absent, a NaN it sent stays.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SeriesData {
    pub labels: Labels,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
}

/// What the schedule asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// For an inference: the samples after `after_ms` (the last inference's time; `None` at the
    /// first), with the detector's context before them. A series is in the answer while it has
    /// samples in the query's inference window, even if none is new. From Prometheus, only the
    /// steps of `read` (the series keep the rest: `recent.rs`).
    Infer {
        after_ms: Option<i64>,
        read: Option<crate::recent::GridRead>,
    },
    /// For a fit: the samples of the fit window ending now.
    Fit,
}

/// A fetch that failed: its kind (for the error counters) and the message to log.
pub(crate) type FetchError = (ErrorKind, String);

/// The schedule's source of samples.
pub(crate) enum Source {
    /// A Prometheus-compatible API, asked at each tick.
    Prometheus(Client),
    /// Series held in memory.
    Memory(MemorySource),
}

impl Source {
    /// Whether inferences read Prometheus's step grid, and may read only its new steps.
    pub(crate) fn reads_grid(&self) -> bool {
        matches!(self, Source::Prometheus(_))
    }
}

impl Source {
    /// The series of `query` for `want` at `now_ms`. Prometheus is bounded by `deadline`; memory
    /// answers at once and never fails.
    pub(crate) async fn fetch(
        &self,
        query: &QueryConfig,
        now_ms: i64,
        want: Want,
        deadline: Duration,
    ) -> Result<Vec<SeriesData>, FetchError> {
        match self {
            Source::Prometheus(client) => {
                let points = match want {
                    Want::Infer {
                        read: Some(read), ..
                    } => read.points(),
                    Want::Infer { after_ms, .. } => infer_points_since(query, now_ms, after_ms),
                    Want::Fit => query.fit_points(),
                };
                prometheus::fetch(client, query, now_ms, points, deadline).await
            }
            Source::Memory(memory) => Ok(memory.fetch(query, now_ms, want)),
        }
    }
}

/// Grid points an inference at `now_ms` reads from Prometheus: those since the last read
/// (`after_ms`) plus the detector's context and a few more, so that no step goes unjudged when
/// `infer_every` spans many steps or a read failed; at least [`QueryConfig::infer_points`], at
/// most a fit window's worth (a long outage is not caught up beyond it).
pub(crate) fn infer_points_since(query: &QueryConfig, now_ms: i64, after_ms: Option<i64>) -> usize {
    let step = query.step_ms();
    let new = after_ms.map_or(0, |after| {
        (now_ms.div_euclid(step) - after.div_euclid(step)).max(0) as usize
    });
    let wanted = query.detector.context() + new + 1 + crate::INFER_EXTRA_POINTS;
    wanted
        .max(query.infer_points())
        .min(query.fit_points().max(query.infer_points()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_reads_what_is_new_since_the_last_read_and_the_context() {
        let config = crate::Config::from_toml(
            r#"
endpoint = "http://localhost:9090"
[[query]]
name = "q"
expr = "x"
step = "1s"
infer_every = "30s"
detector = { kind = "zscore", window = 10 }
fit_window = "5m"
"#,
            "t.toml",
        )
        .unwrap();
        let q = &config.queries[0];
        // The detector's context (its window and its recent level's points), this point, 5 more.
        let first = q.detector.context() + 1 + crate::INFER_EXTRA_POINTS;
        assert_eq!(q.infer_points(), first);
        assert!(first > 10 + 5, "at least the window and the extra points");
        // The first read: the context and a few more.
        assert_eq!(infer_points_since(q, 100_500, None), first);
        // 30 s since the last read: 30 new steps on top.
        assert_eq!(infer_points_since(q, 130_500, Some(100_500)), first + 30);
        // After a long outage, at most the fit window.
        assert_eq!(infer_points_since(q, 10_000_000, Some(100_500)), 300);
    }

    #[test]
    fn password_and_token_files_are_read_by_the_loaders_one_rule() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        let mut c = crate::Config::from_toml(
            "endpoint = \"http://127.0.0.1:9\"\n[[query]]\nname = \"q\"\nexpr = \"x\"\n\
             detector = { kind = \"zscore\" }\n",
            "t.toml",
        )
        .unwrap();
        c.auth.bearer_token_file = Some(token.clone());
        // An empty file is refused (the watch's own rule took it as an empty token), naming the
        // setting and the file.
        std::fs::write(&token, "\n").unwrap();
        let e = build_client(&c).unwrap_err();
        assert!(
            matches!(
                &e,
                crate::Error::Secret {
                    what: "bearer_token_file",
                    ..
                }
            ) && e.to_string().contains(&token.display().to_string()),
            "{e}"
        );
        // One line, trimmed as Prometheus trims its own.
        std::fs::write(&token, "  s3cret\r\n").unwrap();
        assert!(build_client(&c).is_ok());
    }
}
