//! The tonic server: services, health, reflection, limits, shutdown.
//!
//! Shutdown order matters to load balancers and clients: on SIGINT/SIGTERM
//! health turns `NOT_SERVING` first, so balancers stop routing new calls,
//! then the server stops accepting and drains in-flight requests for up to
//! the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::api::Ctx;
use crate::api::access::{AuditApi, TokenApi};
use crate::api::environment::EnvironmentApi;
use crate::api::flow::FlowApi;
use crate::api::product::ProductApi;
use crate::api::release::ReleaseApi;
use crate::api::workflow::WorkflowApi;
use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::proto::v1::audit_service_server::AuditServiceServer;
use crate::proto::v1::environment_service_server::EnvironmentServiceServer;
use crate::proto::v1::flow_service_server::FlowServiceServer;
use crate::proto::v1::product_service_server::ProductServiceServer;
use crate::proto::v1::release_service_server::ReleaseServiceServer;
use crate::proto::v1::token_service_server::TokenServiceServer;
use crate::proto::v1::workflow_service_server::WorkflowServiceServer;
use crate::store::Store;

/// Fully qualified names of the services promoflow serves, as health and
/// reflection report them.
pub const SERVICE_NAMES: [&str; 7] = [
    "promoflow.v1.AuditService",
    "promoflow.v1.TokenService",
    "promoflow.v1.EnvironmentService",
    "promoflow.v1.ProductService",
    "promoflow.v1.WorkflowService",
    "promoflow.v1.FlowService",
    "promoflow.v1.ReleaseService",
];

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for name in SERVICE_NAMES {
        reporter.set_service_status(name, status).await;
    }
}

/// A reflection builder that knows every served service and the
/// `google.rpc` error details, so `grpcurl list` shows health and reflection
/// too and `grpcurl` can decode `BadRequest` field violations.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// Binds `config.listen`; returns the listener and the bound address
/// (useful with port 0).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Unavailable(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Internal(format!("listener address: {e}")))?;
    Ok((listener, local))
}

/// Opens the store (applying migrations) and serves on `listener` until
/// `shutdown` completes.
pub async fn run(
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let url = config
        .resolved_database_url()
        .map_err(|e| Error::Unavailable(format!("cannot create the data directory: {e}")))?;
    let store =
        Store::open_remembering(&url, config.db_max_connections, config.remember_for).await?;
    serve(config, store, listener, shutdown).await
}

/// The Git settings of the server's flags.
fn git_config(config: &ServerConfig) -> Result<crate::engine::git::GitConfig> {
    let credentials = match &config.git_credentials {
        Some(path) => crate::engine::git::load_credentials(path)
            .map_err(|e| Error::FailedPrecondition(format!("--git-credentials: {e}")))?,
        None => Vec::new(),
    };
    let (author_name, author_email) = config
        .git_author_parts()
        .map_err(Error::FailedPrecondition)?;
    Ok(crate::engine::git::GitConfig {
        credentials,
        allow_insecure_http: config.allow_insecure_git_http,
        allow_local: config.allow_local_git,
        author_name,
        author_email,
        cache_dir: config
            .git_cache_dir
            .clone()
            .unwrap_or_else(|| config.data_dir.join("git-cache")),
        timeout: config.git_timeout,
    })
}

