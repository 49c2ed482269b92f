//! Waiting for Argo CD: a COMMIT promotion into a real Git repository (the
//! `git http-backend` bridge of `common::git_server`) whose target
//! application is deployed by an Argo CD stand-in (`common::argocd`) that
//! follows the repository's branch. The environment succeeds only once the
//! application is Synced at the promoted commit (or a later one containing
//! it) and Healthy; Degraded, a ComparisonError, a stale reconcile running
//! into `--sync-timeout`, a terminate while waiting and a refused token end
//! it.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::argocd::{ArgoCd, End, Follow, document};
use common::git_server::GitServer;
use common::watch::full_log;
use common::*;
use promoflow::proto::v1 as pb;
use promoflow::proto::v1::release_event::Change;

const GIT_TOKEN: &str = "git-t0ken-for-argocd-tests";
const ARGO_TOKEN: &str = "argo-t0ken-for-tests-7f3a";
const APP: &str = "shop-prod";

fn values(tag: &str) -> String {
    format!("# values\nimage:\n  tag: \"{tag}\" # promoted\n")
}

/// dev (trigger, at 1.2.0) → prod (COMMIT, at 1.0.0) in repository `apps`;
/// prod's application is deployed by the Argo CD application `shop-prod`.
struct World {
    git: GitServer,
    argo: ArgoCd,
    server: TestServer,
    timeout: Duration,
    dir: tempfile::TempDir,
}

/// The world, promoflow holding `argo_token` for the stand-in and waiting
/// at most `timeout` per SYNC step.
async fn world(argo_token: &str, timeout: Duration) -> World {
    let git = GitServer::start("promoflow", GIT_TOKEN).await;
    let argo = ArgoCd::start(ARGO_TOKEN).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    let git_token = write("git-token", GIT_TOKEN);
    let argo_token = write("argo-token", argo_token);
    write(
        "credentials.yaml",
        &format!(
            "- url_prefix: {}\n  username: promoflow\n  token_file: {}\n\
             - url_prefix: {}\n  username: argocd\n  token_file: {}\n",
            git.base,
            git_token.display(),
            argo.base,
            argo_token.display()
        ),
    );
    let server = start_on(TestDb::new().await, dir.path(), timeout).await;
    let url = git.create_repo(
        "apps",
        &[
            ("apps/dev/values.yaml", &values("1.2.0")),
            ("apps/prod/values.yaml", &values("1.0.0")),
        ],
    );
    create_envs(
        &server,
        &["dev", "prod"],
        pb::EnvironmentKind::NonProduction,
    )
    .await;
    let git_app = |env: &str| pb::Application {
        source: Some(pb::GitSource {
            repo_url: url.clone(),
            branch: "main".into(),
            path: format!("apps/{env}"),
        }),
        ..app(env, &format!("shop-{env}"), "")
    };
    create_product(
        &server,
        pb::Product {
            name: "shop".into(),
            applications: vec![
                git_app("dev"),
                pb::Application {
                    argocd: Some(pb::ArgoCdApp {
                        // Stored without the trailing '/'.
                        server: format!("{}/", argo.base),
                        name: APP.into(),
                    }),
                    ..git_app("prod")
                },
            ],
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
        },
    )
    .await
    .expect("create product");
    let prod = pb::FlowStep {
        policy: Some(pb::Policy {
            action: pb::PromotionAction::Commit as i32,
            ..Default::default()
        }),
        ..step("prod", &["dev"])
    };
    create_flow(&server, flow("to-prod", "dev", vec![prod]))
        .await
        .expect("create flow");
    World {
        git,
        argo,
        server,
        timeout,
        dir,
    }
}

/// A server on `db` with the credentials and Git cache in `dir`.
async fn start_on(db: TestDb, dir: &std::path::Path, timeout: Duration) -> TestServer {
    TestServer::start_on(db, |c| {
        c.git_credentials = Some(dir.join("credentials.yaml"));
        c.allow_insecure_git_http = true;
        c.git_cache_dir = Some(dir.join("cache"));
        c.sync_poll_interval = Duration::from_millis(100);
        c.sync_hold = Duration::ZERO;
        c.sync_timeout = timeout;
    })
    .await
}

impl World {
    /// The stand-in follows `main` from its current tip.
    fn follow(&self, out_of_sync_polls: usize, end: End) {
        self.argo.follow(
            APP,
            Follow {
                repo: self.git.path("apps"),
                branch: "main".into(),
                out_of_sync_polls,
                end,
            },
        );
    }

    async fn trigger(&self) -> pb::Release {
        trigger_flow(&self.server, "to-prod", "shop", "").await
    }
}

fn prod_step(r: &pb::Release, kind: pb::StepKind) -> pb::StepRun {
    step_of(env(r, "prod"), kind).clone()
}

