//! The testbed against real CoreDNS and Prometheus, on each runtime under test.
//!
//! `cargo xtask e2e` provisions the servers and runs these with `--include-ignored`, naming the
//! runtimes in `PROMLEARN_E2E_RUNTIMES` (default here: processes).

use std::{
    net::UdpSocket,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use promlearn_testbed::{RuntimeChoice, ServerId, Testbed, TestbedConfig, TestbedError};

const NEEDS_SERVERS: &str = "needs real servers: run cargo xtask e2e";

fn runtimes() -> Vec<RuntimeChoice> {
    std::env::var("PROMLEARN_E2E_RUNTIMES")
        .unwrap_or_else(|_| "processes".into())
        .split(',')
        .map(|name| {
            name.parse()
                .expect("PROMLEARN_E2E_RUNTIMES lists processes and/or containers")
        })
        .collect()
}

fn config(runtime: RuntimeChoice) -> TestbedConfig {
    TestbedConfig::for_tests()
        .expect("free ports")
        .with_runtime(runtime)
}

/// One DNS query for `name` (type A) over UDP, built by hand so this crate needs no DNS library;
/// returns the answer's rcode.
fn query_a(server: std::net::SocketAddr, id: u16, name: &str) -> u8 {
    let mut packet = Vec::new();
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name.trim_end_matches('.').split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.extend_from_slice(&[0, 0, 1, 0, 1]); // root, type A, class IN
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    socket.send_to(&packet, server).unwrap();
    let mut answer = [0u8; 512];
    let (len, _) = socket
        .recv_from(&mut answer)
        .expect("CoreDNS answers within 3 s");
    assert!(
        len >= 12 && answer[..2] == id.to_be_bytes(),
        "a DNS answer to our query"
    );
    answer[3] & 0x0f
}

fn is_gone(id: &ServerId) -> bool {
    match id {
        ServerId::Process(pid) => {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
            // Gone, or a zombie that the kernel keeps only until its parent reaps it.
            stat.map(|s| s.contains(") Z ")).unwrap_or(true)
        }
        ServerId::Container(id) => {
            let inspect = Command::new("docker")
                .args(["inspect", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            !inspect.expect("docker CLI runs").success()
        }
    }
}

async fn assert_all_gone(ids: &[ServerId]) {
    for _ in 0..100 {
        if ids.iter().all(is_gone) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left: Vec<_> = ids.iter().filter(|id| !is_gone(id)).collect();
    panic!("still running after teardown: {left:?}");
}

async fn total(testbed: &Testbed, query: &str, expected: f64) {
    testbed
        .wait_for_query(query, Duration::from_secs(20), |samples| {
            samples.iter().map(|s| s.value).sum::<f64>() == expected
        })
        .await
        .unwrap_or_else(|e| panic!("{query} should reach {expected}: {e}"));
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn queries_are_counted_under_both_names_and_teardown_leaves_nothing() {
    let _ = NEEDS_SERVERS;
    for runtime in runtimes() {
        let testbed = Testbed::start(config(runtime)).await.unwrap();
        let up = testbed.query("up{job=\"coredns\"}").await.unwrap();
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].value, 1.0, "{runtime:?}: CoreDNS target up");
        assert_eq!(up[0].labels["instance"], testbed.coredns_instance());

        const QUERIES: u16 = 3;
        for id in 0..QUERIES {
            assert_eq!(
                query_a(testbed.dns_addr(), id + 1, &format!("demo{id}.example.org")),
                0,
                "NOERROR"
            );
        }
        total(
            &testbed,
            "sum(coredns_dns_requests_total)",
            f64::from(QUERIES),
        )
        .await;
        total(
            &testbed,
            "sum(coredns_dns_request_count_total)",
            f64::from(QUERIES),
        )
        .await;
        // Exactly: the counter must not drift past the number of queries sent.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let again = testbed
            .query("sum(coredns_dns_requests_total)")
            .await
            .unwrap();
        assert_eq!(
            again[0].value,
            f64::from(QUERIES),
            "{runtime:?}: no extra requests counted"
        );

        let ids = testbed.server_ids();
        assert_eq!(ids.len(), 2);
        testbed.stop().await.unwrap();
        assert_all_gone(&ids).await;
    }
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn drop_and_panic_both_tear_down() {
    for runtime in runtimes() {
        let testbed = Testbed::start(config(runtime)).await.unwrap();
        let ids = testbed.server_ids();
        drop(testbed);
        assert_all_gone(&ids).await;

        let (sender, receiver) = tokio::sync::oneshot::channel();
        let panicking = tokio::spawn(async move {
            let testbed = Testbed::start(config(runtime)).await.unwrap();
            sender.send(testbed.server_ids()).unwrap();
            panic!("a test fails while holding the testbed");
        });
        let ids = receiver.await.unwrap();
        assert!(panicking.await.unwrap_err().is_panic());
        assert_all_gone(&ids).await;
    }
}

/// Ctrl-C (SIGINT) and SIGTERM to a program holding a testbed, and SIGKILL for processes, where
/// no handler can run and the kernel's parent-death signal must do the work.
#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn signals_to_the_holder_leave_nothing_running() {
    for runtime in runtimes() {
        let signals: &[i32] = match runtime {
            RuntimeChoice::Processes => &[libc_sig::INT, libc_sig::TERM, libc_sig::KILL],
            _ => &[libc_sig::INT, libc_sig::TERM],
        };
        for &signal in signals {
            let mut holder = Command::new(env!("CARGO_BIN_EXE_promlearn-testbed"))
                .args(["--ephemeral-ports", "--runtime", runtime_name(runtime)])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
                &mut line,
            )
            .unwrap();
            let started: serde_json::Value =
                serde_json::from_str(&line).expect("the holder prints its servers");
            let ids: Vec<ServerId> = started["servers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| {
                    let id = id.as_str().unwrap();
                    match id.split_once(':').unwrap() {
                        ("pid", pid) => ServerId::Process(pid.parse().unwrap()),
                        (_, container) => ServerId::Container(container.to_owned()),
                    }
                })
                .collect();
            assert_eq!(ids.len(), 2);
            Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(holder.id().to_string())
                .status()
                .unwrap();
            holder.wait().unwrap();
            assert_all_gone(&ids).await;
        }
    }
}

mod libc_sig {
    pub const INT: i32 = 2;
    pub const KILL: i32 = 9;
    pub const TERM: i32 = 15;
}

fn runtime_name(runtime: RuntimeChoice) -> &'static str {
    match runtime {
        RuntimeChoice::Processes => "processes",
        RuntimeChoice::Containers => "containers",
        RuntimeChoice::Auto => "auto",
    }
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn a_taken_port_is_named_and_nothing_starts() {
    for runtime in runtimes() {
        let config = config(runtime);
        let _squatter =
            std::net::TcpListener::bind(("127.0.0.1", config.ports.prometheus)).unwrap();
        let err = Testbed::start(config.clone()).await.unwrap_err();
        assert!(
            matches!(err, TestbedError::PortInUse { port, .. } if port == config.ports.prometheus),
            "{err}"
        );
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn configs_that_do_not_parse_fail_with_the_servers_own_words() {
    for runtime in runtimes() {
        let dir = tempfile::tempdir().unwrap();
        let root = promlearn_testbed::repository_root();
        let mut config = config(runtime);
        config.corefile = write(
            dir.path(),
            "Corefile",
            ".:9053 {\n  prometheus\n  whoami\n  no_such_plugin\n}\n",
        );
        let err = Testbed::start(config.clone()).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                TestbedError::ServerExited {
                    server: "CoreDNS",
                    ..
                }
            ),
            "{text}"
        );
        assert!(
            text.contains("no_such_plugin"),
            "CoreDNS's own complaint is shown: {text}"
        );

        config.corefile = root.join("Corefile");
        let yml = std::fs::read_to_string(root.join("prometheus.yml")).unwrap();
        config.prometheus_yml = write(
            dir.path(),
            "prometheus.yml",
            &yml.replace("scrape_interval:", "scrape_intervl:"),
        );
        std::fs::copy(
            root.join("coredns-compat.rules.yml"),
            dir.path().join("coredns-compat.rules.yml"),
        )
        .unwrap();
        let err = Testbed::start(config).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                TestbedError::ServerExited {
                    server: "Prometheus",
                    ..
                }
            ),
            "{text}"
        );
        assert!(
            text.contains("scrape_intervl"),
            "Prometheus's own complaint is shown: {text}"
        );
    }
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn a_missing_binary_is_named() {
    let mut config = config(RuntimeChoice::Processes);
    config.coredns_bin = Some("/nonexistent/coredns".into());
    let err = Testbed::start(config).await.unwrap_err().to_string();
    assert!(
        err.contains("coredns binary") && err.contains("/nonexistent/coredns"),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn containers_without_docker_say_so() {
    // The holder binary runs in its own environment, pointed at a socket where no daemon is.
    let output = Command::new(env!("CARGO_BIN_EXE_promlearn-testbed"))
        .args(["--ephemeral-ports", "--runtime", "containers"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("needs a Docker daemon"), "{stderr}");
}
