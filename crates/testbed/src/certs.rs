//! Throw-away certificates for tests of TLS, made at test time by the `openssl` command (in every
//! Debian image), so that no key is ever committed: a CA, a server certificate it signs for
//! `localhost` and `127.0.0.1`, a client certificate it signs, and a second CA of the same name
//! with another key that signed nothing (to check that trust is really verified). The loader's
//! client tests (a Prometheus serving HTTPS) and the watch's server tests (Prometheus scraping
//! the watch over HTTPS) share them.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{Result, TestbedError};

/// The files [`make_certificates`] wrote (PEM, keys unencrypted, ECDSA P-256, valid two days).
#[derive(Debug, Clone)]
pub struct Certificates {
    /// The CA's certificate: what a client trusts.
    pub ca: PathBuf,
    /// The CA's key.
    pub ca_key: PathBuf,
    /// Another CA named as the first, with another key; it signed nothing here.
    pub other_ca: PathBuf,
    /// The server's certificate (localhost, 127.0.0.1), signed by `ca`.
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
    /// A client certificate (CN `promlearn test client`) signed by `ca`, for mutual TLS.
    pub client_cert: PathBuf,
    /// The client's key.
    pub client_key: PathBuf,
}

/// Writes a fresh CA, server and client certificates into `dir` (see [`Certificates`]).
///
/// Each call makes a CA of its own, of the same name with another key: a second call on another
/// directory gives a client certificate the first CA did not sign (mutual TLS must refuse it).
pub fn make_certificates(dir: &Path) -> Result<Certificates> {
    let openssl = |args: &[&str]| -> Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| TestbedError::Provision {
                what: "test certificates",
                detail: format!("running openssl (apt-get install openssl): {e}"),
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(TestbedError::Provision {
                what: "test certificates",
                detail: format!(
                    "openssl {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            })
        }
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=promlearn test CA",
    ];
    ca.extend(ec);
    let mut other_ca = ca.clone();
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(&ca)?;
    other_ca.extend(["-keyout", "other-ca.key", "-out", "other-ca.pem"]);
    openssl(&other_ca)?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|source| TestbedError::Io {
            context: format!("writing {name} for the test certificates"),
            source,
        })
    };
    write("server.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")?;
    write("client.ext", "extendedKeyUsage=clientAuth\n")?;
    for (name, subject) in [
        ("server", "/CN=localhost"),
        ("client", "/CN=promlearn test client"),
    ] {
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        let mut request = vec!["req", "-subj", subject];
        request.extend(ec);
        request.extend(["-keyout", &key, "-out", &csr]);
        openssl(&request)?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &pem,
        ])?;
    }
    Ok(Certificates {
        ca: dir.join("ca.pem"),
        ca_key: dir.join("ca.key"),
        other_ca: dir.join("other-ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    })
}