/// Waits until prod's SYNC step runs with a message containing `text`.
async fn until_sync_says(w: &World, id: &str, text: &str) -> pb::Release {
    wait_until(&w.server, id, text, |r| {
        let s = step_of(env(r, "prod"), pb::StepKind::Sync);
        s.status == pb::StepStatus::Running as i32 && s.message.contains(text)
    })
    .await
}

#[tokio::test]
async fn the_environment_succeeds_once_synced_at_the_promoted_commit_and_healthy() {
    let w = world(ARGO_TOKEN, Duration::from_secs(20)).await;
    w.follow(3, End::Healthy);
    let r = w.trigger().await;
    let kinds: Vec<i32> = env(&r, "prod").steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [pb::StepKind::Action as i32, pb::StepKind::Sync as i32],
        "SYNC follows the action"
    );
    // While it waits, GetRelease shows what it waits for.
    until_sync_says(&w, &r.id, "waiting for Argo CD: OutOfSync").await;
    let done = wait_final(&w.server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    let commit = prod_step(&done, pb::StepKind::Action).commit_sha;
    assert_eq!(commit, w.git.tip("apps", "main"), "the promotion commit");
    let sync = prod_step(&done, pb::StepKind::Sync);
    assert_eq!(sync.status, pb::StepStatus::Succeeded as i32);
    assert_eq!(
        sync.message,
        format!("Synced and Healthy at {}", &commit[..12])
    );
    // The progress went through the events, each text once.
    let progress: Vec<String> = full_log(&w.server, &r.id)
        .await
        .iter()
        .filter_map(|e| match &e.change {
            Some(Change::Step(c)) => c.step.as_ref().filter(|s| {
                s.kind == pb::StepKind::Sync as i32 && s.status == pb::StepStatus::Running as i32
            }),
            _ => None,
        })
        .map(|s| s.message.clone())
        .collect();
    assert_eq!(
        progress,
        [
            "",
            "waiting for Argo CD: OutOfSync",
            "waiting for Argo CD: Progressing"
        ]
    );
    let requests = w.argo.requests();
    assert_eq!(
        requests[0],
        format!("/api/v1/applications/{APP}?refresh=normal"),
        "the first read asks for a refresh"
    );
    assert!(
        requests[1..]
            .iter()
            .all(|q| q == &format!("/api/v1/applications/{APP}?")),
        "{requests:?}"
    );
    assert_eq!(requests.len(), 5, "3 OutOfSync, Progressing, Healthy");
}

