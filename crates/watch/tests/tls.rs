//! `--web.config.file` against the testbed's real Prometheus: it scrapes the watch over TLS with
//! basic auth (a scrape job with `scheme: https`, `tls_config: {ca_file}` and `basic_auth`), the
//! target is up and the scores arrive; the same target scraped without credentials, with a wrong
//! password and over plain HTTP is down. A second client checks what each of those gets (401
//! with a Basic challenge, 400) and that a certificate from another CA is not trusted.
//! With mutual TLS (`client_auth_type: RequireAndVerifyClientCert`, `client_ca_file`), Prometheus
//! itself presents a client certificate (`tls_config: {cert_file, key_file}`): the job with the
//! CA's client certificate is up and brings the scores, the job without one and the job with a
//! client certificate from another CA are down, for a TLS reason Prometheus names. In process,
//! a second client checks both client auth policies without Prometheus.
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

/// `up` of each job whose name starts with `prefix`, as Prometheus last recorded it.
async fn up(testbed: &Testbed, prefix: &str) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = testbed
        .query(&format!("up{{job=~\"{prefix}.*\"}}"))
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.labels["job"].clone(), s.value))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Waits until Prometheus has scraped each of the `jobs` jobs named `prefix...` at least three
/// times since `since` (so that `up` is not one lucky or unlucky scrape), and returns a range
/// selector's window that holds only scrapes after `since`.
async fn three_scrapes_since(
    testbed: &Testbed,
    prefix: &str,
    jobs: usize,
    since: Instant,
) -> String {
    loop {
        let window = format!("{}ms", since.elapsed().as_millis().max(1));
        let counts = testbed
            .query(&format!(
                "count_over_time(up{{job=~\"{prefix}.*\"}}[{window}])"
            ))
            .await
            .unwrap();
        if counts.len() == jobs && counts.iter().all(|s| s.value >= 3.0) {
            return window;
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "not every {prefix} job scraped three times in 60 s: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `(job, lastError)` of each of `jobs`, as Prometheus's targets API gives them: why it could
/// not scrape a target, in its own words (empty after a good scrape).
async fn last_errors(testbed: &Testbed, jobs: &[&str]) -> Vec<(String, String)> {
    let targets: serde_json::Value = reqwest::get(format!(
        "{}/api/v1/targets?state=active",
        testbed.prometheus_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    jobs.iter()
        .map(|&job| {
            let target = targets["data"]["activeTargets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["labels"]["job"] == job)
                .unwrap_or_else(|| panic!("no target for {job}: {targets}"));
            let error = target["lastError"].as_str().unwrap_or_default();
            (job.to_owned(), error.to_owned())
        })
        .collect()
}

/// The watch's port, free now, so that Prometheus's configuration can name it before the
/// watch listens.
fn free_port() -> std::net::SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

/// A watch config scoring a series Prometheus always has and that moves: its own scrape
/// durations.
fn scrape_time_config(testbed: &Testbed, file: &str) -> promlearn_watch::Config {
    common::config(
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
        file,
    )
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
    let addr = free_port();
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

    let mut config = scrape_time_config(&testbed, "tls.toml");
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
        let up = up(&testbed, "watch-").await;
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
    let window = three_scrapes_since(&testbed, "watch-", 4, Instant::now()).await;
    let up = up(&testbed, "watch-").await;
    let want: Vec<(String, f64)> = {
        let mut want: Vec<(String, f64)> = REFUSED.iter().map(|j| (j.to_string(), 0.0)).collect();
        want.push((GOOD.to_owned(), 1.0));
        want.sort_by(|a, b| a.0.cmp(&b.0));
        want
    };
    assert_eq!(up, want);
    // Every scrape since (those before the watch listened failed, as they should).
    let lowest = testbed
        .query(&format!("min_over_time(up{{job=\"{GOOD}\"}}[{window}])"))
        .await
        .unwrap();
    assert_eq!(
        lowest[0].value, 1.0,
        "a scrape with the right credentials failed"
    );

    // Why Prometheus could not scrape the others, in its own words.
    let errors = last_errors(&testbed, &REFUSED).await;
    for ((job, error), why) in errors.iter().zip(["401", "401", "400"]) {
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

/// The jobs Prometheus scrapes the mutual-TLS watch with: only the first presents a client
/// certificate the watch's `client_ca_file` signed.
const MTLS_GOOD: &str = "mtls-client-cert";
const MTLS_REFUSED: [&str; 2] = ["mtls-no-client-cert", "mtls-other-ca-client-cert"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn prometheus_scrapes_the_watch_over_mutual_tls_with_its_client_certificate() {
    promlearn_loader::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certificates(dir.path()).unwrap();
    // An independent CA of the same name, with a client certificate made exactly as ours: the
    // one difference between the good and the foreign job is who signed it.
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let other = make_certificates(&other_dir).unwrap();
    let web_yml = dir.path().join("web.yml");
    std::fs::write(
        &web_yml,
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
    )
    .unwrap();

    let addr = free_port();
    let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap();
    let ca_pem = read(&certs.ca);
    let target = format!("localhost:{}", addr.port());
    let mut testbed_config = TestbedConfig::for_tests().unwrap();
    testbed_config.extra_scrape_targets = vec![
        ScrapeTarget::new(MTLS_GOOD, &target)
            .https(&ca_pem)
            .client_certificate(read(&certs.client_cert), read(&certs.client_key)),
        ScrapeTarget::new(MTLS_REFUSED[0], &target).https(&ca_pem),
        ScrapeTarget::new(MTLS_REFUSED[1], &target)
            .https(&ca_pem)
            .client_certificate(read(&other.client_cert), read(&other.client_key)),
    ];
    let testbed = Testbed::start(testbed_config).await.unwrap();

    let mut config = scrape_time_config(&testbed, "mtls.toml");
    config.listen = addr;
    config.web_config_file = Some(web_yml);
    let running = common::start(Watch::new(config).unwrap());

    // Every job scraped at least once (up recorded, whatever it is) and the scores arrived.
    let started = Instant::now();
    let scores = loop {
        let scores = testbed
            .query(&format!("promlearn_anomaly_score{{job=\"{MTLS_GOOD}\"}}"))
            .await
            .unwrap();
        let up = up(&testbed, "mtls-").await;
        if !scores.is_empty() && up.len() == 3 {
            break scores;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no score scraped over mutual TLS after 90 s; up: {up:?}\n{}",
            running.handle.render_metrics()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    eprintln!(
        "scores scraped over mutual TLS after {:.1} s: {scores:?}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(scores[0].labels["query"], "scrape_time");
    let window = three_scrapes_since(&testbed, "mtls-", 3, Instant::now()).await;
    let up = up(&testbed, "mtls-").await;
    eprintln!("up: {up:?}");
    let want: Vec<(String, f64)> = {
        let mut want: Vec<(String, f64)> =
            MTLS_REFUSED.iter().map(|j| (j.to_string(), 0.0)).collect();
        want.push((MTLS_GOOD.to_owned(), 1.0));
        want.sort_by(|a, b| a.0.cmp(&b.0));
        want
    };
    assert_eq!(up, want);
    let lowest = testbed
        .query(&format!(
            "min_over_time(up{{job=\"{MTLS_GOOD}\"}}[{window}])"
        ))
        .await
        .unwrap();
    assert_eq!(
        lowest[0].value, 1.0,
        "a scrape with the CA's client certificate failed"
    );
    // And the refused ones never got in, not even once.
    let highest = testbed
        .query("max_over_time(up{job=~\"mtls-(no|other)-.*\"}[1m])")
        .await
        .unwrap();
    assert!(
        highest.iter().all(|s| s.value == 0.0) && highest.len() == 2,
        "a scrape without the CA's client certificate got in: {highest:?}"
    );

    // Why Prometheus could not scrape the others, in its own words: the watch ended the
    // handshake with a TLS alert (Go writes one as `remote error: tls: <alert>`). Without a
    // certificate, `certificate_required`. With the other CA's, `decrypt_error`: that CA has
    // our CA's name, so the certificate's issuer is found but its signature does not verify,
    // which rustls answers with `decrypt_error` as RFC 8446 asks (an issuer of an unknown name
    // would be `unknown_ca`).
    let errors = last_errors(&testbed, &[MTLS_GOOD, MTLS_REFUSED[0], MTLS_REFUSED[1]]).await;
    for (job, error) in &errors {
        eprintln!("{job}: lastError {error:?}");
    }
    assert_eq!(errors[0].1, "", "{}", errors[0].0);
    for ((job, error), alert) in errors[1..]
        .iter()
        .zip(["certificate required", "error decrypting message"])
    {
        assert!(
            error.ends_with(&format!("remote error: tls: {alert}")),
            "{job}: {error}"
        );
    }
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
