//! The tutorial's two configuration files, moved to other ports when a run asks for them.
//!
//! The files at the repository root are the source of truth; the testbed only rewrites the
//! addresses in them, so what runs in a test is what a user reads.

use std::path::{Path, PathBuf};

use crate::{Ports, Result, TestbedError};

/// A Corefile and a prometheus.yml (with the rule files it names), ready to hand to a server.
#[derive(Debug, Clone)]
pub struct ServerConfigs {
    /// The Corefile's text, moved to the run's ports.
    pub corefile: String,
    /// prometheus.yml's text, its targets moved to the run's ports.
    pub prometheus_yml: String,
    /// `(file name, contents)` of each file under `rule_files:`, placed beside prometheus.yml.
    pub rule_files: Vec<(String, String)>,
    /// `(file name, contents)` of other files prometheus.yml names relative to itself (a scrape
    /// job's CA certificate, client certificate and key), placed beside it.
    pub side_files: Vec<(String, String)>,
}

impl ServerConfigs {
    /// Reads the files and moves them from the tutorial's ports to `ports`.
    pub fn load(corefile: &Path, prometheus_yml: &Path, ports: Ports) -> Result<ServerConfigs> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| TestbedError::ReadConfig {
                path: path.to_owned(),
                source,
            })
        };
        let corefile_text = read(corefile)?;
        let prometheus_text = read(prometheus_yml)?;
        let base = prometheus_yml.parent().unwrap_or(Path::new("."));
        let rule_files = rule_file_names(&prometheus_text)
            .into_iter()
            .map(|name| {
                if Path::new(&name).is_absolute() || name.contains("..") {
                    return Err(TestbedError::ConfigShape {
                        path: prometheus_yml.to_owned(),
                        kind: "prometheus.yml",
                        problem: format!(
                            "rule file `{name}` must be a plain name beside prometheus.yml, so that \
                             it can be copied into a container next to it"
                        ),
                    });
                }
                Ok((name.clone(), read(&base.join(&name))?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ServerConfigs {
            corefile: rewrite_corefile(&corefile_text, corefile, ports)?,
            prometheus_yml: rewrite_prometheus_yml(&prometheus_text, prometheus_yml, ports)?,
            rule_files,
            side_files: Vec::new(),
        })
    }
}

/// A scrape job added to the testbed's Prometheus (see `TestbedConfig::extra_scrape_targets`):
/// one target, scraped every second, over HTTP or HTTPS, with or without basic auth, and over
/// HTTPS with or without a client certificate (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    /// The `job` label.
    pub job_name: String,
    /// `host:port` of the target; its `/metrics` is scraped.
    pub target: String,
    /// Scrape over HTTPS, trusting this CA certificate (PEM text; written beside
    /// prometheus.yml, so that it reaches a container too). `None`: plain HTTP.
    pub https_ca_pem: Option<String>,
    /// `(user, password)` sent with every scrape.
    pub basic_auth: Option<(String, String)>,
    /// `(certificate, key)` (PEM text) Prometheus presents when the target asks for a client
    /// certificate; written beside prometheus.yml as the CA is. Only with `https_ca_pem`.
    pub client_certificate: Option<(String, String)>,
}

impl ScrapeTarget {
    /// A job scraping `target` (`host:port`) every second, over plain HTTP.
    pub fn new(job_name: impl Into<String>, target: impl Into<String>) -> ScrapeTarget {
        ScrapeTarget {
            job_name: job_name.into(),
            target: target.into(),
            https_ca_pem: None,
            basic_auth: None,
            client_certificate: None,
        }
    }

    /// Scrapes over HTTPS (`scheme: https`, `tls_config: {ca_file}`), trusting `ca_pem`.
    pub fn https(mut self, ca_pem: impl Into<String>) -> ScrapeTarget {
        self.https_ca_pem = Some(ca_pem.into());
        self
    }

