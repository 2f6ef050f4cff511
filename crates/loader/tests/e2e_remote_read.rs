//! End to end: remote read (streamed XOR chunks and SAMPLES) against a real Prometheus, and
//! VictoriaMetrics' export, each equal to the JSON API's load of the same raw samples.

mod support;

use std::time::Duration;

use promlearn_loader::{Client, Error, RawSeries, Via};
use support::{BackfilledPrometheus, KNOWN_POINTS, Known, SeriesData, Victoria};

fn client(url: &str) -> Client {
    Client::builder(url)
        .no_proxy()
        .raw_chunk(Duration::from_secs(3600))
        .build()
        .unwrap()
}

/// Every series, timestamp and value (to the bit) alike; says where they first differ.
fn assert_same(what: &str, a: &RawSeries, b: &RawSeries) {
    assert_alike(what, a, b, false)
}

/// As `assert_same`, but with -0 equal to +0 where `signless_zero`: Prometheus's SAMPLES answer
/// loses the sign of zero (its protobuf encoder leaves out a value equal to 0, and -0 is).
fn assert_alike(what: &str, a: &RawSeries, b: &RawSeries, signless_zero: bool) {
    assert_eq!(a.series.len(), b.series.len(), "{what}: series");
    for (x, y) in a.series.iter().zip(&b.series) {
        assert_eq!(x.labels, y.labels, "{what}");
        assert_eq!(
            x.timestamps.len(),
            y.timestamps.len(),
            "{what}: {}",
            x.labels
        );
        let first = (0..x.timestamps.len()).find(|&i| {
            let zeros = signless_zero && x.values[i] == 0.0 && y.values[i] == 0.0;
            x.timestamps[i] != y.timestamps[i]
                || (x.values[i].to_bits() != y.values[i].to_bits() && !zeros)
        });
        assert_eq!(first, None, "{what}: {} differs at that sample", x.labels);
    }
}

/// The data as stored, in `[lo, hi]`, as the loader should return it.
fn expected(series: &[&SeriesData], lo: i64, hi: i64) -> RawSeries {
    let mut out: Vec<promlearn_loader::Series> = series
        .iter()
        .map(|s| promlearn_loader::Series {
            labels: s.label_set(),
            timestamps: s
                .samples
                .iter()
                .map(|p| p.0)
                .filter(|t| (lo..=hi).contains(t))
                .collect(),
            values: s
                .samples
                .iter()
                .filter(|p| (lo..=hi).contains(&p.0))
                .map(|p| if p.1.is_nan() { f64::NAN } else { p.1 })
                .collect(),
        })
        .filter(|s| !s.timestamps.is_empty())
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    RawSeries {
        series: out,
        warnings: vec![],
    }
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn remote_read_equals_the_json_load_of_the_same_samples() {
    let known = Known::new();
    let prometheus = BackfilledPrometheus::start(&known.all()).await;
    let c = client(&prometheus.url);
    let last = known.base + (KNOWN_POINTS - 1) * 1000;
    // Whole range, a range cut inside chunks at both ends (streamed chunks reach past it), and
    // one series by a regex matcher and a label with an escaped quote.
    let cases = [
        ("known_gauge", known.base, last + 250),
        ("known_gauge", known.base + 61_700, known.base + 7_300_100),
        (
            r#"{__name__=~"known_.+", series!="b"}"#,
            known.base - 5_000,
            last,
        ),
        (
            r#"known_gauge{extra="x\"y"}"#,
            known.base + 1,
            known.base + 999,
        ),
    ];
    for (selector, lo, hi) in cases {
        let json = c.load_raw_via(selector, lo, hi, Via::Json).await.unwrap();
        assert_eq!(json.via, Via::Json);
        let want: Vec<&SeriesData> = [&known.a, &known.b, &known.gap]
            .into_iter()
            .filter(|s| json.data.series.iter().any(|j| j.labels == s.label_set()))
            .collect();
        assert!(!json.data.series.is_empty() || selector.contains("extra"));
        // The JSON load itself is the data as stored: the reference is right.
        assert_same(selector, &json.data, &expected(&want, lo, hi));
        for via in [Via::RemoteRead, Via::RemoteReadSamples, Via::Auto] {
            let load = c.load_raw_via(selector, lo, hi, via).await;
            let load = load.unwrap_or_else(|e| panic!("{selector} via {via}: {e}"));
            let expected_via = if via == Via::RemoteReadSamples {
                Via::RemoteReadSamples
            } else {
                Via::RemoteRead
            };
            assert_eq!(load.via, expected_via, "{selector} via {via}");
            let samples = via == Via::RemoteReadSamples;
            assert_alike(
                &format!("{selector} via {via}"),
                &load.data,
                &json.data,
                samples,
            );
            assert!(load.data.warnings.is_empty());
        }
    }
    // The whole data set has the special values (NaN, infinities, -0, subnormals) at 100..=107.
    let all = c.load_raw("known_gauge", known.base, last).await.unwrap();
    assert_eq!(all.data.sample_count(), 2 * KNOWN_POINTS as usize - 1);

    // Not a plain selector: the JSON API judges it, as it does without remote read.
    let e = c
        .load_raw("rate(known_gauge[1m])", known.base, known.base + 60_000)
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::UnexpectedResultType { .. } | Error::Api { .. }),
        "{e}"
    );
    let forced = c
        .load_raw_via(
            "rate(known_gauge[1m])",
            known.base,
            known.base + 1,
            Via::RemoteRead,
        )
        .await
        .unwrap_err();
    assert!(matches!(forced, Error::InvalidArgument(_)), "{forced}");
    // Export is not Prometheus's: a forced export names the refusal.
    let refused = c
        .load_raw_via("known_gauge", known.base, known.base + 1, Via::Export)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Refused { status: 404, .. }),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("does not serve it"),
        "{refused}"
    );
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn victoria_metrics_loads_by_export_and_says_no_to_remote_read() {
    let known = Known::new();
    let mut a = known.a.clone();
    // VictoriaMetrics' decimal storage loses the extreme values (see e2e_victoria.rs).
    a.samples
        .retain(|(t, _)| !(100..=107).contains(&((t - known.base) / 1000)));
    let vm = Victoria::start(&[a.clone(), known.b.clone()]).await;
    let c = client(&vm.url);
    let last = known.base + (KNOWN_POINTS - 1) * 1000;
    for (lo, hi) in [
        (known.base, last + 250),
        (known.base + 61_700, known.base + 7_300_100),
    ] {
        let json = c
            .load_raw_via("known_gauge", lo, hi, Via::Json)
            .await
            .unwrap();
        assert_same("json", &json.data, &expected(&[&a, &known.b], lo, hi));
        let export = c.load_raw_via("known_gauge", lo, hi, Via::Export).await;
        let export = export.unwrap_or_else(|e| panic!("{e}\n{}", vm.log()));
        assert_same("export", &export.data, &json.data);
    }
    // Auto: remote read is refused, export answers; the client remembers it.
    let auto = c.load_raw("known_gauge", known.base, last).await.unwrap();
    assert_eq!(auto.via, Via::Export);
    assert_eq!(
        auto.data.sample_count(),
        a.samples.len() + known.b.samples.len() - 1
    );
    let again = c
        .load_raw("known_gauge{series=\"b\"}", known.base, last)
        .await
        .unwrap();
    assert_eq!(again.via, Via::Export);
    let refused = c
        .load_raw_via("known_gauge", known.base, last, Via::RemoteRead)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Refused { status: 400, .. }),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("does not serve it"),
        "{refused}"
    );
}
