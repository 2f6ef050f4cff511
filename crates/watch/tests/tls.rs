//! `--web.config.file` against the testbed's real Prometheus: it scrapes the watch over TLS with
//! basic auth (a scrape job with `scheme: https`, `tls_config: {ca_file}` and `basic_auth`), the
//! target is up and the scores arrive; the same target scraped without credentials, with a wrong
//! password and over plain HTTP is down. A second client checks what each of those gets (401
//! with a Basic challenge, 400) and that a certificate from another CA is not trusted.
//! Certificates are made at test time (`promlearn_testbed::certs`).
//!
//! `cargo xtask e2e` runs it; alone: `cargo test -p promlearn-watch --test tls -- --include-ignored`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests show what they compare; cargo prints it when one fails"
)]

use std::time::{Duration, Instant};

use promlearn_testbed::{ScrapeTarget, Testbed, TestbedConfig, certs::make_certificates};
use promlearn_watch::Watch;

mod common;

const USER: &str = "prometheus";
const PASSWORD: &str = "scrape-Pa55word";

/// The jobs Prometheus scrapes the one watch with: only the first may get in.
const GOOD: &str = "watch-tls-auth";
const REFUSED: [&str; 3] = [
    "watch-tls-no-auth",
    "watch-tls-wrong-password",
    "watch-plain-http",
];

