//! PULL_REQUEST promotions against a real Git smart-HTTP server
//! (`common::git_server`) and a test forge speaking the Gitea pull-request
//! API (`common::forge`) whose merges are real merge commits: prod is
//! SUSPENDED awaiting review of a real pull request, continues when it is
//! merged, fails when it is closed, and a restart, a terminate or the
//! promotion timeout never open a second one.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::forge::TestForge;
use common::git_server::GitServer;
use common::serve::Serve;
use common::*;
use promoflow::proto::v1 as pb;
use tonic::Code;

const TOKEN: &str = "pr-t0ken-for-tests";
const REPO: &str = "acme/apps";

fn values(env: &str, tag: &str) -> String {
    format!(
        "# {env} values\nimage:\n  repository: registry.example.com/shop # the shop image\n  tag: \"{tag}\"  # promoted\nreplicas: 2\n"
    )
}

/// A Git server and a test forge for repository `acme/apps` (dev at
/// `dev_tag`, prod at 1.0.0), and a credentials file for both.
struct Forge {
    git: GitServer,
    forge: TestForge,
    url: String,
    creds: PathBuf,
    dir: tempfile::TempDir,
}

impl Forge {
    async fn start(dev_tag: &str, prod_tag: &str, with_forge: bool) -> Self {
        let git = GitServer::start("promoflow", TOKEN).await;
        let url = git.create_repo(
            REPO,
            &[
                ("apps/dev/values.yaml", &values("dev", dev_tag)),
                ("apps/prod/values.yaml", &values("prod", prod_tag)),
            ],
        );
        let forge = TestForge::start(&git.path(REPO), REPO, TOKEN).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, TOKEN).expect("token");
        let creds = dir.path().join("credentials.yaml");
        let forge_line = if with_forge {
            format!("  forge: {{kind: gitea, api_url: {}}}\n", forge.api_url)
        } else {
            String::new()
        };
        std::fs::write(
            &creds,
            format!(
                "- url_prefix: {}\n  username: promoflow\n  token_file: {}\n{forge_line}",
                git.base,
                token_file.display()
            ),
        )
        .expect("credentials");
        Self {
            git,
            forge,
            url,
            creds,
            dir,
        }
    }

    async fn server_on(&self, db: TestDb) -> TestServer {
        self.server_with(db, |_| {}).await
    }

    /// The server of `server_on`, further configured by `more`.
    async fn server_with(
        &self,
        db: TestDb,
        more: impl FnOnce(&mut promoflow::config::ServerConfig),
    ) -> TestServer {
        let cache = self.dir.path().join("cache");
        TestServer::start_on(db, |c| {
            c.git_credentials = Some(self.creds.clone());
            c.allow_insecure_git_http = true;
            c.git_cache_dir = Some(cache);
            c.pr_poll_interval = Duration::from_millis(100);
            more(c);
        })
        .await
    }

    /// `promoflow serve` on the forge, checking pull requests every 100 ms.
    fn serve(&self, cache: &str) -> Serve {
        let cache = self.dir.path().join(cache).display().to_string();
        let creds = self.creds.display().to_string();
        Serve::new().short_leases().args([
            "--git-credentials",
            creds.as_str(),
            "--allow-insecure-git-http",
            "--git-cache-dir",
            cache.as_str(),
            "--pr-poll-interval",
            "100ms",
        ])
    }

    fn prod_values(&self) -> String {
        self.git.read(REPO, "main", "apps/prod/values.yaml")
    }
}

/// Product `shop` (dev and prod in `acme/apps`, promoting `$.image.tag`)
/// and flow `pr`: dev → prod, prod's action PULL_REQUEST, with an optional
/// promotion timeout.
async fn seed(api: &impl Api, url: &str, timeout: Option<Duration>) {
    create_envs(api, &["dev", "prod"], pb::EnvironmentKind::NonProduction).await;
    let apps = ["dev", "prod"]
        .iter()
        .map(|e| pb::Application {
            source: Some(pb::GitSource {
                repo_url: url.into(),
                branch: "main".into(),
                path: format!("apps/{e}"),
            }),
            ..app(e, &format!("shop-{e}"), "")
        })
        .collect();
    let template = pb::PromotionTemplate {
        version_source: Some(pb::VersionSource {
            file: "values.yaml".into(),
            json_path: "$.image.tag".into(),
        }),
        promotion: vec![pb::PromotedFile {
            file: "values.yaml".into(),
            json_paths: vec!["$.image.tag".into()],
        }],
    };
    create_product(
        api,
        pb::Product {
            name: "shop".into(),
            applications: apps,
            promotion_template: Some(template),
            ..Default::default()
        },
    )
    .await
    .expect("create product");
    let prod = pb::FlowStep {
        policy: Some(pb::Policy {
            action: pb::PromotionAction::PullRequest as i32,
            ..Default::default()
        }),
        ..step("prod", &["dev"])
    };
    let mut f = flow("pr", "dev", vec![prod]);
    f.promotion_timeout = timeout.map(|t| dur(t.as_millis() as u64));
    create_flow(api, f).await.expect("create flow");
}

