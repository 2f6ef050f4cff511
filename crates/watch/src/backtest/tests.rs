//! The schedule on the simulated clock: what fits and inferences see, how often they run, and
//! that every sample of the range reaches the sink exactly once. Stand-in models make what the
//! schedule handed them visible in their output.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use promlearn_detect::{Analysis, DetectorSpec, Fitted};
use promlearn_loader::Labels;

use super::*;
use crate::tests::StandIn;

const STEP: i64 = 10_000;
const FROM: i64 = 1_000_000_000;

fn config(extra: &str) -> Config {
    Config::from_toml(
        &format!(
            r#"
endpoint = "http://localhost:9090"
stale_after = "1h"
[[query]]
name = "q"
expr = "x"
step = "10s"
infer_every = "10s"
fit_every = "60s"
fit_window = "100s"
detector = {{ kind = "zscore", window = 5 }}
{extra}
"#
        ),
        "test.toml",
    )
    .unwrap()
}

/// Judges every point it is given; its `yhat` is the newest timestamp the inference handed it,
/// so a judged point shows what its inference could see. Values of 1e6 or more are anomalous.
fn echo(_spec: &DetectorSpec, timestamps: &[i64], values: &[f64]) -> Analysis {
    let newest = timestamps.last().copied().unwrap_or(0) as f64;
    let n = values.len();
    Analysis {
        detector: "echo".into(),
        timestamps: timestamps.to_vec(),
        values: values.to_vec(),
        yhat: vec![newest; n],
        yhat_lower: vec![newest - 1e12; n],
        yhat_upper: vec![newest + 1e12; n],
        score: vec![0.5; n],
        anomalous: values.iter().map(|v| *v >= 1e6).collect(),
    }
}

/// One fit as the stand-in saw it: the first value (which series), the first and last timestamp.
type FitLog = Arc<Mutex<Vec<(f64, i64, i64)>>>;

fn echo_fit(log: FitLog) -> FitFn {
    Arc::new(move |spec: &DetectorSpec, t: &[i64], v: &[f64]| {
        log.lock()
            .unwrap()
            .push((v[0], *t.first().unwrap(), *t.last().unwrap()));
        Ok(Arc::new(StandIn {
            spec: spec.clone(),
            analyse: echo,
        }) as Arc<dyn Fitted>)
    })
}

fn labels(name: &str) -> Labels {
    Labels::from_pairs([("s", name)])
}

/// Every point the sink got: (series, timestamp) -> (value, yhat, judged, anomalous), and a
/// count of how often each came.
#[derive(Default)]
struct Collected {
    points: BTreeMap<(String, i64), (f64, f64, bool, bool)>,
    repeats: usize,
    order_ok: bool,
}

fn backtest(
    config: &Config,
    source: &MemorySource,
    from: i64,
    to: i64,
    fit: FitFn,
) -> (Summary, Collected) {
    let mut c = Collected {
        order_ok: true,
        ..Collected::default()
    };
    let mut newest: BTreeMap<String, i64> = BTreeMap::new();
    let summary = run_with(config, source, from, to, fit, &mut |p| {
        let name = p.labels.get("s").unwrap().to_owned();
        let last = newest.entry(name.clone()).or_insert(i64::MIN);
        c.order_ok &= p.timestamp_ms > *last;
        *last = p.timestamp_ms;
        let value = (p.value, p.yhat, p.judged(), p.anomalous);
        if c.points.insert((name, p.timestamp_ms), value).is_some() {
            c.repeats += 1;
        }
        Ok(())
    })
    .unwrap();
    (summary, c)
}

/// The tick that first reads a sample at `t` (ticks every STEP from FROM).
fn tick_of(t: i64) -> i64 {
    FROM + (t - FROM + STEP - 1).div_euclid(STEP) * STEP
}

#[test]
fn fits_see_nothing_after_their_tick_and_come_every_fit_every() {
    // One sample every 10 s from 200 s before the range, on the ticks.
    let t: Vec<i64> = (-20..=60).map(|i| FROM + i * STEP).collect();
    let v = vec![1.0; t.len()];
    let source = MemorySource::new(vec![(labels("a"), t, v)]).unwrap();
    let log = FitLog::default();
    let (summary, _) = backtest(
        &config(""),
        &source,
        FROM,
        FROM + 300_000,
        echo_fit(log.clone()),
    );
    // Fits at the first tick, then every 60 s; each on the 100 s up to its tick, nothing later.
    let expected: Vec<(f64, i64, i64)> = (0..=5)
        .map(|k| {
            let at = FROM + k * 60_000;
            (1.0, at - 90_000, at)
        })
        .collect();
    assert_eq!(*log.lock().unwrap(), expected);
    assert_eq!(summary.queries[0].fits, 6);
}

