//! The DevOps corpus's own checks: NAB's rules, the incidents' shapes, and the committed
//! files against the generator.

use super::*;

#[test]
fn the_corpus_starts_on_a_monday_and_keeps_nab_s_rules() {
    assert_eq!(format_timestamp(START_MS), "2026-01-05 00:00:00");
    let all = scenarios();
    assert_eq!(all.len(), 12);
    let mut kinds = Vec::new();
    for s in &all {
        assert_eq!(s.values.len(), DAYS * DAY, "{}", s.name);
        assert!(s.values.iter().all(|v| v.is_finite()), "{}", s.name);
        let w = s.windows();
        for pair in w.windows(2) {
            assert!(pair[0].end < pair[1].start, "{}: windows overlap", s.name);
        }
        for &(a, kind) in &s.incidents {
            // After probation and two weeks of history.
            assert!(a >= 14 * DAY, "{}: an incident at row {a}", s.name);
            kinds.push(kind);
        }
    }
    for kind in Incident::ALL {
        assert!(kinds.contains(&kind), "no {}", kind.name());
    }
    // NAB's rule: 10 % of 10,080 rows over 2 anomalies is 504 rows, 252 each side.
    let s = all.iter().find(|s| s.incidents.len() == 2).unwrap();
    let w = s.windows()[0];
    assert_eq!((w.end - w.start) / STEP_MS, 504);
    assert_eq!(w.start, s.timestamps[s.incidents[0].0 - 252]);
}

#[test]
fn a_stuck_exporter_holds_its_value_for_hours() {
    let s = scenarios()
        .into_iter()
        .find(|s| s.name.ends_with("search_p99.csv"))
        .unwrap();
    let (a, kind) = s.incidents[1];
    assert_eq!(kind, Incident::StuckExporter);
    assert!(
        s.values[a..a + 5 * HOUR]
            .iter()
            .all(|&v| v == s.values[a - 1])
    );
    assert_ne!(s.values[a - 2], s.values[a - 1]);
}

#[test]
fn the_committed_corpus_is_what_the_generator_writes() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/devops");
    if std::env::var_os("PROMLEARN_WRITE_DEVOPS").is_some() {
        write_corpus(&committed).unwrap();
    }
    let fresh = tempfile::tempdir().unwrap();
    write_corpus(fresh.path()).unwrap();
    let mut rels = vec![
        "labels/combined_windows.json".to_owned(),
        "labels/combined_labels.json".to_owned(),
        "config/profiles.json".to_owned(),
    ];
    rels.extend(scenarios().iter().map(|s| format!("data/{}", s.name)));
    for rel in rels {
        let want = std::fs::read(fresh.path().join(&rel)).unwrap();
        let got = std::fs::read(committed.join(&rel)).unwrap_or_default();
        assert!(
            want == got,
            "fixtures/devops/{rel} differs from what the generator writes: run \
             `PROMLEARN_WRITE_DEVOPS=1 cargo test -p promlearn-nab devops` and commit it"
        );
    }
    // And it loads as NAB's corpus does, with the generated corpus's windows.
    let loaded = Corpus::load(&committed).unwrap();
    let made = corpus().unwrap();
    assert_eq!(loaded.files().len(), made.files().len());
    for (l, m) in loaded.files().iter().zip(made.files()) {
        assert_eq!((l.name(), l.windows()), (m.name(), m.windows()));
        assert_eq!(l.values(), m.values(), "{}", l.name());
    }
}
