//! `--anomaly`: the DevOps use the tutorial promised, run as DevOps would run it. The watch
//! service (`promlearn-watch`, configured by `examples/watch/watch.toml`) scores CoreDNS's request
//! rate; the testbed's Prometheus scrapes it and evaluates `examples/watch/alerts.yml`. A
//! generator drives CoreDNS with a rhythm and, unannounced, a drop to a tenth and a five-fold
//! spike. The demo then reads back from Prometheus when the alert fired and which points each
//! detector flagged, scores them against the injected events and plots them.
//!
//! Nothing here detects anything: detection is `promlearn-detect`'s, run by the service.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use promlearn_detect::{Analysis, DetectorSpec, EventScore, Injected, evaluate};
use promlearn_dns::{LoadConfig, Profile};
use promlearn_loader::{Client, RangeQuery};
use promlearn_testbed::{ScrapeTarget, repository_root};
use promlearn_watch::{Config, Watch};

use crate::ui::Status;

/// The run's shape, in seconds from its start.
const TOTAL_S: u64 = 150;
/// The drop comes first: a rolling detector's window holds an event for a while after it, and a
/// five-fold spike in the window would hide a drop that followed it too closely.
const EVENTS: [Event; 2] = [
    Event {
        name: "drop to 1/10",
        at_s: 100,
        len_s: 8,
        factor: 0.1,
    },
    Event {
        name: "spike x5",
        at_s: 125,
        len_s: 8,
        factor: 5.0,
    },
];
/// When the watch service starts, after the traffic.
const WATCH_AFTER: Duration = Duration::from_secs(20);
/// The window of the rolling detectors the demo adds beside the example's: a third of the
/// traffic's 30 s rhythm, so that the band follows the rhythm and a drop to a tenth lies
/// outside it (a window of a whole period spans the rhythm's whole swing).
const ROLLING_WINDOW: usize = 10;
/// Which of [`EVENTS`] is the spike the alert line reports on.
const SPIKE: usize = 1;
/// After an event ends, its echo lasts this long: the rate query's 5 s look-back, the LSTM's
/// 8-step input window and a scrape or two.
const ECHO_S: i64 = 5 + 8 + 2;
/// The alerting rule the testbed's Prometheus evaluates.
const ALERT_NAME: &str = "PromlearnAnomaly";

struct Event {
    name: &'static str,
    at_s: u64,
    len_s: u64,
    factor: f64,
}

/// One detector's result over the run, read back from Prometheus.
#[derive(Debug, serde::Serialize)]
pub struct DetectorOutcome {
    pub query: String,
    pub detector: String,
    /// Per event of [`EVENTS`]: seconds from its start to this query's alert firing for it,
    /// if it did: the first firing at or after the first alert the watch counted inside the
    /// event (so an alert still firing for the event before does not count for this one).
    pub alert_after_s: Vec<Option<f64>>,
    /// Seconds into the run of the first alert that fired before any injected event, if any.
    pub alert_before_events_s: Option<f64>,
    pub score: EventScore,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct AnomalyOutcome {
    pub queries_sent: u64,
    pub detectors: Vec<DetectorOutcome>,
    /// The plot; its points, read back, are beside it as CSV (`anomaly.csv`).
    pub plot: PathBuf,
}

impl AnomalyOutcome {
    /// The earliest alert for event `event` (an index of [`EVENTS`]) over all detectors.
    pub fn first_alert_after(&self, event: usize) -> Option<f64> {
        self.detectors
            .iter()
            .filter_map(|d| d.alert_after_s.get(event).copied().flatten())
            .min_by(f64::total_cmp)
    }

    /// The lines the demo ends with.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = vec![match self.first_alert_after(SPIKE) {
            Some(s) => format!("alert fired: yes ({s:.1} s after the spike)"),
            None => "alert fired: no".to_owned(),
        }];
        for d in &self.detectors {
            lines.push(format!(
                "precision: {:.2} recall: {:.2} f1: {:.2}  ({}, query {})",
                d.score.precision, d.score.recall, d.score.f1, d.detector, d.query
            ));
        }
        lines
    }
}

/// The example configuration the service runs, and its alerting rules.
fn example_dir() -> PathBuf {
    repository_root().join("examples").join("watch")
}