/// `up` of each job, as Prometheus last recorded it.
async fn up(testbed: &Testbed) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = testbed
        .query("up{job=~\"watch-.*\"}")
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.labels["job"].clone(), s.value))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn prometheus_scrapes_the_watch_over_tls_with_basic_auth() {
    promlearn_loader::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certificates(dir.path()).unwrap();
    let hash = bcrypt::hash(PASSWORD, 10).unwrap();
    // The format node_exporter reads; relative names beside the file.
    let web_yml = dir.path().join("web.yml");
    std::fs::write(
        &web_yml,
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n\
             basic_auth_users:\n  {USER}: '{hash}'\n"
        ),
    )
    .unwrap();

    // The watch's port first, so that Prometheus's configuration can name it.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let ca_pem = std::fs::read_to_string(&certs.ca).unwrap();
    let target = format!("localhost:{}", addr.port());
    let mut testbed_config = TestbedConfig::for_tests().unwrap();
    testbed_config.extra_scrape_targets = vec![
        ScrapeTarget::new(GOOD, &target)
            .https(&ca_pem)
            .basic_auth(USER, PASSWORD),
        ScrapeTarget::new(REFUSED[0], &target).https(&ca_pem),
        ScrapeTarget::new(REFUSED[1], &target)
            .https(&ca_pem)
            .basic_auth(USER, "not-the-password"),
        ScrapeTarget::new(REFUSED[2], &target).basic_auth(USER, PASSWORD),
    ];
    let testbed = Testbed::start(testbed_config).await.unwrap();

    // A series Prometheus always has and that moves: its own scrape durations.
    let mut config = common::config(
        &testbed.prometheus_url(),
        r#"
[[query]]
name = "scrape_time"
expr = "scrape_duration_seconds{job=\"prometheus\"}"
step = "1s"
detector = { kind = "zscore", window = 8, threshold = 4 }
infer_every = "1s"
fit_every = "20s"
fit_window = "2m"
"#,
        "tls.toml",
    );
    config.listen = addr;
    config.web_config_file = Some(web_yml);
    let watch = Watch::new(config).unwrap();
    assert_eq!(watch.metrics_url(), format!("https://{addr}/metrics"));
    let running = common::start(watch);

    // Prometheus: the authenticated job is up and brings the scores; the others stay down.
    let started = Instant::now();
    let scores = loop {
        let scores = testbed
            .query(&format!("promlearn_anomaly_score{{job=\"{GOOD}\"}}"))
            .await
            .unwrap();
        let up = up(&testbed).await;
        if !scores.is_empty() && up.len() == 4 {
            break scores;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no score scraped over TLS after 90 s; up: {up:?}\n{}",
            running.handle.render_metrics()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    eprintln!(
        "scores scraped over TLS after {:.1} s: {scores:?}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(scores[0].labels["query"], "scrape_time");
    // A few more scrapes, so that `up` is not one lucky or unlucky scrape.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let up = up(&testbed).await;
    let want: Vec<(String, f64)> = {
        let mut want: Vec<(String, f64)> = REFUSED.iter().map(|j| (j.to_string(), 0.0)).collect();
        want.push((GOOD.to_owned(), 1.0));
        want.sort_by(|a, b| a.0.cmp(&b.0));
        want
    };
    assert_eq!(up, want);
    // Every scrape since (those before the watch listened failed, as they should).
    let lowest = testbed
        .query(&format!("min_over_time(up{{job=\"{GOOD}\"}}[4s])"))
        .await
        .unwrap();
    assert_eq!(
        lowest[0].value, 1.0,
        "a scrape with the right credentials failed"
    );

    // Why Prometheus could not scrape the others, in its own words.
    let targets: serde_json::Value = reqwest::get(format!(
        "{}/api/v1/targets?state=active",
        testbed.prometheus_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    for (job, why) in [
        (REFUSED[0], "401"),
        (REFUSED[1], "401"),
        (REFUSED[2], "400"),
    ] {
        let target = targets["data"]["activeTargets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["labels"]["job"] == job)
            .unwrap_or_else(|| panic!("no target for {job}: {targets}"));
        let error = target["lastError"].as_str().unwrap_or_default();
        assert!(error.contains(why), "{job}: {error}");
    }

    // What a client sees for each mistake, checked by a second client.
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .no_proxy()
        .build()
        .unwrap();
    let url = format!("https://{target}/metrics");
    let bare = client.get(&url).send().await.unwrap();
    assert_eq!(bare.status(), 401);
    assert_eq!(bare.headers()["www-authenticate"], "Basic");
    // A wrong password always costs a bcrypt check; the right one was remembered from
    // Prometheus's scrapes (the same credentials).
    let timer = Instant::now();
    let wrong = client
        .get(&url)
        .basic_auth(USER, Some("not-the-password"))
        .send()
        .await
        .unwrap();
    let wrong_took = timer.elapsed();
    assert_eq!(wrong.status(), 401);
    let timer = Instant::now();
    let good = client
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    let good_took = timer.elapsed();
    assert_eq!(good.status(), 200);
    eprintln!(
        "wrong password (bcrypt, cost 10): {:.1} ms; right one (remembered): {:.1} ms",
        wrong_took.as_secs_f64() * 1e3,
        good_took.as_secs_f64() * 1e3
    );
    assert!(
        good.text()
            .await
            .unwrap()
            .contains("promlearn_anomaly_score{")
    );
    // Liveness answers without credentials, over TLS still.
    let health = client
        .get(format!("https://{target}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // Plain HTTP to the TLS port: refused with a readable answer.
    let plain = client
        .get(format!("http://{target}/metrics"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 400);
    assert!(plain.text().await.unwrap().contains("HTTPS"));
    // A client that trusts another CA of the same name does not connect.
    let other = reqwest::Certificate::from_pem(&std::fs::read(&certs.other_ca).unwrap()).unwrap();
    let untrusting = reqwest::Client::builder()
        .tls_certs_only([other])
        .no_proxy()
        .build()
        .unwrap();
    let err = untrusting
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("InvalidCertificate"),
        "with another CA: {err:?}"
    );
    running.stop().await;
}

/// Mutual TLS, served in process (no Prometheus needed): with RequireAndVerifyClientCert only a
/// client certificate from the configured CA gets in; with VerifyClientCertIfGiven a client
/// without one does too, but not one with a certificate from another CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_client_certificates_from_the_ca() {
    promlearn_loader::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certificates(dir.path()).unwrap();
    let pem = |paths: &[&std::path::Path]| -> Vec<u8> {
        paths
            .iter()
            .flat_map(|p| std::fs::read(p).unwrap())
            .collect()
    };
    let ca = reqwest::Certificate::from_pem(&pem(&[&certs.ca])).unwrap();
    let client = |identity: Option<Vec<u8>>| {
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([ca.clone()])
            .no_proxy();
        if let Some(identity) = identity {
            builder = builder.identity(reqwest::Identity::from_pem(&identity).unwrap());
        }
        builder.build().unwrap()
    };
    let ours = Some(pem(&[&certs.client_cert, &certs.client_key]));
    // A CA's own pair stands in for a certificate the configured CA did not sign.
    let foreign = Some(pem(&[&certs.other_ca, &dir.path().join("other-ca.key")]));
    for (policy, admitted_without) in [
        ("RequireAndVerifyClientCert", false),
        ("VerifyClientCertIfGiven", true),
    ] {
        let web_yml = dir.path().join("web.yml");
        std::fs::write(
            &web_yml,
            format!(
                "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
                 client_auth_type: {policy}\n  client_ca_file: ca.pem\n"
            ),
        )
        .unwrap();
        // Prometheus is never reached: only the page's service is under test.
        let mut config = common::config(
            "http://127.0.0.1:1",
            "[[query]]\nname = \"q\"\nexpr = \"up\"\ndetector = { kind = \"zscore\" }\n",
            "mtls.toml",
        );
        config.web_config_file = Some(web_yml);
        let running = common::start(Watch::new(config).unwrap());
        let url = format!("https://localhost:{}/metrics", running.addr.port());
        let status = |identity: Option<Vec<u8>>| {
            let request = client(identity).get(&url).send();
            async move { request.await.map(|r| r.status().as_u16()) }
        };
        assert_eq!(status(ours.clone()).await.unwrap(), 200, "{policy}");
        let without = status(None).await;
        assert_eq!(without.is_ok(), admitted_without, "{policy}: {without:?}");
        let other = status(foreign.clone()).await;
        assert!(
            other.is_err(),
            "{policy}: another CA's client got {other:?}"
        );
        running.stop().await;
    }
}
