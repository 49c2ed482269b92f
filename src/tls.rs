//! TLS for the gRPC port: `--tls-cert`/`--tls-key`, and mutual TLS with
//! `--tls-client-ca`.
//!
//! The handshake is done here rather than by tonic's `ServerTlsConfig`,
//! which is fixed when the server starts: each connection takes the
//! current rustls configuration, and a new one is built when the files
//! change (checked every few seconds) or on SIGHUP. Connections already
//! open keep the certificate they were made with; nothing is dropped. A
//! configuration that does not load (a half-written file, a key that does
//! not fit) is logged and the previous one stays in use.
//!
//! A client that speaks plaintext HTTP/2 to this port is not left hanging
//! on a handshake that never comes: its calls are answered with
//! FAILED_PRECONDITION saying to use TLS.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// The files of the server's TLS identity.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// How often the files are checked for changes.
const POLL: Duration = Duration::from_secs(2);
/// A connection must finish its handshake within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

impl TlsFiles {
    fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.cert, &self.key].into_iter().chain(&self.client_ca)
    }

    fn stamps(&self) -> Vec<Option<SystemTime>> {
        self.paths()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// The rustls configuration of these files; the error names the file.
    pub fn load(&self) -> Result<Arc<ServerConfig>, String> {
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("--tls-cert {}: {e}", self.cert.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "--tls-cert {}: no certificate in the file",
                self.cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("--tls-key {}: {e}", self.key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let shown = || format!("--tls-client-ca {}", ca.display());
                let mut roots = rustls::RootCertStore::empty();
                for c in
                    CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", shown()))?
                {
                    let c = c.map_err(|e| format!("{}: {e}", shown()))?;
                    roots.add(c).map_err(|e| format!("{}: {e}", shown()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| format!("{}: {e}", shown()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
        // gRPC is HTTP/2; webhooks may come over HTTP/1.1.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The configuration new connections get, replaced when the files change.
pub struct Reloading {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl Reloading {
    /// Loads the files (an error stops the start) and watches them.
    pub fn start(files: TlsFiles) -> Result<Arc<Self>, String> {
        let current = RwLock::new(files.load()?);
        let me = Arc::new(Self { files, current });
        let watcher = me.clone();
        tokio::spawn(async move { watcher.watch().await });
        Ok(me)
    }

    fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn reload(&self, why: &str) {
        match self.files.load() {
            Ok(c) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = c;
                tracing::info!(reason = why, "TLS certificates reloaded");
            }
            Err(e) => {
                tracing::error!(reason = why, error = %e, "TLS certificates not reloaded; the previous ones stay in use")
            }
        }
    }

    async fn watch(self: Arc<Self>) {
        let mut stamps = self.files.stamps();
        let mut tick = tokio::time::interval(POLL);
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<()>();
            tokio::select! {
                _ = tick.tick() => {
                    let now = self.files.stamps();
                    if now != stamps {
                        stamps = now;
                        self.reload("files changed");
                    }
                }
                _ = hangup => {
                    stamps = self.files.stamps();
                    self.reload("SIGHUP");
                }
            }
        }
    }
}

/// The TLS connections of `listener`, for tonic's
/// `serve_with_incoming_shutdown`.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<Reloading>,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            // The listener closes with the server (a restart may bind the
            // same port at once).
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = tx.closed() => break,
            };
            let (stream, remote) = match accepted {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let tx = tx.clone();
            let config = tls.config();
            // Handshakes run beside the accept loop: a slow client does
            // not hold up the next one.
            tokio::spawn(async move {
                let handshake = async {
                    let mut first = [0u8; 1];
                    let n = stream.peek(&mut first).await?;
                    if n == 1 && first[0] != TLS_HANDSHAKE {
                        refuse_plaintext(stream).await;
                        return Ok(None);
                    }
                    tokio_rustls::TlsAcceptor::from(config)
                        .accept(stream)
                        .await
                        .map(Some)
                };
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                    Ok(Ok(Some(tls))) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Answers every HTTP/2 request on a plaintext connection with a gRPC
/// error that says what to do.
async fn refuse_plaintext(stream: TcpStream) {
    const MESSAGE: &str = "this promoflow server requires TLS: connect with https:// (and --ca-cert when its certificate is not from a public CA)";
    let message =
        percent_encoding::utf8_percent_encode(MESSAGE, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let service = hyper::service::service_fn(move |_req: http::Request<hyper::body::Incoming>| {
        let message = message.clone();
        async move {
            http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .header(
                    "grpc-status",
                    (tonic::Code::FailedPrecondition as i32).to_string(),
                )
                .header("grpc-message", message)
                .body(String::new())
        }
    });
    let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
}
