//! Explore's form read as the file's query blocks.

use super::*;

fn explorer() -> Explorer {
    let base = Config::from_toml(
        "endpoint = \"http://127.0.0.1:1\"\n[[query]]\nname = \"q\"\nexpr = \"up\"\ndetector = { kind = \"zscore\" }\n",
        "watch.toml",
    )
    .unwrap();
    Explorer::new(base)
}

fn request(form: QueryForm, detectors: &[&str]) -> Request {
    Request {
        form,
        detectors: detectors.iter().map(|d| d.to_string()).collect(),
        from_ms: 0,
        to_ms: 3_600_000,
        query: None,
        series: None,
    }
}

#[test]
fn the_form_gets_the_files_own_messages_and_its_blocks_read_back() {
    let explorer = explorer();
    let form = QueryForm {
        expr: "rate(x[1m]".into(),
        step: "1m".into(),
        ..Default::default()
    };
    let err = explorer
        .queries(None, &request(form, &["{ kind = \"zscore\" }"]))
        .unwrap_err();
    assert!(err.contains("expr is not valid PromQL"), "{err}");
    let form = QueryForm {
        expr: "up".into(),
        step: "1m".into(),
        ..Default::default()
    };
    let err = explorer
        .queries(
            None,
            &request(form.clone(), &["{ kind = \"zscore\", window = 0 }"]),
        )
        .unwrap_err();
    assert!(
        err.starts_with("explore.toml:") && err.contains("detector"),
        "{err}"
    );
    let (queries, toml, _) = explorer
        .queries(
            None,
            &request(
                form,
                &["{ kind = \"zscore\", window = 12 }", "{ kind = \"mad\" }"],
            ),
        )
        .unwrap();
    assert_eq!(queries.len(), 2);
    assert_eq!(queries[0].name, "explore_1");
    // "Copy as TOML" reads back as the same queries.
    let again =
        Config::from_toml(&format!("endpoint = \"http://x\"\n{toml}"), "copy.toml").unwrap();
    assert_eq!(again.queries[1].detector, queries[1].detector);
    assert_eq!(
        detector_toml(&queries[0].detector),
        detector_toml(&again.queries[0].detector)
    );
    assert!(detector_toml(&queries[0].detector).starts_with("{ kind = \"zscore\""));
}

#[test]
fn what_a_team_knows_fills_the_form_and_reads_back_the_same() {
    let explorer = explorer();
    for lines in [
        "direction = \"up\"\nmin_deviation = { absolute = 5, relative = 0.1 }\ndata_range = [0, 100]\n",
        "direction = \"down\"\ndata_range = [0, inf]\n",
        "min_deviation = { relative = 0.25 }\ndata_range = [-inf, 1]\n",
        "min_deviation = { absolute = 1e-9 }\ndata_range = [-1e21, 1e300]\n",
        "",
    ] {
        let file = Config::from_toml(
            &format!(
                "endpoint = \"http://x\"\n[[query]]\nname = \"q\"\nexpr = \"up\"\n\
                 detector = {{ kind = \"mad\" }}\n{lines}"
            ),
            "watch.toml",
        )
        .unwrap();
        let form = QueryForm::of(&file.queries[0]);
        let (queries, toml, _) = explorer.queries(None, &request(form.clone(), &[])).unwrap();
        assert_eq!(
            queries[0].knowledge, file.queries[0].knowledge,
            "{lines}\n{toml}"
        );
        assert_eq!(
            form.block().contains("direction"),
            lines.contains("direction")
        );
    }
    let form = QueryForm {
        expr: "up".into(),
        detector: "{ kind = \"mad\" }".into(),
        data_range_low: "100".into(),
        data_range_high: "0".into(),
        ..Default::default()
    };
    let err = explorer.queries(None, &request(form, &[])).unwrap_err();
    assert!(
        err.starts_with("explore.toml:") && err.contains("data_range"),
        "{err}"
    );
}

#[test]
fn a_replay_in_parts_holds_what_one_replay_holds() {
    let step = 10_000;
    let t: Vec<i64> = (0..400).map(|i| 1_000_000_000 + i * step).collect();
    let series: Vec<(Labels, Vec<i64>, Vec<f64>)> = (0..7)
        .map(|s| {
            let v = t
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    let spike = if i == 300 + s * 7 { 50.0 } else { 0.0 };
                    10.0 + s as f64 + (i as f64 * 0.4).sin() + spike
                })
                .collect();
            (
                Labels::from_pairs([("instance", format!("node-{s}"))]),
                t.clone(),
                v,
            )
        })
        .collect();
    let source = crate::backtest::MemorySource::new(series).unwrap();
    let config = Config::from_toml(
        "endpoint = \"http://x\"\n\
         [[query]]\nname = \"z\"\nexpr = \"x\"\nstep = \"10s\"\nfit_every = \"5m\"\nfit_window = \"10m\"\ndetector = { kind = \"zscore\", window = 8 }\n\
         [[query]]\nname = \"m\"\nexpr = \"x\"\nstep = \"10s\"\nfit_every = \"5m\"\nfit_window = \"10m\"\ndetector = { kind = \"mad\", window = 8 }\n",
        "explore.toml",
    )
    .unwrap();
    let job = Job {
        id: 1,
        toml: String::new(),
        from_ms: t[100],
        to_ms: t[399],
        cancel: AtomicBool::new(false),
        reached_ms: AtomicI64::new(0),
        started: Instant::now(),
        phase: Mutex::new(Phase::Replaying),
    };
    let counts = |o: &Outcome| -> Vec<(u64, u64, u64, u64, u64, u64)> {
        o.detectors
            .iter()
            .map(|c| (c.series, c.points, c.judged, c.flagged, c.alerts, c.fits))
            .collect()
    };
    let points = |o: &Outcome| -> Vec<(Labels, String)> {
        o.series
            .iter()
            .map(|s| (s.labels.clone(), serde_json::to_string(&s.columns).unwrap()))
            .collect()
    };
    let one = replay::in_parts(&job, &config, &source, 1).unwrap();
    assert!(
        one.detectors.iter().all(|c| c.flagged > 0),
        "{:?}",
        counts(&one)
    );
    for threads in [2, 3, 16] {
        let parts = replay::in_parts(&job, &config, &source, threads).unwrap();
        assert_eq!(counts(&parts), counts(&one), "{threads} threads");
        assert_eq!(points(&parts), points(&one), "{threads} threads");
    }
}
