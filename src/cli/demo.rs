//! `promoflow demo`: a server with the quick-start world, and a parallel
//! promotion shown live.

use std::time::Duration;

use clap::Args;
use tonic::transport::Channel;

use super::client::{Conn, Credentials, conn};

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
    // A fresh store (unless a URL is given) and the applications' Git
    // repository: in a temporary directory removed at the end, or in an
    // explicit `--data-dir` that is kept (a demo world to serve again).
    // At `--data-dir`'s default, the demo works in a temporary directory.
    let kept = args.server.data_dir != std::path::Path::new(crate::config::DEFAULT_DATA_DIR);
    let dir = if kept {
        let dir = args.server.data_dir.clone();
        if dir.join("promoflow.db").exists() || dir.join("apps.git").exists() {
            return Err(format!(
                "{} already holds a demo world: serve it again with `promoflow serve --data-dir {0} --allow-local-git`, or give the demo an empty directory",
                dir.display()
            )
            .into());
        }
        dir
    } else {
        std::env::temp_dir().join(format!("promoflow-demo-{}", std::process::id()))
    };
    std::fs::create_dir_all(&dir)?;
    let _tmp = (!kept).then(|| TempDir(dir.clone()));
    if args.server.database_url.is_none() {
        // Its first admin token goes next to its database, not into a
        // `promoflow-data` a real server may own.
        args.server.data_dir = dir.clone();
        args.server.database_url = Some(format!(
            "sqlite://{}?mode=rwc",
            dir.join("promoflow.db").display()
        ));
    }
    let repo = create_repo(&dir).await?;
    args.server.allow_local_git = true;
    args.server.git_cache_dir = Some(dir.join("git-cache"));
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
    let raw = Channel::from_shared(endpoint.clone())?.connect_lazy();
    super::wait_ready(&raw, Duration::from_secs(30)).await?;
    // The demo authenticates like any client: with the admin token the
    // server wrote on its first start (a store given by URL may already
    // have tokens: then PROMOFLOW_TOKEN must hold one).
    let token_file = args.server.data_dir.join(crate::auth::TOKEN_FILE);
    let token = match std::env::var("PROMOFLOW_TOKEN") {
        Ok(t) if !t.is_empty() => t,
        _ => std::fs::read_to_string(&token_file).map_err(|e| {
            format!(
                "reading the admin token {}: {e} (set PROMOFLOW_TOKEN)",
                token_file.display()
            )
        })?,
    };
    let channel = conn(raw, Credentials::bearer(&token)?);
    println!("promoflow demo: server on {endpoint}\n");
    seed(&channel, &repo).await?;
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
    println!("\nthe applications' repository {}:", repo.display());
    print!(
        "{}",
        git(&repo, &["log", "--format=  %h %s", "main"]).await?
    );
    if args.exit {
        let _ = stop_tx.send(());
        server.await??;
        return Ok(if ok { 0 } else { 1 });
    }
    if kept {
        println!(
            "\nthe demo world stays in {} (database, admin token, repository)",
            dir.display()
        );
    }
    print_next_steps(addr, &release.id, &token_file);
    server.await??;
    Ok(0)
}

/// The environments of the demo's world.
const ENVS: [&str; 6] = ["dev", "qa", "staging", "prod", "prod-eu", "prod-asia"];

