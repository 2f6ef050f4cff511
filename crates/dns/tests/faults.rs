//! Servers that are not there or never answer: typed errors or counted time-outs, never a
//! panic, and a load run that always ends by itself. Needs no DNS server: the "servers" here
//! are local sockets that refuse or swallow everything.

use std::{
    net::{SocketAddr, UdpSocket as StdUdpSocket},
    time::{Duration, Instant},
};

use promlearn_dns::{DnsError, LoadConfig, Profile, Query, Transport};
use tokio::net::{TcpListener, UdpSocket};

type Error = Box<dyn std::error::Error>;

/// A loopback port with nothing listening on it, UDP or TCP.
fn closed_port() -> SocketAddr {
    let socket = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    drop(socket);
    addr
}

#[tokio::test]
async fn a_query_to_a_closed_port_is_unreachable() -> Result<(), Error> {
    for transport in [Transport::Udp, Transport::Tcp] {
        let err = Query::new(closed_port(), "demo1.example.org")?
            .with_transport(transport)
            .send()
            .await
            .unwrap_err();
        assert!(
            matches!(err, DnsError::Unreachable { .. }),
            "{transport}: {err:?}"
        );
        assert!(
            err.to_string().contains("is a DNS server listening there?"),
            "{err}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_query_nobody_answers_times_out() -> Result<(), Error> {
    let black_hole = UdpSocket::bind("127.0.0.1:0").await?;
    let started = Instant::now();
    let err = Query::new(black_hole.local_addr()?, "demo1.example.org")?
        .with_timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, DnsError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        err.to_string(),
        format!(
            "no answer from {} over UDP within 300ms",
            black_hole.local_addr()?
        )
    );
    Ok(())
}

#[tokio::test]
async fn bad_names_and_types_are_typed_errors() {
    let server = closed_port();
    for bad in ["", "a..b", &format!("{}.org", "x".repeat(64))] {
        let err = Query::new(server, bad).unwrap_err();
        assert!(matches!(err, DnsError::BadName { .. }), "{bad:?}: {err:?}");
    }
    let too_long = vec!["abcdefghij"; 25].join(".");
    assert!(matches!(
        Query::new(server, &too_long),
        Err(DnsError::BadName { .. })
    ));
    assert!(matches!(
        promlearn_dns::parse_record_type("AAAAA"),
        Err(DnsError::BadRecordType(_))
    ));
    assert!(matches!(
        promlearn_dns::parse_class("XX"),
        Err(DnsError::BadClass(_))
    ));
}

#[tokio::test]
async fn a_bad_profile_stops_a_run_before_it_sends() {
    let mut load = LoadConfig::new(
        closed_port(),
        Profile::constant(100.0),
        10,
        Duration::from_secs(1),
    );
    load.profile = Profile::sine(10.0, 20.0, Duration::from_secs(1));
    let err = load.run().await.unwrap_err();
    assert!(matches!(err, DnsError::Profile(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "bad load profile: sine amp 20 exceeds base 10: the rate would go below zero"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_on_a_black_hole_counts_time_outs_and_ends_on_time() -> Result<(), Error> {
    let black_hole = UdpSocket::bind("127.0.0.1:0").await?;
    let mut load = LoadConfig::new(
        black_hole.local_addr()?,
        Profile::unlimited(),
        u64::MAX, // only the duration bounds this run
        Duration::from_millis(800),
    );
    load.timeout = Duration::from_millis(300);
    load.concurrency = 8;
    let started = Instant::now();
    let report = load.run().await?;
    let took = started.elapsed();
    // Sending stops at 800 ms; what is in flight then times out 300 ms later at most.
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(report.sent >= 8, "{report}");
    assert_eq!(report.answered(), 0);
    assert_eq!(report.timeouts, report.sent, "{report}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_on_a_closed_udp_port_counts_errors_and_ends() -> Result<(), Error> {
    let mut load = LoadConfig::new(
        closed_port(),
        Profile::constant(500.0),
        200,
        Duration::from_secs(5),
    );
    load.timeout = Duration::from_millis(200);
    let report = load.run().await?;
    assert_eq!(report.answered(), 0);
    assert!(report.errors > 0, "{report}");
    let first = report.first_error.as_deref().unwrap_or_default();
    assert!(first.contains("refused"), "{first}");
    // Every permit became either a sent query (then timed out) or an error.
    assert_eq!(report.timeouts, report.sent, "{report}");
    Ok(())
}

#[tokio::test]
async fn load_over_tcp_to_a_closed_port_is_unreachable() {
    let load = LoadConfig::new(
        closed_port(),
        Profile::constant(100.0),
        10,
        Duration::from_secs(1),
    );
    let load = LoadConfig {
        transport: Transport::Tcp,
        ..load
    };
    let err = load.run().await.unwrap_err();
    assert!(
        matches!(
            err,
            DnsError::Unreachable {
                transport: "TCP",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_server_that_never_answers_costs_time_outs_not_a_hang() -> Result<(), Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let server = listener.local_addr()?;
    // Accepts, reads nothing, answers nothing.
    let sink = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut load = LoadConfig::new(
        server,
        Profile::unlimited(),
        50_000,
        Duration::from_millis(600),
    );
    load.transport = Transport::Tcp;
    load.timeout = Duration::from_millis(200);
    load.concurrency = 64;
    let started = Instant::now();
    let report = load.run().await?;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.answered(), 0);
    assert_eq!(report.timeouts + report.lost, report.sent, "{report}");
    sink.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_run_stops_its_traffic() -> Result<(), Error> {
    let black_hole = UdpSocket::bind("127.0.0.1:0").await?;
    let mut load = LoadConfig::new(
        black_hole.local_addr()?,
        Profile::constant(1000.0),
        1_000_000,
        Duration::from_secs(3600),
    );
    load.timeout = Duration::from_millis(100);
    // Abandon the run after 300 ms.
    let abandoned = tokio::time::timeout(Duration::from_millis(300), load.run()).await;
    assert!(abandoned.is_err());
    // Give the workers their time-out to drain, then listen: nothing more may arrive.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut buf = [0u8; 512];
    while black_hole.try_recv(&mut buf).is_ok() {}
    let late = tokio::time::timeout(Duration::from_millis(500), black_hole.recv(&mut buf)).await;
    assert!(late.is_err(), "traffic continued after the run was dropped");
    Ok(())
}
