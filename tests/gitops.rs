//! COMMIT promotions against a real Git smart-HTTP server (`git http-backend`
//! behind `common::git_server`, with Basic auth): the promoted values land in
//! each target application's files as one commit per environment, comments
//! intact, parallel environments on one branch lose nothing, a second run
//! changes nothing, and credential problems fail clearly without leaking.

mod common;

use common::git_server::GitServer;
use common::*;
use promoflow::proto::v1 as pb;
use tonic::Code;

const TOKEN: &str = "s3cret-token-for-tests";

/// The values file of one environment: the image tag (what promotions
/// move), comments, and keys of its own that must stay as they are.
fn values(env: &str, tag: &str) -> String {
    format!(
        "# {env} values: edited by people and by promoflow\n\
         image:\n  repository: registry.example.com/shop # the shop image\n  tag: \"{tag}\"  # promoted\n\
         replicas: {}\n\
         ingress: {{host: {env}.shop.example.com, tls: true}}\n",
        if env.starts_with("prod") { 3 } else { 1 }
    )
}

const ENVS: [&str; 5] = ["dev", "qa", "prod", "prod-eu", "prod-asia"];

/// A Git server with one repository `apps` holding `apps/<env>/values.yaml`
/// (dev at 1.2.0, the others at 1.0.0), a promoflow server that may use it,
/// and the world: environments, product `shop` with a Git-backed application
/// per environment and a template promoting `$.image.tag`, and flow
/// `parallel` (dev → qa → {prod, prod-eu, prod-asia}) committing everywhere.
struct World {
    git: GitServer,
    server: TestServer,
    url: String,
    _dir: tempfile::TempDir,
}

