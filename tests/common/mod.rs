//! Shared integration-test harness: a real promoflow server on
//! `127.0.0.1:0`, backed by a fresh database.
//!
//! The backend follows `PROMOFLOW_TEST_DATABASE_URL`: unset, each test gets
//! a temporary SQLite file; set to a PostgreSQL admin URL, each test gets a
//! database of its own, created here and dropped afterwards. `scripts/test`
//! runs the whole suite both ways.
//!
//! [`Api`] gives the service clients of anything that reaches a server (an
//! in-process [`TestServer`], a child process of the real binary from
//! [`serve`], a bare channel), so the typed helpers of [`world`] and
//! [`watch`] work against all of them.

#![allow(dead_code)]

pub mod argocd;
pub mod forge;
pub mod git_server;
pub mod git_watch;
pub mod hook;
pub mod serve;
pub mod watch;
pub mod world;

pub use world::*;

use std::net::SocketAddr;

use promoflow::config::ServerConfig;
use sea_orm::{ConnectionTrait, Database};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub use promoflow::cli::client::{Conn, Credentials, conn};

use promoflow::proto::v1::audit_service_client::AuditServiceClient;
use promoflow::proto::v1::environment_service_client::EnvironmentServiceClient;
use promoflow::proto::v1::flow_service_client::FlowServiceClient;
use promoflow::proto::v1::product_service_client::ProductServiceClient;
use promoflow::proto::v1::release_service_client::ReleaseServiceClient;
use promoflow::proto::v1::token_service_client::TokenServiceClient;
use promoflow::proto::v1::workflow_service_client::WorkflowServiceClient;

/// How long a starting server may take to answer health `SERVING`.
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A database for one test; PostgreSQL databases are dropped on drop.
pub struct TestDb {
    pub url: String,
    /// An admin API token of this database (`pf_…`), made before any
    /// server starts on it: every client of the harness sends it.
    pub token: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn new() -> Self {
        match std::env::var("PROMOFLOW_TEST_DATABASE_URL") {
            Ok(admin) if !admin.is_empty() => {
                let name = format!("promoflow_test_{}", uuid::Uuid::new_v4().simple());
                let conn = Database::connect(admin.as_str())
                    .await
                    .expect("connect to the PostgreSQL admin URL");
                conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_string())
                    .expect("admin URL has a database path");
                let url = format!("{base}/{name}");
                Self {
                    token: admin_token(&url).await,
                    url,
                    _dir: None,
                    pg: Some((admin, name)),
                }
            }
            _ => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                Self {
                    token: admin_token(&url).await,
                    url,
                    _dir: Some(dir),
                    pg: None,
                }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// The same database for a second server (another replica): dropping
    /// it removes nothing, so drop it before `self`.
    pub fn shared(&self) -> Self {
        Self {
            url: self.url.clone(),
            token: self.token.clone(),
            _dir: None,
            pg: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            // Drop runs inside the test's runtime: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    if let Ok(conn) = Database::connect(admin.as_str()).await {
                        let _ = conn
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                        conn.close().await.ok();
                    }
                });
            })
            .join();
        }
    }
}

/// Migrates the database at `url` and makes an admin token in it.
async fn admin_token(url: &str) -> String {
    use promoflow::domain::access::{Grant, Role};
    promoflow::auth::create_token_at(
        url,
        "test-admin",
        &Grant::global(Role::Admin),
        "system:test",
        None,
    )
    .await
    .expect("create the test admin token")
}

/// A connection to `addr` whose calls carry `token`.
pub fn connect(addr: &str, token: &str) -> Conn {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    conn(channel, Credentials::bearer(token).expect("token"))
}