/// Forge, server and seeded world.
async fn world(dev: &str, prod: &str, timeout: Option<Duration>) -> (Forge, TestServer) {
    let f = Forge::start(dev, prod, true).await;
    let server = f.server_on(TestDb::new().await).await;
    seed(&server, &f.url, timeout).await;
    (f, server)
}

fn action(r: &pb::Release) -> &pb::StepRun {
    step_of(env(r, "prod"), pb::StepKind::Action)
}

/// Waits until prod awaits review of its pull request.
async fn awaiting_review(api: &impl Api, id: &str) -> pb::Release {
    wait_until(api, id, "prod awaiting review", |r| {
        env_status(r, "prod") == pb::EnvironmentStatus::Suspended
            && action(r).pull_request_number > 0
    })
    .await
}

#[tokio::test]
async fn prod_awaits_review_until_the_pull_request_is_merged() {
    let (f, server) = world("1.2.0", "1.0.0", None).await;
    let r = trigger_flow(&server, "pr", "shop", "").await;
    awaiting_review(&server, &r.id).await;
    // The release says SUSPENDED once nothing else of it runs: the worker
    // commits that after the step's own wait, so wait for both.
    let waiting = wait_until(&server, &r.id, "the release suspended", |r| {
        status(r) == pb::ReleaseStatus::Suspended
    })
    .await;

    // Recorded before waiting: number, page and head commit.
    let head = format!("promoflow/{}/prod", r.id);
    let step = action(&waiting);
    let pr = f.forge.pr(step.pull_request_number);
    assert_eq!(f.forge.prs().len(), 1);
    let page = format!(
        "{}/acme/apps/pulls/{}",
        f.forge.api_url.trim_end_matches("/api/v1"),
        pr.number
    );
    assert_eq!(step.url, page);
    assert_eq!(step.commit_sha, f.git.tip(REPO, &head));
    let message = format!("awaiting pull request #{} {page}", pr.number);
    assert_eq!(env(&waiting, "prod").message, message);
    assert_eq!(step.message, message);
    assert_eq!(status(&waiting), pb::ReleaseStatus::Suspended);
    let c = waiting.counters.unwrap();
    assert_eq!((c.suspended, c.awaiting_review), (1, 1), "{c:?}");
    // The pull request: the commit's subject, the release and its values.
    assert_eq!(
        (pr.head.as_str(), pr.base.as_str()),
        (head.as_str(), "main")
    );
    assert_eq!(pr.title, "promote shop 1.2.0 from dev to prod");
    assert!(pr.body.contains(&r.id), "{}", pr.body);
    assert!(
        pr.body.contains("apps/prod/values.yaml") && pr.body.contains("`1.2.0`"),
        "{}",
        pr.body
    );
    assert_eq!(
        f.git.read(REPO, &head, "apps/prod/values.yaml"),
        values("prod", "1.2.0")
    );
    assert_eq!(
        f.prod_values(),
        values("prod", "1.0.0"),
        "main waits for the merge"
    );
    // A review is not an approval.
    let refused = expect_code(
        approve(&server, &r.id, "prod", true, "").await,
        Code::FailedPrecondition,
    );
    assert!(refused.message().contains("pull request"), "{refused:?}");

    let merge = f.forge.merge(pr.number);
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    let step = action(&done);
    assert_eq!(step.commit_sha, merge);
    assert_eq!(step.url, page);
    assert_eq!(step.pull_request_number, pr.number);
    assert_eq!(env(&done, "prod").message, "");
    assert_eq!(f.git.tip(REPO, "main"), merge);
    assert_eq!(f.prod_values(), values("prod", "1.2.0"));
    let p = get_product(&server, "shop").await.unwrap();
    let prod = p
        .applications
        .iter()
        .find(|a| a.environment == "prod")
        .unwrap();
    assert_eq!(prod.version, "1.2.0");
    assert_eq!(f.forge.creates(), 1);
}

