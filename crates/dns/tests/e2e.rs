//! Against a real CoreDNS scraped by a real Prometheus (the testbed): the generator's own
//! report must agree exactly with what CoreDNS counted, and our dig-like answer with dig's.

use std::{collections::BTreeMap, process::Command, time::Duration};

use promlearn_dns::{
    LoadConfig, LoadReport, Profile, Query, Transport,
    proto::rr::{DNSClass, RecordType},
};
use promlearn_testbed::{Sample, Testbed, TestbedConfig};

type Error = Box<dyn std::error::Error>;

/// Prometheus scrapes every second and its first sample can take ~5 s: poll this long.
const SCRAPE_PATIENCE: Duration = Duration::from_secs(30);

/// `sum by (label) (...)` answers as label value -> count; a plain `sum` under "".
fn counts(samples: &[Sample], label: &str) -> BTreeMap<String, u64> {
    samples
        .iter()
        .map(|s| {
            let key = s.labels.get(label).cloned().unwrap_or_default();
            (key, s.value as u64)
        })
        .collect()
}

fn plus(
    base: &BTreeMap<String, u64>,
    more: impl IntoIterator<Item = (String, u64)>,
) -> BTreeMap<String, u64> {
    let mut total = base.clone();
    for (key, count) in more {
        *total.entry(key).or_insert(0) += count;
    }
    total
}

async fn counted(
    testbed: &Testbed,
    promql: &str,
    label: &str,
) -> Result<BTreeMap<String, u64>, Error> {
    Ok(counts(&testbed.query(promql).await?, label))
}

/// Polls until Prometheus reports exactly `expected` for `promql` (grouped by `label`).
async fn expect_counts(
    testbed: &Testbed,
    promql: &str,
    label: &str,
    expected: &BTreeMap<String, u64>,
) -> Result<(), Error> {
    let label = label.to_owned();
    testbed
        .wait_for_query(promql, SCRAPE_PATIENCE, |samples| {
            &counts(samples, &label) == expected
        })
        .await
        .map_err(|e| format!("{promql}: expected {expected:?}: {e}"))?;
    Ok(())
}

fn load(
    testbed: &Testbed,
    transport: Transport,
    queries: u64,
    seed: u64,
) -> Result<LoadConfig, Error> {
    let mut load = LoadConfig::new(
        testbed.dns_addr(),
        // Well above what the count needs: the count must be what ends the run.
        Profile::constant(2000.0),
        queries,
        Duration::from_secs(60),
    );
    load.transport = transport;
    load.names = "demo1.example.org=6,demo2.example.org=2,*.example.org=2".parse()?;
    load.types = "A=5,AAAA=3,MX=1,TXT=1".parse()?;
    load.nxdomain_share = 0.1;
    load.concurrency = 32;
    load.connections = 4;
    load.seed = Some(seed);
    Ok(load)
}

