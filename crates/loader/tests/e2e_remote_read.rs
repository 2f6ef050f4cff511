//! End to end: remote read (streamed XOR chunks and SAMPLES) against real Prometheus 2.42 and 3,
//! and VictoriaMetrics' export, each equal to the JSON API's load of the same raw samples; on
//! Thanos Query, which has neither, `Via::Auto` finds the JSON API and a forced path is refused.

mod support;

use std::time::Duration;

use promlearn_loader::{Client, Error, RawSeries, Via, remote_read::RemoteReadError};
use support::{BackfilledPrometheus, Engine, KNOWN_POINTS, Known, SeriesData, Victoria};

mod prometheus_2 {
    #[tokio::test]
    #[ignore = "needs real servers: run cargo xtask e2e"]
    async fn remote_read_equals_the_json_load_of_the_same_samples() {
        super::remote_read_equals_the_json_load_of_the_same_samples(super::Engine::Prometheus2)
            .await
    }
}

mod prometheus_3 {
    #[tokio::test]
    #[ignore = "needs real servers: run cargo xtask e2e"]
    async fn remote_read_equals_the_json_load_of_the_same_samples() {
        super::remote_read_equals_the_json_load_of_the_same_samples(super::Engine::Prometheus3)
            .await
    }

    #[tokio::test]
    #[ignore = "needs real servers: run cargo xtask e2e"]
    async fn native_histogram_chunks_are_refused_by_name_or_read_as_samples() {
        super::native_histogram_chunks_are_refused_by_name_or_read_as_samples().await
    }
}

mod thanos {
    #[tokio::test]
    #[ignore = "needs real servers: run cargo xtask e2e"]
    async fn remote_read_equals_the_json_load_of_the_same_samples() {
        super::remote_read_equals_the_json_load_of_the_same_samples(super::Engine::Thanos).await
    }
}

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

async fn remote_read_equals_the_json_load_of_the_same_samples(engine: Engine) {
    let known = Known::new();
    let prometheus = BackfilledPrometheus::start_on(engine, &known.all()).await;
    // Thanos Query serves neither remote read nor export: the JSON API is the only path.
    let remote = engine != Engine::Thanos;
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
        if !remote {
            let auto = c.load_raw_via(selector, lo, hi, Via::Auto).await.unwrap();
            assert_eq!(auto.via, Via::Json, "{selector}");
            assert_same(selector, &auto.data, &json.data);
            for via in [Via::RemoteRead, Via::RemoteReadSamples] {
                let e = c.load_raw_via(selector, lo, hi, via).await.unwrap_err();
                assert!(matches!(e, Error::Refused { status: 404, .. }), "{e}");
                assert!(e.to_string().contains("does not serve it"), "{e}");
            }
            continue;
        }
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
    // Export is not Prometheus's (nor Thanos's): a forced export names the refusal.
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

/// Prometheus 3 scrapes itself with native histograms on (the testbed's set-up): streamed remote
/// read refuses their chunks by name; SAMPLES, and `Via::Auto` by falling back to it, load the
/// float series beside them and warn about each histogram series.
async fn native_histogram_chunks_are_refused_by_name_or_read_as_samples() {
    let known = Known::new();
    let prometheus = BackfilledPrometheus::start_on(Engine::Prometheus3, &known.all()).await;
    let c = client(&prometheus.url);
    let histogram = "prometheus_http_request_duration_seconds";
    let selector = format!("{{__name__=~\"{histogram}|up\"}}");
    // Wait, through the JSON API, until the histogram has samples in the last 10 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (lo, hi) = loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let json = c
            .load_raw_via(&selector, now - 10_000, now, Via::Json)
            .await;
        if json.is_ok_and(|j| j.data.warnings.iter().any(|w| w.contains(histogram))) {
            break (now - 10_000, now);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no native histogram samples in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let e = c
        .load_raw_via(&selector, lo, hi, Via::RemoteRead)
        .await
        .unwrap_err();
    match &e {
        Error::RemoteRead {
            source: RemoteReadError::UnsupportedEncoding { series, name, .. },
            ..
        } => {
            assert_eq!(series.metric_name(), Some(histogram), "{e}");
            assert!(name.contains("HISTOGRAM"), "{e}");
        }
        other => panic!("expected an unsupported chunk encoding, got {other}"),
    }
    assert!(e.to_string().contains("SAMPLES"), "{e}");
    for via in [Via::RemoteReadSamples, Via::Auto] {
        let load = c.load_raw_via(&selector, lo, hi, via).await.unwrap();
        assert_eq!(load.via, Via::RemoteReadSamples, "{via}");
        let names: Vec<_> = load
            .data
            .series
            .iter()
            .map(|s| s.labels.metric_name())
            .collect();
        assert!(names.contains(&Some("up")), "{via}: {names:?}");
        assert!(!names.contains(&Some(histogram)), "{via}: {names:?}");
        assert!(
            load.data.warnings.iter().any(|w| w.contains(histogram)),
            "{via}: {:?}",
            load.data.warnings
        );
    }
}
