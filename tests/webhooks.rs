//! Git webhooks on the gRPC port (`POST /webhooks/github|gitea|gitlab`),
//! against a real Git smart-HTTP server (`common::git_server`): a signed
//! push starts a release at once through the poller's own path, a replay or
//! a commit also seen by the poller starts no second one, refused
//! deliveries change nothing, and a pull-request event wakes the
//! environment waiting on it (`common::forge`).
//!
//! The servers poll Git every hour, so only a delivery can make them look
//! (the poller's first pass, at start, finds nothing watched yet); a first
//! delivery is what first sees the application, as the README says. What
//! the poller has seen is read from the store's `git_watches` table, as in
//! `git_poll.rs`.

mod common;

use std::time::{Duration, Instant};

use common::forge::TestForge;
use common::git_server::GitServer;
use common::git_watch::*;
use common::*;
use promoflow::config::ServerConfig;
use promoflow::proto::v1 as pb;
use ring::hmac;
use serde_json::{Value, json};

const TOKEN: &str = "hook-token-for-tests";
const SECRET: &str = "webhook s3cret for tests";
const REPO: &str = "acme/apps";
const DEV_VALUES: &str = "apps/dev/values.yaml";
const HOUR: Duration = Duration::from_secs(3600);

fn values(env: &str, tag: &str) -> String {
    format!("# {env}\nimage:\n  tag: \"{tag}\" # promoted\n")
}

/// A Git server with `acme/apps` (dev and qa at 1.0.0), a test forge for
/// it, a credentials file naming the forge, and the webhook secret file.
struct Repo {
    git: GitServer,
    forge: TestForge,
    url: String,
    dir: tempfile::TempDir,
}

impl Repo {
    async fn start() -> Self {
        let git = GitServer::start("promoflow", TOKEN).await;
        let url = git.create_repo(
            REPO,
            &[
                (DEV_VALUES, &values("dev", "1.0.0")),
                ("apps/qa/values.yaml", &values("qa", "1.0.0")),
            ],
        );
        let forge = TestForge::start(&git.path(REPO), REPO, TOKEN).await;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("token"), TOKEN).expect("token");
        std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).expect("secret");
        std::fs::write(
            dir.path().join("credentials.yaml"),
            format!(
                "- url_prefix: {}\n  username: promoflow\n  token_file: {}\n  forge: {{kind: gitea, api_url: {}}}\n",
                git.base,
                dir.path().join("token").display(),
                forge.api_url
            ),
        )
        .expect("credentials");
        Self {
            git,
            forge,
            url,
            dir,
        }
    }

    /// Git, the secret, and polls every `every`.
    fn config(&self, c: &mut ServerConfig, every: Duration) {
        c.git_credentials = Some(self.dir.path().join("credentials.yaml"));
        c.allow_insecure_git_http = true;
        c.git_cache_dir = Some(self.dir.path().join("cache"));
        c.git_poll_interval = every;
        c.pr_poll_interval = HOUR;
        c.webhook_secret_file = Some(self.dir.path().join("secret"));
    }

    async fn server(&self, every: Duration) -> TestServer {
        TestServer::start_with(|c| self.config(c, every)).await
    }

    fn tip(&self) -> String {
        self.git.tip(REPO, "main")
    }

    fn push_dev(&self, tag: &str) -> String {
        self.git
            .commit_directly(REPO, "main", DEV_VALUES, &values("dev", tag))
    }
}