#[tokio::test]
async fn a_pull_request_closed_without_merge_fails_prod() {
    let (f, server) = world("1.2.0", "1.0.0", None).await;
    let r = trigger_flow(&server, "pr", "shop", "").await;
    let n = action(&awaiting_review(&server, &r.id).await).pull_request_number;
    f.forge.close(n);
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Failed, "{done:?}");
    assert_eq!(env_status(&done, "prod"), pb::EnvironmentStatus::Failed);
    assert_eq!(
        env(&done, "prod").message,
        format!("action failed: pull request #{n} was closed without being merged")
    );
    assert_eq!(f.prod_values(), values("prod", "1.0.0"));
}

#[tokio::test]
async fn commit_status_marks_the_trigger_commit_pending_then_success() {
    let f = Forge::start("1.2.0", "1.0.0", true).await;
    let server = f
        .server_with(TestDb::new().await, |c| {
            c.commit_status = true;
            c.release_url_template = "https://promoflow.example.com/releases/{id}".into();
        })
        .await;
    seed(&server, &f.url, None).await;
    let source = f.git.tip(REPO, "main");
    let r = trigger_flow(&server, "pr", "shop", "").await;
    assert_eq!(r.source_commit, source, "{r:?}");
    let n = action(&awaiting_review(&server, &r.id).await).pull_request_number;
    let pending = wait_for_statuses(&f.forge, 1).await;
    assert_eq!(pending[0].state, "pending", "{pending:?}");
    f.forge.merge(n);
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    let statuses = wait_for_statuses(&f.forge, 2).await;
    let states: Vec<&str> = statuses.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(states, ["pending", "success"], "{statuses:?}");
    for s in &statuses {
        assert_eq!(s.sha, source, "on the trigger commit, not the merge");
        assert_eq!(s.context, "promoflow/pr");
        assert_eq!(
            s.target_url,
            format!("https://promoflow.example.com/releases/{}", r.id)
        );
        assert!(s.description.contains("shop 1.2.0"), "{s:?}");
    }
}

#[tokio::test]
async fn commit_status_is_failure_when_prod_fails_and_links_nowhere_without_a_template() {
    let f = Forge::start("1.2.0", "1.0.0", true).await;
    let server = f
        .server_with(TestDb::new().await, |c| c.commit_status = true)
        .await;
    seed(&server, &f.url, None).await;
    let r = trigger_flow(&server, "pr", "shop", "").await;
    let n = action(&awaiting_review(&server, &r.id).await).pull_request_number;
    f.forge.close(n);
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Failed, "{done:?}");
    let statuses = wait_for_statuses(&f.forge, 2).await;
    let states: Vec<&str> = statuses.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(states, ["pending", "failure"], "{statuses:?}");
    assert!(
        statuses.iter().all(|s| s.target_url.is_empty()),
        "{statuses:?}"
    );
    assert_eq!(statuses[1].description, "failed: failed in prod");
}

#[tokio::test]
async fn without_the_flag_no_commit_status_is_set() {
    let (f, server) = world("1.2.0", "1.2.0", None).await;
    let r = trigger_flow(&server, "pr", "shop", "").await;
    wait_final(&server, &r.id).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(f.forge.statuses().is_empty(), "{:?}", f.forge.statuses());
}

