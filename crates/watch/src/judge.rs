//! An inference's judging: each series' new samples through its model, a chunk of series at a
//! time, in the service on every core at once; and the judged points it hands on
//! ([`JudgedPoint`], what a backtest's sink receives).

use std::{io, sync::Arc, sync::Mutex};

use promlearn_detect::{Analysis, DomainKnowledge, Fitted};
use promlearn_loader::Labels;

use crate::{
    clock::Exec,
    series::{SeriesState, Stream},
    source::SeriesData,
};

/// One sample of a backtest, judged or not, as the sink receives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JudgedPoint<'a> {
    /// The query's name.
    pub query: &'a str,
    /// The series' labels.
    pub labels: &'a Labels,
    /// Unix ms.
    pub timestamp_ms: i64,
    /// The sample's value.
    pub value: f64,
    /// The detector's prediction; NaN where not judged.
    pub yhat: f64,
    /// The band's lower edge; NaN where not judged.
    pub yhat_lower: f64,
    /// The band's upper edge; NaN where not judged.
    pub yhat_upper: f64,
    /// 0 on the prediction, 1 on the band's edge, above 1 outside; NaN where not judged.
    pub score: f64,
    /// `score > 1`; never true where not judged.
    pub anomalous: bool,
}

impl<'a> JudgedPoint<'a> {
    /// A sample passed on without a judgement (no model yet, the detector's warm-up, a gap).
    pub(crate) fn unjudged(
        query: &'a str,
        labels: &'a Labels,
        timestamp_ms: i64,
        value: f64,
    ) -> Self {
        JudgedPoint {
            query,
            labels,
            timestamp_ms,
            value,
            yhat: f64::NAN,
            yhat_lower: f64::NAN,
            yhat_upper: f64::NAN,
            score: f64::NAN,
            anomalous: false,
        }
    }

    /// Whether the detector judged it (its score is a number).
    pub fn judged(&self) -> bool {
        !self.score.is_nan()
    }
}

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
