//! `promlearn watch` as a process: `--check`, a broken configuration, SIGTERM, and `--backtest`'s
//! mistakes. None of these needs a server (a Prometheus that does not answer is part of what the
//! service survives).

use std::{process::Stdio, time::Duration};

use tokio::io::{AsyncBufReadExt, BufReader};

fn repository_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_owned()
}

async fn run(args: &[&str]) -> std::process::Output {
    tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_promlearn"))
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("promlearn finishes")
    .unwrap()
}

/// A plain HTTP/1.1 GET (no TLS stack needed): the status line and the whole answer.
async fn http_get(addr: &str, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer.lines().next().unwrap_or("").to_owned();
    (status, answer)
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn check_accepts_the_example_configuration() {
    let example = repository_root().join("examples/watch/watch.toml");
    let out = run(&["watch", "--config", example.to_str().unwrap(), "--check"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("dns_rate (knn)"), "{stdout}");
    assert!(stdout.contains("dns_rate_lstm (lstm)"), "{stdout}");
    assert!(stdout.trim_end().ends_with("watch.toml: OK"), "{stdout}");
}

#[tokio::test]
async fn shard_overrides_the_file_and_refuses_one_that_cannot_be() {
    let example = repository_root().join("examples/watch/watch.toml");
    let example = example.to_str().unwrap();
    let out = run(&["watch", "--config", example, "--check", "--shard", "1/3"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.lines().next().unwrap().ends_with(", shard 1/3"),
        "{stdout}"
    );
    let out = run(&["watch", "--config", example, "--check", "--shard", "3/3"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("invalid shard `3/3`") && stderr.contains("0 <= I < N"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_broken_configuration_names_the_file_the_line_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watch.toml");
    let cases = [
        // An unknown field.
        (
            "endpoint = \"http://localhost:9090\"\n[[query]]\nname = \"q\"\nexpr = \"up\"\nstepp = \"1s\"\ndetector = { kind = \"zscore\" }\n",
            5,
            "stepp",
        ),
        // A semantic check after parsing.
        (
            "endpoint = \"http://localhost:9090\"\n\n[[query]]\nname = \"dns_rate\"\nexpr = \"up\"\nstep = \"1s\"\ndetector = { kind = \"mad\", window = 60 }\nfit_window = \"30s\"\n",
            8,
            "fit_window",
        ),
        // PromQL the parser refuses, caught offline: the file, the expr's line, its message.
        (
            "endpoint = \"http://localhost:9090\"\n[[query]]\nname = \"q\"\nexpr = \"rate(up[5m]\"\ndetector = { kind = \"zscore\" }\n",
            4,
            "query `q`: expr is not valid PromQL: unclosed left parenthesis",
        ),
        // A detector setting out of range.
        (
            "endpoint = \"http://localhost:9090\"\n[[query]]\nname = \"q\"\nexpr = \"up\"\ndetector = { kind = \"zscore\", window = 1 }\n",
            5,
            "window",
        ),
    ];
    for (text, line, field) in cases {
        std::fs::write(&path, text).unwrap();
        for extra in [&["--check"][..], &[][..]] {
            let mut args = vec!["watch", "--config", path.to_str().unwrap()];
            args.extend_from_slice(extra);
            let out = run(&args).await;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{text}: should fail");
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            assert_eq!(lines.len(), 1, "one line: {stderr}");
            let expected = format!("error: {}:{line}: ", path.display());
            assert!(
                lines[0].starts_with(&expected),
                "`{}` should start with `{expected}`",
                lines[0]
            );
            assert!(
                lines[0].contains(field),
                "`{}` should name {field}",
                lines[0]
            );
        }
    }
    let out = run(&[
        "watch",
        "--config",
        dir.path().join("missing.toml").to_str().unwrap(),
    ])
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[tokio::test]
async fn sigterm_stops_the_service_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watch.toml");
    // Prometheus is not there: the service keeps serving /metrics with up 0.
    std::fs::write(
        &path,
        format!(
            "endpoint = \"http://127.0.0.1:{}\"\n[[query]]\nname = \"q\"\nexpr = \"up\"\nstep = \"1s\"\ndetector = {{ kind = \"zscore\", window = 5 }}\nfit_window = \"1m\"\n",
            closed_port()
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_promlearn"))
        .args([
            "watch",
            "--config",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            seen.push(line.clone());
            if let Some(rest) = line.split("serving http://").nth(1) {
                return rest.trim_end_matches("/metrics").to_owned();
            }
        }
        panic!("no `serving` line: {seen:?}");
    })
    .await
    .expect("the service starts");
    let metrics = async {
        for _ in 0..50 {
            let (status, text) = http_get(&addr, "/metrics").await;
            assert!(
                status.starts_with("HTTP/1.0 200") || status.starts_with("HTTP/1.1 200"),
                "{status}"
            );
            if text.contains("promlearn_watch_up{query=\"q\"} 0") {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("up never went to 0");
    }
    .await;
    assert!(
        metrics.contains("# TYPE promlearn_anomaly_score gauge"),
        "{metrics}"
    );
    let (status, body) = http_get(&addr, "/healthz").await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(body.ends_with("ok\n"), "{body}");

    let pid = child.id().unwrap().to_string();
    let sent = std::time::Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(2), child.wait())
        .await
        .expect("stops within 2 s of SIGTERM")
        .unwrap();
    let mut rest = Vec::new();
    while let Ok(Some(line)) = stderr.next_line().await {
        rest.push(line);
    }
    assert!(status.success(), "exit {status:?}; stderr: {rest:?}");
    assert!(rest.iter().any(|l| l == "stopped"), "{rest:?}");
    eprintln!(
        "stopped {:.0} ms after SIGTERM",
        sent.elapsed().as_secs_f64() * 1000.0
    );
}

#[tokio::test]
async fn backtest_mistakes_and_an_unreachable_prometheus_are_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watch.toml");
    std::fs::write(
        &path,
        format!(
            "endpoint = \"http://127.0.0.1:{}\"\n[[query]]\nname = \"q\"\nexpr = \"up\"\ndetector = {{ kind = \"zscore\" }}\n",
            closed_port()
        ),
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let parquet = dir.path().join("out.parquet");
    let cases: [(&[&str], &str); 5] = [
        (&["--backtest"], "--from"),
        (&["--from", "-1h"], "--backtest"),
        (&["--backtest", "--from", "-1h", "--check"], "--check"),
        (
            &[
                "--backtest",
                "--from",
                "-1h",
                "-o",
                parquet.to_str().unwrap(),
            ],
            "writes csv, not parquet",
        ),
        (
            &["--backtest", "--from", "-1h", "--to", "-2h"],
            "must be before --to",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["watch", "--config", config];
        args.extend_from_slice(extra);
        let out = run(&args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?} should fail");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{extra:?}: one line: {stderr}");
        assert!(lines[0].starts_with("error:"), "{stderr}");
        assert!(
            lines[0].contains(needle),
            "{extra:?}: `{}` should say {needle}",
            lines[0]
        );
    }
    // A Prometheus that does not answer: one line naming the query, nothing written.
    let csv = dir.path().join("out.csv");
    let out = run(&[
        "watch",
        "--config",
        config,
        "--backtest",
        "--from",
        "-1h",
        "-o",
        csv.to_str().unwrap(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("query `q`"), "{stderr}");
    assert!(!csv.exists());
}

#[tokio::test]
async fn the_web_config_is_checked_at_start_and_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let certs = promlearn_testbed::certs::make_certificates(dir.path()).unwrap();
    let hash = bcrypt::hash("pw", 4).unwrap();
    // Named by the TOML, relative to it, and read as at start by --check.
    let toml = dir.path().join("watch.toml");
    std::fs::write(
        &toml,
        "endpoint = \"http://localhost:9090\"\nweb_config_file = \"web.yml\"\n[[query]]\nname = \"q\"\n\
         expr = \"up\"\ndetector = { kind = \"zscore\" }\n",
    )
    .unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n\
             basic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    )
    .unwrap();
    let toml = toml.to_str().unwrap();
    let out = run(&["watch", "--config", toml, "--check"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("web.yml: TLS, basic auth for 1 user\n"),
        "{stdout}"
    );
    // --web.config.file overrides the file's; each mistake is one line naming what is wrong,
    // from --check and at start alike.
    let other = dir.path().join("other.yml");
    for (text, wanted) in [
        (
            "basic_auth_user:\n  prometheus: x\n".to_owned(),
            "unknown field `basic_auth_user`",
        ),
        (
            format!("basic_auth_users:\n  prometheus: '{}'\n", &hash[..40]),
            "user `prometheus` is not a bcrypt hash",
        ),
        (
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                certs.server_cert.display(),
                certs.ca_key.display()
            ),
            "do not make a pair",
        ),
    ] {
        std::fs::write(&other, &text).unwrap();
        for extra in [&["--check"][..], &[][..]] {
            let mut args = vec!["watch", "--config", toml, "--web.config.file"];
            args.push(other.to_str().unwrap());
            args.extend_from_slice(extra);
            let out = run(&args).await;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{text}: should fail");
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            assert_eq!(lines.len(), 1, "one line: {stderr}");
            assert!(
                lines[0].starts_with(&format!("error: web config {}: ", other.display()))
                    && lines[0].contains(wanted),
                "`{}` should name {wanted}",
                lines[0]
            );
        }
    }
}