#[test]
fn every_sample_of_the_range_is_handed_on_once_and_judged_without_look_ahead() {
    // Irregular: gaps of 1 to 23 s, two samples within one tick, some exactly on ticks.
    let mut t = vec![FROM - 200_000];
    for i in 0..200 {
        let gap = [1_000, 23_000, 7_000, 10_000, 4_500][i % 5];
        t.push(t.last().unwrap() + gap);
    }
    let v: Vec<f64> = (0..t.len())
        .map(|i| if i == 50 { 1e6 } else { i as f64 })
        .collect();
    let (from, to) = (FROM, FROM + 600_000);
    let in_range: Vec<i64> = t
        .iter()
        .copied()
        .filter(|x| (from..=to).contains(x))
        .collect();
    let source = MemorySource::new(vec![(labels("a"), t.clone(), v.clone())]).unwrap();
    let (summary, c) = backtest(&config(""), &source, from, to, echo_fit(FitLog::default()));
    assert_eq!(c.repeats, 0);
    assert!(c.order_ok, "points reach the sink in time order");
    let got: Vec<i64> = c.points.keys().map(|(_, t)| *t).collect();
    assert_eq!(got, in_range, "every sample of the range, none else");
    // The first tick (FROM) fits; only what it read before that is unjudged.
    let unjudged: Vec<i64> = c
        .points
        .iter()
        .filter(|(_, p)| !p.2)
        .map(|(k, _)| k.1)
        .collect();
    assert_eq!(
        unjudged,
        in_range
            .iter()
            .copied()
            .filter(|x| *x <= FROM)
            .collect::<Vec<_>>()
    );
    for ((_, ts), (_, yhat, judged, _)) in &c.points {
        if *judged {
            // The inference that judged it saw it, and nothing after its tick.
            let newest = *yhat as i64;
            assert!(
                newest >= *ts && newest <= tick_of(*ts),
                "{ts}: saw up to {newest}"
            );
        }
    }
    let q = &summary.queries[0];
    assert_eq!(
        (q.series, q.points, q.judged, q.flagged),
        (
            1,
            in_range.len() as u64,
            (in_range.len() - unjudged.len()) as u64,
            1
        )
    );
    assert!(in_range.contains(&t[50]));
    // The same replay gives the same points.
    let (_, again) = backtest(&config(""), &source, from, to, echo_fit(FitLog::default()));
    assert_eq!(again.points, c.points);
}

#[test]
fn a_series_appearing_late_is_fitted_once_it_has_min_history() {
    let a: Vec<i64> = (-20..=60).map(|i| FROM + i * STEP).collect();
    // B starts 200 s into the range; min_history is window + 1 = 6 samples.
    let b: Vec<i64> = (20..=60).map(|i| FROM + i * STEP).collect();
    let source = MemorySource::new(vec![
        (labels("a"), a.clone(), vec![1.0; a.len()]),
        (labels("b"), b.clone(), vec![2.0; b.len()]),
    ])
    .unwrap();
    let log = FitLog::default();
    let (summary, c) = backtest(
        &config(""),
        &source,
        FROM,
        FROM + 600_000,
        echo_fit(log.clone()),
    );
    let fits_of_b: Vec<(i64, i64)> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|f| f.0 == 2.0)
        .map(|f| (f.1, f.2))
        .collect();
    // First fit at B's 6th sample, on exactly those six; then every 60 s.
    assert_eq!(fits_of_b[0], (b[0], b[5]));
    assert_eq!(fits_of_b[1], (b[2], b[11]), "(now - fit_window, now]");
    assert_eq!(fits_of_b.len(), 6);
    // B's samples up to its first fit are passed on unjudged, the rest judged.
    let judged_b: Vec<bool> = c
        .points
        .iter()
        .filter(|(k, _)| k.0 == "b")
        .map(|(_, p)| p.2)
        .collect();
    assert_eq!(judged_b.len(), b.len());
    assert!(judged_b[..6].iter().all(|j| !j) && judged_b[6..].iter().all(|j| *j));
    assert_eq!(summary.queries[0].series, 2);
}

