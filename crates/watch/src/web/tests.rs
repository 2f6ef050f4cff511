//! The web config's reading (every mistake refused at start, naming the key) and the auth check
//! (right, wrong, unknown, malformed, remembered), with certificates made at test time.

use std::path::Path;

use hyper::{Request, StatusCode, header};
use promlearn_testbed::certs::{Certificates, make_certificates};

use super::{
    tls::{CertResolver, Pem},
    *,
};
use rustls::pki_types::{CertificateDer, pem::PemObject};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-Pa55word";
/// The client address of these tests' requests.
const HERE: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

impl Web {
    async fn refuse_from_here<B>(
        &self,
        request: &Request<B>,
    ) -> Option<hyper::Response<Full<Bytes>>> {
        self.refuse(request, HERE).await
    }
}

fn certificates() -> (tempfile::TempDir, Certificates) {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certificates(dir.path()).unwrap();
    (dir, certs)
}

/// A cheap hash (cost 4): every check in these tests runs bcrypt for real.
fn hash() -> String {
    bcrypt::hash(PASSWORD, 4).unwrap()
}

/// The file at `dir/web.yml` holding `text`, read as the service reads it.
fn load(dir: &Path, text: &str) -> Result<WebConfig> {
    let path = dir.join("web.yml");
    std::fs::write(&path, text).unwrap();
    WebConfig::load(&path)
}

fn tls_yaml(certs: &Certificates) -> String {
    format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
        certs.server_cert.display(),
        certs.server_key.display()
    )
}

#[test]
fn a_node_exporter_web_config_is_read_whole() {
    let (dir, certs) = certificates();
    // Relative names are looked up beside the file, as exporter-toolkit does.
    let text = format!(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
         client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {}\n  min_version: TLS12\n  \
         max_version: TLS13\n  prefer_server_cipher_suites: true\n\
         http_server_config:\n  http2: true\n  headers:\n    X-Frame-Options: deny\n    \
         X-Content-Type-Options: nosniff\n\
         basic_auth_users:\n  {USER}: '{}'\n  bob: '{}'\n",
        certs.ca.display(),
        hash(),
        hash()
    );
    let web = load(dir.path(), &text).unwrap();
    assert!(web.tls());
    assert_eq!(web.users().collect::<Vec<_>>(), ["alice", "bob"]);
    assert_eq!(web.headers.len(), 2);
    // The hashes stay out of Debug output.
    assert!(!format!("{web:?}").contains("$2"), "{web:?}");
}

