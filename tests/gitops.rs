//! COMMIT promotions against a real Git smart-HTTP server (`git http-backend`
//! behind `common::git_server`, with Basic auth): the promoted values land in
//! each target application's files as one commit per environment, comments
//! intact, parallel environments on one branch lose nothing, a second run
//! changes nothing, and credential problems fail clearly without leaking.
//! Races and crashes too: 20 concurrent releases into one repository, two
//! replicas pushing to one branch, `kill -9` between a push and its success.

mod common;

use std::path::PathBuf;

use common::git_server::GitServer;
use common::serve::Serve;
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

/// A credentials file giving promoflow a token for a Git server, and the
/// directory of promoflow's Git caches.
struct Access {
    creds: PathBuf,
    dir: tempfile::TempDir,
}

/// A Git server accepting `promoflow:TOKEN`, and access to it with `token`.
async fn forge(token: &str) -> (GitServer, Access) {
    let git = GitServer::start("promoflow", TOKEN).await;
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
    (git, Access { creds, dir })
}

impl Access {
    /// An in-process server reading the forge (its Git cache in `cache`).
    async fn server_on(&self, db: TestDb, cache: &str) -> TestServer {
        let cache = self.dir.path().join(cache);
        TestServer::start_on(db, |c| {
            c.git_credentials = Some(self.creds.clone());
            c.allow_insecure_git_http = true;
            c.git_cache_dir = Some(cache);
        })
        .await
    }

    /// `promoflow serve` reading the forge, with its own Git cache
    /// directory `cache` (one per process).
    fn serve(&self, serve: Serve, cache: &str) -> Serve {
        let cache = self.dir.path().join(cache);
        let creds = self.creds.display().to_string();
        serve.args([
            "--git-credentials",
            creds.as_str(),
            "--allow-insecure-git-http",
            "--git-cache-dir",
            &cache.display().to_string(),
        ])
    }
}

/// A promotion template moving `$.image.tag` of `values.yaml`, the version
/// read from the same place.
fn tag_template() -> pb::PromotionTemplate {
    pb::PromotionTemplate {
        version_source: Some(pb::VersionSource {
            file: "values.yaml".into(),
            json_path: "$.image.tag".into(),
        }),
        promotion: vec![pb::PromotedFile {
            file: "values.yaml".into(),
            json_paths: vec!["$.image.tag".into()],
        }],
    }
}

/// Applications of `product`, one per environment, each in directory
/// `dir(env)` of `url`'s `main`.
fn git_apps(
    product: &str,
    envs: &[&str],
    url: &str,
    dir: impl Fn(&str) -> String,
) -> Vec<pb::Application> {
    envs.iter()
        .map(|e| pb::Application {
            source: Some(pb::GitSource {
                repo_url: url.into(),
                branch: "main".into(),
                path: dir(e),
            }),
            ..app(e, &format!("{product}-{e}"), "")
        })
        .collect()
}

/// A step of `env` after `dep` whose action commits.
fn commit_step(env: &str, dep: &str) -> pb::FlowStep {
    pb::FlowStep {
        policy: Some(pb::Policy {
            action: pb::PromotionAction::Commit as i32,
            ..Default::default()
        }),
        ..step(env, &[dep])
    }
}

/// The shop world on a Git server: repository `apps` holding
/// `apps/<env>/values.yaml` (dev at 1.2.0, the others at 1.0.0),
/// environments, product `shop` with a Git-backed application per
/// environment and a template promoting `$.image.tag`, and flow `parallel`
/// (dev → qa → {prod, prod-eu, prod-asia}) committing everywhere.
struct World {
    git: GitServer,
    server: TestServer,
    url: String,
    _access: Access,
}