#[test]
fn repeated_and_backward_samples_are_judged_once_each() {
    // A DST hour: 60..70 again after 70, then a step back 5 samples.
    let mut t: Vec<i64> = (0..=80).map(|i| FROM + i * STEP).collect();
    t.extend((60..=70).map(|i| FROM + i * STEP));
    t.extend((81..=90).map(|i| FROM + i * STEP));
    t.insert(50, FROM + 45 * STEP);
    let v: Vec<f64> = (0..t.len()).map(|i| i as f64).collect();
    let first = |ts: i64| v[t.iter().position(|x| *x == ts).unwrap()];
    let source = MemorySource::new(vec![(labels("a"), t.clone(), v.clone())]).unwrap();
    let (summary, c) = backtest(
        &config(""),
        &source,
        FROM,
        FROM + 90 * STEP,
        echo_fit(FitLog::default()),
    );
    assert_eq!(c.repeats, 0);
    assert_eq!(summary.queries[0].points, 91);
    // The first sample of a timestamp is kept.
    for ts in [FROM + 45 * STEP, FROM + 65 * STEP] {
        assert_eq!(c.points[&("a".to_owned(), ts)].0, first(ts));
    }
}

#[test]
fn the_range_and_the_source_are_checked() {
    let source = MemorySource::default()
        .with_query("nope", vec![(labels("a"), vec![1], vec![1.0])])
        .unwrap();
    let e = run(&config(""), &source, FROM, FROM + 1, &mut |_| Ok(())).unwrap_err();
    assert!(
        e.to_string().contains("`nope`") && e.to_string().contains("q"),
        "{e}"
    );
    let e = run(
        &config(""),
        &MemorySource::default(),
        10,
        5,
        &mut |_| Ok(()),
    )
    .unwrap_err();
    assert!(matches!(e, Error::EmptyRange { .. }), "{e}");
    // A failing sink stops the run with its error.
    let t: Vec<i64> = (-20..=5).map(|i| FROM + i * STEP).collect();
    let source = MemorySource::new(vec![(labels("a"), t.clone(), vec![1.0; t.len()])]).unwrap();
    let e = run(&config(""), &source, FROM, FROM + 50_000, &mut |_| {
        Err(io::Error::other("disk full"))
    })
    .unwrap_err();
    assert_eq!(e.to_string(), "writing a backtest point failed: disk full");
}

#[test]
fn csv_rows_quote_labels_and_leave_unjudged_cells_empty() {
    let l = Labels::from_pairs([("job", "a,b"), ("x", "q\"")]);
    let mut w = CsvWriter::new(Vec::new()).unwrap();
    w.write(&JudgedPoint::unjudged("q", &l, 1000, 2.5)).unwrap();
    w.write(&JudgedPoint {
        yhat: 2.0,
        yhat_lower: 1.0,
        yhat_upper: 3.0,
        score: 4.0,
        anomalous: true,
        ..JudgedPoint::unjudged("q", &l, 2000, f64::NAN)
    })
    .unwrap();
    let text = String::from_utf8(w.finish().unwrap()).unwrap();
    assert_eq!(
        text,
        format!(
            "{CSV_HEADER}\n1000,q,\"{{job=\"\"a,b\"\", x=\"\"q\\\"\"\"\"}}\",2.5,,,,,0\n\
             2000,q,\"{{job=\"\"a,b\"\", x=\"\"q\\\"\"\"\"}}\",NaN,2,1,3,4,1\n"
        )
    );
}

#[tokio::test]
async fn load_refuses_an_expr_that_is_not_promql_before_it_asks_anything() {
    // Nothing listens on port 1: had the load queried, the error would be a connection's.
    let config = Config::from_toml(
        "endpoint = \"http://127.0.0.1:1\"\n[[query]]\nname = \"q\"\nexpr = \"rate(up[5m]\"\nstep = \"10s\"\ndetector = { kind = \"zscore\" }\n",
        "explore.toml",
    )
    .unwrap();
    let error = load(&config, FROM, FROM + 60 * STEP).await.unwrap_err();
    assert!(matches!(error, Error::Config { line: 4, .. }), "{error}");
    assert!(error.to_string().contains("not valid PromQL"), "{error}");
}
