//! A PULL_REQUEST promotion driven from the outside, the way a user's forge
//! sees it: by default against the project's stand-ins (the `git
//! http-backend` server and the test forge speaking Gitea's API, so
//! `scripts/test` runs it on every backend), and against a real GitHub,
//! GitLab or Gitea when these are set (never in CI):
//!
//! - `PROMOFLOW_TEST_FORGE_KIND`: `gitea`, `github` or `gitlab`;
//! - `PROMOFLOW_TEST_FORGE_REPO_URL`: an https repository with a `main`
//!   branch the token may push to and open pull requests on;
//! - `PROMOFLOW_TEST_FORGE_TOKEN`: that token;
//! - optional `PROMOFLOW_TEST_FORGE_API_URL` (default: the forge's API at
//!   the repository's host) and `PROMOFLOW_TEST_FORGE_USERNAME` (the user
//!   git authenticates as; default `x-access-token` on GitHub, `oauth2` on
//!   GitLab, `promoflow` on Gitea).
//!
//! The test pushes `promoflow-test/<uuid>/{dev,prod}/values.yaml` to `main`,
//! promotes dev → prod through a pull request, checks it is open with the
//! commit's title, closes it through the forge's API and expects prod to
//! fail; it then deletes the pull request's branch. The directory stays on
//! `main`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use common::forge::TestForge;
use common::git_server::GitServer;
use common::*;
use promoflow::proto::v1 as pb;
use serde_json::{Value, json};

/// The forge the test runs against, from the environment.
struct RealForge {
    kind: String,
    repo_url: String,
    token: String,
    api_url: String,
    username: String,
    /// `owner/name` (GitHub, Gitea) or the project's whole path (GitLab).
    path: String,
    /// The stand-ins serving the repository when no real forge is given.
    local: Option<(GitServer, TestForge)>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &str) -> String {
    var(name).unwrap_or_else(|| {
        panic!(
            "{name} is not set: the real-forge tests need PROMOFLOW_TEST_FORGE_KIND (gitea|github|gitlab), PROMOFLOW_TEST_FORGE_REPO_URL and PROMOFLOW_TEST_FORGE_TOKEN (optionally PROMOFLOW_TEST_FORGE_API_URL and PROMOFLOW_TEST_FORGE_USERNAME)"
        )
    })
}

impl RealForge {
    /// The real forge the environment names, else the local stand-ins.
    async fn pick() -> Self {
        if var("PROMOFLOW_TEST_FORGE_KIND").is_some() {
            Self::from_env()
        } else {
            Self::local().await
        }
    }

    /// A Gitea-speaking test forge in front of a real `git http-backend`
    /// repository `acme/apps` with a `main` branch.
    async fn local() -> Self {
        const TOKEN: &str = "real-forge-test-token";
        let git = GitServer::start("promoflow", TOKEN).await;
        let repo_url = git.create_repo("acme/apps", &[("README.md", "# apps\n")]);
        let forge = TestForge::start(&git.path("acme/apps"), "acme/apps", TOKEN).await;
        Self {
            kind: "gitea".into(),
            repo_url,
            token: TOKEN.into(),
            api_url: forge.api_url.clone(),
            username: "promoflow".into(),
            path: "acme/apps".into(),
            local: Some((git, forge)),
        }
    }

