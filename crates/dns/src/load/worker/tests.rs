//! The in-flight ring's ids and expiry, and the worker's accounting.

use super::*;

#[test]
fn in_flight_ids_are_distinct_and_expire() {
    let mut in_flight = InFlight::new(4, u16::MAX - 1);
    let t0 = Instant::now();
    let ids: Vec<u16> = (0..4)
        .map(|_| {
            let id = in_flight.free_id();
            in_flight.insert(id, t0);
            id
        })
        .collect();
    assert_eq!(ids, [u16::MAX - 1, u16::MAX, 0, 1]);
    assert_eq!(in_flight.count, 4);
    assert_eq!(in_flight.take(0).map(|s| s.id), Some(0));
    assert!(in_flight.take(0).is_none(), "an answer counts once");
    assert!(in_flight.take(77).is_none(), "strays are not in flight");
    assert_eq!(in_flight.expire(t0), 0);
    assert_eq!(in_flight.expire(t0 + Duration::from_millis(1)), 3);
    assert_eq!(in_flight.count, 0);
}

#[test]
fn a_busy_slot_is_skipped_when_ids_wrap() {
    let mut in_flight = InFlight::new(8, 0);
    let now = Instant::now();
    let first = in_flight.free_id();
    in_flight.insert(first, now); // id 0 stays in flight
    for _ in 0..15 {
        let id = in_flight.free_id();
        in_flight.insert(id, now);
        in_flight.take(id).unwrap();
    }
    // Id 16 shares slot 0 with id 0, which is still in flight.
    assert_eq!(in_flight.free_id(), 17);
}

#[test]
fn rcodes_are_tallied_by_full_code() {
    let config = LoadConfig::new(
        "127.0.0.1:9".parse().unwrap(),
        crate::Profile::constant(1.0),
        1,
        Duration::from_secs(1),
    );
    let plan = Arc::new(Plan::new(&config));
    let shared = Arc::new(Shared::new());
    let mut worker = Worker::new(plan.clone(), shared.clone(), 8, Some(1));
    let now = Instant::now();
    let answer_for = |worker: &mut Worker, rcode: u16| {
        let built = worker.build(0);
        let id = built.id;
        worker.sent(built, now);
        let mut answer = worker.query.clone();
        answer[2] |= 0x80;
        answer[3] = (rcode & 0x0f) as u8;
        // The OPT record is the last 11 bytes; its TTL's first byte is the extended rcode.
        let opt = answer.len() - 11;
        answer[opt + 5] = (rcode >> 4) as u8;
        worker.answer(&answer, now + Duration::from_micros(250));
        id
    };
    for rcode in [0, 0, 3, 2, 23] {
        answer_for(&mut worker, rcode);
    }
    // A duplicate answer and garbage are not answers.
    let id = answer_for(&mut worker, 0);
    let mut again = worker.query.clone();
    again[0..2].copy_from_slice(&id.to_be_bytes());
    again[2] |= 0x80;
    worker.answer(&again, now);
    worker.answer(&[1, 2, 3], now);

    let mut report_stats = WorkerStats::new(&plan);
    report_stats.merge(worker.stats);
    let report = report_stats.into_report(
        &plan,
        Duration::ZERO,
        Duration::from_secs(1),
        vec![],
        &shared,
    );
    assert_eq!(report.sent, 6);
    assert_eq!(
        report.answers,
        BTreeMap::from([
            (Rcode::NOERROR, 3),
            (Rcode::SERVFAIL, 1),
            (Rcode::NXDOMAIN, 1),
            (Rcode(23), 1)
        ])
    );
    assert_eq!(report.answered(), 6);
    assert_eq!(report.unexpected, 2);
    assert_eq!(report.sent_by_type, BTreeMap::from([(RecordType::A, 6)]));
    assert_eq!(report.latency().p50, Duration::from_micros(250));
    assert_eq!(shared.answered.load(Ordering::Relaxed), 6);
}