/// The authenticator of the server's flags; on a store without tokens it
/// makes the first admin token. Starts the audit log's pruning.
async fn start_auth(
    config: &ServerConfig,
    store: &Store,
) -> Result<Arc<crate::auth::Authenticator>> {
    use crate::auth::AuthMode;
    match config.auth {
        AuthMode::None => tracing::warn!(
            "AUTHENTICATION IS OFF (--auth none): anyone who can reach this port may change flows, promote to production and approve; never run a shared server like this"
        ),
        AuthMode::Required => {
            if let Some(path) = crate::auth::bootstrap(store, &config.data_dir).await? {
                tracing::info!(
                    file = %path.display(),
                    "no API token existed: created token \"admin\" (role admin) and wrote it to the file (mode 0600)"
                );
            }
        }
    }
    // A retention too long for a date (or 0) keeps everything.
    if let Ok(keep) = chrono::Duration::from_std(config.audit_retention)
        && !keep.is_zero()
    {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                tick.tick().await;
                match store.prune_audit(chrono::Utc::now() - keep).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "pruned audit events past retention"),
                    Err(e) => tracing::warn!(error = %e, "pruning audit events failed"),
                }
            }
        });
    }
    let mapping = Arc::new(match &config.auth_mapping {
        Some(path) => {
            crate::auth::mapping::Mapping::load(path).map_err(Error::FailedPrecondition)?
        }
        None => crate::auth::mapping::Mapping::default(),
    });
    let oidc = match &config.oidc_issuer {
        None => None,
        Some(issuer) => {
            let oidc = crate::auth::oidc::Oidc::new(
                crate::auth::oidc::OidcConfig {
                    issuer: issuer.clone(),
                    audience: config.oidc_audience.clone().unwrap_or_default(),
                    jwks_url: config.oidc_jwks_url.clone(),
                    groups_claim: config.oidc_groups_claim.clone(),
                    refresh: config.oidc_jwks_refresh,
                    min_refresh: config.oidc_jwks_min_refresh,
                },
                mapping.clone(),
            )
            .map_err(Error::FailedPrecondition)?;
            // An unreachable issuer does not stop the server (tokens keep
            // working once it answers); the log says so at once.
            match oidc.prefetch().await {
                Ok(n) => tracing::info!(issuer = %oidc.issuer(), keys = n, "accepting OIDC tokens"),
                Err(e) => {
                    tracing::warn!(issuer = %oidc.issuer(), error = %e, "accepting OIDC tokens, but the signing keys cannot be fetched yet")
                }
            }
            Some(oidc)
        }
    };
    Ok(Arc::new(
        crate::auth::Authenticator::new(
            config.auth,
            store.clone(),
            config.reflection_needs_auth,
            config.auth_failures_per_minute,
        )
        .with_identities(oidc, mapping),
    ))
}

