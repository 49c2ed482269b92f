//! A test forge speaking the subset of the Gitea pull-request API that
//! promoflow uses (`/api/v1/repos/{owner}/{repo}/pulls`: create, get, list
//! by state/head/base; `/issues/{n}/comments`), for one bare repository on
//! disk (e.g. one of `git_server::GitServer`'s), on `127.0.0.1:0`.
//!
//! The test plays the reviewer: [`TestForge::merge`] makes a real merge
//! commit on the bare repository (`git merge-tree --write-tree`, `git
//! commit-tree`, `git update-ref` with the old value), [`TestForge::close`]
//! closes without merging. Requests need `Authorization: token <token>`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

/// One commit status the forge received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub sha: String,
    pub state: String,
    /// Empty when the request had none.
    pub target_url: String,
    pub description: String,
    pub context: String,
}

/// One pull request the forge holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pr {
    pub number: i64,
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    /// "open" or "closed".
    pub state: String,
    pub merged: bool,
    pub merge_commit_sha: String,
    pub comments: Vec<String>,
}

struct Shared {
    repo: PathBuf,
    /// `{owner}/{name}`
    full_name: String,
    token: String,
    base: String,
    prs: Mutex<Vec<Pr>>,
    /// Create requests received (accepted or not).
    creates: Mutex<usize>,
    /// Commit statuses received, in order.
    statuses: Mutex<Vec<Status>>,
}

/// A running forge; stopped when dropped.
pub struct TestForge {
    /// `http://127.0.0.1:<port>/api/v1`: the `api_url` of the forge.
    pub api_url: String,
    state: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl TestForge {
    /// Serves repository `full_name` (`owner/name`), stored at `repo` (a
    /// bare repository), to clients holding `token`.
    pub async fn start(repo: &Path, full_name: &str, token: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Shared {
            repo: repo.to_path_buf(),
            full_name: full_name.into(),
            token: token.into(),
            base: base.clone(),
            prs: Mutex::default(),
            creates: Mutex::default(),
            statuses: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("test forge");
        });
        Self {
            api_url: format!("{base}/api/v1"),
            state,
            task,
        }
    }

    /// Every pull request, oldest first.
    pub fn prs(&self) -> Vec<Pr> {
        self.state.prs.lock().unwrap().clone()
    }

    pub fn pr(&self, number: i64) -> Pr {
        self.prs()
            .into_iter()
            .find(|p| p.number == number)
            .unwrap_or_else(|| panic!("no pull request #{number}"))
    }

    /// Every commit status received, oldest first.
    pub fn statuses(&self) -> Vec<Status> {
        self.state.statuses.lock().unwrap().clone()
    }

    /// How many create requests arrived.
    pub fn creates(&self) -> usize {
        *self.state.creates.lock().unwrap()
    }

    /// Merges pull request `number` as a reviewer would: a merge commit of
    /// its head into its base on the repository; returns the commit.
    pub fn merge(&self, number: i64) -> String {
        let pr = self.pr(number);
        assert_eq!(pr.state, "open", "#{number} is open");
        let repo = &self.state.repo;
        let base_ref = format!("refs/heads/{}", pr.base);
        let base = git(repo, &["rev-parse", &base_ref]);
        let head = git(repo, &["rev-parse", &format!("refs/heads/{}", pr.head)]);
        let tree = git(repo, &["merge-tree", "--write-tree", &base, &head]);
        let message = format!("Merge pull request #{number} from {}", pr.head);
        let sha = git(
            repo,
            &[
                "commit-tree",
                &tree,
                "-p",
                &base,
                "-p",
                &head,
                "-m",
                &message,
            ],
        );
        git(repo, &["update-ref", &base_ref, &sha, &base]);
        let mut prs = self.state.prs.lock().unwrap();
        let p = prs.iter_mut().find(|p| p.number == number).expect("pr");
        p.state = "closed".into();
        p.merged = true;
        p.merge_commit_sha = sha.clone();
        sha
    }

    /// Closes pull request `number` without merging it.
    pub fn close(&self, number: i64) {
        let mut prs = self.state.prs.lock().unwrap();
        let p = prs
            .iter_mut()
            .find(|p| p.number == number)
            .expect("pull request");
        p.state = "closed".into();
    }
}