/// Repository `apps` on the forge and the shop world in `api`.
async fn seed_shop(api: &impl Api, git: &GitServer) -> String {
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
    create_envs(api, &ENVS, pb::EnvironmentKind::NonProduction).await;
    let product = pb::Product {
        name: "shop".into(),
        applications: git_apps("shop", &ENVS, &url, |e| format!("apps/{e}")),
        promotion_template: Some(tag_template()),
        ..Default::default()
    };
    create_product(api, product).await.expect("create product");
    let steps = vec![
        commit_step("qa", "dev"),
        commit_step("prod", "qa"),
        commit_step("prod-eu", "qa"),
        commit_step("prod-asia", "qa"),
    ];
    create_flow(api, flow("parallel", "dev", steps))
        .await
        .expect("create flow");
    url
}

async fn world(token: &str) -> World {
    let (git, access) = forge(token).await;
    let server = access.server_on(TestDb::new().await, "cache").await;
    let url = seed_shop(&server, &git).await;
    World {
        git,
        server,
        url,
        _access: access,
    }
}

/// `TriggerRelease` of `parallel` for `shop` with `version` from
/// `source_commit` (empty: none given), its result unchecked.
async fn try_trigger(
    w: &World,
    version: &str,
    source_commit: &str,
) -> Res<pb::TriggerReleaseResponse> {
    w.server
        .releases()
        .trigger_release(pb::TriggerReleaseRequest {
            flow: "parallel".into(),
            product: "shop".into(),
            version: version.into(),
            source_commit: source_commit.into(),
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
    let s = expect_code(try_trigger(&w, "9.9.9", "").await, Code::FailedPrecondition);
    assert!(
        s.message().contains("9.9.9") && s.message().contains("1.2.0"),
        "{s:?}"
    );
}

#[tokio::test]
async fn wrong_credentials_fail_clearly_and_never_show_the_token() {
    let w = world("not-the-token").await;
    let s = expect_code(try_trigger(&w, "", "").await, Code::FailedPrecondition);
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

#[tokio::test]
async fn source_commit_promotes_an_older_commit_of_the_branch_only() {
    let w = world(TOKEN).await;
    let old = w.git.tip("apps", "main");
    w.git.commit_directly(
        "apps",
        "main",
        "apps/dev/values.yaml",
        &values("dev", "1.3.0"),
    );
    // An abbreviated id of the older commit: its version, its full id.
    let r = try_trigger(&w, "", &old[..10])
        .await
        .expect("trigger")
        .release
        .expect("release");
    assert_eq!(
        (r.version.as_str(), r.source_commit.as_str()),
        ("1.2.0", old.as_str())
    );
    let done = wait_final(&w.server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    assert_eq!(
        w.git.read("apps", "main", "apps/qa/values.yaml"),
        values("qa", "1.2.0")
    );
    // The release page of a loopback server is unknown: no guessed link.
    assert_eq!(step_of(env(&done, "qa"), pb::StepKind::Action).url, "");

    let elsewhere = w.git.commit_directly(
        "apps",
        "feature",
        "apps/dev/values.yaml",
        &values("dev", "6.6.6"),
    );
    let s = expect_code(
        try_trigger(&w, "", &elsewhere).await,
        Code::FailedPrecondition,
    );
    assert!(s.message().contains("not on branch main"), "{s:?}");
    let s = expect_code(
        try_trigger(&w, "", "0123456789abcdef").await,
        Code::FailedPrecondition,
    );
    assert!(s.message().contains("not found"), "{s:?}");
    let s = expect_code(try_trigger(&w, "", "HEAD~1").await, Code::InvalidArgument);
    assert!(s.message().contains("source_commit"), "{s:?}");
    let all = w
        .server
        .releases()
        .list_releases(pb::ListReleasesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .releases;
    assert_eq!(all.len(), 1, "refused triggers create nothing");

    change_product(&w.server, "shop", |p| {
        for a in p.applications.iter_mut().filter(|a| a.environment == "dev") {
            a.source = None;
        }
    })
    .await;
    let s = expect_code(try_trigger(&w, "", &old).await, Code::FailedPrecondition);
    assert!(s.message().contains("do not promote through Git"), "{s:?}");
}

// ------------------------------------------------ races and crashes

/// `n` products `p00…` in repository `fleet`, each with a dev and a prod
/// application in `apps/<product>/<env>` (dev at 1.1.0, prod at 1.0.0),
/// and flow `ship` (dev → prod) committing.
async fn seed_fleet(api: &impl Api, git: &GitServer, n: usize) -> Vec<String> {
    let names: Vec<String> = (0..n).map(|i| format!("p{i:02}")).collect();
    let mut files = Vec::new();
    for p in &names {
        for (env, tag) in [("dev", "1.1.0"), ("prod", "1.0.0")] {
            files.push((format!("apps/{p}/{env}/values.yaml"), values(env, tag)));
        }
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let url = git.create_repo("fleet", &refs);
    create_envs(api, &["dev", "prod"], pb::EnvironmentKind::NonProduction).await;
    for p in &names {
        let product = pb::Product {
            name: p.clone(),
            applications: git_apps(p, &["dev", "prod"], &url, |e| format!("apps/{p}/{e}")),
            promotion_template: Some(tag_template()),
            ..Default::default()
        };
        create_product(api, product).await.expect("create product");
    }
    create_flow(api, flow("ship", "dev", vec![commit_step("prod", "dev")]))
        .await
        .expect("create flow");
    names
}

/// Every release succeeded and `fleet`'s `main` gained exactly one commit
/// per release, carrying its id, with each product's prod file promoted.
fn assert_one_commit_each(git: &GitServer, before: usize, done: &[pb::Release]) {
    for r in done {
        assert_eq!(status(r), pb::ReleaseStatus::Succeeded, "{r:?}");
    }
    let log = git.log("fleet", "main");
    assert_eq!(log.len(), before + done.len(), "one commit per release");
    let mut ids: Vec<&str> = log
        .iter()
        .flat_map(|c| &c.trailers)
        .filter(|(k, _)| k == "Promoflow-Release")
        .map(|(_, v)| v.as_str())
        .collect();
    ids.sort();
    let mut want: Vec<&str> = done.iter().map(|r| r.id.as_str()).collect();
    want.sort();
    assert_eq!(ids, want, "each release's commit, none lost");
    for r in done {
        assert_eq!(
            git.read(
                "fleet",
                "main",
                &format!("apps/{}/prod/values.yaml", r.product)
            ),
            values("prod", "1.1.0"),
            "{}",
            r.product
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_releases_commit_into_one_repository() {
    let (git, access) = forge(TOKEN).await;
    let server = access.server_on(TestDb::new().await, "cache").await;
    let products = seed_fleet(&server, &git, 20).await;
    let before = git.log("fleet", "main").len();
    let triggers = products
        .iter()
        .map(|p| trigger_flow(&server, "ship", p, ""));
    let ids: Vec<String> = futures::future::join_all(triggers)
        .await
        .into_iter()
        .map(|r| r.id)
        .collect();
    let done = wait_all(&server, &ids).await;
    assert_one_commit_each(&git, before, &done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_race_on_one_branch_and_lose_nothing() {
    let (git, access) = forge(TOKEN).await;
    let seeding = access.server_on(TestDb::new().await, "seed").await;
    let products = seed_fleet(&seeding, &git, 10).await;
    let db = seeding.stop().await;
    let replicas = [
        access.serve(Serve::replica("r1"), "r1").start(&db).await,
        access.serve(Serve::replica("r2"), "r2").start(&db).await,
    ];
    let before = git.log("fleet", "main").len();
    // Alternate replicas: each runs its own releases (the lease goes to
    // the replica that created the release), so both push to `main` at
    // once and their per-process locks do not keep them apart.
    let triggers = products
        .iter()
        .enumerate()
        .map(|(i, p)| trigger_flow(&replicas[i % 2], "ship", p, ""));
    let ids: Vec<String> = futures::future::join_all(triggers)
        .await
        .into_iter()
        .map(|r| r.id)
        .collect();
    let done = wait_all(&replicas[0], &ids).await;
    assert_one_commit_each(&git, before, &done);
}

/// `kill -9` after the push of qa's commit landed but before promoflow
/// heard back (a `post-receive` hook holds the answer): the restarted
/// process adopts the commit by its trailers instead of making a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_between_push_and_success_commits_once() {
    let (git, access) = forge(TOKEN).await;
    let seeding = access.server_on(TestDb::new().await, "seed").await;
    seed_shop(&seeding, &git).await;
    let db = seeding.stop().await;
    let hold = access.dir.path().join("held");
    let hook = git.path("apps").join("hooks").join("post-receive");
    std::fs::create_dir_all(hook.parent().expect("hooks dir")).expect("hooks dir");
    // Writes its pid only once the refs are updated, then holds the answer.
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ncat >/dev/null\necho $$ > {0}.tmp && mv {0}.tmp {0}\nexec sleep 60\n",
            hold.display()
        ),
    )
    .expect("write hook");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod hook");
    let mut child = access
        .serve(Serve::new().short_leases(), "binary")
        .start(&db)
        .await;
    let before = git.log("apps", "main").len();
    let r = trigger_flow(&child, "parallel", "shop", "").await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let pid = loop {
        if let Ok(pid) = std::fs::read_to_string(&hold) {
            break pid.trim().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "qa's push never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let landed = git.log("apps", "main");
    assert_eq!(landed.len(), before + 1, "qa's commit is on main");
    child.kill();
    // Let the held push finish (its git process outlived promoflow) and
    // stop holding later pushes.
    std::fs::remove_file(&hook).expect("remove hook");
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status();

    child.restart().await;
    let done = wait_final(&child, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    let log = git.log("apps", "main");
    assert_eq!(
        log.len(),
        before + 4,
        "exactly one commit per environment: {log:?}"
    );
    let qa = step_of(env(&done, "qa"), pb::StepKind::Action);
    assert_eq!(
        qa.commit_sha, landed[0].sha,
        "qa adopted the commit that landed"
    );
    assert!(qa.message.starts_with("already committed"), "{qa:?}");
    for e in ["qa", "prod", "prod-eu", "prod-asia"] {
        let n = log
            .iter()
            .filter(|c| {
                c.trailers
                    .contains(&("Promoflow-Environment".into(), e.into()))
            })
            .count();
        assert_eq!(n, 1, "{e}");
    }
}

/// A Codefresh PromotionFlow as its documentation writes them
/// (`policy.action: commit`), imported as is, promotes through Git.
#[tokio::test]
async fn an_imported_codefresh_flow_with_action_commit_promotes() {
    let w = world(TOKEN).await;
    let yaml = "apiVersion: codefresh.io/v1beta1
kind: PromotionFlow
metadata:
  name: global-parallel-flow
spec:
  triggerEnvironment: dev
  steps:
    - environment: qa
      dependsOn:
        - dev
      policy:
        action: commit
    - environment: prod
      dependsOn:
        - qa
      policy:
        action: commit
";
    w.server
        .flows()
        .import_flow(pb::ImportFlowRequest {
            yaml: yaml.into(),
            replace: false,
        })
        .await
        .expect("import");
    let r = trigger_flow(&w.server, "global-parallel-flow", "shop", "").await;
    let done = wait_final(&w.server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    for e in ["qa", "prod"] {
        assert_eq!(
            w.git.read("apps", "main", &format!("apps/{e}/values.yaml")),
            values(e, "1.2.0"),
            "{e}"
        );
    }
    assert_eq!(
        w.git.read("apps", "main", "apps/prod-eu/values.yaml"),
        values("prod-eu", "1.0.0"),
        "not in the flow"
    );
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
    let refused = expect_code(try_trigger(&w, "", "").await, Code::FailedPrecondition);
    assert!(refused.message().contains("$.image.missing"), "{refused:?}");
    expect_code(
        delete_template(&w.server, "image-tag", 0).await,
        Code::FailedPrecondition,
    );
}
