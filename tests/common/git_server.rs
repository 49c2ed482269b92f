//! A real Git smart-HTTP server for tests: `git http-backend` behind the
//! small axum CGI bridge on `127.0.0.1:0`, with Basic authentication, that
//! `promoflow bench` uses too (`promoflow::cli::bench::git_http`); this
//! file adds the faults tests need.
//!
//! Clones, fetches and pushes are git's own (real rejections when a branch
//! moved, real 401s). Helpers read and write the bare repositories
//! directly, and [`GitServer::inject_before_next_push`] commits to a
//! repository just before the next push to it reaches `receive-pack`, so
//! a test can make a push lose a race deterministically.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::response::Response;
use promoflow::cli::bench::git_http::{self, Bridge, Call, git_ok};

/// One commit of a branch's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub sha: String,
    pub subject: String,
    pub trailers: Vec<(String, String)>,
}

/// A running server; stopped (and its repositories deleted) when dropped.
pub struct GitServer {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    state: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// A commit of one file made just before a push: (branch, path, contents).
type Injection = (String, String, String);

struct Shared {
    bridge: Bridge,
    /// Per repository: commits to make before its next receive-pack.
    inject: Mutex<HashMap<String, Vec<Injection>>>,
    injected: AtomicUsize,
    /// Requests refused for want of the right credentials.
    refused: AtomicUsize,
    /// Per repository: receive-pack requests served.
    pushes: Mutex<HashMap<String, usize>>,
    /// Repositories whose requests never get an answer.
    stalled: Mutex<HashSet<String>>,
}

impl GitServer {
    /// Starts a server accepting Basic `user:token`.
    pub async fn start(user: &str, token: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("repos");
        std::fs::create_dir_all(&root).expect("repos dir");
        let state = Arc::new(Shared {
            bridge: Bridge::new(root, user, token).expect("git http-backend"),
            inject: Mutex::default(),
            injected: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            pushes: Mutex::default(),
            stalled: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let (base, task) = git_http::listen(app).await.expect("git server");
        Self {
            base,
            state,
            task,
            _dir: dir,
        }
    }

    /// The clone URL of repository `name`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}.git", self.base)
    }

    /// The bare repository of `name` on disk (a local repository URL).
    pub fn path(&self, name: &str) -> PathBuf {
        self.repo(name)
    }

    fn repo(&self, name: &str) -> PathBuf {
        self.state.bridge.repo_dir(name)
    }

    /// A bare repository whose `main` (its default branch) has one commit
    /// holding `files`; returns its URL.
    pub fn create_repo(&self, name: &str, files: &[(&str, &str)]) -> String {
        let dir = self.repo(name);
        git_http::init_bare(&dir, "main").expect("git init");
        commit_files(&dir, "main", files, "initial commit");
        self.url(name)
    }

    /// Makes `branch` (created from `main` when missing) the default
    /// branch (`HEAD`) of `name`.
    pub fn set_default_branch(&self, name: &str, branch: &str) {
        let dir = self.repo(name);
        let refname = format!("refs/heads/{branch}");
        if git_ok(&dir, &["rev-parse", "--verify", "--quiet", &refname]).is_none() {
            run_git(
                &dir,
                &["update-ref", &refname, "refs/heads/main"],
                &[],
                None,
            );
        }
        run_git(&dir, &["symbolic-ref", "HEAD", &refname], &[], None);
    }

    /// The commits of `branch`, newest first.
    pub fn log(&self, name: &str, branch: &str) -> Vec<LogEntry> {
        let out = run_git(
            &self.repo(name),
            &[
                "log",
                "-z",
                "--format=%H%x01%s%x01%(trailers:only,unfold)",
                &format!("refs/heads/{branch}"),
                "--",
            ],
            &[],
            None,
        );
        out.split('\0')
            .filter(|r| !r.trim().is_empty())
            .map(|record| {
                let mut parts = record.splitn(3, '\x01');
                let sha = parts.next().unwrap_or_default().trim().to_string();
                let subject = parts.next().unwrap_or_default().to_string();
                let trailers = parts
                    .next()
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect();
                LogEntry {
                    sha,
                    subject,
                    trailers,
                }
            })
            .collect()
    }

    /// The paths `sha` changed relative to its first parent.
    pub fn changed_files(&self, name: &str, sha: &str) -> Vec<String> {
        run_git(
            &self.repo(name),
            &[
                "diff-tree",
                "--root",
                "--no-commit-id",
                "--name-only",
                "-r",
                sha,
            ],
            &[],
            None,
        )
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// The whole message of `sha`.
    pub fn message(&self, name: &str, sha: &str) -> String {
        run_git(
            &self.repo(name),
            &["log", "-1", "--format=%B", sha],
            &[],
            None,
        )
    }

    /// The tip of `branch`.
    pub fn tip(&self, name: &str, branch: &str) -> String {
        run_git(
            &self.repo(name),
            &["rev-parse", &format!("refs/heads/{branch}")],
            &[],
            None,
        )
        .trim()
        .to_string()
    }

    /// The file `path` at the tip of `branch`.
    pub fn read(&self, name: &str, branch: &str, path: &str) -> String {
        run_git(
            &self.repo(name),
            &["show", &format!("refs/heads/{branch}:{path}")],
            &[],
            None,
        )
    }

    /// Commits `path` = `contents` on `branch` directly in the repository,
    /// as someone else's push would; returns the new commit.
    pub fn commit_directly(&self, name: &str, branch: &str, path: &str, contents: &str) -> String {
        commit_files(
            &self.repo(name),
            branch,
            &[(path, contents)],
            &format!("someone else edits {path}"),
        )
    }

    /// Before the next push to `name` reaches `receive-pack` (after the
    /// pusher fetched and read the ref advertisement), commits `path` =
    /// `contents` on `branch` directly: that push then loses the race.
    pub fn inject_before_next_push(&self, name: &str, branch: &str, path: &str, contents: &str) {
        self.state
            .inject
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .push((branch.into(), path.into(), contents.into()));
    }

    /// From now on, requests for `name` are accepted and never answered
    /// (a hung server).
    pub fn stall(&self, name: &str) {
        self.state.stalled.lock().unwrap().insert(name.to_string());
    }

    /// How many injected commits were made so far.
    pub fn injected(&self) -> usize {
        self.state.injected.load(Ordering::SeqCst)
    }

    /// How many requests were refused with 401 (no or wrong credentials).
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// How many pushes (receive-pack requests) reached `name`.
    pub fn pushes(&self, name: &str) -> usize {
        self.state
            .pushes
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The shared bridge (`promoflow::cli::bench::git_http`), with this
/// server's faults: stalled repositories, commits injected before a push.
async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    if let Err(denied) = s.bridge.authorize(req.headers()) {
        s.refused.fetch_add(1, Ordering::SeqCst);
        return denied;
    }
    let stalled =
        git_http::repo_of(req.uri().path()).is_some_and(|r| s.stalled.lock().unwrap().contains(r));
    if stalled {
        std::future::pending::<()>().await;
    }
    let call = match Call::read(req).await {
        Ok(c) => c,
        Err(bad) => return bad,
    };
    if let Some(repo) = call.push_repo().map(str::to_string) {
        *s.pushes.lock().unwrap().entry(repo.clone()).or_default() += 1;
        let pending = s.inject.lock().unwrap().remove(&repo);
        if let Some(pending) = pending {
            let dir = s.bridge.repo_dir(&repo);
            let count = pending.len();
            tokio::task::spawn_blocking(move || {
                for (branch, file, contents) in pending {
                    commit_files(
                        &dir,
                        &branch,
                        &[(&file, &contents)],
                        &format!("someone else edits {file}"),
                    );
                }
            })
            .await
            .expect("inject");
            s.injected.fetch_add(count, Ordering::SeqCst);
        }
    }
    s.bridge.run(call).await
}

/// Commits `files` onto `branch` of the bare repository `dir`; panics on
/// failure.
fn commit_files(dir: &Path, branch: &str, files: &[(&str, &str)], message: &str) -> String {
    git_http::commit_files(dir, branch, files, message)
        .unwrap_or_else(|e| panic!("commit to {}: {e}", dir.display()))
}

/// `git args` in `dir` (as its git dir when it is one); panics on failure.
fn run_git(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> String {
    git_http::run_git(dir, args, env, stdin).unwrap_or_else(|e| panic!("{e}"))
}