#[test]
fn an_empty_file_or_an_empty_tls_section_serves_plain_http_without_auth() {
    let dir = tempfile::tempdir().unwrap();
    for text in [
        "",
        "# nothing\n",
        "tls_server_config:\n  cert_file: ''\n",
        "basic_auth_users:\n",
    ] {
        let web = load(dir.path(), text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(!web.tls() && web.users().next().is_none(), "{text:?}");
    }
}

#[test]
fn unknown_keys_are_refused_by_name_at_every_level() {
    let (dir, certs) = certificates();
    for (text, key) in [
        (
            "basic_auth_user:\n  alice: x\n".to_owned(),
            "basic_auth_user",
        ),
        (format!("{}  keyfile: x\n", tls_yaml(&certs)), "keyfile"),
        ("http_server_config:\n  http3: true\n".to_owned(), "http3"),
    ] {
        let err = load(dir.path(), &text).unwrap_err().to_string();
        eprintln!("{err}");
        assert!(err.contains(key), "{text:?}: {err}");
        assert!(err.contains("web.yml"), "the file is named: {err}");
    }
}

#[test]
fn settings_that_cannot_be_honoured_are_refused_not_dropped() {
    let (dir, certs) = certificates();
    for (extra, key) in [
        (
            "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
            "cipher_suites",
        ),
        ("  curve_preferences: [X25519]\n", "curve_preferences"),
        ("  client_allowed_sans: [client]\n", "client_allowed_sans"),
        (
            "  client_auth_type: RequireAnyClientCert\n",
            "RequireAnyClientCert",
        ),
        ("  client_auth_type: Sometimes\n", "Sometimes"),
        ("  max_version: TLS11\n", "max_version"),
        ("  min_version: SSL3\n", "min_version"),
    ] {
        let text = format!("{}{extra}", tls_yaml(&certs));
        let err = load(dir.path(), &text).unwrap_err().to_string();
        assert!(err.contains(key), "{extra:?}: {err}");
    }
    let err = load(dir.path(), "rate_limit:\n  interval: 1s\n  burst: 5\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("rate_limit"), "{err}");
    // TLS 1.3 only is served.
    load(
        dir.path(),
        &format!("{}  min_version: TLS13\n", tls_yaml(&certs)),
    )
    .unwrap();
}

#[test]
fn a_missing_or_mismatched_certificate_is_an_error_at_start() {
    let (dir, certs) = certificates();
    let missing = dir.path().join("no-such.pem");
    let text = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
        missing.display(),
        certs.server_key.display()
    );
    let err = load(dir.path(), &text).unwrap_err().to_string();
    assert!(
        err.contains("cert_file") && err.contains("no-such.pem"),
        "{err}"
    );
    // The CA's key is a good key, but not the server certificate's.
    let text = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
        certs.server_cert.display(),
        certs.ca_key.display()
    );
    let err = load(dir.path(), &text).unwrap_err().to_string();
    assert!(err.contains("do not make a pair"), "{err}");
    // A key where the certificate belongs.
    let text = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
        certs.server_key.display(),
        certs.server_key.display()
    );
    let err = load(dir.path(), &text).unwrap_err().to_string();
    assert!(err.contains("BEGIN CERTIFICATE"), "{err}");
    let text = format!(
        "tls_server_config:\n  cert_file: {}\n",
        certs.server_cert.display()
    );
    let err = load(dir.path(), &text).unwrap_err().to_string();
    assert!(err.contains("key_file"), "{err}");
    // A client CA without a policy that uses it, and the reverse.
    let text = format!(
        "{}  client_ca_file: {}\n",
        tls_yaml(&certs),
        certs.ca.display()
    );
    let err = load(dir.path(), &text).unwrap_err().to_string();
    assert!(err.contains("NoClientCert"), "{err}");
    let text = format!(
        "{}  client_auth_type: RequireAndVerifyClientCert\n",
        tls_yaml(&certs)
    );
    let err = load(dir.path(), &text).unwrap_err().to_string();
    assert!(err.contains("client_ca_file"), "{err}");
}

#[test]
fn a_bad_hash_or_user_name_is_an_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (text, wanted) in [
        (
            format!("basic_auth_users:\n  {USER}: {PASSWORD}\n"),
            "user `alice`",
        ),
        // A truncated hash.
        (
            format!("basic_auth_users:\n  {USER}: '{}'\n", &hash()[..50]),
            "user `alice`",
        ),
        (format!("basic_auth_users:\n  'a:b': '{}'\n", hash()), "':'"),
    ] {
        let err = load(dir.path(), &text).unwrap_err().to_string();
        assert!(err.contains(wanted), "{text:?}: {err}");
    }
    let err = load(dir.path(), "basic_auth_users:\n  alice: [1]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("web.yml"), "{err}");
}

#[test]
fn response_headers_are_checked_as_exporter_toolkit_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    for (text, wanted) in [
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            "X-Frame-Options",
        ),
        (
            "http_server_config:\n  headers:\n    Server: me\n",
            "Server",
        ),
    ] {
        let err = load(dir.path(), text).unwrap_err().to_string();
        assert!(err.contains(wanted), "{text:?}: {err}");
    }
    let web = load(
        dir.path(),
        "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n",
    )
    .unwrap();
    let web = Web::new(Some(&web));
    let mut response = Response::new(());
    web.decorate(&mut response);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
}

fn basic(user: &str, password: &str) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
}

