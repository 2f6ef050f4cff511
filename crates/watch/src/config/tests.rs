//! The configuration file's parsing and its messages.

use super::*;

const GOOD: &str = r#"# a comment
endpoint = "http://localhost:9090"
listen = "127.0.0.1:0"
stale_after = "2m"
max_series = 50

[[query]]
name = "dns_rate"
expr = "sum by (type) (rate(coredns_dns_requests_total[5s]))"
step = "1s"
detector = { kind = "zscore", window = 30, threshold = 4.0 }
fit_every = "30s"
fit_window = "5m"
infer_every = "2s"

[[query]]
name = "lstm"
expr = "sum(rate(coredns_dns_requests_total[5s]))"
step = 1
detector = { kind = "mad" }
fit_window = "10m"
"#;

fn err(text: &str) -> String {
    Config::from_toml(text, "watch.toml")
        .unwrap_err()
        .to_string()
}

#[test]
fn a_good_file_parses_with_defaults() {
    let c = Config::from_toml(GOOD, "watch.toml").unwrap();
    assert_eq!(c.endpoint, "http://localhost:9090");
    assert_eq!(c.stale_after, Duration::from_secs(120));
    assert_eq!(c.max_series, 50);
    assert_eq!(c.queries.len(), 2);
    let q = &c.queries[0];
    assert_eq!(
        (q.line, q.step, q.infer_every),
        (7, Duration::from_secs(1), Duration::from_secs(2))
    );
    assert_eq!(q.fit_points(), 300);
    let q = &c.queries[1];
    assert_eq!(q.line, 16);
    assert_eq!(q.infer_every, Duration::from_secs(1));
    assert_eq!(q.fit_every, DEFAULT_FIT_EVERY);
    assert_eq!(q.detector.name(), "mad");
    assert!(c.summary().contains("dns_rate (zscore)"), "{}", c.summary());
}

#[test]
fn unknown_fields_name_the_line_and_field() {
    let text = GOOD.replace("fit_every = \"30s\"", "fit_evry = \"30s\"");
    let e = err(&text);
    assert!(e.starts_with("watch.toml:12"), "{e}");
    assert!(e.contains("fit_evry"), "{e}");
    let e = err("endpoint = \"http://x:9090\"\nlistn = \"1\"\n");
    assert!(e.starts_with("watch.toml:2"), "{e}");
    assert!(e.contains("listn"), "{e}");
}

#[test]
fn unknown_detector_fields_and_kinds_are_errors() {
    let e = err(&GOOD.replace("threshold = 4.0", "treshold = 4.0"));
    assert!(e.starts_with("watch.toml:11"), "{e}");
    assert!(e.contains("treshold"), "{e}");
    let e = err(&GOOD.replace("kind = \"mad\"", "kind = \"prophet\""));
    assert!(e.starts_with("watch.toml:20"), "{e}");
    assert!(e.contains("prophet"), "{e}");
}

#[test]
fn type_and_duration_errors_name_the_field() {
    let e = err(&GOOD.replace("max_series = 50", "max_series = \"fifty\""));
    assert!(e.starts_with("watch.toml:5"), "{e}");
    assert!(e.contains("max_series"), "{e}");
    let e = err(&GOOD.replace("fit_window = \"5m\"", "fit_window = \"5 minutes\""));
    assert!(e.starts_with("watch.toml:13"), "{e}");
    assert!(e.contains("fit_window") && e.contains("5 minutes"), "{e}");
}

#[test]
fn numbers_are_seconds_read_by_the_one_duration_grammar() {
    let c = Config::from_toml(
        &GOOD.replace("fit_window = \"5m\"", "fit_window = 300.5"),
        "watch.toml",
    )
    .unwrap();
    assert_eq!(c.queries[0].fit_window, Duration::from_millis(300_500));
    // What the grammar refuses in a string it refuses in a number, with its own words.
    for (number, text) in [("-1", "\"-1\""), ("-0.5", "\"-0.5\""), ("nan", "\"nan\"")] {
        let of = |v: &str| err(&GOOD.replace("fit_window = \"5m\"", &format!("fit_window = {v}")));
        let (e, said) = (of(number), of(text));
        let reason = promlearn_duration::parse(number).unwrap_err().reason;
        assert!(
            e.starts_with("watch.toml:13") && e.contains(reason),
            "{number}: {e}"
        );
        assert!(said.contains(reason), "{text}: {said}");
    }
}