/// Serves on `listener` with an already opened store.
pub async fn serve(
    config: ServerConfig,
    store: Store,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let git = crate::engine::git::Git::new(git_config(&config)?)
        .await
        .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
    let webhook_secret = config.webhook_secret().map_err(Error::FailedPrecondition)?;
    if webhook_secret.is_none() {
        tracing::info!(
            "webhooks are off (no --webhook-secret-file or PROMOFLOW_WEBHOOK_SECRET): /webhooks/* answer 503"
        );
    }
    let auth = start_auth(&config, &store).await?;
    let engine = crate::engine::Engine::new(store.clone(), git, &config, webhook_secret.is_some());
    engine.recover().await?;
    let config = Arc::new(config);
    let ctx = Ctx {
        engine: engine.clone(),
        store: store.clone(),
        config: config.clone(),
    };
    let max = config.max_message_bytes;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    set_health(&health_reporter, ServingStatus::Serving).await;

    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;

    // Every service accepts gzip and zstd requests, answers compressed when
    // the client asks, and bounds message sizes both ways.
    macro_rules! configured {
        ($server:ident, $api:expr) => {
            $server::new($api)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max)
        };
    }

    let grace = config.shutdown_grace;
    let reporter = health_reporter.clone();
    let stopping = engine.clone();
    let (fired_tx, fired_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: health NOT_SERVING, draining requests");
        set_health(&reporter, ServingStatus::NotServing).await;
        // Streams end with UNAVAILABLE (clients resume elsewhere or after
        // the restart) and workers stop; unfinished work resumes at start.
        stopping.shutdown().await;
        let _ = fired_tx.send(());
    };

    let local = listener.local_addr().ok();
    tracing::info!(address = ?local, replica = %engine.replica_id(), "promoflow serving");
    // Every response, health checks included, says which replica answered
    // and how many releases it drives: `grpcurl -v … Health/Check` shows it.
    let replica = http::HeaderValue::from_str(engine.replica_id())
        .unwrap_or_else(|_| http::HeaderValue::from_static("invalid-id"));
    // The gRPC services and the webhook routes share one axum router
    // (tonic's `Routes` is one): gRPC paths are `/<package.Service>/<method>`,
    // webhooks `/webhooks/<forge>`, so they never overlap, and anything else
    // gets tonic's UNIMPLEMENTED.
    let mut grpc = tonic::service::Routes::builder();
    grpc.add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(configured!(
            EnvironmentServiceServer,
            EnvironmentApi::new(ctx.clone())
        ))
        .add_service(configured!(
            ProductServiceServer,
            ProductApi::new(ctx.clone())
        ))
        .add_service(configured!(
            WorkflowServiceServer,
            WorkflowApi::new(ctx.clone())
        ))
        .add_service(configured!(FlowServiceServer, FlowApi::new(ctx.clone())))
        .add_service(configured!(
            ReleaseServiceServer,
            ReleaseApi::new(ctx.clone())
        ))
        .add_service(configured!(TokenServiceServer, TokenApi::new(ctx.clone())))
        .add_service(configured!(AuditServiceServer, AuditApi::new(ctx.clone())));
    let routes = tonic::service::Routes::from(
        grpc.routes()
            .into_axum_router()
            .merge(crate::api::webhooks::router(engine.clone(), webhook_secret)),
    );
    let counted = engine.clone();
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(
            crate::tls::Reloading::start(crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: config.tls_client_ca.clone(),
            })
            .map_err(Error::FailedPrecondition)?,
        ),
        _ => None,
    };
    let router = tonic::transport::Server::builder()
        // Webhooks come over HTTP/1.1 too; gRPC stays HTTP/2 (the
        // connection's preface says which).
        .accept_http1(true)
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            http::HeaderName::from_static("promoflow-replica"),
            move |_: &http::Response<tonic::body::Body>| Some(replica.clone()),
        ))
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            http::HeaderName::from_static("promoflow-leases"),
            move |_: &http::Response<tonic::body::Body>| {
                Some(http::HeaderValue::from(counted.leases_held()))
            },
        ))
        // Authentication runs inside the response-header layers, so even a
        // refused call says which replica refused it.
        .layer(crate::auth::layer::AuthLayer::new(auth))
        .add_routes(routes);
    tracing::info!(
        tls = tls.is_some(),
        mutual = config.tls_client_ca.is_some(),
        "transport"
    );
    // TCP_NODELAY on every accepted connection. A listener we bind ourselves
    // (for port 0) does not get tonic's default; without it Nagle's
    // algorithm holds the last segment of a response that spans several
    // writes until the peer's delayed ACK, 40 ms later (see BENCHMARKS.md).
    let server: Pin<
        Box<dyn Future<Output = std::result::Result<(), tonic::transport::Error>> + Send>,
    > = match tls {
        Some(tls) => Box::pin(
            router.serve_with_incoming_shutdown(crate::tls::incoming(listener, tls), signal),
        ),
        None => Box::pin(router.serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            signal,
        )),
    };
    tokio::pin!(server);

    // Draining is bounded: once shutdown starts, calls still running after
    // the grace period are cut off.
    tokio::select! {
        result = &mut server => {
            result.map_err(|e| Error::Unavailable(format!("server error: {e}")))?;
        }
        _ = async {
            let _ = fired_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(?grace, "grace period over: closing remaining calls");
        }
    }
    let (groups, writes) = store.write_groups();
    store.close().await;
    tracing::info!(
        write_groups = groups,
        grouped_writes = writes,
        "promoflow stopped"
    );
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