fn request(path: &str, authorization: Option<HeaderValue>) -> Request<()> {
    let mut builder = Request::get(path);
    if let Some(value) = authorization {
        builder = builder.header(header::AUTHORIZATION, value);
    }
    builder.body(()).unwrap()
}

/// A web config with two users, and the directory holding it (the file must outlive the `Web`,
/// which reads it again when it changes).
fn web_with_users() -> (tempfile::TempDir, Web) {
    let dir = tempfile::tempdir().unwrap();
    let config = load(
        dir.path(),
        &format!(
            "basic_auth_users:\n  {USER}: '{}'\n  bob: '{}'\n",
            hash(),
            bcrypt::hash("other", 4).unwrap()
        ),
    )
    .unwrap();
    let web = Web::new(Some(&config));
    (dir, web)
}

#[tokio::test]
async fn wrong_or_missing_credentials_get_401_with_a_basic_challenge() {
    let (_dir, web) = web_with_users();
    for authorization in [
        None,
        Some(basic(USER, "wrong")),
        // Another user's password.
        Some(basic(USER, "other")),
        Some(basic("mallory", PASSWORD)),
        Some(basic("", "")),
        Some(HeaderValue::from_static("Basic !!!not-base64")),
        Some(HeaderValue::from_static("Bearer abc")),
    ] {
        let refused = web
            .refuse_from_here(&request("/metrics", authorization.clone()))
            .await
            .unwrap_or_else(|| panic!("{authorization:?} was let in"));
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(refused.headers()[header::WWW_AUTHENTICATE], "Basic");
    }
    let active = web.active().unwrap();
    let auth = active.auth.as_ref().unwrap();
    assert!(
        auth.successes.lock().unwrap().is_empty(),
        "no failure is remembered as a success"
    );
    for path in ["/metrics", "/", "/-/reload", "/nowhere"] {
        assert!(
            web.refuse_from_here(&request(path, None)).await.is_some(),
            "{path}"
        );
        assert!(
            web.refuse_from_here(&request(path, Some(basic(USER, PASSWORD))))
                .await
                .is_none(),
            "{path}"
        );
    }
    // Liveness needs no credentials (probes rarely carry them; it tells nothing else).
    for path in OPEN_PATHS {
        assert!(
            web.refuse_from_here(&request(path, None)).await.is_none(),
            "{path}"
        );
    }
    // The scheme's name is case-insensitive (RFC 7617).
    let lower = basic(USER, PASSWORD)
        .to_str()
        .unwrap()
        .replace("Basic", "basic");
    assert!(
        web.refuse_from_here(&request(
            "/metrics",
            Some(HeaderValue::from_str(&lower).unwrap())
        ))
        .await
        .is_none()
    );
}

