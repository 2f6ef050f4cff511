//! A real Prometheus behind basic auth (its own `--web.config.file`): wrong credentials fail on
//! one line, right ones work from every source, and the password never reaches stderr.

mod common;

use common::{WebPrometheus, promlearn_env};

const USER: &str = "promlearn";
const PASSWORD: &str = "s3cret-Pa55word";

struct AuthPrometheus {
    url: String,
    _prometheus: WebPrometheus,
}

async fn start() -> AuthPrometheus {
    // Low cost: each request is checked against the hash.
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    promlearn_loader::install_crypto_provider();
    let client = reqwest::Client::new();
    // It scrapes itself, with the same credentials.
    let prometheus = WebPrometheus::start(
        tempfile::tempdir().unwrap(),
        |port| {
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n- job_name: self\n  basic_auth:\n    \
                 username: {USER}\n    password: {PASSWORD}\n  static_configs:\n  - targets: ['127.0.0.1:{port}']\n"
            )
        },
        &format!("basic_auth_users:\n  {USER}: '{hash}'\n"),
        |port| {
            client
                .get(format!("http://127.0.0.1:{port}/api/v1/query?query=up"))
                .basic_auth(USER, Some(PASSWORD))
        },
        "\"value\"",
    )
    .await;
    let url = format!("http://127.0.0.1:{}", prometheus.port);
    // Unauthenticated requests are refused: the server really checks.
    let refused = client
        .get(format!("{url}/api/v1/query?query=up"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    AuthPrometheus {
        url,
        _prometheus: prometheus,
    }
}

fn base64_of_credentials(password: &str) -> String {
    // Independent of the binary's own encoder: what a header dump would show.
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{USER}:{password}").into_bytes();
    let mut out = String::new();
    for c in input.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn assert_no_secret(stderr: &str, password: &str) {
    assert!(!stderr.contains(password), "the password leaked: {stderr}");
    let encoded = base64_of_credentials(password);
    assert!(
        !stderr.contains(&encoded[..encoded.len() - 2]),
        "the encoded credentials leaked: {stderr}"
    );
}

/// `train` on `time()` (a series that needs no scrape) is the request that must pass auth.
fn train_args<'a>(url: &'a str, model: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "time()",
        "--endpoint",
        url,
        "--model",
        model,
        "--last",
        "30s",
        "--step",
        "1s",
        "--window",
        "3",
        "--hidden",
        "4",
        "--epochs",
        "2",
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn basic_auth_is_enforced_and_the_password_never_printed() {
    let prom = start().await;
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    let model = common::path_str(&model);
    let trace = [("RUST_LOG", "trace")];

    // Wrong password, no credentials: a one-line refusal, exit 1, no secret even at trace level.
    let wrong = format!("{USER}:not-the-{PASSWORD}");
    let run = promlearn_env(train_args(&prom.url, model, &["--basic-auth", &wrong]), &[]).await;
    let line = run.one_line_error();
    assert!(
        line.contains("refused the request: HTTP 401 Unauthorized"),
        "{line}"
    );
    assert!(line.contains("check the credentials"), "{line}");
    assert_eq!(run.code, 1);
    let traced = promlearn_env(
        train_args(&prom.url, model, &["--basic-auth", &wrong]),
        &trace,
    )
    .await;
    assert_ne!(traced.code, 0);
    assert!(traced.stderr.lines().last().unwrap().starts_with("error: "));
    assert_no_secret(&traced.stderr, &format!("not-the-{PASSWORD}"));
    let run = promlearn_env(train_args(&prom.url, model, &[]), &[]).await;
    assert!(run.one_line_error().contains("401"));

    // Right password from the flag, at trace level: works, and nothing prints it.
    let right = format!("{USER}:{PASSWORD}");
    let run = promlearn_env(
        train_args(&prom.url, model, &["--basic-auth", &right]),
        &trace,
    )
    .await
    .ok();
    assert!(run.stdout.contains("saved to"));
    // Trace lines were written, the HTTP client's connection to this server among them: the
    // requests that carried the password were logged (and, below, without it).
    let address = prom.url.trim_start_matches("http://");
    let http_traces = run
        .stderr
        .lines()
        .filter(|line| line.contains(" TRACE ") || line.contains(" DEBUG "))
        .filter(|line| line.contains(address))
        .count();
    assert!(
        run.stderr.lines().any(|line| line.contains(" TRACE ")) && http_traces >= 2,
        "trace logs of the HTTP requests to {address} were written:\n{}",
        run.stderr
    );
    assert_no_secret(&run.stderr, PASSWORD);
    assert_no_secret(&run.stdout, PASSWORD);

    // From the environment, from a file, and inside the URL.
    promlearn_env(
        train_args(&prom.url, model, &[]),
        &[("PROMLEARN_BASIC_AUTH", right.as_str())],
    )
    .await
    .ok();
    let file = dir.path().join("auth");
    std::fs::write(&file, format!("{right}\n")).unwrap();
    promlearn_env(
        train_args(
            &prom.url,
            model,
            &["--basic-auth-file", common::path_str(&file)],
        ),
        &[],
    )
    .await
    .ok();
    let in_url = prom
        .url
        .replace("http://", &format!("http://{USER}:{PASSWORD}@"));
    promlearn_env(train_args(&in_url, model, &[]), &[])
        .await
        .ok();
    // A wrong password inside the URL: refused, and the URL in the message has no credentials.
    let wrong_url = prom
        .url
        .replace("http://", &format!("http://{USER}:wrong{PASSWORD}@"));
    let run = promlearn_env(train_args(&wrong_url, model, &[]), &[]).await;
    let line = run.one_line_error();
    assert!(
        line.contains(&format!("{}/api/v1/query_range refused", prom.url)),
        "{line}"
    );
    assert_no_secret(&run.stderr, &format!("wrong{PASSWORD}"));

    // Scraping Prometheus's own /metrics behind the same auth.
    let metrics = format!("{}/metrics", prom.url);
    let run = promlearn_env(
        ["scrape", &metrics, "-n", "1", "--basic-auth", &wrong],
        &trace,
    )
    .await;
    assert!(
        run.stderr.lines().last().unwrap().contains("401"),
        "{}",
        run.stderr
    );
    assert_no_secret(&run.stderr, &format!("not-the-{PASSWORD}"));
    let run = promlearn_env(
        [
            "scrape",
            &metrics,
            "-n",
            "1",
            "-M",
            "prometheus_build_info",
            "--basic-auth",
            &right,
        ],
        &[],
    )
    .await
    .ok();
    assert!(
        run.stdout.starts_with("prometheus_build_info{"),
        "{}",
        run.stdout
    );

    // A bearer token the server does not accept, and a header: refused, never echoed.
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-very-secret\n").unwrap();
    let run = promlearn_env(
        train_args(
            &prom.url,
            model,
            &[
                "--bearer-token-file",
                common::path_str(&token),
                "--header",
                "X-Scope-OrgID: tenant-secret",
            ],
        ),
        &trace,
    )
    .await;
    assert!(run.stderr.lines().last().unwrap().contains("401"));
    assert!(!run.stderr.contains("tok-very-secret"));
    assert!(!run.stderr.contains("tenant-secret"));
}