#[test]
fn semantic_errors_name_the_line_query_and_field() {
    let e = err(&GOOD.replace("fit_window = \"5m\"", "fit_window = \"10s\""));
    assert!(
        e.starts_with("watch.toml:13: query `dns_rate`: fit_window (10s = 10 points"),
        "{e}"
    );
    assert!(e.contains("min_history"), "{e}");
    let e = err(&GOOD.replace("listen = \"127.0.0.1:0\"", "listen = \"localhost\""));
    assert!(e.starts_with("watch.toml:3: listen"), "{e}");
    let e = err(&GOOD.replace("name = \"lstm\"", "name = \"dns_rate\""));
    assert!(
        e.starts_with("watch.toml:17:") && e.contains("line 7"),
        "{e}"
    );
    let e = err(&GOOD.replace("fit_every = \"30s\"", "fit_every = \"1s\""));
    assert!(
        e.starts_with("watch.toml:12: query `dns_rate`: fit_every"),
        "{e}"
    );
    let e = err(&GOOD.replace("http://localhost:9090", "localhost:9090"));
    assert!(e.starts_with("watch.toml:2: endpoint"), "{e}");
    let e = err("endpoint = \"http://localhost:9090\"\n");
    assert!(e.contains("no [[query]]"), "{e}");
    let e = err(&GOOD.replace("step = \"1s\"", "step = \"1.5ms\""));
    assert!(
        e.starts_with("watch.toml:10: query `dns_rate`: step"),
        "{e}"
    );
}

#[test]
fn a_missing_required_field_names_it() {
    let e = err(&GOOD.replace("expr = \"sum(rate(coredns_dns_requests_total[5s]))\"\n", ""));
    assert!(e.starts_with("watch.toml:"), "{e}");
    assert!(e.contains("expr"), "{e}");
}

#[test]
fn load_names_the_file_and_resolves_secret_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.toml");
    std::fs::write(
        &path,
        GOOD.replace(
            "max_series = 50",
            "max_series = 50\nbearer_token_file = \"token\"",
        ),
    )
    .unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(
        c.auth.bearer_token_file.as_deref(),
        Some(dir.path().join("token").as_path())
    );
    let missing = Config::load(dir.path().join("nope.toml"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.toml"), "{missing}");
    std::fs::write(&path, "endpoint = 1\n").unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:1", path.display())), "{e}");
}

#[test]
fn what_a_team_knows_parses_per_query_and_bad_values_name_the_line() {
    let text = GOOD.replace(
        "infer_every = \"2s\"",
        "infer_every = \"2s\"\ndirection = \"up\"\nmin_deviation = { absolute = 5, relative = 0.1 }\ndata_range = [0, 100]",
    );
    let c = Config::from_toml(&text, "watch.toml").unwrap();
    let k = c.queries[0].knowledge;
    assert_eq!(k.direction, Direction::Up);
    assert_eq!(
        k.min_deviation,
        MinDeviation {
            absolute: 5.0,
            relative: 0.1
        }
    );
    assert_eq!(k.data_range, Some([0.0, 100.0]));
    assert!(c.queries[1].knowledge.is_unset(), "unset by default");
    for (bad, line, says) in [
        ("direction = \"sideways\"", 15, "sideways"),
        ("min_deviation = { absolute = -5 }", 15, "min_deviation"),
        ("min_deviation = { absolut = 5 }", 15, "absolut"),
        ("data_range = [100, 0]", 15, "data_range"),
        ("data_range = [1, 1]", 15, "below highest"),
        ("data_range = [0]", 15, "data_range"),
    ] {
        let e = err(&GOOD.replace(
            "infer_every = \"2s\"",
            &format!("infer_every = \"2s\"\n{bad}"),
        ));
        assert!(
            e.starts_with(&format!("watch.toml:{line}")) && e.contains(says),
            "{bad}: {e}"
        );
    }
}

#[test]
fn a_preset_adds_its_queries_and_an_unknown_one_names_the_presets() {
    let text = GOOD.replace("max_series = 50", "max_series = 50\npreset = \"node\"");
    let c = Config::from_toml(&text, "watch.toml").unwrap();
    assert!(c.queries.len() > 2);
    assert_eq!(c.queries[0].name, "node_cpu_busy");
    assert_eq!(c.queries.last().unwrap().name, "lstm");
    let e = err(&GOOD.replace("max_series = 50", "max_series = 50\npreset = \"nod\""));
    assert!(e.starts_with("watch.toml:6") && e.contains("node"), "{e}");
    // The preset alone is enough.
    let c = Config::from_toml(
        "endpoint = \"http://x:9090\"\npreset = \"node\"\n",
        "w.toml",
    )
    .unwrap();
    assert_eq!(c.endpoint, "http://x:9090");
}
