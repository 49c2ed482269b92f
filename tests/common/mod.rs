//! Shared integration-test harness: a real promoflow server on
//! `127.0.0.1:0`, backed by a fresh database.
//!
//! The backend follows `PROMOFLOW_TEST_DATABASE_URL`: unset, each test gets
//! a temporary SQLite file; set to a PostgreSQL admin URL, each test gets a
//! database of its own, created here and dropped afterwards. `scripts/test`
//! runs the whole suite both ways.

#![allow(dead_code)]

pub mod hook;
pub mod replica;

use std::net::SocketAddr;

use promoflow::config::ServerConfig;
use sea_orm::{ConnectionTrait, Database};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use promoflow::proto::v1::environment_service_client::EnvironmentServiceClient;
use promoflow::proto::v1::flow_service_client::FlowServiceClient;
use promoflow::proto::v1::product_service_client::ProductServiceClient;
use promoflow::proto::v1::release_service_client::ReleaseServiceClient;
use promoflow::proto::v1::workflow_service_client::WorkflowServiceClient;

/// A database for one test; PostgreSQL databases are dropped on drop.
pub struct TestDb {
    pub url: String,
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
                Self {
                    url: format!("{base}/{name}"),
                    _dir: None,
                    pg: Some((admin, name)),
                }
            }
            _ => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                Self {
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

/// A running server; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub channel: Channel,
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
        let mut config = ServerConfig::for_tests(db.url.clone());
        tweak(&mut config);
        let (listener, addr) = promoflow::server::bind(config.listen).await.expect("bind");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(promoflow::server::run(config, listener, async move {
            let _ = rx.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect_lazy();
        let server = Self {
            addr,
            channel,
            stop: Some(tx),
            handle: Some(handle),
            db,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        if let Err(e) =
            promoflow::cli::wait_ready(&self.channel, std::time::Duration::from_secs(30)).await
        {
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

    pub fn environments(&self) -> EnvironmentServiceClient<Channel> {
        EnvironmentServiceClient::new(self.channel.clone())
    }
    pub fn products(&self) -> ProductServiceClient<Channel> {
        ProductServiceClient::new(self.channel.clone())
    }
    pub fn workflows(&self) -> WorkflowServiceClient<Channel> {
        WorkflowServiceClient::new(self.channel.clone())
    }
    pub fn flows(&self) -> FlowServiceClient<Channel> {
        FlowServiceClient::new(self.channel.clone())
    }
    pub fn releases(&self) -> ReleaseServiceClient<Channel> {
        ReleaseServiceClient::new(self.channel.clone())
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

/// The field paths of a status's `BadRequest` violations.
pub fn violation_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
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

/// Seeds the quick-start world: environments dev, qa, prod, prod-eu,
/// prod-asia (prod ones PRODUCTION), product `demo-trioapp` with an
/// application in each (version 1.0.0 in dev), and the parallel flow
/// `parallel` built by edits: dev → qa → {prod, prod-eu, prod-asia}.
/// `post_action` (a workflow name) is set on every production step.
pub async fn seed_parallel(server: &TestServer, post_action: Option<&str>) {
    use promoflow::proto::v1 as pb;
    let envs = ["dev", "qa", "prod", "prod-eu", "prod-asia"];
    for name in envs {
        let kind = if name.starts_with("prod") {
            pb::EnvironmentKind::Production
        } else {
            pb::EnvironmentKind::NonProduction
        };
        server
            .environments()
            .create_environment(pb::CreateEnvironmentRequest {
                environment: Some(pb::Environment {
                    name: name.into(),
                    kind: kind as i32,
                    ..Default::default()
                }),
            })
            .await
            .expect("create environment");
    }
    server
        .products()
        .create_product(pb::CreateProductRequest {
            product: Some(pb::Product {
                name: "demo-trioapp".into(),
                applications: envs
                    .iter()
                    .map(|e| pb::Application {
                        environment: e.to_string(),
                        name: format!("demo-trioapp-{e}"),
                        version: if *e == "dev" {
                            "1.0.0".into()
                        } else {
                            String::new()
                        },
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
        })
        .await
        .expect("create product");
    let mut flows = server.flows();
    flows
        .create_flow(pb::CreateFlowRequest {
            flow: Some(pb::Flow {
                name: "parallel".into(),
                trigger_environment: "dev".into(),
                steps: vec![pb::FlowStep {
                    environment: "qa".into(),
                    depends_on: vec!["dev".into()],
                    ..Default::default()
                }],
                ..Default::default()
            }),
        })
        .await
        .expect("create flow");
    let policy = pb::Policy {
        post_action: post_action.unwrap_or_default().to_string(),
        action: pb::PromotionAction::None as i32,
        ..Default::default()
    };
    flows
        .edit_flow(pb::EditFlowRequest {
            name: "parallel".into(),
            expected_version: 1,
            edits: vec![pb::FlowEdit {
                edit: Some(pb::flow_edit::Edit::AddEnvironments(
                    pb::flow_edit::AddEnvironments {
                        after: "qa".into(),
                        environments: vec!["prod".into(), "prod-eu".into(), "prod-asia".into()],
                        policy: Some(policy),
                    },
                )),
            }],
        })
        .await
        .expect("edit flow");
}

/// Creates a non-production environment for each of `names`, 16 requests
/// at a time (for flows of hundreds or thousands of steps).
pub async fn create_environments(server: &TestServer, names: impl IntoIterator<Item = String>) {
    use futures::StreamExt;
    use promoflow::proto::v1 as pb;
    futures::stream::iter(names)
        .map(|name| {
            let mut client = server.environments();
            async move {
                client
                    .create_environment(pb::CreateEnvironmentRequest {
                        environment: Some(pb::Environment {
                            name: name.clone(),
                            kind: pb::EnvironmentKind::NonProduction as i32,
                            ..Default::default()
                        }),
                    })
                    .await
                    .unwrap_or_else(|e| panic!("create environment {name}: {e}"));
            }
        })
        .buffer_unordered(16)
        .for_each(|()| async {})
        .await;
}

/// Creates a `wait` workflow of `ms` milliseconds.
pub async fn create_wait(server: &TestServer, name: &str, ms: u64) {
    use promoflow::proto::v1 as pb;
    server
        .workflows()
        .create_workflow(pb::CreateWorkflowRequest {
            workflow: Some(pb::Workflow {
                name: name.into(),
                kind: Some(pb::workflow::Kind::Wait(pb::WaitWorkflow {
                    duration: Some(prost_types::Duration {
                        seconds: (ms / 1000) as i64,
                        nanos: ((ms % 1000) * 1_000_000) as i32,
                    }),
                })),
                ..Default::default()
            }),
        })
        .await
        .expect("create wait workflow");
}

/// Polls `GetRelease` until the release is final (or panics after 30 s).
pub async fn wait_final(server: &TestServer, id: &str) -> promoflow::proto::v1::Release {
    use promoflow::proto::v1 as pb;
    for _ in 0..600 {
        let r = server
            .releases()
            .get_release(pb::GetReleaseRequest {
                release_id: id.into(),
            })
            .await
            .expect("get release")
            .into_inner()
            .release
            .expect("release");
        let s = pb::ReleaseStatus::try_from(r.status).unwrap_or_default();
        if matches!(
            s,
            pb::ReleaseStatus::Succeeded
                | pb::ReleaseStatus::Failed
                | pb::ReleaseStatus::Terminated
        ) {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("release {id} did not finish in 30 s");
}
