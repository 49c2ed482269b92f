//! Releases triggered by Git: the server polls the trigger application's
//! branch on a real Git smart-HTTP server (`common::git_server`) and a push
//! that changes the application's files starts a release by itself: once
//! per commit, across restarts and across two replicas on one store.
//!
//! When the poller has seen a commit is read from the store's `git_watches`
//! table: the API has no field for it, and waiting on it (instead of
//! sleeping) is what lets "nothing started" be asserted after a poll that
//! surely happened.

mod common;

use std::time::{Duration, Instant};

use common::git_server::GitServer;
use common::git_watch::*;
use common::*;
use promoflow::config::ServerConfig;
use promoflow::proto::v1 as pb;

const TOKEN: &str = "poll-token-for-tests";
const REPO: &str = "apps";
const DEV_VALUES: &str = "apps/dev/values.yaml";

fn values(env: &str, tag: &str) -> String {
    format!("# {env}: the image runs here\nimage:\n  tag: \"{tag}\" # promoted\n")
}

/// A Git server holding `apps/{dev,qa}/values.yaml` (both at 1.0.0), and
/// the credentials file a promoflow server reads it with.
struct Repo {
    git: GitServer,
    url: String,
    dir: tempfile::TempDir,
}

impl Repo {
    async fn start() -> Self {
        let git = GitServer::start("promoflow", TOKEN).await;
        let dev = values("dev", "1.0.0");
        let qa = values("qa", "1.0.0");
        let url = git.create_repo(
            REPO,
            &[
                (DEV_VALUES, dev.as_str()),
                ("apps/qa/values.yaml", qa.as_str()),
            ],
        );
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("token"), TOKEN).expect("write token");
        std::fs::write(
            dir.path().join("credentials.yaml"),
            format!(
                "- url_prefix: {}\n  username: promoflow\n  token_file: {}\n",
                git.base,
                dir.path().join("token").display()
            ),
        )
        .expect("write credentials");
        Self { git, url, dir }
    }

    /// Server settings that poll this repository every `every`, with a
    /// Git cache named `cache` of its own.
    fn config(&self, c: &mut ServerConfig, cache: &str, every: Duration) {
        c.git_credentials = Some(self.dir.path().join("credentials.yaml"));
        c.allow_insecure_git_http = true;
        c.git_cache_dir = Some(self.dir.path().join(cache));
        c.git_poll_interval = every;
    }

    fn tip(&self) -> String {
        self.git.tip(REPO, "main")
    }

    /// Commits `path` = `contents` on main, as a person's push would.
    fn push(&self, path: &str, contents: &str) -> String {
        self.git.commit_directly(REPO, "main", path, contents)
    }

    /// Pushes dev's values at `tag`.
    fn push_dev(&self, tag: &str) -> String {
        self.push(DEV_VALUES, &values("dev", tag))
    }
}

/// Environments dev and qa, flow `promote` (dev → qa, COMMIT) and product
/// `shop`, Git-backed in both, whose version is dev's `$.image.tag` and
/// whose promotion flows name `promote`.
async fn seed(api: &impl Api, url: &str) {
    create_envs(api, &["dev", "qa"], pb::EnvironmentKind::NonProduction).await;
    let commit = pb::FlowStep {
        policy: Some(pb::Policy {
            action: pb::PromotionAction::Commit as i32,
            ..Default::default()
        }),
        ..step("qa", &["dev"])
    };
    create_flow(api, flow("promote", "dev", vec![commit]))
        .await
        .expect("create flow");
    let apps = ["dev", "qa"]
        .into_iter()
        .map(|e| pb::Application {
            source: Some(pb::GitSource {
                repo_url: url.into(),
                branch: "main".into(),
                path: format!("apps/{e}"),
            }),
            ..app(e, &format!("shop-{e}"), "1.0.0")
        })
        .collect();
    let tag = "$.image.tag".to_string();
    let product = pb::Product {
        name: "shop".into(),
        applications: apps,
        promotion_flows: vec![pb::ProductPromotionFlow {
            flow: "promote".into(),
            selectors: vec![],
        }],
        promotion_template: Some(pb::PromotionTemplate {
            version_source: Some(pb::VersionSource {
                file: "values.yaml".into(),
                json_path: tag.clone(),
            }),
            promotion: vec![pb::PromotedFile {
                file: "values.yaml".into(),
                json_paths: vec![tag],
            }],
        }),
        ..Default::default()
    };
    create_product(api, product).await.expect("create product");
}

