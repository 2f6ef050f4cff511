//! An inference's judging: each series' new samples through its model, a chunk of series at a
//! time; in the service on every core at once.

use std::{io, sync::Arc, sync::Mutex};

use promlearn_detect::{Analysis, DomainKnowledge, Fitted};

use crate::{
    backtest::JudgedPoint,
    schedule::Exec,
    series::{SeriesState, Stream},
    source::SeriesData,
};

/// One series' share of an inference: its answer and how far its stream was judged.
pub(crate) struct InferJob {
    pub(crate) model: Option<Arc<dyn Fitted>>,
    pub(crate) stream: Stream,
    pub(crate) data: SeriesData,
}

/// What became of an [`InferJob`]'s new samples.
pub(crate) enum Outcome {
    /// Judged by the model: the analysis of the new samples only.
    Judged(Analysis),
    /// Passed on unjudged from index `first` on: no model yet.
    NoModel { first: usize },
    /// Passed on unjudged from index `first` on: the analysis failed.
    Failed { first: usize, error: String },
}

fn run_infer_job(mut job: InferJob, knowledge: &DomainKnowledge) -> (InferJob, Outcome) {
    let outcome = match &job.model {
        None => Outcome::NoModel {
            first: job.stream.pass_over(&job.data.timestamps),
        },
        Some(model) => {
            match job.stream.judge(
                model.as_ref(),
                knowledge,
                &job.data.timestamps,
                &job.data.values,
            ) {
                Ok(analysis) => Outcome::Judged(analysis),
                Err(e) => Outcome::Failed {
                    first: job.stream.pass_over(&job.data.timestamps),
                    error: e.to_string(),
                },
            }
        }
    };
    (job, outcome)
}

/// Hands the new samples of one job to the sink.
pub(crate) fn emit<K>(
    query: &str,
    job: &InferJob,
    outcome: &Outcome,
    sink: &mut K,
) -> io::Result<()>
where
    K: FnMut(&JudgedPoint<'_>) -> io::Result<()>,
{
    let (ts, vs) = (&job.data.timestamps, &job.data.values);
    match outcome {
        Outcome::Judged(a) => {
            for i in 0..a.len() {
                sink(&JudgedPoint {
                    query,
                    labels: &job.data.labels,
                    timestamp_ms: a.timestamps[i],
                    value: a.values[i],
                    yhat: a.yhat[i],
                    yhat_lower: a.yhat_lower[i],
                    yhat_upper: a.yhat_upper[i],
                    score: a.score[i],
                    anomalous: a.anomalous[i],
                })?;
            }
        }
        Outcome::NoModel { first } | Outcome::Failed { first, .. } => {
            for i in *first..ts.len() {
                sink(&JudgedPoint::unjudged(
                    query,
                    &job.data.labels,
                    ts[i],
                    vs[i],
                ))?;
            }
        }
    }
    Ok(())
}

/// What to judge of `series` in this answer (`None` when nothing in it is new: the newest
/// judged point then stands while it is in the answer).
pub(crate) fn infer_job(series: &mut SeriesState, data: SeriesData, now: i64) -> Option<InferJob> {
    if series.stream.first_new(&data.timestamps) == data.timestamps.len() {
        let start = data.timestamps.first().copied().unwrap_or(now);
        series.last = series.last.filter(|p| p.timestamp_ms >= start);
        return None;
    }
    Some(InferJob {
        model: series.model.clone(),
        stream: series.stream.clone(),
        data,
    })
}

/// Series judged between two takes of the state lock in an inference.
const JUDGE_CHUNK: usize = 1024;

/// Threads that judge an inference's chunks in the service: one per core, at most this many.
const JUDGE_WORKERS_MAX: usize = 4;

fn judge_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(JUDGE_WORKERS_MAX))
}

/// Judges `jobs` a chunk at a time, with what is known about their query, and hands each
/// chunk's results to `write_back` (on the calling thread): in order for a backtest, on up to
/// one thread per core for the service.
pub(crate) fn judge_all(
    exec: Exec,
    knowledge: &DomainKnowledge,
    jobs: Vec<InferJob>,
    mut write_back: impl FnMut(Vec<(InferJob, Outcome)>) -> io::Result<()>,
) -> io::Result<()> {
    let workers = match exec {
        Exec::Pool => judge_workers(),
        // A backtest's sink sees the series in order, run after run.
        Exec::Inline => 1,
    };
    if workers <= 1 || jobs.len() <= JUDGE_CHUNK {
        let mut jobs = jobs.into_iter();
        loop {
            let results: Vec<(InferJob, Outcome)> = jobs
                .by_ref()
                .take(JUDGE_CHUNK)
                .map(|job| run_infer_job(job, knowledge))
                .collect();
            if results.is_empty() {
                break;
            }
            write_back(results)?;
        }
    } else {
        // The service: the query's answer is in and the server idle, so every core judges,
        // chunk by chunk, while this thread hands the chunks on and books them.
        let queue = Mutex::new(jobs.into_iter());
        std::thread::scope(|scope| -> io::Result<()> {
            let (done, judged) = std::sync::mpsc::sync_channel(workers);
            for _ in 0..workers {
                let (done, queue) = (done.clone(), &queue);
                scope.spawn(move || {
                    loop {
                        let chunk: Vec<InferJob> = queue
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .by_ref()
                            .take(JUDGE_CHUNK)
                            .collect();
                        // Nothing left, or the sink failed and no one reads any more.
                        if chunk.is_empty()
                            || done
                                .send(
                                    chunk
                                        .into_iter()
                                        .map(|job| run_infer_job(job, knowledge))
                                        .collect::<Vec<_>>(),
                                )
                                .is_err()
                        {
                            return;
                        }
                    }
                });
            }
            drop(done);
            for results in judged {
                write_back(results)?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use promlearn_loader::Labels;

    #[test]
    fn every_job_is_judged_once_on_every_core_or_in_order() {
        let jobs = || -> Vec<InferJob> {
            (0..3 * JUDGE_CHUNK + 7)
                .map(|i| InferJob {
                    model: None,
                    stream: Stream::default(),
                    data: SeriesData {
                        labels: Labels::from_pairs([("i", i.to_string())]),
                        timestamps: vec![i as i64],
                        values: vec![1.0],
                    },
                })
                .collect()
        };
        for exec in [Exec::Pool, Exec::Inline] {
            let mut seen = Vec::new();
            judge_all(exec, &DomainKnowledge::default(), jobs(), |results| {
                for (job, outcome) in results {
                    assert!(matches!(outcome, Outcome::NoModel { first: 0 }));
                    assert_eq!(job.stream.through_ms, job.data.timestamps.last().copied());
                    seen.push(job.data.timestamps[0]);
                }
                Ok(())
            })
            .unwrap();
            if exec == Exec::Inline {
                assert!(seen.is_sorted(), "a backtest's order");
            }
            seen.sort();
            assert_eq!(seen, (0..3 * JUDGE_CHUNK as i64 + 7).collect::<Vec<_>>());
        }
        // A sink that fails stops the judging, and the failure is the answer.
        let failed = judge_all(Exec::Pool, &DomainKnowledge::default(), jobs(), |_| {
            Err(io::Error::other("full"))
        });
        assert_eq!(failed.unwrap_err().to_string(), "full");
    }
}
