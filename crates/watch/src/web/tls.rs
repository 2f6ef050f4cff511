//! `tls_server_config` into a rustls server configuration (ring as the crypto provider), with the
//! certificate and key re-read at the first handshake after either changes on disk.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use rustls::{
    RootCertStore, ServerConfig, SupportedProtocolVersion,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
};
use serde::Deserialize;

use super::{Stamp, file_stamp, unsupported};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    #[serde(default)]
    cert_file: Option<String>,
    #[serde(default)]
    key_file: Option<String>,
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<String>,
    #[serde(default)]
    client_ca: Option<String>,
    #[serde(default)]
    client_allowed_sans: Option<Vec<String>>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
    #[serde(default)]
    cipher_suites: Option<Vec<String>>,
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    curve_preferences: Option<Vec<String>>,
}

/// PEM text from a file or written inline.
pub(super) enum Pem {
    File(PathBuf),
    Inline(String),
}

impl Pem {
    /// One of `file_key` (a path) and `inline_key` (the text), if either is set; both is an error.
    fn choose(
        file: &Option<String>,
        inline: &Option<String>,
        file_key: &str,
        inline_key: &str,
        base: &Path,
    ) -> Result<Option<Pem>, String> {
        let file = file.as_deref().filter(|f| !f.is_empty());
        let inline = inline.as_deref().filter(|f| !f.is_empty());
        match (file, inline) {
            (Some(_), Some(_)) => Err(format!(
                "tls_server_config: `{file_key}` and `{inline_key}` exclude each other; keep one"
            )),
            (Some(f), None) => Ok(Some(Pem::File(base.join(f)))),
            (None, Some(text)) => Ok(Some(Pem::Inline(text.to_owned()))),
            (None, None) => Ok(None),
        }
    }

    fn read(&self, key: &str) -> Result<Vec<u8>, String> {
        match self {
            Pem::Inline(text) => Ok(text.clone().into_bytes()),
            Pem::File(path) => std::fs::read(path).map_err(|e| {
                format!(
                    "tls_server_config: cannot read {key} {}: {e}",
                    path.display()
                )
            }),
        }
    }
}

impl RawTls {
    /// The rustls configuration, or `None` when nothing is set (exporter-toolkit then serves
    /// plain HTTP too).
    pub(super) fn build(&self, base: &Path) -> Result<Option<Arc<ServerConfig>>, String> {
        let cert = Pem::choose(&self.cert_file, &self.cert, "cert_file", "cert", base)?;
        let key = Pem::choose(&self.key_file, &self.key, "key_file", "key", base)?;
        let client_ca = Pem::choose(
            &self.client_ca_file,
            &self.client_ca,
            "client_ca_file",
            "client_ca",
            base,
        )?;
        let auth_type = self.client_auth_type.as_deref().unwrap_or("");
        if cert.is_none() && key.is_none() && client_ca.is_none() && auth_type.is_empty() {
            return Ok(None);
        }
        let (Some(cert), Some(key)) = (cert, key) else {
            return Err(
                "tls_server_config needs both cert_file and key_file (or cert and key)".into(),
            );
        };
        for (key, value, instead) in [
            (
                "cipher_suites",
                &self.cipher_suites,
                "rely on rustls's safe suites",
            ),
            (
                "curve_preferences",
                &self.curve_preferences,
                "rely on rustls's curves",
            ),
            (
                "client_allowed_sans",
                &self.client_allowed_sans,
                "issue client certificates from a CA of their own",
            ),
        ] {
            if value.as_ref().is_some_and(|v| !v.is_empty()) {
                return Err(format!("tls_server_config: {}", unsupported(key, instead)));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions = protocol_versions(
            self.min_version.as_deref().unwrap_or("TLS12"),
            self.max_version.as_deref().unwrap_or("TLS13"),
        )?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("tls_server_config: {e}"))?;
        let required = match auth_type {
            "" | "NoClientCert" => None,
            "VerifyClientCertIfGiven" => Some(false),
            "RequireAndVerifyClientCert" => Some(true),
            "RequestClientCert" | "RequireAnyClientCert" => {
                return Err(format!(
                    "tls_server_config: client_auth_type {auth_type} accepts client certificates \
                     without verifying them, which this server does not do; use \
                     RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file"
                ));
            }
            other => {
                return Err(format!(
                    "tls_server_config: client_auth_type `{other}` is not one of NoClientCert, \
                     VerifyClientCertIfGiven, RequireAndVerifyClientCert"
                ));
            }
        };
        let builder = match (required, client_ca) {
            (None, None) => builder.with_no_client_auth(),
            (None, Some(_)) => {
                return Err(
                    "tls_server_config: client_ca_file is set but client_auth_type is \
                            NoClientCert, so no client certificate would be checked; set \
                            client_auth_type: RequireAndVerifyClientCert"
                        .into(),
                );
            }
            (Some(_), None) => {
                return Err(format!(
                    "tls_server_config: client_auth_type {auth_type} needs client_ca_file, the \
                     CA that signs the clients' certificates"
                ));
            }
            (Some(required), Some(ca)) => {
                let pem = ca.read("client_ca_file")?;
                let certs = certificates(&pem, "client_ca_file")?;
                let mut roots = RootCertStore::empty();
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(
                        "tls_server_config: client_ca_file holds no usable CA certificate".into(),
                    );
                }
                let mut verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                if !required {
                    verifier = verifier.allow_unauthenticated();
                }
                let verifier = verifier
                    .build()
                    .map_err(|e| format!("tls_server_config: client_ca_file: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let resolver = CertResolver::new(cert, key, provider)?;
        let mut config = builder.with_cert_resolver(Arc::new(resolver));
        // Go's default, which exporter-toolkit keeps unless told otherwise.
        config.ignore_client_order = self.prefer_server_cipher_suites.unwrap_or(true);
        Ok(Some(Arc::new(config)))
    }
}

fn protocol_versions(
    min: &str,
    max: &str,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let rank = |name: &str, key: &str| match name {
        "TLS10" => Ok(10),
        "TLS11" => Ok(11),
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        other => Err(format!(
            "tls_server_config: {key} `{other}` is not one of TLS10, TLS11, TLS12, TLS13"
        )),
    };
    let (min, max) = (rank(min, "min_version")?, rank(max, "max_version")?);
    // rustls speaks 1.2 and 1.3 only: a range reaching lower is served from 1.2 up.
    let versions: Vec<_> = [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, version)| version)
        .collect();
    if versions.is_empty() {
        return Err(format!(
            "tls_server_config: min_version/max_version leave no TLS version this server speaks \
             (TLS12 and TLS13; asked for {min} to {max})"
        ));
    }
    Ok(versions)
}

fn certificates(pem: &[u8], key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_server_config: {key} is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config: {key} holds no `BEGIN CERTIFICATE` block"
        ));
    }
    Ok(certs)
}