/// Waits (30 s at most) until the Git server refused `n` requests in all.
async fn wait_refusals(repo: &Repo, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while repo.git.refused() < n {
        assert!(Instant::now() < deadline, "the poller never fetched again");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn dev_app(p: &pb::Product) -> &pb::Application {
    p.applications
        .iter()
        .find(|a| a.environment == "dev")
        .expect("dev application")
}

const FAST: Duration = Duration::from_millis(100);

#[tokio::test]
async fn a_push_to_the_trigger_path_starts_a_release_by_itself() {
    let repo = Repo::start().await;
    let server = TestServer::start_with(|c| repo.config(c, "cache", FAST)).await;
    seed(&server, &repo.url).await;
    // First sight: the tip is remembered, nothing starts.
    wait_watched(&server.db.url, &repo.tip()).await;
    assert!(releases(&server).await.is_empty());

    let sha = repo.push_dev("1.1.0");
    let r = wait_release_of(&server, &sha).await;
    assert_eq!(r.initiator, "git-poll");
    assert_eq!(
        r.version, "1.1.0",
        "read from dev's values.yaml at the commit"
    );
    assert_eq!(r.flow, "promote");
    let p = get_product(&server, "shop").await.expect("product");
    let dev = dev_app(&p);
    assert_eq!(dev.version, "1.1.0");
    let c = dev.last_commit.as_ref().expect("the commit is recorded");
    assert_eq!(c.sha, sha);
    assert_eq!(c.revision, "main");
    assert!(c.message.starts_with("someone else edits"), "{c:?}");
    assert!(c.author.starts_with("Someone Else"), "{c:?}");

    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    assert_eq!(
        repo.git.read(REPO, "main", "apps/qa/values.yaml"),
        values("qa", "1.1.0")
    );
    // The promotion's own commit (under apps/qa) starts nothing.
    wait_watched(&server.db.url, &repo.tip()).await;
    assert_eq!(releases(&server).await.len(), 1);
}

#[tokio::test]
async fn commits_that_change_no_version_start_nothing() {
    let repo = Repo::start().await;
    let server = TestServer::start_with(|c| repo.config(c, "cache", FAST)).await;
    seed(&server, &repo.url).await;
    wait_watched(&server.db.url, &repo.tip()).await;

    // Outside dev's path: neither recorded nor released.
    repo.push("apps/qa/values.yaml", &values("qa", "7.0.0"));
    let readme = repo.push("README.md", "# apps\n");
    wait_watched(&server.db.url, &readme).await;
    assert!(releases(&server).await.is_empty());
    let p = get_product(&server, "shop").await.expect("product");
    assert_eq!(dev_app(&p).version, "1.0.0");
    assert!(dev_app(&p).last_commit.is_none(), "{p:?}");

    // Under the path, same version: the commit is recorded, no release.
    let comment = format!("{}# a comment\n", values("dev", "1.0.0"));
    let sha = repo.push(DEV_VALUES, &comment);
    wait_watched(&server.db.url, &sha).await;
    assert!(releases(&server).await.is_empty());
    let p = get_product(&server, "shop").await.expect("product");
    assert_eq!(dev_app(&p).version, "1.0.0");
    assert_eq!(
        dev_app(&p).last_commit.as_ref().map(|c| c.sha.as_str()),
        Some(sha.as_str())
    );
}

#[tokio::test]
async fn a_commit_that_cannot_start_a_release_is_not_retried_forever() {
    let repo = Repo::start().await;
    let server = TestServer::start_with(|c| repo.config(c, "cache", FAST)).await;
    seed(&server, &repo.url).await;
    wait_watched(&server.db.url, &repo.tip()).await;
    // No tag to read the version from: marked seen, nothing recorded.
    let broken = repo.push(DEV_VALUES, "image: {}\n");
    wait_watched(&server.db.url, &broken).await;
    assert!(releases(&server).await.is_empty());
    let p = get_product(&server, "shop").await.expect("product");
    assert!(dev_app(&p).last_commit.is_none(), "{p:?}");
    // The flow now needs prod, where shop has no application: the release
    // cannot start, and the commit is neither recorded nor retried.
    create_envs(&server, &["prod"], pb::EnvironmentKind::Production).await;
    edit_latest(
        &server,
        "promote",
        vec![add_envs_after("qa", &["prod"], None)],
    )
    .await;
    let unreleasable = repo.push_dev("1.5.0");
    wait_watched(&server.db.url, &unreleasable).await;
    assert!(releases(&server).await.is_empty());
    let p = get_product(&server, "shop").await.expect("product");
    assert_eq!(dev_app(&p).version, "1.0.0", "{p:?}");
    // Fixed, the next commit starts its release.
    add_apps(&server, "shop", &["prod"]).await;
    let fixed = repo.push_dev("2.0.0");
    let r = wait_release_of(&server, &fixed).await;
    assert_eq!(r.version, "2.0.0");
    wait_final(&server, &r.id).await;
}

#[tokio::test]
async fn a_failed_poll_keeps_the_last_seen_commit_and_tries_again() {
    let repo = Repo::start().await;
    let server = TestServer::start_with(|c| repo.config(c, "cache", FAST)).await;
    seed(&server, &repo.url).await;
    let before = repo.tip();
    wait_watched(&server.db.url, &before).await;
    // The token file is read at every fetch: a wrong token fails the polls.
    // Polls run one after the other, so once one was refused, none still
    // under way holds the good token.
    let token = repo.dir.path().join("token");
    std::fs::write(&token, "not-the-token").expect("write token");
    wait_refusals(&repo, repo.git.refused() + 1).await;
    let sha = repo.push_dev("1.1.0");
    // Refused requests made after the push: polls that would have seen it.
    wait_refusals(&repo, repo.git.refused() + 2).await;
    assert_eq!(
        watched(&server.db.url).await.as_deref(),
        Some(before.as_str())
    );
    assert!(releases(&server).await.is_empty());
    // Once the credential works again the commit is picked up.
    std::fs::write(&token, TOKEN).expect("write token");
    let r = wait_release_of(&server, &sha).await;
    assert_eq!(r.version, "1.1.0");
    wait_final(&server, &r.id).await;
}

#[tokio::test]
async fn a_restart_neither_repeats_nor_misses_a_commit() {
    let repo = Repo::start().await;
    let server = TestServer::start_with(|c| repo.config(c, "cache-1", FAST)).await;
    seed(&server, &repo.url).await;
    wait_watched(&server.db.url, &repo.tip()).await;
    let first = repo.push_dev("1.1.0");
    let r1 = wait_release_of(&server, &first).await;
    wait_final(&server, &r1.id).await;
    let db = server.stop().await;

    // Pushed while the server is down; it restarts with an empty Git cache:
    // the store, not the cache, remembers what was seen.
    let missed = repo.push_dev("1.2.0");
    let server = TestServer::start_on(db, |c| repo.config(c, "cache-2", FAST)).await;
    let r2 = wait_release_of(&server, &missed).await;
    assert_eq!(r2.version, "1.2.0");
    wait_final(&server, &r2.id).await;
    // One more poll surely ran (it saw this commit): still two releases.
    let later = repo.push("README.md", "# apps\n");
    wait_watched(&server.db.url, &later).await;
    let commits: Vec<String> = releases(&server)
        .await
        .into_iter()
        .map(|r| r.source_commit)
        .collect();
    assert_eq!(commits, [first, missed], "one release per commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_start_exactly_one_release_per_commit() {
    let repo = Repo::start().await;
    // Both poll often, so both see each commit: the store picks one.
    let every = Duration::from_millis(20);
    let a = TestServer::start_with(|c| {
        repo.config(c, "cache-a", every);
        c.replica_id = Some("a".into());
    })
    .await;
    let b = TestServer::start_on(a.db.shared(), |c| {
        repo.config(c, "cache-b", every);
        c.replica_id = Some("b".into());
    })
    .await;
    seed(&a, &repo.url).await;
    wait_watched(&a.db.url, &repo.tip()).await;
    let mut pushed = Vec::new();
    for i in 1..=5 {
        let sha = repo.push_dev(&format!("1.{i}.0"));
        let r = wait_release_of(&b, &sha).await;
        // Its promotion commits to main: the next push waits for it, as
        // the test's direct commits do not retry a moved branch.
        let done = wait_final(&a, &r.id).await;
        assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
        pushed.push(sha);
    }
    let later = repo.push("README.md", "# apps\n");
    wait_watched(&a.db.url, &later).await;
    let all = releases(&a).await;
    let commits: Vec<&str> = all.iter().map(|r| r.source_commit.as_str()).collect();
    assert_eq!(commits, pushed, "exactly one release per commit, in order");
    // The second replica stops before the first drops the database.
    drop(b);
    drop(a);
}

/// A flow whose steps write nothing to Git (action NONE) is still started
/// by a push to its trigger application: the release records the commit.
#[tokio::test]
async fn a_flow_that_writes_nothing_to_git_is_started_by_a_push_too() {
    let repo = Repo::start().await;
    let server = TestServer::start_with(|c| repo.config(c, "cache", FAST)).await;
    seed(&server, &repo.url).await;
    create_flow(&server, flow("record", "dev", vec![step("qa", &["dev"])]))
        .await
        .expect("create flow");
    change_product(&server, "shop", |p| {
        p.promotion_flows[0].flow = "record".into();
    })
    .await;
    wait_watched(&server.db.url, &repo.tip()).await;

    let sha = repo.push_dev("1.1.0");
    let r = wait_release_of(&server, &sha).await;
    assert_eq!((r.flow.as_str(), r.version.as_str()), ("record", "1.1.0"));
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    assert_eq!(
        repo.git.read(REPO, "main", "apps/qa/values.yaml"),
        values("qa", "1.0.0"),
        "NONE writes nothing"
    );
}
