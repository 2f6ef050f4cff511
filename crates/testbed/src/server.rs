//! One running server, whichever runtime started it.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use testcontainers::{ContainerAsync, GenericImage, ImageExt, runners::AsyncRunner};
use tokio::process::Command;

use crate::{
    Result, TestbedError,
    config::ServerConfigs,
    process::ServerProcess,
    provision::{self, COREDNS_IMAGE_ENV, PROMETHEUS_IMAGE_ENV},
};

/// A label on every container the testbed starts, so that leftovers can be found.
pub const CONTAINER_LABEL: &str = "dev.promlearn.testbed";

/// What identifies a running server to the operating system or to Docker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerId {
    Process(u32),
    Container(String),
}

#[derive(Debug)]
pub(crate) enum Server {
    Process(ServerProcess),
    Container {
        name: &'static str,
        // Boxed: the container handle is four times the size of a process handle.
        container: Box<ContainerAsync<GenericImage>>,
    },
}

impl Server {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Server::Process(process) => process.name(),
            Server::Container { name, .. } => name,
        }
    }

    pub(crate) fn id(&self) -> Option<ServerId> {
        match self {
            Server::Process(process) => process.pid().map(ServerId::Process),
            Server::Container { container, .. } => {
                Some(ServerId::Container(container.id().to_owned()))
            }
        }
    }

    /// `Some(status)` once the server has stopped running.
    pub(crate) async fn exit_status(&mut self) -> Option<String> {
        match self {
            Server::Process(process) => process.exit_status(),
            Server::Container { container, .. } => match container.is_running().await {
                Ok(true) => None,
                Ok(false) => Some(match container.exit_code().await {
                    Ok(Some(code)) => format!("container exit code {code}"),
                    _ => "container stopped".into(),
                }),
                Err(e) => Some(format!("container state unknown: {e}")),
            },
        }
    }

    pub(crate) async fn last_log_lines(&self, n: usize) -> String {
        match self {
            Server::Process(process) => process.last_log_lines(n),
            Server::Container { container, .. } => {
                let mut text = String::new();
                for bytes in [
                    container.stdout_to_vec().await,
                    container.stderr_to_vec().await,
                ]
                .into_iter()
                .flatten()
                {
                    text.push_str(&String::from_utf8_lossy(&bytes));
                }
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(n)..].join("\n")
            }
        }
    }

    pub(crate) async fn stop(self) -> Result<()> {
        match self {
            Server::Process(process) => process.stop().await,
            Server::Container { name, container } => {
                container
                    .rm()
                    .await
                    .map_err(|source| TestbedError::Container {
                        context: format!("removing the {name} container"),
                        source,
                    })
            }
        }
    }
}

/// Starts CoreDNS as a child process with the rendered Corefile written into `workdir`.
pub(crate) fn coredns_process(
    configs: &ServerConfigs,
    workdir: &Path,
    binary: Option<PathBuf>,
) -> Result<Server> {
    let binary =
        existing(binary, "the coredns binary")?.map_or_else(provision::locate_coredns, Ok)?;
    let corefile = workdir.join("Corefile");
    std::fs::write(&corefile, &configs.corefile)
        .map_err(TestbedError::io("writing the Corefile"))?;
    let mut command = Command::new(binary);
    command.arg("-conf").arg(&corefile).current_dir(workdir);
    Ok(Server::Process(ServerProcess::spawn("CoreDNS", command)?))
}

/// Starts Prometheus as a child process, its config and TSDB in `workdir`.
pub(crate) fn prometheus_process(
    configs: &ServerConfigs,
    workdir: &Path,
    port: u16,
    binary: Option<PathBuf>,
) -> Result<Server> {
    let binary =
        existing(binary, "the prometheus binary")?.map_or_else(provision::locate_prometheus, Ok)?;
    let config = workdir.join("prometheus.yml");
    std::fs::write(&config, &configs.prometheus_yml)
        .map_err(TestbedError::io("writing prometheus.yml"))?;
    for (name, contents) in &configs.rule_files {
        std::fs::write(workdir.join(name), contents)
            .map_err(TestbedError::io(format!("writing {name}")))?;
    }
    let mut command = Command::new(binary);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            workdir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .current_dir(workdir);
    Ok(Server::Process(ServerProcess::spawn(
        "Prometheus",
        command,
    )?))
}