fn check_complete(report: &LoadReport, queries: u64) {
    assert_eq!(report.sent, queries, "{report}");
    assert_eq!(report.answered(), queries, "{report}");
    assert_eq!(
        (report.timeouts, report.lost, report.errors),
        (0, 0, 0),
        "{report}"
    );
    assert_eq!(report.sent_by_type.values().sum::<u64>(), queries);
    assert!(report.sent_nxdomain_names > 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn coredns_counts_exactly_what_the_generator_reports() -> Result<(), Error> {
    let testbed = Testbed::start(TestbedConfig::for_tests()?).await?;
    let total_q = "sum(coredns_dns_requests_total)";
    let by_type_q = "sum by (type) (coredns_dns_requests_total)";
    let by_proto_q = "sum by (proto) (coredns_dns_requests_total)";
    let by_rcode_q = "sum by (rcode) (coredns_dns_responses_total)";
    let old_name_q = "sum(coredns_dns_request_count_total)";
    // CoreDNS creates its series on the first request, so before any they may be absent (0).
    let before_total = counted(&testbed, total_q, "").await?;
    let before_type = counted(&testbed, by_type_q, "type").await?;
    let before_proto = counted(&testbed, by_proto_q, "proto").await?;
    let before_rcode = counted(&testbed, by_rcode_q, "rcode").await?;
    let before_old = counted(&testbed, old_name_q, "").await?;

    let (udp_n, tcp_n) = (3000, 1000);
    let udp = load(&testbed, Transport::Udp, udp_n, 1)?.run().await?;
    check_complete(&udp, udp_n);
    let tcp = load(&testbed, Transport::Tcp, tcp_n, 2)?.run().await?;
    check_complete(&tcp, tcp_n);
    println!("UDP run:\n{udp}\nTCP run:\n{tcp}");

    let n = udp.sent + tcp.sent;
    expect_counts(
        &testbed,
        total_q,
        "",
        &plus(&before_total, [(String::new(), n)]),
    )
    .await?;
    let sent_types = udp.sent_by_type.iter().chain(&tcp.sent_by_type);
    let expected_types = plus(
        &before_type,
        sent_types.map(|(rtype, count)| (rtype.to_string(), *count)),
    );
    expect_counts(&testbed, by_type_q, "type", &expected_types).await?;
    let expected_proto = plus(
        &before_proto,
        [("udp".to_owned(), udp.sent), ("tcp".to_owned(), tcp.sent)],
    );
    expect_counts(&testbed, by_proto_q, "proto", &expected_proto).await?;
    let answers = udp.answers.iter().chain(&tcp.answers);
    let expected_rcodes = plus(
        &before_rcode,
        answers.map(|(rcode, count)| (rcode.to_string(), *count)),
    );
    expect_counts(&testbed, by_rcode_q, "rcode", &expected_rcodes).await?;
    // The tutorial's pre-1.7.0 name, kept by the testbed's recording rule.
    expect_counts(
        &testbed,
        old_name_q,
        "",
        &plus(&before_old, [(String::new(), n)]),
    )
    .await?;

    // And nothing more arrives afterwards: the generator has really stopped.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = counted(&testbed, total_q, "").await?;
    assert_eq!(after, plus(&before_total, [(String::new(), n)]));
    testbed.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn the_pacer_follows_the_profile_against_a_real_server() -> Result<(), Error> {
    let testbed = Testbed::start(TestbedConfig::for_tests()?).await?;
    let profile: Profile = "constant:200+spike:at=2s,len=1s,x=5+spike:at=4s,len=1s,x=0".parse()?;
    let mut load = LoadConfig::new(
        testbed.dns_addr(),
        profile.clone(),
        100_000,
        Duration::from_secs(6),
    );
    load.concurrency = 16;
    let report = load.run().await?;
    println!("{report}\nper second: {:?}", report.sent_per_second);
    let expected = [200.0, 200.0, 1000.0, 200.0, 0.0, 200.0];
    assert!(
        report.sent_per_second.len() >= expected.len(),
        "{:?}",
        report.sent_per_second
    );
    for (second, (sent, want)) in report.sent_per_second.iter().zip(expected).enumerate() {
        // Second boundaries are sampled every millisecond, so a few queries may land either side.
        let slack = 0.05 * want + 5.0;
        assert!(
            (*sent as f64 - want).abs() <= slack,
            "second {second}: sent {sent}, profile wants {want}: {:?}",
            report.sent_per_second
        );
    }
    let expected_total = profile.expected_queries(Duration::from_secs(6)).ceil() as u64;
    assert!(
        report.sent.abs_diff(expected_total) <= 1,
        "{} vs {expected_total}",
        report.sent
    );
    assert_eq!(report.answered(), report.sent);
    testbed.stop().await?;
    Ok(())
}

/// The parts of a dig-style print that must agree between two clients: everything except
/// the ids, times, the SRV record's port (the client's source port) and the banner.
#[derive(Debug, PartialEq)]
struct DigShape {
    status: String,
    flags: Vec<String>,
    counts: String,
    edns: Option<String>,
    /// (section, name, class, type, rdata with SRV ports blanked)
    records: Vec<(String, String, String, String, String)>,
    server_transport: String,
    msg_size: String,
}

fn dig_shape(text: &str) -> DigShape {
    let mut shape = DigShape {
        status: String::new(),
        flags: Vec::new(),
        counts: String::new(),
        edns: None,
        records: Vec::new(),
        server_transport: String::new(),
        msg_size: String::new(),
    };
    let mut section = String::new();
    for line in text.lines() {
        if let Some(header) = line.strip_prefix(";; ->>HEADER<<- ") {
            shape.status = header
                .split(", ")
                .find_map(|part| part.strip_prefix("status: "))
                .unwrap_or_default()
                .to_owned();
        } else if let Some(flags) = line.strip_prefix(";; flags:") {
            let (flags, counts) = flags.split_once(';').expect("flags; counts");
            shape.flags = flags.split_whitespace().map(str::to_owned).collect();
            shape.counts = counts.trim().to_owned();
        } else if let Some(edns) = line.strip_prefix("; EDNS: ") {
            shape.edns = Some(edns.to_owned());
        } else if let Some(title) = line
            .strip_prefix(";; ")
            .and_then(|l| l.strip_suffix(" SECTION:"))
        {
            section = title.to_owned();
        } else if let Some(server) = line.strip_prefix(";; SERVER: ") {
            shape.server_transport = server
                .rsplit_once(' ')
                .map(|(_, t)| t.to_owned())
                .unwrap_or_default();
        } else if let Some(size) = line.strip_prefix(";; MSG SIZE  rcvd: ") {
            shape.msg_size = size.to_owned();
        } else if line.is_empty() {
            section.clear();
        } else if !section.is_empty() {
            let fields: Vec<&str> = line.trim_start_matches(';').split_whitespace().collect();
            let record = if section == "QUESTION" {
                (
                    section.clone(),
                    fields[0].into(),
                    fields[1].into(),
                    fields[2].into(),
                    String::new(),
                )
            } else {
                let mut rdata: Vec<&str> = fields[4..].to_vec();
                if fields[3] == "SRV" {
                    rdata[2] = "PORT";
                }
                (
                    section.clone(),
                    fields[0].into(),
                    fields[2].into(),
                    fields[3].into(),
                    rdata.join(" "),
                )
            };
            shape.records.push(record);
        }
    }
    shape
}

fn debian_dig(testbed: &Testbed, args: &[&str]) -> Result<String, Error> {
    let port = testbed.dns_addr().port().to_string();
    let output = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port])
        .args(args)
        .output()
        .map_err(|e| format!("running Debian's dig (apt-get install dnsutils): {e}"))?;
    assert!(output.status.success(), "dig failed: {output:?}");
    Ok(String::from_utf8(output.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn our_answer_prints_as_debian_dig_prints_it() -> Result<(), Error> {
    let testbed = Testbed::start(TestbedConfig::for_tests()?).await?;
    for (transport, record_type, dig_args) in [
        (Transport::Udp, RecordType::A, vec!["demo1.example.org"]),
        (
            Transport::Tcp,
            RecordType::A,
            vec!["demo1.example.org", "+tcp"],
        ),
        (
            Transport::Udp,
            RecordType::AAAA,
            vec!["demo1.example.org", "AAAA"],
        ),
        (Transport::Udp, RecordType::MX, vec!["nosuch.invalid", "MX"]),
    ] {
        let name = dig_args[0];
        let ours = Query::new(testbed.dns_addr(), name)?
            .with_type(record_type)
            .with_class(DNSClass::IN)
            .with_transport(transport)
            .send()
            .await?;
        let dig = debian_dig(&testbed, &dig_args)?;
        let (our_shape, dig_shape) = (dig_shape(&ours.to_string()), dig_shape(&dig));
        assert_eq!(our_shape, dig_shape, "ours:\n{ours}\ndig:\n{dig}");
        assert_eq!(our_shape.status, "NOERROR");
        assert!(
            our_shape
                .records
                .iter()
                .any(|r| r.0 == "ADDITIONAL" && r.3 == "SRV"),
            "{ours}"
        );
        assert_eq!(our_shape.server_transport, format!("({transport})"));
        println!("{ours}");
    }
    testbed.stop().await?;
    Ok(())
}
