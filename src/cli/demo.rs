//! `promoflow demo`: a server with the quick-start world, and a parallel
//! promotion shown live.

use std::time::Duration;

use clap::Args;
use tonic::transport::Channel;

use crate::config::ServerConfig;
use crate::proto::v1 as pb;
use crate::proto::v1::environment_service_client::EnvironmentServiceClient;
use crate::proto::v1::flow_edit::{AddEnvironments, Edit, SetPolicy};
use crate::proto::v1::flow_service_client::FlowServiceClient;
use crate::proto::v1::product_service_client::ProductServiceClient;
use crate::proto::v1::release_service_client::ReleaseServiceClient;
use crate::proto::v1::workflow_service_client::WorkflowServiceClient;

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub server: ServerConfig,
    /// Stop after the release instead of serving on (exit code 0 when it succeeded).
    #[arg(long)]
    pub exit: bool,
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const PRODUCT: &str = "demo-trioapp";
const SEQUENTIAL: &str = "multi-env-sequential-promotion";
const PARALLEL: &str = "multi-env-parallel-promotion";
const DEPENDENCY: &str = "multi-env-dependency-promotion";

/// Runs the demo; returns the process exit code.
pub async fn run(mut args: DemoArgs) -> Res<i32> {
    // A fresh store in a temporary directory unless a URL is given.
    let _tmp;
    if args.server.database_url.is_none() {
        let dir = std::env::temp_dir().join(format!("promoflow-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        args.server.database_url = Some(format!(
            "sqlite://{}?mode=rwc",
            dir.join("promoflow.db").display()
        ));
        _tmp = TempDir(dir);
    }
    let (listener, addr) = crate::server::bind(args.server.listen).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::run(
        args.server.clone(),
        listener,
        async move {
            tokio::select! {
                _ = crate::server::shutdown_signal() => {}
                _ = stop_rx => {}
            }
        },
    ));
    let endpoint = format!("http://{addr}");
    let channel = Channel::from_shared(endpoint.clone())?.connect_lazy();
    super::wait_ready(&channel, Duration::from_secs(30)).await?;
    println!("promoflow demo: server on {endpoint}\n");
    seed(&channel).await?;
    let mut releases = ReleaseServiceClient::new(channel.clone());
    let release = releases
        .trigger_release(pb::TriggerReleaseRequest {
            flow: PARALLEL.into(),
            product: PRODUCT.into(),
            initiator: "demo".into(),
            message: "the quick start's parallel promotion".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .release
        .ok_or("no release in the response")?;
    println!(
        "triggered release {} of {PRODUCT} {} through {PARALLEL}\n",
        release.id, release.version
    );
    let status = super::watch::watch(channel.clone(), &release.id).await?;
    let ok = status == pb::ReleaseStatus::Succeeded;
    if args.exit {
        let _ = stop_tx.send(());
        server.await??;
        return Ok(if ok { 0 } else { 1 });
    }
    print_next_steps(addr, &release.id);
    server.await??;
    Ok(0)
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn wait_workflow(name: &str, millis: u64) -> pb::Workflow {
    pb::Workflow {
        name: name.into(),
        description: format!("soak time of {} s", millis as f64 / 1000.0),
        kind: Some(pb::workflow::Kind::Wait(pb::WaitWorkflow {
            duration: Some(prost_types::Duration {
                seconds: (millis / 1000) as i64,
                nanos: ((millis % 1000) * 1_000_000) as i32,
            }),
        })),
        ..Default::default()
    }
}

fn add_after(after: &str, envs: &[&str]) -> pb::FlowEdit {
    pb::FlowEdit {
        edit: Some(Edit::AddEnvironments(AddEnvironments {
            after: after.into(),
            environments: envs.iter().map(|e| e.to_string()).collect(),
            policy: None,
        })),
    }
}

fn post_action(env: &str, workflow: &str) -> pb::FlowEdit {
    pb::FlowEdit {
        edit: Some(Edit::SetPolicy(SetPolicy {
            environment: env.into(),
            policy: Some(pb::Policy {
                action: pb::PromotionAction::None as i32,
                post_action: workflow.into(),
                ..Default::default()
            }),
        })),
    }
}

/// The quick-start world, created the way a user would click it.
async fn seed(channel: &Channel) -> Res<()> {
    let mut envs = EnvironmentServiceClient::new(channel.clone());
    let names = ["dev", "qa", "staging", "prod", "prod-eu", "prod-asia"];
    for name in names {
        let kind = if name.starts_with("prod") {
            pb::EnvironmentKind::Production
        } else {
            pb::EnvironmentKind::NonProduction
        };
        envs.create_environment(pb::CreateEnvironmentRequest {
            environment: Some(pb::Environment {
                name: name.into(),
                kind: kind as i32,
                description: format!("{name} environment"),
                ..Default::default()
            }),
        })
        .await?;
    }
    let mut workflows = WorkflowServiceClient::new(channel.clone());
    for (name, ms) in [("soak-1s", 1000), ("soak-2s", 2000), ("soak-3s", 3000)] {
        workflows
            .create_workflow(pb::CreateWorkflowRequest {
                workflow: Some(wait_workflow(name, ms)),
            })
            .await?;
    }
    let mut products = ProductServiceClient::new(channel.clone());
    products
        .create_product(pb::CreateProductRequest {
            product: Some(pb::Product {
                name: PRODUCT.into(),
                description: "the quick start's three-tier application".into(),
                applications: names
                    .iter()
                    .map(|e| pb::Application {
                        environment: e.to_string(),
                        name: format!("{PRODUCT}-{e}"),
                        version: "1.0.0".into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
        })
        .await?;
    // CI deployed a new version to dev.
    products
        .report_deployment(pb::ReportDeploymentRequest {
            product: PRODUCT.into(),
            environment: "dev".into(),
            version: "1.1.0".into(),
            commit: Some(pb::Commit {
                sha: "4f2c1e9".into(),
                message: "feat: faster checkout".into(),
                author: "ci".into(),
                revision: "main".into(),
            }),
            ..Default::default()
        })
        .await?;
    let mut flows = FlowServiceClient::new(channel.clone());
    let create = |name: &str| pb::CreateFlowRequest {
        flow: Some(pb::Flow {
            name: name.into(),
            description: "created by the demo".into(),
            trigger_environment: "dev".into(),
            steps: vec![pb::FlowStep {
                environment: "qa".into(),
                depends_on: vec!["dev".into()],
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    // Sequential: dev → qa → prod.
    flows.create_flow(create(SEQUENTIAL)).await?;
    flows
        .edit_flow(pb::EditFlowRequest {
            name: SEQUENTIAL.into(),
            expected_version: 1,
            edits: vec![add_after("qa", &["prod"])],
        })
        .await?;
    // Parallel: a copy of the sequential flow plus prod-eu and prod-asia
    // beside prod, each with its own soak time.
    flows
        .copy_flow(pb::CopyFlowRequest {
            source: SEQUENTIAL.into(),
            version: 0,
            new_name: PARALLEL.into(),
        })
        .await?;
    flows
        .edit_flow(pb::EditFlowRequest {
            name: PARALLEL.into(),
            expected_version: 1,
            edits: vec![
                add_after("qa", &["prod-eu", "prod-asia"]),
                post_action("prod", "soak-1s"),
                post_action("prod-eu", "soak-2s"),
                post_action("prod-asia", "soak-3s"),
            ],
        })
        .await?;
    // Dependencies: staging beside qa, prod waiting for both.
    flows.create_flow(create(DEPENDENCY)).await?;
    flows
        .edit_flow(pb::EditFlowRequest {
            name: DEPENDENCY.into(),
            expected_version: 1,
            edits: vec![
                add_after("dev", &["staging"]),
                add_after("qa", &["prod"]),
                pb::FlowEdit {
                    edit: Some(Edit::SetDependencies(pb::flow_edit::SetDependencies {
                        environment: "prod".into(),
                        depends_on: vec!["qa".into(), "staging".into()],
                    })),
                },
            ],
        })
        .await?;
    println!(
        "seeded: 6 environments, product {PRODUCT}, 3 wait workflows, flows {SEQUENTIAL}, {PARALLEL}, {DEPENDENCY}"
    );
    Ok(())
}

fn print_next_steps(addr: std::net::SocketAddr, id: &str) {
    println!(
        r#"
The server keeps running (Ctrl-C to stop). Try next:

  grpcurl -plaintext {addr} list
  grpcurl -plaintext -d '{{"flow":"{PARALLEL}","product":"{PRODUCT}"}}' {addr} promoflow.v1.ReleaseService/TriggerRelease
  grpcurl -plaintext -d '{{"release_id":"{id}"}}' {addr} promoflow.v1.ReleaseService/WatchRelease
  grpcurl -plaintext -d '{{"name":"{PARALLEL}","format":"RENDER_FORMAT_MERMAID"}}' {addr} promoflow.v1.FlowService/RenderFlow
  grpcurl -plaintext -d '{{"name":"{DEPENDENCY}"}}' {addr} promoflow.v1.FlowService/ExportFlow
  grpcurl -plaintext -d '{{"release_id":"<id>","reason":"stop"}}' {addr} promoflow.v1.ReleaseService/TerminateRelease
"#
    );
}