/// What the testbed's Prometheus needs for the anomaly run: a scrape job for the watch service
/// and the example's alerting rules.
pub fn testbed_additions(watch: SocketAddr) -> (ScrapeTarget, PathBuf) {
    (
        ScrapeTarget::new("promlearn-watch", watch.to_string()),
        example_dir().join("alerts.yml"),
    )
}

/// The example configuration, pointed at `endpoint` and listening on `listen`; beside its own
/// queries, the total rate is also watched by each cheap detector it does not use yet, so that
/// every detector is compared on the same data. The example's own queries run as written, their
/// schedules included (each refits on the last minute, once before the events).
fn watch_config(endpoint: &str, listen: SocketAddr) -> anyhow::Result<Config> {
    let mut config = Config::load(example_dir().join("watch.toml"))?;
    config.endpoint = endpoint.to_owned();
    config.listen = listen;
    let template = config
        .queries
        .iter()
        .find(|q| !matches!(q.detector, DetectorSpec::Lstm { .. }))
        .context("examples/watch/watch.toml has no cheap detector to copy")?
        .clone();
    for kind in promlearn_detect::DETECTOR_NAMES
        .into_iter()
        .filter(|k| *k != "lstm")
    {
        if config.queries.iter().any(|q| q.detector.name() == kind) {
            continue;
        }
        let mut query = template.clone();
        query.name = format!("dns_rate_{kind}");
        query.expr = "sum(rate(coredns_dns_requests_total[5s]))".to_owned();
        query.detector = if kind == "knn" {
            serde_json::from_value(serde_json::json!({ "kind": kind }))?
        } else {
            serde_json::from_value(serde_json::json!({ "kind": kind, "window": ROLLING_WINDOW }))?
        };
        config.queries.push(query);
    }
    Ok(config)
}

/// The watch service left running after the anomaly run (`--keep`), so that one can look at its
/// page; [`KeptWatch::stop`] ends it.
pub struct KeptWatch {
    pub page_url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    service: tokio::task::JoinHandle<promlearn_watch::Result<()>>,
}

impl KeptWatch {
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.service
            .await
            .context("the watch service panicked")?
            .context("the watch service failed")
    }
}