fn existing(binary: Option<PathBuf>, what: &'static str) -> Result<Option<PathBuf>> {
    match binary {
        Some(path) if !path.is_file() => Err(TestbedError::BinaryMissing {
            what,
            advice: format!("{} was named, but there is no file there", path.display()),
        }),
        other => Ok(other),
    }
}

fn split_image(image: &str) -> (&str, &str) {
    // The tag follows the last ':' unless that ':' belongs to a registry's port (a '/' after it).
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => (&image[..i], &image[i + 1..]),
        _ => (image, "latest"),
    }
}

async fn start_container(
    name: &'static str,
    image: String,
    env_var: &'static str,
    request: impl FnOnce(GenericImage) -> testcontainers::ContainerRequest<GenericImage>,
) -> Result<Server> {
    let (repository, tag) = split_image(&image);
    let started = tokio::time::timeout(
        Duration::from_secs(300),
        request(GenericImage::new(repository, tag))
            .with_label(CONTAINER_LABEL, "1")
            // Host networking: the servers see each other as localhost, as in the tutorial, and
            // Prometheus's `instance` label reads the same in both runtimes.
            .with_network("host")
            .start(),
    )
    .await;
    match started {
        Ok(Ok(container)) => Ok(Server::Container {
            name,
            container: Box::new(container),
        }),
        Ok(Err(e)) => {
            let text = e.to_string();
            if text.contains("No such image") || text.contains("pull") || text.contains("404") {
                Err(TestbedError::ImageUnavailable {
                    image,
                    env_var,
                    reason: text,
                })
            } else {
                Err(TestbedError::Container {
                    context: format!("starting the {name} container from {image}"),
                    source: e,
                })
            }
        }
        Err(_) => Err(TestbedError::ImageUnavailable {
            image,
            env_var,
            reason: "creating or pulling it took more than 300 s".into(),
        }),
    }
}

pub(crate) async fn coredns_container(configs: &ServerConfigs, image: String) -> Result<Server> {
    let corefile = configs.corefile.clone().into_bytes();
    start_container("CoreDNS", image, COREDNS_IMAGE_ENV, |image| {
        image
            .with_copy_to("/etc/coredns/Corefile", corefile)
            .with_cmd(["-conf", "/etc/coredns/Corefile"])
    })
    .await
}

pub(crate) async fn prometheus_container(
    configs: &ServerConfigs,
    port: u16,
    image: String,
) -> Result<Server> {
    let mut request_files = vec![(
        "/etc/prometheus/prometheus.yml".to_owned(),
        configs.prometheus_yml.clone().into_bytes(),
    )];
    for (name, contents) in &configs.rule_files {
        request_files.push((
            format!("/etc/prometheus/{name}"),
            contents.clone().into_bytes(),
        ));
    }
    start_container("Prometheus", image, PROMETHEUS_IMAGE_ENV, |image| {
        let mut request = image.with_cmd([
            "--config.file=/etc/prometheus/prometheus.yml".to_owned(),
            "--storage.tsdb.path=/prometheus".to_owned(),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ]);
        for (target, contents) in request_files {
            request = request.with_copy_to(target, contents);
        }
        request
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::split_image;

    #[test]
    fn image_names_split_into_repository_and_tag() {
        assert_eq!(
            split_image("prom/prometheus:v2.42.0"),
            ("prom/prometheus", "v2.42.0")
        );
        assert_eq!(
            split_image("coredns/coredns"),
            ("coredns/coredns", "latest")
        );
        assert_eq!(
            split_image("localhost:5000/coredns"),
            ("localhost:5000/coredns", "latest")
        );
        assert_eq!(
            split_image("localhost:5000/coredns:1.15.0"),
            ("localhost:5000/coredns", "1.15.0")
        );
    }
}
