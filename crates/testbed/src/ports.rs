//! The testbed's ports: the tutorial's, or free ephemeral ones, checked free before a start.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};

use crate::{Result, TestbedError};

/// The three ports of a testbed. All servers listen on loopback only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// CoreDNS's DNS port (UDP and TCP).
    pub dns: u16,
    /// CoreDNS's metrics port, scraped by Prometheus.
    pub metrics: u16,
    /// Prometheus's web and API port.
    pub prometheus: u16,
}

impl Ports {
    /// The tutorial's ports: DNS on 9053, CoreDNS metrics on 9153, Prometheus on 9090.
    pub const TUTORIAL: Ports = Ports {
        dns: 9053,
        metrics: 9153,
        prometheus: 9090,
    };

    /// Three ports the kernel reports free right now, so parallel test runs never collide.
    ///
    /// ```
    /// let ports = promlearn_testbed::Ports::ephemeral().unwrap();
    /// assert_ne!(ports.dns, ports.prometheus);
    /// ```
    pub fn ephemeral() -> Result<Ports> {
        // Holding all three listeners until all are chosen keeps the kernel from handing one port out twice.
        let mut held = Vec::new();
        let mut pick = || -> Result<u16> {
            loop {
                let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                    .map_err(TestbedError::io("asking the kernel for a free port"))?;
                let port = tcp
                    .local_addr()
                    .map_err(TestbedError::io("reading a bound port"))?
                    .port();
                // The DNS port needs UDP too; a free TCP port can still be taken for UDP.
                if let Ok(udp) = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)) {
                    held.push((tcp, Some(udp)));
                    return Ok(port);
                }
            }
        };
        let (dns, metrics, prometheus) = (pick()?, pick()?, pick()?);
        Ok(Ports {
            dns,
            metrics,
            prometheus,
        })
    }

    /// Fails with [`TestbedError::PortInUse`] naming the first port that another process holds.
    pub fn ensure_free(&self) -> Result<()> {
        let taken = |port, proto, purpose| TestbedError::PortInUse {
            port,
            proto,
            purpose,
        };
        UdpSocket::bind((Ipv4Addr::LOCALHOST, self.dns))
            .map_err(|_| taken(self.dns, "udp", "CoreDNS DNS"))?;
        for (port, purpose) in [
            (self.dns, "CoreDNS DNS"),
            (self.metrics, "CoreDNS metrics"),
            (self.prometheus, "Prometheus"),
        ] {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .map_err(|_| taken(port, "tcp", purpose))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_port_is_reported_by_number_and_purpose() {
        // Another process may take one of the other two ephemeral ports between their choice
        // and the check (tests and servers run in parallel): then that port is the one named,
        // rightly, and the check is made again on fresh ports.
        let mut errors = Vec::new();
        for _ in 0..20 {
            let ports = Ports::ephemeral().unwrap();
            let _holder = TcpListener::bind((Ipv4Addr::LOCALHOST, ports.prometheus)).unwrap();
            let err = ports.ensure_free().unwrap_err().to_string();
            if err.contains(&format!("port {}/tcp for Prometheus", ports.prometheus)) {
                return;
            }
            errors.push(err);
        }
        panic!("the held Prometheus port was never the one named: {errors:#?}");
    }

    #[test]
    fn ephemeral_ports_are_distinct_and_free() {
        let ports = Ports::ephemeral().unwrap();
        assert!(
            ports.dns != ports.metrics
                && ports.metrics != ports.prometheus
                && ports.dns != ports.prometheus
        );
        ports.ensure_free().unwrap();
    }
}