pub async fn run(
    endpoint: &str,
    dns_server: SocketAddr,
    watch_listen: SocketAddr,
    verbose: bool,
    keep: bool,
) -> anyhow::Result<(AnomalyOutcome, Option<KeptWatch>)> {
    let config = watch_config(endpoint, watch_listen)?;
    let queries: Vec<(String, String)> = config
        .queries
        .iter()
        .map(|q| (q.name.clone(), q.detector.name().to_owned()))
        .collect();
    let watch = Watch::new(config)?;
    let page_url = watch.page_url();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // The service starts once the traffic has: a watch deployed beside a running service sees
    // its traffic in its first fit, not only the idle counter before it.
    let service = tokio::spawn(async move {
        tokio::time::sleep(WATCH_AFTER).await;
        watch
            .serve(async {
                let _ = stopped.await;
            })
            .await
    });

    let mut profile = String::from("sine:base=80,amp=15,period=30s");
    for event in &EVENTS {
        profile.push_str(&format!(
            "+spike:at={}s,len={}s,x={}",
            event.at_s, event.len_s, event.factor
        ));
    }
    let profile: Profile = profile.parse()?;
    let mut load = LoadConfig::new(dns_server, profile, 100_000, Duration::from_secs(TOTAL_S));
    load.concurrency = 16;
    load.seed = Some(7);
    if verbose {
        println!(
            "\nAnomaly run: promlearn watch ({} queries: {}) scores CoreDNS's request rate; Prometheus \
             scrapes it and evaluates examples/watch/alerts.yml. {TOTAL_S} s of DNS traffic with a 30 s \
             rhythm and {} events the service is not told about",
            queries.len(),
            queries
                .iter()
                .map(|(_, d)| d.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            EVENTS.len()
        );
        println!(
            "The watch's page (scores, a series' band and flags, explore): {page_url} (up {} s into the traffic)",
            WATCH_AFTER.as_secs()
        );
    }
    let start_ms = now_ms();
    let status = Status::new("traffic", !verbose);
    let report = load
        .run_with_progress(Duration::from_secs(1), |p| {
            status.message(&format!(
                "{:>3}/{TOTAL_S} s  sent {}  answered {}  target {:.0} qps",
                p.elapsed.as_secs(),
                p.sent,
                p.answered,
                p.target_qps
            ))
        })
        .await?;
    status.finish(&format!(
        "sent {} queries at {:.0} qps on average",
        report.sent,
        report.qps()
    ));
    // The last scores reach Prometheus with its next scrapes and rule evaluations.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let end_ms = now_ms();
    let kept = KeptWatch {
        page_url,
        stop,
        service,
    };
    let kept = if keep {
        Some(kept)
    } else {
        kept.stop().await?;
        None
    };

    let client = Client::new(endpoint)?;
    let first_event_ms = start_ms + EVENTS[0].at_s as i64 * 1000;
    let traffic_end_ms = start_ms + TOTAL_S as i64 * 1000;
    let events: Vec<Injected> = EVENTS
        .iter()
        .map(|e| {
            let from_ms = start_ms + e.at_s as i64 * 1000;
            Injected {
                name: e.name.to_owned(),
                from_ms,
                to_ms: from_ms + (e.len_s as i64 + ECHO_S) * 1000,
            }
        })
        .collect();
    let mut outcome = AnomalyOutcome {
        queries_sent: report.sent,
        plot: plot_path(),
        ..Default::default()
    };
    let mut analyses = Vec::new();
    for (query, detector) in &queries {
        let analysis = read_analysis(&client, query, detector, start_ms, end_ms).await?;
        let firing = firing_times(&client, query, start_ms, end_ms).await?;
        outcome.detectors.push(DetectorOutcome {
            query: query.clone(),
            detector: detector.clone(),
            alert_after_s: events
                .iter()
                .map(|e| {
                    let counted = analysis
                        .flagged()
                        .map(|i| analysis.timestamps[i])
                        .find(|t| (e.from_ms..e.to_ms).contains(t))?;
                    let fired = firing.iter().find(|t| **t >= counted)?;
                    Some((fired - e.from_ms) as f64 / 1000.0)
                })
                .collect(),
            alert_before_events_s: firing
                .iter()
                .find(|t| **t < first_event_ms)
                .map(|t| (t - start_ms) as f64 / 1000.0),
            // Judged over the traffic only: when it stops, the rate falls to zero over the
            // next 5 s, a real drop that a detector is right to flag, neither normal traffic
            // nor an injected event.
            score: evaluate(
                &analysis.slice(0..traffic_points(&analysis, traffic_end_ms)),
                &events,
            ),
        });
        analyses.push(analysis);
    }
    write_csv(&outcome.plot.with_extension("csv"), &analyses)
        .context("writing the anomaly run's points")?;
    let shown: Vec<&Analysis> = analyses.iter().collect();
    promlearn_detect::plot_png(
        &outcome.plot,
        "CoreDNS requests/s as promlearn watch scored it: value, yhat, band, flags",
        &shown,
        &events,
    )
    .context("drawing the anomaly plot")?;
    if verbose {
        for d in &outcome.detectors {
            let found: Vec<String> = d
                .score
                .events_found
                .iter()
                .map(|(name, found)| {
                    format!("{name} {}", if *found { "flagged" } else { "MISSED" })
                })
                .collect();
            println!(
                "  {:<9} {:<18} {}; {} flags, {} on normal traffic",
                d.detector,
                d.query,
                found.join(", "),
                d.score.flags,
                d.score.false_flags
            );
        }
        println!("  plot: {}", outcome.plot.display());
    }
    Ok((outcome, kept))
}

/// How many points of `analysis` lie before `end_ms`.
fn traffic_points(analysis: &Analysis, end_ms: i64) -> usize {
    analysis.timestamps.partition_point(|&t| t < end_ms)
}

/// Every point read back, one row per query and scrape, beside the plot: what to look at when a
/// check fails.
fn write_csv(path: &std::path::Path, analyses: &[Analysis]) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let mut text =
        String::from("timestamp_ms,detector,value,yhat,yhat_lower,yhat_upper,score,alert\n");
    for a in analyses {
        for i in 0..a.len() {
            writeln!(
                text,
                "{},{},{},{},{},{},{},{}",
                a.timestamps[i],
                a.detector,
                a.values[i],
                a.yhat[i],
                a.yhat_lower[i],
                a.yhat_upper[i],
                a.score[i],
                u8::from(a.anomalous[i])
            )?;
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// What the service exported for `query` (its first series), as Prometheus scraped it.
async fn read_analysis(
    client: &Client,
    query: &str,
    detector: &str,
    start_ms: i64,
    end_ms: i64,
) -> anyhow::Result<Analysis> {
    let range = |metric: &str| {
        RangeQuery::new(
            format!("max({metric}{{query=\"{query}\"}})"),
            start_ms,
            end_ms,
            Duration::from_secs(1),
        )
    };
    let mut columns = Vec::new();
    let mut timestamps = Vec::new();
    for metric in [
        "promlearn_value",
        "promlearn_yhat",
        "promlearn_yhat_lower",
        "promlearn_yhat_upper",
        "promlearn_anomaly_score",
        // The alert counter, not the newest point's 0/1 flag: a flag on a point that was not
        // the newest of its inference round, or overwritten before a scrape, still counts.
        "promlearn_anomalies_total",
    ] {
        let matrix = client
            .query_range(&range(metric)?)
            .await
            .with_context(|| format!("reading {metric} of query {query} back from Prometheus"))?;
        if timestamps.is_empty() {
            timestamps = matrix.timestamps().to_vec();
        }
        let column: Vec<f64> = if matrix.n_series() == 0 {
            vec![f64::NAN; timestamps.len()]
        } else {
            // Align on the first column's timestamps (every metric comes from the same scrapes).
            timestamps
                .iter()
                .map(|t| {
                    matrix
                        .timestamps()
                        .binary_search(t)
                        .ok()
                        .and_then(|row| matrix.get(row, 0))
                        .unwrap_or(f64::NAN)
                })
                .collect()
        };
        columns.push(column);
    }
    // A point is flagged where the counter went up since the previous scrape.
    let mut previous = f64::NAN;
    let anomalous = columns[5]
        .iter()
        .map(|&count| {
            let up = count > previous;
            if count.is_finite() {
                previous = count;
            }
            up
        })
        .collect();
    let mut columns = columns.into_iter();
    let mut next = || columns.next().expect("six columns");
    Ok(Analysis {
        detector: format!("{detector} ({query})"),
        timestamps,
        values: next(),
        yhat: next(),
        yhat_lower: next(),
        yhat_upper: next(),
        score: next(),
        anomalous,
    })
}

/// The times at which `ALERTS{alertname="PromlearnAnomaly", query=...}` was firing.
async fn firing_times(
    client: &Client,
    query: &str,
    start_ms: i64,
    end_ms: i64,
) -> anyhow::Result<Vec<i64>> {
    let range = RangeQuery::new(
        format!(
            "max(ALERTS{{alertname=\"{ALERT_NAME}\",alertstate=\"firing\",query=\"{query}\"}})"
        ),
        start_ms,
        end_ms,
        Duration::from_secs(1),
    )?;
    let matrix = client.query_range(&range).await?;
    if matrix.n_series() == 0 {
        return Ok(Vec::new());
    }
    Ok(matrix
        .timestamps()
        .iter()
        .zip(matrix.column(0))
        .filter(|(_, v)| v.is_finite())
        .map(|(t, _)| *t)
        .collect())
}

/// The anomaly run's checks, for `--check`: each reads what Prometheus recorded.
pub fn checks(outcome: &AnomalyOutcome) -> Vec<(&'static str, bool)> {
    let every = |f: &dyn Fn(&DetectorOutcome) -> bool| {
        !outcome.detectors.is_empty() && outcome.detectors.iter().all(f)
    };
    let caught = |d: &DetectorOutcome, event: usize| {
        d.score
            .events_found
            .get(event)
            .is_some_and(|(_, found)| *found)
    };
    vec![
        (
            "every detector flagged the drop (recall 1.00 with the spike)",
            every(&|d| caught(d, 0)),
        ),
        (
            "every detector flagged the spike",
            every(&|d| caught(d, SPIKE)),
        ),
        (
            "every detector's flags were mostly on the events (precision >= 0.50)",
            every(&|d| d.score.flags > 0 && d.score.precision >= 0.5),
        ),
        (
            "the alert fired in Prometheus within 20 s of the drop, for the drop",
            outcome.first_alert_after(0).is_some_and(|s| s <= 20.0),
        ),
        (
            "the alert fired in Prometheus within 20 s of the spike, for the spike",
            outcome.first_alert_after(SPIKE).is_some_and(|s| s <= 20.0),
        ),
        (
            "no alert fired before the first injected event (the rhythm alone is normal)",
            every(&|d| d.alert_before_events_s.is_none()),
        ),
    ]
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

fn plot_path() -> PathBuf {
    repository_root()
        .join("target")
        .join("promlearn-demo")
        .join("anomaly.png")
}