impl Drop for TestForge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn pr_json(s: &Shared, p: &Pr) -> Value {
    let head_sha =
        git_ok(&s.repo, &["rev-parse", &format!("refs/heads/{}", p.head)]).unwrap_or_default();
    json!({
        "number": p.number,
        "title": p.title,
        "body": p.body,
        "state": p.state,
        "merged": p.merged,
        "merge_commit_sha": if p.merged { Value::from(p.merge_commit_sha.clone()) } else { Value::Null },
        "html_url": format!("{}/{}/pulls/{}", s.base, s.full_name, p.number),
        "head": {"ref": p.head, "sha": head_sha},
        "base": {"ref": p.base},
    })
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let authorized = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == format!("token {}", s.token).as_bytes());
    if !authorized {
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"message": "token is required"}),
        );
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let prefix = format!("/api/v1/repos/{}", s.full_name);
    let Some(rest) = path.strip_prefix(&prefix) else {
        return reply(
            StatusCode::NOT_FOUND,
            json!({"message": "repository not found"}),
        );
    };
    let parts: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["pulls"]) => {
            *s.creates.lock().unwrap() += 1;
            let (head, base) = (text(&body, "head"), text(&body, "base"));
            for branch in [&head, &base] {
                if git_ok(
                    &s.repo,
                    &["rev-parse", "--verify", &format!("refs/heads/{branch}")],
                )
                .is_none()
                {
                    return reply(
                        StatusCode::NOT_FOUND,
                        json!({"message": format!("branch {branch} does not exist")}),
                    );
                }
            }
            let mut prs = s.prs.lock().unwrap();
            if prs
                .iter()
                .any(|p| p.state == "open" && p.head == head && p.base == base)
            {
                return reply(
                    StatusCode::CONFLICT,
                    json!({"message": "pull request already exists for these targets"}),
                );
            }
            let pr = Pr {
                number: prs.len() as i64 + 1,
                title: text(&body, "title"),
                body: text(&body, "body"),
                head,
                base,
                state: "open".into(),
                merged: false,
                merge_commit_sha: String::new(),
                comments: Vec::new(),
            };
            prs.push(pr.clone());
            drop(prs);
            reply(StatusCode::CREATED, pr_json(&s, &pr))
        }
        ("GET", ["pulls"]) => {
            let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.clone());
            let state = get("state").unwrap_or_else(|| "open".into());
            let prs = s.prs.lock().unwrap().clone();
            let list: Vec<Value> = prs
                .iter()
                .rev()
                .filter(|p| state == "all" || p.state == state)
                .filter(|p| get("head").is_none_or(|h| h == p.head))
                .filter(|p| get("base").is_none_or(|b| b == p.base))
                .map(|p| pr_json(&s, p))
                .collect();
            reply(StatusCode::OK, Value::Array(list))
        }
        ("GET", ["pulls", n]) => {
            let prs = s.prs.lock().unwrap().clone();
            match prs.iter().find(|p| p.number.to_string() == *n) {
                Some(p) => reply(StatusCode::OK, pr_json(&s, p)),
                None => reply(
                    StatusCode::NOT_FOUND,
                    json!({"message": "pull request not found"}),
                ),
            }
        }
        // Gitea's "edit a pull request"; only closing is supported.
        ("PATCH", ["pulls", n]) if text(&body, "state") == "closed" => {
            let mut prs = s.prs.lock().unwrap();
            match prs.iter_mut().find(|p| p.number.to_string() == *n) {
                Some(p) => {
                    p.state = "closed".into();
                    let p = p.clone();
                    reply(StatusCode::CREATED, pr_json(&s, &p))
                }
                None => reply(
                    StatusCode::NOT_FOUND,
                    json!({"message": "pull request not found"}),
                ),
            }
        }
        ("POST", ["statuses", sha]) => {
            let state = text(&body, "state");
            if !["pending", "success", "error", "failure", "warning"].contains(&state.as_str()) {
                return reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"message": format!("invalid state {state:?}")}),
                );
            }
            let status = Status {
                sha: sha.to_string(),
                state,
                target_url: text(&body, "target_url"),
                description: text(&body, "description"),
                context: text(&body, "context"),
            };
            s.statuses.lock().unwrap().push(status);
            reply(StatusCode::CREATED, body)
        }
        ("POST", ["issues", n, "comments"]) => {
            let mut prs = s.prs.lock().unwrap();
            match prs.iter_mut().find(|p| p.number.to_string() == *n) {
                Some(p) => {
                    p.comments.push(text(&body, "body"));
                    reply(
                        StatusCode::CREATED,
                        json!({"id": p.comments.len(), "body": text(&body, "body")}),
                    )
                }
                None => reply(StatusCode::NOT_FOUND, json!({"message": "issue not found"})),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, json!({"message": "not found"})),
    }
}

/// `git args` on the bare repository `repo`; its trimmed output. Panics on
/// failure.
fn git(repo: &Path, args: &[&str]) -> String {
    git_ok(repo, args).unwrap_or_else(|| panic!("git {args:?} in {} failed", repo.display()))
}

fn git_ok(repo: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .env("GIT_DIR", repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Reviewer")
        .env("GIT_AUTHOR_EMAIL", "reviewer@example.com")
        .env("GIT_COMMITTER_NAME", "Reviewer")
        .env("GIT_COMMITTER_EMAIL", "reviewer@example.com")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
