//! Helpers for driving the built `promlearn` binary against real servers.

#![allow(dead_code)]

use std::{path::Path, process::Stdio, time::Duration};

use promlearn_testbed::{Testbed, TestbedConfig};

pub const NEEDS_SERVERS: &str = "needs real servers: run cargo xtask e2e";

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Exit 0; shows stderr otherwise.
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "promlearn failed:\nstderr: {}\nstdout: {}",
            self.stderr, self.stdout
        );
        self
    }

    /// A non-zero exit with exactly one line on stderr, `error: ...`; returns that line.
    pub fn one_line_error(&self) -> &str {
        assert_ne!(self.code, 0, "should fail; stdout: {}", self.stdout);
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "exactly one line on stderr, got: {:?}",
            self.stderr
        );
        assert!(
            lines[0].starts_with("error: "),
            "starts with `error: `: {}",
            lines[0]
        );
        lines[0]
    }
}

/// Runs `promlearn ARGS` with a clean environment for its own variables.
pub async fn promlearn<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    promlearn_env(args, &[]).await
}

/// As [`promlearn`], with extra environment variables.
pub async fn promlearn_env<I, S>(args: I, env: &[(&str, &str)]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_promlearn"));
    command
        .args(args)
        .env_remove("PROMLEARN_BASIC_AUTH")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .expect("promlearn finishes within 5 minutes")
        .expect("promlearn runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub async fn testbed() -> Testbed {
    Testbed::start(TestbedConfig::for_tests().expect("free ports"))
        .await
        .expect("the testbed starts")
}

/// Waits until Prometheus's sum of `query` reaches at least `at_least`.
pub async fn wait_sum(testbed: &Testbed, query: &str, at_least: f64) -> f64 {
    let samples = testbed
        .wait_for_query(query, Duration::from_secs(30), |s| {
            s.iter().map(|x| x.value).sum::<f64>() >= at_least
        })
        .await
        .unwrap_or_else(|e| panic!("{query} should reach {at_least}: {e}"));
    samples.iter().map(|x| x.value).sum()
}

/// The values of a range query, straight from Prometheus's HTTP API: (labels, [(t, value text)]).
pub async fn prometheus_range(
    base: &str,
    params: &[(&str, String)],
) -> Vec<(
    std::collections::BTreeMap<String, String>,
    Vec<(f64, String)>,
)> {
    promlearn_loader::install_crypto_provider();
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/query_range"))
        .query(params)
        .send()
        .await
        .expect("Prometheus answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(body["status"], "success", "{body}");
    body["data"]["result"]
        .as_array()
        .expect("a matrix")
        .iter()
        .map(|s| {
            let labels = serde_json::from_value(s["metric"].clone()).expect("labels");
            let values = serde_json::from_value(s["values"].clone()).expect("values");
            (labels, values)
        })
        .collect()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// A lone Prometheus with its own `--web.config.file` (auth, TLS), on a free port, stopped on drop.
pub struct WebPrometheus {
    pub port: u16,
    pub dir: tempfile::TempDir,
    _server: promlearn_testbed::ServerProcess,
}

impl WebPrometheus {
    /// Starts Prometheus with `config` (prometheus.yml) and `web` (web.yml), both given the port,
    /// and waits until `ready(port)` answers HTTP 200 with a body containing `expect`.
    pub async fn start(
        dir: tempfile::TempDir,
        config: impl Fn(u16) -> String,
        web: &str,
        ready: impl Fn(u16) -> reqwest::RequestBuilder,
        expect: &str,
    ) -> WebPrometheus {
        let port = promlearn_testbed::Ports::ephemeral().unwrap().prometheus;
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config(port)).unwrap();
        let web_path = dir.path().join("web.yml");
        std::fs::write(&web_path, web).unwrap();
        let mut command =
            tokio::process::Command::new(promlearn_testbed::locate::prometheus().unwrap());
        command.args([
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--web.config.file={}", web_path.display()),
        ]);
        let server = promlearn_testbed::ServerProcess::spawn("Prometheus", command).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = ready(port).send().await
                && r.status().is_success()
                && r.text().await.unwrap_or_default().contains(expect)
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Prometheus with {web_path:?} is up and has scraped itself"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        WebPrometheus {
            port,
            dir,
            _server: server,
        }
    }
}