    fn from_env() -> Self {
        let kind = required("PROMOFLOW_TEST_FORGE_KIND").to_ascii_lowercase();
        assert!(
            ["gitea", "github", "gitlab"].contains(&kind.as_str()),
            "PROMOFLOW_TEST_FORGE_KIND must be gitea, github or gitlab, not {kind:?}"
        );
        let repo_url = required("PROMOFLOW_TEST_FORGE_REPO_URL");
        let token = required("PROMOFLOW_TEST_FORGE_TOKEN");
        let url = url::Url::parse(&repo_url)
            .unwrap_or_else(|e| panic!("PROMOFLOW_TEST_FORGE_REPO_URL {repo_url:?}: {e}"));
        assert_eq!(
            url.scheme(),
            "https",
            "PROMOFLOW_TEST_FORGE_REPO_URL must be https://"
        );
        let origin = url.origin().ascii_serialization();
        let api_url = var("PROMOFLOW_TEST_FORGE_API_URL")
            .map(|a| a.trim_end_matches('/').to_string())
            .unwrap_or_else(|| match kind.as_str() {
                "github" if url.host_str() == Some("github.com") => {
                    "https://api.github.com".to_string()
                }
                "github" => format!("{origin}/api/v3"),
                "gitlab" => format!("{origin}/api/v4"),
                _ => format!("{origin}/api/v1"),
            });
        let username = var("PROMOFLOW_TEST_FORGE_USERNAME").unwrap_or_else(|| {
            match kind.as_str() {
                "github" => "x-access-token",
                "gitlab" => "oauth2",
                _ => "promoflow",
            }
            .to_string()
        });
        let path = url
            .path()
            .trim_matches('/')
            .trim_end_matches(".git")
            .to_string();
        Self {
            kind,
            repo_url,
            token,
            api_url,
            username,
            path,
            local: None,
        }
    }

    /// `git args` in `dir`, authenticated by a header passed in the
    /// environment (never on the command line); panics on failure without
    /// showing the token.
    fn git(&self, dir: &Path, args: &[&str]) {
        assert!(self.try_git(dir, args), "git {} failed", args[0]);
    }

    /// `git args` in `dir`; whether it succeeded.
    fn try_git(&self, dir: &Path, args: &[&str]) -> bool {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.username, self.token));
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env(
                "GIT_CONFIG_VALUE_0",
                format!("Authorization: Basic {basic}"),
            )
            .env("GIT_AUTHOR_NAME", "promoflow test")
            .env("GIT_AUTHOR_EMAIL", "promoflow-test@example.com")
            .env("GIT_COMMITTER_NAME", "promoflow test")
            .env("GIT_COMMITTER_EMAIL", "promoflow-test@example.com")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A request to the forge's API, with its token in a sensitive header.
    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let scheme = if self.kind == "gitea" {
            "token"
        } else {
            "Bearer"
        };
        let mut auth = reqwest::header::HeaderValue::from_str(&format!("{scheme} {}", self.token))
            .expect("the token fits in a header");
        auth.set_sensitive(true);
        let mut req = reqwest::Client::new()
            .request(method.clone(), format!("{}{path}", self.api_url))
            .header(reqwest::header::AUTHORIZATION, auth)
            .header(reqwest::header::USER_AGENT, "promoflow-tests")
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the forge API answers");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "{method} {path} on the forge: HTTP {status}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn pull_path(&self, number: i64) -> String {
        if self.kind == "gitlab" {
            let project: String = url::form_urlencoded::byte_serialize(self.path.as_bytes())
                .collect::<String>()
                .replace('+', "%20");
            format!("/projects/{project}/merge_requests/{number}")
        } else {
            format!("/repos/{}/pulls/{number}", self.path)
        }
    }

    /// The pull request's title and whether it is open.
    async fn pull_request(&self, number: i64) -> (String, bool) {
        let v = self
            .api(reqwest::Method::GET, &self.pull_path(number), None)
            .await;
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
        let open = matches!(text("state"), "open" | "opened");
        (text("title").to_string(), open)
    }

    async fn close(&self, number: i64) {
        let (method, body) = if self.kind == "gitlab" {
            (reqwest::Method::PUT, json!({"state_event": "close"}))
        } else {
            (reqwest::Method::PATCH, json!({"state": "closed"}))
        };
        self.api(method, &self.pull_path(number), Some(body)).await;
    }
}

fn values(env: &str) -> String {
    format!("# {env}\nimage:\n  tag: \"1.0.0-{env}\"\n")
}