/// The forge's commit statuses once it holds `n` (panics after 10 s).
async fn wait_for_statuses(forge: &TestForge, n: usize) -> Vec<common::forge::Status> {
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = forge.statuses();
        if got.len() >= n {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{n} commit statuses expected, got {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn nothing_to_change_opens_no_pull_request() {
    let (f, server) = world("1.2.0", "1.2.0", None).await;
    let r = trigger_flow(&server, "pr", "shop", "").await;
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    let step = action(&done);
    assert!(step.message.starts_with("no changes"), "{step:?}");
    assert_eq!((step.pull_request_number, step.url.as_str()), (0, ""));
    assert_eq!(f.forge.creates(), 0);
    assert!(f.forge.prs().is_empty());
}

#[tokio::test]
async fn terminate_ends_the_wait_and_comments_on_the_pull_request() {
    let (f, server) = world("1.2.0", "1.0.0", None).await;
    let r = trigger_flow(&server, "pr", "shop", "").await;
    let n = action(&awaiting_review(&server, &r.id).await).pull_request_number;
    terminate(&server, &r.id, "hotfix first")
        .await
        .expect("terminate");
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Terminated, "{done:?}");
    assert_eq!(env_status(&done, "prod"), pb::EnvironmentStatus::Terminated);
    let pr = f.forge.pr(n);
    assert_eq!(pr.state, "open", "left open");
    assert_eq!(pr.comments.len(), 1, "{pr:?}");
    assert!(
        pr.comments[0].contains("hotfix first") && pr.comments[0].contains(&r.id),
        "{pr:?}"
    );
}

#[tokio::test]
async fn the_promotion_timeout_ends_the_wait_and_comments_on_the_pull_request() {
    let (f, server) = world("1.2.0", "1.0.0", Some(Duration::from_secs(4))).await;
    let r = trigger_flow(&server, "pr", "shop", "").await;
    let n = action(&awaiting_review(&server, &r.id).await).pull_request_number;
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Terminated, "{done:?}");
    assert_eq!(done.message, "timeout");
    let pr = f.forge.pr(n);
    assert_eq!(pr.state, "open");
    assert_eq!(pr.comments.len(), 1, "{pr:?}");
    assert!(pr.comments[0].contains("promotion timeout"), "{pr:?}");
}

#[tokio::test]
async fn a_credentials_entry_without_a_forge_fails_prod_saying_so() {
    let f = Forge::start("1.2.0", "1.0.0", false).await;
    let server = f.server_on(TestDb::new().await).await;
    seed(&server, &f.url, None).await;
    let r = trigger_flow(&server, "pr", "shop", "").await;
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Failed, "{done:?}");
    let message = &env(&done, "prod").message;
    let host = f.git.base.trim_start_matches("http://");
    assert!(
        message.contains(&format!("the credentials entry for {host} names no forge")),
        "{message}"
    );
    assert!(!message.contains(TOKEN));
    assert_eq!(f.forge.creates(), 0);
}

#[tokio::test]
async fn after_kill_9_while_awaiting_review_the_pull_request_is_adopted() {
    let f = Forge::start("1.2.0", "1.0.0", true).await;
    let seeding = f.server_on(TestDb::new().await).await;
    seed(&seeding, &f.url, None).await;
    let db = seeding.stop().await;

    let mut bin = f.serve("cache-bin").start(&db).await;
    let r = trigger_flow(&bin, "pr", "shop", "").await;
    let n = action(&awaiting_review(&bin, &r.id).await).pull_request_number;
    bin.kill();
    bin.restart().await;
    // The restarted server checks the recorded pull request again…
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = get_release(&bin, &r.id).await;
    assert_eq!(env_status(&again, "prod"), pb::EnvironmentStatus::Suspended);
    assert_eq!(action(&again).pull_request_number, n);
    // …and a merge still completes it; one pull request only.
    let merge = f.forge.merge(n);
    let done = wait_final(&bin, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    assert_eq!(action(&done).commit_sha, merge);
    assert_eq!(f.forge.prs().len(), 1, "{:?}", f.forge.prs());
    assert_eq!(f.forge.creates(), 1);
    assert_eq!(f.prod_values(), values("prod", "1.2.0"));
}

#[tokio::test]
async fn a_retry_adopts_the_pull_request_left_open_or_opens_a_new_one_after_a_close() {
    let (f, server) = world("1.2.0", "1.0.0", None).await;
    let r = trigger_flow(&server, "pr", "shop", "").await;
    let first = action(&awaiting_review(&server, &r.id).await).pull_request_number;
    // Terminated, the pull request stays open: a retry adopts it (found by
    // its head and base, as after a crash before it was recorded).
    terminate(&server, &r.id, "later").await.expect("terminate");
    wait_final(&server, &r.id).await;
    retry(&server, &r.id).await.expect("retry");
    let again = awaiting_review(&server, &r.id).await;
    assert_eq!(action(&again).pull_request_number, first);
    assert_eq!(action(&again).attempt, 2);
    assert_eq!(f.forge.creates(), 1, "adopted, not opened again");
    // Closed, a retry opens a new one from the same branch.
    f.forge.close(first);
    let failed = wait_final(&server, &r.id).await;
    assert_eq!(status(&failed), pb::ReleaseStatus::Failed, "{failed:?}");
    retry(&server, &r.id).await.expect("retry");
    let second = action(&awaiting_review(&server, &r.id).await).pull_request_number;
    assert_ne!(second, first);
    assert_eq!(f.forge.prs().len(), 2);
    f.forge.merge(second);
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    assert_eq!(f.prod_values(), values("prod", "1.2.0"));
}