async fn world(token: &str) -> World {
    let git = GitServer::start("promoflow", TOKEN).await;
    let files: Vec<(String, String)> = ENVS
        .iter()
        .map(|e| {
            let tag = if *e == "dev" { "1.2.0" } else { "1.0.0" };
            (format!("apps/{e}/values.yaml"), values(e, tag))
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let url = git.create_repo("apps", &refs);
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).expect("write token");
    let creds = dir.path().join("credentials.yaml");
    std::fs::write(
        &creds,
        format!(
            "- url_prefix: {}\n  username: promoflow\n  token_file: {}\n",
            git.base,
            token_file.display()
        ),
    )
    .expect("write credentials");
    let cache = dir.path().join("cache");
    let server = TestServer::start_with(|c| {
        c.git_credentials = Some(creds);
        c.allow_insecure_git_http = true;
        c.git_cache_dir = Some(cache);
    })
    .await;
    create_envs(&server, &ENVS, pb::EnvironmentKind::NonProduction).await;
    let product = pb::Product {
        name: "shop".into(),
        applications: ENVS
            .iter()
            .map(|e| pb::Application {
                source: Some(pb::GitSource {
                    repo_url: url.clone(),
                    branch: "main".into(),
                    path: format!("apps/{e}"),
                }),
                ..app(e, &format!("shop-{e}"), "")
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
    };
    create_product(&server, product)
        .await
        .expect("create product");
    let commit = |env: &str| pb::FlowStep {
        policy: Some(pb::Policy {
            action: pb::PromotionAction::Commit as i32,
            ..Default::default()
        }),
        ..step(env, &[if env == "qa" { "dev" } else { "qa" }])
    };
    let steps = ["qa", "prod", "prod-eu", "prod-asia"]
        .into_iter()
        .map(commit)
        .collect();
    create_flow(&server, flow("parallel", "dev", steps))
        .await
        .expect("create flow");
    World {
        git,
        server,
        url,
        _dir: dir,
    }
}

/// `TriggerRelease` of `parallel` for `shop`, its result unchecked.
async fn try_trigger(w: &World, version: &str) -> Res<pb::TriggerReleaseResponse> {
    w.server
        .releases()
        .trigger_release(pb::TriggerReleaseRequest {
            flow: "parallel".into(),
            product: "shop".into(),
            version: version.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn a_parallel_release_commits_once_per_environment_and_keeps_the_files() {
    let w = world(TOKEN).await;
    let before = w.git.log("apps", "main");
    let r = trigger_flow(&w.server, "parallel", "shop", "").await;
    assert_eq!(r.version, "1.2.0", "read from dev's values.yaml");
    assert_eq!(r.source_commit, before[0].sha, "the trigger app's tip");
    let done = wait_final(&w.server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");

    let log = w.git.log("apps", "main");
    assert_eq!(
        log.len(),
        before.len() + 4,
        "one commit per target: {log:?}"
    );
    for env in ["qa", "prod", "prod-eu", "prod-asia"] {
        // The file changed in its tag only: comments and other keys stay.
        assert_eq!(
            w.git
                .read("apps", "main", &format!("apps/{env}/values.yaml")),
            values(env, "1.2.0"),
            "{env}"
        );
        let action = step_of(self::env(&done, env), pb::StepKind::Action);
        let commit = log
            .iter()
            .find(|c| c.sha == action.commit_sha)
            .unwrap_or_else(|| panic!("{env}'s commit {} is on main", action.commit_sha));
        assert_eq!(
            commit.subject,
            format!("promote shop 1.2.0 from dev to {env}")
        );
        assert!(
            commit
                .trailers
                .contains(&("Promoflow-Release".to_string(), r.id.clone()))
                && commit
                    .trailers
                    .contains(&("Promoflow-Environment".to_string(), env.to_string())),
            "{env}: {:?}",
            commit.trailers
        );
    }
    // qa first, then the three production environments.
    let qa_at = log
        .iter()
        .position(|c| c.subject.ends_with("to qa"))
        .expect("qa commit");
    assert_eq!(qa_at, 3, "newest first: the three prods after qa: {log:?}");
    let p = get_product(&w.server, "shop").await.expect("product");
    for a in p.applications.iter().filter(|a| a.environment != "dev") {
        assert_eq!(a.version, "1.2.0", "a promotion records the version: {a:?}");
    }

    // The same version again: nothing to change, no commit.
    let again = trigger_flow(&w.server, "parallel", "shop", "").await;
    let again = wait_final(&w.server, &again.id).await;
    assert_eq!(status(&again), pb::ReleaseStatus::Succeeded, "{again:?}");
    assert_eq!(w.git.log("apps", "main").len(), log.len());
    let qa = step_of(env(&again, "qa"), pb::StepKind::Action);
    assert!(qa.message.starts_with("no changes"), "{qa:?}");
    assert!(qa.commit_sha.is_empty());
}

#[tokio::test]
async fn a_version_git_does_not_hold_is_refused() {
    let w = world(TOKEN).await;
    let s = expect_code(try_trigger(&w, "9.9.9").await, Code::FailedPrecondition);
    assert!(
        s.message().contains("9.9.9") && s.message().contains("1.2.0"),
        "{s:?}"
    );
}

#[tokio::test]
async fn wrong_credentials_fail_clearly_and_never_show_the_token() {
    let w = world("not-the-token").await;
    let s = expect_code(try_trigger(&w, "").await, Code::FailedPrecondition);
    assert!(s.message().contains("authentication failed"), "{s:?}");
    assert!(!s.message().contains("not-the-token"), "{s:?}");
    assert!(!s.message().contains(TOKEN), "{s:?}");
}

#[tokio::test]
async fn a_target_without_a_git_source_fails_its_environment() {
    let w = world(TOKEN).await;
    change_product(&w.server, "shop", |p| {
        for a in &mut p.applications {
            if a.environment == "prod-eu" {
                a.source = None;
            }
        }
    })
    .await;
    let r = trigger_flow(&w.server, "parallel", "shop", "").await;
    let done = wait_final(&w.server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Failed, "{done:?}");
    let eu = env(&done, "prod-eu");
    assert!(eu.message.contains("no Git source"), "{eu:?}");
    for other in ["qa", "prod", "prod-asia"] {
        assert_eq!(
            env_status(&done, other),
            pb::EnvironmentStatus::Succeeded,
            "{other}"
        );
    }
    assert!(w.url.starts_with("http://"));
}

/// A product that names a template (`promotion_template_ref`) instead of
/// holding one promotes that template's values: the version is read from
/// its version source and only the tag moves (copying whole files, what a
/// product without a template does, would bring dev's comments and replica
/// count along). Editing the template afterwards changes the next release.
#[tokio::test]
async fn a_named_template_is_resolved_when_a_release_is_triggered() {
    let w = world(TOKEN).await;
    let inline = get_product(&w.server, "shop")
        .await
        .expect("product")
        .promotion_template;
    create_template(
        &w.server,
        pb::NamedPromotionTemplate {
            name: "image-tag".into(),
            template: inline,
            ..Default::default()
        },
    )
    .await
    .expect("create template");
    change_product(&w.server, "shop", |p| {
        p.promotion_template = None;
        p.promotion_template_ref = "image-tag".into();
    })
    .await;

    let r = trigger_flow(&w.server, "parallel", "shop", "").await;
    assert_eq!(r.version, "1.2.0", "read through the named template");
    let done = wait_final(&w.server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    for env in ["qa", "prod", "prod-eu", "prod-asia"] {
        assert_eq!(
            w.git
                .read("apps", "main", &format!("apps/{env}/values.yaml")),
            values(env, "1.2.0"),
            "{env}: only the tag moved"
        );
    }

    // The template now reads the version from a key dev does not have: the
    // next trigger resolves the new template and says so.
    let mut t = get_template(&w.server, "image-tag")
        .await
        .expect("template");
    if let Some(vs) = t.template.as_mut().and_then(|t| t.version_source.as_mut()) {
        vs.json_path = "$.image.missing".into();
    }
    let version = t.version;
    update_template(&w.server, t, version)
        .await
        .expect("update template");
    let refused = expect_code(try_trigger(&w, "").await, Code::FailedPrecondition);
    assert!(refused.message().contains("$.image.missing"), "{refused:?}");
    expect_code(
        delete_template(&w.server, "image-tag", 0).await,
        Code::FailedPrecondition,
    );
}