/// Runs git in `dir`; its standard output.
async fn git(dir: &std::path::Path, args: &[&str]) -> Res<String> {
    let out = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .await
        .map_err(|e| format!("running git (install the `git` package): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One environment's values file, as people keep it: comments and keys of
/// its own around the image tag that promotions move.
fn values_file(env: &str, tag: &str) -> String {
    format!(
        "# {env}: values of {PRODUCT}\n\
         image:\n  repository: registry.example.com/{PRODUCT}\n  tag: \"{tag}\"  # promoted by promoflow\n\
         replicas: {}  # sized by hand\n",
        if env.starts_with("prod") { 3 } else { 1 }
    )
}

/// A bare repository `apps.git` in `dir` whose `main` holds
/// `apps/<env>/values.yaml` for every environment (dev at 1.1.0, the rest
/// at 1.0.0); returns its path.
async fn create_repo(dir: &std::path::Path) -> Res<std::path::PathBuf> {
    let bare = dir.join("apps.git");
    let seed = dir.join("seed");
    for env in ENVS {
        let d = seed.join("apps").join(env);
        std::fs::create_dir_all(&d)?;
        let tag = if env == "dev" { "1.1.0" } else { "1.0.0" };
        std::fs::write(d.join("values.yaml"), values_file(env, tag))?;
    }
    let bare_s = bare.display().to_string();
    git(dir, &["init", "--quiet", "--bare", "-b", "main", &bare_s]).await?;
    git(&seed, &["init", "--quiet", "-b", "main"]).await?;
    git(&seed, &["add", "."]).await?;
    git(
        &seed,
        &[
            "-c",
            "user.name=demo",
            "-c",
            "user.email=demo@localhost",
            "commit",
            "--quiet",
            "-m",
            "the applications' values",
        ],
    )
    .await?;
    git(&seed, &["push", "--quiet", &bare_s, "main"]).await?;
    Ok(bare)
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

/// Commits into `env`'s Git source, then runs `workflow` (none if empty).
fn commit_then(env: &str, workflow: &str) -> pb::FlowEdit {
    pb::FlowEdit {
        edit: Some(Edit::SetPolicy(SetPolicy {
            environment: env.into(),
            policy: Some(pb::Policy {
                action: pb::PromotionAction::Commit as i32,
                post_action: workflow.into(),
                ..Default::default()
            }),
        })),
    }
}

/// The quick-start world, created the way a user would click it.
async fn seed(channel: &Conn, repo: &std::path::Path) -> Res<()> {
    let mut envs = EnvironmentServiceClient::new(channel.clone());
    let names = ENVS;
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
                        source: Some(pb::GitSource {
                            repo_url: repo.display().to_string(),
                            branch: "main".into(),
                            path: format!("apps/{e}"),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                promotion_template: Some(pb::PromotionTemplate {
                    version_source: Some(pb::VersionSource {
                        file: "values.yaml".into(),
                        json_path: "$.image.tag".into(),
                    }),
                    promotion: vec![pb::PromotedFile {
                        file: "values.yaml".into(),
                        json_paths: vec!["$.image.tag".into()],
                    }],
                }),
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
                commit_then("qa", ""),
                commit_then("prod", "soak-1s"),
                commit_then("prod-eu", "soak-2s"),
                commit_then("prod-asia", "soak-3s"),
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

fn print_next_steps(addr: std::net::SocketAddr, id: &str, token_file: &std::path::Path) {
    let token_file = token_file.display();
    println!(
        r#"
The server keeps running (Ctrl-C to stop). Every call but health and
reflection needs a token; the server made an admin token at {token_file}.
Try next, in another terminal:

  export PROMOFLOW_TOKEN="$(cat {token_file})" PROMOFLOW_SERVER=http://{addr}
  promoflow release list
  promoflow release get {id}
  promoflow flow render {PARALLEL} --format mermaid
  promoflow release trigger --flow {DEPENDENCY} --product {PRODUCT} --wait
  id=$(promoflow release trigger --flow {PARALLEL} --product {PRODUCT} -o id)
  promoflow release terminate "$id" --reason stop
  promoflow release retry "$id" --wait

  grpcurl -plaintext {addr} list
  pgrpcurl() {{ grpcurl -plaintext -expand-headers -H 'authorization: Bearer ${{PROMOFLOW_TOKEN}}' "$@"; }}
  pgrpcurl -d '{{"name":"{DEPENDENCY}"}}' {addr} promoflow.v1.FlowService/ExportFlow
  pgrpcurl -d "{{\"releaseId\":\"$id\"}}" {addr} promoflow.v1.ReleaseService/WatchRelease
"#
    );
}