#[tokio::test]
async fn a_later_commit_containing_the_promotion_counts_as_deployed() {
    let w = world(ARGO_TOKEN, Duration::from_secs(20)).await;
    w.follow(1000, End::Healthy);
    let r = w.trigger().await;
    until_sync_says(&w, &r.id, "OutOfSync").await;
    // Someone else pushes on top; Argo CD then syncs to that commit.
    let later = w
        .git
        .commit_directly("apps", "main", "README.md", "# apps\n");
    w.argo
        .fixed(APP, document(APP, "Synced", &later, "Healthy", "Succeeded"));
    let done = wait_final(&w.server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    assert_ne!(prod_step(&done, pb::StepKind::Action).commit_sha, later);
    assert_eq!(
        prod_step(&done, pb::StepKind::Sync).message,
        format!("Synced and Healthy at {}", &later[..12])
    );
}

#[tokio::test]
async fn degraded_after_the_sync_fails_the_environment_with_argo_cds_word() {
    let w = world(ARGO_TOKEN, Duration::from_secs(20)).await;
    w.follow(1, End::Degraded);
    let r = w.trigger().await;
    let done = wait_final(&w.server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Failed, "{done:?}");
    let prod = env(&done, "prod");
    assert_eq!(prod.status, pb::EnvironmentStatus::Failed as i32);
    assert_eq!(
        prod.message,
        "sync failed: Argo CD reports the application Degraded"
    );
    // The action succeeded and recorded the version all the same.
    assert_eq!(
        prod_step(&done, pb::StepKind::Action).status,
        pb::StepStatus::Succeeded as i32
    );
}

#[tokio::test]
async fn a_comparison_error_fails_at_once() {
    let w = world(ARGO_TOKEN, Duration::from_secs(20)).await;
    let mut doc = document(APP, "Unknown", "", "Healthy", "Succeeded");
    doc["status"]["conditions"] = serde_json::json!([{
        "type": "ComparisonError",
        "message": "rpc error: repository not accessible"
    }]);
    w.argo.fixed(APP, doc);
    let r = w.trigger().await;
    let done = wait_final(&w.server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Failed, "{done:?}");
    assert_eq!(
        env(&done, "prod").message,
        "sync failed: Argo CD reports ComparisonError: rpc error: repository not accessible"
    );
    assert_eq!(w.argo.requests().len(), 1, "no second read");
}

#[tokio::test]
async fn a_stale_reconcile_keeps_waiting_until_the_sync_timeout() {
    let w = world(ARGO_TOKEN, Duration::from_millis(1500)).await;
    // Synced and Healthy, but at the commit before the promotion.
    let before = w.git.tip("apps", "main");
    w.argo.fixed(
        APP,
        document(APP, "Synced", &before, "Healthy", "Succeeded"),
    );
    let r = w.trigger().await;
    let waiting = until_sync_says(&w, &r.id, "not yet at").await;
    let commit = prod_step(&waiting, pb::StepKind::Action).commit_sha;
    assert_eq!(
        prod_step(&waiting, pb::StepKind::Sync).message,
        format!(
            "waiting for Argo CD: Synced at {}, not yet at {}",
            &before[..12],
            &commit[..12]
        )
    );
    let done = wait_final(&w.server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Failed, "{done:?}");
    let message = &env(&done, "prod").message;
    assert!(
        message.starts_with(&format!(
            "sync failed: Argo CD did not report {APP} Synced and Healthy at {} within 1s 500ms",
            &commit[..12]
        )),
        "{message}"
    );
    assert!(w.argo.requests().len() >= 5, "it kept polling");
}

#[tokio::test]
async fn terminate_while_waiting_ends_the_wait() {
    let w = world(ARGO_TOKEN, Duration::from_secs(20)).await;
    w.follow(1_000_000, End::Healthy);
    let r = w.trigger().await;
    until_sync_says(&w, &r.id, "OutOfSync").await;
    terminate(&w.server, &r.id, "enough")
        .await
        .expect("terminate");
    let done = wait_final(&w.server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Terminated, "{done:?}");
    assert_eq!(
        prod_step(&done, pb::StepKind::Sync).status,
        pb::StepStatus::Terminated as i32
    );
    // The polling stopped with the step.
    let polled = w.argo.requests().len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(w.argo.requests().len(), polled);
}

#[tokio::test]
async fn a_refused_token_fails_without_showing_it() {
    let wrong = "wr0ng-argo-t0ken-4411";
    let w = world(wrong, Duration::from_secs(20)).await;
    w.follow(0, End::Healthy);
    let r = w.trigger().await;
    let done = wait_final(&w.server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Failed, "{done:?}");
    let message = &env(&done, "prod").message;
    assert!(message.contains("authentication failed"), "{message}");
    let everything = format!("{done:?} {:?}", full_log(&w.server, &r.id).await);
    assert!(!everything.contains(wrong) && !everything.contains(ARGO_TOKEN));
}

#[tokio::test]
async fn the_argocd_application_is_checked_stored_and_exported() {
    let w = world(ARGO_TOKEN, Duration::from_secs(20)).await;
    let p = get_product(&w.server, "shop").await.expect("get");
    let argocd = p.applications[1].argocd.clone().expect("stored");
    assert_eq!(
        (argocd.server.as_str(), argocd.name.as_str()),
        (w.argo.base.as_str(), APP)
    );
    assert_eq!(p.applications[0].argocd, None);
    // Export → import gives the same product back.
    let yaml = w
        .server
        .products()
        .export_product(pb::ExportProductRequest {
            name: "shop".into(),
        })
        .await
        .expect("export")
        .into_inner()
        .yaml;
    assert!(yaml.contains(&format!("name: {APP}")), "{yaml}");
    let imported = w
        .server
        .products()
        .import_product(pb::ImportProductRequest {
            yaml,
            replace: true,
        })
        .await
        .expect("import")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(imported.applications, p.applications);
    // A user's mistakes are field violations.
    let mut bad = p.clone();
    bad.applications[1].argocd = Some(pb::ArgoCdApp {
        server: "https://admin:pw@argocd.example.com".into(),
        name: "Shop_Prod".into(),
    });
    expect_invalid(
        update_product(&w.server, bad, p.version).await,
        &[
            "product.applications[1].argocd.server",
            "product.applications[1].argocd.name",
        ],
    );
}

#[tokio::test]
async fn a_restarted_server_resumes_the_wait() {
    let mut w = world(ARGO_TOKEN, Duration::from_secs(20)).await;
    w.follow(1_000_000, End::Healthy);
    let r = w.trigger().await;
    until_sync_says(&w, &r.id, "OutOfSync").await;
    let db = w.server.stop().await;
    let polled = w.argo.requests().len();
    // Deployed while the server was down.
    let commit = w.git.tip("apps", "main");
    w.argo.fixed(
        APP,
        document(APP, "Synced", &commit, "Healthy", "Succeeded"),
    );
    w.server = start_on(db, w.dir.path(), w.timeout).await;
    let done = wait_final(&w.server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    let sync = prod_step(&done, pb::StepKind::Sync);
    assert_eq!(sync.attempt, 1, "the same step, resumed");
    assert_eq!(
        sync.message,
        format!("Synced and Healthy at {}", &commit[..12])
    );
    assert_eq!(
        w.argo.requests()[polled],
        format!("/api/v1/applications/{APP}?refresh=normal"),
        "the resumed wait starts with a refresh"
    );
}