fn certified_key(cert: &Pem, key: &Pem, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let chain = certificates(&cert.read("cert_file")?, "cert_file")?;
    let der = PrivateKeyDer::from_pem_slice(&key.read("key_file")?).map_err(|e| {
        format!(
            "tls_server_config: key_file holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"
        )
    })?;
    CertifiedKey::from_der(chain, der, provider).map_err(|e| {
        format!("tls_server_config: the key and the certificate do not make a pair: {e}")
    })
}

fn stamp(pem: &Pem) -> Stamp {
    match pem {
        Pem::File(path) => file_stamp(path),
        Pem::Inline(_) => None,
    }
}

/// The server's certificate, re-read at a handshake after its files change on disk.
pub(super) struct CertResolver {
    cert: Pem,
    key: Pem,
    provider: Arc<CryptoProvider>,
    current: Mutex<([Stamp; 2], Arc<CertifiedKey>)>,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver").finish_non_exhaustive()
    }
}

impl CertResolver {
    pub(super) fn new(
        cert: Pem,
        key: Pem,
        provider: Arc<CryptoProvider>,
    ) -> Result<CertResolver, String> {
        let stamps = [stamp(&cert), stamp(&key)];
        let loaded = Arc::new(certified_key(&cert, &key, &provider)?);
        Ok(CertResolver {
            cert,
            key,
            provider,
            current: Mutex::new((stamps, loaded)),
        })
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl CertResolver {
    /// The pair to present now: re-read first if either file changed since the last look.
    pub(super) fn current(&self) -> Arc<CertifiedKey> {
        let stamps = [stamp(&self.cert), stamp(&self.key)];
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if stamps != current.0 {
            // Remember the stamps either way: a half-written pair is tried again only when a
            // file changes again, not at every handshake.
            current.0 = stamps;
            match certified_key(&self.cert, &self.key, &self.provider) {
                Ok(key) => {
                    current.1 = Arc::new(key);
                    tracing::info!("re-read the TLS certificate and key after they changed");
                }
                Err(e) => tracing::warn!("keeping the previous TLS certificate: {e}"),
            }
        }
        current.1.clone()
    }
}
