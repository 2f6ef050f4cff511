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