// Several threads: the test's git commands block, and the stand-ins run
// on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_on_a_forge_opens_and_closing_it_fails_prod() {
    let f = RealForge::pick().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let id = uuid::Uuid::new_v4().simple().to_string();
    let root = format!("promoflow-test/{id}");

    // A fresh directory on main: dev at 1.0.0-dev, prod at 1.0.0-prod.
    let work = dir.path().join("work");
    f.git(
        dir.path(),
        &[
            "clone",
            "--quiet",
            "--depth",
            "1",
            "--branch",
            "main",
            &f.repo_url,
            "work",
        ],
    );
    for env in ["dev", "prod"] {
        let d = work.join(&root).join(env);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("values.yaml"), values(env)).expect("values");
    }
    f.git(&work, &["add", "--all"]);
    f.git(
        &work,
        &["commit", "--quiet", "-m", &format!("promoflow test {id}")],
    );
    f.git(
        &work,
        &["push", "--quiet", "origin", "HEAD:refs/heads/main"],
    );

    // promoflow with a credentials entry naming the forge.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &f.token).expect("token");
    let creds = dir.path().join("credentials.yaml");
    std::fs::write(
        &creds,
        format!(
            "- url_prefix: {}\n  username: {}\n  token_file: {}\n  forge: {{kind: {}, api_url: {}}}\n",
            f.repo_url,
            f.username,
            token_file.display(),
            f.kind,
            f.api_url
        ),
    )
    .expect("credentials");
    let cache = dir.path().join("cache");
    let server = TestServer::start_on(TestDb::new().await, |c| {
        c.git_credentials = Some(creds.clone());
        c.git_cache_dir = Some(cache);
        // The stand-ins speak plain HTTP on loopback.
        c.allow_insecure_git_http = f.local.is_some();
        c.pr_poll_interval = std::time::Duration::from_secs(2);
    })
    .await;
    create_envs(
        &server,
        &["dev", "prod"],
        pb::EnvironmentKind::NonProduction,
    )
    .await;
    let apps = ["dev", "prod"]
        .iter()
        .map(|e| pb::Application {
            source: Some(pb::GitSource {
                repo_url: f.repo_url.clone(),
                branch: "main".into(),
                path: format!("{root}/{e}"),
            }),
            ..app(e, &format!("shop-{e}"), "")
        })
        .collect();
    create_product(
        &server,
        pb::Product {
            name: "shop".into(),
            applications: apps,
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
            action: pb::PromotionAction::PullRequest as i32,
            ..Default::default()
        }),
        ..step("prod", &["dev"])
    };
    create_flow(&server, flow("pr", "dev", vec![prod]))
        .await
        .expect("create flow");

    let r = trigger_flow(&server, "pr", "shop", "").await;
    let waiting = wait_until(&server, &r.id, "prod awaiting review", |r| {
        env_status(r, "prod") == pb::EnvironmentStatus::Suspended
            && step_of(env(r, "prod"), pb::StepKind::Action).pull_request_number > 0
    })
    .await;
    let n = step_of(env(&waiting, "prod"), pb::StepKind::Action).pull_request_number;
    let (title, open) = f.pull_request(n).await;
    assert!(open, "pull request #{n} is open");
    assert_eq!(title, "promote shop 1.0.0-dev from dev to prod");

    f.close(n).await;
    let done = wait_final(&server, &r.id).await;
    // Best effort: the pull request's branch goes.
    let branch = format!("promoflow/{}/prod", r.id);
    f.try_git(
        &work,
        &[
            "push",
            "--quiet",
            "origin",
            &format!(":refs/heads/{branch}"),
        ],
    );
    assert_eq!(status(&done), pb::ReleaseStatus::Failed, "{done:?}");
    assert_eq!(env_status(&done, "prod"), pb::EnvironmentStatus::Failed);
    let message = &env(&done, "prod").message;
    assert!(message.contains("closed without being merged"), "{message}");
}