/// Environments dev and qa, flow `promote` (dev → qa, `action` in qa) and
/// product `shop` in `url`, watched in dev.
async fn seed(api: &impl Api, url: &str, action: pb::PromotionAction) {
    create_envs(api, &["dev", "qa"], pb::EnvironmentKind::NonProduction).await;
    let qa = pb::FlowStep {
        policy: Some(pb::Policy {
            action: action as i32,
            ..Default::default()
        }),
        ..step("qa", &["dev"])
    };
    create_flow(api, flow("promote", "dev", vec![qa]))
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

#[derive(Clone, Copy, Debug)]
enum Forge {
    GitHub,
    Gitea,
    GitLab,
}

/// One delivery: where, which event, its body and headers.
struct Delivery {
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn hex_hmac(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::sign(&key, body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A delivery of `event` with `body`, signed with `secret` (`None`:
/// unsigned) the way `forge` signs.
fn delivery(forge: Forge, event: &str, body: &Value, secret: Option<&str>) -> Delivery {
    let body = body.to_string().into_bytes();
    let (path, event_header, sig_header) = match forge {
        Forge::GitHub => ("/webhooks/github", "x-github-event", "x-hub-signature-256"),
        Forge::Gitea => ("/webhooks/gitea", "x-gitea-event", "x-gitea-signature"),
        Forge::GitLab => ("/webhooks/gitlab", "x-gitlab-event", "x-gitlab-token"),
    };
    let mut headers = vec![(event_header, event.to_string())];
    if let Some(secret) = secret {
        let sig = match forge {
            Forge::GitHub => format!("sha256={}", hex_hmac(secret, &body)),
            Forge::Gitea => hex_hmac(secret, &body),
            Forge::GitLab => secret.to_string(),
        };
        headers.push((sig_header, sig));
    }
    Delivery {
        path,
        headers,
        body,
    }
}

/// A push of `sha` to `branch` of the repository at `url`, in `forge`'s
/// shape, signed with the right secret.
fn push(forge: Forge, url: &str, sha: &str) -> Delivery {
    let web = url.trim_end_matches(".git");
    match forge {
        Forge::GitHub | Forge::Gitea => delivery(
            forge,
            "push",
            &json!({"ref": "refs/heads/main", "before": "0".repeat(40), "after": sha,
                    "repository": {"full_name": REPO, "clone_url": url, "html_url": web}}),
            Some(SECRET),
        ),
        Forge::GitLab => delivery(
            forge,
            "Push Hook",
            &json!({"object_kind": "push", "ref": "refs/heads/main", "after": sha,
                    "project": {"path_with_namespace": REPO, "git_http_url": url, "web_url": web}}),
            Some(SECRET),
        ),
    }
}

/// Posts `d` over HTTP/1.1 (or HTTP/2 without upgrade, `h2`); the status
/// and the JSON answer.
async fn post_with(server: &TestServer, d: &Delivery, h2: bool) -> (u16, Value) {
    let client = if h2 {
        reqwest::Client::builder().http2_prior_knowledge().build()
    } else {
        reqwest::Client::builder().http1_only().build()
    }
    .expect("client");
    let mut req = client
        .post(format!("http://{}{}", server.addr, d.path))
        .header("content-type", "application/json")
        .body(d.body.clone());
    for (k, v) in &d.headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.expect("post the delivery");
    let want = if h2 {
        reqwest::Version::HTTP_2
    } else {
        reqwest::Version::HTTP_11
    };
    assert_eq!(resp.version(), want);
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("answer");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    (status, body)
}

async fn post(server: &TestServer, d: &Delivery) -> (u16, Value) {
    post_with(server, d, false).await
}

/// Seeds shop and lets a first delivery see its current tip.
async fn first_sight(server: &TestServer, repo: &Repo, forge: Forge) {
    let (code, answer) = post(server, &push(forge, &repo.url, &repo.tip())).await;
    assert_eq!((code, &answer["matched"]), (202, &json!(1)), "{answer}");
    wait_watched(&server.db.url, &repo.tip()).await;
    assert!(releases(server).await.is_empty());
}

#[tokio::test]
async fn a_signed_github_push_starts_one_release_even_when_replayed() {
    let repo = Repo::start().await;
    let server = repo.server(HOUR).await;
    seed(&server, &repo.url, pb::PromotionAction::Commit).await;
    first_sight(&server, &repo, Forge::GitHub).await;

    let sha = repo.push_dev("1.1.0");
    let d = push(Forge::GitHub, &repo.url, &sha);
    let (code, answer) = post(&server, &d).await;
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["result"], "accepted");
    assert_eq!(answer["matched"], 1);
    let r = wait_release_of(&server, &sha).await;
    assert_eq!(r.version, "1.1.0");
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");

    // The same delivery again, this time over HTTP/2: polled, nothing new.
    let (code, answer) = post_with(&server, &d, true).await;
    assert_eq!((code, &answer["matched"]), (202, &json!(1)), "{answer}");
    // The promotion's commit into qa is the tip now; once it is seen the
    // replay's poll is over.
    wait_watched(&server.db.url, &repo.tip()).await;
    assert_eq!(releases(&server).await.len(), 1);
}

#[tokio::test]
async fn gitea_and_gitlab_pushes_start_releases_with_polling_off() {
    let repo = Repo::start().await;
    // No interval at all: the poller runs for webhooks only.
    let server = repo.server(Duration::ZERO).await;
    seed(&server, &repo.url, pb::PromotionAction::Commit).await;
    first_sight(&server, &repo, Forge::Gitea).await;

    let sha = repo.push_dev("1.1.0");
    let (code, answer) = post(&server, &push(Forge::Gitea, &repo.url, &sha)).await;
    assert_eq!((code, &answer["matched"]), (202, &json!(1)), "{answer}");
    let r = wait_release_of(&server, &sha).await;
    assert_eq!(r.version, "1.1.0");
    wait_final(&server, &r.id).await;

    let sha = repo.push_dev("1.2.0");
    let (code, answer) = post(&server, &push(Forge::GitLab, &repo.url, &sha)).await;
    assert_eq!((code, &answer["matched"]), (202, &json!(1)), "{answer}");
    let r = wait_release_of(&server, &sha).await;
    assert_eq!(r.version, "1.2.0");
}

#[tokio::test]
async fn refused_and_ignored_deliveries_change_nothing() {
    let repo = Repo::start().await;
    let server = repo.server(HOUR).await;
    seed(&server, &repo.url, pb::PromotionAction::Commit).await;
    first_sight(&server, &repo, Forge::GitHub).await;
    let before = repo.tip();
    let sha = repo.push_dev("1.1.0");
    let body = push(Forge::GitHub, &repo.url, &sha).body;
    let body: Value = serde_json::from_slice(&body).expect("json");

    // Wrong secret, no signature, for each forge: 401.
    for forge in [Forge::GitHub, Forge::Gitea, Forge::GitLab] {
        let event = match forge {
            Forge::GitLab => "Push Hook",
            _ => "push",
        };
        for secret in [Some("not the secret"), None] {
            let (code, answer) = post(&server, &delivery(forge, event, &body, secret)).await;
            assert_eq!(code, 401, "{forge:?} {secret:?}: {answer}");
        }
    }
    // A signature of another body.
    let mut tampered = push(Forge::GitHub, &repo.url, &sha);
    tampered.body.extend_from_slice(b" ");
    assert_eq!(post(&server, &tampered).await.0, 401);
    // Over 1 MiB, even signed: 413.
    let big = json!({"ref": "refs/heads/main", "padding": "x".repeat(1024 * 1024),
                     "repository": {"clone_url": repo.url}});
    let (code, answer) = post(
        &server,
        &delivery(Forge::GitHub, "push", &big, Some(SECRET)),
    )
    .await;
    assert_eq!(code, 413, "{answer}");
    // Signed but not JSON, or without its repository: 400.
    let mut garbled = delivery(Forge::GitHub, "push", &json!({}), Some(SECRET));
    garbled.body = b"{not json".to_vec();
    let sig = format!("sha256={}", hex_hmac(SECRET, &garbled.body));
    garbled.headers[1].1 = sig;
    assert_eq!(post(&server, &garbled).await.0, 400);
    let no_repo = delivery(
        Forge::GitHub,
        "push",
        &json!({"ref": "refs/heads/main"}),
        Some(SECRET),
    );
    assert_eq!(post(&server, &no_repo).await.0, 400);
    // A ping, and a push to a repository nobody watches: 202, ignored.
    let ping = delivery(Forge::GitHub, "ping", &json!({"zen": "hi"}), Some(SECRET));
    let (code, answer) = post(&server, &ping).await;
    assert_eq!((code, answer["result"].as_str()), (202, Some("ignored")));
    let other = push(Forge::GitHub, &repo.git.url("acme/other"), &sha);
    let (code, answer) = post(&server, &other).await;
    assert_eq!((code, &answer["matched"]), (202, &json!(0)), "{answer}");

    // None of them made the server look: the commit is still unseen (a poll
    // would have started its release). A short pause, since a refused
    // delivery has nothing to wait on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        watched(&server.db.url).await.as_deref(),
        Some(before.as_str())
    );
    assert!(releases(&server).await.is_empty());
    // The right delivery still starts it.
    assert_eq!(
        post(&server, &push(Forge::GitHub, &repo.url, &sha)).await.0,
        202
    );
    wait_release_of(&server, &sha).await;
}

#[tokio::test]
async fn without_a_secret_webhooks_answer_503() {
    let server = TestServer::start().await;
    let d = delivery(Forge::GitHub, "ping", &json!({}), Some(SECRET));
    let (code, answer) = post(&server, &d).await;
    assert_eq!(code, 503);
    let why = answer["error"].as_str().unwrap_or("");
    assert!(why.contains("--webhook-secret-file"), "{answer}");
    // gRPC on the same port is unaffected.
    create_envs(&server, &["dev"], pb::EnvironmentKind::NonProduction).await;
}

#[tokio::test]
async fn a_commit_seen_by_webhook_and_poller_starts_one_release() {
    let repo = Repo::start().await;
    let server = repo.server(Duration::from_millis(50)).await;
    seed(&server, &repo.url, pb::PromotionAction::Commit).await;
    wait_watched(&server.db.url, &repo.tip()).await;

    let sha = repo.push_dev("1.1.0");
    let d = push(Forge::GitHub, &repo.url, &sha);
    let posts = (0..3).map(|_| post(&server, &d));
    for (code, answer) in futures::future::join_all(posts).await {
        assert_eq!(code, 202, "{answer}");
    }
    let r = wait_release_of(&server, &sha).await;
    wait_final(&server, &r.id).await;
    // More polls by both after the release.
    post(&server, &d).await;
    wait_watched(&server.db.url, &repo.tip()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(releases(&server).await.len(), 1);
}

#[tokio::test]
async fn a_pull_request_event_wakes_the_environment_waiting_on_it() {
    let repo = Repo::start().await;
    // Pull requests are checked every hour: only the delivery can wake it.
    let server = repo.server(HOUR).await;
    seed(&server, &repo.url, pb::PromotionAction::PullRequest).await;
    repo.push_dev("1.1.0");
    let r = trigger_flow(&server, "promote", "shop", "1.1.0").await;
    let action = |r: &pb::Release| step_of(env(r, "qa"), pb::StepKind::Action).clone();
    let waiting = wait_until(&server, &r.id, "qa awaiting review", |r| {
        env_status(r, "qa") == pb::EnvironmentStatus::Suspended && action(r).pull_request_number > 0
    })
    .await;
    let number = action(&waiting).pull_request_number;
    let merge = repo.forge.merge(number);

    let d = delivery(
        Forge::Gitea,
        "pull_request",
        &json!({"action": "closed", "number": number,
                "pull_request": {"number": number, "merged": true},
                "repository": {"full_name": REPO, "clone_url": repo.url}}),
        Some(SECRET),
    );
    // The wait registers right after the environment is suspended: deliver
    // until a waiting check was woken.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, answer) = post(&server, &d).await;
        assert_eq!(code, 202, "{answer}");
        if answer["woken"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no wait on #{number}: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    assert_eq!(action(&done).commit_sha, merge);
}
