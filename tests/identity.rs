//! The other ways in: OIDC JWTs verified against a JWKS the test serves
//! (with a key rotation), and TLS / mutual TLS with certificates the test
//! makes (rcgen), a certificate reload without a restart, a plaintext client
//! told to use TLS, and the CLI over mTLS.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::*;
use promoflow::cli::client::{ClientTls, channel};
use promoflow::proto::v1 as pb;
use ring::signature::KeyPair as _;
use tonic::Code;

const MAPPING: &str = "rules:\n  - groups: [release-managers]\n    role: viewer\n  - principals: [oidc:admin-bot]\n    role: admin\n";

/// An ES256 signing key and its JWK.
struct Key {
    kid: String,
    pkcs8: Vec<u8>,
    jwk: serde_json::Value,
}

impl Key {
    fn new(kid: &str) -> Self {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING as ALG, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ALG, &rng).expect("key");
        let pair = EcdsaKeyPair::from_pkcs8(&ALG, pkcs8.as_ref(), &rng).expect("key");
        // An uncompressed point: 0x04, x, y.
        let point = pair.public_key().as_ref();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        Self {
            kid: kid.into(),
            pkcs8: pkcs8.as_ref().to_vec(),
            jwk: serde_json::json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": b64(&point[1..33]), "y": b64(&point[33..65]),
            }),
        }
    }

    fn sign(&self, claims: serde_json::Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let key = jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8);
        jsonwebtoken::encode(&header, &claims, &key).expect("sign")
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// An issuer: its discovery document and the JWKS the test sets.
async fn issuer(jwks: Arc<Mutex<serde_json::Value>>) -> String {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let discovery = serde_json::json!({ "issuer": url, "jwks_uri": format!("{url}/jwks") });
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/jwks",
            get(move || async move { axum::Json(jwks.lock().expect("jwks").clone()) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn list_flows(c: Conn) -> Result<(), tonic::Status> {
    pb::flow_service_client::FlowServiceClient::new(c)
        .list_flows(pb::ListFlowsRequest::default())
        .await
        .map(|_| ())
}

fn mapping_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("mapping.yaml");
    std::fs::write(&path, MAPPING).expect("mapping");
    path
}

#[tokio::test]
async fn oidc_tokens_are_verified_mapped_and_follow_a_key_rotation() {
    let old = Key::new("k1");
    let jwks = Arc::new(Mutex::new(serde_json::json!({ "keys": [old.jwk] })));
    let iss = issuer(jwks.clone()).await;
    let dir = tempfile::tempdir().expect("dir");
    let mapping = mapping_file(dir.path());
    let server = TestServer::start_with(|c| {
        c.oidc_issuer = Some(iss.clone());
        c.oidc_audience = Some("promoflow".into());
        c.auth_mapping = Some(mapping);
        c.oidc_jwks_min_refresh = Duration::ZERO;
    })
    .await;
    let claims = |sub: &str, aud: &str, exp: u64| {
        serde_json::json!({
            "iss": iss, "aud": aud, "sub": sub, "exp": exp, "iat": now(),
            "groups": ["release-managers"],
        })
    };
    let as_jwt = |jwt: &str| conn(server.raw.clone(), Credentials::bearer(jwt).expect("jwt"));

    // A group mapped to viewer reads, and is refused a write by name.
    let alice = as_jwt(&old.sign(claims("alice", "promoflow", now() + 300)));
    list_flows(alice.clone()).await.expect("a viewer reads");
    let e = create_env(
        &alice,
        environment("qa", pb::EnvironmentKind::NonProduction),
    )
    .await
    .expect_err("a viewer cannot write");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message()
            .contains("oidc:alice lacks permission environments.write"),
        "{e:?}"
    );
    // A subject mapped to admin writes, and the audit log names it.
    let bot = as_jwt(&old.sign(claims("admin-bot", "promoflow", now() + 300)));
    create_env(&bot, environment("qa", pb::EnvironmentKind::NonProduction))
        .await
        .expect("an admin writes");
    let events = server
        .audit()
        .list_audit_events(pb::ListAuditEventsRequest {
            actor: "oidc:admin-bot".into(),
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner()
        .events;
    assert!(
        events
            .iter()
            .any(|e| e.action == "environment.create" && e.actor_kind == "oidc"),
        "{events:?}"
    );

    // Wrong audience, expired, unsigned by the issuer, symmetric: refused.
    let refused = |jwt: String, why: &'static str| {
        let c = as_jwt(&jwt);
        async move {
            let e = list_flows(c).await.expect_err(why);
            assert_eq!(e.code(), Code::Unauthenticated, "{why}: {e:?}");
            assert!(e.message().contains(why), "{why}: {e:?}");
        }
    };
    refused(
        old.sign(claims("alice", "someone-else", now() + 300)),
        "another audience",
    )
    .await;
    refused(
        old.sign(claims("alice", "promoflow", now() - 3600)),
        "expired",
    )
    .await;
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims("alice", "promoflow", now() + 300),
        &jsonwebtoken::EncodingKey::from_secret(b"guessable"),
    )
    .expect("hs256");
    refused(hs, "are not accepted").await;

    // The issuer rotates: the new key works at once, the old one no more.
    let new = Key::new("k2");
    *jwks.lock().expect("jwks") = serde_json::json!({ "keys": [new.jwk] });
    list_flows(as_jwt(&new.sign(claims("alice", "promoflow", now() + 300))))
        .await
        .expect("the rotated key is fetched");
    refused(
        old.sign(claims("alice", "promoflow", now() + 300)),
        "a key the issuer does not publish",
    )
    .await;
}

/// A CA and certificates it signs.
struct Pki {
    ca: rcgen::Certificate,
    ca_params: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let ca = p.self_signed(&ca_key).expect("ca");
        Self {
            ca,
            ca_params: p,
            ca_key,
        }
    }

    /// A server certificate for 127.0.0.1, or a client one for `cn`/`ou`:
    /// (certificate PEM, key PEM).
    fn issue(&self, cn: &str, ou: Option<&str>, server: bool) -> (String, String) {
        let names = if server {
            vec!["127.0.0.1".to_string()]
        } else {
            vec![]
        };
        let mut p = rcgen::CertificateParams::new(names).expect("params");
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        if let Some(ou) = ou {
            p.distinguished_name
                .push(rcgen::DnType::OrganizationalUnitName, ou);
        }
        p.extended_key_usages = vec![if server {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = rcgen::KeyPair::generate().expect("key");
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = p.signed_by(&key, &issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    write_stamped(dir, name, text, None)
}

/// Writes `name`, its modification time set to `mtime` when given, before
/// it is renamed into place: the server never reads half a file, nor sees
/// a changed time.
fn write_stamped(
    dir: &std::path::Path,
    name: &str,
    text: &str,
    mtime: Option<std::time::SystemTime>,
) -> std::path::PathBuf {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write");
    if let Some(t) = mtime {
        std::fs::File::options()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.set_modified(t))
            .expect("set mtime");
    }
    std::fs::rename(&tmp, &path).expect("rename");
    path
}

/// Waits until a new connection with `tls` (trusting the CA of a reloaded
/// server certificate) gets an answer; fails with `why` after `within`.
async fn served_within(https: &str, tls: &ClientTls, within: Duration, why: &str) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let fresh = conn(channel(https, tls).expect("channel"), Credentials::none());
        if list_flows(fresh).await.is_ok() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{why}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn mtime(path: &std::path::Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

#[tokio::test]
async fn tls_and_mutual_tls_identify_callers_and_reload_certificates() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let first = Pki::new("first CA");
    let (cert, key) = first.issue("promoflow", None, true);
    let cert_file = write(d, "server.crt", &cert);
    let key_file = write(d, "server.key", &key);
    let ca_file = write(d, "ca.crt", &first.ca.pem());
    let (client_cert, client_key) = first.issue("deployer", Some("release-managers"), false);
    let client_cert = write(d, "client.crt", &client_cert);
    let client_key = write(d, "client.key", &client_key);
    let mapping = mapping_file(d);
    let mtls = |ca: &std::path::Path| ClientTls {
        ca_cert: Some(ca.to_path_buf()),
        cert: Some(client_cert.clone()),
        key: Some(client_key.clone()),
    };
    let url = |addr: std::net::SocketAddr| format!("https://{addr}");
    let server = TestServer::start_reached(
        TestDb::new().await,
        |c| {
            c.tls_cert = Some(cert_file.clone());
            c.tls_key = Some(key_file.clone());
            c.tls_client_ca = Some(ca_file.clone());
            c.auth_mapping = Some(mapping.clone());
        },
        |addr| channel(&url(addr), &mtls(&ca_file)).expect("channel"),
    )
    .await;
    let https = url(server.addr);

    // The certificate is the principal: its OU maps to viewer.
    let by_cert = conn(server.raw.clone(), Credentials::none());
    list_flows(by_cert.clone())
        .await
        .expect("cert:deployer reads");
    let e = create_env(
        &by_cert,
        environment("qa", pb::EnvironmentKind::NonProduction),
    )
    .await
    .expect_err("a viewer cannot write");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("cert:deployer lacks"), "{e:?}");
    // A token over the same connection is the more specific credential.
    create_env(
        &server,
        environment("qa", pb::EnvironmentKind::NonProduction),
    )
    .await
    .expect("the admin token writes over mTLS");

    // No client certificate: the handshake is refused.
    let anonymous = ClientTls {
        ca_cert: Some(ca_file.clone()),
        ..Default::default()
    };
    let no_cert = conn(
        channel(&https, &anonymous).expect("channel"),
        Credentials::none(),
    );
    let refused = tokio::time::timeout(Duration::from_secs(10), list_flows(no_cert))
        .await
        .expect("a client without a certificate gets an answer");
    assert!(refused.is_err(), "mTLS needs a certificate");

    // A plaintext client is told to use TLS instead of hanging.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
            .expect("uri")
            .connect_lazy(),
    );
    let plain = health.check(tonic_health::pb::HealthCheckRequest::default());
    let plain = tokio::time::timeout(Duration::from_secs(10), plain)
        .await
        .expect("a plaintext client gets an answer")
        .expect_err("plaintext is refused");
    assert_eq!(plain.code(), Code::FailedPrecondition, "{plain:?}");
    let plain = plain.message().to_string();
    assert!(plain.contains("requires TLS"), "{plain}");

    // The CLI over mTLS.
    // tokio's Command: the server runs on this test's thread.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_promoflow"))
        .args(["env", "list", "--server", &https, "--ca-cert"])
        .arg(&ca_file)
        .arg("--cert")
        .arg(&client_cert)
        .arg("--key")
        .arg(&client_key)
        .env("PROMOFLOW_TOKEN", &server.db.token)
        .output()
        .await
        .expect("cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("qa"));

    // New server certificate from another CA: new connections get it
    // within seconds, without a restart; the open connection goes on.
    let second = Pki::new("second CA");
    let (cert, key) = second.issue("promoflow", None, true);
    let second_ca = write(d, "second-ca.crt", &second.ca.pem());
    write(d, "server.key", &key);
    write(d, "server.crt", &cert);
    served_within(
        &https,
        &mtls(&second_ca),
        Duration::from_secs(15),
        "the new certificate was not served",
    )
    .await;
    list_flows(by_cert)
        .await
        .expect("the open connection still works");
    let stale = conn(
        channel(&https, &mtls(&ca_file)).expect("channel"),
        Credentials::none(),
    );
    assert!(
        list_flows(stale).await.is_err(),
        "new connections no longer get the old certificate"
    );

    // SIGHUP reloads at once, even when the files' times did not change
    // (so the poll cannot be what reloaded them).
    let third = Pki::new("third CA");
    let (cert, key) = third.issue("promoflow", None, true);
    let third_ca = write(d, "third-ca.crt", &third.ca.pem());
    let (cert_time, key_time) = (mtime(&cert_file), mtime(&key_file));
    write_stamped(d, "server.key", &key, Some(key_time));
    write_stamped(d, "server.crt", &cert, Some(cert_time));
    assert_eq!(mtime(&cert_file), cert_time);
    let hup = tokio::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .await
        .expect("kill");
    assert!(hup.success());
    served_within(
        &https,
        &mtls(&third_ca),
        Duration::from_secs(10),
        "SIGHUP did not reload the certificate",
    )
    .await;
}
