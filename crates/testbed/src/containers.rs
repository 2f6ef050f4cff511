//! The container runtime (cargo feature `containers`): CoreDNS and Prometheus as Docker
//! containers through testcontainers, with host networking so both runtimes look the same.
//!
//! Images are given (`COREDNS_IMAGE` / `PROMETHEUS_IMAGE`) or upstream's at pinned tags; this
//! crate never builds them (`cargo xtask setup` does, where no registry is reachable).

use std::time::Duration;

use testcontainers::{ContainerAsync, GenericImage, ImageExt, runners::AsyncRunner};

use crate::{
    Result, TestbedError,
    config::ServerConfigs,
    locate::{COREDNS_IMAGE_ENV, PROMETHEUS_IMAGE_ENV, PROMETHEUS3_IMAGE_ENV},
    server::{CONTAINER_LABEL, Server},
};

/// The upstream images used on machines that can pull them; CoreDNS's tag is the release that
/// `cargo xtask setup` builds (`xtask/src/provision.rs`, kept equal by the tidy test).
pub const COREDNS_UPSTREAM_IMAGE: &str = "coredns/coredns:1.15.0";
/// Prometheus as Debian bookworm ships it (and as CI tests it).
pub const PROMETHEUS_UPSTREAM_IMAGE: &str = "prom/prometheus:v2.42.0";
/// Prometheus 3 as Debian sid ships it (`cargo xtask setup` fetches that package).
pub const PROMETHEUS3_UPSTREAM_IMAGE: &str = "prom/prometheus:v3.5.3";

/// The image names the container runtime uses: the environment's, else upstream's.
pub fn coredns_image() -> String {
    std::env::var(COREDNS_IMAGE_ENV).unwrap_or_else(|_| COREDNS_UPSTREAM_IMAGE.into())
}

/// See [`coredns_image`].
pub fn prometheus_image() -> String {
    std::env::var(PROMETHEUS_IMAGE_ENV).unwrap_or_else(|_| PROMETHEUS_UPSTREAM_IMAGE.into())
}

/// The image of a Prometheus release: `$PROMETHEUS_IMAGE` / `$PROMETHEUS3_IMAGE`, else upstream's.
pub fn prometheus_image_of(release: crate::PrometheusRelease) -> String {
    match release {
        crate::PrometheusRelease::V2 => prometheus_image(),
        crate::PrometheusRelease::V3 => std::env::var(PROMETHEUS3_IMAGE_ENV)
            .unwrap_or_else(|_| PROMETHEUS3_UPSTREAM_IMAGE.into()),
    }
}

/// Whether a Docker daemon answers; `Err` says why not.
pub async fn docker_ping() -> std::result::Result<(), String> {
    let docker = bollard::Docker::connect_with_local_defaults().map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(3), docker.ping()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the daemon did not answer a ping within 3 s".into()),
    }
}

/// Whether `image` is present in the local Docker image store.
pub async fn docker_image_present(image: &str) -> bool {
    let Ok(docker) = bollard::Docker::connect_with_local_defaults() else {
        return false;
    };
    docker.inspect_image(image).await.is_ok()
}

/// Pulls `image` from its registry, giving up after two minutes.
pub async fn docker_pull(image: &str) -> std::result::Result<(), String> {
    use futures_util::StreamExt;
    let docker = bollard::Docker::connect_with_local_defaults().map_err(|e| e.to_string())?;
    let options = bollard::query_parameters::CreateImageOptions {
        from_image: Some(image.to_owned()),
        ..Default::default()
    };
    let pull = async {
        let mut stream = docker.create_image(Some(options), None, None);
        while let Some(step) = stream.next().await {
            step.map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(120), pull)
        .await
        .map_err(|_| "the pull did not finish within 120 s".to_owned())?
}

/// A running server container; removed when stopped or dropped.
#[derive(Debug)]
pub(crate) struct ContainerServer {
    name: &'static str,
    // Boxed: the container handle is four times the size of a process handle.
    container: Box<ContainerAsync<GenericImage>>,
}

impl ContainerServer {
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn id(&self) -> String {
        self.container.id().to_owned()
    }

    pub(crate) async fn exit_status(&self) -> Option<String> {
        match self.container.is_running().await {
            Ok(true) => None,
            Ok(false) => Some(match self.container.exit_code().await {
                Ok(Some(code)) => format!("container exit code {code}"),
                _ => "container stopped".into(),
            }),
            Err(e) => Some(format!("container state unknown: {e}")),
        }
    }

    pub(crate) async fn last_log_lines(&self, n: usize) -> String {
        let mut text = String::new();
        for bytes in [
            self.container.stdout_to_vec().await,
            self.container.stderr_to_vec().await,
        ]
        .into_iter()
        .flatten()
        {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub(crate) async fn stop(self) -> Result<()> {
        let name = self.name;
        self.container
            .rm()
            .await
            .map_err(|source| TestbedError::Container {
                context: format!("removing the {name} container"),
                source,
            })
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
        Ok(Ok(container)) => Ok(Server::Container(ContainerServer {
            name,
            container: Box::new(container),
        })),
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
    for (name, contents) in configs.rule_files.iter().chain(&configs.side_files) {
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