#[tokio::test]
async fn a_successful_check_is_remembered_and_only_for_those_credentials() {
    let (_dir, web) = web_with_users();
    let active = web.active().unwrap();
    let auth = active.auth.as_ref().unwrap();
    assert_eq!(
        auth.check(Some(&basic(USER, PASSWORD)), HERE).await,
        Verdict::Good
    );
    assert_eq!(auth.successes.lock().unwrap().len(), 1);
    assert_eq!(
        auth.check(Some(&basic(USER, PASSWORD)), HERE).await,
        Verdict::Good
    );
    assert_eq!(
        auth.successes.lock().unwrap().len(),
        1,
        "remembered, not checked again"
    );
    // A remembered success does not let in another password, or the same password as
    // another user.
    assert_eq!(
        auth.check(Some(&basic(USER, "s3cret-Pa55wor")), HERE).await,
        Verdict::Wrong
    );
    assert_eq!(
        auth.check(Some(&basic("bob", PASSWORD)), HERE).await,
        Verdict::Wrong
    );
    assert_eq!(
        auth.check(Some(&basic("bob", "other")), HERE).await,
        Verdict::Good
    );
    assert_eq!(auth.successes.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn without_users_every_request_passes() {
    let (dir, certs) = certificates();
    let config = load(dir.path(), &tls_yaml(&certs)).unwrap();
    let web = Web::new(Some(&config));
    assert_eq!(web.scheme(), "https");
    assert!(
        web.refuse_from_here(&request("/metrics", None))
            .await
            .is_none()
    );
    let plain = Web::new(None);
    assert_eq!(plain.scheme(), "http");
    assert!(
        plain
            .refuse_from_here(&request("/metrics", None))
            .await
            .is_none()
    );
}

#[test]
fn a_rotated_certificate_is_read_at_the_next_handshake_and_a_broken_one_ignored() {
    let (dir, certs) = certificates();
    let (cert, key) = (dir.path().join("live.pem"), dir.path().join("live.key"));
    std::fs::copy(&certs.server_cert, &cert).unwrap();
    std::fs::copy(&certs.server_key, &key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver =
        CertResolver::new(Pem::File(cert.clone()), Pem::File(key.clone()), provider).unwrap();
    let first = resolver.current();
    assert!(
        Arc::ptr_eq(&first, &resolver.current()),
        "unchanged files are not re-read"
    );
    // Rotated: the CA's own self-signed pair stands in for a new certificate.
    std::fs::copy(&certs.ca, &cert).unwrap();
    std::fs::copy(&certs.ca_key, &key).unwrap();
    let rotated = resolver.current();
    assert_ne!(rotated.cert, first.cert);
    assert_eq!(
        rotated.cert[0].as_ref(),
        &std::fs::read(&certs.ca)
            .map(|pem| {
                CertificateDer::from_pem_slice(&pem)
                    .unwrap()
                    .as_ref()
                    .to_vec()
            })
            .unwrap()[..]
    );
    // Half a rotation (a certificate without its key) keeps the last good pair.
    std::fs::copy(&certs.server_cert, &cert).unwrap();
    assert!(Arc::ptr_eq(&rotated, &resolver.current()));
}

#[test]
fn the_example_web_config_reads_and_its_documented_password_passes() {
    let (dir, certs) = certificates();
    // The example names watch.crt and watch.key beside it.
    std::fs::copy(&certs.server_cert, dir.path().join("watch.crt")).unwrap();
    std::fs::copy(&certs.server_key, dir.path().join("watch.key")).unwrap();
    let example = promlearn_testbed::repository_root().join("examples/watch/web.yml");
    let text = std::fs::read_to_string(example).unwrap();
    let web = load(dir.path(), &text).unwrap();
    assert!(web.tls());
    assert_eq!(web.users().collect::<Vec<_>>(), ["prometheus"]);
    assert!(bcrypt::verify("change-me", &web.users["prometheus"]).unwrap());
}

#[tokio::test]
async fn a_changed_file_is_read_again_and_a_broken_one_ignored() {
    let (dir, web) = web_with_users();
    let path = dir.path().join("web.yml");
    let ok = |user: &str, password: &str| {
        let request = request("/metrics", Some(basic(user, password)));
        let web = &web;
        async move { web.refuse_from_here(&request).await.is_none() }
    };
    assert!(ok(USER, PASSWORD).await);
    // Alice's password changes and bob goes: the next request sees it, the remembered success
    // included (it was for the old hash).
    std::fs::write(
        &path,
        format!(
            "basic_auth_users:\n  {USER}: '{}'\n",
            bcrypt::hash("new-password", 4).unwrap()
        ),
    )
    .unwrap();
    assert!(!ok(USER, PASSWORD).await);
    assert!(ok(USER, "new-password").await);
    assert!(!ok("bob", "other").await);
    // A broken version, and one that would turn TLS on, leave the last good one in force.
    std::fs::write(&path, "basic_auth_users: [oops\n").unwrap();
    assert!(ok(USER, "new-password").await);
    let (certs_dir, certs) = certificates();
    let with_tls = format!(
        "{}basic_auth_users:\n  bob: '{}'\n",
        tls_yaml(&certs),
        bcrypt::hash("other", 4).unwrap()
    );
    std::fs::write(&path, with_tls).unwrap();
    assert!(ok(USER, "new-password").await);
    assert!(!ok("bob", "other").await);
    drop(certs_dir);
}