/// A running server; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Calls carry the database's admin token.
    pub channel: Conn,
    /// No credentials: for health, and for tests of authentication.
    pub raw: Channel,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<promoflow::error::Result<()>>>,
    // Declared last: dropped after the server task is gone.
    pub db: TestDb,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `tweak` adjusts its configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let db = TestDb::new().await;
        Self::start_on(db, tweak).await
    }

    /// Starts a server on an existing database (e.g. after a restart).
    pub async fn start_on(db: TestDb, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_reached(db, tweak, |addr| {
            Channel::from_shared(format!("http://{addr}"))
                .expect("uri")
                .connect_lazy()
        })
        .await
    }

    /// [`TestServer::start_on`], reached through the channel `reach`
    /// makes for its address (a TLS server needs one that speaks TLS).
    pub async fn start_reached(
        db: TestDb,
        tweak: impl FnOnce(&mut ServerConfig),
        reach: impl FnOnce(SocketAddr) -> Channel,
    ) -> Self {
        let mut config = ServerConfig::for_tests(db.url.clone());
        tweak(&mut config);
        let (listener, addr) = promoflow::server::bind(config.listen).await.expect("bind");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(promoflow::server::run(config, listener, async move {
            let _ = rx.await;
        }));
        let raw = reach(addr);
        let server = Self {
            addr,
            channel: conn(raw.clone(), Credentials::bearer(&db.token).expect("token")),
            raw,
            stop: Some(tx),
            handle: Some(handle),
            db,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        if let Err(e) = promoflow::cli::wait_ready(&self.raw, READY_TIMEOUT).await {
            panic!("server on {}: {e}", self.addr);
        }
    }

    /// Stops the server gracefully and returns its database.
    pub async fn stop(mut self) -> TestDb {
        self.shutdown().await;

        std::mem::replace(
            &mut self.db,
            TestDb {
                url: String::new(),
                token: String::new(),
                _dir: None,
                pg: None,
            },
        )
    }

    async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let r = h.await.expect("server task");
            r.expect("server stopped cleanly");
        }
    }

    // The clients, without `Api` in scope (see [`Api`]).
    pub fn environments(&self) -> EnvironmentServiceClient<Conn> {
        Api::environments(self)
    }
    pub fn products(&self) -> ProductServiceClient<Conn> {
        Api::products(self)
    }
    pub fn workflows(&self) -> WorkflowServiceClient<Conn> {
        Api::workflows(self)
    }
    pub fn flows(&self) -> FlowServiceClient<Conn> {
        Api::flows(self)
    }
    pub fn releases(&self) -> ReleaseServiceClient<Conn> {
        Api::releases(self)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// The service clients of a server, from its channel.
pub trait Api {
    fn channel(&self) -> Conn;

    fn environments(&self) -> EnvironmentServiceClient<Conn> {
        EnvironmentServiceClient::new(self.channel())
    }
    fn products(&self) -> ProductServiceClient<Conn> {
        ProductServiceClient::new(self.channel())
    }
    fn workflows(&self) -> WorkflowServiceClient<Conn> {
        WorkflowServiceClient::new(self.channel())
    }
    fn flows(&self) -> FlowServiceClient<Conn> {
        FlowServiceClient::new(self.channel())
    }
    fn releases(&self) -> ReleaseServiceClient<Conn> {
        ReleaseServiceClient::new(self.channel())
    }
    fn tokens(&self) -> TokenServiceClient<Conn> {
        TokenServiceClient::new(self.channel())
    }
    fn audit(&self) -> AuditServiceClient<Conn> {
        AuditServiceClient::new(self.channel())
    }
}

impl Api for TestServer {
    fn channel(&self) -> Conn {
        self.channel.clone()
    }
}

impl Api for Conn {
    fn channel(&self) -> Conn {
        self.clone()
    }
}

/// The field paths of a status's `BadRequest` violations.
pub fn violation_fields(status: &tonic::Status) -> Vec<String> {
    violations(status).into_iter().map(|(f, _)| f).collect()
}

/// The (field, description) pairs of a status's `BadRequest` violations.
pub fn violations(status: &tonic::Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|v| (v.field, v.description))
                .collect()
        })
        .unwrap_or_default()
}

/// The field paths of `status`'s violations, sorted: the contract fixes the
/// set of violations, not their order.
pub fn sorted_fields(status: &tonic::Status) -> Vec<String> {
    let mut fields = violation_fields(status);
    fields.sort();
    fields
}

/// Asserts `result` failed with `code`, returning the status.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
) -> tonic::Status {
    match result {
        Ok(v) => panic!("expected {code:?}, got success: {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "unexpected status: {s:?}");
            s
        }
    }
}

/// Asserts `result` is `INVALID_ARGUMENT` with exactly the violations `fields`.
#[track_caller]
pub fn expect_invalid<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    fields: &[&str],
) -> tonic::Status {
    let status = expect_code(result, tonic::Code::InvalidArgument);
    let mut want = strs(fields);
    want.sort();
    assert_eq!(sorted_fields(&status), want, "violations of {status:?}");
    status
}

/// Owned copies of `xs`.
pub fn strs(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

/// `ms` milliseconds as a protobuf duration.
pub fn dur(ms: u64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

/// A protobuf timestamp as (seconds, nanos), ordered like time.
pub fn ts(t: &Option<prost_types::Timestamp>) -> (i64, i32) {
    let t = t.as_ref().expect("timestamp is set");
    (t.seconds, t.nanos)
}