    /// Sends these credentials with every scrape (`basic_auth: {username, password}`).
    pub fn basic_auth(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> ScrapeTarget {
        self.basic_auth = Some((user.into(), password.into()));
        self
    }

    /// Presents this client certificate and key (PEM text) in every TLS handshake (`tls_config:
    /// {cert_file, key_file}`), for a target that asks for one (mutual TLS). The files are
    /// written beside prometheus.yml as the CA of [`https`](ScrapeTarget::https) is, so that
    /// they reach a container too. The job must also be [`https`](ScrapeTarget::https): over
    /// plain HTTP there is no handshake to present it in, and `Testbed::start` refuses the job
    /// rather than scrape without it.
    pub fn client_certificate(
        mut self,
        cert_pem: impl Into<String>,
        key_pem: impl Into<String>,
    ) -> ScrapeTarget {
        self.client_certificate = Some((cert_pem.into(), key_pem.into()));
        self
    }
}

impl ServerConfigs {
    /// Adds scrape jobs and rule files to prometheus.yml (the rule files are read now and
    /// placed beside it).
    pub fn add_extras(&mut self, targets: &[ScrapeTarget], rule_files: &[PathBuf]) -> Result<()> {
        for target in targets {
            let mut item = format!(
                "- job_name: {:?}\n  scrape_interval: 1s\n  static_configs:\n  - targets: [{:?}]",
                target.job_name, target.target
            );
            if let Some(pem) = &target.https_ca_pem {
                // Relative to prometheus.yml, where Prometheus looks for it.
                let name = format!("scrape-ca-{}.pem", self.side_files.len());
                item.push_str(&format!(
                    "\n  scheme: https\n  tls_config:\n    ca_file: {name:?}"
                ));
                self.side_files.push((name, pem.clone()));
                if let Some((cert, key)) = &target.client_certificate {
                    // Beside it too, numbered as the CA is, so no two jobs share a name.
                    let n = self.side_files.len();
                    let (cert_name, key_name) = (
                        format!("scrape-client-{n}.pem"),
                        format!("scrape-client-{n}.key"),
                    );
                    item.push_str(&format!(
                        "\n    cert_file: {cert_name:?}\n    key_file: {key_name:?}"
                    ));
                    self.side_files.push((cert_name, cert.clone()));
                    self.side_files.push((key_name, key.clone()));
                }
            } else if target.client_certificate.is_some() {
                return Err(TestbedError::Provision {
                    what: "a scrape job",
                    detail: format!(
                        "job `{}` has a client certificate but scrapes over plain HTTP; give it \
                         `ScrapeTarget::https` too",
                        target.job_name
                    ),
                });
            }
            if let Some((user, password)) = &target.basic_auth {
                item.push_str(&format!(
                    "\n  basic_auth:\n    username: {user:?}\n    password: {password:?}"
                ));
            }
            self.prometheus_yml = insert_list_item(&self.prometheus_yml, "scrape_configs:", &item);
        }
        for path in rule_files {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.is_empty() || self.rule_files.iter().any(|(n, _)| *n == name) {
                return Err(shape_error(
                    path,
                    "rule file",
                    format!("its name `{name}` is empty or already taken by another rule file"),
                ));
            }
            let contents =
                std::fs::read_to_string(path).map_err(|source| TestbedError::ReadConfig {
                    path: path.clone(),
                    source,
                })?;
            self.prometheus_yml =
                insert_list_item(&self.prometheus_yml, "rule_files:", &format!("- {name:?}"));
            self.rule_files.push((name, contents));
        }
        Ok(())
    }
}

/// Inserts `item` (a YAML list item written at column 0, possibly several lines) as the first
/// item of the top-level list `key`, indented as that list's items are; appends the key and
/// the item when the file has no such key.
fn insert_list_item(text: &str, key: &str, item: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(at) = lines.iter().position(|l| l.trim_end() == key) else {
        let mut out = text.trim_end().to_owned();
        out.push_str(&format!("\n{key}\n{item}\n"));
        return out;
    };
    let indent = lines[at + 1..]
        .iter()
        .find(|l| l.trim_start().starts_with("- "))
        .map_or(0, |l| l.len() - l.trim_start().len());
    let pad = " ".repeat(indent);
    let mut out: Vec<String> = lines[..=at].iter().map(|l| l.to_string()).collect();
    out.extend(item.lines().map(|l| format!("{pad}{l}")));
    out.extend(lines[at + 1..].iter().map(|l| l.to_string()));
    out.join("\n") + "\n"
}

fn shape_error(path: &Path, kind: &'static str, problem: String) -> TestbedError {
    TestbedError::ConfigShape {
        path: path.to_owned(),
        kind,
        problem,
    }
}

fn rewrite_corefile(text: &str, path: &Path, ports: Ports) -> Result<String> {
    let tutorial = Ports::TUTORIAL;
    let server_block = format!(".:{}", tutorial.dns);
    if !text.contains(&server_block) {
        return Err(shape_error(
            path,
            "Corefile",
            format!("it has no server block `{server_block} {{` to serve DNS from"),
        ));
    }
    let mut out = Vec::new();
    let mut saw_prometheus = false;
    for line in text.lines() {
        let trimmed = line.trim();
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        if words.first() == Some(&"prometheus") {
            saw_prometheus = true;
            let indent = &line[..line.len() - line.trim_start().len()];
            match words.get(1) {
                None => out.push(format!("{indent}prometheus localhost:{}", ports.metrics)),
                Some(addr) if *addr == format!("localhost:{}", tutorial.metrics) => {
                    out.push(format!("{indent}prometheus localhost:{}", ports.metrics))
                }
                Some(other) => {
                    return Err(shape_error(
                        path,
                        "Corefile",
                        format!(
                            "its prometheus plugin listens on {other}; the testbed expects the default \
                             (localhost:{}) so that it can move it",
                            tutorial.metrics
                        ),
                    ));
                }
            }
        } else {
            out.push(line.replace(&server_block, &format!(".:{}", ports.dns)));
        }
    }
    if !saw_prometheus {
        return Err(shape_error(
            path,
            "Corefile",
            "it has no `prometheus` plugin line, so CoreDNS would export no metrics".into(),
        ));
    }
    Ok(out.join("\n") + "\n")
}

fn rewrite_prometheus_yml(text: &str, path: &Path, ports: Ports) -> Result<String> {
    let tutorial = Ports::TUTORIAL;
    let moves = [
        (
            tutorial.prometheus,
            ports.prometheus,
            "Prometheus's own",
            "\u{0}prometheus\u{0}",
        ),
        (
            tutorial.metrics,
            ports.metrics,
            "CoreDNS's metrics",
            "\u{0}metrics\u{0}",
        ),
    ];
    // Placeholders first, then ports: a swap such as 9090 <-> 9153 must not rewrite twice.
    let mut rewritten = text.to_owned();
    for (from, _, what, placeholder) in moves {
        let target = format!("localhost:{from}");
        if !rewritten.contains(&target) {
            return Err(shape_error(
                path,
                "prometheus.yml",
                format!("it scrapes no `{target}` target ({what} endpoint)"),
            ));
        }
        rewritten = rewritten.replace(&target, placeholder);
    }
    for (_, to, _, placeholder) in moves {
        rewritten = rewritten.replace(placeholder, &format!("localhost:{to}"));
    }
    Ok(rewritten)
}

/// The entries of the top-level `rule_files:` list, read line by line (no YAML library needed for
/// this one list, and the file is ours).
fn rule_file_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_list = false;
    for line in text.lines() {
        if line.starts_with("rule_files:") {
            in_list = true;
            continue;
        }
        if !in_list || line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        match line.trim_start().strip_prefix("- ") {
            Some(item) => names.push(item.trim().trim_matches(['"', '\'']).to_owned()),
            None => in_list = false,
        }
    }
    names
}

