//! A real Prometheus serving HTTPS (its own `--web.config.file`) with a certificate from a
//! throw-away CA: without trust the commands fail on one line that says what to do; with
//! `--ca-cert` they verify and work; `--insecure` skips the check; `load` and `scrape` follow one
//! CA rule.

mod common;

use common::{WebPrometheus, promlearn};

struct TlsPrometheus {
    url: String,
    ca: std::path::PathBuf,
    other_ca: std::path::PathBuf,
    _prometheus: WebPrometheus,
}

async fn start() -> TlsPrometheus {
    let dir = tempfile::tempdir().unwrap();
    // A CA, a server certificate it signs for localhost and 127.0.0.1, and another CA.
    let certs = promlearn_testbed::certs::make_certificates(dir.path()).unwrap();
    let path = |p: &std::path::Path| p.display().to_string();
    let (cert, key, ca) = (
        path(&certs.server_cert),
        path(&certs.server_key),
        path(&certs.ca),
    );
    // Readiness only: the test below is what checks the certificate handling.
    promlearn_loader::install_crypto_provider();
    let client = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .no_proxy()
        .build()
        .unwrap();
    // It scrapes itself over HTTPS, trusting the same CA.
    let prometheus = WebPrometheus::start(
        dir,
        |port| {
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n- job_name: self\n  scheme: https\n  \
                 tls_config:\n    ca_file: {ca}\n  static_configs:\n  - targets: ['localhost:{port}']\n"
            )
        },
        &format!("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"),
        |port| client.get(format!("https://localhost:{port}/api/v1/query?query=up")),
        "\"1\"",
    )
    .await;
    TlsPrometheus {
        url: format!("https://localhost:{}", prometheus.port),
        ca: certs.ca,
        other_ca: certs.other_ca,
        _prometheus: prometheus,
    }
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn tls_is_verified_against_the_given_ca() {
    let prom = start().await;
    let ca = common::path_str(&prom.ca);
    let load = |extra: &[&str]| {
        let mut args = vec![
            "load",
            "up",
            "--endpoint",
            &prom.url,
            "--last",
            "5s",
            "--step",
            "1s",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };

    // An unknown CA: refused, with the way out in the same line.
    let run = promlearn(load(&[])).await;
    let line = run.one_line_error();
    assert!(line.contains("certificate"), "{line}");
    assert!(line.contains("--ca-cert"), "{line}");

    // Trusting the CA: verified, and the answer is Prometheus's.
    let run = promlearn(load(&["--ca-cert", ca])).await.ok();
    assert!(
        run.stdout.starts_with("up: 1 series x 6 timestamps"),
        "{}",
        run.stdout
    );
    // A CA file that is not PEM.
    let bogus = prom.ca.with_file_name("server.csr.txt");
    std::fs::write(&bogus, "not a certificate\n").unwrap();
    let run = promlearn(load(&["--ca-cert", common::path_str(&bogus)])).await;
    let line = run.one_line_error();
    assert!(line.contains("CA certificate"), "{line}");

    // --insecure: no verification, same answer.
    let run = promlearn(load(&["--insecure"])).await.ok();
    assert!(run.stdout.starts_with("up: 1 series"), "{}", run.stdout);

    // scrape: the same rules for a /metrics endpoint.
    let metrics = format!("{}/metrics", prom.url);
    let scrape = |extra: &[&str]| {
        let mut args = vec!["scrape", &metrics, "-n", "1", "-M", "prometheus_build_info"];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = promlearn(scrape(&["--ca-cert", ca])).await.ok();
    assert!(
        run.stdout.starts_with("prometheus_build_info{"),
        "{}",
        run.stdout
    );

    // One CA rule for both commands (one client): the given CA replaces the system's roots, an
    // unrelated CA is refused, and each failure reads the same from either command.
    let other = common::path_str(&prom.other_ca);
    for flags in [
        vec![],
        vec!["--ca-cert", other],
        vec!["--ca-cert", common::path_str(&bogus)],
    ] {
        let from_load = promlearn(load(&flags)).await.one_line_error().to_owned();
        let from_scrape = promlearn(scrape(&flags)).await.one_line_error().to_owned();
        assert_eq!(from_load, from_scrape, "with {flags:?}");
    }
    let refused = promlearn(scrape(&["--ca-cert", other]))
        .await
        .one_line_error()
        .to_owned();
    assert!(
        refused.contains("is not trusted: its signature does not verify against the trusted CA"),
        "{refused}"
    );
}