/// The repository root, found from this crate's manifest, for the default Corefile and prometheus.yml.
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testbed sits two levels below the repository root")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORTS: Ports = Ports {
        dns: 1053,
        metrics: 19153,
        prometheus: 19090,
    };

    #[test]
    fn the_repository_files_move_to_other_ports() {
        let root = repository_root();
        let configs =
            ServerConfigs::load(&root.join("Corefile"), &root.join("prometheus.yml"), PORTS)
                .unwrap();
        assert!(
            configs.corefile.contains(".:1053 {"),
            "{}",
            configs.corefile
        );
        assert!(configs.corefile.contains("prometheus localhost:19153"));
        assert!(configs.prometheus_yml.contains("'localhost:19090'"));
        assert!(configs.prometheus_yml.contains("'localhost:19153'"));
        assert!(!configs.prometheus_yml.contains("'localhost:9090'"));
        assert_eq!(configs.rule_files.len(), 1);
        assert!(
            configs.rule_files[0]
                .1
                .contains("record: coredns_dns_request_count_total")
        );
    }

    #[test]
    fn tutorial_ports_leave_the_files_as_they_are() {
        let root = repository_root();
        let configs = ServerConfigs::load(
            &root.join("Corefile"),
            &root.join("prometheus.yml"),
            Ports::TUTORIAL,
        )
        .unwrap();
        assert_eq!(
            configs.corefile,
            ".:9053 {\n  prometheus localhost:9153\n  whoami\n}\n"
        );
        assert_eq!(
            configs.prometheus_yml,
            std::fs::read_to_string(root.join("prometheus.yml")).unwrap()
        );
    }

    #[test]
    fn a_corefile_without_metrics_is_refused_with_the_reason() {
        let err =
            rewrite_corefile(".:9053 {\n  whoami\n}\n", Path::new("Corefile"), PORTS).unwrap_err();
        assert!(err.to_string().contains("no `prometheus` plugin"), "{err}");
    }

    #[test]
    fn extra_scrape_targets_and_rule_files_join_prometheus_yml() {
        let root = repository_root();
        let mut configs =
            ServerConfigs::load(&root.join("Corefile"), &root.join("prometheus.yml"), PORTS)
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("alerts.yml");
        std::fs::write(&rules, "groups: []\n").unwrap();
        configs
            .add_extras(
                &[ScrapeTarget::new("watch", "127.0.0.1:4242")],
                std::slice::from_ref(&rules),
            )
            .unwrap();
        let yml = &configs.prometheus_yml;
        assert!(
            yml.contains(
                "scrape_configs:\n- job_name: \"watch\"\n  scrape_interval: 1s\n  static_configs:\n  - targets: [\"127.0.0.1:4242\"]\n- job_name: 'prometheus'"
            ),
            "{yml}"
        );
        assert!(yml.contains("rule_files:\n- \"alerts.yml\"\n"), "{yml}");
        assert_eq!(
            rule_file_names(yml),
            ["alerts.yml", "coredns-compat.rules.yml"]
        );
        assert_eq!(
            configs.rule_files.last().unwrap(),
            &("alerts.yml".to_owned(), "groups: []\n".to_owned())
        );
        // The same name twice is refused.
        assert!(configs.add_extras(&[], &[rules]).is_err());
        // Indented lists keep their indentation; a missing key is appended.
        assert_eq!(
            insert_list_item("a:\n  - x\n", "a:", "- y\n  z: 1"),
            "a:\n  - y\n    z: 1\n  - x\n"
        );
        assert_eq!(insert_list_item("b: 1\n", "a:", "- y"), "b: 1\na:\n- y\n");
    }

    #[test]
    fn a_client_certificate_joins_the_jobs_tls_config_beside_its_ca() {
        let root = repository_root();
        let mut configs =
            ServerConfigs::load(&root.join("Corefile"), &root.join("prometheus.yml"), PORTS)
                .unwrap();
        configs
            .add_extras(
                &[
                    ScrapeTarget::new("ca-only", "localhost:4242").https("CA"),
                    ScrapeTarget::new("mtls", "localhost:4242")
                        .https("CA")
                        .client_certificate("CERT", "KEY"),
                ],
                &[],
            )
            .unwrap();
        let yml = &configs.prometheus_yml;
        assert!(
            yml.contains(
                "- job_name: \"mtls\"\n  scrape_interval: 1s\n  static_configs:\n  - targets: [\"localhost:4242\"]\n  scheme: https\n  tls_config:\n    ca_file: \"scrape-ca-1.pem\"\n    cert_file: \"scrape-client-2.pem\"\n    key_file: \"scrape-client-2.key\"\n- job_name: \"ca-only\""
            ),
            "{yml}"
        );
        assert!(
            yml.contains(
                "  tls_config:\n    ca_file: \"scrape-ca-0.pem\"\n- job_name: 'prometheus'"
            ),
            "{yml}"
        );
        let side: Vec<(&str, &str)> = configs
            .side_files
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_str()))
            .collect();
        assert_eq!(
            side,
            [
                ("scrape-ca-0.pem", "CA"),
                ("scrape-ca-1.pem", "CA"),
                ("scrape-client-2.pem", "CERT"),
                ("scrape-client-2.key", "KEY"),
            ]
        );
        // Over plain HTTP it could not be presented: refused, not dropped.
        let err = configs
            .add_extras(
                &[ScrapeTarget::new("plain", "localhost:4242").client_certificate("CERT", "KEY")],
                &[],
            )
            .unwrap_err();
        assert!(err.to_string().contains("`plain`"), "{err}");
    }

    #[test]
    fn port_swaps_do_not_chain() {
        let ports = Ports {
            dns: 9053,
            metrics: 9090,
            prometheus: 9153,
        };
        let yml = "targets: ['localhost:9090']\ntargets: ['localhost:9153']\n";
        let out = rewrite_prometheus_yml(yml, Path::new("p.yml"), ports).unwrap();
        assert_eq!(
            out,
            "targets: ['localhost:9153']\ntargets: ['localhost:9090']\n"
        );
    }
}
